r"""Reference math and Monte-Carlo studies of chapters 4 (the ELBO) and 5 (the reparameterization trick).

Two groups, both returning plain arrays (the figures that draw them are in
:mod:`vae_book.companion.estimator_figures`):

* **Gaussian reference results** (NumPy, float64) that the chapters check the library against:
  test functions with a closed-form expectation under :math:`\mathcal N(\mu,\sigma^2)`, quadrature and
  finite differences (chapter 5), the KL and :math:`\chi^2` divergences between full-covariance
  Gaussians (chapter 4), and the closed-form variances of the score-function and pathwise gradient
  estimators for :math:`f(z)=\sum_j z_j^2` (chapter 5).
* **Monte Carlo studies**: repeated importance-weighted bounds (:func:`iwae_repeats`, chapter 4) and
  the empirical variance of a gradient estimator with its standard error (:func:`estimator_variance`,
  chapter 5).

Parameterization as everywhere in the book: a Gaussian is given by ``mean`` and ``log_std`` =
:math:`\log\sigma`; the closed forms take ``std`` = :math:`\sigma` where they say so. Values are nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike
from scipy import integrate

from vae_book import evaluation, objectives
from vae_book._checks import check_array, check_key, check_positive_int

__all__ = [
    "GaussianTestFunction",
    "square",
    "sine",
    "exponential",
    "gaussian_expectation_quad",
    "finite_difference_grad",
    "gaussian_kl",
    "gaussian_chi2",
    "iwae_repeats",
    "VarianceEstimate",
    "estimator_variance",
    "square_grad_variance",
]


# --------------------------------------------------------------------------------------------------
# Test functions with a known Gaussian expectation
# --------------------------------------------------------------------------------------------------


class GaussianTestFunction(NamedTuple):
    r"""A function :math:`f(z)=\sum_j g(z_j)` whose expectation under
    :math:`\mathcal N(\mu,\operatorname{diag}\sigma^2)` is known.

    ``f`` maps one point z (d,) to a scalar (JAX, differentiable); ``g_np`` is the elementwise ``g`` in
    NumPy (for quadrature). ``expectation(mean, std)`` returns :math:`\mathbb E[f]`; ``grad_mean`` and
    ``grad_log_std`` return its exact gradients with respect to :math:`\mu` and :math:`\log\sigma`,
    arrays of shape (d,). ``mean`` and ``std`` are array-likes of shape (d,).
    """

    name: str
    f: Callable
    g_np: Callable
    expectation: Callable
    grad_mean: Callable
    grad_log_std: Callable


def _np(a):
    return np.asarray(a, dtype=np.float64)


def square() -> GaussianTestFunction:
    r""":math:`f(z)=\sum_j z_j^2`: :math:`\mathbb E f=\sum_j \mu_j^2+\sigma_j^2`, gradients :math:`2\mu` and
    :math:`2\sigma^2`."""
    return GaussianTestFunction(
        name="z^2",
        f=lambda z: jnp.sum(jnp.square(z)),
        g_np=np.square,
        expectation=lambda m, s: float(np.sum(_np(m) ** 2 + _np(s) ** 2)),
        grad_mean=lambda m, s: 2 * _np(m) + 0 * _np(s),
        grad_log_std=lambda m, s: 2 * _np(s) ** 2 + 0 * _np(m),
    )


def sine() -> GaussianTestFunction:
    r""":math:`f(z)=\sum_j\sin z_j`: :math:`\mathbb E\sin z=\sin\mu\,e^{-\sigma^2/2}` (the imaginary part of
    :math:`\mathbb E e^{iz}`)."""
    def e(m, s):
        return np.sin(_np(m)) * np.exp(-0.5 * _np(s) ** 2)

    return GaussianTestFunction(
        name="sin z",
        f=lambda z: jnp.sum(jnp.sin(z)),
        g_np=np.sin,
        expectation=lambda m, s: float(np.sum(e(m, s))),
        grad_mean=lambda m, s: np.cos(_np(m)) * np.exp(-0.5 * _np(s) ** 2),
        grad_log_std=lambda m, s: -(_np(s) ** 2) * e(m, s),
    )


def exponential(a: float) -> GaussianTestFunction:
    r""":math:`f(z)=\sum_j e^{a z_j}`: :math:`\mathbb E e^{az}=e^{a\mu+a^2\sigma^2/2}` (the moment-generating
    function)."""
    a = float(a)

    def e(m, s):
        return np.exp(a * _np(m) + 0.5 * a**2 * _np(s) ** 2)

    return GaussianTestFunction(
        name=f"exp({a:g} z)",
        f=lambda z: jnp.sum(jnp.exp(a * z)),
        g_np=lambda z: np.exp(a * z),
        expectation=lambda m, s: float(np.sum(e(m, s))),
        grad_mean=lambda m, s: a * e(m, s),
        grad_log_std=lambda m, s: a**2 * _np(s) ** 2 * e(m, s),
    )


def gaussian_expectation_quad(g_np: Callable, mean: float, std: float) -> float:
    r""":math:`\mathbb E_{z\sim\mathcal N(\mu,\sigma^2)}[g(z)]` for scalar :math:`\mu,\sigma` by adaptive
    quadrature (scipy).

    Integrates :math:`g(\mu+\sigma t)\,\varphi(t)` over :math:`t\in[-12, 12]` (the rest of the mass is
    below :math:`10^{-32}`); an independent check of closed-form expectations.
    """
    mean, std = float(mean), float(std)
    if not std > 0:
        raise ValueError(f"`std` must be positive, got {std!r}.")

    def integrand(t):
        return float(g_np(mean + std * t)) * math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)

    value, _ = integrate.quad(integrand, -12.0, 12.0, epsabs=1e-13, epsrel=1e-12, limit=200)
    return value


def finite_difference_grad(fun: Callable[[float, float], float], mean: float, std: float,
                           h: float = 1e-4) -> tuple[float, float]:
    r"""Central differences of a scalar ``fun(mean, std)`` with respect to :math:`\mu` and :math:`\log\sigma`.

    Returns ``(d/dmean, d/dlog_std)``; the error is :math:`O(h^2)` plus rounding of ``fun``'s value.
    """
    mean, std = float(mean), float(std)
    d_mean = (fun(mean + h, std) - fun(mean - h, std)) / (2 * h)
    d_log_std = (fun(mean, std * math.exp(h)) - fun(mean, std * math.exp(-h))) / (2 * h)
    return d_mean, d_log_std


# --------------------------------------------------------------------------------------------------
# Divergences between full-covariance Gaussians (NumPy float64 references)
# --------------------------------------------------------------------------------------------------


def _check_gaussian(mean, cov, name):
    mean = _np(mean)
    cov = _np(cov)
    if mean.ndim < 1 or cov.shape[-2:] != (mean.shape[-1],) * 2:
        raise ValueError(f"`cov_{name}` must have shape (..., k, k) matching `mean_{name}` (..., k), "
                         f"got {cov.shape} and {mean.shape}.")
    return mean, cov


def gaussian_kl(mean_q: ArrayLike, cov_q: ArrayLike, mean_p: ArrayLike, cov_p: ArrayLike) -> np.ndarray | float:
    r""":math:`\mathrm{KL}\big(\mathcal N(\mu_q,\Sigma_q)\,\|\,\mathcal N(\mu_p,\Sigma_p)\big)` in float64, nats.

    .. math::
        \tfrac12\Big[\operatorname{tr}(\Sigma_p^{-1}\Sigma_q) + (\mu_p-\mu_q)^\top\Sigma_p^{-1}(\mu_p-\mu_q)
        - k + \log\det\Sigma_p - \log\det\Sigma_q\Big]

    Means (..., k) and covariances (..., k, k) broadcast over leading axes; returns shape (...).
    """
    mean_q, cov_q = _check_gaussian(mean_q, cov_q, "q")
    mean_p, cov_p = _check_gaussian(mean_p, cov_p, "p")
    k = mean_q.shape[-1]
    prec_p = np.linalg.inv(cov_p)
    diff = mean_p - mean_q
    trace = np.trace(prec_p @ cov_q, axis1=-2, axis2=-1)
    maha = np.einsum("...i,...ij,...j->...", diff, prec_p, diff)
    logdet = np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1]
    return 0.5 * (trace + maha - k + logdet)


def gaussian_chi2(mean_p: ArrayLike, cov_p: ArrayLike, mean_q: ArrayLike, cov_q: ArrayLike) -> float:
    r""":math:`\chi^2(p\,\|\,q) = \int p(z)^2/q(z)\,dz - 1` for Gaussians p and q (float64).

    It is the variance of the importance weight :math:`p/q` under q. With precisions
    :math:`P=\Sigma_p^{-1}`, :math:`Q=\Sigma_q^{-1}`, :math:`A=2P-Q`, :math:`h=2P\mu_p-Q\mu_q`:

    .. math::
        \log\!\int\!\frac{p^2}{q} = -\log\det\Sigma_p + \tfrac12\log\det\Sigma_q - \tfrac12\log\det A
        + \tfrac12 h^\top A^{-1}h - \mu_p^\top P\mu_p + \tfrac12\mu_q^\top Q\mu_q .

    Finite only if A is positive definite (q not much narrower than p); otherwise raises ValueError.
    """
    mean_p, cov_p = _check_gaussian(mean_p, cov_p, "p")
    mean_q, cov_q = _check_gaussian(mean_q, cov_q, "q")
    P, Q = np.linalg.inv(cov_p), np.linalg.inv(cov_q)
    A = 2 * P - Q
    if np.min(np.linalg.eigvalsh(0.5 * (A + A.T))) <= 0:
        raise ValueError("chi^2(p || q) is infinite: 2 Sigma_p^-1 - Sigma_q^-1 is not positive definite "
                         "(q is too narrow compared with p).")
    h = 2 * P @ mean_p - Q @ mean_q
    log_int = (-np.linalg.slogdet(cov_p)[1] + 0.5 * np.linalg.slogdet(cov_q)[1]
               - 0.5 * np.linalg.slogdet(A)[1] + 0.5 * h @ np.linalg.solve(A, h)
               - mean_p @ P @ mean_p + 0.5 * mean_q @ Q @ mean_q)
    return float(np.expm1(log_int))


# --------------------------------------------------------------------------------------------------
# Monte Carlo studies
# --------------------------------------------------------------------------------------------------


def iwae_repeats(model: nnx.Module, x: ArrayLike, key: jax.Array, ks: Sequence[int] | np.ndarray, repeats: int, *,
                 chunk_size: int = 256) -> list[np.ndarray]:
    r"""Independent estimates of the importance-weighted bound :math:`\mathcal L_K(x)` for one input, for several K.

    Draws :math:`K_{\max}=\max(ks)` log importance weights per repeat with
    :func:`vae_book.objectives.log_importance_weights` (one compiled shape for every K) and splits them
    into :math:`K_{\max}/K` disjoint groups of K (:func:`vae_book.evaluation.group_estimates`); each
    group gives one estimate

    .. math:: \mathcal L_K = \log\frac1K\sum_{k=1}^K w_k \quad(\text{a stable log-sum-exp}),

    so K gets ``repeats * K_max / K`` independent estimates. The group of all :math:`K_{\max}` weights is
    exactly :func:`vae_book.objectives.iwae_bound` with the same key.

    Args:
        model: a VAE. x: one input, shape (D,) or (1, D). key: PRNG key.
        ks: sample counts K, each dividing ``max(ks)`` (e.g. powers of two). repeats: runs of K_max draws.

    Returns:
        list of float64 arrays, one per K, of shape (repeats * K_max / K,), nats.
    """
    key = check_key(key)
    repeats = check_positive_int(repeats, "repeats")
    ks = [check_positive_int(int(k), "ks[i]") for k in ks]
    k_max = max(ks)
    if any(k_max % k for k in ks):
        raise ValueError(f"every K in `ks` must divide max(ks) = {k_max}, got {ks}.")
    x = jnp.asarray(x).reshape(1, -1)
    xs = jnp.broadcast_to(x, (repeats, x.shape[1]))
    log_w = objectives.log_importance_weights(model, xs, key, k_max, chunk_size=chunk_size)  # (K_max, repeats)
    return [evaluation.group_estimates(log_w, k).ravel() for k in ks]


class VarianceEstimate(NamedTuple):
    """Empirical variance of a gradient estimator and its standard error, each (2, d).

    Row 0 is the gradient with respect to ``mean``, row 1 with respect to ``log_std``.
    """

    variance: np.ndarray
    stderr: np.ndarray


def estimator_variance(kind: str, f: Callable[[jax.Array], jax.Array], key: jax.Array, mean: ArrayLike,
                       log_std: ArrayLike, *, num_samples: int, repeats: int,
                       baseline: float = 0.0) -> VarianceEstimate:
    r"""Variance of the ``num_samples``-sample gradient estimate over ``repeats`` independent runs.

    ``kind`` is ``"pathwise"`` (:func:`vae_book.objectives.pathwise_grad`) or ``"score"``
    (:func:`vae_book.objectives.score_function_grad`, with constant ``baseline``). The standard error
    of a sample variance :math:`s^2` over R runs is :math:`\sqrt{(m_4 - s^4)/R}` (:math:`m_4` the fourth
    central moment), used to judge agreement with a closed form.

    Returns:
        :class:`VarianceEstimate` with arrays (2, d): rows (d/dmean, d/dlog_std).
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    repeats = check_positive_int(repeats, "repeats")
    mean = check_array(jnp.asarray(mean), "mean", ndim=1)
    log_std = check_array(jnp.asarray(log_std), "log_std", ndim=1)
    n = num_samples * repeats
    if kind == "pathwise":
        g = objectives.pathwise_grad(f, key, mean, log_std, n, per_sample=True)
    elif kind == "score":
        g = objectives.score_function_grad(f, key, mean, log_std, n, baseline=baseline, per_sample=True)
    else:
        raise ValueError(f"`kind` must be 'pathwise' or 'score', got {kind!r}.")
    est = np.stack([np.asarray(a, np.float64).reshape(repeats, num_samples, -1).mean(1) for a in g])
    centred = est - est.mean(axis=1, keepdims=True)  # (2, R, d)
    var = np.sum(centred**2, axis=1) / max(repeats - 1, 1)
    m4 = np.mean(centred**4, axis=1)
    return VarianceEstimate(var, np.sqrt(np.maximum(m4 - var**2, 0.0) / repeats))


def square_grad_variance(kind: str, mean: ArrayLike, std: ArrayLike, baseline: float = 0.0) -> np.ndarray:
    r"""Closed-form variance of one-sample gradient estimates for :math:`f(z)=\sum_j z_j^2`, shape (2, d).

    With :math:`c=\mathbb E f - b` and :math:`V_j=\sum_{i\ne j}(4\mu_i^2\sigma_i^2+2\sigma_i^4)` (the
    variance the other coordinates add to :math:`f`):

    * pathwise: :math:`\operatorname{Var}\partial_{\mu_j}=4\sigma_j^2`,
      :math:`\operatorname{Var}\partial_{\log\sigma_j}=4\mu_j^2\sigma_j^2+8\sigma_j^4`;
    * score function with baseline b:
      :math:`\operatorname{Var}\partial_{\mu_j}=\frac{c^2+V_j}{\sigma_j^2}+4c+8\mu_j^2+10\sigma_j^2`,
      :math:`\operatorname{Var}\partial_{\log\sigma_j}=2(c^2+V_j)+16c\sigma_j^2+40\mu_j^2\sigma_j^2+56\sigma_j^4`.

    Row 0 is d/dmean, row 1 d/dlog_std. ``mean``/``std`` are (d,) (or scalars, treated as d = 1).
    """
    m, s = np.atleast_1d(_np(mean)), np.atleast_1d(_np(std))
    m, s = np.broadcast_arrays(m, s)
    if kind == "pathwise":
        return np.stack([4 * s**2, 4 * m**2 * s**2 + 8 * s**4])
    if kind != "score":
        raise ValueError(f"`kind` must be 'pathwise' or 'score', got {kind!r}.")
    c = np.sum(m**2 + s**2) - float(baseline)
    var_f = 4 * m**2 * s**2 + 2 * s**4
    v = np.sum(var_f) - var_f
    var_mean = (c**2 + v) / s**2 + 4 * c + 8 * m**2 + 10 * s**2
    var_log_std = 2 * (c**2 + v) + 16 * c * s**2 + 40 * m**2 * s**2 + 56 * s**4
    return np.stack([var_mean, var_log_std])
