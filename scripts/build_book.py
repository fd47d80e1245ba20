"""Build the book with an execution cache that is honest about what the outputs depend on.

Jupyter Book's execution cache keys only on a notebook's code cells. The outputs also depend on the
run profile (``VAE_BOOK_PROFILE``), the installed numerical libraries and on the part of the
``vae_book`` package that a page's code imports. So this script keeps:

* one execution cache per *base key* (profile, library and Python versions, pinned requirements,
  the package's data files, :data:`KEY_ENV`, the kernels' settings) under
  ``<out>/_build/exec_cache/<base key>``, and points ``<out>/_build/.jupyter_cache`` at it. When the
  base key changes every page is re-read (``--all``); when it changes back, that cache is reused;
* inside it, one *page key* per notebook page (:func:`page_key`): the base key and the source of
  every package module the page's code cells can import, transitively. A page whose key changed since
  its outputs were cached has its cached outputs dropped and is re-executed; the others keep theirs.
  So an edit to ``vae_book/plotting.py`` re-executes only the chapters that import it, and an edit to
  prose (a docstring, a comment) re-executes nothing, unless the page reads source text itself
  (``inspect``, ``__doc__``): then its modules are hashed byte for byte.

The build also sets ``VAE_BOOK_STATIC=1``, so :func:`vae_book.widgets.show` embeds self-contained
HTML explorers (the site has no kernel). The site's front-end assets (MathJax, through npm) are
installed by the book's Sphinx extension, ``scripts/vae_book_site.py``.

Usage::

    python scripts/build_book.py [--root DIR] [--output DIR] [--package NAME] [-- extra jupyter-book args]

``--root`` is the book (default: this repository), ``--output`` the folder that receives ``_build``
(default: the root), ``--package`` the package directory under the root whose source is hashed
(default ``vae_book``).
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _library(module: str, name: str):
    """``vae_book.<module>.<name>`` of this checkout (imported lazily: ``--help`` needs no JAX)."""
    import importlib

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return getattr(importlib.import_module(f"vae_book.{module}"), name)


def profile_name() -> str:
    """The active profile, as the library decides it (``VAE_BOOK_PROFILE`` or the JAX backend)."""
    return _library("profiles", "profile_name")()


def library_versions() -> dict[str, str]:
    """The installed versions the outputs depend on: :func:`vae_book.cache.library_versions`."""
    return _library("cache", "library_versions")()


#: environment variables that change what a chapter computes (besides the profile)
KEY_ENV = ("VAE_BOOK_DATA", "VAE_BOOK_MAX_STEPS")


#: the IPython kernel settings of the build's kernels: figures as 2x ("retina") PNGs, sharp on
#: high-DPI screens and in print, shown at their 1x size
KERNEL_CONFIG = 'c.InlineBackend.figure_formats = {"retina"}\n'


def _kernel_ipython_dir(build_dir: Path) -> Path:
    """An IPYTHONDIR for the build's kernels holding :data:`KERNEL_CONFIG` (a reader's own is untouched)."""
    folder = build_dir / "ipython"
    config = folder / "profile_default" / "ipython_kernel_config.py"
    config.parent.mkdir(parents=True, exist_ok=True)
    if not config.exists() or config.read_text() != KERNEL_CONFIG:
        config.write_text(KERNEL_CONFIG)
    return folder


def base_key(root: str | Path = ROOT, package: str = "vae_book", profile: str | None = None,
             env: dict | None = None) -> str:
    """``<profile>-<hash>``, the key of an execution cache: the hash covers the profile, the Python
    version, the installed versions of jax, jaxlib, the CUDA plugins, flax, optax and numpy
    (:func:`library_versions`), the pinned requirements, the package's data files (everything but its
    ``.py`` files, which the page keys cover), the variables in :data:`KEY_ENV` (e.g. ``VAE_BOOK_DATA``,
    the face folder of the gpu profile; read from ``env``, default ``os.environ``) and the kernels'
    :data:`KERNEL_CONFIG`."""
    root = Path(root).resolve()
    if not (root / package).is_dir():
        raise FileNotFoundError(f"no package folder {root / package}: wrong --root or --package?")
    profile = profile or profile_name()
    env = os.environ if env is None else env
    h = hashlib.sha256()
    h.update(json.dumps({"profile": profile, "python": platform.python_version(), "libraries": library_versions(),
                         "kernel": KERNEL_CONFIG, "env": {k: env.get(k, "") for k in KEY_ENV}},
                        sort_keys=True).encode())
    data = sorted(p for p in (root / package).rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))
    req = root / "requirements.txt"
    for path in data + ([req] if req.exists() else []):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return f"{profile}-{h.hexdigest()[:16]}"


#: a page whose code contains one of these reads source text (docstrings, comments) of the package:
#: its modules are hashed byte for byte, not by their syntax tree
READS_SOURCE = re.compile(r"\binspect\b|__doc__|\bhelp\(|getsource|\?\?")

_CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def page_code(path: Path) -> list[str]:
    """The code cells of a MyST notebook page, without their option headers (``---`` YAML, ``:key:``)."""
    cells = []
    for body in _CODE_CELL.findall(Path(path).read_text()):
        lines = body.splitlines()
        if lines and lines[0].strip() == "---":
            end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
            lines = lines[end + 1:]
        while lines and lines[0].startswith(":"):
            lines = lines[1:]
        cells.append("\n".join(lines))
    return cells


def notebook_pages(root: str | Path = ROOT) -> list[Path]:
    """The pages of the table of contents (``_toc.yml``) that have code cells."""
    import yaml

    root = Path(root).resolve()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("file", "root") and isinstance(v, str):
                    names.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    pages = []
    for name in names:
        path = root / name
        path = path if path.suffix else path.with_suffix(".md")
        if path.suffix == ".md" and path.is_file() and page_code(path):
            pages.append(path)
    return pages


@functools.lru_cache(maxsize=None)
def _module_digest(text: bytes, raw: bool) -> str:
    """SHA-256 of a module's bytes (``raw``) or of its code without docstrings (computed once per text)."""
    return hashlib.sha256(text if raw else _code_only(text.decode()).encode()).hexdigest()


def _code_only(source: str) -> str:
    """The syntax tree of ``source`` without docstrings (comments and layout are not in it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def page_key(page: str | Path, root: str | Path = ROOT, package: str = "vae_book", base: str = "") -> str:
    """The hash of what a notebook page's outputs depend on besides its code cells and the base key.

    That is every module of ``package`` that the page's cells can import, with everything those
    modules import (:func:`vae_book.cache.training_modules`), each by its syntax tree without
    docstrings, or by its bytes when the page reads source text (:data:`READS_SOURCE`). A cell that
    is not plain Python (a magic) makes the page depend on the whole package.
    """
    root = Path(root).resolve()
    cells = page_code(page)
    training_modules, imported_names = _library("cache", "training_modules"), _library("cache", "imported_names")
    roots: set[str] = set()
    whole = False
    for cell in cells:
        try:
            roots |= imported_names(ast.parse(cell), "", package)
        except SyntaxError:
            whole = True
    package_dir = root / package
    if whole:
        files = sorted(str(p.relative_to(package_dir)) for p in package_dir.rglob("*.py"))
    else:
        files = training_modules(sorted(roots), package_dir) if roots else []
    raw = bool(READS_SOURCE.search("\n".join(cells)))
    h = hashlib.sha256(base.encode())
    for rel in files:
        h.update(rel.encode())
        h.update(_module_digest((package_dir / rel).read_bytes(), raw).encode())
    return h.hexdigest()[:16]


#: execution caches kept per build folder (the most recently used ones)
KEEP_CACHES = 6


def _point_cache_at(build: Path, key: str) -> Path:
    cache = build / "exec_cache" / key
    cache.mkdir(parents=True, exist_ok=True)
    os.utime(cache)  # mark as used, for pruning
    others = sorted((d for d in cache.parent.iterdir() if d.is_dir() and d != cache),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in others[KEEP_CACHES - 1:]:
        shutil.rmtree(old, ignore_errors=True)
    link = build / ".jupyter_cache"
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(cache.relative_to(build), target_is_directory=True)
    return cache


def _drop_cached_outputs(cache: Path, pages: list[Path], root: Path) -> None:
    """Remove the cached outputs of ``pages`` from the Jupyter cache at ``cache`` (if it has any).

    A record is the page's if it was cached from the page's path, or from the same path relative to
    another copy of the book (a cache moved with its ``_build`` folder).
    """
    if not pages or not (cache / "global.db").exists():
        return
    from jupyter_cache import get_cache

    jc = get_cache(cache)
    wanted = {p.resolve() for p in pages}
    tails = tuple("/" + p.resolve().relative_to(root).as_posix() for p in pages)
    for record in jc.list_cache_records():
        uri = Path(record.uri)
        if uri.resolve() in wanted or uri.as_posix().endswith(tails):
            jc.remove_cache(record.pk)


def build(root: str | Path = ROOT, output: str | Path | None = None, extra_args: list[str] | tuple = (), *,
          package: str = "vae_book", env: dict | None = None, capture: bool = False):
    """Build the book at ``root`` into ``<output>/_build/html``; returns the CompletedProcess.

    ``env`` (default: ``os.environ``) is passed to Jupyter Book and so to the kernels, with
    ``VAE_BOOK_PROFILE`` fixed to the key's profile, ``VAE_BOOK_STATIC=1``, and glibc's malloc settings
    :data:`vae_book.train.HOST_MALLOC_ENV` where ``env`` does not set them (they change no output). With ``capture`` the
    output is captured (``proc.stdout`` holds both streams) instead of printed.
    """
    root = Path(root).resolve()
    out = Path(output).resolve() if output is not None else root
    env = dict(os.environ if env is None else env)
    profile = env.get("VAE_BOOK_PROFILE") or None
    if profile is None:
        profile = profile_name()
    key = base_key(root, package, profile, env)
    build_dir = out / "_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    cache = _point_cache_at(build_dir, key)
    pages = {str(p.relative_to(root)): page_key(p, root, package, key) for p in notebook_pages(root)}
    recorded_file = cache / "page_keys.json"  # the page keys the outputs in this cache were computed with
    try:
        recorded = json.loads(recorded_file.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: every page is stale
        recorded = {}
    stale = sorted(p for p, k in pages.items() if recorded.get(p) != k)
    _drop_cached_outputs(cache, [root / p for p in stale], root)

    stamp = build_dir / ".build_key"
    previous = stamp.read_text().strip() if stamp.exists() else None
    jb = Path(sys.executable).parent / "jupyter-book"
    args = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--warningiserror", "--keep-going"]
    if output is not None:
        args += ["--path-output", str(out)]
    args += list(extra_args)
    if previous != key:
        message = f"build key {previous} -> {key}: re-reading every page"
        if "--all" not in args:
            args.append("--all")
    elif stale:
        message = f"build key {key} unchanged; re-executing the pages whose imported code changed: {', '.join(stale)}"
        for p in stale:  # Sphinx re-reads a page whose source is newer than its last read
            os.utime(root / p)
    else:
        message = f"build key {key} unchanged: cached outputs are valid"
    env.update(VAE_BOOK_PROFILE=profile, VAE_BOOK_STATIC="1", IPYTHONDIR=str(_kernel_ipython_dir(build_dir)))
    for name, value in _library("train", "HOST_MALLOC_ENV").items():  # malloc settings of the kernels
        env.setdefault(name, value)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    if capture:
        proc = subprocess.run(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        proc.stdout, proc.stderr = f"{message}\n{proc.stdout}", ""
    else:
        print(message, flush=True)
        proc = subprocess.run(args, cwd=root, env=env)
    if proc.returncode == 0:
        recorded_file.write_text(json.dumps(pages, indent=1, sort_keys=True) + "\n")
        stamp.write_text(key + "\n")
    return proc


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT), help="the book's folder (default: this repository)")
    ap.add_argument("--output", default=None, help="folder that receives _build (default: the root)")
    ap.add_argument("--package", default="vae_book", help="package under the root whose source is hashed")
    ns, extra = ap.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    return build(ns.root, ns.output, extra, package=ns.package).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
