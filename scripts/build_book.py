"""Build the book with an execution cache that is honest about what the outputs depend on.

Jupyter Book's execution cache keys only on a notebook's code cells. The outputs also depend on the
run profile (``VAE_BOOK_PROFILE``) and on the ``vae_book`` package source, so this script keeps one
execution cache per (profile, package hash) under ``<out>/_build/exec_cache/<key>`` and points
``<out>/_build/.jupyter_cache`` at it. When the key changes, every page is re-read (``--all``) so no
page shows outputs computed under another profile or an older package; when it changes back, the
cache of that key is still there and is reused.

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
import hashlib
import json
import os
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


def source_key(root: str | Path = ROOT, package: str = "vae_book", profile: str | None = None,
               env: dict | None = None) -> str:
    """``<profile>-<hash>``: the hash covers the profile, the package source, the pinned requirements,
    the installed versions of jax, jaxlib, the CUDA plugins, flax, optax and numpy
    (:func:`library_versions`), and the variables in :data:`KEY_ENV` (``VAE_BOOK_DATA``: the face
    folder the conv and transformer chapters train on in the gpu profile, read from ``env``, default
    ``os.environ``) and the kernels' :data:`KERNEL_CONFIG`."""
    root = Path(root).resolve()
    profile = profile or profile_name()
    h = hashlib.sha256()
    h.update(profile.encode())
    env = os.environ if env is None else env
    h.update(json.dumps({"libraries": library_versions(), "kernel": KERNEL_CONFIG,
                         "env": {k: env.get(k, "") for k in KEY_ENV}}, sort_keys=True).encode())
    files = sorted((root / package).rglob("*.py"))
    if not files:
        raise FileNotFoundError(f"no Python source under {root / package}: wrong --root or --package?")
    req = root / "requirements.txt"
    for path in files + ([req] if req.exists() else []):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return f"{profile}-{h.hexdigest()[:16]}"


#: execution caches kept per build folder (the most recently used ones)
KEEP_CACHES = 6


def _point_cache_at(build: Path, key: str) -> None:
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


def build(root: str | Path = ROOT, output: str | Path | None = None, extra_args: list[str] | tuple = (), *,
          package: str = "vae_book", env: dict | None = None, capture: bool = False):
    """Build the book at ``root`` into ``<output>/_build/html``; returns the CompletedProcess.

    ``env`` (default: ``os.environ``) is passed to Jupyter Book and so to the kernels, with
    ``VAE_BOOK_PROFILE`` fixed to the key's profile and ``VAE_BOOK_STATIC=1``. With ``capture`` the
    output is captured (``proc.stdout`` holds both streams) instead of printed.
    """
    root = Path(root).resolve()
    out = Path(output).resolve() if output is not None else root
    env = dict(os.environ if env is None else env)
    profile = env.get("VAE_BOOK_PROFILE") or None
    if profile is None:
        profile = profile_name()
    key = source_key(root, package, profile, env)
    build_dir = out / "_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    _point_cache_at(build_dir, key)

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
    else:
        message = f"build key {key} unchanged: cached outputs are valid"
    env.update(VAE_BOOK_PROFILE=profile, VAE_BOOK_STATIC="1", IPYTHONDIR=str(_kernel_ipython_dir(build_dir)))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    if capture:
        proc = subprocess.run(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        proc.stdout, proc.stderr = f"{message}\n{proc.stdout}", ""
    else:
        print(message, flush=True)
        proc = subprocess.run(args, cwd=root, env=env)
    if proc.returncode == 0:
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
