r"""Forward and reverse KL fits and the log-sigma / log-variance slip, for chapter 3 (the KL divergence).

* a bimodal **mixture target** (:data:`BIMODAL`, :func:`mixture_log_density`,
  :func:`mixture_moments`) and forward / reverse KL fits of a single Gaussian to it on a grid
  (:func:`grid_kl`, :func:`fit_gaussian_kl`, :func:`kl_landscape`);
* the **log-sigma vs log-variance slip** (:func:`kl_log_var_slip`, deliberately wrong) and the
  1-D linear-Gaussian negative ELBO in closed form (:func:`linear_1d_neg_elbo`), with the optimal
  encoder standard deviations of both (:func:`exact_posterior_std`, :func:`slip_optimal_std`);
* the frame of the chapter's **KL explorer** (:func:`plot_kl_to_standard_normal`): the two densities,
  the integrand whose area is the KL, and the KL over the plane of (mean, log std).

Everything is in nats; a Gaussian is given by ``mean`` and ``log_std`` = :math:`\log\sigma`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from vae_book import distributions as D
from vae_book._checks import check_array, check_positive_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
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
    "plot_kl_to_standard_normal",
]

#: The bimodal target of chapter 3: weights, means and standard deviations of two Gaussians.
BIMODAL = dict(weights=(0.6, 0.4), means=(-2.0, 2.0), stds=(0.7, 0.7))


def mixture_log_density(x: ArrayLike, weights: ArrayLike, means: ArrayLike, stds: ArrayLike) -> jax.Array:
    r""":math:`\log\sum_j \pi_j\,\mathcal N(x;\mu_j,\sigma_j^2)` elementwise in ``x`` (nats)."""
    x = jnp.asarray(x, jnp.float32)
    w, m, s = (jnp.asarray(v, jnp.float32) for v in (weights, means, stds))
    comp = D.gaussian_log_prob(x[..., None], m, jnp.log(s)) + jnp.log(w)
    return jax.scipy.special.logsumexp(comp, axis=-1)


def mixture_moments(weights: ArrayLike, means: ArrayLike, stds: ArrayLike) -> tuple[float, float]:
    r"""Mean and standard deviation of a 1-D Gaussian mixture (exact).

    :math:`\mathbb E[x]=\sum_j\pi_j\mu_j`, :math:`\mathbb E[x^2]=\sum_j\pi_j(\sigma_j^2+\mu_j^2)`.
    """
    w, m, s = (np.asarray(v, np.float64) for v in (weights, means, stds))
    mean = float(np.sum(w * m))
    var = float(np.sum(w * (s**2 + m**2)) - mean**2)
    return mean, math.sqrt(var)


def grid_kl(log_p: ArrayLike, log_q: ArrayLike, dx: ArrayLike) -> jax.Array:
    r""":math:`\mathrm{KL}(p\,\|\,q)\approx\sum_i p(x_i)\,(\log p(x_i) - \log q(x_i))\,\Delta x` on a uniform
    grid.

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


def fit_gaussian_kl(log_target: ArrayLike, grid: ArrayLike, direction: str, init_mean: float, init_log_std: float, *,
                    steps: int = 1500, learning_rate: float = 0.05) -> dict[str, Any]:
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


def kl_landscape(log_target: ArrayLike, grid: ArrayLike, direction: str, means: ArrayLike,
                 log_stds: ArrayLike) -> np.ndarray:
    r"""The grid KL of :func:`fit_gaussian_kl` on a mesh of parameters: array (len(log_stds), len(means))."""
    if direction not in ("forward", "reverse"):
        raise ValueError(f"`direction` must be 'forward' or 'reverse', got {direction!r}.")
    grid = jnp.asarray(grid, jnp.float32)
    log_target = jnp.asarray(log_target, jnp.float32)
    mm, ss = jnp.meshgrid(jnp.asarray(means, jnp.float32), jnp.asarray(log_stds, jnp.float32))
    params = jnp.stack([mm.ravel(), ss.ravel()], axis=-1)
    f = jax.jit(jax.vmap(partial(_gaussian_grid_kl, log_target=log_target, grid=grid, direction=direction)))
    return np.asarray(f(params)).reshape(mm.shape)


def kl_log_var_slip(mean: ArrayLike, log_std: ArrayLike) -> jax.Array:
    r"""**Deliberately wrong**: the closed-form KL to N(0, 1) fed :math:`\log\sigma` where it wants
    :math:`\log\sigma^2`.

    The log-variance formula :math:`\tfrac12(e^{v} + \mu^2 - 1 - v)` with :math:`v=\log\sigma^2`
    evaluated at :math:`v = s = \log\sigma` gives :math:`\tfrac12(e^{s} + \mu^2 - 1 - s)`
    = :math:`\tfrac12(\sigma + \mu^2 - 1 - \log\sigma)` instead of the true
    :math:`\tfrac12(\sigma^2 + \mu^2 - 1 - 2\log\sigma)`. Shown in chapter 3 as a warning.

    Computed as the library's :func:`vae_book.distributions.kl_to_standard_normal` at
    ``log_std / 2``: reading :math:`s` as :math:`\log\sigma^2` is the same as claiming the standard
    deviation :math:`e^{s/2}`.
    """
    return D.kl_to_standard_normal(mean, 0.5 * jnp.asarray(log_std))


def linear_1d_neg_elbo(mean: ArrayLike, log_std: ArrayLike, x: ArrayLike, w: float, tau: float,
                       kl_fn: Callable[[ArrayLike, ArrayLike], jax.Array] = D.kl_to_standard_normal) -> jax.Array:
    r"""Negative ELBO of the 1-D model :math:`z\sim\mathcal N(0,1)`, :math:`x\mid z\sim\mathcal N(wz,\tau^2)`,
    in closed form.

    With :math:`q=\mathcal N(\mu,\sigma^2)`:

    .. math::
        -\mathcal L = \tfrac12\log 2\pi\tau^2 + \frac{(x - w\mu)^2 + w^2\sigma^2}{2\tau^2}
                      + \mathrm{KL}(q\,\|\,\mathcal N(0,1)),

    where the KL is computed by ``kl_fn(mean, log_std)`` (pass :func:`kl_log_var_slip` to see the bug).
    The reconstruction term is :math:`\mathbb E_q\log\mathcal N(x; wz,\tau^2)
    = \log\mathcal N(x; w\mu,\tau^2) - w^2\sigma^2/(2\tau^2)`, its log-density from
    :func:`vae_book.distributions.gaussian_log_prob`.
    """
    mean, log_std = jnp.asarray(mean), jnp.asarray(log_std)
    recon = D.gaussian_log_prob(x, w * mean, math.log(tau)) - w**2 * jnp.exp(2 * log_std) / (2 * tau**2)
    return kl_fn(mean, log_std) - recon


def exact_posterior_std(a: ArrayLike) -> np.ndarray | float:
    r"""Posterior standard deviation :math:`1/\sqrt{1+a}` of the 1-D linear-Gaussian model, :math:`a = w^2/\tau^2`."""
    return 1.0 / np.sqrt(1.0 + np.asarray(a, np.float64))


def slip_optimal_std(a: ArrayLike) -> np.ndarray | float:
    r"""The :math:`\sigma` that minimises the negative ELBO with the slipped KL: :math:`(\sqrt{1+8a}-1)/(4a)`."""
    a = np.asarray(a, np.float64)
    return (np.sqrt(1.0 + 8.0 * a) - 1.0) / (4.0 * a)


def plot_kl_to_standard_normal(axes: Sequence[Axes], mean: float, std: float, *,
                               means: ArrayLike = (-3.0, 3.0), log_stds: ArrayLike = (-2.0, 1.2)) -> Sequence[Axes]:
    r"""Two panels for :math:`q = \mathcal N(\mu,\sigma^2)` against :math:`p = \mathcal N(0, 1)`.

    Left: the two densities and the integrand :math:`q(z)\log\frac{q(z)}{p(z)}` of
    :math:`\mathrm{KL}(q\,\|\,p)`, shaded (its area is the KL; it is negative where :math:`q < p`).
    Right: :math:`\mathrm{KL}(q\,\|\,p)` from the library's closed form
    (:func:`vae_book.distributions.kl_to_standard_normal`) over the plane of ``means`` and
    ``log_stds`` (ranges ``(low, high)``), as filled contours at 0.1, 0.5, 1, 2, 5 and 10 nats, and the current
    :math:`(\mu, \log\sigma)` marked. The titles give both directions, in nats. The axes limits do not
    depend on ``mean`` and ``std``, so frames of an explorer line up (the density panel fits
    :math:`|\mu| \le 2` with :math:`\sigma \ge 0.4`). Returns ``axes``.
    """
    if not (isinstance(std, (int, float, np.floating)) and std > 0):
        raise ValueError(f"`std` must be a positive number, got {std!r}.")
    mean, std = float(mean), float(std)
    ax, ax_map = axes
    z = np.linspace(-6.0, 6.0, 1201)
    log_q = np.asarray(D.gaussian_log_prob(z, mean, math.log(std)), np.float64)
    log_p = np.asarray(D.standard_normal_log_prob(z), np.float64)
    q = np.exp(log_q)
    integrand = q * (log_q - log_p)
    forward = float(D.kl_to_standard_normal(mean, math.log(std)))
    reverse = float(D.kl_diag_gaussians(0.0, 0.0, mean, math.log(std)))
    ax.plot(z, np.exp(log_p), color="0.3", lw=1.5, label=r"$p=\mathcal{N}(0,1)$")
    ax.plot(z, q, color="C0", lw=2, label=rf"$q=\mathcal{{N}}({mean:g}, {std:g}^2)$")
    ax.fill_between(z, integrand, color="C1", alpha=0.35, label=r"$q\log(q/p)$, area = KL")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set(xlim=(-6, 6), ylim=(-0.6, 3.2), xlabel="$z$", ylabel="density, integrand",
           title=rf"KL$(q\,\|\,p)$ = {forward:.3f} nats")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    mm, ss = np.meshgrid(np.linspace(*means, 121), np.linspace(*log_stds, 121))
    kl = np.asarray(D.kl_to_standard_normal(mm, ss), np.float64)
    from matplotlib.colors import BoundaryNorm

    levels = [0.0, 0.1, 0.5, 1, 2, 5, 10, 1e3]
    ax_map.contourf(mm, ss, kl, levels=levels, cmap="Blues", norm=BoundaryNorm(levels, 256), alpha=0.8)
    cs = ax_map.contour(mm, ss, kl, levels=levels[1:-1], colors="0.25", linewidths=0.8)
    ax_map.clabel(cs, fontsize=7, fmt="%g")
    ax_map.plot([0], [0], "k+", ms=10, mew=1.5)
    ax_map.plot([mean], [math.log(std)], "o", color="C3", ms=8, mec="w")
    ax_map.set(xlabel=r"mean $\mu$ of $q$", ylabel=r"$\log\sigma$ of $q$",
               title=rf"KL$(p\,\|\,q)$ = {reverse:.3f} nats (the other way)")
    return axes

