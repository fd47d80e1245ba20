r"""Log-likelihoods, KL divergences and reparameterized sampling for the book's distributions.

One parameterization everywhere: a diagonal Gaussian is given by its ``mean`` and ``log_std`` =
:math:`\log\sigma` (never the log-variance :math:`\log\sigma^2`). Every function is elementwise and
returns values in **nats**; summing over pixels or latent dimensions is the caller's job (see
:mod:`vae_book.objectives`).

Everything is computed in at least float32: a bfloat16 / float16 argument (a mixed-precision model's
output) is cast to float32 first, so a log-density or a KL never rounds in 8 mantissa bits.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from vae_book._checks import check_array, check_broadcastable, check_key, check_positive_int

__all__ = [
    "LOG_2PI",
    "gaussian_log_prob",
    "bernoulli_log_prob",
    "kl_to_standard_normal",
    "kl_diag_gaussians",
    "sample_diag_gaussian",
    "standard_normal_log_prob",
]

#: :math:`\log 2\pi`; the Gaussian log-density uses **half** of it per dimension.
LOG_2PI = math.log(2.0 * math.pi)

#: dtypes narrower than float32, cast up before any arithmetic
_NARROW = (jnp.bfloat16, jnp.float16)


def _f32(x):
    """``x`` cast to float32 if its dtype is narrower (bfloat16, float16); otherwise ``x`` unchanged."""
    return x.astype(jnp.float32) if x.dtype in _NARROW else x


def gaussian_log_prob(x: ArrayLike, mean: ArrayLike, log_std: ArrayLike) -> jax.Array:
    r"""Elementwise log-density of a Gaussian, :math:`\log \mathcal N(x;\mu,\sigma^2)`, in nats.

    .. math::
        \log \mathcal N(x;\mu,\sigma^2) = -\tfrac12\log 2\pi - \log\sigma - \frac{(x-\mu)^2}{2\sigma^2}

    Args:
        x, mean, log_std: broadcast-compatible float arrays; ``log_std`` is :math:`\log\sigma`.

    Returns:
        Array of the broadcast shape: the log-density of each element (nats).
    """
    x = _f32(check_array(x, "x"))
    mean = _f32(check_array(mean, "mean"))
    log_std = _f32(check_array(log_std, "log_std"))
    check_broadcastable({"x": x, "mean": mean, "log_std": log_std})
    z = (x - mean) * jnp.exp(-log_std)
    return -0.5 * LOG_2PI - log_std - 0.5 * jnp.square(z)


def standard_normal_log_prob(z: ArrayLike) -> jax.Array:
    r"""Elementwise :math:`\log\mathcal N(z;0,1) = -\tfrac12\log2\pi - \tfrac12 z^2` (nats)."""
    z = _f32(check_array(z, "z"))
    return -0.5 * LOG_2PI - 0.5 * jnp.square(z)


def bernoulli_log_prob(x: ArrayLike, logits: ArrayLike) -> jax.Array:
    r"""Elementwise Bernoulli log-probability :math:`x\log p + (1-x)\log(1-p)` with :math:`p=\mathrm{sigmoid}(\ell)`.

    Computed from the logits as :math:`x\ell - \mathrm{softplus}(\ell)`, which is exact and stable for
    any :math:`|\ell|` (no :math:`\log 0`). It is a log-*likelihood* only for binary ``x``; for grey
    levels in (0, 1) the same expression is a (negative) cross-entropy, not a normalised density.

    Args:
        x: targets in [0, 1] (checked when concrete: values outside, or NaN, raise a ``ValueError``).
            Grey levels are valid input, see above. logits: :math:`\ell = \log\frac{p}{1-p}`, broadcast-compatible
            with ``x``.

    Returns:
        Array of the broadcast shape (nats).
    """
    x = _f32(check_array(x, "x", value_range=(0.0, 1.0)))
    logits = _f32(check_array(logits, "logits"))
    check_broadcastable({"x": x, "logits": logits})
    return x * logits - jax.nn.softplus(logits)


def kl_to_standard_normal(mean: ArrayLike, log_std: ArrayLike) -> jax.Array:
    r"""Elementwise :math:`\mathrm{KL}\big(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0,1)\big)` in nats.

    .. math::
        \mathrm{KL} = \tfrac12\left(\sigma^2 + \mu^2 - 1 - 2\log\sigma\right)

    (the same as :math:`\tfrac12(\sigma^2+\mu^2-1-\log\sigma^2)`: with ``log_std`` the log-variance
    is ``2 * log_std``). Sum over latent dimensions for the KL of a diagonal Gaussian.
    """
    mean = _f32(check_array(mean, "mean"))
    log_std = _f32(check_array(log_std, "log_std"))
    check_broadcastable({"mean": mean, "log_std": log_std})
    return 0.5 * (jnp.exp(2.0 * log_std) + jnp.square(mean) - 1.0 - 2.0 * log_std)


def kl_diag_gaussians(mean_q: ArrayLike, log_std_q: ArrayLike, mean_p: ArrayLike,
                      log_std_p: ArrayLike) -> jax.Array:
    r"""Elementwise :math:`\mathrm{KL}\big(\mathcal N(\mu_q,\sigma_q^2)\,\|\,\mathcal N(\mu_p,\sigma_p^2)\big)` in nats.

    .. math::
        \mathrm{KL} = \log\frac{\sigma_p}{\sigma_q} + \frac{\sigma_q^2 + (\mu_q-\mu_p)^2}{2\sigma_p^2} - \frac12

    Zero exactly when the two Gaussians are equal; with :math:`\mu_p=0,\sigma_p=1` it reduces to
    :func:`kl_to_standard_normal`.
    """
    args = {
        "mean_q": _f32(check_array(mean_q, "mean_q")),
        "log_std_q": _f32(check_array(log_std_q, "log_std_q")),
        "mean_p": _f32(check_array(mean_p, "mean_p")),
        "log_std_p": _f32(check_array(log_std_p, "log_std_p")),
    }
    check_broadcastable(args)
    mean_q, log_std_q, mean_p, log_std_p = args.values()
    var_ratio = jnp.exp(2.0 * (log_std_q - log_std_p))
    mahalanobis = jnp.square((mean_q - mean_p) * jnp.exp(-log_std_p))
    return (log_std_p - log_std_q) + 0.5 * (var_ratio + mahalanobis) - 0.5


def sample_diag_gaussian(key: jax.Array, mean: ArrayLike, log_std: ArrayLike,
                         num_samples: int | None = None) -> jax.Array:
    r"""Reparameterized sample :math:`z = \mu + \sigma\odot\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`.

    Gradients flow to ``mean`` and ``log_std`` through the deterministic map (the pathwise /
    reparameterization trick); the randomness lives only in ``key``.

    Args:
        key: a JAX PRNG key.
        mean, log_std: arrays of the same shape ``S`` (e.g. ``(batch, z_dim)``).
        num_samples: ``None`` for one sample of shape ``S``; an int ``K`` for ``K`` independent samples
            stacked on a new leading axis, shape ``(K, *S)``.
    """
    key = check_key(key)
    mean = _f32(check_array(mean, "mean"))
    log_std = _f32(check_array(log_std, "log_std"))
    if mean.shape != log_std.shape:
        raise ValueError(
            f"`mean` and `log_std` must have the same shape, got {tuple(mean.shape)} and {tuple(log_std.shape)}."
        )
    shape = mean.shape
    if num_samples is not None:
        shape = (check_positive_int(num_samples, "num_samples"), *shape)
    eps = jax.random.normal(key, shape, dtype=mean.dtype)
    return mean + jnp.exp(log_std) * eps
