"""vae_book.widgets: the static HTML explorer, its embedded frames, show() and input validation."""

import base64
import io
import json
import re
import sys

import numpy as np
import pytest
from PIL import Image

from vae_book import widgets


def exact_frames(n=5, h=6, w=7, c=1, seed=0):
    """Frames whose values are exact multiples of 1/255, so PNG round trips are lossless."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, c)).astype(np.float32) / 255.0


def decode_data_uri(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr


def embedded_frames(html: str) -> list[str]:
    """The frame list of the inline script (the <img> holds a copy of the start frame)."""
    m = re.search(r"var frames = (\[.*?\]),", html)
    assert m, "no frame list in the explorer's script"
    return re.findall(r'"(data:image/png;base64,[A-Za-z0-9+/=]+)"', m.group(1))


@pytest.mark.parametrize("channels", [1, 3])
def test_html_has_one_slider_and_frames_that_decode_to_the_pixels(channels):
    frames = exact_frames(n=5, c=channels)
    html = widgets.explorer_html(frames, [0.1, 0.2, 0.3, 0.4, 0.5], label="z[0]", title="A <title>", scale=3)
    sliders = re.findall(r'<input type="range"[^>]*>', html)
    assert len(sliders) == 1
    assert 'max="4"' in sliders[0] and 'min="0"' in sliders[0]
    uris = embedded_frames(html)
    assert len(uris) == 5
    for uri, frame in zip(uris, frames):
        np.testing.assert_array_equal(decode_data_uri(uri), np.rint(frame * 255).astype(np.uint8))
    assert "http" not in html.lower()
    assert "image-rendering:pixelated" in html.replace(" ", "")
    assert 'width="21"' in html and 'height="18"' in html  # 7 x 6 pixels at scale 3
    assert "A &lt;title&gt;" in html and "<title>" not in html  # escaped text
    assert ">0.1</output>" in html  # the current value as text
    assert 'aria-valuetext="z[0] = 0.1"' in html


def test_every_explorer_gets_unique_ids():
    frames = exact_frames()
    a, b = widgets.explorer_html(frames), widgets.explorer_html(frames)
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    ids_b = set(re.findall(r'id="([^"]+)"', b))
    assert len(ids_a) == 4 and not ids_a & ids_b


def test_default_values_are_frame_indices_and_start_is_respected():
    html = widgets.explorer_html(exact_frames(n=3), start=2)
    assert 'value="2"' in html and ">2</output>" in html
    assert '"texts": ["0", "1", "2"]' in html


def test_script_cannot_break_out_of_its_element():
    html = widgets.explorer_html(exact_frames(n=2), ["</script><b>", "x"], label="</script>")
    script = html.split("<script>", 1)[1]
    assert script.count("</script>") == 1


def test_explorer_object_renders_as_html():
    ex = widgets.image_explorer(exact_frames(n=4, c=3), title="t")
    assert ex._repr_html_() == ex.html
    assert ex.num_frames == 4 and ex.frame_shape == (6, 7, 3)


def test_large_explorers_are_subsampled_with_a_warning():
    frames = np.random.default_rng(0).random((40, 32, 32, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match="max_bytes"):
        html = widgets.explorer_html(frames, max_bytes=20_000)
    uris = embedded_frames(html)
    assert 2 <= len(uris) < 40
    assert sum(len(u) for u in uris) <= 20_000 * 1.2
    slider = re.search(r'<input type="range"[^>]*>', html).group(0)
    assert f'max="{len(uris) - 1}"' in slider


def test_show_picks_static_when_the_build_asks_for_it(monkeypatch):
    calls = []

    def fake_live(frames, values, **kw):
        calls.append((frames, values, kw))
        return "live"

    frames = exact_frames(n=3)
    monkeypatch.setenv("VAE_BOOK_STATIC", "1")
    out = widgets.show(frames, [1, 2, 3], label="k", live_factory=fake_live)
    assert isinstance(out, widgets.Explorer) and not calls
    assert 'max="2"' in out.html

    monkeypatch.delenv("VAE_BOOK_STATIC")
    assert widgets.show(frames, [1, 2, 3], label="k", scale=2, live_factory=fake_live) == "live"
    assert len(calls) == 1 and calls[0][1] == [1, 2, 3] and calls[0][2]["label"] == "k"
    assert calls[0][2]["scale"] == 2

    monkeypatch.setenv("VAE_BOOK_STATIC", "0")
    assert widgets.show(frames, live_factory=fake_live) == "live"


def test_show_falls_back_to_the_static_explorer_without_ipywidgets(monkeypatch):
    monkeypatch.delenv("VAE_BOOK_STATIC", raising=False)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now raises ImportError
    with pytest.warns(UserWarning, match=r"ipywidgets is not installed.*vae-book\[widgets\]"):
        out = widgets.show(exact_frames(n=3), [1, 2, 3], label="k")
    assert isinstance(out, widgets.Explorer) and 'max="2"' in out.html
    with pytest.raises(ImportError, match="vae-book"):  # asked for explicitly, the live one says what is missing
        widgets.live_explorer(exact_frames(n=3), label="k")


def test_live_explorer_updates_the_image_when_the_slider_moves():
    pytest.importorskip("ipywidgets")
    box = widgets.live_explorer(exact_frames(n=3), ["a", "b", "c"], label="k", title="T")
    title, image, row = box.children
    slider, value = row.children
    assert slider.max == 2 and value.value == "a"
    before = image.value
    slider.value = 2
    assert image.value != before and value.value == "c"
    assert "pixelated" in image.value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frames=np.zeros((4, 4, 1), np.float32)), "frames"),              # not NHWC
        (dict(frames=np.full((2, 4, 4, 1), 2.0, np.float32)), "frames"),       # out of [0, 1]
        (dict(frames=np.zeros((2, 4, 4, 2), np.float32)), "frames"),           # 2 channels
        (dict(frames=np.zeros((2, 4, 4, 1), np.int32)), "frames"),             # integer dtype
        (dict(frames=np.zeros((0, 4, 4, 1), np.float32)), "frames"),           # no frame
        (dict(values=[1, 2, 3]), "values"),                                    # wrong length
        (dict(values="ab"), "values"),                                         # a string
        (dict(values=[1, object()]), "values"),                                # not a number
        (dict(scale=0), "scale"),
        (dict(scale=2.5), "scale"),
        (dict(scale=100), "scale"),
        (dict(label=3), "label"),
        (dict(title=4), "title"),
        (dict(start=2), "start"),
        (dict(max_bytes=0), "max_bytes"),
    ],
)
def test_bad_inputs_are_refused_naming_the_argument(kwargs, match):
    args = dict(frames=np.zeros((2, 4, 4, 1), np.float32), values=None)
    args.update(kwargs)
    frames, values = args.pop("frames"), args.pop("values")
    with pytest.raises(ValueError, match=match):
        widgets.explorer_html(frames, values, **args)


def test_bad_inputs_to_helpers_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="`image`"):
        widgets.png_bytes(np.zeros((2, 2), np.float32))
    monkeypatch.delenv("VAE_BOOK_STATIC", raising=False)
    with pytest.raises(ValueError, match="`live_factory`"):
        widgets.show(np.zeros((2, 4, 4, 1), np.float32), live_factory=3)


# --------------------------------------------------------------------------------------------------
# explore: frames computed from the slider values


def _pixel_render(calls):
    """render(a, b): a 2x3 grey frame whose pixels encode (a, b) exactly (multiples of 1/255)."""

    def render(a, b=0):
        calls.append((a, b))
        return np.full((2, 3, 1), (10 * a + b) / 255.0, np.float32)

    return render


def test_explore_static_embeds_every_combination_in_c_order():
    calls = []
    ex = widgets.explore(_pixel_render(calls), {"a": [1, 2, 3], "b": [4, 5]}, live=False, scale=2)
    assert calls == [(1, 4), (1, 5), (2, 4), (2, 5), (3, 4), (3, 5)]
    assert isinstance(ex, widgets.Explorer) and ex.num_frames == 6 and ex.frame_shape == (2, 3, 1)
    uris = embedded_frames(ex.html)
    got = [int(decode_data_uri(u)[0, 0, 0]) for u in uris]
    assert got == [14, 15, 24, 25, 34, 35]
    sliders = re.findall(r'<input type="range"[^>]*>', ex.html)
    assert len(sliders) == 2 and 'max="2"' in sliders[0] and 'max="1"' in sliders[1]
    # default start: the middle of each slider, (index 1, index 1) -> frame 1 * 2 + 1 = (2, 5)
    assert 'value="1"' in sliders[0] and 'value="1"' in sliders[1]
    assert int(decode_data_uri(re.search(r'<img[^>]*src="([^"]+)"', ex.html).group(1))[0, 0, 0]) == 25
    strides = [a["stride"] for a in json.loads(re.search(r"axes = (\[.*?\]), title", ex.html).group(1))]
    assert strides == [2, 1]
    assert "pixelated" in ex.html and "http" not in ex.html.lower()


def test_explore_shows_figures_at_a_width_smoothly_with_a_palette():
    ex = widgets.explore(lambda s: np.linspace(0, 1, 40 * 60 * 3).reshape(40, 60, 3), {"s": [1, 2]},
                         width=30, live=False)
    img = re.search(r"<img[^>]*>", ex.html).group(0)
    assert 'width="30"' in img and 'height="20"' in img and "max-width:100%" in img and "pixelated" not in img
    assert Image.open(io.BytesIO(base64.b64decode(embedded_frames(ex.html)[0].split(",", 1)[1]))).mode == "P"


def test_explore_live_renders_on_demand_and_caches():
    pytest.importorskip("ipywidgets")
    calls = []
    box = widgets.explore(_pixel_render(calls), {"a": [1, 2, 3], "b": [4, 5]}, live=True, start=(0, 0),
                          title="T")
    assert calls == [(1, 4)]  # only the start frame is computed
    _, image, row_a, row_b = box.children
    slider_a, value_a = row_a.children
    slider_a.value = 2
    assert calls == [(1, 4), (3, 4)] and value_a.value == "3"
    assert int(decode_data_uri(re.search(r'src="([^"]+)"', image.value).group(1))[0, 0, 0]) == 34
    slider_a.value = 0
    assert calls == [(1, 4), (3, 4)]  # cached


def test_explore_refuses_bad_input_naming_the_argument():
    ok = {"a": [1, 2]}
    render = lambda a: np.zeros((2, 2, 1), np.float32)
    for kwargs, match in [
        (dict(render=3, params=ok), "`render` must be callable"),
        (dict(render=render, params={}), "`params` must be a dict of 1 or 2"),
        (dict(render=render, params={"a": [1, 2], "b": [1, 2], "c": [1, 2]}), "`params` must be a dict"),
        (dict(render=render, params={"a": [1]}), r"params\['a'\]` must hold at least 2"),
        (dict(render=render, params={"a": "xy"}), r"params\['a'\]` must be a sequence"),
        (dict(render=render, params=ok, start=(5,)), "`start`"),
        (dict(render=render, params=ok, width=0), "`width`"),
        (dict(render=render, params=ok, live="yes"), "`live`"),
        (dict(render=lambda a: np.zeros((2, 2)), params=ok), r"`render\(1,\)` must return one image"),
        (dict(render=lambda a: np.full((2, 2, 1), 2.0), params=ok), r"`render\(1,\)` must return one image"),
        (dict(render=lambda a: np.zeros((a, 2, 1)), params=ok), "frames of one shape"),
        (dict(render=lambda a: np.random.default_rng(a).uniform(size=(64, 64, 3)), params=ok, max_bytes=1000),
         "`max_bytes` must hold the embedded frames"),
    ]:
        with pytest.raises(ValueError, match=match):
            widgets.explore(**kwargs, **({} if "live" in kwargs else {"live": False}))
    with pytest.raises(ValueError, match="`colors`"):
        widgets.png_bytes(np.zeros((2, 2, 3), np.float32), colors=1)


def test_explore_falls_back_to_the_static_explorer_without_ipywidgets(monkeypatch):
    monkeypatch.delenv("VAE_BOOK_STATIC", raising=False)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.warns(UserWarning, match=r"ipywidgets is not installed.*vae-book\[widgets\]") as record:
        out = widgets.explore(_pixel_render([]), {"a": [1, 2]})
    assert isinstance(out, widgets.Explorer) and out.num_frames == 2
    assert record[0].filename == __file__  # the warning points at the caller
