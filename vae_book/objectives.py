r"""Objectives: the ELBO, the beta-weighted training loss, the IWAE bound, and gradient estimators.

Conventions (all values in **nats**):

* per-example quantities are **sums** over pixels and latent dimensions, shape ``(batch,)``;
* the mean over the batch is taken only at the very end, in :func:`vae_loss`;
* the ELBO is reconstruction **minus** KL:

.. math::
    \mathcal L(x) = \mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]
                    - \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big) \le \log p_\theta(x),

and the loss minimised in training is :math:`-\big(\text{recon} - \beta\,\text{KL}\big)`.

The functions take any model with the :class:`vae_book.models.base.VAE` interface
(``encode``, ``decode``, ``log_likelihood``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from vae_book import distributions as D
from vae_book._checks import (as_float_images, check_array, check_callable, check_images, check_key, check_module,
                              check_number, check_positive_int, is_concrete)

__all__ = [
    "ElboTerms",
    "elbo",
    "vae_loss",
    "autoencoder_loss",
    "log_importance_weights",
    "iwae_bound",
    "pathwise_grad",
    "score_function_grad",
]


class ElboTerms(NamedTuple):
    """Per-example ELBO terms, each of shape (batch,), in nats per example."""

    recon: jax.Array  #: single-sample estimate of E_q[log p(x|z)]
    kl: jax.Array  #: KL(q(z|x) || p(z)), analytic (or single-sample if analytic_kl=False)
    elbo: jax.Array  #: recon - kl


def elbo(model: nnx.Module, x: ArrayLike, key: jax.Array, *, analytic_kl: bool = True) -> ElboTerms:
    r"""Per-example ELBO :math:`\log p(x\mid z) - \mathrm{KL}(q(z\mid x)\|p(z))` with one reparameterized ``z``.

    Args:
        model: a VAE (``encode``/``decode``/``log_likelihood``).
        x: a batch of inputs, (batch, ...).
        key: PRNG key for the sample :math:`z\sim q(z\mid x)`.
        analytic_kl: use the closed-form Gaussian KL (lower variance, default); if False, use the
            single-sample estimate :math:`\log q(z\mid x) - \log p(z)` at the same ``z``, which makes
            the result equal to :func:`iwae_bound` with ``num_samples=1`` and the same key.

    Returns:
        :class:`ElboTerms` of per-example arrays (nats).
    """
    check_module(model, methods=_VAE_METHODS)
    if not isinstance(analytic_kl, (bool, np.bool_)):
        raise ValueError(f"`analytic_kl` must be True or False, got {analytic_kl!r}.")
    key = check_key(key)
    mean, log_std = model.encode(x)
    z = D.sample_diag_gaussian(key, mean, log_std, num_samples=1)[0]
    recon = model.log_likelihood(x, model.decode(z))
    if analytic_kl:
        kl = jnp.sum(D.kl_to_standard_normal(mean, log_std), axis=-1)
    else:
        log_q = jnp.sum(D.gaussian_log_prob(z, mean, log_std), axis=-1)
        kl = log_q - jnp.sum(D.standard_normal_log_prob(z), axis=-1)
    return ElboTerms(recon=recon, kl=kl, elbo=recon - kl)


def vae_loss(model: nnx.Module, x: ArrayLike, key: jax.Array,
             beta: float | jax.Array = 1.0, *, free_bits: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    r"""The beta-weighted training loss :math:`\frac1B\sum_b -\big(\text{recon}_b - \beta\,\text{KL}_b\big)`.

    ``beta = 1`` gives the negative ELBO (Kingma & Welling 2014); ``beta != 1`` the beta-VAE loss
    (Higgins et al. 2017), which is **not** a bound on log p(x) unless beta = 1. ``beta`` may be a
    Python, NumPy or 0-d JAX number (finite, >= 0), or a traced scalar inside ``jax.jit`` (e.g. a
    KL warm-up schedule, see ``beta`` of :func:`vae_book.train.fit`); NaN, inf and negative values
    are refused.

    ``free_bits = lambda > 0`` is the free-bits objective of Kingma et al. (2016, eq. 15) with one
    group per latent dimension: the KL term becomes :math:`\beta\sum_u \max\big(\lambda,
    \frac1B\sum_b \mathrm{KL}_{bu}\big)` (nats), so a dimension whose batch-mean KL is below
    ``lambda`` gets no gradient pushing it towards the prior. With ``beta = 1`` it is never below the
    negative ELBO (``max(lambda, K) >= K``), so minus it is a looser lower bound on log p(x) whose
    best model is not the ELBO's; the ``elbo`` metric stays the true ELBO. ``free_bits = 0`` is the
    plain loss.

    Returns:
        ``(loss, metrics)``: the scalar loss in nats per example, and a dict of batch means:
        ``loss``, ``recon`` (E log p(x|z)), ``kl``, ``elbo`` (= recon - kl, whatever beta),
        ``encoder_std`` (mean posterior sigma) and, for Gaussian likelihoods, ``decoder_std`` (mean pixel sigma).
    """
    check_module(model, methods=_VAE_METHODS)
    if is_concrete(beta) or getattr(beta, "shape", None) != ():
        beta = check_number(beta, "beta", minimum=0.0)
    free_bits = check_number(free_bits, "free_bits", minimum=0.0)
    key = check_key(key)
    mean, log_std = model.encode(x)
    z = D.sample_diag_gaussian(key, mean, log_std)
    decoded = model.decode(z)
    recon = model.log_likelihood(x, decoded)
    kl_per_dim = D.kl_to_standard_normal(mean, log_std)
    kl = jnp.sum(kl_per_dim, axis=-1)
    if free_bits > 0:
        kl_term = jnp.sum(jnp.maximum(free_bits, jnp.mean(kl_per_dim, axis=0)))
        loss = beta * kl_term - jnp.mean(recon)
    else:
        loss = jnp.mean(beta * kl - recon)
    std = model.decoder_std(decoded) if hasattr(model, "decoder_std") else None
    metrics = {
        "loss": loss,
        "recon": jnp.mean(recon),
        "kl": jnp.mean(kl),
        "elbo": jnp.mean(recon - kl),
        "encoder_std": jnp.mean(jnp.exp(log_std)),
    }
    if std is not None:
        metrics["decoder_std"] = jnp.mean(std)
    return loss, metrics


def autoencoder_loss(model: nnx.Module, x: ArrayLike,
                     key: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Binary cross-entropy of a deterministic autoencoder, summed over pixels, mean over the batch.

    ``key`` is accepted (and ignored) so every loss has the signature ``loss(model, x, key)``.
    Returns ``(loss, {"loss": loss, "recon": -loss})`` in nats per image.
    """
    check_module(model)
    x = as_float_images(check_images(x, "x", image_shape=getattr(getattr(model, "config", None), "image_shape", None)))
    logits = model(x)
    recon = jnp.sum(D.bernoulli_log_prob(x, logits).reshape(x.shape[0], -1), axis=-1)
    loss = -jnp.mean(recon)
    return loss, {"loss": loss, "recon": -loss}


@nnx.jit(static_argnames=("num_samples", "log_likelihood"))
def _log_weights_chunk(model, x, key, mean, log_std, num_samples, log_likelihood=None):
    z = D.sample_diag_gaussian(key, mean, log_std, num_samples=num_samples)  # (K, B, z_dim)
    k, b = z.shape[:2]
    x_rep = jnp.broadcast_to(x, (k, *x.shape)).reshape(k * b, *x.shape[1:])
    decoded = model.decode(z.reshape(k * b, -1))
    log_px_z = (model.log_likelihood(x_rep, decoded) if log_likelihood is None
                else log_likelihood(x_rep, decoded)).reshape(k, b)
    log_pz = jnp.sum(D.standard_normal_log_prob(z), axis=-1)
    log_qz = jnp.sum(D.gaussian_log_prob(z, mean, log_std), axis=-1)
    return log_px_z + log_pz - log_qz


def log_importance_weights(model: nnx.Module, x: ArrayLike, key: jax.Array, num_samples: int, *,
                           chunk_size: int = 64, log_likelihood: Callable | None = None) -> jax.Array:
    r"""Log importance weights :math:`\log w_k = \log p(x\mid z_k) + \log p(z_k) - \log q(z_k\mid x)`.

    :math:`z_k \sim q(z\mid x)`, drawn in chunks of ``chunk_size`` samples to bound memory (the draws
    depend only on ``key``, ``num_samples`` and ``chunk_size``, so two calls that differ only in
    ``log_likelihood`` use the same :math:`z_k`).

    ``log_likelihood(x, decoded) -> (batch,)`` replaces ``model.log_likelihood`` for
    :math:`\log p(x\mid z_k)` (``decoded`` is what ``model.decode`` returned); it must be a hashable
    function that JAX can trace, e.g. the exact bin probabilities of
    :func:`vae_book.evaluation.dataset_log_weights` with ``discretized=True``.

    Returns:
        Array (num_samples, batch) in nats.
    """
    check_module(model, methods=_VAE_METHODS)
    key = check_key(key)
    num_samples = check_positive_int(num_samples, "num_samples")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if log_likelihood is not None:
        check_callable(log_likelihood, "log_likelihood")
    mean, log_std = model.encode(x)
    starts = range(0, num_samples, chunk_size)
    # One chunk uses `key` itself, so num_samples=1 draws the same z as elbo(..., key).
    keys = [key] if len(starts) == 1 else list(jax.random.split(key, len(starts)))
    out = []
    for start, k_i in zip(starts, keys):
        k = min(chunk_size, num_samples - start)
        out.append(_log_weights_chunk(model, x, k_i, mean, log_std, k, log_likelihood))
    return jnp.concatenate(out, axis=0)


def iwae_bound(model: nnx.Module, x: ArrayLike, key: jax.Array, num_samples: int, *,
               chunk_size: int = 64) -> jax.Array:
    r"""Importance-weighted bound (Burda et al. 2016), per example, in nats.

    .. math::
        \mathcal L_K(x) = \log \frac1K \sum_{k=1}^K \frac{p(x\mid z_k)\,p(z_k)}{q(z_k\mid x)}
        \;\le\; \log p(x), \qquad z_k\sim q(z\mid x),

    computed with a stable log-sum-exp. :math:`\mathbb E[\mathcal L_K]` is non-decreasing in ``K`` and
    tends to :math:`\log p(x)`; ``K = 1`` is the single-sample ELBO estimate.

    Returns:
        Array (batch,) of bound estimates (nats per example).
    """
    log_w = log_importance_weights(model, x, key, num_samples, chunk_size=chunk_size)
    return jax.scipy.special.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])


_VAE_METHODS = ("encode", "decode", "log_likelihood")


def _check_estimator_args(f, mean, log_std):
    """The checks both gradient estimators share: a scalar-valued ``f`` of one point, (d,) parameters."""
    check_callable(f, "f")
    mean, log_std = _check_gaussian_params(mean, log_std)
    try:
        out = jax.eval_shape(f, jax.ShapeDtypeStruct(mean.shape, mean.dtype))
    except Exception as e:  # noqa: BLE001 - any failure to trace f on one point is the caller's f
        raise ValueError(f"`f` must map one point z of shape {tuple(mean.shape)} to a scalar, "
                         f"got a function that fails on it: {type(e).__name__}: {e}"[:500]) from None
    if getattr(out, "shape", None) != ():
        raise ValueError(f"`f` must map one point z of shape {tuple(mean.shape)} to a scalar, "
                         f"got a function returning {getattr(out, 'shape', type(out).__name__)}.")
    return mean, log_std


def _check_gaussian_params(mean, log_std):
    mean = check_array(mean, "mean", ndim=1)
    log_std = check_array(log_std, "log_std", ndim=1)
    if mean.shape != log_std.shape:
        raise ValueError(
            f"`mean` and `log_std` must have the same shape (d,), got {tuple(mean.shape)} and {tuple(log_std.shape)}."
        )
    return mean, log_std


def pathwise_grad(f: Callable[[jax.Array], jax.Array], key: jax.Array, mean: ArrayLike, log_std: ArrayLike,
                  num_samples: int, *, per_sample: bool = False) -> tuple[jax.Array, jax.Array]:
    r"""Pathwise (reparameterization) estimate of
    :math:`\nabla_{\mu,\log\sigma}\,\mathbb E_{z\sim\mathcal N(\mu,\sigma^2)}[f(z)]`.

    With :math:`z=\mu+\sigma\varepsilon`: :math:`\nabla_\mu f(z) = f'(z)` and
    :math:`\nabla_{\log\sigma} f(z) = f'(z)\,\sigma\varepsilon`. Needs a differentiable ``f``.

    Args:
        f: maps one point ``z`` of shape (d,) to a scalar (JAX-differentiable).
        key: PRNG key. mean, log_std: shape (d,). num_samples: Monte Carlo samples.
        per_sample: return the ``num_samples`` single-sample estimates instead of their mean.

    Returns:
        ``(grad_mean, grad_log_std)``, each (d,) — or (num_samples, d) with ``per_sample=True``.
    """
    mean, log_std = _check_estimator_args(f, mean, log_std)
    num_samples = check_positive_int(num_samples, "num_samples")
    eps = jax.random.normal(check_key(key), (num_samples, mean.shape[0]), dtype=mean.dtype)

    def one(e):
        return jax.grad(lambda m, s: f(m + jnp.exp(s) * e), argnums=(0, 1))(mean, log_std)

    g_mean, g_log_std = jax.vmap(one)(eps)
    if per_sample:
        return g_mean, g_log_std
    return g_mean.mean(0), g_log_std.mean(0)


def score_function_grad(f: Callable[[jax.Array], jax.Array], key: jax.Array, mean: ArrayLike,
                        log_std: ArrayLike, num_samples: int, *, baseline: float = 0.0,
                        per_sample: bool = False) -> tuple[jax.Array, jax.Array]:
    r"""Score-function (REINFORCE) estimate of
    :math:`\nabla_{\mu,\log\sigma}\,\mathbb E_{z\sim\mathcal N(\mu,\sigma^2)}[f(z)]`.

    .. math::
        \nabla \mathbb E_q[f(z)] = \mathbb E_q\big[(f(z) - b)\,\nabla\log q(z)\big],\quad
        \nabla_\mu \log q = \frac{z-\mu}{\sigma^2},\quad
        \nabla_{\log\sigma}\log q = \frac{(z-\mu)^2}{\sigma^2} - 1 .

    ``f`` need not be differentiable. A constant ``baseline`` b leaves the estimator unbiased
    (since :math:`\mathbb E_q[\nabla\log q]=0`) and can reduce its variance.

    Returns:
        ``(grad_mean, grad_log_std)``, each (d,) — or (num_samples, d) with ``per_sample=True``.
    """
    mean, log_std = _check_estimator_args(f, mean, log_std)
    num_samples = check_positive_int(num_samples, "num_samples")
    if is_concrete(baseline) or getattr(baseline, "shape", None) != ():
        baseline = check_number(baseline, "baseline")
    eps = jax.random.normal(check_key(key), (num_samples, mean.shape[0]), dtype=mean.dtype)
    z = mean + jnp.exp(log_std) * eps
    fz = jax.vmap(f)(z)[:, None] - baseline  # (K, 1)
    g_mean = fz * eps * jnp.exp(-log_std)  # (z - mu) / sigma^2 = eps / sigma
    g_log_std = fz * (jnp.square(eps) - 1.0)
    if per_sample:
        return g_mean, g_log_std
    return g_mean.mean(0), g_log_std.mean(0)

