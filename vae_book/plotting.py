"""Figures from plain arrays: image grids, training curves, latent scatter plots, manifold grids,
prior contours, overlaid histograms, occupancy grids of 2-D codes and rate–distortion curves.

Every function takes NumPy/JAX arrays (never a model), draws on a Matplotlib ``Axes`` (a new figure
if ``ax`` is None) with labelled axes, and returns the ``Axes`` (or ``Figure`` for multi-panel
plots). Images are NHWC with values in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
from jax.typing import ArrayLike

from vae_book._checks import as_float_images, check_array, check_callable, check_images, check_positive_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "axes_row",
    "image_grid",
    "show_images",
    "compare_rows",
    "latent_scatter",
    "manifold_grid",
    "train_eval_curves",
    "prior_contours",
    "histograms",
    "occupancy_grid",
    "rate_distortion",
    "figure_image",
]


def image_grid(images: ArrayLike, ncols: int | None = None, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile images (N, H, W, C) into one array ((H+pad)*rows - pad, (W+pad)*cols - pad, C).

    ``ncols`` defaults to ceil(sqrt(N)). Empty cells and padding are filled with ``pad_value``.
    """
    images = np.asarray(as_float_images(check_images(images, "images")))
    n, h, w, c = images.shape
    ncols = int(np.ceil(np.sqrt(n))) if ncols is None else check_positive_int(ncols, "ncols")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"`pad` must be a non-negative integer, got {pad!r}.")
    nrows = int(np.ceil(n / ncols))
    out = np.full(((h + pad) * nrows - pad, (w + pad) * ncols - pad, c), pad_value, np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = images[i]
    return out


def _imshow(ax, grid, extent=None):
    """Draw an image (H, W, C) in [0, 1], grey or RGB; without an ``extent`` (data coordinates), without ticks."""
    kw = dict(interpolation="nearest", extent=extent)
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0, **kw)
    else:
        ax.imshow(np.clip(grid, 0.0, 1.0), **kw)
    if extent is None:
        ax.set_xticks([])
        ax.set_yticks([])


def show_images(images: ArrayLike, ncols: int | None = None, title: str | None = None, ax: Axes | None = None) -> Axes:
    """Show a grid of images (N, H, W, C) in [0, 1] on ``ax``; returns the Axes."""
    grid = image_grid(images, ncols)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(10, 0.6 * grid.shape[1] / 10 + 2),) * 2)
    _imshow(ax, grid)
    if title:
        ax.set_title(title)
    return ax


def compare_rows(rows: Mapping[str, object], ax: Axes | None = None, col_labels: Sequence[str] | None = None) -> Axes:
    """Show several image rows of equal length one above the other, each labelled on the left.

    ``rows`` maps a label (e.g. "original", "reconstruction") to images (N, H, W, C). Returns the Axes.
    """
    if not rows:
        raise ValueError("`rows` must contain at least one labelled row of images, got an empty mapping.")
    arrays = [np.asarray(as_float_images(check_images(v, f"rows[{k!r}]"))) for k, v in rows.items()]
    n = arrays[0].shape[0]
    if any(a.shape != arrays[0].shape for a in arrays):
        shapes = {k: tuple(np.shape(v)) for k, v in rows.items()}
        raise ValueError(f"every row in `rows` must have the same shape, got {shapes}.")
    stacked = np.concatenate(arrays, axis=0)
    grid = image_grid(stacked, ncols=n)
    h = arrays[0].shape[1]
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, 0.9 * n + 1.5), 0.9 * len(arrays) + 0.4))
    _imshow(ax, grid)
    ax.set_yticks([(h + 1) * i + h / 2 for i in range(len(arrays))])
    ax.set_yticklabels(list(rows.keys()))
    if col_labels is not None:
        w = arrays[0].shape[2]
        ax.set_xticks([(w + 1) * i + w / 2 for i in range(n)])
        ax.set_xticklabels(col_labels, fontsize=8)
    ax.tick_params(length=0)
    return ax


def latent_scatter(codes: ArrayLike, labels: ArrayLike | None = None, ax: Axes | None = None, *,
                   title: str | None = None, s: float = 4.0, label_name: str = "digit") -> Axes:
    """Scatter 2-D codes (N, 2) coloured by integer ``labels`` (N,), with a legend per class."""
    codes = np.asarray(check_array(codes, "codes", shape=(None, 2)))
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=s, alpha=0.6)
    else:
        labels = np.asarray(labels)
        if labels.shape != (codes.shape[0],):
            raise ValueError(f"`labels` must have shape ({codes.shape[0]},), got {labels.shape}.")
        cmap = plt.get_cmap("tab10")
        for i, lab in enumerate(np.unique(labels)):
            m = labels == lab
            ax.scatter(codes[m, 0], codes[m, 1], s=s, alpha=0.6, color=cmap(i % 10), label=str(lab))
        ax.legend(title=label_name, markerscale=3, fontsize=8, loc="best")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    return ax


def manifold_grid(decode: Callable[[np.ndarray], ArrayLike], z1_range: tuple[float, float],
                  z2_range: tuple[float, float], n: int = 15, ax: Axes | None = None, *,
                  title: str | None = None) -> Axes:
    """Decode an n x n grid of 2-D codes and show the images placed at their codes.

    ``decode`` maps codes (M, 2) to images (M, H, W, C) in [0, 1]. Row 0 of the picture is the
    largest z2 so that the picture's axes match a scatter plot of the codes.
    """
    n = check_positive_int(n, "n")
    check_callable(decode, "decode")
    z1 = np.linspace(*z1_range, n)
    z2 = np.linspace(*z2_range, n)[::-1]
    zz = np.stack(np.meshgrid(z1, z2), axis=-1).reshape(-1, 2).astype(np.float32)
    images = np.asarray(decode(zz))
    grid = image_grid(images, ncols=n, pad=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    _imshow(ax, grid, extent=(z1[0], z1[-1], z2[-1], z2[0]))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return ax


def _refresh_legend(ax):
    """Redraw the legend of ``ax`` with every labelled artist, keeping an existing legend's title.

    With more than five entries the legend goes outside the Axes, to the right, so it hides no data.
    """
    old = ax.get_legend()
    title = old.get_title().get_text() if old is not None else None
    handles, labels = ax.get_legend_handles_labels()
    kw = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0) if len(labels) > 5 else {}
    ax.legend(handles, labels, title=title or None, fontsize=8, markerscale=2, **kw)


def train_eval_curves(train: Mapping[str, Sequence], eval: Mapping[str, Sequence], keys: Sequence[str], *,
                      titles: Sequence[str] | None = None, step_key: str = "step",
                      ylabel: str | Sequence[str] = "nats per image", axes: Sequence[Axes] | None = None,
                      skip_fraction: float = 0.0) -> Figure:
    """One panel per quantity, each with its training curve and its held-out curve.

    ``train`` and ``eval`` are the two histories of a run (``run.history.train`` / ``.eval``: dicts of
    equal-length sequences aligned with ``history[step_key]``); ``keys`` are the quantities to plot
    (e.g. ``["loss", "recon", "kl"]``, nats per image), ``titles`` one panel title per key (default:
    the keys), ``ylabel`` one label for all panels or one per key. ``axes`` is a sequence of
    ``len(keys)`` Axes, or None for a new row of panels. With ``skip_fraction`` > 0 the vertical
    range of each panel leaves out the training curve's first ``skip_fraction`` of the steps (where
    values can move by orders of magnitude); every point is still drawn. Returns the Figure.
    """
    keys = list(keys)
    if not keys:
        raise ValueError("`keys` must name at least one quantity to plot, got an empty sequence.")
    for name, hist in (("train", train), ("eval", eval)):
        missing = [k for k in (*keys, step_key) if k not in hist]
        if missing:
            raise ValueError(f"`{name}` has no {missing}; available keys: {sorted(hist)}.")
    titles = list(titles) if titles is not None else keys
    if len(titles) != len(keys):
        raise ValueError(f"`titles` must have one entry per key ({len(keys)}), got {len(titles)}.")
    ylabels = [ylabel] * len(keys) if isinstance(ylabel, str) else list(ylabel)
    if len(ylabels) != len(keys):
        raise ValueError(f"`ylabel` must be one label or one per key ({len(keys)}), got {len(ylabels)}.")
    if not (isinstance(skip_fraction, (int, float)) and 0.0 <= skip_fraction < 1.0):
        raise ValueError(f"`skip_fraction` must be a number in [0, 1), got {skip_fraction!r}.")
    axes = axes_row(axes, len(keys), "key", panel_size=(4.2, 3.4))
    steps = np.asarray(train[step_key], dtype=float)
    late = steps > steps.min() + skip_fraction * (steps.max() - steps.min()) if len(steps) else steps.astype(bool)
    for ax, k, title, label in zip(axes, keys, titles, ylabels):
        tr, ev = np.asarray(train[k], dtype=float), np.asarray(eval[k], dtype=float)
        ax.plot(steps, tr, label="training batches", lw=1.2)
        ax.plot(np.asarray(eval[step_key]), ev, "o-", ms=3.5, label="held-out images", lw=1.2)
        if skip_fraction > 0 and late.any():
            shown = np.concatenate([tr[late], ev])
            pad = 0.05 * (shown.max() - shown.min()) + 1e-6
            ax.set_ylim(shown.min() - pad, shown.max() + pad)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes[0].figure


def prior_contours(ax: Axes, masses: Sequence[float] = (0.5, 0.9, 0.99), *, color: str = "0.15",
                   label: bool = True) -> Axes:
    r"""Draw the circles that enclose the probability ``masses`` of the 2-D prior :math:`\mathcal N(0, I_2)`.

    The squared radius of a 2-D standard normal is :math:`\chi^2_2`, so the circle holding mass
    :math:`m` has radius :math:`r = \sqrt{-2\log(1-m)}` (1.18, 2.15, 3.03 for 0.5, 0.9, 0.99).
    Each circle is labelled with its mass; with ``label=True`` one legend entry names them.
    Returns the Axes.
    """
    masses = np.asarray(masses, dtype=np.float64).ravel()
    if masses.size == 0 or not np.all((masses > 0) & (masses < 1)):
        raise ValueError(f"`masses` must be probabilities strictly between 0 and 1, got {masses.tolist()}.")
    t = np.linspace(0.0, 2.0 * np.pi, 200)
    for i, m in enumerate(np.sort(masses)):
        r = np.sqrt(-2.0 * np.log1p(-m))
        ax.plot(r * np.cos(t), r * np.sin(t), "--", color=color, lw=1.0,
                label=r"$\mathcal{N}(0, I)$: " + ", ".join(f"{v:.0%}" for v in np.sort(masses)) + " mass"
                if (label and i == 0) else None)
        ax.annotate(f"{m:.0%}", (r * np.cos(np.pi / 4), r * np.sin(np.pi / 4)), color=color, fontsize=7)
    if label:
        _refresh_legend(ax)
    return ax


def histograms(samples: Mapping[str, object], ax: Axes | None = None, *, bins: int = 50, xlabel: str,
               ylabel: str = "density", title: str | None = None, logx: bool = False,
               vlines: Mapping[str, float] | None = None) -> Axes:
    """Overlay the histograms (normalised to densities) of several samples on shared bins.

    ``samples`` maps a legend label to a 1-D array of values; ``vlines`` maps a label to a value
    drawn as a vertical dotted line (e.g. a threshold). ``logx`` uses logarithmic bins and axis
    (all values must then be positive). Returns the Axes.
    """
    if not samples:
        raise ValueError("`samples` must contain at least one labelled array, got an empty mapping.")
    bins = check_positive_int(bins, "bins")
    arrays = {}
    for k, v in samples.items():
        a = np.asarray(v, dtype=np.float64).ravel()
        if a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"`samples[{k!r}]` must be a non-empty array of finite values.")
        if logx and a.min() <= 0:
            raise ValueError(f"`samples[{k!r}]` must be positive for `logx=True`, got a minimum of {a.min():.4g}.")
        arrays[k] = a
    lo = min(a.min() for a in arrays.values())
    hi = max(a.max() for a in arrays.values())
    hi = hi if hi > lo else lo + 1.0
    edges = np.geomspace(lo, hi, bins + 1) if logx else np.linspace(lo, hi, bins + 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for k, a in arrays.items():
        ax.hist(a, bins=edges, density=True, histtype="step", lw=1.5, label=k)
    cmap = plt.get_cmap("Dark2")
    for i, (k, v) in enumerate((vlines or {}).items()):
        ax.axvline(v, ls=":", lw=1.5, color=cmap(i % 8), label=k)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def occupancy_grid(codes: ArrayLike, bins: int = 20,
                   extent: tuple[tuple[float, float], tuple[float, float]] | None = None,
                   ax: Axes | None = None, *, color: str = "tab:red", alpha: float = 0.25) -> Axes:
    """Shade the cells of a ``bins`` x ``bins`` grid over 2-D codes (N, 2) that contain no code.

    ``extent`` is ``((z1_min, z1_max), (z2_min, z2_max))``, by default the codes' bounding box; the
    cells are those of ``np.histogram2d(codes[:, 0], codes[:, 1], bins, range=extent)``. The legend
    entry gives the fraction of empty cells. Draw it on the Axes of a scatter of the codes (e.g.
    :func:`latent_scatter`). Returns the Axes.
    """
    codes = np.asarray(check_array(codes, "codes", shape=(None, 2), finite=True), np.float64)
    bins = check_positive_int(bins, "bins")
    if extent is None:
        extent = tuple(zip(codes.min(0), codes.max(0)))
    (x0, x1), (y0, y1) = extent
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"`extent` must be ((z1_min, z1_max), (z2_min, z2_max)) with min < max, got {extent!r}.")
    counts, xe, ye = np.histogram2d(codes[:, 0], codes[:, 1], bins=bins, range=[[x0, x1], [y0, y1]])
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    empty = np.ma.masked_where(counts.T > 0, np.ones_like(counts.T))
    ax.pcolormesh(xe, ye, empty, cmap=mcolors.ListedColormap([color]), alpha=alpha,
                  edgecolors="none", zorder=0)
    for e in xe:
        ax.axvline(e, color="0.8", lw=0.4, zorder=0)
    for e in ye:
        ax.axhline(e, color="0.8", lw=0.4, zorder=0)
    ax.plot([], [], "s", color=color, alpha=alpha, ms=4, label=f"empty cell ({np.mean(counts == 0):.0%})")
    _refresh_legend(ax)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return ax


def axes_row(axes: Sequence[Axes] | None, n: int, per: str, *,
             panel_size: tuple[float, float] = (4.0, 3.0)) -> Sequence[Axes] | np.ndarray:
    """``axes`` checked to hold ``n`` Axes (one per ``per``), or a new row of ``n`` panels if None."""
    if axes is None:
        _, grid = plt.subplots(1, n, figsize=(panel_size[0] * n, panel_size[1]), squeeze=False)
        return grid[0]
    if len(axes) != n:
        raise ValueError(f"`axes` must hold one Axes per {per} ({n}), got {len(axes)}.")
    return axes


def rate_distortion(rates: ArrayLike, distortions: ArrayLike, ax: Axes | None = None, *,
                    point_labels: Sequence[str] | None = None, label: str | None = None, elbo_lines: bool = True,
                    extra: Mapping[str, tuple[float, float]] | None = None) -> Axes:
    """A rate–distortion curve: one point per model, joined in the order given, with lines of equal ELBO.

    Args:
        rates, distortions: (P,) held-out rate R and distortion D of each model, nats per image.
        point_labels: P strings written next to the points (e.g. ``"β=0.5"``).
        label: the legend entry of the curve.
        elbo_lines: draw dotted lines of equal ELBO, D + R = const, through the best point and
            10 and 30 nats worse.
        extra: maps a legend label to a ``(rate, distortion)`` pair drawn as a separate marker
            (e.g. another model).

    Rate on the x axis, distortion on the y axis. Returns the Axes.
    """
    r = np.asarray(check_array(rates, "rates", ndim=1, finite=True), np.float64)
    d = np.asarray(check_array(distortions, "distortions", shape=r.shape, finite=True), np.float64)
    if r.size == 0:
        raise ValueError("`rates` must hold at least one model's rate, got an empty array.")
    if point_labels is not None and len(point_labels) != r.size:
        raise ValueError(f"`point_labels` must have one label per point ({r.size}), got {len(point_labels)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.8))
    ax.plot(r, d, "o-", color="C0", label=label, zorder=3)
    for text, rr, dd in zip(point_labels or (), r, d):
        ax.annotate(text, (rr, dd), textcoords="offset points", xytext=(6, 4), fontsize=9)
    if elbo_lines:
        lo, hi = ax.get_xlim()
        xs = np.linspace(0, hi * 1.15, 2)
        best = float(np.min(r + d))
        for i, c in enumerate(best + np.array([0.0, 10.0, 30.0])):
            ax.plot(xs, c - xs, ":", color="0.5", lw=1, label="equal ELBO: D + R = const" if i == 0 else None)
        ax.set_xlim(0, hi * 1.15)
        ax.set_ylim(min(d) - 0.1 * np.ptp(d) - 1, max(d) + 0.1 * np.ptp(d) + 1)
    for i, (name, (rr, dd)) in enumerate((extra or {}).items()):
        ax.plot([rr], [dd], "s", color=f"C{i + 1}", label=name)
    ax.set_xlabel("rate R = E KL(q(z|x) || p(z))   [nats per image]")
    ax.set_ylabel("distortion D = −E log p(x|z)   [nats per image]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def figure_image(fig: Figure, *, dpi: float | None = None) -> np.ndarray:
    """The pixels of a Matplotlib figure, ``(H, W, 3)`` float32 in [0, 1] on a white background, and
    the figure closed (so a loop that draws one figure per explorer frame does not pile them up).

    Args:
        fig: the figure, drawn with the non-interactive Agg renderer (whatever the backend).
        dpi: dots per inch; default ``2 * fig.dpi`` — twice the size, to be shown at half its pixel
            width (``widgets.explore(..., width=...)``) so that it is sharp on high-DPI screens.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as _Figure

    if not isinstance(fig, _Figure):
        raise ValueError(f"`fig` must be a matplotlib Figure, got {type(fig).__name__}.")
    if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 10 <= dpi <= 1000):
        raise ValueError(f"`dpi` must be None or a number in [10, 1000], got {dpi!r}.")
    dpi = float(2 * fig.dpi if dpi is None else dpi)
    try:
        canvas = FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        fig.patch.set_facecolor("white")
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float32) / 255.0
    finally:
        plt.close(fig)
    return np.ascontiguousarray(rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:]))
