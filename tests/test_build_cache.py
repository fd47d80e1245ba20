"""scripts/build_book.py keeps the execution cache honest: outputs follow the profile and the package.

Jupyter Book's own cache keys only on code cells. The build script keys it on (profile, package
source) as well. A throwaway book — one chapter that prints the profile and a function of a small
package of its own — is built with different profiles and package sources, and the HTML must show
the new output each time; unchanged rebuilds, and a return to an earlier key, must reuse the cache.
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


def build(root: Path, profile: str) -> tuple[dict, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VAE_BOOK_STATIC"}
    env["VAE_BOOK_PROFILE"] = profile
    proc = build_book.build(root, env=env, capture=True, package="tinypkg")
    log = proc.stdout
    assert proc.returncode == 0, f"the tiny book did not build:\n{log[-4000:]}"
    html = (root / "_build" / "html" / "ch.html").read_text()
    values = dict(re.findall(r"\b(profile|static|answer|nonce): ([^\s<]+)", html))
    assert set(values) == {"profile", "static", "answer", "nonce"}, html[-3000:]
    return values, html, log.splitlines()[0]


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
    assert "re-reading every page" in log
    assert (changed["profile"], changed["answer"]) == ("cpu", "A2")
    assert changed["nonce"] != cpu["nonce"]

    # back to the first (profile, package): that key's cache is still valid and is reused
    set_answer(root, "A1")
    back, _, log = build(root, "smoke")
    assert "re-reading every page" in log
    assert back == first, "returning to an earlier (profile, package) did not reuse its cache"

    caches = sorted(p.name for p in (root / "_build" / "exec_cache").iterdir())
    assert len(caches) == 3 and all(c.split("-")[0] in {"smoke", "cpu"} for c in caches), caches


def test_source_key_covers_profile_and_every_package_file(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "sub" / "m.py").write_text("y = 1\n")
    k1 = build_book.source_key(tmp_path, "pkg", "smoke")
    assert k1.startswith("smoke-")
    assert build_book.source_key(tmp_path, "pkg", "cpu") != k1
    (tmp_path / "pkg" / "sub" / "m.py").write_text("y = 2\n")
    assert build_book.source_key(tmp_path, "pkg", "smoke") != k1
    (tmp_path / "pkg" / "sub" / "m.py").write_text("y = 1\n")
    assert build_book.source_key(tmp_path, "pkg", "smoke") == k1
    with pytest.raises(FileNotFoundError):
        build_book.source_key(tmp_path, "nopkg", "smoke")


def test_source_key_follows_the_data_folder_and_the_installed_versions(tmp_path, monkeypatch):
    """The execution cache must not serve outputs computed on other data or by another jax."""
    from importlib import metadata

    from vae_book import cache

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("x = 1\n")
    monkeypatch.delenv("VAE_BOOK_DATA", raising=False)
    cache.library_versions.cache_clear()
    base = build_book.source_key(tmp_path, "pkg", "gpu")
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path / "faces"))
    with_data = build_book.source_key(tmp_path, "pkg", "gpu")
    assert with_data != base
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path / "other-faces"))
    assert build_book.source_key(tmp_path, "pkg", "gpu") not in (base, with_data)
    monkeypatch.delenv("VAE_BOOK_DATA")
    assert build_book.source_key(tmp_path, "pkg", "gpu") == base

    real = metadata.version

    def jaxlib_upgraded(name):
        return "99.0.0" if name == "jaxlib" else real(name)

    monkeypatch.setattr(cache.metadata, "version", jaxlib_upgraded)
    cache.library_versions.cache_clear()
    try:
        assert cache.library_versions()["jaxlib"] == "99.0.0"
        assert build_book.source_key(tmp_path, "pkg", "gpu") != base
        upgraded_fingerprint = cache.training_fingerprint()
    finally:
        monkeypatch.setattr(cache.metadata, "version", real)
        cache.library_versions.cache_clear()
    assert cache.training_fingerprint() != upgraded_fingerprint  # the trained-model cache follows it too
    assert build_book.source_key(tmp_path, "pkg", "gpu") == base
