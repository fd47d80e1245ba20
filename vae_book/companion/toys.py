r"""Small, exactly computable latent-variable models for chapter 1 (latent-variable models).

* a **curve model**, a noise-conditioned generator with a 1-D latent and 2-D data,
  :math:`z\sim\mathcal N(0,1)`, :math:`x = f(z) + \sigma\varepsilon` (:func:`curve_mean`), whose
  marginal :math:`p(x)` is computed by quadrature over :math:`z` (:func:`curve_log_marginal`) and
  compared with a histogram of samples (:func:`bin_probabilities`, :func:`histogram_tv`);
* the **prior Monte-Carlo estimator** :math:`\log\frac1K\sum_k p(x\mid z_k)`, :math:`z_k\sim p(z)`,
  on :class:`~vae_book.models.linear.LinearGaussianModel`, where :math:`\log p(x)` is exact
  (:func:`orthogonal_linear_model`, :func:`prior_mc_log_marginal`, :func:`prior_chi2`,
  :func:`prior_mc_study`, :func:`plot_prior_mc_study`). The model's own methods
  (``log_marginal``, ``posterior``, ``sample_data_numpy``) are called directly.

Everything is in nats. The figure takes the study's plain arrays and returns the Figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from vae_book import distributions as D
from vae_book._checks import check_array, check_positive_int
from vae_book.models.linear import LinearGaussianModel

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CURVE_NOISE_STD",
    "curve_mean",
    "curve_log_marginal",
    "bin_probabilities",
    "histogram_tv",
    "orthogonal_linear_model",
    "prior_mc_log_marginal",
    "prior_chi2",
    "prior_mc_study",
    "plot_prior_mc_study",
    "plot_generator",
]

# --------------------------------------------------------------------------------------------
# Chapter 1: a nonlinear noise-conditioned generator, z (1-D) -> x (2-D)
# --------------------------------------------------------------------------------------------

#: Standard deviation :math:`\sigma` of the Gaussian pixel noise of the curve model.
CURVE_NOISE_STD = 0.15


def curve_mean(z: ArrayLike) -> jax.Array:
    r"""The curve model's decoder mean :math:`f(z) = (2\sin 1.2z,\ 0.8z)`: shape (...) -> (..., 2)."""
    z = jnp.asarray(z, jnp.float32)
    return jnp.stack([2.0 * jnp.sin(1.2 * z), 0.8 * z], axis=-1)


@partial(jax.jit, static_argnames=("num_z",))
def _curve_log_marginal_chunk(x, noise_std, z_max, num_z):
    z = jnp.linspace(-z_max, z_max, num_z)
    dz = 2.0 * z_max / (num_z - 1)
    trap = jnp.full((num_z,), dz).at[0].set(dz / 2).at[-1].set(dz / 2)  # trapezoid weights
    log_prior = D.standard_normal_log_prob(z) + jnp.log(trap)  # (M,)
    mean = curve_mean(z)  # (M, 2)
    log_lik = jnp.sum(D.gaussian_log_prob(x[:, None, :], mean[None], jnp.log(noise_std)), axis=-1)
    return jax.scipy.special.logsumexp(log_lik + log_prior, axis=1)


def curve_log_marginal(x: ArrayLike, noise_std: float = CURVE_NOISE_STD, *, z_max: float = 6.0,
                       num_z: int = 601, chunk_size: int = 2048) -> jax.Array:
    r""":math:`\log p(x) = \log\int\mathcal N(x; f(z), \sigma^2 I)\,\mathcal N(z;0,1)\,dz` by quadrature.

    The trapezoid rule on ``num_z`` equally spaced points of :math:`[-z_{\max}, z_{\max}]`. The
    integrand is a smooth bump of width about :math:`\sigma/\lVert f'(z)\rVert \ge 0.059` in
    :math:`z`; the default spacing 0.02 resolves it (the trapezoid rule converges exponentially
    fast for smooth, rapidly decaying integrands), and the prior mass beyond :math:`|z|=6` is
    :math:`2\cdot10^{-9}`.

    Args:
        x: points (N, 2). noise_std: :math:`\sigma`.

    Returns:
        (N,) log-densities in nats.
    """
    x = check_array(jnp.asarray(x, jnp.float32), "x", shape=(None, 2))
    num_z = check_positive_int(num_z, "num_z")
    out = [
        _curve_log_marginal_chunk(x[i : i + chunk_size], float(noise_std), float(z_max), num_z)
        for i in range(0, x.shape[0], chunk_size)
    ]
    return jnp.concatenate(out)


def bin_probabilities(
    log_density: Callable[[np.ndarray], ArrayLike], edges_x: ArrayLike, edges_y: ArrayLike, sub: int = 4, *,
    return_fine: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Probability of each rectangular bin under a 2-D density, by the midpoint rule.

    Each bin is split into ``sub x sub`` cells and the density is evaluated at the cell centres.

    Args:
        log_density: maps points (M, 2) to log-densities (M,).
        edges_x, edges_y: increasing, equally spaced bin edges (nx + 1,) and (ny + 1,).

    Returns:
        (nx, ny) array of bin probabilities (same layout as ``numpy.histogram2d``); with
        ``return_fine=True`` also the cell centres (nx*sub,), (ny*sub,) and the density there
        (nx*sub, ny*sub), e.g. for a picture of the density.
    """
    edges_x, edges_y = np.asarray(edges_x, np.float64), np.asarray(edges_y, np.float64)
    nx, ny = len(edges_x) - 1, len(edges_y) - 1
    hx, hy = (edges_x[-1] - edges_x[0]) / (nx * sub), (edges_y[-1] - edges_y[0]) / (ny * sub)
    cx = edges_x[0] + hx * (np.arange(nx * sub) + 0.5)
    cy = edges_y[0] + hy * (np.arange(ny * sub) + 0.5)
    pts = np.stack(np.meshgrid(cx, cy, indexing="ij"), axis=-1).reshape(-1, 2)
    dens = np.exp(np.asarray(log_density(pts), np.float64)).reshape(nx * sub, ny * sub)
    probs = dens.reshape(nx, sub, ny, sub).sum(axis=(1, 3)) * hx * hy
    return (probs, cx, cy, dens) if return_fine else probs


def histogram_tv(samples: ArrayLike, probs: ArrayLike, edges_x: ArrayLike, edges_y: ArrayLike, *, seed: int = 0,
                 repeats: int = 200) -> tuple[float, float, float]:
    r"""Total variation between a 2-D histogram of ``samples`` and the bin probabilities ``probs``.

    .. math::
        \mathrm{TV} = \tfrac12\sum_b |\hat p_b - p_b| + \tfrac12|\hat p_{\text{out}} - p_{\text{out}}|

    where the last term is the mass outside the window. A histogram of :math:`n` exact samples is
    not exactly ``probs`` either; the TV of ``repeats`` multinomial draws of size :math:`n` from
    ``probs`` gives the sampling-noise level the measured TV should be compared with.

    Returns:
        ``(tv, noise_mean, noise_std)``.
    """
    samples = np.asarray(samples, np.float64)
    n = samples.shape[0]
    counts, _, _ = np.histogram2d(samples[:, 0], samples[:, 1], bins=[edges_x, edges_y])
    p = np.append(np.asarray(probs, np.float64).ravel(), 0.0)
    p[-1] = max(0.0, 1.0 - p[:-1].sum())
    p = p / p.sum()
    freq = np.append(counts.ravel(), n - counts.sum()) / n
    tv = 0.5 * np.abs(freq - p).sum()
    rng = np.random.default_rng(seed)
    sims = rng.multinomial(n, p, size=repeats) / n
    noise = 0.5 * np.abs(sims - p).sum(axis=1)
    return float(tv), float(noise.mean()), float(noise.std())


# --------------------------------------------------------------------------------------------
# Chapter 1: Monte-Carlo log p(x) with samples from the prior
# --------------------------------------------------------------------------------------------


def orthogonal_linear_model(z_dim: int, data_dim: int | None = None, *, weight_scale: float = 2.0,
                            noise_std: float = 0.5, seed: int = 0) -> LinearGaussianModel:
    r"""A :class:`LinearGaussianModel` with :math:`W = w\,Q`, :math:`Q` random with orthonormal columns, b = 0.

    With orthogonal columns every latent dimension is explained equally well: the exact posterior
    is :math:`\mathcal N(m, s^2 I)` with :math:`s^2 = \sigma^2/(w^2+\sigma^2)`.

    Args:
        z_dim: d. data_dim: D >= d (default 2d). weight_scale: w. noise_std: :math:`\sigma`.
    """
    z_dim = check_positive_int(z_dim, "z_dim")
    data_dim = 2 * z_dim if data_dim is None else check_positive_int(data_dim, "data_dim")
    if data_dim < z_dim:
        raise ValueError(f"`data_dim` must be >= z_dim = {z_dim}, got {data_dim}.")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((data_dim, z_dim)))
    return LinearGaussianModel(weight_scale * q, np.zeros(data_dim), math.log(noise_std), seed=seed)


def _as_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"`rng` must be a numpy Generator or an int seed, got {type(rng).__name__} {rng!r}.")


def _linear_params(model: LinearGaussianModel):
    """(W, b, sigma) of a linear-Gaussian model as float64 NumPy arrays."""
    return (np.asarray(model.W[...], np.float64), np.asarray(model.b[...], np.float64),
            float(np.exp(np.asarray(model.log_sigma[...], np.float64))))


def prior_mc_log_marginal(model: LinearGaussianModel, x: ArrayLike, rng: np.random.Generator | int, num_samples: int,
                          *, chunk_size: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    r"""Estimate :math:`\log p(x)` by averaging the likelihood over samples from the **prior**.

    .. math::
        \log\hat p(x) = \log\frac1K\sum_{k=1}^K p(x\mid z_k),\qquad z_k\sim p(z)=\mathcal N(0,I),

    with a log-sum-exp over chunks of ``chunk_size`` samples. Also returns the effective sample size
    :math:`\mathrm{ESS} = (\sum_k w_k)^2/\sum_k w_k^2` of the weights :math:`w_k = p(x\mid z_k)`:
    about :math:`K` when all samples count, 1 when one sample dominates.

    Computed in NumPy (no compilation per shape, so a sweep over many latent sizes is fast; the
    samples are float32, the sums float64), with
    :math:`\lVert x-b-Wz\rVert^2 = \lVert r\rVert^2 - 2(W^\top r)\cdot z + z^\top W^\top W z`,
    :math:`r = x-b`, so the cost is :math:`O(K d^2)` and memory :math:`O(B\cdot\text{chunk})`.

    Args:
        model: a linear-Gaussian model (its ``W``, ``b``, ``log_sigma`` are used).
        x: (B, D) points. rng: a ``numpy.random.Generator`` or an int seed. num_samples: K.

    Returns:
        ``(log_p_hat, ess)``: NumPy arrays (B,), nats and sample counts.
    """
    W, b, sigma = _linear_params(model)
    x = np.asarray(check_array(np.asarray(x, np.float32), "x", shape=(None, model.data_dim)), np.float64)
    rng = _as_rng(rng)
    num_samples = check_positive_int(num_samples, "num_samples")
    r = x - b
    rr, rW, G = np.sum(r * r, axis=1), (r @ W).astype(np.float32), (W.T @ W).astype(np.float32)
    const = -0.5 * W.shape[0] * math.log(2 * math.pi * sigma**2)
    lse, lse2 = [], []
    for start in range(0, num_samples, chunk_size):
        z = rng.standard_normal((min(chunk_size, num_samples - start), W.shape[1]), dtype=np.float32)
        quad = np.sum(z * (z @ G), axis=1, dtype=np.float64)
        sq = rr[:, None] - 2.0 * (rW @ z.T).astype(np.float64) + quad[None, :]  # (B, chunk)
        lw = const - 0.5 * sq / sigma**2  # log p(x | z_k)
        lse.append(logsumexp(lw, axis=1))
        lse2.append(logsumexp(2.0 * lw, axis=1))
    lse, lse2 = logsumexp(np.stack(lse), axis=0), logsumexp(np.stack(lse2), axis=0)
    return lse - math.log(num_samples), np.exp(2.0 * lse - lse2)


def prior_chi2(model: LinearGaussianModel, x: ArrayLike) -> np.ndarray:
    r"""Exact :math:`\log(1+\chi^2)` of the prior-sampling weights, for each point x.

    .. math::
        1 + \chi^2 = \frac{\mathbb E_{p(z)}[p(x\mid z)^2]}{p(x)^2}
        = \frac{(4\pi\sigma^2)^{-D/2}\,\mathcal N(x;\,b,\,WW^\top + \tfrac{\sigma^2}{2} I)}
               {\mathcal N(x;\,b,\,WW^\top + \sigma^2 I)^2},

    so the relative variance of :math:`\hat p(x)` with K prior samples is :math:`\chi^2/K`.
    Computed with SciPy in float64.

    Returns:
        (B,) NumPy array of :math:`\log(1+\chi^2)` (natural log).
    """
    W, b, sigma = _linear_params(model)
    x = np.asarray(check_array(np.asarray(x, np.float32), "x", shape=(None, model.data_dim)), np.float64)
    dim = W.shape[0]
    eye = np.eye(dim)
    log_m2 = (-0.5 * dim * math.log(4 * math.pi * sigma**2)
              + np.atleast_1d(multivariate_normal.logpdf(x, b, W @ W.T + 0.5 * sigma**2 * eye)))
    log_p = np.atleast_1d(multivariate_normal.logpdf(x, b, W @ W.T + sigma**2 * eye))
    return log_m2 - 2.0 * log_p


def prior_mc_study(dims: Sequence[int] | np.ndarray, *, num_samples: int, num_points: int = 4, repeats: int = 8,
                   weight_scale: float = 2.0, noise_std: float = 0.5, seed: int = 0) -> dict:
    r"""Error of the prior Monte-Carlo estimate of :math:`\log p(x)` as the latent dimension grows.

    For each d in ``dims``: the model :func:`orthogonal_linear_model` (d, D = 2d), ``num_points``
    data points :math:`x\sim p(x)` (:meth:`LinearGaussianModel.sample_data_numpy`), their exact
    :math:`\log p(x)` from :meth:`LinearGaussianModel.log_marginal`, and ``repeats`` independent estimates of each with
    ``num_samples`` prior samples (:func:`prior_mc_log_marginal`).

    Returns:
        dict of NumPy arrays: ``dims`` (n,); ``error`` (n, num_points, repeats) =
        :math:`\log\hat p(x) - \log p(x)`; ``ess`` (same shape); ``log1p_chi2`` (n, num_points);
        ``num_samples`` (int).
    """
    rng = np.random.default_rng(seed)
    errors, esss, chis = [], [], []
    for d in dims:
        model = orthogonal_linear_model(int(d), weight_scale=weight_scale, noise_std=noise_std, seed=int(d))
        x = model.sample_data_numpy(rng, num_points)  # x ~ p(x)
        exact = np.asarray(model.log_marginal(x), np.float64)
        runs = [prior_mc_log_marginal(model, x, rng, num_samples) for _ in range(repeats)]
        errors.append(np.stack([est - exact for est, _ in runs], axis=-1))
        esss.append(np.stack([ess for _, ess in runs], axis=-1))
        chis.append(prior_chi2(model, x))
    return dict(dims=np.asarray(dims), error=np.stack(errors), ess=np.stack(esss),
                log1p_chi2=np.stack(chis), num_samples=int(num_samples))


def _log2_ticks(ax, dims):
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xticks(list(dims))
    ax.set_xticklabels([str(int(d)) for d in dims])
    ax.xaxis.set_minor_locator(NullLocator())


def plot_prior_mc_study(study: dict, axes: Sequence[Axes] | np.ndarray | None = None) -> Figure:
    """Two panels: the absolute error of the prior estimate vs d (median and 10-90 % range), and the ESS
    vs d.

    Returns the Figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    fig = axes[0].figure
    dims, k = study["dims"], study["num_samples"]
    abs_err = np.abs(study["error"]).reshape(len(dims), -1)
    lo, med, hi = np.percentile(abs_err, [10, 50, 90], axis=1)
    ax = axes[0]
    ax.fill_between(dims, lo, hi, alpha=0.3, label="10–90 % of estimates")
    ax.plot(dims, med, "o-", label="median")
    _log2_ticks(ax, dims)
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension $d$")
    ax.set_ylabel(r"$|\log\hat p(x) - \log p(x)|$ (nats)")
    ax.set_title(f"prior Monte Carlo, K = {k:,} samples")
    ax.grid(alpha=0.3)
    ax.legend()
    ax = axes[1]
    ess = study["ess"].reshape(len(dims), -1)
    predicted = k / np.exp(study["log1p_chi2"].reshape(len(dims), -1))
    ax.plot(dims, np.median(ess, axis=1), "o-", label="measured ESS (median)")
    ax.plot(dims, np.median(predicted, axis=1), "s--", label=r"$K/(1+\chi^2)$ (median over x)")
    ax.axhline(1.0, color="grey", lw=1, ls=":")
    ax.axhline(k, color="grey", lw=1, ls=":")
    ax.text(dims[-1], k, "K: all samples count ", va="top", ha="right", fontsize=8, color="grey")
    ax.text(dims[0], 1.0, " 1: one sample dominates", va="top", ha="left", fontsize=8, color="grey")
    _log2_ticks(ax, dims)
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension $d$")
    ax.set_ylabel("effective number of samples")
    ax.set_title("how many prior samples count")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def plot_generator(axes: Sequence[Axes] | np.ndarray | None = None, *, num_codes: int = 7, num_noise: int = 60,
                   noise_std: float = CURVE_NOISE_STD, seed: int = 4) -> np.ndarray:
    r"""Draw the noise-conditioned generator :math:`x = f(z) + \sigma\varepsilon` of the curve model, step by step.

    Three panels: (1) ``num_codes`` codes :math:`z_i \sim \mathcal N(0, 1)` on the prior's density;
    (2) their decoder means :math:`f(z_i)` (:func:`curve_mean`) on the curve traced by :math:`f`;
    (3) ``num_noise`` draws :math:`x = f(z_i) + \sigma\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`,
    around each mean, with the circle of radius :math:`2\sigma`. A line joins each code to its mean
    (the decoder's work); one colour per code.

    Args:
        axes: three Axes in a row, or None for a new figure.
        num_codes: codes drawn. num_noise: noise draws per code. noise_std: :math:`\sigma`.
        seed: seed of ``np.random.default_rng`` for the codes and the noise.

    Returns:
        The three Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, ConnectionPatch

    num_codes, num_noise = check_positive_int(num_codes, "num_codes"), check_positive_int(num_noise, "num_noise")
    if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"`noise_std` must be a positive number, got {noise_std!r}.")
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    axes = np.asarray(axes).ravel()
    if axes.shape != (3,):
        raise ValueError(f"`axes` must be three Axes, got {axes.shape[0]}.")
    rng = np.random.default_rng(seed)
    z = np.sort(rng.standard_normal(num_codes))
    centres = np.asarray(curve_mean(jnp.asarray(z, jnp.float32)), np.float64)
    x = centres[:, None, :] + noise_std * rng.standard_normal((num_codes, num_noise, 2))
    colours = plt.get_cmap("coolwarm")((np.clip(z, -2.5, 2.5) + 2.5) / 5.0)
    grid = np.linspace(-3.2, 3.2, 300)
    curve = np.asarray(curve_mean(jnp.asarray(grid, jnp.float32)))
    a1, a2, a3 = axes
    a1.plot(grid, np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi), "k-", lw=1.2)
    a1.scatter(z, np.zeros_like(z), c=colours, s=60, zorder=3, edgecolors="k", linewidths=0.5)
    a1.set(xlabel="code $z$", ylabel="prior density $p(z)$", title="1. draw a code $z \\sim \\mathcal{N}(0, 1)$",
           ylim=(-0.03, 0.45))
    for ax in (a2, a3):
        ax.plot(curve[:, 0], curve[:, 1], "-", color="0.6", lw=1, label="$f(z)$, $|z| \\leq 3.2$")
        ax.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", xlim=(-2.7, 2.7), ylim=(-2.7, 2.7))
    a2.scatter(centres[:, 0], centres[:, 1], c=colours, s=60, zorder=3, edgecolors="k", linewidths=0.5)
    a2.set_title("2. decode: the mean $f(z)$")
    for i in range(num_codes):
        a3.scatter(x[i, :, 0], x[i, :, 1], color=colours[i], s=5, alpha=0.8)
        a3.add_patch(Circle(centres[i], 2 * noise_std, fill=False, color=colours[i], lw=1))
    a3.scatter(centres[:, 0], centres[:, 1], c="k", marker="+", s=30, zorder=3, label="$f(z_i)$")
    a3.set_title(f"3. add noise: $x = f(z) + \\sigma\\varepsilon$, $\\sigma = {noise_std:g}$")
    for ax in (a2, a3):
        ax.legend(loc="upper left", fontsize=8)
    for i in range(num_codes):
        a1.figure.add_artist(ConnectionPatch((z[i], 0.0), centres[i], "data", "data", axesA=a1, axesB=a2,
                                       color=colours[i], lw=0.9, alpha=0.6, arrowstyle="->"))
    return axes
