"""Any folder of photographs (e.g. CelebA-HQ faces) as a data set.

:func:`image_folder` finds every PNG / JPEG image under a folder (default: the one named by
``VAE_BOOK_DATA``, :func:`default_image_folder`), centre-crops and resizes it, and splits train / test
by a hash of each file's relative path, so the split never depends on a seed or on the other files.

Decoding thousands of photographs takes a while (a progress bar shows it). With ``cache=`` the
decoded images are stored once as ``uint8`` in a ``.npy`` memory map (:func:`image_cache_dir`), keyed
by the folder's file list, the files' sizes and modification times and the decoding settings; a
later call opens that map instead of decoding, and the :class:`~vae_book.data.base.Dataset` holds
uint8 views of it (batches are converted to float32 as they are drawn).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from vae_book._checks import check_number, check_positive_int
from vae_book.data._common import data_cache
from vae_book.data.base import Dataset
from vae_book.profiles import is_static

__all__ = ["image_folder", "default_image_folder", "image_cache_dir", "IMAGE_EXTENSIONS"]

#: what the decoding does; part of the cache key, so a change of the decoding invalidates old maps
_DECODING = "centre-crop, Lanczos resize, RGB, uint8 round(255 v) (v1)"
#: temporary files of a decode that was killed are removed when untouched for this long (seconds);
#: long enough that no decode still writing its file is ever among them
_STALE_TMP_SECONDS = 86400.0

#: file name endings :func:`image_folder` reads (lower case)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def default_image_folder() -> Path | None:
    """The image folder named by the environment variable ``VAE_BOOK_DATA``, or None if unset."""
    env = os.environ.get("VAE_BOOK_DATA", "").strip()
    return Path(env).expanduser() if env else None


def image_cache_dir() -> Path:
    """Where :func:`image_folder` keeps decoded images with ``cache=True``: the data cache's ``images``
    folder (``$VAE_BOOK_DATA_CACHE/images``, else ``pooch.os_cache("vae_book")/images``, next to the
    trained-model cache ``.../vae_book/models``)."""
    return data_cache(None, "images")


def _split_fraction(relpath: str, salt: str) -> float:
    """A number in [0, 1) that depends only on the file's relative path (and a salt)."""
    digest = hashlib.sha256(f"{salt}:{relpath}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


#: PIL modes of 16/32-bit integer grey images and the value that maps to white
_HIGH_DEPTH_WHITE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0}


def _square(img, size: int):
    from PIL import Image

    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)


def _load_image(path: Path, size: int, uint8: bool = False) -> np.ndarray:
    """One image as ``(size, size, 3)`` float32 in [0, 1], or with ``uint8`` as 8-bit values (``round(255 v)``).

    8-bit images (and palette, grey, RGBA) go through PIL's RGB conversion. 16-bit grey PNGs
    (modes ``I;16*``, and ``I`` as older Pillow opens them) are scaled by 1/65535 and resampled as
    floats: PIL's own conversion to RGB would clip every value above 255 to white.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode in _HIGH_DEPTH_WHITE:
                grey = np.asarray(img, dtype=np.float32) / np.float32(_HIGH_DEPTH_WHITE[img.mode])
                resized = _square(Image.fromarray(np.clip(grey, 0.0, 1.0), mode="F"), size)
                grey = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)  # Lanczos overshoots
                if uint8:
                    grey = np.round(grey * np.float32(255.0)).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=-1)
            rgb = _square(img.convert("RGB"), size)
            if uint8:
                return np.asarray(rgb, dtype=np.uint8)
            return np.asarray(rgb, dtype=np.float32) / np.float32(255.0)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read the image file {path}: {type(err).__name__}: {err}") from None


def image_folder(
    path: str | os.PathLike | None = None,
    size: int = 64,
    test_fraction: float = 0.05,
    max_images: int | None = None,
    progress: bool = True,
    cache: bool | str | os.PathLike = False,
) -> Dataset:
    """Every PNG/JPEG image under a folder, centre-cropped and resized to ``size x size``.

    Files are found recursively (extensions :data:`IMAGE_EXTENSIONS`, any case), converted to RGB
    (a 16-bit grey PNG keeps its full range: it is scaled by 1/65535, not clipped at 255),
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
    progress : bool, default True
        Show a ``tqdm`` progress bar while decoding (never in a static-site build, see
        :func:`vae_book.profiles.is_static`).
    cache : bool or str or Path, default False
        False: decode every file, return float32. True: keep the decoded images in
        :func:`image_cache_dir`; a path: in that folder. The images are stored once as ``uint8``
        in a ``.npy`` file named by a hash of the sorted relative file list, each file's size and
        modification time, ``size``, ``test_fraction``, ``max_images`` and the decoding; later calls
        open it with ``mmap_mode="r"`` instead of decoding. It is written under a temporary name and
        renamed when complete, so a killed decode never leaves a file that is used; a file that is
        unreadable or of the wrong shape is named in a warning and rebuilt.

    Returns
    -------
    Dataset
        ``train`` / ``test``: ``(N, size, size, 3)`` float32 in [0, 1] (``cache=False``) or uint8
        read-only memory maps whose value ``v`` means ``v / 255`` (with a cache), images in order of
        their relative path; no labels or factors.
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
    test_fraction = check_number(test_fraction, "test_fraction", minimum=0.0, below=1.0)
    max_images = check_positive_int(max_images, "max_images", allow_none=True)
    if not isinstance(progress, (bool, np.bool_)):
        raise ValueError(f"`progress` must be True or False, got {progress!r}.")
    if not isinstance(cache, (bool, np.bool_, str, os.PathLike)) or (isinstance(cache, str) and not cache):
        raise ValueError(f"`cache` must be True, False or a folder path (str or Path), got "
                         f"{type(cache).__name__} {cache!r}."[:300])
    if not isinstance(cache, (bool, np.bool_)) and Path(cache).expanduser().exists() \
            and not Path(cache).expanduser().is_dir():
        raise ValueError(f"`cache` must be a folder (it is created if missing), got {str(cache)!r}, which is a file.")

    rel = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not rel:
        raise ValueError(
            f"`path` must be a folder holding images (files ending in {', '.join(IMAGE_EXTENSIONS)}, any "
            f"case, searched recursively), got {str(root)!r}, which has none. Set VAE_BOOK_DATA "
            f"(or pass `path=`) to a folder of face images such as CelebA-HQ."
        )
    if max_images is not None and len(rel) > max_images:
        rel = sorted(sorted(rel, key=lambda r: _split_fraction(r, "subset"))[:max_images])
    is_test = np.array([_split_fraction(r, "test") < test_fraction for r in rel], dtype=bool)
    cache = bool(cache) if isinstance(cache, (bool, np.bool_)) else cache
    show = bool(progress) and not is_static()
    if cache is False:
        images = _decode(root, rel, size, np.float32, show)
        return Dataset(name="image_folder", train=images[~is_test], test=images[is_test])
    # cached: train images first, then test, so each split is one slice (a view) of the map
    ordered = [r for r, t in zip(rel, is_test) if not t] + [r for r, t in zip(rel, is_test) if t]
    folder = image_cache_dir() if cache is True else Path(cache).expanduser()
    images = _cached(root, ordered, size, folder, _cache_key(root, ordered, size, test_fraction, max_images), show)
    n_train = int((~is_test).sum())
    return Dataset(name="image_folder", train=images[:n_train], test=images[n_train:])


def _decode(root: Path, rel: list[str], size: int, dtype, show: bool, out: np.ndarray | None = None) -> np.ndarray:
    """Decode the files ``rel`` under ``root`` into ``out`` (default a new ``(len(rel), size, size, 3)``
    array of ``dtype``), with a progress bar when ``show``."""
    from tqdm.auto import tqdm

    if out is None:
        out = np.empty((len(rel), size, size, 3), dtype=dtype)
    for i, r in enumerate(tqdm(rel, desc=f"decoding {root.name}", disable=not show, leave=False)):
        out[i] = _load_image(root / r, size, uint8=dtype == np.uint8)
    return out


def _cache_key(root: Path, rel: list[str], size: int, test_fraction: float, max_images: int | None) -> str:
    """SHA-256 (24 hex) of what determines the decoded images: files (path, bytes, mtime), settings, decoding."""
    h = hashlib.sha256(json.dumps({"size": size, "test_fraction": test_fraction, "max_images": max_images,
                                   "decoding": _DECODING}, sort_keys=True).encode())
    for r in rel:
        st = (root / r).stat()
        h.update(f"\n{r}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _cached(root: Path, rel: list[str], size: int, folder: Path, key: str, show: bool) -> np.ndarray:
    """The decoded images of ``rel`` as a read-only uint8 memory map ``folder/<key>.npy``, built if needed."""
    path = folder / f"{key}.npy"
    shape = (len(rel), size, size, 3)
    if path.exists():
        try:
            images = np.load(path, mmap_mode="r", allow_pickle=False)
            if images.shape == shape and images.dtype == np.uint8:
                return images
            problem = f"it holds {images.dtype} {images.shape}, not uint8 {shape}"
        except (OSError, ValueError, EOFError) as err:
            problem = f"{type(err).__name__}: {err}"
        warnings.warn(f"the decoded-image cache {path} is unusable ({problem}); decoding the folder again.",
                      stacklevel=3)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("*.npy.*.tmp"):  # left by a decode that was killed
        try:
            if now - old.stat().st_mtime > _STALE_TMP_SECONDS:
                old.unlink()
        except OSError:
            pass
    tmp = folder / f"{key}.npy.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _decode(root, rel, size, np.uint8, show, out=out)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return np.load(path, mmap_mode="r", allow_pickle=False)
