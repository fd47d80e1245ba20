"""Every public function and method of the package is fully annotated, and its annotations resolve.

"Public" here: a function defined in a module of ``vae_book`` (private modules included) whose name
does not start with ``_``, and each method of a public class defined there -- the methods the class
itself defines (static, class and instance methods, property getters), ``__init__`` and
``__call__`` included. Each needs an annotation on every parameter but ``self`` / ``cls`` (``*args``
and ``**kwargs`` too) and a return annotation (``-> None`` for ``__init__``), and
:func:`typing.get_type_hints` must resolve them all: a name used only in an annotation must be
imported, at least under ``if TYPE_CHECKING:``. The imports of a module's ``TYPE_CHECKING`` block are
executed here (the type checker sees them; the library skips them at run time because they are heavy
or circular), so such names resolve too.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import pkgutil
import typing
from pathlib import Path
from types import ModuleType

import vae_book

PACKAGE = Path(vae_book.__file__).resolve().parent

#: fewer callables than this means the walk missed most of the package (it checked 273 when written)
MIN_CHECKED = 250

#: dunder methods checked like public ones
CHECKED_DUNDERS = ("__init__", "__call__")


def _modules() -> list[ModuleType]:
    names = ["vae_book"] + [info.name for info in pkgutil.walk_packages(vae_book.__path__, "vae_book.")]
    return [importlib.import_module(name) for name in sorted(names)]


def _type_checking_names(module: ModuleType) -> dict[str, object]:
    """The names imported in ``module``'s ``if TYPE_CHECKING:`` blocks, imported for real."""
    source = Path(module.__file__).read_text()
    namespace: dict[str, object] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for stmt in node.body:
                assert isinstance(stmt, (ast.Import, ast.ImportFrom)), (
                    f"{module.__name__}: only imports belong in an `if TYPE_CHECKING:` block")
                exec(compile(ast.Module([stmt], type_ignores=[]), module.__file__, "exec"), namespace)
    namespace.pop("__builtins__", None)
    return namespace


def _methods(cls: type) -> list[tuple[str, object]]:
    found = []
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for name, attr in vars(cls).items():
        if (name.startswith("_") and name not in CHECKED_DUNDERS) or name in fields:
            continue  # private, or a dataclass field's default (e.g. a lambda), typed as the field
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        elif isinstance(attr, property):
            attr = attr.fget
        elif isinstance(attr, functools.cached_property):
            attr = attr.func
        attr = inspect.unwrap(attr) if callable(attr) else attr
        if inspect.isfunction(attr):
            found.append((f"{cls.__qualname__}.{name}", attr))
    return found


@functools.cache
def _callables() -> list[tuple[ModuleType, str, object]]:
    """``(module, qualified name, function)`` for every public function and method of the package."""
    found = []
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                found += [(module, qualname, fn) for qualname, fn in _methods(obj)]
                continue
            fn = inspect.unwrap(obj) if callable(obj) else obj  # a jitted function: the Python one it wraps
            if inspect.isfunction(fn) and fn.__module__ == module.__name__:
                found.append((module, name, fn))
    return found


def _missing(qualname: str, fn: object) -> list[str]:
    params = list(inspect.signature(fn).parameters.values())
    annotations = fn.__annotations__
    missing = []
    for i, p in enumerate(params):
        if i == 0 and p.name in ("self", "cls") and "." in qualname:
            continue
        if p.name not in annotations:
            missing.append(p.name)
    if "return" not in annotations:
        missing.append("return")
    elif qualname.endswith(".__init__") and annotations["return"] not in (None, "None"):
        missing.append("return (must be None)")
    return missing


def test_the_walk_checks_enough_callables():
    found = _callables()
    assert len(found) > MIN_CHECKED, f"only {len(found)} public functions and methods found"
    names = {f"{module.__name__}.{qualname}" for module, qualname, _ in found}
    for expected in ("vae_book.train.fit", "vae_book.models.transformer.TransformerVAE.__init__",
                     "vae_book.models.base.VAE.__call__", "vae_book.evaluation.Evaluation.bits_per_dim",
                     "vae_book.companion.sweeps.beta_sweep", "vae_book.data.base.batches",
                     "vae_book.__main__.main", "vae_book._checks.check_array", "vae_book.train.History.from_dict"):
        assert expected in names, f"{expected} was not checked"


def test_the_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file(), "vae_book/py.typed is missing (PEP 561)"


def test_every_public_function_is_fully_annotated():
    offending = []
    for module, qualname, fn in _callables():
        offending += [f"{module.__name__}.{qualname}({name})" for name in _missing(qualname, fn)]
    assert not offending, f"{len(offending)} missing annotations:\n" + "\n".join(offending)


def test_every_annotation_resolves():
    failures = []
    extra: dict[str, dict[str, object]] = {}
    for module, qualname, fn in _callables():
        if module.__name__ not in extra:
            extra[module.__name__] = _type_checking_names(module)
        try:
            typing.get_type_hints(fn, localns=extra[module.__name__])
        except Exception as e:  # noqa: BLE001 - any failure to resolve is the finding
            failures.append(f"{module.__name__}.{qualname}: {type(e).__name__}: {e}")
    assert not failures, "annotations that do not resolve:\n" + "\n".join(failures)
