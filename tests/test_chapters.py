"""The chapters: well-formed MyST notebooks, listed in the table of contents, executed without error."""

import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from run_chapter import execute_chapter  # noqa: E402

from _toc import toc_pages  # noqa: E402


def toc_files() -> list[str]:
    """The files the table of contents lists (every page but the root)."""
    return toc_pages()[1:]


CHAPTERS = sorted(p for p in (ROOT / "chapters").glob("*.md"))


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    listed = toc_files()
    assert listed, "the table of contents lists no chapter"
    for f in listed:
        assert (ROOT / f"{f}.md").exists(), f"_toc.yml lists {f} but {f}.md does not exist"
    for ch in CHAPTERS:
        assert f"chapters/{ch.stem}" in listed, f"{ch.name} is not listed in _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_a_myst_notebook_with_code(chapter):
    text = chapter.read_text()
    front = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert front, f"{chapter.name} has no front matter"
    meta = yaml.safe_load(front.group(1))
    assert meta["jupytext"]["text_representation"]["format_name"] == "myst"
    assert meta["kernelspec"]["name"] == "python3"
    nb = jupytext.read(chapter)
    assert sum(c.cell_type == "code" for c in nb.cells) >= 1, f"{chapter.name} has no code cells"


def test_the_executor_refuses_a_plain_markdown_file(tmp_path):
    plain = tmp_path / "plain.md"
    plain.write_text("# A chapter\n\n```python\nprint(1)\n```\n")
    with pytest.raises(ValueError, match="no code cells|no kernelspec"):
        execute_chapter(plain)


def test_the_executor_fails_on_a_raising_cell(tmp_path):
    from nbclient.exceptions import CellExecutionError

    text = (ROOT / "chapters" / "00_setup.md").read_text().split("---\n", 2)
    bad = tmp_path / "bad.md"
    bad.write_text(f"---\n{text[1]}---\n# Bad\n\n```{{code-cell}} ipython3\nraise RuntimeError('boom')\n```\n")
    with pytest.raises(CellExecutionError, match="boom"):
        execute_chapter(bad)


def test_book_builds_strictly(built_book):
    html, proc = built_book
    out = proc.stdout + proc.stderr
    warnings = [ln for ln in out.splitlines() if ("WARNING" in ln or "ERROR" in ln) and "IPKernelApp" not in ln]
    assert proc.returncode == 0, "the book build failed:\n" + "\n".join(warnings[:20]) + "\n...\n" + out[-3000:]
    assert (html / "html" / "index.html").exists()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executed_in_the_build(chapter, built_book):
    """Every code cell of the chapter ran in the build (smoke profile) and none produced an error."""
    html, proc = built_book
    executed = html / "jupyter_execute" / "chapters" / f"{chapter.stem}.ipynb"
    assert executed.exists(), f"the build did not execute {chapter.name}:\n{(proc.stdout + proc.stderr)[-3000:]}"
    nb = nbformat.read(executed, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{chapter.name} has no code cells"
    for i, cell in enumerate(code):
        assert cell.get("execution_count") is not None, f"{chapter.name}: code cell {i} was not executed"
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{chapter.name}: code cell {i} raised {errors[0].get('ename')}"
    assert (html / "html" / "chapters" / f"{chapter.stem}.html").exists()
