"""The package's shape: the map in docs/architecture.md matches the tree, imports point one way,
no private name crosses a module, modules stay short, and the public API is documented and core-only."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_book"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_LINES = 400
ENTRY = re.compile(r"^[\w.]+\.py$|^\w+/$")

sys.path.insert(0, str(ROOT / "scripts"))
from vae_book_site import public_modules  # noqa: E402


def layout_modules(text: str) -> set[str]:
    """Module paths (``models/mlp.py``) named in the ``vae_book/`` part of the Layout code block."""
    block = re.search(r"## Layout\s*\n```\n(.*?)\n```", text, re.S)
    assert block, "docs/architecture.md has no ``` block under '## Layout'"
    found, inside, folder = set(), False, ""
    for line in block.group(1).splitlines():
        if line.startswith("vae_book/"):
            inside = True
            continue
        if inside and line and not line.startswith(" "):
            break  # the next top-level entry (tests/, ...)
        if not inside or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        tokens = []
        for token in line.split():
            if not ENTRY.match(token):
                break
            tokens.append(token)
        for token in tokens:
            if indent == 2:
                folder = token if token.endswith("/") else ""
                if not token.endswith("/"):
                    found.add(token)
            elif indent == 4 and folder:
                found.add(folder + token)
    return found


def tree_modules() -> set[str]:
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def test_the_layout_parser_reads_folders_and_lists():
    text = "## Layout\n\n```\nchapters/  x\nvae_book/\n  a.py   one\n                        b.py in prose\n" \
           "  sub/\n    c.py d.py   two\n  e.py\ntests/\n```\n"
    assert layout_modules(text) == {"a.py", "sub/c.py", "sub/d.py", "e.py"}


def test_the_architecture_map_names_every_module_and_only_those():
    listed, present = layout_modules(ARCHITECTURE.read_text()), tree_modules()
    assert not present - listed, f"modules missing from docs/architecture.md's layout: {sorted(present - listed)}"
    assert not listed - present, f"docs/architecture.md names modules that do not exist: {sorted(listed - present)}"


def _imports(path: Path):
    """(module imported, names imported from it) for every import statement of ``path``."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names]


def _home(module: str) -> str:
    """The unit a module belongs to: ``vae_book.models.mlp`` -> ``models``, ``vae_book.train`` -> ``train``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


#: docs/architecture.md's dependency order: a unit may import units of its own level or lower
LEVELS = {"_checks": 0, "profiles": 0, "distributions": 1, "objectives": 2, "models": 3, "data": 4,
          "checkpoints": 4, "parallel": 4, "train": 5, "cache": 6, "runs": 7, "evaluation": 8, "latent": 8,
          "shapes_score": 8, "companion": 9,
          "__main__": 10}
#: figures and explorers take plain arrays: they import validation and the static-build flag only
ARRAY_ONLY = {"plotting": {"_checks", "profiles"}, "widgets": {"_checks", "profiles"}}


def test_dependencies_point_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        unit = _home(src)
        if unit in ("__init__", ""):
            continue  # the package's own __init__ re-exports everything
        for target, names in _imports(path):
            if not target.startswith("vae_book"):
                continue
            targets = {_home(target)} | ({_home(f"{target}.{n}") for n in names} if target == "vae_book" else set())
            for dep in targets - {unit, ""}:
                if dep not in LEVELS and dep not in ARRAY_ONLY:
                    if (PACKAGE / f"{dep}.py").exists() or (PACKAGE / dep).is_dir():
                        wrong.append(f"{src} imports {dep}, which has no place in the dependency order")
                    continue  # a name imported from the package root (e.g. __version__)
                if unit in ARRAY_ONLY:
                    if dep not in ARRAY_ONLY[unit]:
                        wrong.append(f"{src} (plain arrays only) imports {dep}")
                elif dep in ARRAY_ONLY:
                    if LEVELS[unit] < LEVELS["evaluation"]:
                        wrong.append(f"{src} imports the figure/explorer module {dep}")
                elif LEVELS[dep] > LEVELS[unit]:
                    wrong.append(f"{src} (level {LEVELS[unit]}) imports {dep} (level {LEVELS[dep]})")
    assert not wrong, "imports against the dependency order:\n" + "\n".join(wrong)


def test_no_module_imports_another_modules_private_name():
    wrong = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "bench").glob("*.py")]):
        for target, names in _imports(path):
            if target.startswith("vae_book"):
                wrong += [f"{path.relative_to(ROOT)}: from {target} import {n}" for n in names if n.startswith("_")
                          and n != "__version__"]
    assert not wrong, "private names imported across modules:\n" + "\n".join(wrong)


def test_modules_are_short_or_say_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        n = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if n > MAX_LINES and "longer than 400 lines because" not in doc.lower():
            long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long, f"modules over {MAX_LINES} lines whose docstring does not say why: {long}"


def test_the_public_api_is_core_only():
    import vae_book

    for name in vae_book.__all__:
        obj = getattr(vae_book, name)
        home = getattr(obj, "__module__", "") or ""
        assert not home.startswith("vae_book.companion"), f"vae_book.__all__ exports the chapter-only {name}"
    for modname in public_modules("vae_book"):
        if modname.startswith("vae_book.companion."):
            doc = importlib.import_module(modname).__doc__ or ""
            assert re.search(r"[Cc]hapters? \d", doc), f"{modname}'s docstring does not name its chapter"


def _constant_docs(module) -> set[str]:
    from sphinx.pycode import ModuleAnalyzer

    try:
        analyzer = ModuleAnalyzer.for_module(module.__name__)
        analyzer.analyze()
    except Exception:  # noqa: BLE001 - a package __init__ without source
        return set()
    return {name for (_, name), lines in analyzer.attr_docs.items() if "".join(lines).strip()}


@pytest.mark.parametrize("modname", public_modules("vae_book"))
def test_every_public_name_has_a_docstring(modname):
    module = importlib.import_module(modname)
    assert (module.__doc__ or "").strip(), f"{modname} has no module docstring"
    names = getattr(module, "__all__", None)
    if names is None:
        return
    undocumented = []
    for name in names:
        if name == "__version__":
            continue
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj):
            if not (inspect.getdoc(obj) or "").strip().splitlines():
                undocumented.append(name)
        else:  # a constant: a `#:` comment where it is defined
            home = next((importlib.import_module(m) for m in [modname, *public_modules("vae_book")]
                         if name in vars(importlib.import_module(m)) and name in _constant_docs(importlib.import_module(m))),
                        None)
            if home is None:
                undocumented.append(name)
    assert not undocumented, f"{modname}: public names without a docstring or `#:` comment: {undocumented}"
