"""The package as a practitioner installs it: declared dependencies, floors, the wheel, the data it ships.

* Every third-party module the package imports is a declared dependency (pandas once was not).
* The declared floors are the versions the book is tested with (``requirements.txt``), and the
  environment lock (``constraints.txt``) agrees with both: a floor nothing tests is not declared.
  (Installing the lowest versions of every dependency in a test would need a second full JAX
  environment per run; declaring only tested floors, and checking they stay equal to the pins,
  replaces it.)
* ``requires-python`` is no lower than what the pinned dependencies require.
* A wheel built from the tree installs into a clean virtual environment with only its declared
  dependencies and imports every public module; the shipped digits and ``py.typed`` are in it.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: import name -> distribution name, where they differ
DIST_OF = {"PIL": "pillow", "yaml": "pyyaml"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line.split("#")[0].strip())
        if m:
            out[_norm(m.group(1))] = m.group(2)
    return out


def _declared() -> dict[str, str]:
    out = {}
    for dep in PYPROJECT["dependencies"]:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][^,;]*)", dep.strip())
        assert m, f"pyproject dependency {dep!r} must be written name>=floor"
        out[_norm(m.group(1))] = m.group(2)
    return out


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module names imported anywhere in vae_book (module level or inside functions)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "vae_book").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                if top != "vae_book" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_third_party_package_is_declared():
    declared = set(_declared()) | {_norm(d.split(">=")[0]) for d in PYPROJECT["optional-dependencies"]["widgets"]}
    undeclared = {}
    for top, files in _third_party_imports().items():
        dist = _norm(DIST_OF.get(top, top))
        if dist not in declared:
            undeclared[top] = sorted(files)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    assert "pandas" in _third_party_imports() and "pandas" in declared


def test_declared_floors_are_the_tested_pins_and_the_lock_agrees():
    pins, lock = _pins(ROOT / "requirements.txt"), _pins(ROOT / "constraints.txt")
    for name, floor in _declared().items():
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert floor == pins[name], f"{name}: declared floor {floor} but the book is tested with {pins[name]}"
    for name, version in pins.items():
        assert lock.get(name) == version, f"{name}: requirements.txt pins {version}, constraints.txt {lock.get(name)}"
    assert "mlxtend" not in pins and "scikit-learn" not in lock


def test_requires_python_is_what_the_pinned_dependencies_need():
    floor = tuple(int(p) for p in PYPROJECT["requires-python"].removeprefix(">=").split("."))
    need = (3, 0)
    for name in _declared():
        spec = metadata.metadata(name).get("Requires-Python") or ""
        for m in re.finditer(r">=\s*(\d+)\.(\d+)", spec):
            need = max(need, (int(m.group(1)), int(m.group(2))))
    assert floor == need, f"requires-python is >={'.'.join(map(str, floor))}, the pinned dependencies need {need}"


def test_the_shipped_digits_are_checked_against_their_hash(tmp_path, monkeypatch):
    from vae_book.data import mnist5k

    mnist = importlib.import_module("vae_book.data.mnist")
    pixels, labels = mnist._mnist5k_raw()
    assert pixels.shape == (5000, 784) and pixels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    damaged = tmp_path / "mnist5k.npz"
    data = bytearray(mnist.MNIST5K_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(mnist, "MNIST5K_FILE", damaged)
    mnist._mnist5k_raw.cache_clear()
    try:
        with pytest.raises(ValueError, match="SHA-256.*reinstall"):
            mnist5k()
    finally:
        monkeypatch.undo()
        mnist._mnist5k_raw.cache_clear()
    assert mnist5k().train_labels.shape[0] == 4500


def _site_packages_mb(env: Path) -> float:
    site = next(env.glob("lib/python3*/site-packages"))
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 2**20


@pytest.mark.slow
def test_the_wheel_installs_into_a_clean_venv_and_imports_every_public_module(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from vae_book_site import public_modules
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    modules = public_modules("vae_book")
    assert len(modules) > 20, modules

    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (wheel,) = wheels.glob("vae_book-*.whl")
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    py = env / "bin" / "python"
    # only what the wheel declares, at the locked versions (no requirements.txt: no book, no tests)
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel), "-c", str(ROOT / "constraints.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = {_norm(d.metadata["Name"]) for d in metadata.distributions(path=[str(next(env.glob("lib/python3*/site-packages")))])}
    assert not installed & {"mlxtend", "scikit-learn", "joblib", "jupyter-book", "pytest"}, installed
    code = (
        "import importlib, json, sys\n"
        f"mods = {modules!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        "import vae_book, pathlib\n"
        "from vae_book.data import mnist5k\n"
        "root = pathlib.Path(vae_book.__file__).parent\n"
        "print(json.dumps({'n': len(mods), 'file': vae_book.__file__, 'typed': (root / 'py.typed').exists(),\n"
        "                  'licence': (root / 'data' / 'MNIST5K_LICENSE.txt').exists(),\n"
        "                  'digits': int(mnist5k().train_labels.shape[0])}))\n"
    )
    run = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert str(env) in out["file"], out  # the installed copy, not this checkout
    assert out == {**out, "n": len(modules), "typed": True, "licence": True, "digits": 4500}
    print(f"clean install of the wheel: {_site_packages_mb(env):.0f} MiB of site-packages")
