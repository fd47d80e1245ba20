"""Front-end assets the static site serves itself, installed through npm at build time.

The book must read offline: MathJax is not loaded from a CDN but installed from the npm registry
(``mathjax`` 4 and its font ``@mathjax/mathjax-newcm-font``, pinned to exact versions in
``scripts/site/package.json`` and its lock file, with their integrity hashes) into ``_build/npm``, and
copied to ``_build/site_static/mathjax``: the browser components of ``mathjax`` (the package's root:
``tex-mml-chtml.js``, ``input/``, ``output/``, ``a11y/``, ``ui/``, ``sre/``; not its Node.js entry
points) and, under ``mathjax/fonts/mathjax-newcm-font/``, the font's CHTML and SVG data and its woff2
files. MathJax 4 loads its fonts from the ``[fonts]`` path, a CDN unless configured:
``_config.yml``'s ``mathjax3_config`` sets ``loader.paths.fonts`` to ``[mathjax]/fonts`` (:data:`FONTS_PATH`),
the folder above. The Sphinx extension ``scripts/vae_book_site.py`` adds ``_build/site_static`` to
``html_static_path`` (so the tree lands in ``_build/html/_static/mathjax/``) and ``_config.yml`` sets
``mathjax_path: mathjax/tex-mml-chtml.js``.

Usage: python scripts/site_assets.py [ROOT]   (idempotent; fast when the assets are already there)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE / "site"          # package.json + package-lock.json (the pins)
MATHJAX_ENTRY = "tex-mml-chtml.js"   # the component _config.yml's mathjax_path names
#: the npm package of the font MathJax 4 uses by default (its combined components name it)
FONT_PACKAGE = "@mathjax/mathjax-newcm-font"
#: where the font goes, relative to the MathJax tree: ``[fonts]/mathjax-newcm-font`` with ``[fonts]``
#: set to :data:`FONTS_PATH` in _config.yml
FONT_DIR = "fonts/mathjax-newcm-font"
#: the value of ``mathjax3_config.loader.paths.fonts`` that finds it (``[mathjax]`` is the folder
#: MathJax was loaded from, so it holds on every page, from a server or from disk)
FONTS_PATH = "[mathjax]/fonts"
#: the parts of the font package the browser loads (CHTML output, and SVG when a reader picks it in
#: MathJax's menu); its ``cjs``/``mjs`` modules are for Node.js
FONT_FILES = ("chtml.js", "chtml", "svg.js", "svg", "package.json")
#: files of the MathJax package not copied into the site: Node.js entry points and modules
#: (``latest.js``, in MathJax 3, loads MathJax from a CDN)
EXCLUDE = {"latest.js", "node-main.js"}
EXCLUDE_SUFFIXES = (".cjs", ".mjs", ".mts")
#: bumped when the layout of the copied tree changes (so an old copy is replaced)
LAYOUT = "2"


def static_dir(root: str | Path) -> Path:
    """The folder added to ``html_static_path``: ``<root>/_build/site_static``."""
    return Path(root).resolve() / "_build" / "site_static"


def _pins_digest() -> str:
    h = hashlib.sha256(LAYOUT.encode())
    for name in ("package.json", "package-lock.json"):
        h.update((PACKAGE_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def _locked_version(package: str) -> str:
    lock = json.loads((PACKAGE_DIR / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def mathjax_version() -> str:
    """The MathJax version pinned in the lock file."""
    return _locked_version("mathjax")


def font_version() -> str:
    """The version of :data:`FONT_PACKAGE` pinned in the lock file."""
    return _locked_version(FONT_PACKAGE)


def _ignored(folder, names) -> list[str]:
    return [n for n in names if n in EXCLUDE or n.endswith(EXCLUDE_SUFFIXES)]


def ensure_mathjax(root: str | Path, *, quiet: bool = False) -> Path:
    """Install MathJax and its font with npm (``npm ci`` from the lock file) and copy their browser
    files into the site assets (the font under ``mathjax/`` + :data:`FONT_DIR`).

    Returns the folder holding ``tex-mml-chtml.js``. Does nothing when that folder already holds
    the pinned versions. Raises RuntimeError with a clear message when npm is missing or fails.
    """
    target = static_dir(root) / "mathjax"
    stamp = target / ".installed"
    digest = _pins_digest()
    if stamp.exists() and stamp.read_text().strip() == digest and (target / MATHJAX_ENTRY).exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm is needed to install MathJax for the offline site (scripts/site/package.json); "
            "install Node.js and npm, e.g. `apt-get install -y nodejs npm`."
        )
    work = Path(root).resolve() / "_build" / "npm"
    work.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PACKAGE_DIR / name, work / name)
    if not quiet:
        print(f"installing mathjax {mathjax_version()} and {FONT_PACKAGE} {font_version()} with npm into {work}",
              flush=True)
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=work, capture_output=True, text=True,
    )
    package = work / "node_modules" / "mathjax"
    font = work / "node_modules" / FONT_PACKAGE
    missing = [str(p) for p in (package / MATHJAX_ENTRY, *(font / f for f in FONT_FILES)) if not p.exists()]
    if proc.returncode != 0 or missing:
        raise RuntimeError(f"`npm ci` of MathJax failed in {work} (exit {proc.returncode}; missing {missing}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=target.parent))
    try:
        shutil.copytree(package, tmp / "mathjax", ignore=_ignored)
        fonts = tmp / "mathjax" / FONT_DIR
        fonts.mkdir(parents=True)
        for name in FONT_FILES:
            src = font / name
            if src.is_dir():
                shutil.copytree(src, fonts / name, ignore=_ignored)
            else:
                shutil.copyfile(src, fonts / name)
        (tmp / "mathjax" / ".installed").write_text(digest + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / "mathjax", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target



if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent
    print(ensure_mathjax(root))
