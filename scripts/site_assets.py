"""Front-end assets the static site serves itself, installed through npm at build time.

The book must read offline: MathJax is not loaded from a CDN but installed from the npm registry
(``mathjax`` pinned in ``scripts/site/package.json`` and its lock file, with its integrity hash) into
``_build/npm`` and its ``es5`` tree copied to ``_build/site_static/mathjax``. The Sphinx extension
``scripts/vae_book_site.py`` adds ``_build/site_static`` to ``html_static_path`` (so the tree lands in
``_build/html/_static/mathjax/``) and ``_config.yml`` sets ``mathjax_path: mathjax/tex-mml-chtml.js``.

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
#: files of the MathJax package not copied into the site (``latest.js`` loads MathJax from a CDN)
EXCLUDE = {"latest.js"}


def static_dir(root: str | Path) -> Path:
    """The folder added to ``html_static_path``: ``<root>/_build/site_static``."""
    return Path(root).resolve() / "_build" / "site_static"


def _pins_digest() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((PACKAGE_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def mathjax_version() -> str:
    lock = json.loads((PACKAGE_DIR / "package-lock.json").read_text())
    return lock["packages"]["node_modules/mathjax"]["version"]


def ensure_mathjax(root: str | Path, *, quiet: bool = False) -> Path:
    """Install MathJax with npm (``npm ci`` from the lock file) and copy its es5 tree into the site assets.

    Returns the folder holding ``tex-mml-chtml.js``. Does nothing when that folder already holds
    the pinned version. Raises RuntimeError with a clear message when npm is missing or fails.
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
        print(f"installing mathjax {mathjax_version()} with npm into {work}", flush=True)
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=work, capture_output=True, text=True,
    )
    es5 = work / "node_modules" / "mathjax" / "es5"
    if proc.returncode != 0 or not (es5 / MATHJAX_ENTRY).exists():
        raise RuntimeError(f"`npm ci` of MathJax failed in {work} (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=target.parent))
    try:
        shutil.copytree(es5, tmp / "mathjax", ignore=lambda d, names: [n for n in names if n in EXCLUDE])
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
