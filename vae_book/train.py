"""Training: a jitted update step, :func:`fit` with a progress bar, evaluation and a NaN guard.

The model is a Flax NNX module. For speed the hot loop splits it once into a static graph definition
and a pytree of parameters (``nnx.split``) and jits a pure function of the parameters, the optimiser
state and a batch, with the parameter buffers donated so XLA updates them in place. Batches are
moved to the device on a background thread while the previous step runs. The model object
is updated with the trained parameters when :func:`fit` returns — also when it stops early
(a non-finite loss, or Ctrl-C), so no finished work is lost.

What makes the step fast, measured by ``bench/train_step.py`` and ``bench/optimizer.py``: the NaN
guard is one reduction; on CPU the step is compiled with LLVM optimisation level 1
(:data:`CPU_COMPILER_OPTIONS`), which compiles faster and ran no slower; and the default Adam runs per
parameter array, not on one flat vector, whose copy was most of the MLP VAE's step on 2 cores
(:func:`default_optimizer`); and on CPU glibc's malloc keeps the step's large buffers for reuse
instead of page-faulting them in again every step (:func:`reuse_host_memory`, :data:`HOST_MALLOC_ENV`).

With a ``checkpoint_path`` :func:`fit` writes training checkpoints, and a later call with the same
settings resumes from the last one, to the parameters (bit for bit) of a run never stopped. With
several devices each batch is split over them (:mod:`vae_book.parallel`). The KL weight may follow a
schedule (a KL warm-up), evaluated inside the jitted step.

Longer than 400 lines because :func:`fit` validates every argument, resumes from checkpoints and
guards against divergence in one loop, and splitting that loop would scatter one control flow.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike
from tqdm.auto import tqdm

from vae_book import objectives, parallel
from vae_book._checks import (check_callable, check_images, check_key, check_module, check_number, check_path,
                              check_positive_int, check_seed)
from vae_book.checkpoints import array_fingerprint, load_training_state, model_config, save_training_state
from vae_book.data import batch_slices, batches
from vae_book.parallel import prefetch
from vae_book.profiles import is_static

__all__ = ["History", "TrainingDiverged", "fit", "mean_metrics", "make_train_step", "default_optimizer", "prefetch",
           "DEFAULT_LEARNING_RATE", "DEFAULT_CHECKPOINT_MINUTES", "CPU_COMPILER_OPTIONS", "reuse_host_memory",
           "HOST_MEMORY_REUSE_BYTES", "HOST_MALLOC_ENV"]


class TrainingDiverged(FloatingPointError):
    """Raised by :func:`fit` when the loss or a gradient becomes NaN/Inf; the model keeps the last finite parameters."""


@dataclass
class History:
    """Logged quantities of a run. ``train`` and ``eval`` map a name to a list, aligned with their ``step`` list.

    ``train`` holds means over each logging interval of the training batches; ``eval`` holds means over
    the held-out images. Values are nats per image (``loss``, ``recon``, ``kl``, ``elbo``) or pixel /
    latent standard deviations (``decoder_std``, ``encoder_std``). ``seconds`` is the wall time of the run.
    """

    train: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0

    def log(self, split: str, step: int, metrics: dict) -> None:
        table = getattr(self, split)
        table.setdefault("step", []).append(int(step))
        for k, v in metrics.items():
            table.setdefault(k, []).append(float(v))

    def to_dict(self) -> dict:
        return {"train": self.train, "eval": self.eval, "seconds": self.seconds, "steps": self.steps}

    @classmethod
    def from_dict(cls, history: dict) -> "History":
        """The inverse of :meth:`to_dict`; raises ValueError naming the first field of the wrong shape."""
        if not isinstance(history, dict):
            raise ValueError(f"`history` must be a dict, got {type(history).__name__}.")
        missing = sorted({"train", "eval", "seconds", "steps"} - set(history))
        if missing:
            raise ValueError(f"`history` must have the fields train, eval, seconds and steps, "
                             f"got one lacking {missing}.")
        tables = {}
        for split in ("train", "eval"):
            table = history[split]
            if not isinstance(table, dict) or not all(
                    isinstance(v, list) and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in v)
                    for v in table.values()):
                raise ValueError(f"`history['{split}']` must map names to lists of numbers, got {table!r:.80}.")
            lengths = {k: len(v) for k, v in table.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"`history['{split}']` must have lists of one length, got lengths {lengths}.")
            tables[split] = dict(table)
        seconds, steps = history["seconds"], history["steps"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not np.isfinite(seconds):
            raise ValueError(f"`history['seconds']` must be a finite number, got {seconds!r:.40}.")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"`history['steps']` must be a non-negative integer, got {steps!r:.40}.")
        return cls(train=tables["train"], eval=tables["eval"], seconds=float(seconds), steps=steps)

    def last(self, split: str = "eval") -> dict:
        """The last logged value of every quantity of ``split``."""
        return {k: v[-1] for k, v in getattr(self, split).items() if v}


#: Adam step size of :func:`fit` when none is given (:mod:`vae_book.runs` always passes the profile's
#: ``learning_rate`` of the model family).
DEFAULT_LEARNING_RATE = 3e-4

#: minutes between training checkpoints when :func:`fit` has a ``checkpoint_path`` and no schedule
DEFAULT_CHECKPOINT_MINUTES = 10.0

#: XLA options for the update step on CPU: LLVM -O1 instead of -O3 for the fused kernels. The step's
#: compile time is mostly LLVM compiling a few hundred kernels; -O1 cuts it by ~10% and the step
#: ran no slower (its time is in the matrix-product library calls, not in the generated loops).
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def _compiler_options() -> dict | None:
    return dict(CPU_COMPILER_OPTIONS) if jax.default_backend() == "cpu" else None


#: bytes: what :func:`reuse_host_memory` sets glibc's mmap and trim thresholds to (1 GiB)
HOST_MEMORY_REUSE_BYTES = 1 << 30

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (<malloc.h>)

#: the settings of :func:`reuse_host_memory` as glibc's environment variables, for a process started
#: with them (the book's kernels: ``scripts/build_book.py``, ``scripts/run_chapter.py``, ``make lab``,
#: ``make test``). From the start they also cover the threads XLA starts before :func:`fit` runs, whose
#: malloc arenas a later call cannot change: measured on the ``cpu`` profile's Gaussian MLP VAE at
#: 32x32x3 (4.7M parameters), 22,800 page faults per step and 82 ms with the call in :func:`fit` alone,
#: 0 and 36 ms with these from the start.
HOST_MALLOC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(HOST_MEMORY_REUSE_BYTES),
                   "MALLOC_TRIM_THRESHOLD_": str(HOST_MEMORY_REUSE_BYTES)}


def reuse_host_memory(limit: int = HOST_MEMORY_REUSE_BYTES) -> bool:
    """Make glibc's malloc keep freed blocks up to ``limit`` bytes for reuse (process-wide); return success.

    On the CPU backend XLA allocates one buffer per call of a compiled step for all its intermediates
    (43 MB for the ``cpu`` profile's transformer VAE, 420 MB at full size). glibc serves a block above its
    mmap threshold, which grows at most to 32 MiB, with fresh pages from the kernel and unmaps it when
    freed, so every step page-faults its whole buffer again. Measured on the 2-core build machine for the
    ``cpu`` profile's transformer step: 11,100 minor page faults per step by default and 0 after this
    call, and 20% less CPU time per step (123 -> 99 ms). It sets glibc's ``M_MMAP_THRESHOLD`` (blocks
    below ``limit`` come from the heap), ``M_TRIM_THRESHOLD`` (up to ``limit`` bytes of freed heap are
    kept, not returned to the system) and ``M_ARENA_MAX`` = 1 (threads that have not allocated yet share
    the main heap, which has no size cap; a thread's own arena holds at most 64 MiB). So the process keeps
    up to about ``limit`` more memory after its largest step. :func:`fit` calls it on the CPU backend;
    a process started with :data:`HOST_MALLOC_ENV` has the same settings from its first thread on.
    Elsewhere (not Linux with glibc) it does nothing and returns ``False``.

    Args:
        limit: bytes, at least 32 MiB (glibc's own ceiling) and at most 2**31 - 1 (mallopt takes an int).
    """
    limit = check_positive_int(limit, "limit")
    if not 1 << 25 <= limit < 1 << 31:
        raise ValueError(f"`limit` must be between 2**25 (32 MiB) and 2**31 - 1 bytes, got {limit}.")
    try:
        if platform.libc_ver()[0] != "glibc":
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library symbol table, or no mallopt (not glibc)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([mallopt(_M_MMAP_THRESHOLD, limit) == 1, mallopt(_M_TRIM_THRESHOLD, limit) == 1,
                mallopt(_M_ARENA_MAX, 1) == 1])


#: optimiser-state entries below the smallest normal float32 (~1.2e-38) are set to zero
_STATE_FLUSH = float(np.finfo(np.float32).tiny)


def _flush_subnormals(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner`` with subnormal entries of its state (Adam's moment estimates) flushed to zero.

    A decoder whose outputs saturate (a sigma at its floor, a sigmoid near 0 or 1) has parameters with
    vanishing gradients; their moment estimates decay into the subnormal range, where CPU arithmetic is
    many times slower. Measured on the learned-sigma MLP VAE of chapter 9 (500-step blocks): 11-12 ms
    per step with the flush instead of 30, and the same losses to the last printed digit. Flushing the
    gradients instead did not help. A value below 1.2e-38 in a moment estimate changes no update.
    """
    def flush(tree):
        return jax.tree.map(
            lambda a: jnp.where(jnp.abs(a) < _STATE_FLUSH, jnp.zeros_like(a), a)
            if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    def update(grads, state, params=None):
        updates, state = inner.update(grads, state, params)
        return updates, flush(state)

    return optax.GradientTransformation(inner.init, update)


def default_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Adam on each parameter array, with subnormal moment estimates flushed to zero (see
    ``_flush_subnormals``).

    Not :func:`optax.flatten` (the same arithmetic on one vector of all parameters): on the book's
    2-core CPU machine (``bench/optimizer.py``) the cpu-profile Gaussian MLP VAE's step took 31.0 ms flat
    and 7.2 ms per array; the kernel that concatenates the gradients into the flat vector took 62 ms
    split over two threads, 1.9 ms on one core. The Bernoulli MLP VAE is hit in some processes only
    (20.8 -> 5.2 ms in one, 4.9 -> 4.4 in another); the transformer VAE not (83.0 -> 82.6 ms).

    ``learning_rate`` is a finite number > 0 or an optax schedule (a function of the step).
    """
    if not callable(learning_rate):
        learning_rate = check_number(learning_rate, "learning_rate", minimum=0.0, strict=True)
    return _flush_subnormals(optax.adam(learning_rate))


def _all_finite(loss, grads):
    """True iff ``loss`` and every entry of the pytree ``grads`` are finite, as one reduction per dtype.

    The gradients are raveled and concatenated (XLA fuses that into the reduction) rather than
    reduced leaf by leaf: dozens of tiny reductions cost more compile time than the check itself.
    """
    by_dtype: dict = {}
    for g in jax.tree.leaves(grads):
        by_dtype.setdefault(jnp.result_type(g), []).append(jnp.ravel(g))
    finite = jnp.isfinite(loss)
    for flat in by_dtype.values():
        finite = finite & jnp.all(jnp.isfinite(jnp.concatenate(flat)))
    return finite


def make_train_step(graphdef: nnx.GraphDef, rest: nnx.State, loss_fn: Callable, optimizer: optax.GradientTransformation,
                    beta_schedule: Callable | None = None
                    ) -> Callable[..., tuple[nnx.State, Any, dict[str, jax.Array], jax.Array]]:
    """Build the jitted update
    ``(params, opt_state, x, key, step, bad_step) -> (params, opt_state, metrics, bad_step)``.

    With a ``beta_schedule`` (step -> KL weight, e.g. an optax schedule) the loss is called as
    ``loss_fn(model, x, key, beta=beta_schedule(step))`` and the metrics gain ``beta``.

    If the loss, a gradient or an update is non-finite (a NaN learning rate gives finite gradients
    but NaN updates) the update is skipped: parameters and optimiser state are kept, and ``bad_step``
    records the step (it stays -1 while all is well). Once ``bad_step`` is set every later update is
    skipped too, so the parameters stay those after step ``bad_step - 1`` until the caller checks.
    """

    def loss_of_params(params, x, key, beta):
        model = nnx.merge(graphdef, params, rest)
        if beta is None:
            return loss_fn(model, x, key)
        loss, metrics = loss_fn(model, x, key, beta=beta)
        return loss, {**metrics, "beta": beta}

    @functools.partial(jax.jit, donate_argnums=(0, 1), compiler_options=_compiler_options())
    def train_step(params, opt_state, x, key, step, bad_step):
        beta = None if beta_schedule is None else jnp.asarray(beta_schedule(step), jnp.float32)
        (loss, metrics), grads = jax.value_and_grad(loss_of_params, has_aux=True)(params, x, key, beta)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        finite = _all_finite(loss, (grads, updates))
        ok = finite & (bad_step < 0)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
        bad_step = jnp.where((~finite) & (bad_step < 0), step, bad_step)
        return keep(new_params, params), keep(new_opt_state, opt_state), metrics, bad_step

    return train_step


def mean_metrics(model: nnx.Module, images: ArrayLike, key: jax.Array, *, loss_fn: Callable | None = None,
                 batch_size: int = 250) -> dict:
    """Mean of ``loss_fn``'s metrics over held-out ``images`` (N, H, W, C) in [0, 1], with a fixed key.

    What :func:`fit` logs in ``History.eval``. The images go through ``loss_fn`` in the batches of
    :func:`vae_book.data.batch_slices` (batch ``i`` with the key ``fold_in(key, i)``), and each
    metric is averaged over images, weighting every batch by its size. ``loss_fn(model, x, key) ->
    (loss, metrics)`` defaults to :func:`vae_book.objectives.vae_loss` with beta = 1 (so ``loss`` is
    the negative ELBO in nats per image). Returns a dict of floats, one per metric.

    For the numbers a paper reports (importance-weighted log p(x), bits per dimension, active units)
    see :func:`vae_book.evaluation.evaluate`.
    """
    check_module(model)
    images = check_images(images, "images")
    key = check_key(key)
    batch_size = check_positive_int(batch_size, "batch_size")
    loss_fn = objectives.vae_loss if loss_fn is None else check_callable(loss_fn, "loss_fn")
    graphdef, state = nnx.split(model)

    @jax.jit
    def one(state, x, key):
        return loss_fn(nnx.merge(graphdef, state), x, key)[1]

    totals, n = {}, 0
    for i, sl in enumerate(batch_slices(images.shape[0], batch_size)):
        x = jnp.asarray(images[sl])
        m = one(state, x, jax.random.fold_in(key, i))
        for k, v in m.items():
            totals[k] = totals.get(k, 0.0) + float(v) * x.shape[0]
        n += x.shape[0]
    return {k: v / n for k, v in totals.items()}


def _check_beta_schedule(schedule: Callable, steps: int) -> list[float]:
    """Refuse a schedule that fails or gives a non-finite or negative weight at a checked step; return
    its weights at steps 0, steps/10, ..., steps (what a checkpoint records of it)."""
    tenths = np.linspace(0, steps, 11).round().astype(int).tolist()
    values = {}
    for s in sorted({0, 1, steps, *tenths}):
        try:
            value = schedule(s)
        except Exception as err:  # noqa: BLE001 - any failure of a user's callable is a bad argument
            raise ValueError(f"`beta` must be a number or a schedule step -> weight; calling it at step {s} "
                             f"got {type(err).__name__}: {err}") from None
        try:
            check_number(jnp.asarray(value).reshape(()) if getattr(value, "size", 1) == 1 else value,
                         "beta", minimum=0.0)
        except ValueError as err:
            raise ValueError(f"`beta` must give a finite weight >= 0 at every step; at step {s}: {err}") from None
        values[s] = value
    try:  # the step is a traced integer inside the jitted update
        out = jax.eval_shape(lambda step: jnp.asarray(schedule(step), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as err:  # noqa: BLE001 - any failure of a user's callable is a bad argument
        raise ValueError(f"`beta` must be a schedule JAX can trace (jnp operations or an optax schedule, not Python "
                         f"min/if on the step); called on a traced step it got {type(err).__name__}: "
                         f"{str(err)[:200]}") from None
    if out.shape != ():
        raise ValueError(f"`beta` must give one weight per step, got an array of shape {out.shape}.")
    return [float(np.ravel(values[s])[0]) for s in tenths]  # one weight each: checked above


def fit(
    model: nnx.Module, train_images: ArrayLike, *, steps: int, batch_size: int = 64,
    learning_rate: float = DEFAULT_LEARNING_RATE, beta: float | Callable = 1.0, loss_fn: Callable | None = None,
    eval_images: ArrayLike | None = None, eval_every: int | None = None, log_every: int | None = None,
    seed: int = 0, optimizer: optax.GradientTransformation | None = None, progress: bool = True,
    desc: str | None = None, checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None, checkpoint_minutes: float | None = None, resume: bool = True,
) -> History:
    """Train ``model`` in place with Adam on shuffled batches of ``train_images``; return its :class:`History`.

    Args:
        model: an NNX VAE (or any module ``loss_fn`` accepts).
        train_images: (N, H, W, C) float32 in [0, 1].
        steps: number of optimiser updates. batch_size: images per update.
        learning_rate: Adam step size (default 3e-4), ignored if ``optimizer`` is given.
        beta: KL weight of the loss: a number, or a schedule ``beta(step) -> weight`` (an optax
            schedule, e.g. ``optax.linear_schedule(0.0, 1.0, 1000)`` for a KL warm-up; steps count
            from 1), whose value is logged as the ``beta`` metric. It must give finite weights >= 0
            for steps 0 .. ``steps``. Ignored with a ``loss_fn``, unless ``beta`` is a schedule: then
            the loss is called as ``loss_fn(model, x, key, beta=beta(step))`` (e.g.
            ``functools.partial(vae_loss, free_bits=0.5)``).
        loss_fn: ``loss_fn(model, x, key) -> (loss, metrics)``; default :func:`vae_book.objectives.vae_loss`.
        eval_images: held-out images evaluated every ``eval_every`` steps and at the end
            (with beta = 1 for the default loss, so ``eval["elbo"]`` is the true ELBO).
        log_every: training metrics are averaged over this many steps (default steps // 100, >= 1).
        seed: seeds the batch order and the sampling keys.
        progress: show a ``tqdm`` progress bar with the running loss. Never shown in a static-site
            build (``VAE_BOOK_STATIC=1``, see :func:`vae_book.profiles.is_static`): a page has no use
            for a finished bar, and tqdm's notebook widget would make it load scripts from a CDN.
        checkpoint_path: a file for training checkpoints (None: none). One holds the parameters, the
            optimiser state, the step, the divergence guard, the metrics not yet logged, the history and
            the run's settings, written atomically (:func:`vae_book.checkpoints.save_training_state`: a
            killed run leaves the previous one). It is kept when the run ends.
        checkpoint_every: write a checkpoint every this many steps (None: not by step count).
        checkpoint_minutes: write one every this many minutes of training (None: not by time).
            With a ``checkpoint_path`` and neither given, every ``DEFAULT_CHECKPOINT_MINUTES`` (10).
        resume: if ``checkpoint_path`` exists, continue from it (the default): the model's parameters
            are replaced by the checkpoint's, and the run ends with the parameters and history (but
            ``seconds``, the sum of the parts) of an uninterrupted run. A corrupt checkpoint, or one of
            another run (steps, batch size, learning rate, beta, loss, log or eval interval, seed, model
            config, data, parameter shapes) raises :class:`~vae_book.checkpoints.CheckpointError` naming
            why. False starts from step 0 and overwrites the file at the first checkpoint.

    With several devices (:func:`jax.devices`) each batch is split over them along a ``data`` mesh axis,
    parameters and optimiser state replicated (:mod:`vae_book.parallel`); a ``batch_size`` the device
    count does not divide trains on one device, with a warning. The model's parameters end on one device.

    Raises:
        TrainingDiverged: the loss or a gradient became non-finite; the message names the step and
            the model keeps the parameters from before it.
        CheckpointError: ``checkpoint_path`` holds a corrupt checkpoint or one of another run.
    """
    check_module(model)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    train_images = check_images(train_images, "train_images")
    if batch_size > train_images.shape[0]:
        raise ValueError(
            f"`batch_size` must not exceed the number of training images ({train_images.shape[0]}), got {batch_size}."
        )
    if eval_images is not None:
        eval_images = check_images(eval_images, "eval_images", image_shape=train_images.shape[1:])
        if eval_images.shape[0] == 0:
            raise ValueError("`eval_images` must hold at least one image (or be None), got an empty array.")
    if optimizer is None:
        learning_rate = check_number(learning_rate, "learning_rate", minimum=0.0, strict=True)
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"`optimizer` must be an optax.GradientTransformation, got {type(optimizer).__name__}.")
    if loss_fn is not None and not callable(loss_fn):
        raise ValueError(f"`loss_fn` must be callable as loss_fn(model, x, key), got {type(loss_fn).__name__}.")
    beta_schedule = beta if callable(beta) else None
    beta_fingerprint = _check_beta_schedule(beta, steps) if beta_schedule else None
    if loss_fn is None and beta_schedule is None:
        beta = check_number(beta, "beta", minimum=0.0)
    seed = check_seed(seed)
    log_every = max(1, steps // 100) if log_every is None else check_positive_int(log_every, "log_every")
    eval_every = check_positive_int(eval_every, "eval_every", allow_none=True)
    checkpoint_path = None if checkpoint_path is None else check_path(checkpoint_path, "checkpoint_path")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every", allow_none=True)
    checkpoint_minutes = check_number(checkpoint_minutes, "checkpoint_minutes", minimum=0.0, strict=True,
                                      allow_none=True)
    if not isinstance(resume, bool):
        raise ValueError(f"`resume` must be True or False, got {resume!r}.")
    if checkpoint_path is not None and checkpoint_path.is_dir():
        raise ValueError(f"`checkpoint_path` must be a file path, got {str(checkpoint_path)!r}, which is a folder.")
    if checkpoint_path is not None and checkpoint_every is None:
        checkpoint_minutes = checkpoint_minutes or DEFAULT_CHECKPOINT_MINUTES
    describe = lambda f: f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)}"  # noqa: E731
    settings = None if checkpoint_path is None else {
        "steps": steps, "batch_size": batch_size, "learning_rate": None if optimizer else learning_rate,
        "optimizer": describe(optimizer.update) if optimizer else "default",
        "beta": beta_fingerprint if beta_schedule else None if loss_fn else beta,
        "loss_fn": describe(loss_fn) if loss_fn else None, "log_every": log_every, "eval_every": eval_every,
        "seed": seed, "model": model_config(model), "train_images": array_fingerprint(train_images),
        "eval_images": None if eval_images is None else array_fingerprint(eval_images)}
    eval_loss = loss_fn or objectives.vae_loss
    if beta_schedule is None:
        loss_fn = loss_fn or functools.partial(objectives.vae_loss, beta=beta)
    else:
        loss_fn = loss_fn or objectives.vae_loss
    optimizer = optimizer or default_optimizer(learning_rate)

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = optimizer.init(params)
    history, bad_step, pending, first = History(), jnp.asarray(-1), [], 0
    if checkpoint_path is not None and resume and checkpoint_path.exists():
        params, opt_state, meta = load_training_state(checkpoint_path, params=params, opt_state=opt_state,
                                                      settings=settings)
        params, opt_state = jax.tree.map(jnp.asarray, (params, opt_state))
        history, first = History.from_dict(meta["history"]), int(meta["step"])
        bad_step, pending = jnp.asarray(int(meta["bad_step"])), meta["pending"]
    mesh = parallel.data_mesh(batch_size)
    if mesh is not None:
        params, opt_state = parallel.replicate((params, opt_state), mesh)
    if jax.default_backend() == "cpu":
        reuse_host_memory()  # the step's intermediates buffer is otherwise page-faulted in every step
    train_step = make_train_step(graphdef, rest, loss_fn, optimizer, beta_schedule)
    key = jax.random.key(seed)
    eval_key = jax.random.fold_in(key, 10**9)
    data = prefetch(batches(train_images, batch_size, seed=seed, start=first),
                    sharding=None if mesh is None else parallel.batch_sharding(mesh))
    t0, seconds0, saved_at = time.perf_counter(), history.seconds, time.monotonic()
    bar = tqdm(total=steps, initial=first, desc=desc or "training", disable=not progress or is_static(), leave=True)
    step = first

    def check_finite():
        if int(bad_step) >= 0:
            raise TrainingDiverged(
                f"the loss or a gradient became NaN/Inf at step {int(bad_step)} of {steps}; "
                f"training stopped and the model keeps the parameters from step {int(bad_step) - 1}. "
                f"Try a smaller learning_rate (now {learning_rate}) or check the input data."
            )

    try:
        for step, x in zip(range(first + 1, steps + 1), data):
            params, opt_state, metrics, bad_step = train_step(
                params, opt_state, x, jax.random.fold_in(key, step), step, bad_step
            )
            pending.append(metrics)
            if step % log_every == 0 or step == steps:
                check_finite()
                mean = {k: float(np.mean([float(m[k]) for m in pending])) for k in pending[0]}
                history.log("train", step, mean)
                pending = []
                bar.set_postfix(loss=f"{mean['loss']:.2f}")
            if eval_images is not None and eval_every and (step % eval_every == 0 or step == steps):
                nnx.update(model, parallel.local_copy(params))
                history.log("eval", step, mean_metrics(model, eval_images, eval_key, loss_fn=eval_loss))
            bar.update(1)
            if checkpoint_path is not None and step < steps and (
                    (checkpoint_every and step % checkpoint_every == 0)
                    or (checkpoint_minutes and time.monotonic() - saved_at >= 60 * checkpoint_minutes)):
                check_finite()
                history.steps, history.seconds = step, seconds0 + time.perf_counter() - t0
                if jax.process_index() == 0:  # one writer when several processes train together
                    save_training_state(checkpoint_path, params=params, opt_state=opt_state, metadata={
                        "step": step, "bad_step": int(bad_step), "settings": settings, "history": history.to_dict(),
                        "pending": [{k: float(v) for k, v in m.items()} for m in pending]})
                saved_at = time.monotonic()
    finally:
        bar.close()
        data.close()
        nnx.update(model, parallel.local_copy(params))
        history.steps = step
        history.seconds = seconds0 + time.perf_counter() - t0
    if eval_images is not None and not eval_every:
        history.log("eval", steps, mean_metrics(model, eval_images, eval_key, loss_fn=eval_loss))
    return history
