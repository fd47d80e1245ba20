"""Helpers shared by the modules of :mod:`vae_book.data`; not part of its public API.

Every name here is used only inside the ``vae_book.data`` package: the argument checks its loaders
and batching functions have in common, and where downloaded data sets keep their files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["check_seed", "data_cache"]


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an ``int``; a ``ValueError`` naming ``name`` unless it is a non-negative integer.

    Booleans are refused (``True`` is an ``int`` to Python, but never a meant seed).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {seed!r}.")
    return int(seed)


def data_cache(cache_dir, subdir: str) -> Path:
    """The folder where a downloaded data set keeps its files.

    ``cache_dir`` itself when given; else ``$VAE_BOOK_DATA_CACHE/<subdir>`` when that environment
    variable is set; else ``pooch.os_cache("vae_book")/<subdir>`` (e.g. ``~/.cache/vae_book/mnist``).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("VAE_BOOK_DATA_CACHE")
    if env:
        return Path(env).expanduser() / subdir
    import pooch

    return Path(pooch.os_cache("vae_book")) / subdir
