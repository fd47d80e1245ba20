r"""Computations and figures for the chapters on the ELBO and the reparameterization trick.

Three groups:

* **Gaussian reference results** (NumPy, float64) that the chapters check the library against:
  test functions with a closed-form expectation under :math:`\mathcal N(\mu,\sigma^2)`, quadrature and
  finite differences, the KL and :math:`\chi^2` divergences between full-covariance Gaussians, and the
  closed-form variances of the score-function and pathwise gradient estimators for :math:`f(z)=\sum_j z_j^2`.
* **Monte Carlo studies**: repeated importance-weighted bounds (:func:`iwae_repeats`) and the empirical
  variance of a gradient estimator with its standard error (:func:`estimator_variance`).
* **Figures**: the ELBO-gap sweep, the IWAE bound against K, the aggregate posterior, and the
  computational graph of the reparameterization trick (:func:`draw_reparameterization_graph`).

Parameterization as everywhere in the book: a Gaussian is given by ``mean`` and ``log_std`` =
:math:`\log\sigma`; the closed forms take ``std`` = :math:`\sigma` where they say so. Values are nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch, Patch
from scipy import integrate, special

from vae_book import objectives
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
    "plot_variance",
    "plot_elbo_sweep",
    "plot_iwae",
    "plot_aggregate_posterior",
    "draw_reparameterization_graph",
]


# --------------------------------------------------------------------------------------------------
# Test functions with a known Gaussian expectation
# --------------------------------------------------------------------------------------------------


class GaussianTestFunction(NamedTuple):
    r"""A function :math:`f(z)=\sum_j g(z_j)` whose expectation under :math:`\mathcal N(\mu,\operatorname{diag}\sigma^2)` is known.

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
    r""":math:`f(z)=\sum_j z_j^2`: :math:`\mathbb E f=\sum_j \mu_j^2+\sigma_j^2`, gradients :math:`2\mu` and :math:`2\sigma^2`."""
    return GaussianTestFunction(
        name="z^2",
        f=lambda z: jnp.sum(jnp.square(z)),
        g_np=np.square,
        expectation=lambda m, s: float(np.sum(_np(m) ** 2 + _np(s) ** 2)),
        grad_mean=lambda m, s: 2 * _np(m) + 0 * _np(s),
        grad_log_std=lambda m, s: 2 * _np(s) ** 2 + 0 * _np(m),
    )


def sine() -> GaussianTestFunction:
    r""":math:`f(z)=\sum_j\sin z_j`: :math:`\mathbb E\sin z=\sin\mu\,e^{-\sigma^2/2}` (the imaginary part of :math:`\mathbb E e^{iz}`)."""
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
    r""":math:`f(z)=\sum_j e^{a z_j}`: :math:`\mathbb E e^{az}=e^{a\mu+a^2\sigma^2/2}` (the moment-generating function)."""
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
    r""":math:`\mathbb E_{z\sim\mathcal N(\mu,\sigma^2)}[g(z)]` for scalar :math:`\mu,\sigma` by adaptive quadrature (scipy).

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


def finite_difference_grad(fun: Callable, mean: float, std: float, h: float = 1e-4):
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


def gaussian_kl(mean_q, cov_q, mean_p, cov_p):
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


def gaussian_chi2(mean_p, cov_p, mean_q, cov_q) -> float:
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


def iwae_repeats(model, x, key, ks, repeats: int, *, chunk_size: int = 256) -> list[np.ndarray]:
    r"""Independent estimates of the importance-weighted bound :math:`\mathcal L_K(x)` for one input, for several K.

    Draws :math:`K_{\max}=\max(ks)` log importance weights per repeat with
    :func:`vae_book.objectives.log_importance_weights` (one compiled shape for every K) and splits them
    into :math:`K_{\max}/K` disjoint groups of K; each group gives one estimate

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
    log_w = np.asarray(objectives.log_importance_weights(model, xs, key, k_max, chunk_size=chunk_size),
                       np.float64)  # (K_max, repeats)
    out = []
    for k in ks:
        groups = log_w.reshape(k_max // k, k, repeats)
        lse = special.logsumexp(groups, axis=1)
        out.append((lse - math.log(k)).ravel())
    return out


class VarianceEstimate(NamedTuple):
    """Empirical variance of a gradient estimator and its standard error, each (2, d).

    Row 0 is the gradient with respect to ``mean``, row 1 with respect to ``log_std``.
    """

    variance: np.ndarray
    stderr: np.ndarray


def estimator_variance(kind: str, f, key, mean, log_std, *, num_samples: int, repeats: int,
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


def square_grad_variance(kind: str, mean, std, baseline: float = 0.0) -> np.ndarray:
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


def plot_variance(ax, x, curves, *, xlabel: str, ylabel: str = "variance", title: str | None = None):
    r"""Gradient-estimator variances on log-log axes: closed form as lines, Monte Carlo as points.

    ``curves`` is a sequence of ``(label, color, empirical, stderr, closed_form)`` with arrays of the
    length of ``x``; points carry :math:`\pm 2` standard-error bars. Returns the Axes.
    """
    for label, color, emp, se, theory in curves:
        ax.plot(x, theory, color=color, lw=1.6, label=label)
        ax.errorbar(x, emp, yerr=2 * np.asarray(se), fmt="o", color=color, ms=4, capsize=2, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="gray", lw=1.6), Line2D([], [], color="gray", marker="o", ls="", ms=4)]
    labels += ["closed form", "Monte Carlo (±2 s.e.)"]
    ax.legend(handles, labels, fontsize=8)
    return ax


# --------------------------------------------------------------------------------------------------
# Figures for the ELBO chapter
# --------------------------------------------------------------------------------------------------


def plot_elbo_sweep(ax, values, elbo, log_px, *, xlabel: str, best: float | None = None,
                    title: str | None = None):
    r"""ELBO against one variational parameter, with :math:`\log p(x)` as a line and the gap (the KL) shaded.

    ``values`` and ``elbo`` are (n,); ``log_px`` a scalar; ``best`` marks the parameter value of the
    exact posterior with a vertical line. Returns the Axes.
    """
    values, elbo = np.asarray(values), np.asarray(elbo)
    ax.plot(values, elbo, color="C0", lw=2, label=r"ELBO $\mathcal{L}(x)$")
    ax.axhline(float(log_px), color="k", ls="--", lw=1.5, label=r"$\log p(x)$")
    ax.fill_between(values, elbo, float(log_px), color="C1", alpha=0.25,
                    label=r"gap $=\mathrm{KL}(q\,\|\,p(z\mid x))$")
    if best is not None:
        ax.axvline(best, color="C2", ls=":", lw=1.5, label="exact posterior")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("nats")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower center")
    return ax


def plot_iwae(axes, ks, estimates, log_px, *, elbo: float | None = None, chi2: float | None = None):
    r"""Two panels: :math:`\mathcal L_K` (mean and spread over repeats) against K, and the gap against K.

    ``estimates`` is the list of per-K estimate arrays from :func:`iwae_repeats`; ``elbo`` the exact ELBO (drawn at
    K = 1); ``chi2`` draws the large-K prediction :math:`\chi^2/(2K)` of the gap. Returns ``axes``.
    """
    ks = np.asarray(ks, np.float64)
    mean = np.array([np.mean(e) for e in estimates])
    std = np.array([np.std(e, ddof=1) for e in estimates])
    se = std / np.sqrt([len(e) for e in estimates])
    ax = axes[0]
    ax.fill_between(ks, mean - std, mean + std, color="C0", alpha=0.2, label="±1 std of one estimate")
    ax.plot(ks, mean, "o-", color="C0", label=r"mean of $\mathcal{L}_K$ over repeats")
    ax.axhline(float(log_px), color="k", ls="--", label=r"$\log p(x)$ (exact)")
    if elbo is not None:
        ax.plot([1], [elbo], "s", color="C3", ms=8, mfc="none", mew=2, label="ELBO (closed form)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of samples $K$")
    ax.set_ylabel("nats")
    ax.set_title("importance-weighted bound")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[1]
    gap = float(log_px) - mean
    ok = gap > 2 * se
    ax.errorbar(ks[ok], gap[ok], yerr=2 * se[ok], fmt="o", color="C0", capsize=3,
                label=r"$\log p(x)-\mathbb{E}[\mathcal{L}_K]$ (±2 s.e.)")
    if chi2 is not None:
        kk = np.geomspace(ks[0], ks[-1], 100)
        ax.plot(kk, chi2 / (2 * kk), "--", color="C3", label=r"large-$K$ limit $\chi^2/(2K)$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("number of samples $K$")
    ax.set_ylabel("gap (nats)")
    ax.set_title("how fast the gap closes")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    return axes


def _ellipse(ax, mean, cov, nstd=2.0, **kw):
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * nstd * np.sqrt(vals[::-1])
    ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, **kw))


def plot_aggregate_posterior(axes, post_means, post_cov, key_samples, *, num_ellipses: int = 12):
    r"""The per-example posteriors against the aggregate posterior and the prior (2-D latents).

    Left: posterior means of a batch, 2-std ellipses of a few :math:`q(z\mid x_i)`, prior circles.
    Right: density of :math:`z_1` under a few :math:`q(z\mid x_i)`, under the aggregate (histogram of
    ``key_samples``, one draw from each :math:`q(z\mid x_i)`, shape (n, 2)) and under the prior.
    """
    post_means = np.asarray(post_means)
    post_cov = np.asarray(post_cov)
    ax = axes[0]
    ax.scatter(post_means[:, 0], post_means[:, 1], s=3, alpha=0.3, color="C0",
               label=r"posterior means $\mu(x_i)$")
    for i in range(min(num_ellipses, len(post_means))):
        _ellipse(ax, post_means[i], post_cov, color="C1", lw=1.2,
                 label=r"$q(z\mid x_i)$, 2 std" if i == 0 else None)
    for r in (1, 2):
        _ellipse(ax, np.zeros(2), np.eye(2), nstd=r, color="k", ls="--", lw=1,
                 label="prior $N(0,I)$, 1 and 2 std" if r == 1 else None)
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title("each posterior is narrow")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    ax = axes[1]
    t = np.linspace(-4, 4, 400)
    sd = math.sqrt(post_cov[0, 0])
    for i in range(min(5, len(post_means))):
        dens = np.exp(-0.5 * ((t - post_means[i, 0]) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        ax.plot(t, dens, color="C1", lw=1, alpha=0.8, label=r"$q(z_1\mid x_i)$" if i == 0 else None)
    ax.hist(np.asarray(key_samples)[:, 0], bins=60, range=(-4, 4), density=True, color="C0", alpha=0.4,
            label=r"aggregate $q(z_1)=\frac{1}{N}\sum_i q(z_1\mid x_i)$")
    ax.plot(t, np.exp(-0.5 * t**2) / math.sqrt(2 * math.pi), "k--", lw=1.5, label="prior $N(0,1)$")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("density")
    ax.set_title("together they fill the prior")
    ax.legend(fontsize=8, loc="upper left")
    return axes


# --------------------------------------------------------------------------------------------------
# The computational graph of the reparameterization trick
# --------------------------------------------------------------------------------------------------

_DET = dict(fc="#dbe9f6", ec="#1f4e79")  # deterministic node
_RAND = dict(fc="#fde2c8", ec="#b35900")  # random node
_DATA = dict(fc="#eeeeee", ec="#444444")  # input / output
_GRAD = "#c00000"


def _node(ax, xy, text, style, w=1.3, h=0.75, rounded=True):
    x, y = xy
    box = "round,pad=0.02,rounding_size=0.18" if rounded else "square,pad=0.02"
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=box, lw=1.6, **style))
    ax.text(x, y, text, ha="center", va="center", fontsize=10)
    return (x, y, w, h)


def _rand_node(ax, xy, text, w=1.6, h=0.9):
    ax.add_patch(Ellipse(xy, w, h, lw=1.6, **_RAND))
    ax.text(*xy, text, ha="center", va="center", fontsize=10)
    return (xy[0], xy[1], w, h)


def _arrow(ax, a, b, *, color="k", ls="-", rad=0.0, lw=1.5, shrink=None):
    """Arrow between node boxes a and b (x, y, w, h), leaving/entering on the facing sides."""
    (xa, ya, wa, ha), (xb, yb, wb, hb) = a, b
    dx, dy = xb - xa, yb - ya
    def edge(x, y, w, h, sx, sy):
        if abs(sx) * h >= abs(sy) * w:  # leaves through a vertical side
            return x + math.copysign(w / 2, sx), y + sy * (w / 2) / max(abs(sx), 1e-9)
        return x + sx * (h / 2) / max(abs(sy), 1e-9), y + math.copysign(h / 2, sy)
    p0 = edge(xa, ya, wa, ha, dx, dy)
    p1 = edge(xb, yb, wb, hb, -dx, -dy)
    ax.add_patch(FancyArrowPatch(p0, p1, arrowstyle="-|>", mutation_scale=14, color=color, lw=lw,
                                 ls=ls, connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))


def _graph_panel(ax, reparameterized: bool):
    y = 0.0
    x_in = _node(ax, (0.7, y), "$x$", _DATA, w=0.8)
    enc = _node(ax, (2.4, y), "encoder\n$\\phi$", _DET, w=1.4)
    musig = _node(ax, (4.3, y), "$\\mu,\\ \\sigma$", _DET, w=1.2)
    if reparameterized:
        z = _node(ax, (6.3, y), "$z=\\mu+\\sigma\\odot\\varepsilon$", _DET, w=1.9)
        eps = _rand_node(ax, (6.3, -1.55), "$\\varepsilon\\sim\\mathcal{N}(0,I)$", w=2.0)
    else:
        z = _rand_node(ax, (6.3, y), "sample\n$z\\sim\\mathcal{N}(\\mu,\\sigma^2)$", w=2.1, h=1.0)
    dec = _node(ax, (8.4, y), "decoder\n$\\theta$", _DET, w=1.4)
    kl = _node(ax, (8.4, 1.45), "$\\mathrm{KL}(q\\,\\|\\,p(z))$", _DET, w=1.9)
    loss = _node(ax, (10.5, y), "loss\n$-\\log p_\\theta(x|z)+\\mathrm{KL}$", _DATA, w=2.4, h=0.95)
    for a, b in [(x_in, enc), (enc, musig), (musig, z), (z, dec), (dec, loss)]:
        _arrow(ax, a, b)
    _arrow(ax, musig, kl, rad=-0.15)
    _arrow(ax, kl, loss, rad=-0.15)
    if reparameterized:
        _arrow(ax, eps, z)
    # backward pass (gradients): red dashed, under the forward path and along the KL branch
    def back(p0, p1, rad=0.0):
        ax.add_patch(FancyArrowPatch(p0, p1, arrowstyle="-|>", mutation_scale=13, color=_GRAD, lw=1.4,
                                     ls="--", connectionstyle=f"arc3,rad={rad}"))
    yb = -0.72
    back((10.0, 0.62), (9.45, 1.35), rad=0.25)  # loss -> KL
    back((7.4, 1.6), (4.3, 0.5), rad=0.3)  # KL -> (mu, sigma)
    if reparameterized:
        back((10.5, yb), (2.4, yb))
        ax.text(4.3, yb - 0.12, "$\\partial z/\\partial\\mu=1$,  $\\partial z/\\partial\\sigma=\\varepsilon$",
                color=_GRAD, ha="center", va="top", fontsize=9)
    else:
        back((10.5, yb), (7.45, yb))
        back((4.3, yb), (2.4, yb))
        ax.text(3.35, yb - 0.12, "KL term only", color=_GRAD, ha="center", va="top", fontsize=9)
        ax.text(7.15, yb, "✗", color=_GRAD, ha="center", va="center", fontsize=20, fontweight="bold")
        ax.text(6.3, -1.2, "no derivative through a sampling step:\nthe reconstruction term gives\nno gradient to $\\phi$",
                color=_GRAD, ha="center", va="top", fontsize=9)
    ax.set_xlim(0, 11.9)
    ax.set_ylim(-2.4, 2.1)
    ax.set_aspect("equal")
    ax.axis("off")


def draw_reparameterization_graph():
    """Draw the VAE's computational graph without (top) and with (bottom) the reparameterization trick.

    Boxes are deterministic nodes, ellipses random ones; black arrows are the forward pass and red
    dashed arrows the backward pass (gradients). Returns the Matplotlib Figure.
    """
    fig, axes = plt.subplots(2, 1, figsize=(11, 8.2))
    _graph_panel(axes[0], reparameterized=False)
    axes[0].set_title("(a) sampling inside the graph: the gradient of the reconstruction term stops at $z$",
                      fontsize=11)
    _graph_panel(axes[1], reparameterized=True)
    axes[1].set_title("(b) reparameterized: the noise $\\varepsilon$ is an input, $z$ is a deterministic "
                      "function of $\\mu,\\sigma$", fontsize=11)
    handles = [
        Patch(**_DET, label="deterministic node"),
        Patch(**_RAND, label="random node"),
        Patch(**_DATA, label="input / loss"),
        Line2D([], [], color="k", lw=1.5, label="forward pass"),
        Line2D([], [], color=_GRAD, lw=1.4, ls="--", label="backward pass (gradient)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
