"""Save and restore model parameters (Flax msgpack, never pickle) and the trained-model cache.

A checkpoint is two files written atomically (to a temporary name, then ``os.replace``):

* ``<name>.msgpack`` — the parameters as a pure dict of arrays, serialised with ``flax.serialization``;
* ``<name>.json`` — metadata: the model config, the SHA-256 of the parameter file, the cache key and
  anything the caller adds (e.g. the training history).

:func:`fit_cached` trains a model once and reuses it: the cache key hashes everything that
determines the trained parameters (model config, training images, training settings, seed, package
version and source). A corrupt or mismatched entry is detected, reported and retrained, never used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import jax
import numpy as np
from flax import nnx, serialization

from vae_book._checks import check_images
from vae_book.models.base import config_dict

__all__ = [
    "CheckpointError",
    "cache_dir",
    "package_fingerprint",
    "array_fingerprint",
    "save_model",
    "load_model",
    "fit_cached",
]

CACHE_ENV = "VAE_BOOK_CACHE"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or written for another model."""


def cache_dir() -> Path:
    """The trained-model cache: ``$VAE_BOOK_CACHE`` or the user cache dir (e.g. ``~/.cache/vae_book``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("vae_book")) / "models"


#: The modules whose source can change what training produces; figures, widgets and analysis
#: helpers are left out so that editing them does not throw away every trained model.
TRAINING_SOURCES = ("__init__.py", "_checks.py", "distributions.py", "objectives.py", "train.py", "data.py",
                    "checkpoints.py", "experiments.py", "profiles.py", "models/*.py")


@functools.cache
def package_fingerprint() -> str:
    """SHA-256 (16 hex) of the package version and the source of every module that affects training.

    Those are the files matched by :data:`TRAINING_SOURCES` (the math, the models, the data, the
    training loop, the cache and the profiles).
    """
    from vae_book import __version__

    h = hashlib.sha256(__version__.encode())
    root = Path(__file__).resolve().parent
    paths = sorted({p for pattern in TRAINING_SOURCES for p in root.glob(pattern)})
    for path in paths:
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def array_fingerprint(x) -> str:
    """SHA-256 (16 hex) of an array's shape, dtype and bytes."""
    x = np.ascontiguousarray(np.asarray(x))
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(x.tobytes())
    return h.hexdigest()[:16]


def _atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _model_config(model) -> dict:
    config = getattr(model, "config", None)
    d = config_dict(config) if config is not None else {"kind": type(model).__name__}
    return json.loads(json.dumps(d, default=_json_default))  # tuples -> lists, as stored


def save_model(model, path, metadata: dict | None = None) -> Path:
    """Write ``model``'s parameters to ``<path>.msgpack`` and metadata to ``<path>.json``, atomically.

    Returns the path of the parameter file. ``metadata`` must be JSON-serialisable.
    """
    path = Path(path)
    state = nnx.state(model, nnx.Param)
    pure = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
    blob = serialization.msgpack_serialize(pure)
    meta = {
        "format": "vae_book-checkpoint-1",
        "model": _model_config(model),
        "num_params": int(sum(np.size(a) for a in jax.tree.leaves(pure))),
        "sha256": hashlib.sha256(blob).hexdigest(),
        **(metadata or {}),
    }
    params_path = path.with_suffix(".msgpack")
    _atomic_write(params_path, blob)
    _atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=1, default=_json_default).encode())
    return params_path


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def load_model(model, path) -> dict:
    """Restore parameters saved by :func:`save_model` into ``model`` (in place); return the metadata.

    Raises:
        CheckpointError: the files are missing, the parameter file does not match its recorded
            SHA-256 (corrupt or truncated), or it was written for a model with another config or
            other parameter shapes. The message says which and what to do.
    """
    path = Path(path)
    params_path, meta_path = path.with_suffix(".msgpack"), path.with_suffix(".json")
    if not params_path.exists() or not meta_path.exists():
        raise CheckpointError(f"no checkpoint at {path} (expected {params_path.name} and {meta_path.name}).")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint metadata {meta_path} is corrupt ({e}); delete it and retrain.") from None
    blob = params_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise CheckpointError(
            f"checkpoint {params_path} does not match the SHA-256 recorded in {meta_path.name}: the file is "
            f"corrupt or truncated. Delete both files and retrain."
        )
    want = _model_config(model)
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


def _params_fingerprint(model) -> str:
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    h = hashlib.sha256()
    for leaf in leaves:
        h.update(array_fingerprint(leaf).encode())
    return h.hexdigest()[:16]


def _describe_loss(loss_fn) -> object:
    if loss_fn is None:
        return None
    if isinstance(loss_fn, functools.partial):
        return {"fn": _describe_loss(loss_fn.func), "args": [repr(a) for a in loss_fn.args],
                "kwargs": {k: repr(v) for k, v in sorted(loss_fn.keywords.items())}}
    return f"{getattr(loss_fn, '__module__', '?')}.{getattr(loss_fn, '__qualname__', repr(loss_fn))}"


def fit_cached(model, train_images, *, cache: bool | str | Path = True, tag: str = "", **fit_kwargs):
    """Train ``model`` with :func:`vae_book.train.fit`, or load the parameters of an identical earlier run.

    The key hashes the model config, its initial parameters (so the init seed counts), the training images, every ``fit`` argument (steps, batch size,
    learning rate, beta, loss function, seed, eval images), ``tag``, and :func:`package_fingerprint`.
    ``cache=False`` always trains; a path uses that folder instead of :func:`cache_dir`.

    Returns:
        ``(history, info)``: the :class:`~vae_book.train.History` of the run that produced the
        parameters and a dict with ``cached`` (bool), ``key`` and ``path``.
    """
    from vae_book.train import History, fit

    train_images = check_images(train_images, "train_images")
    if "optimizer" in fit_kwargs:
        raise ValueError("`fit_cached` cannot hash a custom `optimizer`; pass learning_rate or use `fit` directly.")
    settings = {k: v for k, v in fit_kwargs.items() if k not in ("progress", "desc", "eval_images", "loss_fn")}
    parts = {
        "model": _model_config(model),
        "initial_params": _params_fingerprint(model),
        "train_images": array_fingerprint(train_images),
        "eval_images": None if fit_kwargs.get("eval_images") is None else array_fingerprint(fit_kwargs["eval_images"]),
        "loss_fn": _describe_loss(fit_kwargs.get("loss_fn")),
        "settings": {k: repr(v) for k, v in sorted(settings.items())},
        "tag": tag,
        "package": package_fingerprint(),
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=_json_default).encode()).hexdigest()[:20]
    folder = cache_dir() if cache is True else Path(cache) if cache else None
    path = folder / f"{type(model).__name__}-{key}" if folder else None
    if path is not None and path.with_suffix(".json").exists():
        try:
            meta = load_model(model, path)
            return History.from_dict(meta["history"]), {"cached": True, "key": key, "path": str(path)}
        except (CheckpointError, KeyError) as e:
            warnings.warn(f"ignoring the cached model at {path}: {e} Retraining.", stacklevel=2)
    history = fit(model, train_images, **fit_kwargs)
    if path is not None:
        save_model(model, path, {"key": key, "key_parts": parts, "history": history.to_dict()})
    return history, {"cached": False, "key": key, "path": None if path is None else str(path)}
