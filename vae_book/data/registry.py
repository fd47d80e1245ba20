"""The data sets by name: :data:`DATASETS` and :func:`load_dataset`, which picks a loader by name."""

from __future__ import annotations

from typing import Any

from vae_book.data.base import Dataset
from vae_book.data.folder import image_folder
from vae_book.data.mnist import mnist, mnist5k
from vae_book.data.shapes import shapes

__all__ = ["DATASETS", "load_dataset"]

#: The names :func:`load_dataset` accepts, one per loader.
DATASETS = ("mnist5k", "shapes", "mnist", "image_folder")


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``"mnist5k"``, ``"shapes"``, ``"mnist"``, ``"image_folder"``.
    **kwargs
        Passed to the loader of that name (:func:`~vae_book.data.mnist.mnist5k`,
        :func:`~vae_book.data.shapes.shapes`, :func:`~vae_book.data.mnist.mnist`,
        :func:`~vae_book.data.folder.image_folder`).

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
