"""Helpers shared by the modules of :mod:`vae_book.data`; not part of its public API.

Every name here is used only inside the ``vae_book.data`` package: where downloaded data sets
keep their files. (The seed check the loaders share lives in :mod:`vae_book._checks`.)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_cache"]


def data_cache(cache_dir: str | os.PathLike | None, subdir: str) -> Path:
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
