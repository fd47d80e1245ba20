"""Save and restore model parameters (Flax msgpack, never pickle).

A checkpoint is two files written atomically (to a temporary name, then ``os.replace``):

* ``<name>.msgpack`` — the parameters as a pure dict of arrays, serialised with ``flax.serialization``;
* ``<name>.json`` — metadata: the model config, the SHA-256 of the parameter file and anything the
  caller adds (e.g. the training history).

``<name>`` is used as given: ``run.v1`` gives ``run.v1.msgpack`` and ``run.v1.json``. The metadata is
serialised before either file is written, so metadata that JSON cannot encode leaves an existing
checkpoint untouched. The trained-model cache built on these files is :mod:`vae_book.cache`.

A **training checkpoint** (:func:`save_training_state`, what :func:`vae_book.train.fit` writes to resume
an interrupted run) holds more than the parameters: the optimiser state, the step, the divergence
guard, the metrics not yet logged, the history so far and the run's settings. It is *one* file, a
msgpack map of the metadata (JSON text), the SHA-256 of metadata and arrays, and the arrays, written
by the same atomic replace: a kill at any moment leaves the previous checkpoint or the new one, never
a new array file paired with old metadata (two files renamed one after the other could be).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx, serialization
from jax.typing import ArrayLike

from vae_book._checks import check_module, check_path
from vae_book.models import ConvConfig, ConvVAE, MLPAutoencoder, MLPConfig, MLPVAE, TransformerConfig, TransformerVAE
from vae_book.models.base import config_dict

#: the model classes :func:`restore_model` can rebuild, by name, with the config class each takes
MODEL_CLASSES = {
    "MLPVAE": (MLPVAE, MLPConfig),
    "MLPAutoencoder": (MLPAutoencoder, MLPConfig),
    "ConvVAE": (ConvVAE, ConvConfig),
    "TransformerVAE": (TransformerVAE, TransformerConfig),
}

__all__ = ["CheckpointError", "FORMAT", "TRAINING_FORMAT", "MODEL_CLASSES", "checkpoint_paths", "model_config",
           "json_default", "save_model", "load_model", "restore_model", "array_fingerprint", "save_training_state",
           "load_training_state"]

#: the ``format`` field of the metadata this version writes
FORMAT = "vae_book-checkpoint-1"
#: the ``format`` field of a training checkpoint (:func:`save_training_state`)
TRAINING_FORMAT = "vae_book-training-state-1"
_RESERVED = ("format", "model", "model_class", "num_params", "sha256")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or written for another model."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<path>.msgpack, <path>.json)``; a ``path`` already ending in one of those suffixes is stripped."""
    path = check_path(path, "path")
    if path.suffix in (".msgpack", ".json"):
        path = path.with_suffix("")
    return path.parent / (path.name + ".msgpack"), path.parent / (path.name + ".json")


def _umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make a shared cache unreadable to others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_default(o: object) -> int | float | list[Any]:
    """``json.dumps`` hook: NumPy scalars become numbers, tuples and sets lists; anything else is refused."""
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def model_config(model: nnx.Module) -> dict:
    """The model's config as stored in a checkpoint (a JSON-normalised dict; tuples become lists)."""
    config = getattr(model, "config", None)
    d = config_dict(config) if config is not None else {"kind": type(model).__name__}
    return json.loads(json.dumps(d, default=json_default))


def _check_model(model):
    check_module(model)
    if not jax.tree.leaves(nnx.state(model, nnx.Param)):
        raise ValueError(f"`model` must be an nnx.Module with parameters, got a {type(model).__name__} with none.")


def save_model(model: nnx.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model``'s parameters to ``<path>.msgpack`` and metadata to ``<path>.json``, atomically.

    Returns the path of the parameter file. ``metadata`` must be a JSON-serialisable dict whose keys
    are not ``format``, ``model``, ``model_class``, ``num_params`` or ``sha256`` (those are computed
    here). A model of a class in :data:`MODEL_CLASSES` can be rebuilt from the files alone with
    :func:`restore_model`.
    """
    _check_model(model)
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"`metadata` must be a dict or None, got {type(metadata).__name__}.")
    metadata = dict(metadata or {})
    clash = sorted(set(metadata) & set(_RESERVED))
    if clash:
        raise ValueError(f"`metadata` must not set the computed fields {list(_RESERVED)}, got the keys {clash}; "
                         f"rename them.")
    params_path, meta_path = checkpoint_paths(path)
    state = nnx.state(model, nnx.Param)
    pure = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
    blob = serialization.msgpack_serialize(pure)
    meta = {
        "format": FORMAT,
        "model": model_config(model),
        "model_class": type(model).__name__,
        "num_params": int(sum(np.size(a) for a in jax.tree.leaves(pure))),
        "sha256": hashlib.sha256(blob).hexdigest(),
        **metadata,
    }
    try:
        text = json.dumps(meta, indent=1, default=json_default).encode()
    except (TypeError, ValueError) as e:
        raise ValueError(f"`metadata` must be JSON-serialisable (numbers, strings, lists, dicts, arrays), got "
                         f"a value it cannot encode: {e}") from None
    _atomic_write(params_path, blob)
    _atomic_write(meta_path, text)
    return params_path


def load_model(model: nnx.Module, path: str | os.PathLike) -> dict:
    """Restore parameters saved by :func:`save_model` into ``model`` (in place); return the metadata.

    Raises:
        CheckpointError: the files are missing, the parameter file does not match its recorded
            SHA-256 (corrupt or truncated), or it was written for a model with another config or
            other parameter shapes. The message says which and what to do.
    """
    _check_model(model)
    return _load_params(model, path, *_read_metadata(path))


def _load_params(model, path, meta: dict, meta_path: Path) -> dict:
    """:func:`load_model` after the metadata is read (once: :func:`restore_model` shares it)."""
    params_path, _ = checkpoint_paths(path)
    blob = params_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise CheckpointError(
            f"checkpoint {params_path} does not match the SHA-256 recorded in {meta_path.name}: the file is "
            f"corrupt or truncated. Delete both files and retrain."
        )
    want = model_config(model)
    if meta.get("model") != want:
        raise CheckpointError(
            f"checkpoint {path} was written for the model config {meta.get('model')}, but the model has "
            f"config {want}. Build the model with the checkpoint's config, or retrain and save a new checkpoint."
        )
    state = nnx.state(model, nnx.Param)
    target = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
    restored = serialization.msgpack_restore(blob)
    got_shapes = jax.tree.map(np.shape, restored)
    want_shapes = jax.tree.map(np.shape, target)
    if got_shapes != want_shapes:
        raise CheckpointError(
            f"checkpoint {params_path} has parameters of other names or shapes than the model; "
            f"it was written by another version of the model. Delete it and retrain."
        )
    nnx.replace_by_pure_dict(state, jax.tree.map(jax.numpy.asarray, restored))
    nnx.update(model, state)
    return meta


def _read_metadata(path) -> tuple[dict, Path]:
    params_path, meta_path = checkpoint_paths(path)
    if not params_path.exists() or not meta_path.exists():
        raise CheckpointError(f"`path` must name a saved checkpoint ({params_path.name} and {meta_path.name}), "
                              f"got {str(path)!r}, where there is none.")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint metadata {meta_path} is corrupt ({e}); delete it and retrain.") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint metadata {meta_path} is not a JSON object; delete it and retrain.")
    return meta, meta_path


def restore_model(
    path: str | os.PathLike,
) -> tuple[MLPVAE | MLPAutoencoder | ConvVAE | TransformerVAE, dict[str, Any]]:
    """Rebuild the model saved at ``path`` from its stored config and load its parameters.

    ``model, metadata = restore_model("runs/mlp")`` needs no code that knows how the model was built:
    the checkpoint's ``model_class`` (one of :data:`MODEL_CLASSES`) and ``model`` config say it. The
    parameters are then checked and loaded exactly as :func:`load_model` does.

    Returns:
        ``(model, metadata)``.

    Raises:
        CheckpointError: no checkpoint at ``path``, metadata without a known ``model_class`` or with
            a config the class refuses, or any reason :func:`load_model` has.
    """
    meta, meta_path = _read_metadata(path)
    name = meta.get("model_class")
    if name not in MODEL_CLASSES:
        raise CheckpointError(
            f"checkpoint metadata {meta_path} must name a model class, one of {sorted(MODEL_CLASSES)}, got "
            f"{name!r}; build the model yourself and use load_model(model, path)."
        )
    cls, config_cls = MODEL_CLASSES[name]
    fields = dict(meta.get("model") or {})
    kind = fields.pop("kind", None)
    if kind != config_cls.__name__:
        raise CheckpointError(f"checkpoint metadata {meta_path} must hold a {config_cls.__name__} for a {name}, "
                              f"got a config of kind {kind!r}.")
    try:
        config = config_cls(**fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint metadata {meta_path} holds a config {config_cls.__name__} refuses: "
                              f"{e}") from None
    model = cls(config, rngs=nnx.Rngs(0))
    return model, _load_params(model, path, meta, meta_path)


def array_fingerprint(x: ArrayLike) -> str:
    """SHA-256 (16 hex) of an array's shape, dtype and bytes (a NumPy or JAX array)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"`x` must be a NumPy or JAX array, got {type(x).__name__} {x!r:.60}.")
    x = np.ascontiguousarray(np.asarray(x))
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(x.tobytes())
    return h.hexdigest()[:16]


def _host(a) -> np.ndarray:
    """A NumPy copy of ``a``; of a replicated array spanning other processes, this process's copy."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        a = a.addressable_data(0)
    return np.asarray(a)


def _leaves(tree) -> dict:
    return {str(i): _host(a) for i, a in enumerate(jax.tree.leaves(tree))}


def _state_hash(text: bytes, blob: bytes) -> str:
    return hashlib.sha256(len(text).to_bytes(8, "little") + text + blob).hexdigest()


def save_training_state(path: str | os.PathLike, *, params: Any, opt_state: Any, metadata: dict) -> Path:
    """Write a training checkpoint to the one file ``path``, atomically; return its path.

    ``params`` and ``opt_state`` are pytrees of arrays (an ``nnx.State``, an optax state); they are
    stored as their lists of leaves, to be put back into the same structure by
    :func:`load_training_state`. ``metadata`` is a JSON-serialisable dict (the step, the settings,
    the history; see :func:`vae_book.train.fit`).
    """
    path = check_path(path, "path")
    if not isinstance(metadata, dict):
        raise ValueError(f"`metadata` must be a dict, got {type(metadata).__name__}.")
    try:
        text = json.dumps(metadata, default=json_default).encode()
    except (TypeError, ValueError) as e:
        raise ValueError(f"`metadata` must be JSON-serialisable, got a value it cannot encode: {e}") from None
    blob = serialization.msgpack_serialize({"params": _leaves(params), "opt_state": _leaves(opt_state)})
    record = {"format": TRAINING_FORMAT, "metadata": text.decode(), "sha256": _state_hash(text, blob), "state": blob}
    _atomic_write(path, serialization.msgpack_serialize(record))
    return path


def _restore(template, stored, what: str, path: Path):
    leaves, treedef = jax.tree.flatten(template)
    if not isinstance(stored, dict) or sorted(stored, key=int) != [str(i) for i in range(len(leaves))]:
        raise CheckpointError(f"training checkpoint {path} holds another {what} structure than this run "
                              f"({len(stored) if isinstance(stored, dict) else '?'} arrays, not {len(leaves)}).")
    out = []
    for i, want in enumerate(leaves):
        got = np.asarray(stored[str(i)])
        if got.shape != np.shape(want) or got.dtype != np.asarray(want).dtype:
            raise CheckpointError(f"training checkpoint {path} holds a {what} array of shape {got.shape} and dtype "
                                  f"{got.dtype} where this run has {np.shape(want)} {np.asarray(want).dtype}.")
        out.append(got)
    return jax.tree.unflatten(treedef, out)


def load_training_state(path: str | os.PathLike, *, params: Any, opt_state: Any,
                        settings: dict | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Read a training checkpoint written by :func:`save_training_state`: ``(params, opt_state, metadata)``.

    ``params`` and ``opt_state`` are templates (the run's initial ones): the stored arrays must have
    their structure, shapes and dtypes, and come back in that structure as NumPy arrays. With
    ``settings``, ``metadata["settings"]`` must equal it (after a JSON round trip).

    Raises:
        CheckpointError: the file is missing, corrupt (not the format, or its SHA-256 does not
            match), or was written for another run: the message names the settings that differ.
    """
    path = check_path(path, "path")
    if not path.is_file():
        raise CheckpointError(f"`path` must name a training checkpoint, got {str(path)!r}, where there is none.")
    try:
        record = serialization.msgpack_restore(path.read_bytes())
        text, blob = record["metadata"].encode(), record["state"]
        if record["format"] != TRAINING_FORMAT or _state_hash(text, blob) != record["sha256"]:
            raise ValueError("its SHA-256 or format does not match")
        metadata, state = json.loads(text), serialization.msgpack_restore(blob)
        if not isinstance(metadata, dict) or not isinstance(state, dict):
            raise ValueError("its metadata or state is not a map")
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same failure
        raise CheckpointError(f"training checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                              f"delete it to train from the start.") from None
    if settings is not None:
        want = json.loads(json.dumps(settings, default=json_default))
        got = metadata.get("settings") if isinstance(metadata.get("settings"), dict) else {}
        differ = [f"{k}: {got.get(k)!r} in the checkpoint, {want.get(k)!r} now" for k in sorted({*want, *got})
                  if got.get(k) != want.get(k)]
        if differ:
            raise CheckpointError(f"training checkpoint {path} was written for other settings ("
                                  + "; ".join(differ) + "). Delete it, pass resume=False, or use another path.")
    return (_restore(params, state.get("params"), "parameter", path),
            _restore(opt_state, state.get("opt_state"), "optimiser-state", path), metadata)
