"""The chapters' code fits a line: no code line of a code cell is longer than 88 characters.

`make format` (``scripts/format_chapters.py``) runs the code of every code cell through ``ruff
format`` at that length; what ruff cannot break (comments, string literals) is wrapped by hand. The
length test measures the lines and needs no ruff, nor do the tests of how the script cuts a chapter
into its markdown, cell options and code (with ``ruff_format`` replaced by a fake). With ruff
importable, or installed by ``make format`` into ``_build/ruff``, ``format_chapters.py --check``
must also find nothing to change.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import format_chapters  # noqa: E402

MAX_LINE = 88
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))


def code_lines(text: str) -> list[tuple[int, str]]:
    """``(line number in the file, line)`` of every line of code of every code cell of ``text``."""
    out = []
    for start, end in format_chapters.code_cells(text):
        options, code = format_chapters.split_options(text[start:end])
        first = text.count("\n", 0, start) + options.count("\n") + 1
        out += [(first + i, line) for i, line in enumerate(code.splitlines())]
    return out


def long_lines(text: str) -> list[tuple[int, int, str]]:
    return [(n, len(line), line) for n, line in code_lines(text) if len(line) > MAX_LINE]


def test_the_line_length_is_the_one_ruff_formats_to():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["ruff"]["line-length"] == MAX_LINE


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_code_line_is_longer_than_88_characters(chapter):
    too_long = long_lines(chapter.read_text(encoding="utf-8"))
    assert not too_long, (
        f"{len(too_long)} code lines of {chapter.relative_to(ROOT)} are longer than {MAX_LINE} "
        "characters (run `make format`; wrap comments and strings by hand):\n"
        + "\n".join(f"  {chapter.relative_to(ROOT)}:{n}: {length} characters: {line.strip()[:60]}"
                    for n, length, line in too_long)
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_measured_lines_are_the_code_the_kernel_runs(chapter):
    """The length test cannot pass on nothing: every chapter has code cells, and the cells cut out
    by format_chapters are exactly jupytext's code cells (the code the build executes), options
    excluded."""
    text = chapter.read_text(encoding="utf-8")
    ours = [format_chapters.split_options(text[a:b])[1] for a, b in format_chapters.code_cells(text)]
    notebook = jupytext.reads(text, fmt="md:myst")
    theirs = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert theirs, f"{chapter.name} has no code cell"
    assert [c.strip("\n") for c in ours] == [c.strip("\n") for c in theirs]
    assert sum(1 for _ in code_lines(text)) >= 10, f"{chapter.name}: hardly any code lines measured"


def test_the_length_test_catches_a_long_line():
    text = CHAPTERS[1].read_text(encoding="utf-8")
    start, end = next(format_chapters.code_cells(text))
    broken = text[:end] + "x = " + "1 + " * 30 + "1\n" + text[end:]
    found = long_lines(broken)
    assert len(found) == 1 and found[0][1] == 4 + 4 * 30 + 1
    assert broken.splitlines()[found[0][0] - 1] == found[0][2]


# -------------------------------------------------------------------------------------------------
# format_chapters without ruff: a fake ruff_format sees only code, everything else stays put

CHAPTER = """---
jupytext:
  formats: md:myst
---

# A title

Some prose with `inline code` and a fence that is not a code cell:

```python
x   =   1
```

```{code-cell} ipython3
import numpy   as np
```

```{code-cell} ipython3
---
tags: [hide-input]
mystnb:
  figure: {caption: "a caption"}
---
y = np.ones( 3 )
```

```{code-cell} ipython3
:tags: [remove-stderr]
:label: two-lines
z = y
```

````{code-cell} ipython3
s = '''
```
'''
````

```{code-cell} ipython3
```

$$
a = b
$$
"""


def fake(calls):
    def ruff_format(cells: list[str]) -> list[str]:
        calls.append(cells)
        return [code.replace("   ", " ").replace("( 3 )", "(3)") for code in cells]

    return ruff_format


def test_split_options_yaml_block_key_lines_and_none():
    assert format_chapters.split_options("---\ntags: [a]\n---\nx = 1\n") == ("---\ntags: [a]\n---\n",
                                                                              "x = 1\n")
    assert format_chapters.split_options(":tags: [a]\n:label: b\nx = 1\n") == (":tags: [a]\n:label: b\n",
                                                                               "x = 1\n")
    assert format_chapters.split_options("x = 1\n# :not: an option\n") == ("", "x = 1\n# :not: an option\n")
    assert format_chapters.split_options("") == ("", "")
    with pytest.raises(ValueError, match="unterminated YAML"):
        format_chapters.split_options("---\ntags: [a]\nx = 1\n")


def test_format_text_passes_only_code_and_keeps_the_rest_byte_for_byte(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(format_chapters, "ruff_format", fake(calls))
    out = format_chapters.format_text(CHAPTER)
    assert calls == [["import numpy   as np\n", "y = np.ones( 3 )\n", "z = y\n", "s = '''\n```\n'''\n"]]
    assert out == (CHAPTER.replace("import numpy   as np", "import numpy as np")
                   .replace("y = np.ones( 3 )", "y = np.ones(3)"))
    assert "x   =   1" in out  # a markdown fence is not a code cell


def test_format_text_is_the_identity_when_ruff_changes_nothing(monkeypatch):
    monkeypatch.setattr(format_chapters, "ruff_format", lambda cells: cells)
    for chapter in CHAPTERS:
        text = chapter.read_text(encoding="utf-8")
        assert format_chapters.format_text(text) == text, chapter.name


def test_format_text_refuses_an_unterminated_cell(monkeypatch):
    monkeypatch.setattr(format_chapters, "ruff_format", lambda cells: cells)
    with pytest.raises(ValueError, match="unterminated code cell"):
        format_chapters.format_text("text\n```{code-cell} ipython3\nx = 1\n")


def test_check_writes_nothing_and_fails_on_a_change(monkeypatch, tmp_path, capsys):
    chapter = tmp_path / "01_x.md"
    chapter.write_text(CHAPTER, encoding="utf-8")
    monkeypatch.setattr(format_chapters, "ruff_format", fake([]))
    assert format_chapters.main(["--check", str(chapter)]) == 1
    assert chapter.read_text(encoding="utf-8") == CHAPTER
    assert "would reformat" in capsys.readouterr().out
    assert format_chapters.main([str(chapter)]) == 0
    assert "import numpy as np" in chapter.read_text(encoding="utf-8")
    assert format_chapters.main(["--check", str(chapter)]) == 0


# -------------------------------------------------------------------------------------------------
# with ruff: the chapters are as `make format` leaves them


def _ruff_path() -> str | None:
    """A PYTHONPATH entry under which ``python -m ruff`` runs, or None (then this test says why)."""
    if importlib.util.find_spec("ruff") is not None:
        return ""
    installed = ROOT / "_build" / "ruff"  # where `make format` installs the pinned ruff
    return str(installed) if (installed / "ruff").is_dir() else None


def test_make_format_check_finds_nothing_to_change():
    path = _ruff_path()
    if path is None:
        pytest.skip("ruff is not installed (`make format` installs it into _build/ruff); the line "
                    "lengths are checked above without it")
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "format_chapters.py"), "--check"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"`make format` would change the chapters:\n{proc.stdout}{proc.stderr}"
