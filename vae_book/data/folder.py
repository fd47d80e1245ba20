"""Any folder of photographs (e.g. CelebA-HQ faces) as a data set.

:func:`image_folder` finds every PNG / JPEG image under a folder (default: the one named by
``VAE_BOOK_DATA``, :func:`default_image_folder`), centre-crops and resizes it, and splits train / test
by a hash of each file's relative path, so the split never depends on a seed or on the other files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from vae_book._checks import check_number, check_positive_int
from vae_book.data.base import Dataset

__all__ = ["image_folder", "default_image_folder", "IMAGE_EXTENSIONS"]

#: file name endings :func:`image_folder` reads (lower case)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def default_image_folder() -> Path | None:
    """The image folder named by the environment variable ``VAE_BOOK_DATA``, or None if unset."""
    env = os.environ.get("VAE_BOOK_DATA", "").strip()
    return Path(env).expanduser() if env else None


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


def _load_image(path: Path, size: int) -> np.ndarray:
    """One image as ``(size, size, 3)`` float32 in [0, 1].

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
                return np.repeat(grey[..., None], 3, axis=-1)
            rgb = _square(img.convert("RGB"), size)
            return np.asarray(rgb, dtype=np.float32) / np.float32(255.0)
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
    test_fraction = check_number(test_fraction, "test_fraction", minimum=0.0, below=1.0)
    max_images = check_positive_int(max_images, "max_images", allow_none=True)

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
