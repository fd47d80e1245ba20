"""The trained-model cache: train once, then load, keyed by everything that determines the result.

:func:`fit_cached` hashes the model config, its initial parameters (so the init seed counts), the
training and evaluation images, every :func:`~vae_book.train.fit` argument, and
:func:`training_fingerprint`: the source of **every module of the package that the training code
imports** (found by reading the import statements, not by a hand-kept list; see
:func:`training_modules`) and the installed versions of the numerical libraries. Edit a file the
training imports and every cached model is retrained; edit a figure or a chapter-only helper and none
is.

Writes are atomic (:mod:`vae_book.checkpoints`) and done under a lock on the entry
(:mod:`filelock`), so two processes asking for the same model train it once: the second waits, then
loads. An entry is used only if its stored key and settings are the ones asked for. A stale, corrupt or
mismatched entry is named in a warning and the model is retrained **from its initial parameters**, never
from what a failed load left in it.

A run in progress writes a training checkpoint next to its entry (``<entry>.train``, see
:func:`vae_book.train.fit`), so a cached run that was interrupted (Ctrl-C, a killed kernel, a lost
machine) resumes where it stopped on the next call; the checkpoint is deleted once the entry is saved.
One that cannot be used (corrupt, or of other settings) is named in a warning and training starts over.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import filelock
import jax
from flax import nnx
from jax.typing import ArrayLike

from vae_book import __version__
from vae_book._checks import check_images, check_path
from vae_book.checkpoints import (
    CheckpointError,
    array_fingerprint,
    checkpoint_paths,
    json_default,
    load_model,
    model_config,
    save_model,
)
from vae_book.train import History, fit

__all__ = [
    "CACHE_ENV",
    "TRAINING_ROOTS",
    "cache_dir",
    "training_modules",
    "imported_names",
    "training_fingerprint",
    "array_fingerprint",
    "fit_cached",
]

#: environment variable that moves the trained-model cache
CACHE_ENV = "VAE_BOOK_CACHE"

#: the modules whose import closure is "the training code": the run table and the cached fit
TRAINING_ROOTS = ("vae_book.runs", "vae_book.cache")

#: installed distributions whose versions are part of the fingerprint (and of the book's execution
#: cache key, ``scripts/build_book.py``): the numerics of a run depend on each of them
LIBRARIES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin", "jax-cuda13-pjrt",
             "flax", "optax", "numpy")

_PACKAGE = "vae_book"


def cache_dir() -> Path:
    """The trained-model cache: ``$VAE_BOOK_CACHE`` or the user cache dir (e.g. ``~/.cache/vae_book/models``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("vae_book")) / "models"


def _module_file(root: Path, module: str) -> Path | None:
    """The source file of ``vae_book.a.b`` under the package folder ``root``, or None."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str, is_package: bool, top: str = _PACKAGE) -> set[str]:
    """The modules of the package ``top`` that the file ``path`` (module ``module``) can import, anywhere in it."""
    return set(_imports_of_source(path.read_text(), str(path), module, is_package, top))


@functools.lru_cache(maxsize=1024)
def _imports_of_source(source: str, filename: str, module: str, is_package: bool, top: str) -> frozenset:
    """:func:`imported_names` of one file's text, parsed once per distinct text."""
    tree = ast.parse(source, filename=filename)
    return frozenset(imported_names(tree, module if is_package else module.rpartition(".")[0], top))


def imported_names(tree: ast.AST, package: str, top: str = _PACKAGE) -> set[str]:
    """The names in package ``top`` that the ``import`` statements anywhere in ``tree`` import.

    ``package`` is the package that relative imports start from (``""`` for code outside one, e.g.
    a notebook cell). ``from top import a`` counts both ``top`` and ``top.a`` (a may be a submodule).
    """
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from vae_book import objectives` imports the submodule objectives
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m == top or m.startswith(top + ".")}


def training_modules(roots: Iterable[str] = TRAINING_ROOTS, package_dir: str | Path | None = None) -> list[str]:
    """Paths (relative to the package folder) of every module that importing ``roots`` can execute.

    Follows every ``import`` statement of the package's own modules (also those inside functions),
    and counts each module's parent packages (importing ``vae_book.models.mlp`` runs
    ``vae_book/__init__.py`` and ``vae_book/models/__init__.py``). With ``package_dir``, the package
    is the one in that folder, named by the folder (the book's build uses it for each chapter).
    """
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    top = root.name
    seen: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts)):  # parent packages first
            todo.append(".".join(parts[:i]))
        if name in seen:
            continue
        path = _module_file(root, name)
        if path is None:  # a name imported from a module, not a module
            continue
        seen[name] = path
        todo.extend(_imported_modules(path, name, path.name == "__init__.py", top) - set(seen))
    return sorted(str(p.relative_to(root)) for p in seen.values())


@functools.cache
def library_versions() -> dict[str, str]:
    """The installed version of each of :data:`LIBRARIES` (``"absent"`` for one not installed).

    Read once per process (``library_versions.cache_clear()`` forgets it).
    """
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "absent"
    return out


def training_fingerprint(package_dir: str | Path | None = None) -> str:
    """SHA-256 (16 hex) of the package version, the library versions and the training code's source.

    The source is that of every file :func:`training_modules` finds from :data:`TRAINING_ROOTS`
    (``package_dir``: another copy of the package, for tests; default this one). It is read anew on
    every call (a few milliseconds), so an edited file is never hidden behind an older fingerprint.
    """
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    h = hashlib.sha256(json.dumps({"version": __version__, "libraries": library_versions()}).encode())
    for rel in training_modules(TRAINING_ROOTS, root):
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def _params_fingerprint(model) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)):
        h.update(array_fingerprint(leaf).encode())
    return h.hexdigest()[:16]


def _describe_loss(loss_fn) -> object:
    if loss_fn is None:
        return None
    if isinstance(loss_fn, functools.partial):
        return {"fn": _describe_loss(loss_fn.func), "args": [repr(a) for a in loss_fn.args],
                "kwargs": {k: repr(v) for k, v in sorted(loss_fn.keywords.items())}}
    return f"{getattr(loss_fn, '__module__', '?')}.{getattr(loss_fn, '__qualname__', repr(loss_fn))}"


#: a temporary file in the cache folder older than this (seconds) is an orphan of a killed write
_ORPHAN_AGE = 3600.0


@contextlib.contextmanager
def _locked(path: Path):
    """Hold the lock ``<path>.lock`` (:mod:`filelock`) and sweep the orphaned temporary files.

    Every write of the entry happens under this lock, so a ``<path>.*.tmp`` file older than the
    moment the lock was taken was left by a killed writer; it is deleted, as is any ``*.tmp`` in the
    folder older than an hour (orphans of entries that are no longer asked for).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path.parent / (path.name + ".lock"))):
        taken = time.time()
        for tmp in path.parent.glob("*.tmp"):
            try:
                age = tmp.stat().st_mtime
                if (tmp.name.startswith(path.name + ".") and age <= taken) or age < taken - _ORPHAN_AGE:
                    tmp.unlink()
            except FileNotFoundError:  # swept by another process meanwhile
                pass
        yield


def _load_entry(model, path: Path, key: str, parts: dict) -> History:
    """Load a cache entry into ``model``; raise CheckpointError naming what is wrong with it."""
    meta = load_model(model, path)
    if meta.get("key") != key or meta.get("key_parts") != json.loads(json.dumps(parts, default=json_default)):
        raise CheckpointError(
            f"it was stored under the key {meta.get('key')!r} with other settings, not {key!r} "
            f"(copied from another entry?)."
        )
    try:
        return History.from_dict(meta["history"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"its metadata has no valid training history ({type(e).__name__}: {e}).") from None


def fit_cached(model: nnx.Module, train_images: ArrayLike, *, cache: bool | str | os.PathLike = True, tag: str = "",
               **fit_kwargs: Any) -> tuple[History, dict[str, Any]]:
    """Train ``model`` with :func:`vae_book.train.fit`, or load the parameters of an identical earlier run.

    The key hashes the model config, its initial parameters, the training and evaluation images,
    every ``fit`` argument (steps, batch size, learning rate, beta, loss function, seed), ``tag``,
    and :func:`training_fingerprint`. ``cache=False`` always trains; a path uses that folder
    instead of :func:`cache_dir`. While it trains, a training checkpoint ``<entry>.train`` is written
    every ``checkpoint_every`` steps / ``checkpoint_minutes`` minutes (``fit``'s arguments; default
    every 10 minutes), from which an interrupted run resumes; they are not part of the key.

    Returns:
        ``(history, info)``: the :class:`~vae_book.train.History` of the run that produced the
        parameters and a dict with ``cached`` (bool), ``key`` and ``path``.
    """
    train_images = check_images(train_images, "train_images")
    if "optimizer" in fit_kwargs:
        raise ValueError(f"`optimizer` must not be given to fit_cached (an optax optimiser cannot be hashed), "
                         f"got {type(fit_kwargs['optimizer']).__name__}; pass learning_rate or use `fit` directly.")
    for name in ("checkpoint_path", "resume"):
        if name in fit_kwargs:
            raise ValueError(f"`{name}` must not be given to fit_cached (it keeps its own training checkpoint next "
                             f"to the entry), got {fit_kwargs[name]!r}.")
    if not isinstance(tag, str):
        raise ValueError(f"`tag` must be a string, got {type(tag).__name__}.")
    if cache is not True and cache is not False:
        cache = check_path(cache, "cache")
        if cache.exists() and not cache.is_dir():
            raise ValueError(f"`cache` must be a folder (or True / False), got {str(cache)!r}, which is a file.")
    unkeyed = ("progress", "desc", "eval_images", "loss_fn", "checkpoint_every", "checkpoint_minutes")
    settings = {k: v for k, v in fit_kwargs.items() if k not in unkeyed}
    eval_images = fit_kwargs.get("eval_images")
    parts = {
        "model": model_config(model),
        "initial_params": _params_fingerprint(model),
        "train_images": array_fingerprint(train_images),
        "eval_images": None if eval_images is None else array_fingerprint(eval_images),
        "loss_fn": _describe_loss(fit_kwargs.get("loss_fn")),
        "settings": {k: repr(v) for k, v in sorted(settings.items())},
        "tag": tag,
        "package": training_fingerprint(),
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=json_default).encode()).hexdigest()[:20]
    folder = cache_dir() if cache is True else cache or None
    if folder is None:
        return fit(model, train_images, **fit_kwargs), {"cached": False, "key": key, "path": None}
    path = folder / f"{type(model).__name__}-{key}"
    with _locked(path):
        if checkpoint_paths(path)[1].exists():
            initial = jax.tree.map(lambda a: a.copy(), nnx.state(model))
            try:
                history = _load_entry(model, path, key, parts)
                return history, {"cached": True, "key": key, "path": str(path)}
            except CheckpointError as e:
                nnx.update(model, initial)  # retrain from the initial parameters, not a failed load's
                warnings.warn(f"the cached model at {path} cannot be used and is retrained: {e}", stacklevel=2)
        train_path = path.parent / (path.name + ".train")
        try:
            history = fit(model, train_images, checkpoint_path=train_path, **fit_kwargs)
        except CheckpointError as e:  # raised before any step: the model still holds its initial parameters
            warnings.warn(f"the training checkpoint {train_path} cannot be used; training from the start: {e}",
                          stacklevel=2)
            train_path.unlink()
            history = fit(model, train_images, checkpoint_path=train_path, **fit_kwargs)
        save_model(model, path, {"key": key, "key_parts": parts, "history": history.to_dict()})
        train_path.unlink(missing_ok=True)
    return history, {"cached": False, "key": key, "path": str(path)}
