"""The container every loader returns, and the batching rules of the book.

:class:`Dataset` holds a train / test pair of ``float32`` NHWC image arrays in ``[0, 1]`` (checked
when it is built), or of ``uint8`` arrays of 8-bit images (value ``v`` meaning ``v / 255``, e.g. a
memory-mapped cache of decoded photographs); :func:`batches` turns an image array into a stream of
shuffled float32 mini-batches (converting uint8 batch by batch),
:func:`batch_slices` walks one in fixed order, and :func:`binarize` turns grey levels into the binary
data a Bernoulli likelihood is defined for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from jax.typing import ArrayLike

from vae_book._checks import as_float_images, check_array, check_positive_int
from vae_book._checks import check_seed

__all__ = ["Dataset", "batch_slices", "batches", "binarize"]


@dataclass(frozen=True)
class Dataset:
    """A train/test pair of image arrays with optional labels and generative factors.

    Attributes
    ----------
    name : str
        Name of the data set (one of :data:`~vae_book.data.registry.DATASETS`).
    train, test : np.ndarray
        ``float32`` images in NHWC layout, shapes ``(num_train, H, W, C)`` and
        ``(num_test, H, W, C)``, values in ``value_range`` (``[0, 1]`` for every loader here); or
        ``uint8`` arrays (also ``np.memmap``) of 8-bit images, whose value ``v`` means ``v / 255``
        (then ``value_range`` must be ``(0.0, 1.0)``; the values are not read, so a memory map
        stays on disk). The two arrays never share an image.
    train_labels, test_labels : np.ndarray or None
        ``int64`` class labels of shape ``(num_train,)`` / ``(num_test,)``, or None.
    train_factors, test_factors : dict[str, np.ndarray] or None
        Ground-truth generative factors (e.g. ``{"hue": ..., "scale": ...}``), one array of length
        ``num_train`` / ``num_test`` per factor, or None when they are unknown.
    value_range : tuple of float
        ``(low, high)`` bounds of the pixel values, ``(0.0, 1.0)``.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    train_factors: dict[str, np.ndarray] | None = None
    test_factors: dict[str, np.ndarray] | None = None
    value_range: tuple = (0.0, 1.0)

    def __post_init__(self):
        for split in ("train", "test"):
            x = getattr(self, split)
            if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.uint8) or x.ndim != 4:
                got = (
                    f"array of shape {x.shape} and dtype {x.dtype}"
                    if isinstance(x, np.ndarray)
                    else type(x).__name__
                )
                raise ValueError(
                    f"`{split}` must be a float32 (or uint8) NumPy array of layout (N, H, W, C), got {got}."
                )
        if (self.train.dtype == np.uint8 or self.test.dtype == np.uint8) and self.train.dtype != self.test.dtype:
            raise ValueError(f"`test` must have the dtype of `train`, got {self.test.dtype} and {self.train.dtype}.")
        lo_hi = self.value_range
        if (not isinstance(lo_hi, tuple) or len(lo_hi) != 2
                or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in lo_hi) or not lo_hi[0] < lo_hi[1]):
            raise ValueError(f"`value_range` must be a (low, high) tuple of finite numbers with low < high, "
                             f"got {lo_hi!r}.")
        if self.train.dtype == np.uint8 and tuple(lo_hi) != (0.0, 1.0):
            raise ValueError(f"`value_range` must be (0.0, 1.0) for uint8 images (v / 255), got {lo_hi!r}.")
        for split in ("train", "test"):  # the images hold what value_range says, or the loader is wrong
            if self.train.dtype != np.uint8:  # uint8: every value 0..255 means one in [0, 1]
                check_array(getattr(self, split), split, value_range=lo_hi)
        if self.train.shape[1:] != self.test.shape[1:]:
            raise ValueError(
                "`train` and `test` must hold images of the same (H, W, C), got "
                f"{self.train.shape[1:]} and {self.test.shape[1:]}."
            )
        for split in ("train", "test"):
            n = len(getattr(self, split))
            labels = getattr(self, f"{split}_labels")
            if labels is not None and (not isinstance(labels, np.ndarray) or labels.shape != (n,)
                                       or labels.dtype != np.int64):
                got = (f"shape {labels.shape} and dtype {labels.dtype}" if isinstance(labels, np.ndarray)
                       else type(labels).__name__)
                raise ValueError(f"`{split}_labels` must be an int64 NumPy array of shape ({n},), got {got}.")
            factors = getattr(self, f"{split}_factors")
            if factors is not None and not isinstance(factors, dict):
                raise ValueError(f"`{split}_factors` must be a dict of arrays or None, got {type(factors).__name__}.")
            for key, value in (factors or {}).items():
                if len(value) != n:
                    raise ValueError(
                        f"`{split}_factors[{key!r}]` must have length {n} (one value per image), "
                        f"got length {len(value)}."
                    )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(int(d) for d in self.train.shape[1:])

    @property
    def num_train(self) -> int:
        """Number of training images."""
        return int(self.train.shape[0])

    @property
    def num_test(self) -> int:
        """Number of test images."""
        return int(self.test.shape[0])

    def __repr__(self) -> str:
        extras = []
        if self.train_labels is not None:
            extras.append("labels")
        if self.train_factors is not None:
            extras.append("factors=" + ",".join(self.train_factors))
        extra = (", " + ", ".join(extras)) if extras else ""
        return (
            f"Dataset({self.name!r}, train={self.num_train}, test={self.num_test}, "
            f"image_shape={self.image_shape}, range={self.value_range}{extra})"
        )


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices ``[0:b], [b:2b], ...`` covering ``range(n)`` in order (the last may be shorter).

    The one batching rule of the evaluation code: every function that walks a data set in fixed
    batches (held-out metrics, encoding, importance weights) uses these slices.
    """
    n = check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    return [slice(s, min(n, s + batch_size)) for s in range(0, n, batch_size)]


def batches(
    images: ArrayLike,
    batch_size: int,
    *,
    seed: int = 0,
    epochs: int | None = None,
    drop_remainder: bool = True,
    labels: ArrayLike | None = None,
    start: int = 0,
) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled mini-batches, epoch after epoch.

    Each epoch uses a fresh permutation from ``np.random.default_rng([seed, epoch])``, so the order
    is reproducible and independent of how many batches were consumed before. ``start`` skips that
    many batches by arithmetic (epoch ``start // per_epoch``, then the offset inside it), without
    drawing them: what a resumed training run uses to continue exactly where it stopped.

    Parameters
    ----------
    images : array of shape (N, ...)
        Usually float NHWC images in [0, 1]; any floating array with a leading example axis works.
        A ``uint8`` array (e.g. a memory map) holds 8-bit images: each batch is converted to
        float32 ``v / 255`` as it is drawn, so the whole array is never converted.
    batch_size : int
        Examples per batch; at most N when ``drop_remainder`` is True.
    seed : int, default 0
        Non-negative seed of the shuffling.
    epochs : int, optional
        Number of passes over the data; None (default) repeats forever.
    drop_remainder : bool, default True
        Drop the last incomplete batch of each epoch (so every batch has ``batch_size`` examples and
        a jitted step never recompiles); if False it is yielded, smaller.
    labels : array of shape (N,), optional
        If given, yield ``(images, labels)`` pairs, shuffled together.
    start : int, default 0
        Number of batches to skip: the stream is that of ``start = 0`` without its first ``start``
        batches (counted over ``epochs``, so skipping past the last epoch yields nothing).

    Yields
    ------
    np.ndarray or tuple
        ``(batch_size, ...)`` float32 batches (in [0, 1] for uint8 input), or ``(batch, labels_batch)``
        tuples.
    """
    if not isinstance(images, np.ndarray) and (hasattr(images, "__array__") or isinstance(images, (list, tuple))):
        images = np.asarray(images)  # e.g. a JAX array: index it on the host
    images = check_array(images, "images", floating=getattr(images, "dtype", None) != np.uint8)
    if images.ndim < 1:
        raise ValueError("`images` must have a leading example axis (N, ...), got a scalar array.")
    n = int(images.shape[0])
    if n == 0:
        raise ValueError("`images` must hold at least one example, got an array of shape "
                         f"{tuple(images.shape)}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"`batch_size` must be at most the number of examples ({n}) when drop_remainder=True, "
            f"got {batch_size}. Use a smaller batch or drop_remainder=False."
        )
    seed = check_seed(seed)
    epochs = check_positive_int(epochs, "epochs", allow_none=True)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim < 1 or labels.shape[0] != n:
            raise ValueError(
                f"`labels` must have one entry per example, shape ({n}, ...), got shape {labels.shape}."
            )
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"`start` must be a non-negative integer (batches to skip), got {start!r}.")
    stop = n - n % batch_size if drop_remainder else n
    return _batch_generator(images, labels, batch_size, seed, epochs, stop, int(start))


def _batch_generator(images, labels, batch_size, seed, epochs, stop, skip=0):
    per_epoch = len(range(0, stop, batch_size))
    epoch, offset = divmod(skip, per_epoch)
    while epochs is None or epoch < epochs:
        perm = np.random.default_rng([seed, epoch]).permutation(images.shape[0])
        for start in range(offset * batch_size, stop, batch_size):
            idx = perm[start : min(start + batch_size, stop)]
            if images.dtype == np.uint8:  # read a memory map in file order, then restore the shuffle
                order = np.argsort(idx)
                x = as_float_images(np.asarray(images[idx[order]])[np.argsort(order)])
            else:
                x = np.asarray(images[idx], dtype=np.float32)
            yield x if labels is None else (x, labels[idx])
        epoch, offset = epoch + 1, 0


def binarize(images: ArrayLike, seed: int | None = None) -> np.ndarray:
    """Turn grey levels in [0, 1] into binary {0, 1} images.

    A Bernoulli likelihood ``prod p^x (1-p)^(1-x)`` is a probability only for ``x`` in {0, 1}; on
    grey levels it is an unnormalised score, and "nats" computed from it cannot be compared with
    published numbers. Binarized MNIST is therefore the standard benchmark for Bernoulli decoders.

    With a ``seed``, this is *dynamic* binarization: each pixel is a Bernoulli sample with
    probability equal to its grey level (a new draw for a new seed, which acts as data
    augmentation when redone each epoch). Without one, pixels are thresholded: ``x > 0.5``.

    Parameters
    ----------
    images : array, any shape
        Floating values in [0, 1], or ``uint8`` 8-bit values (``v / 255``).
    seed : int, optional
        Seed of ``np.random.default_rng`` for the Bernoulli draw; None thresholds instead.

    Returns
    -------
    np.ndarray
        float32 array of the same shape with values in {0, 1}.
    """
    x = np.asarray(images) if not hasattr(images, "dtype") else images
    x = as_float_images(check_array(x, "images", floating=x.dtype != np.uint8))
    x = np.asarray(x, dtype=np.float32)
    if x.size:
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(
                f"`images` must have values in [0, 1] (pixel probabilities), got values in [{lo:.4g}, {hi:.4g}]."
            )
    if seed is None:
        return (x > 0.5).astype(np.float32)
    seed = check_seed(seed)
    u = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
    return (u < x).astype(np.float32)
