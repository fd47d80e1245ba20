"""Build the book with an execution cache that is honest about what the outputs depend on.

Jupyter Book's execution cache keys only on a notebook's code cells. The outputs also depend on the
run profile (``VAE_BOOK_PROFILE``) and on the ``vae_book`` package source, so this script keeps one
execution cache per (profile, package hash) under ``_build/exec_cache/<key>`` and points
``_build/.jupyter_cache`` at it. When the key changes, every page is re-read (``--all``) so no page
shows outputs computed under another profile or an older package.

Usage: python scripts/build_book.py [extra jupyter-book args]
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"


def source_key() -> str:
    """Hash of the active profile, the package source and the pinned requirements."""
    sys.path.insert(0, str(ROOT))
    from vae_book.profiles import profile_name  # noqa: E402

    h = hashlib.sha256()
    profile = profile_name()
    h.update(profile.encode())
    for path in sorted((ROOT / "vae_book").rglob("*.py")) + [ROOT / "requirements.txt"]:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return f"{profile}-{h.hexdigest()[:16]}"


def main(argv: list[str]) -> int:
    key = source_key()
    BUILD.mkdir(exist_ok=True)
    cache = BUILD / "exec_cache" / key
    cache.mkdir(parents=True, exist_ok=True)
    link = BUILD / ".jupyter_cache"
    if link.is_symlink() or link.exists():
        if not link.is_symlink():
            import shutil

            shutil.rmtree(link)
        else:
            link.unlink()
    link.symlink_to(cache.relative_to(BUILD), target_is_directory=True)

    stamp = BUILD / ".build_key"
    previous = stamp.read_text().strip() if stamp.exists() else None
    args = ["jupyter-book", "build", str(ROOT), "--warningiserror", "--keep-going", *argv]
    if previous != key:
        print(f"build key {previous} -> {key}: re-reading every page", flush=True)
        args.append("--all")
    else:
        print(f"build key {key} unchanged: cached outputs are valid", flush=True)
    env = dict(os.environ, VAE_BOOK_PROFILE=key.split("-")[0])
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(args, cwd=ROOT, env=env)
    if result.returncode == 0:
        stamp.write_text(key + "\n")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
