"""The static website, as a reader's browser sees it: headless Chromium (Playwright) on the smoke build.

The book is built once (the ``built_book`` fixture, smoke profile, ``VAE_BOOK_STATIC=1``) and served
from ``_build/html`` by a ``http.server`` thread on 127.0.0.1. Every page of the table of contents is
loaded; the tests check what a reader would notice: the page loads, nothing is fetched from outside
127.0.0.1 (the site works offline), math is typeset by the site's own MathJax, every image shows,
every internal link resolves, the interactive explorers respond to the keyboard and the mouse, the
search finds "ELBO", and each chapter offers its ``.ipynb`` with the outputs of the build. Display
equations and the code of every code cell fit their column on a desktop (MathJax 4's line breaking;
code lines of at most 88 characters), and on a phone (390 px) no page scrolls sideways: an equation
that still does not fit scrolls in its own box, with a shadow on the side where there is more. A
screenshot of every page goes to ``test-artifacts/screenshots/`` for a person to look at (chapters 4
and 7 also at 1280 and 390 px).

Chromium is Debian's ``/usr/bin/chromium`` (``make test`` installs it when missing); if it cannot be
launched the tests fail — they are never skipped.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import jupytext
import nbformat
import pytest
from _toc import toc_pages

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import site_assets  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


PAGES = toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("chapters/")]


# -------------------------------------------------------------------------------------------------
# fixtures: the built site, a local server, a browser


@pytest.fixture(scope="session")
def site_dir(request) -> Path:
    """The built site. ``VAE_BOOK_TEST_SITE=<_build dir>`` reuses an existing build (for iterating on
    these tests only); otherwise the ``built_book`` fixture builds the book."""
    import os

    reuse = os.environ.get("VAE_BOOK_TEST_SITE")
    if reuse:
        return Path(reuse) / "html"
    build, proc = request.getfixturevalue("built_book")
    html = build / "html"
    if proc.returncode != 0 or not (html / "index.html").exists():
        pytest.fail(f"the book build failed, so the site cannot be tested:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="session")
def server(site_dir):
    """``http://127.0.0.1:<port>/`` serving the built site from a thread; shut down at the end."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: the browser tests cannot run. Install it with "
                    "`apt-get update && apt-get install -y chromium` (`make test` does this).", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # a browser that will not start is a failure, not a skip
            pytest.fail(f"could not launch Chromium at {CHROMIUM}: {exc}", pytrace=False)
        yield b
        b.close()


class Visit:
    """One page loaded in a fresh browser context, with everything it requested and logged."""

    def __init__(self, browser, url: str, color_scheme: str = "light", viewport: tuple[int, int] = (1280, 900)):
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                           color_scheme=color_scheme)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.failed: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.context.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(f"uncaught: {e}"))
        self.response = self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")
        self.wait_for_math()

    def wait_for_math(self, timeout=60_000):
        has_math = self.page.evaluate("() => document.querySelectorAll('.math').length > 0")
        if has_math:
            self.page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=timeout)
            self.page.evaluate("() => MathJax.startup.promise.then(() => true)")
        return has_math

    def close(self):
        self.context.close()


def _page_url(base: str, docname: str) -> str:
    return urllib.parse.urljoin(base, f"{docname}.html")


def _is_local(url: str, base: str) -> bool:
    return url.startswith(base) or url.startswith(("data:", "blob:", "about:"))


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


@functools.lru_cache(maxsize=None)
def _fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", b""


@functools.lru_cache(maxsize=None)
def _ids_of(url: str) -> frozenset:
    status, ctype, body = _fetch(url)
    parser = _Ids()
    parser.feed(body.decode("utf-8", "replace"))
    return frozenset(parser.ids)


# -------------------------------------------------------------------------------------------------
# the pages


def test_the_toc_lists_the_reference_part():
    for page in ("notation", "api", "bibliography"):
        assert page in PAGES, f"_toc.yml does not list the reference page {page}"


@pytest.mark.parametrize("docname", PAGES)
def test_page_loads_offline_with_math_images_and_links(docname, browser, server, site_dir):
    """Load one page: 200, no console error, no request off 127.0.0.1, math typeset, images loaded,
    internal links resolve; and write its screenshot."""
    visit = Visit(browser, _page_url(server, docname))
    page = visit.page
    try:
        assert visit.response is not None and visit.response.status == 200, f"{docname}: HTTP {visit.response and visit.response.status}"
        assert page.title().strip(), f"{docname}: the page has no title"
        text = page.inner_text("main")
        assert len(text.strip()) > 100, f"{docname}: the main area is (nearly) empty: {text[:200]!r}"

        # nothing leaves the machine
        outside = [u for u in visit.requests if not _is_local(u, server)]
        assert not outside, f"{docname}: requests left 127.0.0.1: {outside}"
        assert not visit.failed, f"{docname}: requests failed: {visit.failed}"

        # math: typeset by the site's MathJax, no TeX error, no raw delimiters left
        math = page.evaluate("""() => {
            const els = [...document.querySelectorAll('.math')];
            return {n: els.length,
                    untypeset: els.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80)),
                    containers: document.querySelectorAll('mjx-container').length,
                    errors: [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent),
                    mathjax: !!window.MathJax && !!window.MathJax.version ? MathJax.version : null,
                    fonts: [...document.fonts].filter(f => f.family.startsWith('MJX-') && f.status === 'loaded').length};
        }""")
        if math["n"]:
            pinned = site_assets.mathjax_version()
            assert math["mathjax"] == pinned, f"{docname}: the site's MathJax {pinned} did not load: {math}"
            assert math["fonts"] > 0, f"{docname}: none of MathJax's fonts loaded: {math}"
            assert not math["untypeset"], f"{docname}: math left untypeset: {math['untypeset'][:5]}"
            assert math["containers"] >= math["n"]
            assert not math["errors"], f"{docname}: MathJax reports TeX errors: {math['errors'][:5]}"
        body = page.inner_text("article")
        assert "$$" not in body, f"{docname}: raw $$ left in the text"
        assert not re.search(r"\\\(|\\\[", body), f"{docname}: raw \\( or \\[ left in the text"

        # every image has loaded (scroll through the page so nothing is lazily skipped)
        page.evaluate("""async () => {
            for (let y = 0; y < document.body.scrollHeight; y += 800) { window.scrollTo(0, y); await new Promise(r => setTimeout(r, 20)); }
            window.scrollTo(0, 0);
            await Promise.all([...document.images].map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
        }""")
        broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 120))")
        assert not broken, f"{docname}: images that did not load: {broken}"

        # every internal link resolves (the file, and the #fragment in it)
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        bad = []
        for href in sorted(set(hrefs)):
            if not href.startswith(server):
                assert not href.startswith("file:"), f"{docname}: link to a local file outside the site: {href}"
                continue
            target, _, fragment = href.partition("#")
            status, ctype, _ = _fetch(target)
            if status != 200:
                bad.append(f"{href} -> HTTP {status}")
            elif fragment and "html" in ctype and urllib.parse.unquote(fragment) not in _ids_of(target):
                bad.append(f"{href} -> no element with id {fragment!r}")
        assert not bad, f"{docname}: broken internal links:\n" + "\n".join(bad)

        assert not visit.console_errors, f"{docname}: console errors: {visit.console_errors}"

        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{docname.replace('/', '__')}.png"), full_page=True)
    finally:
        visit.close()


FIGURE_PAGE = "chapters/06_mlp_vae"


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_the_theme_follows_the_readers_setting_and_figures_stay_readable(scheme, browser, server):
    """The theme's automatic mode: a reader whose OS asks for dark gets the dark theme, and the
    figures keep an opaque white background there (black axis labels on a transparent PNG would
    vanish on it). Screenshots of the page in the scheme go to ``dark__``/``light__`` files."""
    visit = Visit(browser, _page_url(server, FIGURE_PAGE), color_scheme=scheme)
    page = visit.page
    try:
        theme = page.evaluate("() => document.documentElement.dataset.theme")
        assert theme == scheme, f"the page's theme is {theme!r} for a reader who prefers {scheme}"
        figures = page.evaluate("""async () => {
            const imgs = [...document.querySelectorAll('.cell_output img')];
            await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
            return imgs.filter(i => i.src.startsWith('data:image/png') || i.src.endsWith('.png')).map(i => {
                const c = document.createElement('canvas');
                c.width = i.naturalWidth; c.height = i.naturalHeight;
                const g = c.getContext('2d'); g.drawImage(i, 0, 0);
                const px = g.getImageData(1, 1, 1, 1).data;   // a corner: the figure's background
                return {natural: i.naturalWidth, shown: i.getBoundingClientRect().width, corner: [...px]};
            });
        }""")
        assert len(figures) >= 3, f"{FIGURE_PAGE}: expected its figures, found {figures}"
        for f in figures:
            assert f["corner"][3] == 255 and min(f["corner"][:3]) >= 240, f"a figure's background is not opaque white: {f}"
        # 2x ("retina") PNGs: about twice as many pixels across as the width they are shown at
        sharp = [f for f in figures if f["shown"] > 0 and f["natural"] >= 1.8 * f["shown"]]
        assert len(sharp) == len(figures), f"figures not at 2x: {[f for f in figures if f not in sharp][:5]}"
        assert not visit.console_errors, visit.console_errors
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".cell_output img").nth(1).scroll_into_view_if_needed()  # a figure, with text around it
        page.screenshot(path=str(SHOTS / f"{scheme}__{FIGURE_PAGE.replace('/', '__')}.png"), full_page=False)
    finally:
        visit.close()


def test_math_is_rendered_on_the_pages_that_have_math(site_dir):
    """The pages written with math really contain it (so the per-page math check above checks something)."""
    with_math = [p for p in PAGES if 'class="math' in (site_dir / f"{p}.html").read_text()]
    assert "notation" in with_math and any(p.startswith("chapters/") for p in with_math), with_math


def test_pages_load_no_script_or_style_from_the_network_and_mathjax_is_not_injected(site_dir):
    """Static check of every page's <script>/<link>: all local; MathJax's entry point once, its components never."""
    for html_file in sorted(site_dir.rglob("*.html")):
        html = html_file.read_text()
        rel = html_file.relative_to(site_dir)
        srcs = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html)
        links = re.findall(r'<link[^>]*\shref="([^"]+)"', html)
        remote = [u for u in srcs + links if re.match(r"(https?:)?//", u)]
        assert not remote, f"{rel} loads from the network: {remote}"
        mathjax = [s for s in srcs if "mathjax" in s.lower()]
        if "class=\"math" in html:
            assert len(mathjax) == 1 and "_static/mathjax/tex-mml-chtml.js" in mathjax[0], f"{rel}: {mathjax}"
        assert len(mathjax) <= 1, f"{rel}: MathJax components injected into the page: {mathjax[:5]}"
    mathjax = site_dir / "_static" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").exists()
    # MathJax 4's font, where _config.yml's loader.paths.fonts ("[mathjax]/fonts") sends MathJax
    font = mathjax / site_assets.FONT_DIR
    assert (font / "chtml.js").exists() and len(list((font / "chtml" / "woff2").glob("*.woff2"))) > 50, font
    assert list((font / "chtml" / "dynamic").glob("*.js")) and (font / "svg.js").exists(), font
    assert not list(mathjax.rglob("*.cjs")) + list(mathjax.rglob("*.mjs")), "Node.js modules copied into the site"


def test_mathjax_is_configured_to_load_everything_from_the_site(site_dir):
    """Every page with math sets ``window.MathJax`` before MathJax loads: the fonts from the site's own
    folder (MathJax 4's default is a CDN), display equations broken to fit, and the site's script
    after the configuration."""
    page = next(p for p in PAGES if 'class="math' in (site_dir / f"{p}.html").read_text())
    html = (site_dir / f"{page}.html").read_text()
    m = re.search(r"<script>window.MathJax = (\{.*?\})</script>", html)
    assert m, f"{page}: no MathJax configuration"
    config = json.loads(m.group(1))
    assert config["loader"]["paths"]["fonts"] == site_assets.FONTS_PATH == "[mathjax]/fonts", config
    assert config["output"]["displayOverflow"] == "linebreak", config
    order = [html.index(s) for s in ("window.MathJax = ", "_static/mathjax/tex-mml-chtml.js", "_static/vae_book.js")]
    assert order == sorted(order), f"{page}: the configuration, MathJax and the site's script are out of order"
    assert re.search(r'<script defer="defer" src="[^"]*_static/mathjax/tex-mml-chtml.js', html), "MathJax is not deferred"
    assert re.search(r'<link rel="stylesheet"[^>]*href="[^"]*_static/vae_book.css', html), f"{page}: no vae_book.css"


def test_math_renders_from_disk(browser, site_dir):
    """Opening the site as files (no server, no network) still typesets the math."""
    page_name = next(p for p in PAGES if 'class="math' in (site_dir / f"{p}.html").read_text())
    context = browser.new_context()
    try:
        page = context.new_page()
        requests, errors = [], []
        context.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site_dir / f"{page_name}.html").as_uri(), wait_until="load")
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise.then(() => true)")
        n = page.evaluate("() => document.querySelectorAll('mjx-container').length")
        assert n > 0, f"{page_name} opened from disk: no math typeset"
        outside = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
        assert not outside and not errors, (outside, errors)
    finally:
        context.close()


# -------------------------------------------------------------------------------------------------
# wide equations and narrow screens

DESKTOP = (1280, 900)
PHONE = (390, 844)
#: pages whose screenshots at both widths go to test-artifacts/screenshots/ (the most equations)
WIDTH_SHOTS = ("chapters/04_elbo", "chapters/07_transformer_vae")

#: display equations whose content is wider than their box, with the start of their TeX
_OVERFLOWING_EQUATIONS = """() => [...document.querySelectorAll('mjx-container[display="true"]')]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => ({scroll: e.scrollWidth, client: e.clientWidth,
                tex: (e.closest('.math') || e).textContent.replace(/\\s+/g, ' ').slice(0, 100),
                cue: e.classList.contains('vae-more-right') || e.classList.contains('vae-more-left'),
                shadow: getComputedStyle(e).boxShadow}))"""


def _width_shot(page, docname: str, viewport: tuple[int, int]) -> None:
    if docname in WIDTH_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{viewport[0]}px__{docname.replace('/', '__')}.png"), full_page=True)


@pytest.mark.parametrize("docname", PAGES)
def test_display_equations_fit_their_box_at_1280px(docname, browser, server):
    """On a desktop (1280x900) no display equation is wider than its box: MathJax 4 breaks the long
    ones (``displayOverflow: linebreak``), and the few it cannot break well are written as
    ``aligned``/``split`` in the chapter."""
    visit = Visit(browser, _page_url(server, docname), viewport=DESKTOP)
    try:
        over = visit.page.evaluate(_OVERFLOWING_EQUATIONS)
        assert not over, f"{docname}: {len(over)} display equations wider than their box at 1280 px: {over}"
        assert visit.page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        _width_shot(visit.page, docname, DESKTOP)
    finally:
        visit.close()


@pytest.mark.parametrize("docname", PAGES)
def test_no_page_scrolls_sideways_at_390px(docname, browser, server):
    """On a phone (390x844) the page is never wider than the screen; a display equation that still
    does not fit scrolls inside its own box, which shows a shadow on the side where there is more."""
    visit = Visit(browser, _page_url(server, docname), viewport=PHONE)
    page = visit.page
    try:
        width = page.evaluate("""() => ({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,
                                         main: (document.querySelector('main') || document.body).scrollWidth,
                                         inner: window.innerWidth})""")
        assert width["doc"] <= width["inner"] and width["body"] <= width["inner"], \
            f"{docname}: the page scrolls sideways at 390 px: {width}; wider than the screen: " + str(page.evaluate(
                """() => [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)
                    .slice(0, 8).map(e => e.tagName + '.' + [...e.classList].join('.'))"""))
        over = page.evaluate(_OVERFLOWING_EQUATIONS)
        no_cue = [e for e in over if not e["cue"] or e["shadow"] in ("", "none")]
        assert not no_cue, f"{docname}: equations that scroll without a visible cue: {no_cue}"
        boxes = page.evaluate("""() => [...document.querySelectorAll('mjx-container[display="true"]')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 1).length""")
        assert boxes == 0, f"{docname}: {boxes} equation boxes reach past the screen"
        _width_shot(page, docname, PHONE)
    finally:
        visit.close()


#: code-cell input boxes (hidden inputs opened first) whose code is wider than the box, each with the
#: first line that does not fit and how many characters the box holds
_OVERFLOWING_CODE = """() => {
    document.querySelectorAll('.cell details').forEach(d => { d.open = true; });
    return [...document.querySelectorAll('div.cell_input pre')]
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => {
            const cs = getComputedStyle(e), probe = document.createElement('span');
            probe.style.whiteSpace = 'pre';
            probe.textContent = '0'.repeat(100);
            e.appendChild(probe);
            const ch = probe.getBoundingClientRect().width / 100;
            probe.remove();
            const holds = Math.floor((e.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)) / ch);
            const line = e.textContent.split('\\n').find(l => l.length > holds) || '';
            return {scroll: e.scrollWidth, client: e.clientWidth, holds, length: line.length, line: line.slice(0, 100)};
        });
}"""


@pytest.mark.parametrize("docname", PAGES)
def test_no_code_line_overflows_at_1280px(docname, browser, server):
    """On a desktop (1280x900) the code of every code cell fits its box, hidden inputs included: no
    code line is longer than 88 characters (tests/test_code_lines.py), and vae_book.css gives the
    code-cell box room for 88 at a size still readable (at least 0.8 of the prose's)."""
    visit = Visit(browser, _page_url(server, docname), viewport=DESKTOP)
    try:
        over = visit.page.evaluate(_OVERFLOWING_CODE)
        assert not over, (f"{docname}: {len(over)} code cells wider than their box at 1280 px; the first line "
                          f"that does not fit in each: {over}")
        sizes = visit.page.evaluate("""() => ({
            code: [...document.querySelectorAll('div.cell_input pre')].map(e => parseFloat(getComputedStyle(e).fontSize)),
            prose: parseFloat(getComputedStyle(document.querySelector('.bd-article p') || document.body).fontSize)})""")
        if docname in CHAPTERS:
            assert sizes["code"], f"{docname}: no code cell input on the page"
        small = [s for s in sizes["code"] if s < 0.8 * sizes["prose"] - 0.01]
        assert not small, f"{docname}: code cells at {small} px, under 0.8 of the prose's {sizes['prose']} px"
    finally:
        visit.close()


# -------------------------------------------------------------------------------------------------
# interactive explorers


def test_explorers_respond_to_the_slider(browser, server, site_dir):
    """Every explorer in the book: keyboard and pointer moves of each of its sliders change the image and
    that slider's value."""
    pages = [p for p in PAGES if "vae-book-explorer" in (site_dir / f"{p}.html").read_text()]
    assert pages, "no page of the book has an explorer (chapters/00_setup.md should have a demo)"
    # part I's explorers (the KL, the ELBO gap, the gradient estimators) and the latent-space ones
    for must in ("03_kl_divergence", "04_elbo", "05_reparameterization", "08_latent_space", "09_balancing_act"):
        assert f"chapters/{must}" in pages, f"chapters/{must} has lost its explorer"
    checked = 0
    for docname in pages:
        visit = Visit(browser, _page_url(server, docname))
        page = visit.page
        try:
            explorers = page.locator(".vae-book-explorer")
            for i in range(explorers.count()):
                ex = explorers.nth(i)
                ex.scroll_into_view_if_needed()
                img = ex.locator("img")
                style = img.get_attribute("style") or ""
                # pixel images are magnified pixelated; figures are drawn at 2x and shown smaller, smoothly
                assert "pixelated" in style or ("max-width:100%" in style and "height:auto" in style), style
                sliders, outs = ex.locator('input[type="range"]'), ex.locator("output")
                assert sliders.count() == outs.count() >= 1
                for k in range(sliders.count()):
                    slider, out = sliders.nth(k), outs.nth(k)
                    n = int(slider.get_attribute("max")) + 1
                    assert n >= 2, f"{docname}: explorer {i}, slider {k} has a single position"
                    start = int(slider.input_value())
                    before_src, before_text = img.get_attribute("src"), out.inner_text()
                    before_pixels = ex.screenshot()
                    slider.focus()
                    page.keyboard.press("End" if start < n - 1 else "Home")
                    after_src, after_text = img.get_attribute("src"), out.inner_text()
                    where = f"{docname}: explorer {i}, slider {k}"
                    assert after_src != before_src, f"{where}: the key press did not change the image"
                    assert after_text != before_text, f"{where}: the shown value did not change"
                    assert ex.screenshot() != before_pixels, f"{where}: the rendered pixels did not change"
                    assert img.evaluate("i => i.complete && i.naturalWidth > 0")
                    # a pointer drag to the middle also works
                    box = slider.bounding_box()
                    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                    mid = int(slider.input_value())
                    assert 0 < mid < n - 1 or n <= 2, f"{where}: clicking the middle gave {mid}/{n - 1}"
                    assert slider.get_attribute("aria-valuetext").endswith(out.inner_text())
                    assert out.inner_text() in (img.get_attribute("alt") or ""), f"{where}: alt text not updated"
                SHOTS.mkdir(parents=True, exist_ok=True)
                ex.screenshot(path=str(SHOTS / f"explorer__{docname.replace('/', '__')}__{i}__moved.png"))
                checked += 1
            assert not visit.console_errors, visit.console_errors
        finally:
            visit.close()
    assert checked >= 1


# -------------------------------------------------------------------------------------------------
# search, notebooks, API reference, bibliography


def test_search_finds_elbo(browser, server):
    visit = Visit(browser, urllib.parse.urljoin(server, "search.html?q=ELBO"))
    page = visit.page
    try:
        page.wait_for_function("() => document.querySelectorAll('#search-results li').length > 0", timeout=30_000)
        results = page.evaluate("() => [...document.querySelectorAll('#search-results li a')].map(a => a.href)")
        assert any("chapters/04_elbo.html" in r for r in results), results
        assert not [u for u in visit.requests if not _is_local(u, server)]
        assert not visit.console_errors, visit.console_errors
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "search_ELBO.png"), full_page=True)
    finally:
        visit.close()


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_offers_its_notebook_and_source(docname, server, site_dir):
    html = (site_dir / f"{docname}.html").read_text()
    m = re.search(r'<a href="([^"]+\.ipynb)"[^>]*\n?[^>]*btn-download-notebook-button', html)
    assert m, f"{docname}: no .ipynb download button"
    url = urllib.parse.urljoin(_page_url(server, docname), m.group(1))
    status, _, body = _fetch(url)
    assert status == 200, f"{docname}: {url} -> HTTP {status}"
    nb = nbformat.reads(body.decode(), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    source = jupytext.read(ROOT / f"{docname}.md")
    code = lambda n: [c.source for c in n.cells if c.cell_type == "code"]  # noqa: E731
    assert code(nb) == code(source), f"{docname}: the .ipynb's code cells differ from the .md's"
    # it is the notebook the build executed: every code cell ran, and the outputs the page shows are in it
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert cells and all(c.get("execution_count") is not None for c in cells), f"{docname}: .ipynb not executed"
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert outputs, f"{docname}: the downloaded .ipynb has no outputs"
    assert not [o for o in outputs if o.get("output_type") == "error"], f"{docname}: an output is an error"
    md = re.search(r'href="([^"]+\.md)"', html)
    assert md and _fetch(urllib.parse.urljoin(_page_url(server, docname), md.group(1)))[0] == 200


def test_api_reference_documents_every_public_name(site_dir):
    import importlib
    import inspect

    sys_path_scripts = str(ROOT / "scripts")
    import sys

    if sys_path_scripts not in sys.path:
        sys.path.insert(0, sys_path_scripts)
    from vae_book_site import public_modules

    html = (site_dir / "api.html").read_text()
    ids = set(re.findall(r'id="([^"]+)"', html))
    missing = []
    for modname in public_modules("vae_book"):
        assert f"module-{modname}" in ids, f"the API reference has no section for {modname}"
        module = importlib.import_module(modname)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, o in vars(module).items() if not n.startswith("_")
                     and getattr(o, "__module__", None) == modname and (inspect.isclass(o) or inspect.isfunction(o))]
        for name in names:
            if name == "__version__":
                continue
            obj = getattr(module, name)
            home = getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else None
            qual = getattr(obj, "__qualname__", name) if home else name
            if home and home.startswith("vae_book") and f"{home}.{qual}" in ids:
                continue
            if f"{modname}.{name}" in ids:
                continue
            # a constant re-exported by a package is documented under the submodule that defines it
            homes = [sub for sub in public_modules("vae_book") if sub.startswith(modname + ".")
                     and getattr(importlib.import_module(sub), name, None) is obj]
            if not any(f"{sub}.{name}" in ids for sub in homes):
                missing.append(f"{modname}.{name}")
    assert not missing, f"public names missing from the API reference: {missing}"


def test_one_bibliography_and_citations_link_to_it(site_dir):
    pages_with_bib = [p for p in PAGES if "{bibliography}" in (ROOT / f"{p}.md").read_text()]
    assert pages_with_bib == ["bibliography"], f"the {{bibliography}} directive must appear once, in bibliography.md: {pages_with_bib}"
    cited = set()
    for p in PAGES:
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", (ROOT / f"{p}.md").read_text()):
            cited.update(k.strip() for k in keys.split(","))
    bib = (site_dir / "bibliography.html").read_text()
    entries = re.findall(r'<div class="citation" id="[^"]+" role="doc-biblioentry">', bib)
    assert cited and len(entries) == len(cited), f"{len(entries)} bibliography entries for {len(cited)} cited keys"
    for p in PAGES:
        if "{cite" in (ROOT / f"{p}.md").read_text():
            html = (site_dir / f"{p}.html").read_text()
            assert re.search(r'href="(\.\./)?bibliography\.html#id\d+"', html), f"{p}: citations do not link to the bibliography page"
