"""Procedural coloured sprites (square, circle, triangle) with known generative factors.

A small dSprites-like data set for the disentanglement chapters: :func:`shapes` draws the factors of
:data:`FACTOR_NAMES` from seeded random streams and :func:`render_shapes` draws the sprites from them,
so any factor tuple, sampled or chosen by hand, can be rendered.
"""

from __future__ import annotations

import numpy as np

from vae_book._checks import check_positive_int
from vae_book._checks import check_seed
from vae_book.data.base import Dataset

__all__ = ["shapes", "render_shapes", "SHAPE_NAMES", "FACTOR_NAMES", "SHAPE_SYMMETRY"]

#: the shape classes, in the order of the ``shape`` factor's integer codes
SHAPE_NAMES = ("square", "circle", "triangle")
#: the generative factors of every ``shapes`` image (keys of ``Dataset.train_factors``)
FACTOR_NAMES = ("shape", "hue", "scale", "pos_x", "pos_y", "rotation")

#: Order of the rotational symmetry of each shape of :data:`SHAPE_NAMES` (square 4, circle 1,
#: triangle 3), an int64 array indexed by the ``shape`` factor: a rotation by ``2 pi / k`` gives the
#: same image, so ``rotation`` is drawn in ``[0, 2 pi / k)`` (and is 0 for circles, ``k = 1``).
SHAPE_SYMMETRY = np.array([4, 1, 3], dtype=np.int64)
SHAPE_SYMMETRY.flags.writeable = False

_SCALE_RANGE = (0.25, 0.5)
_BACKGROUND = 0.0


def _hsv_to_rgb(hue: np.ndarray) -> np.ndarray:
    """Fully saturated, full-value colours: ``(...,)`` hue in [0, 1) -> ``(..., 3)`` RGB in [0, 1]."""
    h6 = 6.0 * np.asarray(hue, dtype=np.float32)[..., None]
    r = np.abs(h6 - 3.0) - 1.0
    g = 2.0 - np.abs(h6 - 2.0)
    b = 2.0 - np.abs(h6 - 4.0)
    return np.clip(np.concatenate([r, g, b], axis=-1), 0.0, 1.0)


def _sdf(kind: int, px: np.ndarray, py: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Signed distance (in pixels, negative inside) to a shape of circumradius ``radius``.

    ``px, py`` are coordinates in the shape's own frame (centre at 0, already un-rotated).
    """
    if kind == 1:  # circle
        return np.hypot(px, py) - radius
    if kind == 0:  # square: half side = R / sqrt(2)
        half = radius / np.sqrt(2.0)
        qx, qy = np.abs(px) - half, np.abs(py) - half
        outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
        return outside + np.minimum(np.maximum(qx, qy), 0.0)
    # equilateral triangle centred on its centroid (Inigo Quilez's exact SDF); half side = R*sqrt(3)/2
    k = np.sqrt(3.0)
    r = radius * (k / 2.0)
    x = np.abs(px) - r
    y = py + r / k
    fold = x + k * y > 0.0
    x, y = np.where(fold, (x - k * y) / 2.0, x), np.where(fold, (-k * x - y) / 2.0, y)
    x = x - np.clip(x, -2.0 * r, 0.0)
    return -np.hypot(x, y) * np.sign(y)


def render_shapes(factors: dict[str, np.ndarray], size: int = 32) -> np.ndarray:
    """Render sprites from their generative factors (vectorised, anti-aliased).

    Each sprite is drawn from a signed distance function ``d`` (in pixels, negative inside); the
    fraction of a pixel it covers is approximated by ``clip(0.5 - d, 0, 1)``, which gives smooth
    edges without supersampling.

    Parameters
    ----------
    factors : dict[str, np.ndarray]
        Arrays of length N for every name in :data:`FACTOR_NAMES`:
        ``shape`` (int, index into :data:`SHAPE_NAMES`), ``hue`` in [0, 1),
        ``scale`` (diameter of the sprite's circumscribed circle, fraction of the image side),
        ``pos_x``, ``pos_y`` (centre, fraction of the side, measured from the left / top edge) and
        ``rotation`` (radians, counter-clockwise on screen).
    size : int, default 32
        Side of the square image in pixels, at least 8.

    Returns
    -------
    np.ndarray
        ``(N, size, size, 3)`` float32 RGB images in [0, 1] on a black background.
    """
    size = check_positive_int(size, "size")
    if size < 8:
        raise ValueError(f"`size` must be at least 8 pixels, got {size}.")
    missing = [k for k in FACTOR_NAMES if k not in factors]
    if missing:
        raise ValueError(
            f"`factors` must have the keys {FACTOR_NAMES}, got {tuple(factors)} (missing {missing})."
        )
    f = {k: np.asarray(factors[k]) for k in FACTOR_NAMES}
    n = len(f["shape"])
    for k, v in f.items():
        if v.shape != (n,):
            raise ValueError(f"`factors[{k!r}]` must have shape ({n},), got {v.shape}.")
    if n and not np.isin(f["shape"], np.arange(len(SHAPE_NAMES))).all():
        raise ValueError(
            f"`factors['shape']` must hold indices 0..{len(SHAPE_NAMES) - 1} into {SHAPE_NAMES}, "
            f"got values {np.unique(f['shape'])}."
        )

    images = np.empty((n, size, size, 3), dtype=np.float32)
    centres = np.arange(size, dtype=np.float32) + 0.5  # pixel centres, in pixels
    colour = _hsv_to_rgb(f["hue"]).astype(np.float32)  # (N, 3)
    chunk = max(1, 2**21 // (size * size))  # bound the memory of the temporaries (~8 MB each)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        m = sl.stop - sl.start
        cx = (f["pos_x"][sl] * size).astype(np.float32)[:, None, None]
        cy = (f["pos_y"][sl] * size).astype(np.float32)[:, None, None]
        radius = (f["scale"][sl] * size / 2.0).astype(np.float32)[:, None, None]
        theta = f["rotation"][sl].astype(np.float32)[:, None, None]
        dx = centres[None, None, :] - cx  # (m, 1, W)
        dy = cy - centres[None, :, None]  # (m, H, 1), y pointing up so rotation is counter-clockwise
        cos, sin = np.cos(theta), np.sin(theta)
        # rotate the pixel grid by -theta into the sprite's frame
        px = cos * dx + sin * dy
        py = -sin * dx + cos * dy
        sdf = np.empty((m, size, size), dtype=np.float32)
        kinds = f["shape"][sl]
        for kind in range(len(SHAPE_NAMES)):
            sel = kinds == kind
            if sel.any():
                sdf[sel] = _sdf(kind, px[sel], py[sel], radius[sel])
        coverage = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
        images[sl] = _BACKGROUND + coverage * (colour[sl, None, None, :] - _BACKGROUND)
    return images


def _sample_factors(n: int, seed: int, stream: int, size: int) -> dict[str, np.ndarray]:
    """Draw ``n`` factor tuples. Each factor has its own random stream ``(seed, stream, i)``, so the
    first ``k`` draws do not depend on ``n`` and train (stream 0) / test (stream 1) never overlap."""
    rngs = [np.random.default_rng([seed, stream, i]) for i in range(len(FACTOR_NAMES))]
    shape = rngs[0].integers(0, len(SHAPE_NAMES), size=n).astype(np.int64)
    hue = rngs[1].random(n, dtype=np.float32)
    lo, hi = _SCALE_RANGE
    scale = (lo + (hi - lo) * rngs[2].random(n)).astype(np.float32)
    # keep the circumscribed circle (plus one pixel of anti-aliasing) inside the image: this uses
    # the sprite's circumradius, so any rotation fits
    margin = scale / 2.0 + 1.0 / size
    pos_x = (margin + (1.0 - 2.0 * margin) * rngs[3].random(n)).astype(np.float32)
    pos_y = (margin + (1.0 - 2.0 * margin) * rngs[4].random(n)).astype(np.float32)
    period = np.where(shape == 1, 0.0, 2.0 * np.pi / SHAPE_SYMMETRY[shape])
    rotation = (period * rngs[5].random(n)).astype(np.float32)
    # float32 rounding of a value just below 1 may round up to 1.0: fold it back into [0, 1)
    hue = np.where(hue >= 1.0, np.float32(0.0), hue).astype(np.float32)
    rotation = np.where(rotation >= period, np.float32(0.0), rotation).astype(np.float32)
    return dict(shape=shape, hue=hue, scale=scale, pos_x=pos_x, pos_y=pos_y, rotation=rotation)


def shapes(num_train: int = 10000, num_test: int = 1000, size: int = 32, seed: int = 0) -> Dataset:
    """Coloured sprites (square, circle, triangle) with known generative factors.

    A small dSprites-like data set for the disentanglement chapters: each image shows one sprite,
    anti-aliased, on a black background, and the factors that generated it are returned with it.

    ============  ============================================================================
    factor        meaning
    ============  ============================================================================
    ``shape``     int64 index into :data:`SHAPE_NAMES` (0 square, 1 circle, 2 triangle)
    ``hue``       colour hue in [0, 1) (HSV with full saturation and value)
    ``scale``     diameter of the sprite's circumscribed circle, fraction of the side, [0.25, 0.5]
    ``pos_x``     centre, fraction of the side from the left edge; the sprite stays inside
    ``pos_y``     centre, fraction of the side from the top edge; the sprite stays inside
    ``rotation``  radians in [0, 2 pi / k) with k the shape's symmetry order (4, -, 3); 0 for circles
    ============  ============================================================================

    Parameters
    ----------
    num_train, num_test : int
        Number of training / test images.
    size : int, default 32
        Image side in pixels (at least 8).
    seed : int, default 0
        Non-negative seed. Train and test use disjoint random streams derived from it, and each
        factor has its own stream, so the first ``k`` images do not depend on ``num_train``.

    Returns
    -------
    Dataset
        ``(N, size, size, 3)`` float32 images in [0, 1]; ``*_labels`` = the shape index (int64);
        ``*_factors`` = dict of the six factors above (length N each).
    """
    num_train = check_positive_int(num_train, "num_train")
    num_test = check_positive_int(num_test, "num_test")
    size = check_positive_int(size, "size")
    if size < 8:
        raise ValueError(f"`size` must be at least 8 pixels, got {size}.")
    seed = check_seed(seed)
    train_f = _sample_factors(num_train, seed, 0, size)
    test_f = _sample_factors(num_test, seed, 1, size)
    return Dataset(
        name="shapes",
        train=render_shapes(train_f, size),
        test=render_shapes(test_f, size),
        train_labels=train_f["shape"].copy(),
        test_labels=test_f["shape"].copy(),
        train_factors=train_f,
        test_factors=test_f,
    )
