"""The site's downloadable .ipynb keeps its outputs when they came from the execution cache.

myst-nb 1.x writes ``_build/jupyter_execute/<page>.ipynb`` without outputs when a page's outputs come
from the Jupyter cache (its prose was edited, its code was not); ``scripts/vae_book_site.py`` merges
them back from the cache. Fast: no book build, a notebook cached by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
from jupyter_cache import get_cache

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from vae_book_site import _with_cached_outputs  # noqa: E402


def _notebook(executed: bool, prose: str = "Some prose.") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("print(1 + 1)")
    if executed:
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nb.cells = [nbformat.v4.new_markdown_cell(prose), cell]
    return nb


def _app(cache_path) -> SimpleNamespace:
    return SimpleNamespace(env=SimpleNamespace(mystnb_config=SimpleNamespace(execution_cache_path=str(cache_path))))


def test_outputs_come_back_from_the_execution_cache(tmp_path):
    cache_dir = tmp_path / "jupyter_cache"
    ran = tmp_path / "page.ipynb"
    nbformat.write(_notebook(executed=True), ran)
    get_cache(str(cache_dir)).cache_notebook_file(str(ran), check_validity=False)

    # what myst-nb writes for a cache hit after a prose edit: the parsed notebook, no outputs
    unexecuted = nbformat.writes(_notebook(executed=False, prose="Edited prose.")).encode()
    merged = nbformat.reads(_with_cached_outputs(_app(cache_dir), unexecuted).decode(), as_version=4)
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert code[0].execution_count == 1 and code[0].outputs[0]["text"] == "2\n"
    assert merged.cells[0].source == "Edited prose."   # the page's own prose, not the cached one


def test_an_executed_notebook_is_kept_and_an_unknown_one_is_refused(tmp_path):
    executed = nbformat.writes(_notebook(executed=True)).encode()
    assert _with_cached_outputs(_app(tmp_path / "none"), executed) == executed
    get_cache(str(tmp_path / "empty"))  # a cache without this notebook
    unexecuted = nbformat.writes(_notebook(executed=False)).encode()
    assert _with_cached_outputs(_app(tmp_path / "empty"), unexecuted) is None
