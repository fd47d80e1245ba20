r"""Small, exactly computable models and the longer computations of chapters 1 and 3.

Chapter 1 (latent-variable models):

* a **curve model**, a noise-conditioned generator with a 1-D latent and 2-D data,
  :math:`z\sim\mathcal N(0,1)`, :math:`x = f(z) + \sigma\varepsilon`, whose marginal :math:`p(x)` is
  computed by quadrature over :math:`z` (:func:`curve_log_marginal`) and compared with a histogram
  of samples (:func:`bin_probabilities`, :func:`histogram_tv`);
* the **prior Monte-Carlo estimator** :math:`\log\frac1K\sum_k p(x\mid z_k)`, :math:`z_k\sim p(z)`,
  on :class:`~vae_book.models.linear.LinearGaussianModel` where :math:`\log p(x)` is exact
  (:func:`prior_mc_log_marginal`, :func:`prior_chi2`, :func:`prior_mc_study`).

Chapter 3 (the KL divergence):

* a bimodal **mixture target** and forward / reverse KL fits of a single Gaussian on a grid
  (:func:`mixture_log_density`, :func:`grid_kl`, :func:`fit_gaussian_kl`);
* the **log-sigma vs log-variance slip** (:func:`kl_log_var_slip`, deliberately wrong) and the
  1-D linear-Gaussian negative ELBO in closed form (:func:`linear_1d_neg_elbo`).

Everything is in nats. Plotting helpers take plain arrays and return the Axes.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from flax import nnx

from vae_book import distributions as D
from vae_book._checks import check_array, check_key, check_positive_int
from vae_book.models.linear import LinearGaussianModel

__all__ = [
    "CURVE_NOISE_STD",
    "curve_mean",
    "sample_curve_model",
    "curve_log_marginal",
    "bin_probabilities",
    "histogram_tv",
    "orthogonal_linear_model",
    "linear_log_marginal",
    "linear_posterior",
    "sample_linear_data",
    "prior_mc_log_marginal",
    "prior_chi2",
    "prior_mc_study",
    "plot_prior_mc_study",
    "BIMODAL",
    "mixture_log_density",
    "mixture_moments",
    "grid_kl",
    "fit_gaussian_kl",
    "kl_landscape",
    "kl_log_var_slip",
    "linear_1d_neg_elbo",
    "exact_posterior_std",
    "slip_optimal_std",
]

# --------------------------------------------------------------------------------------------
# Chapter 1: a nonlinear noise-conditioned generator, z (1-D) -> x (2-D)
# --------------------------------------------------------------------------------------------

#: Standard deviation :math:`\sigma` of the Gaussian pixel noise of the curve model.
CURVE_NOISE_STD = 0.15


def curve_mean(z):
    r"""The curve model's decoder mean :math:`f(z) = (2\sin 1.2z,\ 0.8z)`: shape (...) -> (..., 2)."""
    z = jnp.asarray(z, jnp.float32)
    return jnp.stack([2.0 * jnp.sin(1.2 * z), 0.8 * z], axis=-1)


def sample_curve_model(key, n: int, noise_std: float = CURVE_NOISE_STD):
    r"""Ancestral sampling: :math:`z\sim\mathcal N(0,1)`, then :math:`x = f(z) + \sigma\varepsilon`.

    Returns ``(z, x)`` of shapes (n,) and (n, 2).
    """
    key = check_key(key)
    n = check_positive_int(n, "n")
    kz, ke = jax.random.split(key)
    z = jax.random.normal(kz, (n,))
    x = curve_mean(z) + noise_std * jax.random.normal(ke, (n, 2))
    return z, x


@partial(jax.jit, static_argnames=("num_z",))
def _curve_log_marginal_chunk(x, noise_std, z_max, num_z):
    z = jnp.linspace(-z_max, z_max, num_z)
    dz = 2.0 * z_max / (num_z - 1)
    trap = jnp.full((num_z,), dz).at[0].set(dz / 2).at[-1].set(dz / 2)  # trapezoid weights
    log_prior = D.standard_normal_log_prob(z) + jnp.log(trap)  # (M,)
    mean = curve_mean(z)  # (M, 2)
    log_lik = jnp.sum(D.gaussian_log_prob(x[:, None, :], mean[None], jnp.log(noise_std)), axis=-1)
    return jax.scipy.special.logsumexp(log_lik + log_prior, axis=1)


def curve_log_marginal(x, noise_std: float = CURVE_NOISE_STD, *, z_max: float = 6.0,
                       num_z: int = 601, chunk_size: int = 2048):
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


def bin_probabilities(log_density, edges_x, edges_y, sub: int = 4, *, return_fine: bool = False):
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


def histogram_tv(samples, probs, edges_x, edges_y, *, seed: int = 0, repeats: int = 200):
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


def prior_mc_log_marginal(model: LinearGaussianModel, x, rng, num_samples: int, *,
                          chunk_size: int = 20_000):
    r"""Estimate :math:`\log p(x)` by averaging the likelihood over samples from the **prior**.

    .. math::
        \log\hat p(x) = \log\frac1K\sum_{k=1}^K p(x\mid z_k),\qquad z_k\sim p(z)=\mathcal N(0,I),

    with a log-sum-exp over chunks of ``chunk_size`` samples. Also returns the effective sample size
    :math:`\mathrm{ESS} = (\sum_k w_k)^2/\sum_k w_k^2` of the weights :math:`w_k = p(x\mid z_k)`:
    about :math:`K` when all samples count, 1 when one sample dominates.

    Computed in NumPy (no compilation per shape, so a sweep over many latent sizes is fast; the
    samples are float32, the sums float64), with :math:`\lVert x-b-Wz\rVert^2 = \lVert r\rVert^2 - 2(W^\top r)\cdot z + z^\top W^\top W z`,
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


def prior_chi2(model: LinearGaussianModel, x):
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


@nnx.jit
def _exact_log_marginal(model, x):
    return model.log_marginal(x)


@nnx.jit
def _exact_posterior(model, x):
    return model.posterior(x)


def linear_log_marginal(model: LinearGaussianModel, x):
    r""":meth:`LinearGaussianModel.log_marginal` compiled as one function: (B,) nats as NumPy.

    Same values; it only avoids compiling every operation separately, which is slow when a chapter
    calls it for many different shapes.
    """
    x = check_array(jnp.asarray(x, jnp.float32), "x", shape=(None, model.data_dim))
    return np.asarray(_exact_log_marginal(model, x), np.float64)


def linear_posterior(model: LinearGaussianModel, x):
    r""":meth:`LinearGaussianModel.posterior` compiled as one function: ``(mean (B, d), cov (d, d))`` as NumPy."""
    x = check_array(jnp.asarray(x, jnp.float32), "x", shape=(None, model.data_dim))
    mean, cov = _exact_posterior(model, x)
    return np.asarray(mean, np.float64), np.asarray(cov, np.float64)


def sample_linear_data(model: LinearGaussianModel, n: int, rng):
    r"""Ancestral samples :math:`x = Wz + b + \sigma\varepsilon` of a linear-Gaussian model, in NumPy: (n, D) float32.

    ``rng`` is a ``numpy.random.Generator`` or an int seed.
    """
    n = check_positive_int(n, "n")
    rng = _as_rng(rng)
    W, b, sigma = _linear_params(model)
    z = rng.standard_normal((n, W.shape[1]))
    return (z @ W.T + b + sigma * rng.standard_normal((n, W.shape[0]))).astype(np.float32)


def prior_mc_study(dims, *, num_samples: int, num_points: int = 4, repeats: int = 8,
                   weight_scale: float = 2.0, noise_std: float = 0.5, seed: int = 0) -> dict:
    r"""Error of the prior Monte-Carlo estimate of :math:`\log p(x)` as the latent dimension grows.

    For each d in ``dims``: the model :func:`orthogonal_linear_model` (d, D = 2d), ``num_points``
    data points :math:`x\sim p(x)`, their exact :math:`\log p(x)` from
    :meth:`LinearGaussianModel.log_marginal`, and ``repeats`` independent estimates of each with
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
        x = sample_linear_data(model, num_points, rng)  # x ~ p(x)
        exact = linear_log_marginal(model, x)
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


def plot_prior_mc_study(study: dict, axes=None):
    """Two panels: the absolute error of the prior estimate vs d (median and 10-90 % range), and the ESS vs d.

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


# --------------------------------------------------------------------------------------------
# Chapter 3: forward vs reverse KL, and the log-sigma / log-variance slip
# --------------------------------------------------------------------------------------------

#: The bimodal target of chapter 3: weights, means and standard deviations of two Gaussians.
BIMODAL = dict(weights=(0.6, 0.4), means=(-2.0, 2.0), stds=(0.7, 0.7))


def mixture_log_density(x, weights, means, stds):
    r""":math:`\log\sum_j \pi_j\,\mathcal N(x;\mu_j,\sigma_j^2)` elementwise in ``x`` (nats)."""
    x = jnp.asarray(x, jnp.float32)
    w, m, s = (jnp.asarray(v, jnp.float32) for v in (weights, means, stds))
    comp = D.gaussian_log_prob(x[..., None], m, jnp.log(s)) + jnp.log(w)
    return jax.scipy.special.logsumexp(comp, axis=-1)


def mixture_moments(weights, means, stds):
    r"""Mean and standard deviation of a 1-D Gaussian mixture (exact).

    :math:`\mathbb E[x]=\sum_j\pi_j\mu_j`, :math:`\mathbb E[x^2]=\sum_j\pi_j(\sigma_j^2+\mu_j^2)`.
    """
    w, m, s = (np.asarray(v, np.float64) for v in (weights, means, stds))
    mean = float(np.sum(w * m))
    var = float(np.sum(w * (s**2 + m**2)) - mean**2)
    return mean, math.sqrt(var)


def grid_kl(log_p, log_q, dx):
    r""":math:`\mathrm{KL}(p\,\|\,q)\approx\sum_i p(x_i)\,(\log p(x_i) - \log q(x_i))\,\Delta x` on a uniform grid.

    Args:
        log_p, log_q: log-densities on the same grid points, shape (N,). dx: grid spacing.
    """
    log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q)) * dx


def _gaussian_grid_kl(params, log_target, grid, direction):
    """KL between N(params[0], exp(params[1])^2) and the target on the grid, in the given direction."""
    dx = grid[1] - grid[0]
    log_q = D.gaussian_log_prob(grid, params[0], params[1])
    if direction == "forward":
        return grid_kl(log_target, log_q, dx)
    return grid_kl(log_q, log_target, dx)


@partial(jax.jit, static_argnames=("direction", "steps", "learning_rate"))
def _fit_scan(params, log_target, grid, direction, steps, learning_rate):
    opt = optax.adam(learning_rate)
    loss = partial(_gaussian_grid_kl, log_target=log_target, grid=grid, direction=direction)

    def step(carry, _):
        p, state = carry
        value, g = jax.value_and_grad(loss)(p)
        updates, state = opt.update(g, state, p)
        return (optax.apply_updates(p, updates), state), value

    (params, _), history = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    value, g = jax.value_and_grad(loss)(params)
    return params, value, jnp.linalg.norm(g), history


def fit_gaussian_kl(log_target, grid, direction: str, init_mean: float, init_log_std: float, *,
                    steps: int = 1500, learning_rate: float = 0.05):
    r"""Fit :math:`q=\mathcal N(m, e^{2s})` to a 1-D target by minimising a KL on a grid with Adam.

    Both KLs are computed with :func:`grid_kl` on the grid (which must cover both densities) and
    differentiated with ``jax.grad`` with respect to :math:`(m, s)`, :math:`s=\log\sigma`.

    Args:
        log_target: target log-density on ``grid`` (N,). grid: equally spaced points (N,).
        direction: ``"forward"`` minimises :math:`\mathrm{KL}(p\|q)` (mass-covering),
            ``"reverse"`` minimises :math:`\mathrm{KL}(q\|p)` (mode-seeking).
        init_mean, init_log_std: the starting :math:`m` and :math:`s`.

    Returns:
        dict with ``mean``, ``log_std``, ``kl`` (final value, nats), ``grad_norm`` (final gradient
        norm) and ``history`` (KL per step, (steps,)).
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"`direction` must be 'forward' or 'reverse', got {direction!r}.")
    grid = check_array(jnp.asarray(grid, jnp.float32), "grid", ndim=1)
    log_target = check_array(jnp.asarray(log_target, jnp.float32), "log_target", shape=grid.shape)
    steps = check_positive_int(steps, "steps")
    params = jnp.array([init_mean, init_log_std], jnp.float32)
    params, value, gnorm, history = _fit_scan(params, log_target, grid, direction, steps, float(learning_rate))
    return dict(mean=float(params[0]), log_std=float(params[1]), kl=float(value),
                grad_norm=float(gnorm), history=np.asarray(history))


def kl_landscape(log_target, grid, direction: str, means, log_stds):
    r"""The grid KL of :func:`fit_gaussian_kl` on a mesh of parameters: array (len(log_stds), len(means))."""
    if direction not in ("forward", "reverse"):
        raise ValueError(f"`direction` must be 'forward' or 'reverse', got {direction!r}.")
    grid = jnp.asarray(grid, jnp.float32)
    log_target = jnp.asarray(log_target, jnp.float32)
    mm, ss = jnp.meshgrid(jnp.asarray(means, jnp.float32), jnp.asarray(log_stds, jnp.float32))
    params = jnp.stack([mm.ravel(), ss.ravel()], axis=-1)
    f = jax.jit(jax.vmap(partial(_gaussian_grid_kl, log_target=log_target, grid=grid, direction=direction)))
    return np.asarray(f(params)).reshape(mm.shape)


def kl_log_var_slip(mean, log_std):
    r"""**Deliberately wrong**: the closed-form KL to N(0, 1) fed :math:`\log\sigma` where it wants :math:`\log\sigma^2`.

    The log-variance formula :math:`\tfrac12(e^{v} + \mu^2 - 1 - v)` with :math:`v=\log\sigma^2`
    evaluated at :math:`v = s = \log\sigma` gives :math:`\tfrac12(e^{s} + \mu^2 - 1 - s)`
    = :math:`\tfrac12(\sigma + \mu^2 - 1 - \log\sigma)` instead of the true
    :math:`\tfrac12(\sigma^2 + \mu^2 - 1 - 2\log\sigma)`. Shown in chapter 3 as a warning.
    """
    mean, log_std = jnp.asarray(mean), jnp.asarray(log_std)
    return 0.5 * (jnp.exp(log_std) + jnp.square(mean) - 1.0 - log_std)


def linear_1d_neg_elbo(mean, log_std, x, w: float, tau: float, kl_fn=D.kl_to_standard_normal):
    r"""Negative ELBO of the 1-D model :math:`z\sim\mathcal N(0,1)`, :math:`x\mid z\sim\mathcal N(wz,\tau^2)`, in closed form.

    With :math:`q=\mathcal N(\mu,\sigma^2)`:

    .. math::
        -\mathcal L = \tfrac12\log 2\pi\tau^2 + \frac{(x - w\mu)^2 + w^2\sigma^2}{2\tau^2}
                      + \mathrm{KL}(q\,\|\,\mathcal N(0,1)),

    where the KL is computed by ``kl_fn(mean, log_std)`` (pass :func:`kl_log_var_slip` to see the bug).
    """
    mean, log_std = jnp.asarray(mean), jnp.asarray(log_std)
    recon = -0.5 * math.log(2 * math.pi * tau**2) - (jnp.square(x - w * mean) + w**2 * jnp.exp(2 * log_std)) / (2 * tau**2)
    return kl_fn(mean, log_std) - recon


def exact_posterior_std(a):
    r"""Posterior standard deviation :math:`1/\sqrt{1+a}` of the 1-D linear-Gaussian model, :math:`a = w^2/\tau^2`."""
    return 1.0 / np.sqrt(1.0 + np.asarray(a, np.float64))


def slip_optimal_std(a):
    r"""The :math:`\sigma` that minimises the negative ELBO with the slipped KL: :math:`(\sqrt{1+8a}-1)/(4a)`."""
    a = np.asarray(a, np.float64)
    return (np.sqrt(1.0 + 8.0 * a) - 1.0) / (4.0 * a)
