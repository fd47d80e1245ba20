"""scripts/build_book.py keeps the execution cache honest: outputs follow the profile and the package.

Jupyter Book's own cache keys only on code cells. The build script keys it on the profile (one cache
per base key) and, page by page, on the package code the page imports. A throwaway book — chapters
that print the profile and a function of a small package of its own — is built with different
profiles and package sources, and the HTML must show the new output each time; unchanged rebuilds,
edits of prose (also a docstring's), edits of code a page does not import, and a return to an
earlier key, must reuse the cache.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_book  # noqa: E402

pytestmark = pytest.mark.slow

CHAPTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Tiny chapter

{prose}

```{{code-cell}} ipython3
import os, time
import tinypkg

print("profile:", os.environ.get("VAE_BOOK_PROFILE"))
print("static:", os.environ.get("VAE_BOOK_STATIC"))
print("answer:", tinypkg.answer())
print("nonce:", time.time_ns())
```
"""


def write_book(root: Path):
    (root / "tinypkg").mkdir(parents=True)
    (root / "_config.yml").write_text(textwrap.dedent("""\
        title: Tiny
        only_build_toc_files: true
        execute:
          execute_notebooks: cache
          timeout: 120
        exclude_patterns: [_build, tinypkg]
        sphinx:
          config:
            nb_execution_raise_on_error: true
        """))
    (root / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: ch\n")
    (root / "index.md").write_text("# Tiny book\n")
    write_chapter(root, "First version of the prose.")
    set_answer(root, "A1")


def write_chapter(root: Path, prose: str):
    (root / "ch.md").write_text(CHAPTER.format(prose=prose))


def set_answer(root: Path, value: str):
    (root / "tinypkg" / "__init__.py").write_text(f"def answer():\n    return {value!r}\n")


def _build(root: Path, profile: str):
    env = {k: v for k, v in os.environ.items() if k != "VAE_BOOK_STATIC"}
    env["VAE_BOOK_PROFILE"] = profile
    proc = build_book.build(root, env=env, capture=True, package="tinypkg")
    assert proc.returncode == 0, f"the tiny book did not build:\n{proc.stdout[-4000:]}"
    return proc


def build(root: Path, profile: str) -> tuple[dict, str, str]:
    log = _build(root, profile).stdout
    html = (root / "_build" / "html" / "ch.html").read_text()
    values = dict(re.findall(r"\b(profile|static|answer|nonce): ([^\s<]+)", html))
    assert set(values) == {"profile", "static", "answer", "nonce"}, html[-3000:]
    return values, html, log.splitlines()[0]


def build_pages(root: Path, profile: str) -> str:
    """Build the book at ``root``; the first line of the log (what the script decided)."""
    return _build(root, profile).stdout.splitlines()[0]


def test_outputs_follow_profile_and_package_and_unchanged_builds_reuse_the_cache(tmp_path):
    root = tmp_path / "book"
    write_book(root)

    first, _, log = build(root, "smoke")
    assert "re-reading every page" in log
    assert (first["profile"], first["answer"], first["static"]) == ("smoke", "A1", "1")

    # unchanged key, changed prose: the page is re-read but its code is not re-executed
    write_chapter(root, "Second version of the prose.")
    again, html, log = build(root, "smoke")
    assert "unchanged" in log, log
    assert "Second version of the prose." in html
    assert again == first, "an unchanged (profile, package) rebuild executed the chapter again"

    # another profile: executed again, the page shows it
    cpu, _, log = build(root, "cpu")
    assert "re-reading every page" in log
    assert (cpu["profile"], cpu["answer"]) == ("cpu", "A1") and cpu["nonce"] != first["nonce"]

    # the package changes: executed again, the page shows the new output
    set_answer(root, "A2")
    changed, _, log = build(root, "cpu")
    assert "re-executing the pages whose imported code changed: ch.md" in log, log
    assert (changed["profile"], changed["answer"]) == ("cpu", "A2")
    assert changed["nonce"] != cpu["nonce"]

    # back to the first (profile, package): that key's cache is still valid and is reused
    set_answer(root, "A1")
    back, _, log = build(root, "smoke")
    assert "re-reading every page" in log
    assert back == first, "returning to an earlier (profile, package) did not reuse its cache"

    caches = sorted(p.name for p in (root / "_build" / "exec_cache").iterdir())
    assert len(caches) == 2 and sorted(c.split("-")[0] for c in caches) == ["cpu", "smoke"], caches


TWO_CHAPTERS = {
    "one": "import time\nfrom tinypkg import a\n\nprint('answer:', a.answer())\nprint('nonce:', time.time_ns())",
    "two": "import inspect, time\nfrom tinypkg import b\n\nprint('source lines:', len(inspect.getsource(b).splitlines()))"
           "\nprint('nonce:', time.time_ns())",
}


def _page(code: str) -> str:
    head = CHAPTER.split("# Tiny chapter")[0]
    return f"{head}# A chapter\n\n```{{code-cell}} ipython3\n{code}\n```\n"


def _nonces(root: Path) -> dict:
    return {name: re.search(r"nonce: (\d+)", (root / "_build" / "html" / f"{name}.html").read_text()).group(1)
            for name in TWO_CHAPTERS}


def test_a_page_is_re_executed_only_when_code_it_imports_changes(tmp_path):
    """Page keys: a docstring edit re-executes nothing (unless the page reads source text), a code edit
    re-executes the pages that import the module, and no other page."""
    root = tmp_path / "book"
    write_book(root)
    (root / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: one\n  - file: two\n")
    (root / "ch.md").unlink()
    for name, code in TWO_CHAPTERS.items():
        (root / f"{name}.md").write_text(_page(code))
    pkg = root / "tinypkg"
    (pkg / "__init__.py").write_text("")

    def write_a(doc, value):
        (pkg / "a.py").write_text(f'"""{doc}"""\n\n\ndef answer():\n    # a comment\n    return {value!r}\n')

    def write_b(doc):
        (pkg / "b.py").write_text(f'"""{doc}"""\n\nVALUE = 1\n')

    write_a("Module a.", "A1")
    write_b("Module b.")
    build_pages(root, "smoke")
    first = _nonces(root)
    assert "answer: A1" in (root / "_build" / "html" / "one.html").read_text()

    write_a("Module a, its docstring reworded.", "A1")  # prose only: nothing runs again
    log = build_pages(root, "smoke")
    assert "cached outputs are valid" in log, log
    assert _nonces(root) == first

    write_a("Module a, its docstring reworded.", "A2")  # code of a: page one only
    log = build_pages(root, "smoke")
    assert log.endswith("re-executing the pages whose imported code changed: one.md"), log
    now = _nonces(root)
    assert now["one"] != first["one"] and now["two"] == first["two"]
    assert "answer: A2" in (root / "_build" / "html" / "one.html").read_text()

    write_b("Module b, with a docstring\nof two lines.")  # page two prints b's source: it runs again
    log = build_pages(root, "smoke")
    assert log.endswith("re-executing the pages whose imported code changed: two.md"), log
    later = _nonces(root)
    assert later["one"] == now["one"] and later["two"] != now["two"]
    assert "source lines: 4" in (root / "_build" / "html" / "two.html").read_text()


def test_base_key_covers_profile_and_package_data_and_page_key_every_imported_module(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "m.py").write_text("from pkg import other\ny = 1\n")
    (tmp_path / "pkg" / "other.py").write_text("z = 1\n")
    (tmp_path / "pkg" / "unused.py").write_text("w = 1\n")
    page = tmp_path / "page.md"
    page.write_text("```{code-cell} ipython3\n:tags: [hide-input]\nfrom pkg.sub import m\n```\n")
    k1 = build_book.base_key(tmp_path, "pkg", "smoke")
    assert k1.startswith("smoke-")
    assert build_book.base_key(tmp_path, "pkg", "cpu") != k1
    (tmp_path / "pkg" / "table.npz").write_bytes(b"data")  # a data file of the package
    assert build_book.base_key(tmp_path, "pkg", "smoke") != k1
    (tmp_path / "pkg" / "table.npz").unlink()
    assert build_book.base_key(tmp_path, "pkg", "smoke") == k1
    with pytest.raises(FileNotFoundError):
        build_book.base_key(tmp_path, "nopkg", "smoke")

    p1 = build_book.page_key(page, tmp_path, "pkg", k1)
    assert build_book.page_key(page, tmp_path, "pkg", "other-base") != p1
    for rel, code in [("other.py", "z = 2\n"), ("sub/m.py", "from pkg import other\ny = 2\n"), ("__init__.py", "x = 2\n")]:
        before = (tmp_path / "pkg" / rel).read_text()
        (tmp_path / "pkg" / rel).write_text(code)  # imported, directly or not: the key changes
        assert build_book.page_key(page, tmp_path, "pkg", k1) != p1, rel
        (tmp_path / "pkg" / rel).write_text(before)
        assert build_book.page_key(page, tmp_path, "pkg", k1) == p1, rel
    (tmp_path / "pkg" / "unused.py").write_text("w = 2\n")  # not imported: unchanged
    (tmp_path / "pkg" / "other.py").write_text('"""A docstring."""\n# a comment\nz = 1\n')  # prose only
    assert build_book.page_key(page, tmp_path, "pkg", k1) == p1
    page.write_text("```{code-cell} ipython3\nimport inspect\nfrom pkg.sub import m\n```\n")
    raw = build_book.page_key(page, tmp_path, "pkg", k1)
    (tmp_path / "pkg" / "other.py").write_text("z = 1\n")  # a page reading source text sees the prose
    assert build_book.page_key(page, tmp_path, "pkg", k1) != raw
    page.write_text("```{code-cell} ipython3\n%matplotlib inline\n```\n")  # not Python: the whole package
    whole = build_book.page_key(page, tmp_path, "pkg", k1)
    (tmp_path / "pkg" / "unused.py").write_text("w = 3\n")
    assert build_book.page_key(page, tmp_path, "pkg", k1) != whole


def test_base_key_follows_the_data_folder_and_the_installed_versions(tmp_path, monkeypatch):
    """The execution cache must not serve outputs computed on other data or by another jax."""
    from importlib import metadata

    from vae_book import cache

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("x = 1\n")
    monkeypatch.delenv("VAE_BOOK_DATA", raising=False)
    cache.library_versions.cache_clear()
    base = build_book.base_key(tmp_path, "pkg", "gpu")
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path / "faces"))
    with_data = build_book.base_key(tmp_path, "pkg", "gpu")
    assert with_data != base
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path / "other-faces"))
    assert build_book.base_key(tmp_path, "pkg", "gpu") not in (base, with_data)
    monkeypatch.delenv("VAE_BOOK_DATA")
    assert build_book.base_key(tmp_path, "pkg", "gpu") == base

    real = metadata.version

    def jaxlib_upgraded(name):
        return "99.0.0" if name == "jaxlib" else real(name)

    monkeypatch.setattr(cache.metadata, "version", jaxlib_upgraded)
    cache.library_versions.cache_clear()
    try:
        assert cache.library_versions()["jaxlib"] == "99.0.0"
        assert build_book.base_key(tmp_path, "pkg", "gpu") != base
        upgraded_fingerprint = cache.training_fingerprint()
    finally:
        monkeypatch.setattr(cache.metadata, "version", real)
        cache.library_versions.cache_clear()
    assert cache.training_fingerprint() != upgraded_fingerprint  # the trained-model cache follows it too
    assert build_book.base_key(tmp_path, "pkg", "gpu") == base


def _bench_book():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import book_build
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return book_build


def test_bench_book_prose_edit_leaves_code_cells_and_parses_the_log(tmp_path):
    """bench/book_build.py's prose edit adds one paragraph to a real chapter and no code; its log parser
    reads myst-nb's execution lines."""
    bench = _bench_book()
    source = (ROOT / "chapters" / "08_latent_space.md").read_text()
    page = tmp_path / "08_latent_space.md"
    page.write_text(source)
    before = build_book.page_code(page)
    page.write_text(bench.edit_prose(source))
    assert page.read_text() != source and page.read_text().count(bench.ADDED) == 1
    assert build_book.page_code(page) == before and len(before) > 0
    with pytest.raises(ValueError, match="`text` must contain a '## ' section heading"):
        bench.edit_prose("# Title\n\nno sections\n")
    log = ("/x/chapters/03_kl.md: Executing notebook using local CWD [mystnb]\n"
           "/x/chapters/03_kl.md: Executed notebook in 24.80 seconds [mystnb]\n"
           "/x/chapters/07_t.md: Executed notebook in 196.10 seconds [mystnb]\n")
    assert bench.executed_chapters(log) == {"03_kl.md": 24.8, "07_t.md": 196.1}
