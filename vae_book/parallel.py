"""Data parallelism over every device JAX sees: one ``data`` mesh axis, each batch split along it.

:func:`vae_book.train.fit` asks :func:`data_mesh` for a mesh. With more than one device (several GPUs,
or ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` on a CPU) each batch is split into equal
parts along its first axis, one per device (:func:`batch_sharding`, :func:`put_batch`), and the
parameters and optimiser state are replicated (:func:`replicate`); XLA then inserts the all-reduce of
the gradients. The caller changes nothing. A batch size that the device count does not divide falls
back to one device, with a warning (a run never fails for it; pick a divisible batch to use them all).

After :func:`jax.distributed.initialize`, :func:`jax.devices` lists the devices of every process, so
the same code spans machines: each process draws the same global batch (same seed) and
:func:`put_batch` hands every device its own slice of it. :func:`prefetch` does that on a background
thread, a few batches ahead of the step (re-exported by :mod:`vae_book.train`, its first home).
"""

from __future__ import annotations

import functools
import queue
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike

from vae_book._checks import check_positive_int

__all__ = ["DATA_AXIS", "data_mesh", "batch_sharding", "replicate", "put_batch", "local_copy", "prefetch"]

#: the name of the mesh axis the batch is split along
DATA_AXIS = "data"


def data_mesh(batch_size: int, devices: Iterable[jax.Device] | None = None) -> Mesh | None:
    """A 1-D mesh over ``devices`` (default: :func:`jax.devices`, every device of every process), or
    None.

    None when there is one device, or when ``batch_size`` is not a multiple of the device count (then
    with a warning that says so: the run uses one device).
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) <= 1:
        return None
    if batch_size % len(devices):
        warnings.warn(f"batch_size {batch_size} is not a multiple of the {len(devices)} devices; training on one "
                      f"device. Use a batch size divisible by {len(devices)} to train on all of them.", stacklevel=3)
        return None
    return Mesh(np.array(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the first (batch) axis over the mesh's ``data`` axis; the other axes are whole on each device."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """``tree`` (parameters, optimiser state) with a full copy of every array on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def put_batch(x: ArrayLike, sharding: NamedSharding) -> jax.Array:
    """The global batch ``x`` (a NumPy array, the same in every process) as one array split by ``sharding``."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def local_copy(tree: Any) -> Any:
    """Every replicated array of ``tree`` as its copy on this process's first device (a no-op on one device)."""
    def one(a):
        return a.addressable_data(0) if isinstance(a, jax.Array) and len(a.sharding.device_set) > 1 else a
    return jax.tree.map(one, tree)


def prefetch(iterator: Iterable[Any], size: int = 2, *,
             sharding: jax.sharding.Sharding | None = None) -> Iterator[Any]:
    """Move batches to the device on a background thread, ``size`` batches ahead.

    With ``sharding`` (e.g. :func:`vae_book.parallel.batch_sharding`) each batch is split over its devices.
    """
    size = check_positive_int(size, "size")
    if sharding is not None and not isinstance(sharding, jax.sharding.Sharding):
        raise ValueError(f"`sharding` must be a jax.sharding.Sharding or None, got {type(sharding).__name__}.")
    put = jax.device_put if sharding is None else functools.partial(put_batch, sharding=sharding)
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()
    sentinel = object()

    def worker():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(put(item))
        finally:
            q.put(sentinel)

    threading.Thread(target=worker, daemon=True).start()
    try:
        while (item := q.get()) is not sentinel:
            yield item
    finally:
        stop.set()
