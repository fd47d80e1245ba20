"""Figures from plain arrays: image grids, training curves, latent scatter plots, manifold grids.

Every function takes NumPy/JAX arrays (never a model), draws on a Matplotlib ``Axes`` (a new figure
if ``ax`` is None) with labelled axes, and returns the ``Axes`` (or ``Figure`` for multi-panel
plots). Images are NHWC with values in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from vae_book._checks import check_array, check_images

__all__ = [
    "image_grid",
    "show_images",
    "compare_rows",
    "training_curves",
    "latent_scatter",
    "manifold_grid",
]


def image_grid(images, ncols: int | None = None, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile images (N, H, W, C) into one array ((H+pad)*rows - pad, (W+pad)*cols - pad, C).

    ``ncols`` defaults to ceil(sqrt(N)). Empty cells and padding are filled with ``pad_value``.
    """
    images = np.asarray(check_images(images, "images"))
    n, h, w, c = images.shape
    ncols = int(ncols or np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    out = np.full(((h + pad) * nrows - pad, (w + pad) * ncols - pad, c), pad_value, np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = images[i]
    return out


def _imshow(ax, grid):
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(np.clip(grid, 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def show_images(images, ncols: int | None = None, title: str | None = None, ax=None):
    """Show a grid of images (N, H, W, C) in [0, 1] on ``ax``; returns the Axes."""
    grid = image_grid(images, ncols)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(10, 0.6 * grid.shape[1] / 10 + 2),) * 2)
    _imshow(ax, grid)
    if title:
        ax.set_title(title)
    return ax


def compare_rows(rows: Mapping[str, object], ax=None, col_labels: Sequence[str] | None = None):
    """Show several image rows of equal length one above the other, each labelled on the left.

    ``rows`` maps a label (e.g. "original", "reconstruction") to images (N, H, W, C). Returns the Axes.
    """
    if not rows:
        raise ValueError("`rows` must contain at least one labelled row of images, got an empty mapping.")
    arrays = [np.asarray(check_images(v, f"rows[{k!r}]")) for k, v in rows.items()]
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


def training_curves(history: Mapping[str, Sequence], keys: Sequence[str], *, step_key: str = "step",
                    ax=None, ylabel: str = "nats per image", title: str | None = None, logy: bool = False):
    """Plot ``history[k]`` against ``history[step_key]`` for each k in ``keys`` on one Axes.

    ``history`` is a dict of equal-length sequences (e.g. the train or eval history of
    :func:`vae_book.train.fit`). Missing keys raise ValueError listing the available ones.
    """
    missing = [k for k in (*keys, step_key) if k not in history]
    if missing:
        raise ValueError(f"`history` has no {missing}; available keys: {sorted(history)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.asarray(history[step_key])
    for k in keys:
        ax.plot(steps, np.asarray(history[k]), label=k)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def latent_scatter(codes, labels=None, ax=None, *, title: str | None = None, s: float = 4.0,
                   label_name: str = "digit"):
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


def manifold_grid(decode, z1_range, z2_range, n: int = 15, ax=None, *, title: str | None = None):
    """Decode an n x n grid of 2-D codes and show the images placed at their codes.

    ``decode`` maps codes (M, 2) to images (M, H, W, C) in [0, 1]. Row 0 of the picture is the
    largest z2 so that the picture's axes match a scatter plot of the codes.
    """
    z1 = np.linspace(*z1_range, n)
    z2 = np.linspace(*z2_range, n)[::-1]
    zz = np.stack(np.meshgrid(z1, z2), axis=-1).reshape(-1, 2).astype(np.float32)
    images = np.asarray(decode(zz))
    grid = image_grid(images, ncols=n, pad=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    kw = dict(extent=(z1[0], z1[-1], z2[-1], z2[0]), interpolation="nearest")
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=1, **kw)
    else:
        ax.imshow(np.clip(grid, 0, 1), **kw)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return ax
