"""Data sets and batching for the book.

Every loader in this package returns a :class:`~vae_book.data.base.Dataset` with the same contract:

* images are ``float32`` NumPy arrays in **NHWC** layout ``(N, height, width, channels)``;
* pixel values lie in ``[0, 1]`` (``Dataset.value_range``);
* the one exception: ``image_folder(..., cache=...)`` returns ``uint8`` memory maps of the decoded
  images (value ``v`` meaning ``v / 255``), which :func:`~vae_book.data.base.batches`, the models and
  :func:`~vae_book.train.fit` take as they are, converting batch by batch;
* the train and test arrays never share an image: each split is decided once, by a rule that does
  not depend on the random seed of a run (a fixed stratified split, disjoint random streams, the
  official split, or a hash of the file name), so nothing a model sees in training is used to
  evaluate it.

What ships, and what needs a download:

==================  =========================================  ================  =================
name                contents                                   shape             needs
==================  =========================================  ================  =================
``mnist5k``         5,000 real MNIST digits, in the package    28 x 28 x 1       nothing
``shapes``          procedural coloured sprites with known     size x size x 3   nothing
                    generative factors
``mnist``           full MNIST, official 60k / 10k split       28 x 28 x 1       a download
``image_folder``    any folder of PNG / JPEG images            size x size x 3   the folder
==================  =========================================  ================  =================

:func:`~vae_book.data.registry.load_dataset` picks one by name. :func:`~vae_book.data.base.batches`
turns an image array into a stream of shuffled mini-batches and :func:`~vae_book.data.base.binarize`
turns grey levels into the binary data a Bernoulli likelihood is defined for.

One module per source, each with its own ``__all__``, all re-exported here:

* :mod:`vae_book.data.base` -- :class:`~vae_book.data.base.Dataset` and the batching functions;
* :mod:`vae_book.data.mnist` -- ``mnist5k`` and ``mnist``;
* :mod:`vae_book.data.shapes` -- ``shapes``, ``render_shapes`` and the factor tables;
* :mod:`vae_book.data.folder` -- ``image_folder`` and ``image_cache_dir``;
* :mod:`vae_book.data.registry` -- ``DATASETS`` and ``load_dataset``.
"""

from vae_book.data.base import Dataset, batch_slices, batches, binarize
from vae_book.data.folder import IMAGE_EXTENSIONS, default_image_folder, image_cache_dir, image_folder
from vae_book.data.mnist import MNIST_BASE_URL, MNIST_FILES, mnist, mnist5k
from vae_book.data.registry import DATASETS, load_dataset
from vae_book.data.shapes import FACTOR_NAMES, SHAPE_NAMES, SHAPE_SYMMETRY, render_shapes, shapes

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
    "SHAPE_SYMMETRY",
    "mnist",
    "MNIST_BASE_URL",
    "MNIST_FILES",
    "image_folder",
    "default_image_folder",
    "image_cache_dir",
    "IMAGE_EXTENSIONS",
    "batches",
    "binarize",
]
