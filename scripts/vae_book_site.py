"""Sphinx extension of The VAE Book's site (loaded through ``sphinx: local_extensions`` in _config.yml).

1. **Offline site.** Installs MathJax through npm (:mod:`site_assets`) and adds
   ``_build/site_static`` to ``html_static_path`` here, at build time, rather than in _config.yml:
   Jupyter Book injects every ``.js``/``.css`` of the configured static paths into every page when the
   book has a ``_static/`` folder, and MathJax's hundreds of components must not be. The tree lands
   in ``_build/html/_static/mathjax/``; ``mathjax_path`` (in _config.yml) names its entry point. A
   ``mathjax_path`` that points to the network is refused. Thebe's scripts are removed (the site has
   no kernel, and Thebe loads itself from a CDN). The site's own CSS and script,
   ``scripts/site/static/vae_book.css`` and ``vae_book.js``, are on every page: a display equation that
   MathJax 4's line breaking cannot fit scrolls in its own box with a shadow on the side with more, no
   page scrolls sideways on a phone, and from disk MathJax's speech worker (which Chrome will not
   start from ``file://``) is turned off. The favicon is the committed ``images/favicon.png``,
   named in ``_config.yml`` (``html.favicon``); a build without one is refused (browsers would ask
   for ``/favicon.ico``, a 404 on the console).
2. **Executable notebooks, with their outputs.** Every notebook page (a MyST ``.md`` with a
   kernelspec) gets its ``.ipynb`` at ``_build/html/_sources/<page>.ipynb``: the notebook myst-nb
   executed for this build (``_build/jupyter_execute/<page>.ipynb``, every output the page shows;
   for a page whose outputs came from the execution cache, myst-nb writes it without them, and they
   are merged back from the cache),
   or, for a page that was not executed, the ``.md`` converted by jupytext. The theme's download
   menu offers it (``ipynb_source``) beside the ``.md`` source.
3. **API reference.** The ``vae-book-api`` directive documents every public module of a package with
   autodoc (``:members:`` honour each module's ``__all__``), so a new module appears on the page without
   editing it.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

sys.path.insert(0, str(Path(__file__).resolve().parent))
import site_assets  # noqa: E402

logger = logging.getLogger(__name__)

#: the site's own CSS and script (added to ``html_static_path``, so they land in ``_static/``)
SITE_STATIC = Path(__file__).resolve().parent / "site" / "static"
SITE_CSS = "vae_book.css"
SITE_JS = "vae_book.js"
#: after Sphinx's ``window.MathJax = ...`` and deferred MathJax script (priority 500): it runs
#: once the configuration is set and before MathJax starts
SITE_JS_PRIORITY = 510


# -------------------------------------------------------------------------------------------------
# 1. MathJax served by the site itself


def _add_static_assets(app: Sphinx):
    if app.builder.format != "html":
        return
    mathjax_path = str(app.config.mathjax_path or "")
    if "://" in mathjax_path or mathjax_path.startswith("//"):
        raise ExtensionError(
            f"mathjax_path = {mathjax_path!r} loads MathJax from the network; the site must be "
            "self-contained: set it to 'mathjax/tex-mml-chtml.js' (installed by scripts/site_assets.py)."
        )
    fonts = ((app.config.mathjax3_config or {}).get("loader", {}).get("paths", {}).get("fonts"))
    if fonts != site_assets.FONTS_PATH:
        raise ExtensionError(
            f"mathjax3_config.loader.paths.fonts = {fonts!r}: MathJax 4 would load its fonts from a CDN; the site "
            f"serves them itself: set it to {site_assets.FONTS_PATH!r} in _config.yml (sphinx.config.mathjax3_config)."
        )
    try:
        folder = site_assets.ensure_mathjax(app.confdir)
    except RuntimeError as exc:
        raise ExtensionError(str(exc)) from exc
    entry = Path(mathjax_path)
    if mathjax_path and not (folder.parent / entry).exists():
        raise ExtensionError(f"mathjax_path = {mathjax_path!r} does not exist under {folder.parent}.")
    for static in (str(site_assets.static_dir(app.confdir)), str(SITE_STATIC)):
        if static not in app.config.html_static_path:
            app.config.html_static_path.append(static)
    if not app.config.html_favicon:  # without one, browsers ask the server for /favicon.ico (a 404)
        raise ExtensionError("html.favicon must name the site's icon in _config.yml (images/favicon.png), got none.")


def _drop_thebe(app: Sphinx, pagename, templatename, context, doctree):
    """Remove Thebe's scripts: the site has no kernel, and Thebe would load itself from unpkg.com.

    (Jupyter Book always loads sphinx-thebe, which also declares ``THEBE_JS_URL`` twice per page, an
    error in the browser console.)
    """
    def is_thebe(asset) -> bool:
        name = str(getattr(asset, "filename", None) or "")
        body = str(getattr(asset, "attributes", {}).get("body", ""))
        return "thebe" in name.lower() or "THEBE_JS_URL" in body

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not is_thebe(a)]


# -------------------------------------------------------------------------------------------------
# 2. The .ipynb of every notebook page


def _is_notebook_source(path: Path) -> bool:
    if path.suffix == ".ipynb":
        return True
    if path.suffix != ".md" or not path.exists():
        return False
    head = path.read_text(encoding="utf-8")[:4000]
    if not head.startswith("---"):
        return False
    front = head.split("---", 2)[1] if head.count("---") >= 2 else ""
    return "jupytext:" in front and "kernelspec:" in front


def notebook_docs(app: Sphinx) -> dict[str, Path]:
    """Docnames of the notebook pages, mapped to their source files."""
    out = {}
    for docname in sorted(app.env.found_docs):
        path = Path(app.env.doc2path(docname))
        if _is_notebook_source(path):
            out[docname] = path
    return out


def _set_ipynb_source(app: Sphinx, pagename, templatename, context, doctree):
    if doctree is None:
        return
    path = Path(app.env.doc2path(pagename))
    if _is_notebook_source(path):
        context["ipynb_source"] = f"{pagename}.ipynb"


def _with_cached_outputs(app: Sphinx, data: bytes) -> bytes | None:
    """``data`` (a notebook myst-nb wrote to ``jupyter_execute``) with its outputs, or None.

    When a page's outputs come from the execution cache (its prose changed, its code did not),
    myst-nb 1.x writes the notebook *without* them (it merges the cached outputs into its client's
    copy, then writes the one it parsed). The outputs are then taken from the execution cache here,
    matched on the code cells as myst-nb matched them.
    """
    import nbformat

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or any(c.get("execution_count") is not None for c in code):
        return data
    cache_path = getattr(getattr(app.env, "mystnb_config", None), "execution_cache_path", None)
    if not cache_path or not Path(cache_path).exists():
        return None
    from jupyter_cache import get_cache

    try:
        _, merged = get_cache(cache_path).merge_match_into_notebook(nb)
    except KeyError:  # not in the cache
        return None
    return nbformat.writes(merged).encode("utf-8")


def _write_notebooks(app: Sphinx, exception):
    if exception is not None or app.builder.format != "html":
        return
    import jupytext

    sources = Path(app.outdir) / "_sources"
    executed = Path(app.outdir).parent / "jupyter_execute"  # where myst-nb writes what it ran
    counts = {"executed": 0, "converted": 0}
    for docname, path in notebook_docs(app).items():
        dest = sources / f"{docname}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        ran = executed / f"{docname}.ipynb"
        data = None
        if ran.exists() and ran.stat().st_mtime >= path.stat().st_mtime:
            data, kind = _with_cached_outputs(app, ran.read_bytes()), "executed"
        if data is not None:
            pass
        elif path.suffix == ".ipynb":
            data, kind = path.read_bytes(), "converted"
        else:
            data, kind = jupytext.writes(jupytext.read(path), fmt="ipynb").encode("utf-8"), "converted"
        counts[kind] += 1
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(dest)
    logger.info("wrote the .ipynb of %d notebook pages to %s (%d with the build's outputs, %d converted)",
                sum(counts.values()), sources, counts["executed"], counts["converted"])


# -------------------------------------------------------------------------------------------------
# 3. API reference


def public_modules(package: str) -> list[str]:
    """``package`` and its public submodules (no ``_private`` or ``__main__``), sorted."""
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


def _undocumented_data(module) -> list[str]:
    """``py:data`` entries for the public constants autodoc's ``:members:`` would skip.

    autodoc documents module-level data only when it has a ``#:`` doc comment (and ``autodata`` on
    one without it shows the docstring of its type, e.g. of ``tuple``); the constants in a module's
    ``__all__`` without one are listed here with their type, and their value when it is short.
    """
    import inspect

    from sphinx.pycode import ModuleAnalyzer

    names = getattr(module, "__all__", None)
    if not names:
        return []
    try:
        documented = {attr for (_, attr) in ModuleAnalyzer.for_module(module.__name__).find_attr_docs()}
    except Exception:  # no source: nothing to add
        return []
    lines = []
    for name in names:
        obj = getattr(module, name, None)
        if name in documented or name.startswith("_") or inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj):
            continue
        lines += [f".. py:data:: {name}", f"   :module: {module.__name__}", f"   :type: {type(obj).__name__}"]
        value = repr(obj)
        if len(value) <= 160 and "\n" not in value:
            lines += [f"   :value: {value}"]
        lines += ["", f"   A constant of :mod:`{module.__name__}` (listed in its ``__all__``).", ""]
    return lines


class ApiDirective(SphinxDirective):
    """``.. vae-book-api:: PACKAGE`` — one section per public module, documented by autodoc.

    A package's own section shows its docstring only (its names are documented where they are
    defined); a module's section documents its members (``__all__`` when it has one).
    """

    required_arguments = 1
    has_content = False

    def run(self):
        package = self.arguments[0]
        lines: list[str] = []
        for name in public_modules(package):
            module = importlib.import_module(name)
            if getattr(module, "__file__", None):
                self.env.note_dependency(module.__file__)
            title = f"``{name}``"
            lines += [title, "-" * len(title), "", f".. automodule:: {name}"]
            if not hasattr(module, "__path__"):  # a module, not a package
                lines += ["   :members:", "   :undoc-members:", "   :show-inheritance:", ""]
                lines += _undocumented_data(module)
            lines += [""]
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="vae-book-api"), container)
        return container.children


def setup(app: Sphinx):
    app.connect("builder-inited", _add_static_assets)
    app.add_css_file(SITE_CSS)
    app.add_js_file(SITE_JS, priority=SITE_JS_PRIORITY)
    app.connect("html-page-context", _set_ipynb_source, priority=400)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("build-finished", _write_notebooks)
    app.add_directive("vae-book-api", ApiDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
