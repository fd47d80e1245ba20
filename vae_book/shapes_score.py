r"""Is it recognisable? A classifier of the ``shapes`` factors and the scores it gives a model's images.

Classifier-based scores judge a generative model by what a classifier trained on the *real* data
says about its images: the Inception Score (Salimans et al., 2016) rewards confident and diverse
predictions on samples, classifier accuracy on reconstructions asks whether the class survives the
round trip through the code. This module is their sprite-world analogue for the
:func:`~vae_book.data.shapes.shapes` data set, where every image's factors are known:

* :func:`train_classifier` trains :class:`ClassifierNet` on ``dataset.train`` to predict three
  categorical targets (:data:`TARGETS`) from an image: the **shape** (3 classes,
  :data:`~vae_book.data.shapes.SHAPE_NAMES`), a **hue** bin (6 bins centred on the named hues of
  :data:`HUE_NAMES`) and a **position** bin (a 3x3 grid over the range the sprite centres span, see
  :func:`factor_targets`). The shape comes from a small conv net on the sprite's silhouette, the
  hue from its mean colour, the position from its centroid. It is cached like the models (through
  :func:`vae_book.cache.fit_cached`).
* :func:`score` compares its predictions on any images with their factors (true held-out images, or
  reconstructions of them against the originals' factors) and measures how many images it classifies
  **confidently** (shape-class probability at least ``confidence``) and the shape head's Inception
  Score, which need no factors, so they apply to prior samples.
* :func:`recognisability` gives the three numbers the book prints for a model: the classifier's
  shape accuracy on the held-out true images (its ceiling), its shape accuracy on the model's
  reconstructions of them, and the confident fraction of the model's prior samples;
  :func:`recognisability_columns` puts those of several models into table columns.

The classifier is trained on true images only, so its confidence on anything else (a blurred
reconstruction, a sample that is no sprite at all) is that of an out-of-distribution input: a high
score says "looks like a sprite of a clear shape to this classifier", not "is a good image". So that
an image with no sprite is not classified confidently, every training batch also holds a few empty
(black) frames for which the shape head is taught the uniform distribution.

Longer than 400 lines because a score is only as trustworthy as its instrument: the binning of the
targets, the network's three read-outs and the measurements that chose them, the packing of the
targets that lets it train and be cached through ``fit_cached``, and the scores built on it are
documented together, the one place the book's recognisability numbers come from.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vae_book._checks import (as_float_images, check_array, check_images, check_key, check_module, check_number,
                              check_path, check_positive_int, check_seed)
from vae_book.cache import fit_cached, training_modules
from vae_book.data import Dataset, batch_slices
from vae_book.data.shapes import SHAPE_NAMES
from vae_book.train import History

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TARGETS", "NUM_CLASSES", "HUE_NAMES", "DEFAULT_STEPS", "ClassifierConfig", "ClassifierNet",
           "DEFAULT_LEARNING_RATE", "ShapesClassifier", "Score", "Recognisability", "factor_targets",
           "classifier_loss", "classifier_code_fingerprint", "gaussian_blur", "BLUR_MAX_PIXELS",
           "BLUR_SIGMA_LIMIT", "blur_table", "RECOGNISABILITY_COLUMNS",
           "train_classifier", "score", "recognisability", "score_table", "recognisability_columns"]

#: the classifier's targets, in the order of its heads
TARGETS = ("shape", "hue", "position")
#: classes per target: the 3 shapes, 6 hue bins, a 3 x 3 grid of positions
NUM_CLASSES = {"shape": len(SHAPE_NAMES), "hue": 6, "position": 9}
#: the hue bins' names: bin ``k`` holds the hues within 1/12 of ``k / 6`` (circularly)
HUE_NAMES = ("red", "yellow", "green", "cyan", "blue", "magenta")
#: optimiser steps of :func:`train_classifier` (batch 64). Measured on ``shapes(10000, 1000, size=32)``,
#: seeds 0-3: held-out shape accuracy 99.8-99.9% (97.4-99.9% after 600 steps), hue bin 99%, position bin 99%
DEFAULT_STEPS = 1000
#: Adam step size of :func:`train_classifier`
DEFAULT_LEARNING_RATE = 2e-3
_GRID = 3  # cells of the position grid along each axis
#: empty (black) frames in every training batch, for which the shape head learns the uniform distribution
_BLANKS_PER_BATCH = 4
#: training images are blurred by a Gaussian of standard deviation drawn uniformly from [0, this] pixels
#: (see :func:`classifier_loss`): a VAE's reconstructions are blurred copies of the sprites, and a
#: classifier trained on sharp sprites only calls every blurred square a circle
BLUR_MAX_PIXELS = 1.5
_FACTORS = ("shape", "hue", "pos_x", "pos_y")
#: images: a NumPy or JAX array (N, H, W, 3), float in [0, 1] or uint8
ArrayLike = np.ndarray | jax.Array
#: label codes: shape * 54 + hue * 9 + position
_CODES = NUM_CLASSES["shape"] * NUM_CLASSES["hue"] * NUM_CLASSES["position"]


# --------------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------------


def _check_factors(factors: object, name: str, n: int | None = None) -> dict[str, np.ndarray]:
    """The factors :func:`factor_targets` reads, as NumPy arrays of one length (``n`` if given)."""
    if not isinstance(factors, Mapping) or any(k not in factors for k in _FACTORS):
        got = sorted(factors) if isinstance(factors, Mapping) else type(factors).__name__
        raise ValueError(f"`{name}` must be a dict of the shapes factors with the keys {_FACTORS}, got {got}.")
    out = {k: np.asarray(factors[k]) for k in _FACTORS}
    want = len(out["shape"]) if n is None and out["shape"].ndim == 1 else n
    for k, v in out.items():
        if v.shape != (want,):
            raise ValueError(f"`{name}[{k!r}]` must have shape ({want if want is not None else 'N'},), got {v.shape}.")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"`{name}[{k!r}]` must be finite, got values holding NaN or Inf.")
    if not np.isin(out["shape"], np.arange(NUM_CLASSES["shape"])).all():
        raise ValueError(f"`{name}['shape']` must hold indices 0..{NUM_CLASSES['shape'] - 1} into {SHAPE_NAMES}, "
                         f"got values {np.unique(out['shape'])[:10]}.")
    return out


def factor_targets(factors: Mapping[str, np.ndarray], position_range: tuple[float, float]) -> dict[str, np.ndarray]:
    """The classifier's three integer targets of every image, from its ``shapes`` factors.

    Args:
        factors: arrays of length N with (at least) the keys ``shape``, ``hue``, ``pos_x``, ``pos_y`` of
            :data:`~vae_book.data.shapes.FACTOR_NAMES`.
        position_range: ``(lo, hi)``, the interval of sprite centres (fraction of the side) that the
            3 x 3 grid divides into equal thirds along each axis; a centre outside it falls in an edge
            cell. :func:`train_classifier` takes it from the training set (``ClassifierConfig``).

    Returns:
        ``{"shape", "hue", "position"}``, int64 arrays ``(N,)``: the shape index; the hue bin
        ``round(6 * hue) mod 6`` (bin ``k`` is the hues nearest to ``k / 6``, named by :data:`HUE_NAMES`:
        hue is circular, so red spans both ends of [0, 1)); and the grid cell ``3 * row + column``,
        row 0 at the top (``pos_y`` is measured from the top edge), column 0 on the left.
    """
    f = _check_factors(factors, "factors")
    lo, hi = _check_range(position_range, "position_range")
    grid = _GRID
    hue = np.round(f["hue"].astype(np.float64) * NUM_CLASSES["hue"]).astype(np.int64) % NUM_CLASSES["hue"]

    def cell(p: np.ndarray) -> np.ndarray:
        return np.clip(np.floor((p.astype(np.float64) - lo) / (hi - lo) * grid), 0, grid - 1).astype(np.int64)

    return {"shape": f["shape"].astype(np.int64), "hue": hue, "position": grid * cell(f["pos_y"]) + cell(f["pos_x"])}


def _check_range(r: object, name: str) -> tuple[float, float]:
    ok = isinstance(r, (tuple, list)) and len(r) == 2
    lo, hi = (check_number(r[0], name), check_number(r[1], name)) if ok else (0.0, 0.0)
    if not ok or not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"`{name}` must be (lo, hi) with 0 <= lo < hi <= 1, got {r!r}.")
    return lo, hi


# --------------------------------------------------------------------------------------------------
# the classifier
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """Sizes of :class:`ClassifierNet`.

    Attributes:
        image_shape: ``(H, W, 3)`` of the images it classifies (and was trained on).
        position_range: ``(lo, hi)`` of the sprite centres, for the position grid (:func:`factor_targets`).
        features: output channels of the ``3x3`` stride-2 convolutions.
        hidden: width of the dense layer on the last feature map (the shape head's input, with the pooled map).
        small_hidden: width of the hidden layers of the hue and the per-axis position heads.
    """

    image_shape: tuple[int, int, int] = (32, 32, 3)
    position_range: tuple[float, float] = (0.0, 1.0)
    features: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    small_hidden: int = 32

    def __post_init__(self) -> None:
        shape = self.image_shape
        if (not isinstance(shape, (tuple, list)) or len(shape) != 3 or shape[2] != 3
                or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 8 for s in shape[:2])):
            raise ValueError(f"`image_shape` must be (H, W, 3) with H, W >= 8 (shapes images), got {shape!r}.")
        object.__setattr__(self, "image_shape", tuple(int(s) for s in shape))
        object.__setattr__(self, "position_range", _check_range(self.position_range, "position_range"))
        if isinstance(self.features, (int, str)) or not len(tuple(self.features)):
            raise ValueError(f"`features` must be a non-empty tuple of positive ints, got {self.features!r}.")
        object.__setattr__(self, "features", tuple(check_positive_int(c, "features") for c in self.features))
        object.__setattr__(self, "hidden", check_positive_int(self.hidden, "hidden"))
        object.__setattr__(self, "small_hidden", check_positive_int(self.small_hidden, "small_hidden"))

    @property
    def flat_size(self) -> int:
        """Length of the flattened last feature map (each stride-2 ``SAME`` stage maps a side s to ceil(s / 2))."""
        h, w, _ = self.image_shape
        for _ in self.features:
            h, w = -(-h // 2), -(-w // 2)
        return h * w * self.features[-1]


class ClassifierNet(nnx.Module):
    """Shape from the sprite's silhouette (a conv net), hue from its mean colour, position from its centroid.

    * The **silhouette** is the largest of the three channels of each pixel: a sprite's colour has full
      saturation and value, so it is the fraction of the pixel the sprite covers, whatever the hue. It
      goes through ``len(features)`` ``3x3`` stride-2 convolutions + ReLU; the last feature map,
      flattened into a dense layer + ReLU and max-pooled over space (what does not depend on where the
      sprite is), feeds the linear ``shape`` head.
    * The **mean colour** is the image summed over its pixels and divided by the silhouette's area:
      exactly the sprite's RGB colour for a true image, 0 for an empty frame. A dense layer + ReLU
      feeds the linear ``hue`` head.
    * The **centroid** is the silhouette's centre of mass (fraction of the side; the sprite's centre for
      a true image), in grid units ``(c - lo) / (hi - lo) * 3 - 1.5`` of ``config.position_range``. Each
      axis goes through its own dense layer + ReLU to 3 logits (left / middle / right, top / middle /
      bottom), and the ``position`` logit of cell ``3 * row + column`` is the row's plus the column's.

    Why these inputs, as measured after 600 steps on ``shapes(10000, size=32)``: the same conv net on the
    RGB image reached 67% shape accuracy (99% on the silhouette), a head on the conv features 96%
    position accuracy, a hidden-layer head on the 2-D centroid 82-89% (the per-axis heads: 99%).

    ``net(x)`` maps images ``(B, H, W, 3)`` in [0, 1] to ``{target: logits (B, NUM_CLASSES[target])}``;
    :meth:`stages` returns every intermediate array. Weights are LeCun-normal, the biases of the
    per-axis layers standard normal (spreading their ReLU knots over the grid) and the others zero,
    drawn with NumPy from a seed taken from ``rngs.params()``: no random-number kernel is compiled per
    parameter shape, which took 10-20 s on two busy CPU cores, as long as the training.
    """

    def __init__(self, config: ClassifierConfig = ClassifierConfig(), *, rngs: nnx.Rngs) -> None:
        if not isinstance(config, ClassifierConfig):
            raise ValueError(f"`config` must be a ClassifierConfig, got {type(config).__name__}.")
        self.config = config
        rng = np.random.default_rng(np.asarray(jax.random.key_data(rngs.params())).ravel().tolist())

        def lecun(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
            del key  # drawn from `rng` instead
            return jnp.asarray(rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1])), dtype)

        def normal(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
            del key
            return jnp.asarray(rng.standard_normal(shape), dtype)

        c, small, grid = config, config.small_hidden, _GRID
        ins = (1, *c.features[:-1])
        self.convs = nnx.List([nnx.Conv(i, o, (3, 3), strides=(2, 2), padding="SAME", kernel_init=lecun, rngs=rngs)
                               for i, o in zip(ins, c.features)])
        self.dense = nnx.Linear(c.flat_size, c.hidden, kernel_init=lecun, rngs=rngs)
        self.shape_head = nnx.Linear(c.hidden + c.features[-1], NUM_CLASSES["shape"], kernel_init=lecun, rngs=rngs)
        self.colour = nnx.Linear(3, small, kernel_init=lecun, rngs=rngs)
        self.hue_head = nnx.Linear(small, NUM_CLASSES["hue"], kernel_init=lecun, rngs=rngs)
        self.axes = nnx.List([nnx.Linear(1, small, kernel_init=lecun, bias_init=normal, rngs=rngs) for _ in "xy"])
        self.axis_heads = nnx.List([nnx.Linear(small, grid, kernel_init=lecun, rngs=rngs) for _ in "xy"])

    def stages(self, x: jax.Array) -> dict[str, jax.Array]:
        """Every intermediate array of the forward pass of images ``x`` ``(B, H, W, 3)``, in order:
        ``silhouette`` ``(B, H, W, 1)``, ``conv i``, ``pooled``, ``hidden``, ``shape``, ``mean colour``
        ``(B, 3)``, ``hue``, ``centroid`` ``(B, 2)`` (x, y as fractions of the side, y from the top),
        ``grid``, ``column``, ``row`` ``(B, 3)`` and ``position``."""
        out = {"silhouette": jnp.max(x, axis=-1, keepdims=True)}
        h = out["silhouette"]
        for i, conv in enumerate(self.convs):
            h = out[f"conv {i}"] = jax.nn.relu(conv(h))
        out["pooled"] = jnp.max(h, axis=(1, 2))
        out["hidden"] = jnp.concatenate([jax.nn.relu(self.dense(h.reshape(h.shape[0], -1))), out["pooled"]], -1)
        out["shape"] = self.shape_head(out["hidden"])
        mass = out["silhouette"][..., 0]
        area = jnp.sum(mass, axis=(1, 2))[:, None] + 1e-3
        out["mean colour"] = jnp.sum(x, axis=(1, 2)) / area
        out["hue"] = self.hue_head(jax.nn.relu(self.colour(out["mean colour"] - 0.5)))
        rows = (jnp.arange(x.shape[1]) + 0.5) / x.shape[1]
        cols = (jnp.arange(x.shape[2]) + 0.5) / x.shape[2]
        out["centroid"] = jnp.stack([mass.sum(1) @ cols, mass.sum(2) @ rows], axis=-1) / area
        lo, hi = self.config.position_range
        out["grid"] = (out["centroid"] - lo) / (hi - lo) * _GRID - _GRID / 2
        for name, i, layer, head in (("column", 0, *self.axes[:1], *self.axis_heads[:1]),
                                     ("row", 1, *self.axes[1:], *self.axis_heads[1:])):
            out[name] = head(jax.nn.relu(layer(out["grid"][:, i:i + 1])))
        out["position"] = (out["row"][:, :, None] + out["column"][:, None, :]).reshape(x.shape[0], -1)
        return out

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        stages = self.stages(x)
        return {t: stages[t] for t in TARGETS}


# The targets travel through `fit`'s shuffled batches as a fourth image channel holding one label code
# per image, (code + 0.5) / _CODES in (0, 1), so the classifier trains with `fit` and is cached by
# `fit_cached` (its lock, resumable runs and hashed entries) like any model of the book.


def _pack(images: np.ndarray, targets: dict[str, np.ndarray]) -> np.ndarray:
    """``(N, H, W, 3)`` images and their targets -> ``(N, H, W, 4)`` float32, the label code in channel 3."""
    code = (targets["shape"] * NUM_CLASSES["hue"] + targets["hue"]) * NUM_CLASSES["position"] + targets["position"]
    out = np.empty((*images.shape[:3], 4), np.float32)
    out[..., :3] = images
    out[..., 3] = ((code + 0.5) / _CODES).astype(np.float32)[:, None, None]
    return out


def _unpack(x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(images, targets)`` of a batch packed by :func:`_pack`."""
    code = jnp.clip(jnp.floor(x[:, 0, 0, 3] * _CODES).astype(jnp.int32), 0, _CODES - 1)
    position = code % NUM_CLASSES["position"]
    hue = (code // NUM_CLASSES["position"]) % NUM_CLASSES["hue"]
    shape = code // (NUM_CLASSES["position"] * NUM_CLASSES["hue"])
    return x[..., :3], {"shape": shape, "hue": hue, "position": position}


def classifier_loss(model: ClassifierNet, x: jax.Array, key: jax.Array, *,
                    blur_max: float = BLUR_MAX_PIXELS) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The sum of the three heads' mean cross-entropies (nats per image) on a batch ``x`` ``(B, H, W, 4)``.

    ``x`` holds the images in its first three channels and each image's targets, coded, in the fourth
    (what :func:`train_classifier` passes to :func:`vae_book.train.fit`). The first four images of
    every batch (a random four: batches are shuffled) are replaced by empty black frames; the shape
    head's target for them is the uniform distribution (its cross-entropy to it), which teaches it to
    be unsure when there is no sprite, and the other heads skip them. Every image is blurred
    (:func:`gaussian_blur`) by a standard deviation drawn from ``key``, uniform in
    ``[0, blur_max]`` (0: no blur), so that the shape head judges the shape, not the sharpness: trained on
    sharp sprites only, it called 2 in 3 sprites blurred by 1 pixel circles (34% shape accuracy,
    chance 33%; 90% at 0.5 pixel).

    Returns:
        ``(loss, metrics)``: ``loss`` and ``<target>_accuracy`` on the batch's images with a sprite.
    """
    images, targets = _unpack(x)
    blank = jnp.arange(x.shape[0]) < min(_BLANKS_PER_BATCH, x.shape[0] - 1)
    images = jnp.where(blank[:, None, None, None], 0.0, images)
    if blur_max > 0:
        images = gaussian_blur(images, jax.random.uniform(key, (x.shape[0],), maxval=blur_max))
    logits = model(images)
    loss, metrics = 0.0, {}
    for t in TARGETS:
        log_p = jax.nn.log_softmax(logits[t])
        ce = -jnp.take_along_axis(log_p, targets[t][:, None], -1)[:, 0]
        if t == "shape":
            ce = jnp.where(blank, -jnp.mean(log_p, axis=-1), ce)
        else:
            ce = jnp.where(blank, 0.0, ce) * x.shape[0] / jnp.sum(~blank)
        loss = loss + jnp.mean(ce)
        hit = (jnp.argmax(logits[t], axis=-1) == targets[t]) & ~blank
        metrics[f"{t}_accuracy"] = jnp.sum(hit) / jnp.sum(~blank)
    metrics["loss"] = loss
    return loss, metrics


#: the widest blur :func:`gaussian_blur` takes, in pixels (its kernel sums over offsets up to 64 pixels
#: beyond the frame, all that matter up to about this width)
BLUR_SIGMA_LIMIT = 15.0


def gaussian_blur(images: jax.Array, sigma: jax.Array) -> jax.Array:
    """Blur each image of ``images`` ``(N, H, W, C)`` by a Gaussian of its own ``sigma`` ``(N,)`` pixels.

    The kernel is the sampled Gaussian :math:`w(d) \\propto e^{-d^2 / 2\\sigma^2}`, normalised over the
    integer offsets, and the image is zero outside its frame (``scipy.ndimage.gaussian_filter`` with
    ``mode="constant"``); ``sigma = 0`` leaves an image unchanged. Separable: one ``(H, H)`` and one
    ``(W, W)`` matrix per image, so it runs inside a jitted loss. ``sigma`` must lie in
    ``[0, BLUR_SIGMA_LIMIT]`` (checked where its values are known, i.e. outside a trace).
    """
    images = check_array(images, "images", ndim=4)
    sigma = check_array(sigma, "sigma", shape=(images.shape[0],), value_range=(0.0, BLUR_SIGMA_LIMIT))
    sigma = jnp.maximum(jnp.asarray(sigma, jnp.float32), 1e-3)[:, None, None]

    def matrix(n: int) -> jax.Array:
        d = jnp.arange(n, dtype=jnp.float32)
        w = jnp.exp(-0.5 * jnp.square((d[:, None] - d[None, :])[None] / sigma))  # (N, n, n)
        offsets = jnp.arange(-n - 64, n + 65, dtype=jnp.float32)  # the whole kernel, for sigma up to ~15
        total = jnp.sum(jnp.exp(-0.5 * jnp.square(offsets[None, :] / sigma[:, 0])), axis=-1)
        return w / total[:, None, None]

    rows, cols = matrix(images.shape[1]), matrix(images.shape[2])
    return jnp.einsum("nij,njkc,nlk->nilc", rows, images, cols)


@nnx.jit
def _probabilities(model: ClassifierNet, x: jax.Array) -> dict[str, jax.Array]:
    return {t: jax.nn.softmax(v) for t, v in model(x).items()}


def _batched(fn: Callable, model: nnx.Module, arrays: np.ndarray, batch_size: int) -> Any:
    """``fn(model, batch)`` over the batches of :func:`vae_book.data.batch_slices`, the last one padded
    to full size (so the jitted function compiles once); the NumPy outputs, concatenated."""
    n, outs = arrays.shape[0], []
    for sl in batch_slices(n, batch_size):
        chunk = np.asarray(arrays[sl])
        m = chunk.shape[0]
        if m < batch_size and n > batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - m, axis=0)])
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:m], fn(model, jnp.asarray(chunk))))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)


@dataclass
class ShapesClassifier:
    """A trained :class:`ClassifierNet` with what :func:`train_classifier` measured of it.

    Attributes:
        model: the network.
        accuracy: ``{target: accuracy}`` on ``dataset.test`` (the held-out true images), in [0, 1].
        history: the :class:`~vae_book.train.History` of the run that produced the parameters.
        cached: whether the parameters were loaded from the cache. key, path: the cache entry
            (``path`` None with ``cache=False``).
    """

    model: ClassifierNet
    accuracy: dict[str, float] = field(default_factory=dict)
    history: History = field(default_factory=History)
    cached: bool = False
    key: str = ""
    path: str | None = None

    @property
    def config(self) -> ClassifierConfig:
        """The network's :class:`ClassifierConfig`."""
        return self.model.config

    def check_images(self, images: ArrayLike, name: str = "images") -> np.ndarray:
        """``images`` ``(N, H, W, 3)`` of this classifier's shape, checked (a ValueError naming ``name``),
        as float32 NumPy."""
        images = check_images(images, name, image_shape=self.config.image_shape)
        if images.shape[0] == 0:
            raise ValueError(f"`{name}` must hold at least one image, got an array of shape {tuple(images.shape)}.")
        return np.asarray(as_float_images(np.asarray(images)), np.float32)

    def probabilities(self, images: ArrayLike, *, batch_size: int = 250) -> dict[str, np.ndarray]:
        """``{target: (N, NUM_CLASSES[target]) float32}``, the heads' softmax probabilities of ``images``
        ``(N, H, W, 3)`` in [0, 1] (the shape the classifier was trained at)."""
        images = self.check_images(images)
        return _batched(_probabilities, self.model, images, check_positive_int(batch_size, "batch_size"))

    def predict(self, images: ArrayLike, *, batch_size: int = 250) -> dict[str, np.ndarray]:
        """``{target: (N,) int64}``, the most probable class of every head (see :meth:`probabilities`)."""
        return {t: np.argmax(p, axis=-1).astype(np.int64)
                for t, p in self.probabilities(images, batch_size=batch_size).items()}

    def targets(self, factors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:func:`factor_targets` of ``factors`` with this classifier's position grid."""
        return factor_targets(factors, self.config.position_range)


def classifier_code_fingerprint(package_dir: str | Path | None = None) -> str:
    """SHA-256 (16 hex) of the source of this module and of every package module it imports.

    Part of the classifier's cache key (as ``fit_cached``'s ``tag``), since the training code's own
    fingerprint (:func:`vae_book.cache.training_fingerprint`) follows the VAEs' training code, which
    does not import this module. ``package_dir``: another copy of the package (for tests).
    """
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for rel in training_modules(("vae_book.shapes_score",), root):
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def _check_dataset(dataset: object) -> Dataset:
    if not isinstance(dataset, Dataset) or dataset.train_factors is None or dataset.test_factors is None:
        got = (f"a Dataset without factors ({dataset.name!r})" if isinstance(dataset, Dataset)
               else type(dataset).__name__)
        raise ValueError(f"`dataset` must be a shapes Dataset with train and test factors (vae_book.data.shapes), "
                         f"got {got}.")
    for split in ("train", "test"):
        images = getattr(dataset, split)
        if images.shape[-1] != 3 or min(images.shape[1:3]) < 8:
            raise ValueError(f"`dataset.{split}` must hold RGB images (N, H, W, 3) with H, W >= 8, got shape "
                             f"{images.shape}.")
        _check_factors(getattr(dataset, f"{split}_factors"), f"dataset.{split}_factors", images.shape[0])
    if dataset.test.shape[1:] != dataset.train.shape[1:]:
        raise ValueError(f"`dataset` must have train and test images of one shape, got {dataset.train.shape[1:]} "
                         f"and {dataset.test.shape[1:]}.")
    return dataset


def train_classifier(dataset: Dataset, *, steps: int = DEFAULT_STEPS, batch_size: int = 64,
                     learning_rate: float = DEFAULT_LEARNING_RATE, seed: int = 0,
                     blur_max: float = BLUR_MAX_PIXELS, cache: bool | str | Path = True,
                     progress: bool = True) -> ShapesClassifier:
    """Train (or load from the cache) a :class:`ClassifierNet` on ``dataset.train`` and its factors.

    Adam (:func:`vae_book.train.fit`'s default optimiser) minimises :func:`classifier_loss` on shuffled
    batches; the network is initialised from ``seed``, which also orders the batches. The run goes
    through :func:`vae_book.cache.fit_cached`, so its key hashes the network's config (image shape,
    position grid, sizes), its initial parameters, the training images *and targets*, ``steps``,
    ``batch_size``, ``learning_rate``, ``seed``, the training code (:func:`classifier_code_fingerprint`)
    and the library versions; an entry found corrupt or stale is named in a warning and retrained.
    With the defaults, on ``shapes(10000, 1000, size=32)`` it took 25-30 s of CPU time (35-50 s on two
    CPU cores shared with other jobs), about half of it compiling.

    Args:
        dataset: a ``shapes`` :class:`~vae_book.data.Dataset` (any image side >= 8), with factors.
        steps: optimiser updates. batch_size: images per update (at least 8, at most ``len(dataset.train)``).
        learning_rate: Adam step size. seed: non-negative int.
        blur_max: training images are blurred by a Gaussian of a random width in ``[0, blur_max]``
            pixels (:func:`classifier_loss`); 0 trains on sharp images only.
        cache: True (the model cache, :func:`vae_book.cache.cache_dir`), False (always train) or a folder.
        progress: show a progress bar while training.

    Returns:
        A :class:`ShapesClassifier`, with its accuracies on ``dataset.test``.
    """
    dataset = _check_dataset(dataset)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not 2 * _BLANKS_PER_BATCH <= batch_size <= dataset.train.shape[0]:
        raise ValueError(f"`batch_size` must be between {2 * _BLANKS_PER_BATCH} and the number of training images "
                         f"({dataset.train.shape[0]}), got {batch_size}.")
    learning_rate = check_number(learning_rate, "learning_rate", minimum=0.0, strict=True)
    seed = check_seed(seed)
    blur_max = check_number(blur_max, "blur_max", minimum=0.0)
    if cache is not True and cache is not False:
        cache = check_path(cache, "cache")
    if not isinstance(progress, bool):
        raise ValueError(f"`progress` must be True or False, got {progress!r}.")
    f = dataset.train_factors
    positions = np.concatenate([np.asarray(f["pos_x"]), np.asarray(f["pos_y"])]).astype(np.float64)
    lo, hi = float(positions.min()), float(positions.max())
    if not hi > lo:
        raise ValueError(f"`dataset.train_factors` must have sprites at more than one position, got all at {lo}.")
    config = ClassifierConfig(image_shape=tuple(dataset.train.shape[1:]), position_range=(lo, hi))
    model = ClassifierNet(config, rngs=nnx.Rngs(seed))
    packed = _pack(np.asarray(as_float_images(dataset.train), np.float32), factor_targets(f, config.position_range))
    history, info = fit_cached(model, packed, cache=cache, tag=f"shapes_score {classifier_code_fingerprint()}",
                               steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                               loss_fn=functools.partial(classifier_loss, blur_max=blur_max), seed=seed,
                               progress=progress, desc="shapes classifier")
    classifier = ShapesClassifier(model, history=history, cached=info["cached"], key=info["key"], path=info["path"])
    classifier.accuracy = dict(score(classifier, dataset.test, dataset.test_factors).accuracy)
    return classifier


# --------------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    r"""What :func:`score` measured on a set of images.

    Attributes:
        num_images: N.
        confidence: the threshold of ``confident_fraction``.
        confident_fraction: fraction of the images whose most probable shape has probability >= ``confidence``.
        mean_confidence: mean over the images of the shape head's largest probability, in [1/3, 1].
        shape_fractions: ``{shape name: fraction of the images predicted as it}`` (diversity of samples).
        inception_score: the Inception Score of the shape head,
            :math:`\exp \mathbb E_x \mathrm{KL}(p(y\mid x)\,\|\,p(y))` with :math:`p(y)` the mean prediction:
            1 when every image gets the same prediction (or none is confident), 3 when each is classified
            with certainty and the three shapes are equally frequent.
        accuracy: ``{target: fraction of correct predictions}`` when factors were given, else None.
    """

    num_images: int
    confidence: float
    confident_fraction: float
    mean_confidence: float
    shape_fractions: dict[str, float]
    inception_score: float
    accuracy: dict[str, float] | None = None

    @property
    def shape_accuracy(self) -> float | None:
        """``accuracy["shape"]`` (None without factors)."""
        return None if self.accuracy is None else self.accuracy["shape"]


def _check_classifier(classifier: object) -> ShapesClassifier:
    if not isinstance(classifier, ShapesClassifier):
        raise ValueError(f"`classifier` must be a ShapesClassifier (from train_classifier), got "
                         f"{type(classifier).__name__}.")
    return classifier


def score(classifier: ShapesClassifier, images: ArrayLike, factors: Mapping[str, np.ndarray] | None = None, *,
          confidence: float = 0.9, batch_size: int = 250) -> Score:
    """Classify ``images`` and measure how recognisable they are.

    Args:
        classifier: from :func:`train_classifier`.
        images: ``(N, H, W, 3)`` in [0, 1] (or uint8), of the shape the classifier was trained at.
        factors: the ``shapes`` factors the images should show (length N each): those of true images,
            or of the originals for reconstructions. None for images without factors (prior samples).
        confidence: threshold in (0, 1] on the shape head's largest probability.
        batch_size: images per call of the network.

    Returns:
        A :class:`Score`: ``confident_fraction`` always, ``accuracy`` per target (and ``shape_accuracy``)
        when ``factors`` are given.
    """
    classifier = _check_classifier(classifier)
    images = classifier.check_images(images)
    confidence = check_number(confidence, "confidence", minimum=0.0, strict=True)
    if confidence > 1.0:
        raise ValueError(f"`confidence` must be a probability in (0, 1], got {confidence!r}.")
    targets = None if factors is None else classifier.targets(_check_factors(factors, "factors", images.shape[0]))
    probs = classifier.probabilities(images, batch_size=batch_size)
    p = probs["shape"].astype(np.float64)
    top, predicted = p.max(axis=-1), p.argmax(axis=-1)
    kl = np.sum(p * (np.log(np.maximum(p, 1e-30)) - np.log(np.maximum(p.mean(axis=0), 1e-30))), axis=-1)
    accuracy = None if targets is None else {
        t: float(np.mean(np.argmax(probs[t], axis=-1) == targets[t])) for t in TARGETS}
    return Score(num_images=int(images.shape[0]), confidence=confidence,
                 confident_fraction=float(np.mean(top >= confidence)), mean_confidence=float(np.mean(top)),
                 shape_fractions={n: float(np.mean(predicted == i)) for i, n in enumerate(SHAPE_NAMES)},
                 inception_score=float(np.exp(np.mean(kl))), accuracy=accuracy)


@dataclass(frozen=True)
class Recognisability:
    """The three numbers of :func:`recognisability`, with the :class:`Score` each comes from.

    Attributes:
        true_accuracy: the classifier's shape accuracy on the held-out true images (the ceiling).
        reconstruction_accuracy: its shape accuracy on the model's reconstructions of them.
        sample_confident_fraction: the fraction of prior samples whose shape it is confident of.
        true, reconstructions, samples: the full scores. temperature: of the prior draws.
    """

    true_accuracy: float
    reconstruction_accuracy: float
    sample_confident_fraction: float
    true: Score
    reconstructions: Score
    samples: Score
    temperature: float


@nnx.jit
def _reconstruct(model: nnx.Module, x: jax.Array) -> jax.Array:
    return model.reconstruct(x)


@nnx.jit
def _decode_mean(model: nnx.Module, z: jax.Array) -> jax.Array:
    return model.mean_image(model.decode(z))


def recognisability(model: nnx.Module, classifier: ShapesClassifier, dataset: Dataset, key: jax.Array, *,
                    num_samples: int = 1000, temperature: float = 1.0, confidence: float = 0.9,
                    batch_size: int = 250) -> Recognisability:
    r"""How recognisable a VAE's reconstructions and samples of ``shapes`` images are to ``classifier``.

    * the true held-out images ``dataset.test``: :func:`score` with their factors;
    * their reconstructions ``model.reconstruct`` (the decoder mean at the posterior mean), scored
      against the originals' factors;
    * ``num_samples`` prior samples: codes :math:`z = T\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`
      drawn from ``key``, decoded to the decoder mean. At ``temperature`` T = 1 these are exactly
      ``model.sample(key, num_samples)``; the models' ``sample`` has no temperature, so for T != 1
      the prior draw is scaled here and decoded with the model's ``decode`` (its interface,
      :class:`vae_book.models.base.VAE`), the usual "reduced temperature" samples of a Gaussian prior.

    Args:
        model: a VAE of :mod:`vae_book.models` (``reconstruct``, ``decode``, ``mean_image``, ``z_dim``)
            for images of the classifier's shape.
        classifier: from :func:`train_classifier`. dataset: a ``shapes`` data set with test factors.
        key: JAX random key of the prior draws. num_samples: prior samples.
        temperature: scale T >= 0 of the prior draws. confidence: see :func:`score`.
        batch_size: images per call of the model and the classifier.

    Returns:
        A :class:`Recognisability`.
    """
    check_module(model, methods=("reconstruct", "decode", "mean_image"))
    classifier = _check_classifier(classifier)
    dataset = _check_dataset(dataset)
    key = check_key(key)
    num_samples = check_positive_int(num_samples, "num_samples")
    temperature = check_number(temperature, "temperature", minimum=0.0)
    batch_size = check_positive_int(batch_size, "batch_size")
    shape = classifier.config.image_shape
    if tuple(getattr(model, "image_shape", shape)) != shape or not isinstance(getattr(model, "z_dim", None), int):
        raise ValueError(f"`model` must be a VAE with a `z_dim` for images of the classifier's shape {shape}, got a "
                         f"{type(model).__name__} for {getattr(model, 'image_shape', '?')}.")
    test = classifier.check_images(dataset.test, "dataset.test")
    true = score(classifier, test, dataset.test_factors, confidence=confidence, batch_size=batch_size)
    recon = np.clip(_batched(_reconstruct, model, test, batch_size), 0.0, 1.0)
    recon_score = score(classifier, recon, dataset.test_factors, confidence=confidence, batch_size=batch_size)
    z = np.asarray(temperature * jax.random.normal(key, (num_samples, model.z_dim)), np.float32)
    samples = np.clip(_batched(_decode_mean, model, z, batch_size), 0.0, 1.0)
    sample_score = score(classifier, samples, confidence=confidence, batch_size=batch_size)
    return Recognisability(true_accuracy=true.shape_accuracy, reconstruction_accuracy=recon_score.shape_accuracy,
                           sample_confident_fraction=sample_score.confident_fraction, true=true,
                           reconstructions=recon_score, samples=sample_score, temperature=temperature)


#: the column names of :func:`recognisability_columns`
RECOGNISABILITY_COLUMNS = ("reconstructions: shape accuracy (%)", "reconstructions: hue accuracy (%)",
                           "prior samples: confident (%)")


def recognisability_columns(results: Mapping[str, Recognisability]) -> pd.DataFrame:
    """The headline numbers of named :func:`recognisability` results, as columns to join to a table.

    Args:
        results: ``{model name: Recognisability}``.

    Returns:
        A :class:`pandas.DataFrame` indexed by the names, in the order given, with the columns of
        :data:`RECOGNISABILITY_COLUMNS`: the shape and hue-bin accuracy on the reconstructions and the
        confident fraction of the prior samples, in % rounded to 0.1. Join it on a table's model names
        (``table.join(columns, on="model")``); a model without a result gets NaN.
    """
    import pandas as pd

    if (not isinstance(results, Mapping) or not results
            or not all(isinstance(v, Recognisability) for v in results.values())):
        raise ValueError(f"`results` must be a non-empty mapping of model names to Recognisability objects (from "
                         f"recognisability), got {type(results).__name__} {results!r:.80}.")
    shape, hue, samples = RECOGNISABILITY_COLUMNS
    return pd.DataFrame.from_dict(
        {str(name): {shape: round(100 * r.reconstruction_accuracy, 1),
                     hue: round(100 * r.reconstructions.accuracy["hue"], 1),
                     samples: round(100 * r.sample_confident_fraction, 1)} for name, r in results.items()},
        orient="index")


def score_table(scores: Mapping[str, Score]) -> pd.DataFrame:
    """A :class:`pandas.DataFrame` with one row per named :class:`Score`, in the order given: the accuracy
    of each target in % (NaN for images without factors), the confident fraction in %, and the shape
    head's Inception Score (between 1 and 3).

    Args:
        scores: ``{row name: Score}``, e.g. ``{"held-out images": r.true, "prior samples": r.samples}``.
    """
    import pandas as pd

    if not isinstance(scores, Mapping) or not scores or not all(isinstance(v, Score) for v in scores.values()):
        raise ValueError(f"`scores` must be a non-empty mapping of names to Score objects (from score or "
                         f"recognisability), got {type(scores).__name__} {scores!r:.80}.")
    rows = {}
    for name, sc in scores.items():
        row = {f"{t} accuracy (%)": 100 * sc.accuracy[t] if sc.accuracy else np.nan for t in TARGETS}
        row[f"confident, p >= {sc.confidence:g} (%)"] = 100 * sc.confident_fraction
        row["Inception Score (shape)"] = sc.inception_score
        rows[str(name)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def blur_table(classifiers: Mapping[str, ShapesClassifier], dataset: Dataset,
               widths: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0), *, batch_size: int = 250) -> pd.DataFrame:
    """Shape accuracy (%) of each classifier on ``dataset.test`` blurred by each Gaussian width (pixels).

    One row per named classifier, one column per width (:func:`gaussian_blur`): how blurred a sprite
    may be and still have its shape recognised, e.g. a classifier trained with ``blur_max=0`` next to
    the default one.

    Args:
        classifiers: ``{row name: ShapesClassifier}`` for images of ``dataset``'s shape.
        dataset: a ``shapes`` data set with test factors. widths: standard deviations >= 0 in pixels.
        batch_size: images per call of a classifier.
    """
    import pandas as pd

    if (not isinstance(classifiers, Mapping) or not classifiers
            or not all(isinstance(c, ShapesClassifier) for c in classifiers.values())):
        raise ValueError(f"`classifiers` must be a non-empty mapping of names to ShapesClassifier objects, got "
                         f"{type(classifiers).__name__} {classifiers!r:.80}.")
    dataset = _check_dataset(dataset)
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__") or not len(widths):
        raise ValueError(f"`widths` must be a non-empty sequence of numbers >= 0 (pixels), got {widths!r}.")
    widths = tuple(check_number(w, "widths", minimum=0.0) for w in widths)
    batch_size = check_positive_int(batch_size, "batch_size")
    test = np.asarray(as_float_images(dataset.test), np.float32)
    blurred = {w: np.asarray(gaussian_blur(jnp.asarray(test), jnp.full((len(test),), w))) for w in widths}
    rows = {}
    for name, clf in classifiers.items():
        clf.check_images(test, "dataset.test")
        rows[str(name)] = {f"blur {w:g} px": 100 * score(clf, x, dataset.test_factors, batch_size=batch_size)
                           .shape_accuracy for w, x in blurred.items()}
    return pd.DataFrame.from_dict(rows, orient="index")
