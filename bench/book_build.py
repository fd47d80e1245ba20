"""Benchmark of the book build: cold, nothing changed, and after editing one chapter's prose.

    python bench/book_build.py                       # the cpu profile, chapter 8's prose edited
    python bench/book_build.py --profile smoke --chapter chapters/03_kl_divergence.md
    make bench-book

The book (every file git tracks, as it is in the working tree) is copied to a temporary folder and
built there with ``scripts/build_book.py``, three times:

The site's assets (MathJax, ``make book``'s ``site-assets`` step) are copied from this checkout's
``_build`` when it has them, and are not part of the timings.

1. **cold**: an empty execution cache and an empty model cache (``VAE_BOOK_CACHE`` points into the
   temporary folder), so every chapter executes and every model trains, as on a reader's first
   ``make book``;
2. **nothing changed**: the same build again;
3. **prose edited**: one sentence added before the first section heading of ``--chapter`` (its code
   cells unchanged, checked), then built again.

The kernels import the package this interpreter imports (the editable install of this checkout), and
the copy's package is the same source, so the cache keys are the ones a build in place computes.
For each build it prints the wall time against the issue's target, the number of notebooks executed,
and, for the cold build, the seconds of each chapter as myst-nb reports them. Nothing is asserted
about time (the machine is shared): the targets are printed next to the measurements.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import build_book  # noqa: E402
import site_assets  # noqa: E402

#: the targets of the build-time issue, seconds
TARGETS = {"cold": 600.0, "nothing changed": 10.0, "prose edited": 60.0}
#: the sentence the prose edit adds
ADDED = "This sentence was added by bench/book_build.py to time a rebuild after a prose edit."
_EXECUTED = re.compile(r"(\S+\.md): Executed notebook in ([0-9.]+) seconds")


def edit_prose(text: str) -> str:
    """``text`` of a MyST notebook with :data:`ADDED` as a new paragraph before its first ``## `` heading.

    Raises ValueError if the page has no such heading. The code cells are not touched.
    """
    match = re.search(r"^## ", text, flags=re.MULTILINE)
    if match is None:
        raise ValueError("`text` must contain a '## ' section heading to add a sentence before, got none.")
    return f"{text[:match.start()]}{ADDED}\n\n{text[match.start():]}"


def executed_chapters(log: str) -> dict[str, float]:
    """``{page file name: seconds}`` of every notebook a build log says myst-nb executed."""
    return {Path(name).name: float(sec) for name, sec in _EXECUTED.findall(log)}


def copy_book(root: Path, dest: Path) -> None:
    """Copy every file git tracks under ``root``, as it is in the working tree, to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def timed_build(book: Path, env: dict) -> tuple[float, str]:
    """Build ``book`` in place; return (wall seconds, log). Raises RuntimeError if the build fails."""
    start = time.perf_counter()
    proc = build_book.build(book, env=env, capture=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"the build failed (exit {proc.returncode}); its log ends:\n{proc.stdout[-3000:]}")
    return seconds, proc.stdout


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="VAE_BOOK_PROFILE of the builds (default: cpu)")
    ap.add_argument("--chapter", default="chapters/08_latent_space.md", help="the page whose prose is edited")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    ns = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vae_book_bench_book_"))
    book = work / "book"
    env = dict(os.environ, VAE_BOOK_PROFILE=ns.profile, VAE_BOOK_CACHE=str(work / "models"))
    rows = []
    try:
        copy_book(ROOT, book)
        for built in ("npm", "site_static"):  # make book's site-assets step, reused (else npm installs it)
            if (ROOT / "_build" / built).is_dir():
                shutil.copytree(ROOT / "_build" / built, book / "_build" / built, symlinks=True)
        site_assets.ensure_mathjax(book, quiet=True)
        page = book / ns.chapter
        if not page.is_file():
            raise SystemExit(f"--chapter must be a page of the book, got {ns.chapter!r} (no such file).")
        print(f"book copied to {book}; profile {ns.profile}; empty model cache {work / 'models'}", flush=True)
        for name in TARGETS:
            if name == "prose edited":
                before = build_book.page_code(page)
                page.write_text(edit_prose(page.read_text()))
                assert build_book.page_code(page) == before, "the prose edit changed a code cell"
            seconds, log = timed_build(book, env)
            executed = executed_chapters(log)
            rows.append((name, seconds, executed))
            print(f"{name}: {seconds:.1f} s, {len(executed)} notebooks executed", flush=True)
    finally:
        if ns.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nbook build, profile {ns.profile}, {os.cpu_count()} CPUs")
    print(f"{'build':<16} {'seconds':>9} {'target':>8} {'/ target':>9} {'executed':>9}")
    for name, seconds, executed in rows:
        print(f"{name:<16} {seconds:9.1f} {TARGETS[name]:8.0f} {seconds / TARGETS[name]:9.2f} {len(executed):9d}")
    cold = rows[0][2]
    print("\ncold build, seconds per chapter (myst-nb's execution time):")
    print("  ".join(f"{name.split('_')[0]}: {sec:.1f}" for name, sec in sorted(cold.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
