"""Format the code of the chapters' code cells with ruff (``make format``).

Each ```{code-cell}``` block of ``chapters/*.md`` is cut out of the file, its code (not its
option header: the ``---`` YAML block or the ``:key: value`` lines) is piped through
``ruff format`` (line length and style from ``[tool.ruff]`` in pyproject.toml), and put back in
place. Everything else in the file -- front matter, markdown, the cells' options -- is left
byte for byte as it was. (``jupytext --pipe`` would also re-wrap the cells' YAML options and
add a ``jupytext_version`` to the front matter, which is why the cells are cut out here.)

``ruff`` must be importable: ``make format`` installs the pinned version into
``_build/ruff`` and runs ``PYTHONPATH=_build/ruff python scripts/format_chapters.py``.

    python scripts/format_chapters.py [--check] [chapters/NN_name.md ...]

With ``--check`` nothing is written; the exit status is 1 if some chapter would change.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(`{3,})\{code-cell\}[^\n]*\n", re.M)


def ruff_format(cells: list[str]) -> list[str]:
    """The code of each of ``cells`` formatted by ``ruff format`` (settings from
    ROOT/pyproject.toml), in one run of ruff.

    The code goes to ruff as the cells of a notebook, so that ruff treats each as a notebook cell:
    IPython magics (``%``, ``!``) are left alone and a trailing ``;`` (which hides the cell's last
    value) is kept.
    """
    if importlib.util.find_spec("ruff") is None:
        raise SystemExit("ruff is not importable: run `make format` (it installs the pinned ruff)")
    notebook = {
        "cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "execution_count": None,
                   "outputs": [], "source": code} for i, code in enumerate(cells)],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", "chapter.ipynb", "-"],
        input=json.dumps(notebook),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"ruff format failed:\n{out.stderr}")
    formatted = json.loads(out.stdout)["cells"]
    assert len(formatted) == len(cells)
    return ["".join(c["source"]).rstrip("\n") + "\n" for c in formatted]


def split_options(body: str) -> tuple[str, str]:
    """The option header of a code cell's body (YAML block or ``:key:`` lines) and the code."""
    lines = body.splitlines(keepends=True)
    if lines and lines[0].rstrip("\n") == "---":
        for i in range(1, len(lines)):
            if lines[i].rstrip("\n") == "---":
                return "".join(lines[: i + 1]), "".join(lines[i + 1 :])
        raise ValueError("unterminated YAML option block in a code cell")
    i = 0
    while i < len(lines) and re.match(r"^:[\w-]+:", lines[i]):
        i += 1
    return "".join(lines[:i]), "".join(lines[i:])


def code_cells(text: str):
    """``(start, end)`` offsets of the body of every code cell of ``text`` (a MyST chapter): from
    after its opening ```{code-cell} line to its closing fence, options and code."""
    pos = 0
    while (m := FENCE.search(text, pos)) is not None:
        close = re.compile(rf"^{m.group(1)}[ \t]*$", re.M).search(text, m.end())
        if close is None:
            raise ValueError(f"unterminated code cell at offset {m.start()}")
        yield m.end(), close.start()
        pos = close.start()


def format_text(text: str) -> str:
    """``text`` (a MyST chapter) with the code of every code cell formatted."""
    parts, codes = [], []  # parts: text, with None where a cell's code goes
    pos = 0
    for start, end in code_cells(text):
        options, code = split_options(text[start:end])
        parts += [text[pos:start], options]
        if code.strip():
            parts.append(None)
            codes.append(code)
        else:
            parts.append(code)
        pos = end
    parts.append(text[pos:])
    formatted = iter(ruff_format(codes) if codes else [])
    return "".join(next(formatted) if p is None else p for p in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on changes")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "chapters").glob("*.md"))
    changed = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new = format_text(text)
        if new != text:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "would reformat" if args.check else "reformatted"
    for path in changed:
        print(f"{verb} {path}")
    print(f"{len(changed)} of {len(paths)} chapters {verb}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
