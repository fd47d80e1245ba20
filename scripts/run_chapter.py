"""Execute one or more MyST chapters as notebooks and report time, outputs and errors.

Usage: VAE_BOOK_PROFILE=smoke python scripts/run_chapter.py chapters/01_*.md [--save out_dir]

Exits non-zero if a chapter has no code cells or a cell raises. The test suite uses
:func:`execute_chapter` from here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient


def execute_chapter(path: str | Path, timeout: int = 1800, kernel_name: str = "python3"):
    """Read a MyST chapter, check it has code cells, execute it; returns (notebook, seconds).

    Raises ValueError when the file is not read as a notebook with code cells (missing jupytext
    front matter), and nbclient's CellExecutionError when a cell raises.
    """
    path = Path(path)
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code:
        raise ValueError(f"{path} has no code cells: is its jupytext front matter (format_name: myst) missing?")
    if "kernelspec" not in nb.metadata:
        raise ValueError(f"{path} has no kernelspec in its front matter; the book build would not execute it.")
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    from vae_book.train import HOST_MALLOC_ENV  # the kernel's malloc settings (they change no output)

    t0 = time.perf_counter()
    client.execute(env={**HOST_MALLOC_ENV, **os.environ})
    seconds = time.perf_counter() - t0
    # A display-time failure (e.g. a figure whose label does not render) leaves an error output
    # without stopping execution: count it as a failure too.
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise RuntimeError(f"{path}: code cell {i} has an error output: {out.get('ename')}: {out.get('evalue')}")
    return nb, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("chapters", nargs="+")
    ap.add_argument("--save", help="folder to write the executed .ipynb files to")
    args = ap.parse_args(argv)
    status = 0
    for ch in args.chapters:
        try:
            nb, secs = execute_chapter(ch)
        except Exception as exc:  # report and go on with the next chapter
            print(f"FAIL {ch}: {type(exc).__name__}: {str(exc)[-3000:]}")
            status = 1
            continue
        n = sum(c.cell_type == "code" for c in nb.cells)
        print(f"ok   {ch}: {n} code cells in {secs:.1f} s")
        if args.save:
            out = Path(args.save) / (Path(ch).stem + ".ipynb")
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out)
    return status


if __name__ == "__main__":
    sys.exit(main())
