r"""Figures of chapters 4 (the ELBO) and 5 (the reparameterization trick).

They take plain arrays — the results of the studies in :mod:`vae_book.companion.estimators`
and closed forms — never models, and return the Axes (or, for the graph, the Figure):

* chapter 4: the ELBO against one variational parameter (:func:`plot_elbo_sweep`), the
  importance-weighted bound against K (:func:`plot_iwae`, from
  :func:`~vae_book.companion.estimators.iwae_repeats`), the aggregate posterior
  (:func:`plot_aggregate_posterior`), and the frame of the ELBO-gap explorer (:func:`plot_elbo_gap`);
* chapter 5: gradient-estimator variances, closed form against Monte Carlo (:func:`plot_variance`,
  from :func:`~vae_book.companion.estimators.estimator_variance` and
  :func:`~vae_book.companion.estimators.square_grad_variance`), and the computational graph of the
  reparameterization trick (:func:`draw_reparameterization_graph`), and the frame of the
  gradient-spread explorer (:func:`plot_gradient_spread`).

Values are nats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from jax.typing import ArrayLike
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch, Patch

from vae_book import distributions as D

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_variance",
    "plot_elbo_sweep",
    "plot_iwae",
    "plot_aggregate_posterior",
    "draw_reparameterization_graph",
    "plot_elbo_gap",
    "plot_gradient_spread",
]


# --------------------------------------------------------------------------------------------------
# Chapter 5: gradient-estimator variances
# --------------------------------------------------------------------------------------------------


def plot_variance(ax: Axes, x: ArrayLike, curves: Sequence[tuple[str, str, ArrayLike, ArrayLike, ArrayLike]], *,
                  xlabel: str, ylabel: str = "variance", title: str | None = None) -> Axes:
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
# Chapter 4: the ELBO, the importance-weighted bound, the aggregate posterior
# --------------------------------------------------------------------------------------------------


def plot_elbo_sweep(ax: Axes, values: ArrayLike, elbo: ArrayLike, log_px: ArrayLike, *, xlabel: str,
                    best: float | None = None, title: str | None = None) -> Axes:
    r"""ELBO against one variational parameter, with :math:`\log p(x)` as a line and the gap (the KL)
    shaded.

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


def plot_iwae(axes: Sequence[Axes] | np.ndarray, ks: ArrayLike, estimates: Sequence[ArrayLike], log_px: ArrayLike, *,
              elbo: float | None = None, chi2: float | None = None) -> Sequence[Axes] | np.ndarray:
    r"""Two panels: :math:`\mathcal L_K` (mean and spread over repeats) against K, and the gap against K.

    ``estimates`` is the list of per-K estimate arrays from :func:`iwae_repeats`; ``elbo`` the exact ELBO
    (drawn at K = 1); ``chi2`` draws the large-K prediction :math:`\chi^2/(2K)` of the gap. Returns ``axes``.
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


def plot_aggregate_posterior(axes: Sequence[Axes] | np.ndarray, post_means: ArrayLike, post_cov: ArrayLike,
                             key_samples: ArrayLike, *, num_ellipses: int = 12) -> Sequence[Axes] | np.ndarray:
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
    log_sd = 0.5 * math.log(post_cov[0, 0])
    for i in range(min(5, len(post_means))):
        dens = np.exp(np.asarray(D.gaussian_log_prob(t, post_means[i, 0], log_sd)))
        ax.plot(t, dens, color="C1", lw=1, alpha=0.8, label=r"$q(z_1\mid x_i)$" if i == 0 else None)
    ax.hist(np.asarray(key_samples)[:, 0], bins=60, range=(-4, 4), density=True, color="C0", alpha=0.4,
            label=r"aggregate $q(z_1)=\frac{1}{N}\sum_i q(z_1\mid x_i)$")
    ax.plot(t, np.exp(np.asarray(D.standard_normal_log_prob(t))), "k--", lw=1.5, label="prior $N(0,1)$")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("density")
    ax.set_title("together they fill the prior")
    ax.legend(fontsize=8, loc="upper left")
    return axes


# --------------------------------------------------------------------------------------------------
# Chapter 5: the computational graph of the reparameterization trick
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
        ax.text(6.3, -1.2,
                "no derivative through a sampling step:\nthe reconstruction term gives\nno gradient to $\\phi$",
                color=_GRAD, ha="center", va="top", fontsize=9)
    ax.set_xlim(0, 11.9)
    ax.set_ylim(-2.4, 2.1)
    ax.set_aspect("equal")
    ax.axis("off")


def draw_reparameterization_graph() -> Figure:
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


# --------------------------------------------------------------------------------------------------
# Explorer frames (chapters 4 and 5)
# --------------------------------------------------------------------------------------------------


def plot_elbo_gap(axes: Sequence[Axes], post_mean: ArrayLike, post_cov: ArrayLike, q_mean: ArrayLike,
                  q_std: ArrayLike, log_px: float, elbo: float, *, limits: tuple[tuple[float, float], ...],
                  nats: tuple[float, float]) -> Sequence[Axes]:
    r"""Two panels: a diagonal :math:`q(z\mid x)` against the exact posterior, and the gap it leaves.

    Left, in the 2-D latent plane: the 1- and 2-standard-deviation ellipses of the posterior
    :math:`\mathcal N(` ``post_mean``, ``post_cov`` :math:`)` and of
    :math:`q = \mathcal N(` ``q_mean``, :math:`\operatorname{diag}` ``q_std`` :math:`^2)`, within
    ``limits`` ``((z1 low, z1 high), (z2 low, z2 high))``. Right: :math:`\log p(x)`, the ELBO
    :math:`\mathcal L` and the gap :math:`\log p(x) - \mathcal L = \mathrm{KL}(q\,\|\,p(z\mid x))`
    between them, on the fixed range ``nats`` so that frames of an explorer line up. Returns ``axes``.
    """
    ax, ax_gap = axes
    post_mean, post_cov = np.asarray(post_mean, np.float64), np.asarray(post_cov, np.float64)
    q_mean, q_std = np.asarray(q_mean, np.float64), np.asarray(q_std, np.float64)
    for nstd, alpha in ((1.0, 1.0), (2.0, 0.5)):
        _ellipse(ax, post_mean, post_cov, nstd=nstd, color="k", lw=1.5, alpha=alpha)
        _ellipse(ax, q_mean, np.diag(q_std**2), nstd=nstd, color="C0", lw=2, alpha=alpha)
    ax.plot(*post_mean, "k+", ms=10, mew=1.5)
    ax.plot(*q_mean, "o", color="C0", ms=5)
    ax.legend(handles=[Line2D([], [], color="k", lw=1.5, label=r"posterior $p(z\mid x)$"),
                       Line2D([], [], color="C0", lw=2, label=r"$q(z\mid x)$")],
              fontsize=8, loc="upper right")
    ax.set(xlim=limits[0], ylim=limits[1], xlabel="$z_1$", ylabel="$z_2$", aspect="equal",
           title="1 and 2 standard deviations")
    ax.grid(alpha=0.3)
    gap = float(log_px) - float(elbo)
    ax_gap.axhspan(float(elbo), float(log_px), color="C1", alpha=0.35, label=r"gap = KL$(q\,\|\,p(z\mid x))$")
    ax_gap.axhline(float(log_px), color="k", ls="--", lw=1.5, label=r"$\log p(x)$")
    ax_gap.axhline(float(elbo), color="C0", lw=3, label=r"ELBO $\mathcal{L}(x)$")
    ax_gap.set(ylim=nats, xticks=[], ylabel="nats", title=f"gap {gap:.3f} nats")
    ax_gap.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.02), frameon=False)
    ax_gap.grid(alpha=0.3, axis="y")
    return axes


def plot_gradient_spread(ax: Axes, samples: dict[str, ArrayLike], true_value: float, *,
                         xlim: tuple[float, float], bins: int = 60, title: str | None = None) -> Axes:
    """Histograms of single-sample gradient estimates on a fixed range, with the true gradient.

    ``samples`` maps an estimator's label to its estimates (n,); each legend entry gives the
    estimates' standard deviation and the share that falls outside ``xlim`` (a fixed range, so that
    frames of an explorer compare). Returns the Axes.
    """
    edges = np.linspace(*xlim, bins + 1)
    for i, (label, g) in enumerate(samples.items()):
        g = np.asarray(g, np.float64)
        outside = float(np.mean((g < xlim[0]) | (g > xlim[1])))
        ax.hist(g, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=f"C{i}",
                label=f"{label}: sd {g.std(ddof=1):.3g}" + (f", {100 * outside:.0f}% off the axis"
                                                           if outside >= 0.005 else ""))
        ax.hist(g, bins=edges, density=True, histtype="step", color=f"C{i}", lw=1.2)
    ax.axvline(float(true_value), color="k", ls="--", lw=1.5, label=f"true gradient {float(true_value):g}")
    ax.set(xlim=xlim, yscale="log", ylim=(1e-3, 50), xlabel="single-sample estimate",
           ylabel="density (log scale)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return ax
