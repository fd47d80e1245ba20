"""Interactive image explorers: sliders over precomputed frames, or frames computed as they move.

The same call works in two places:

* On the **static website** (the book build sets ``VAE_BOOK_STATIC=1``) :func:`show` returns an
  :class:`Explorer`: self-contained HTML — the frames embedded as PNG ``data:`` URIs, a native
  ``<input type="range">`` slider (keyboard accessible: arrow keys, Home/End, PageUp/PageDown) and a
  few lines of inline JavaScript that use no library and load nothing from the network. It needs no
  running kernel.
* In a **live kernel** (JupyterLab) :func:`show` returns an ipywidgets slider built by
  :func:`live_explorer` (the ``ipywidgets`` package, extra ``vae-book[widgets]``).

:func:`show` takes precomputed frames. :func:`explore` takes a function instead,
``render(value[, value2]) -> image``, and one or two sliders: the static form computes every frame at
build time and embeds them; in a kernel the sliders call ``render`` as they move, so a latent
traversal decodes the slider's code on demand and a figure is redrawn for the slider's parameters
(:func:`vae_book.plotting.figure_image` turns a matplotlib figure into an image). This module takes plain arrays only and never imports models: compute the frames with
:mod:`vae_book.latent` (:func:`~vae_book.latent.traverse`, :func:`~vae_book.latent.lerp`,
:func:`~vae_book.latent.decode_mean`) and pass them in. Typical use, a latent traversal::

    values = np.linspace(-3, 3, 13)
    frames = latent.traverse(lambda z: latent.decode_mean(model, z), z0, [0], values)[0]
    show(frames, values, label="z[0]", title="Traversal of the first latent")

Shapes: ``frames`` is ``(N, H, W, C)`` float in [0, 1] with ``C`` = 1 (grey) or 3 (RGB) — one frame
per slider position; build multi-image frames with :func:`vae_book.plotting.image_grid`.
``values`` is ``N`` numbers or strings shown next to the slider.

The module is longer than 400 lines because its two forms — the static HTML/JS explorer and the
live ipywidgets one, each for precomputed and for computed frames — share one set of argument
checks and one page layout, and splitting them would separate what must stay in step.
"""

from __future__ import annotations

import base64
import html as _html
import io
import json
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from jax.typing import ArrayLike

from vae_book.profiles import is_static
from vae_book._checks import as_float_images, check_images, check_positive_int

if TYPE_CHECKING:
    import ipywidgets

__all__ = [
    "MAX_EMBED_BYTES",
    "Explorer",
    "png_bytes",
    "png_data_uri",
    "explorer_html",
    "image_explorer",
    "live_explorer",
    "show",
    "explore",
]

#: Default budget for the frames embedded in one explorer, in bytes of PNG data (~2 MB).
MAX_EMBED_BYTES = 2_000_000
_MAX_SCALE = 32




# --------------------------------------------------------------------------------------------------
# validation


def _check_frames(frames, name: str = "frames") -> np.ndarray:
    frames = np.asarray(as_float_images(check_images(frames, name)), dtype=np.float32)
    n, h, w, c = frames.shape
    if n < 1:
        raise ValueError(f"`{name}` must hold at least one frame, got an array of shape {frames.shape}.")
    if c not in (1, 3):
        raise ValueError(
            f"`{name}` must have 1 (grey) or 3 (RGB) channels in its last axis (NHWC), "
            f"got an array of shape {frames.shape}."
        )
    if h < 1 or w < 1:
        raise ValueError(f"`{name}` must have images of at least 1x1 pixels, got shape {frames.shape}.")
    return frames


def _check_scale(scale) -> int:
    scale = check_positive_int(scale, "scale")
    if scale > _MAX_SCALE:
        raise ValueError(f"`scale` must be an integer in [1, {_MAX_SCALE}], got {scale}.")
    return scale


def _check_text(value, name: str, *, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ValueError(f"`{name}` must be a string, got {type(value).__name__} {value!r}."[:200])
    return value


def _format_value(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    raise TypeError


def _check_values(values, n: int, name: str = "values") -> list[str]:
    """The text shown for each of the ``n`` frames (default ``0 .. n-1``)."""
    if values is None:
        return [str(i) for i in range(n)]
    if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)) and not hasattr(values, "shape"):
        raise ValueError(
            f"`{name}` must be a sequence of {n} numbers or strings (one per frame), got {type(values).__name__}."
        )
    if hasattr(values, "shape") and not isinstance(values, (list, tuple)):
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"`{name}` must be one-dimensional (one value per frame), got shape {arr.shape}.")
        values = arr.tolist()
    values = list(values)
    if len(values) != n:
        raise ValueError(f"`{name}` must have one entry per frame: {n} expected, got {len(values)}.")
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_format_value(v))
        except TypeError:
            raise ValueError(
                f"`{name}[{i}]` must be a number or a string, got {type(v).__name__} {v!r}."[:200]
            ) from None
    return out


def _check_explorer(frames, values, label, title, scale, start, max_bytes):
    """The arguments shared by every explorer, checked: frames, value texts, label, title, scale, start, max_bytes."""
    frames = _check_frames(frames)
    n = frames.shape[0]
    texts = _check_values(values, n)
    label = _check_text(label, "label", allow_none=False)
    title = _check_text(title, "title")
    scale = _check_scale(scale)
    max_bytes = check_positive_int(max_bytes, "max_bytes")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < n:
        raise ValueError(f"`start` must be an integer in [0, {n - 1}] (a frame index), got {start!r}.")
    return frames, texts, label, title, scale, start, max_bytes


# --------------------------------------------------------------------------------------------------
# PNG encoding


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def png_bytes(image: ArrayLike, *, colors: int | None = None) -> bytes:
    """Encode one image ``(H, W, C)`` with values in [0, 1], ``C`` = 1 or 3, as PNG bytes.

    Values are mapped to 8 bits by ``round(255 * x)``; a grey image becomes an 8-bit grey PNG.
    ``colors`` (2 to 256) reduces an RGB image to a palette of that many colours first — lossy, and
    about 2-3 times smaller for a rendered figure, whose few flat colours it keeps.
    """
    if colors is not None and (isinstance(colors, bool) or not isinstance(colors, (int, np.integer))
                               or not 2 <= colors <= 256):
        raise ValueError(f"`colors` must be None or an integer in [2, 256], got {colors!r}.")
    image = as_float_images(check_images(image, "image", batched=False))
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] not in (1, 3):
        raise ValueError(f"`image` must have 1 or 3 channels (H, W, C), got an array of shape {image.shape}.")
    from PIL import Image

    pixels = _to_uint8(image)
    pil = Image.fromarray(pixels[..., 0], mode="L") if pixels.shape[-1] == 1 else Image.fromarray(pixels, mode="RGB")
    if colors is not None and pil.mode == "RGB":
        pil = pil.quantize(int(colors), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_data_uri(image: ArrayLike, *, colors: int | None = None) -> str:
    """``data:image/png;base64,...`` URI of one image ``(H, W, C)`` in [0, 1] (see :func:`png_bytes`)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, colors=colors)).decode("ascii")


def _encode_within_budget(frames: np.ndarray, texts: list[str], max_bytes: int):
    """Data URIs of the frames; evenly subsample (with a warning) when they exceed ``max_bytes``."""
    uris = [png_data_uri(f) for f in frames]
    total = sum(len(u) for u in uris)
    if total <= max_bytes:
        return uris, texts
    n = len(uris)
    per_frame = total / n
    keep = max(2, min(n, int(max_bytes // per_frame)))
    idx = np.unique(np.round(np.linspace(0, n - 1, keep)).astype(int))
    warnings.warn(
        f"the {n} frames of this explorer take {total / 1e6:.1f} MB embedded in the page, more than "
        f"max_bytes={max_bytes / 1e6:.1f} MB; keeping {len(idx)} evenly spaced frames. Pass fewer or "
        f"smaller frames (or a larger max_bytes) to avoid this.",
        stacklevel=3,
    )
    return [uris[i] for i in idx], [texts[i] for i in idx]


# --------------------------------------------------------------------------------------------------
# static HTML


def _json_for_script(obj) -> str:
    """JSON safe to inline in a <script> element (no '</script>' or '<!--' can appear)."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_JS = """(function () {
  var frames = %(frames)s, axes = %(axes)s, title = %(title)s;
  var img = document.getElementById(%(iid)s);
  var sliders = axes.map(function (a) { return document.getElementById(a.sid); }),
      outs = axes.map(function (a) { return document.getElementById(a.oid); });
  if (!img || sliders.indexOf(null) >= 0 || outs.indexOf(null) >= 0) { return; }
  function update() {
    var index = 0, desc = [];
    axes.forEach(function (a, k) {
      var i = Math.max(0, Math.min(a.texts.length - 1, parseInt(sliders[k].value, 10) || 0));
      index += i * a.stride;
      outs[k].textContent = a.texts[i];
      sliders[k].setAttribute("aria-valuetext", a.label + " = " + a.texts[i]);
      desc.push(a.label + " = " + a.texts[i]);
    });
    img.src = frames[index];
    img.alt = (title ? title + ": " : "") + desc.join(", ");
  }
  sliders.forEach(function (s) {
    s.addEventListener("input", update);
    s.addEventListener("change", update);
  });
  update();
})();"""


def _img_style(w: int, h: int, scale: int, width: int | None) -> tuple[int, int, str]:
    """CSS width and height of a frame of ``w x h`` pixels, and its style: magnified pixel art is drawn
    pixelated; a frame shown at a given ``width`` (a figure rendered at 2x for sharp screens) smoothly."""
    if width is None:
        cw, ch = w * scale, h * scale
        return cw, ch, (f"display:block;width:{cw}px;height:{ch}px;max-width:none;"
                        "image-rendering:crisp-edges;image-rendering:pixelated;")
    cw, ch = width, max(1, round(h * width / w))
    return cw, ch, f"display:block;width:{cw}px;max-width:100%;height:auto;image-rendering:auto;"


def _explorer_page(uris: list[str], axes: list[tuple[str, list[str], int]], title: str | None,
                   frame_size: tuple[int, int], scale: int, width: int | None) -> str:
    """The HTML of an explorer over ``uris`` (C order over ``axes``: ``(label, texts, start)`` each)."""
    h, w = frame_size
    uid = "vbx-" + uuid.uuid4().hex
    iid = f"{uid}-img"
    esc = _html.escape
    strides, stride = [], 1
    for _, texts, _ in reversed(axes):
        strides.insert(0, stride)
        stride *= len(texts)
    index = sum(start * st for (_, _, start), st in zip(axes, strides))
    descs = [f"{label} = {texts[start]}" for label, texts, start in axes]
    alt = (f"{title}: " if title else "") + ", ".join(descs)
    cw, ch, style = _img_style(w, h, scale, width)
    parts = [
        f'<div class="vae-book-explorer" id="{uid}" '
        'style="display:inline-block;box-sizing:border-box;max-width:100%;margin:0.5em 0;padding:0.5em;'
        'border:1px solid #ccc;border-radius:4px;">',
    ]
    if title:
        parts.append(f'<div class="vae-book-explorer-title" style="font-weight:600;margin-bottom:0.3em;">'
                     f'{esc(title)}</div>')
    parts.append(f'<img id="{iid}" src="{uris[index]}" width="{cw}" height="{ch}" alt="{esc(alt)}" '
                 f'style="{style}">')
    js_axes = []
    for k, ((label, texts, start), desc) in enumerate(zip(axes, descs)):
        sid = f"{uid}-slider" if len(axes) == 1 else f"{uid}-slider{k}"
        oid = f"{uid}-value" if len(axes) == 1 else f"{uid}-value{k}"
        parts.append(
            '<div style="display:flex;align-items:center;gap:0.5em;margin-top:0.4em;">'
            f'<label for="{sid}">{esc(label)}</label>'
            f'<input type="range" id="{sid}" min="0" max="{len(texts) - 1}" step="1" value="{start}" '
            f'aria-valuetext="{esc(desc)}" style="flex:1;min-width:8em;">'
            f'<output id="{oid}" for="{sid}" aria-live="polite" style="min-width:4em;font-family:monospace;">'
            f'{esc(texts[start])}</output></div>'
        )
        js_axes.append({"sid": sid, "oid": oid, "label": label, "texts": texts, "stride": strides[k]})
    parts.append("</div>")
    js = _JS % {"frames": _json_for_script(uris), "axes": _json_for_script(js_axes),
                "title": _json_for_script(title or ""), "iid": _json_for_script(iid)}
    parts.append(f"<script>\n{js}\n</script>")
    return "\n".join(parts)


def explorer_html(frames: ArrayLike, values: Sequence[float | str] | np.ndarray | None = None, *, label: str = "frame",
                  title: str | None = None, scale: int = 4, start: int = 0, max_bytes: int = MAX_EMBED_BYTES) -> str:
    """Self-contained HTML of a slider explorer over ``frames``.

    Args:
        frames: ``(N, H, W, C)`` floats in [0, 1], ``C`` = 1 or 3; frame ``i`` is shown at slider position ``i``.
        values: ``N`` numbers or strings, the value shown for each position (default ``0 .. N-1``).
        label: what the slider controls, e.g. ``"z[0]"`` or ``"beta"``.
        title: optional caption above the image.
        scale: integer magnification; the image is drawn at ``(H * scale, W * scale)`` CSS pixels with
            ``image-rendering: pixelated`` (no blur).
        start: the slider's initial position, in ``[0, N-1]``.
        max_bytes: budget for the embedded PNG data; above it the frames are evenly subsampled and a
            :class:`UserWarning` is raised.

    Returns:
        An HTML fragment (a ``<div>`` and an inline ``<script>``) with element ids unique to this
        call, no external resources and no ``http`` URL.
    """
    frames, texts, label, title, scale, start, max_bytes = _check_explorer(
        frames, values, label, title, scale, start, max_bytes)
    n, h, w, _ = frames.shape
    uris, shown = _encode_within_budget(frames, texts, max_bytes)
    if len(uris) != n:  # subsampled: start at the closest kept frame
        start = int(round(start * (len(uris) - 1) / max(n - 1, 1)))
    return _explorer_page(uris, [(label, shown, start)], title, (h, w), scale, None)


class Explorer:
    """A static, self-contained slider explorer; Jupyter and Jupyter Book render it as HTML.

    Attributes:
        html: the HTML fragment (see :func:`explorer_html`).
        num_frames: number of frames embedded (after any subsampling).
        frame_shape: ``(H, W, C)`` of each frame.
    """

    def __init__(self, html: str, num_frames: int, frame_shape: tuple[int, int, int]) -> None:
        self.html = html
        self.num_frames = num_frames
        self.frame_shape = tuple(frame_shape)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"Explorer({self.num_frames} frames of shape {self.frame_shape}, {len(self.html) / 1e3:.0f} kB of HTML)"


def image_explorer(frames: ArrayLike, values: Sequence[float | str] | np.ndarray | None = None, *, label: str = "frame",
                   title: str | None = None, scale: int = 4, start: int = 0,
                   max_bytes: int = MAX_EMBED_BYTES) -> Explorer:
    """A static :class:`Explorer` over ``frames`` ``(N, H, W, C)``; arguments as in :func:`explorer_html`."""
    page = explorer_html(frames, values, label=label, title=title, scale=scale, start=start, max_bytes=max_bytes)
    frames = np.asarray(frames)
    return Explorer(page, page.count("data:image/png;base64,") - 1, frames.shape[1:])


# --------------------------------------------------------------------------------------------------
# live (ipywidgets)


def live_explorer(frames: ArrayLike, values: Sequence[float | str] | np.ndarray | None = None, *, label: str = "frame",
                  title: str | None = None, scale: int = 4, start: int = 0,
                  max_bytes: int = MAX_EMBED_BYTES) -> ipywidgets.VBox:
    """An ipywidgets slider explorer for a live kernel; arguments as in :func:`explorer_html`.

    Returns an ``ipywidgets.VBox`` (title, image, ``IntSlider`` and the current value). Needs the
    ``ipywidgets`` package (``pip install "vae-book[widgets]"``). ``max_bytes`` is accepted for
    symmetry with the static explorer and ignored: nothing is embedded in a page.
    """
    frames, texts, label, title, scale, start, _ = _check_explorer(
        frames, values, label, title, scale, start, max_bytes)
    n, h, w, _ = frames.shape
    try:
        import ipywidgets as widgets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('live explorers need ipywidgets: pip install "vae-book[widgets]"') from exc

    uris = [png_data_uri(f) for f in frames]

    cw, ch, style = _img_style(w, h, scale, None)

    def img_html(i: int) -> str:
        return (f'<img src="{uris[i]}" width="{cw}" height="{ch}" alt="{_html.escape(label)} = '
                f'{_html.escape(texts[i])}" style="{style}">')

    image = widgets.HTML(img_html(start))
    slider = widgets.IntSlider(value=int(start), min=0, max=n - 1, step=1, description=label, readout=False,
                               continuous_update=True)
    value = widgets.Label(texts[start])

    def on_change(change):
        i = int(change["new"])
        image.value = img_html(i)
        value.value = texts[i]

    slider.observe(on_change, names="value")
    children = ([widgets.HTML(f"<b>{_html.escape(title)}</b>")] if title else []) + [
        image, widgets.HBox([slider, value])]
    return widgets.VBox(children)


def _ipywidgets_or_warn() -> bool:
    """Whether ipywidgets can be imported; if not, warn (at the caller's caller) how to get the live explorer."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        warnings.warn('ipywidgets is not installed, so this is the static explorer; for the live one: '
                      'pip install "vae-book[widgets]"', stacklevel=3)
        return False
    return True


def show(frames: ArrayLike, values: Sequence[float | str] | np.ndarray | None = None, *, label: str = "frame",
         title: str | None = None, scale: int = 4, start: int = 0, max_bytes: int = MAX_EMBED_BYTES,
         live_factory: Callable[..., Any] | None = None) -> Explorer | ipywidgets.VBox | Any:
    """The explorer that suits where the code runs: static HTML on the website, a widget in a kernel.

    Returns :func:`image_explorer` (an :class:`Explorer`) when :func:`is_static` is true (the book
    build sets ``VAE_BOOK_STATIC=1``), otherwise ``live_factory(frames, values, label=..., title=...,
    scale=..., start=..., max_bytes=...)`` — by default :func:`live_explorer`. Arguments as in
    :func:`explorer_html`; make it the last expression of a cell so Jupyter displays it.

    Without ``ipywidgets`` (a plain ``pip install vae-book``) the default falls back to the static
    explorer, which works in any notebook front end, and warns how to get the live one.
    """
    kwargs = dict(label=label, title=title, scale=scale, start=start, max_bytes=max_bytes)
    if is_static():
        return image_explorer(frames, values, **kwargs)
    if live_factory is None:
        if not _ipywidgets_or_warn():
            return image_explorer(frames, values, **kwargs)
        live_factory = live_explorer
    if not callable(live_factory):
        raise ValueError(f"`live_factory` must be callable, got {type(live_factory).__name__}.")
    return live_factory(frames, values, **kwargs)


# --------------------------------------------------------------------------------------------------
# explorers that compute: render(value, ...) -> frame


_MAX_AXES = 2


def _check_params(params) -> list[tuple[str, list, list[str]]]:
    """``[(label, values, texts)]`` of the explorer's one or two sliders."""
    if not isinstance(params, dict) or not 1 <= len(params) <= _MAX_AXES:
        raise ValueError(f"`params` must be a dict of 1 or {_MAX_AXES} slider labels to their values, e.g. "
                         f"{{'sigma': [0.5, 1, 2]}}, got {type(params).__name__} {params!r:.100}.")
    out = []
    for label, values in params.items():
        _check_text(label, "params' label", allow_none=False)
        if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
            raise ValueError(f"`params[{label!r}]` must be a sequence of numbers or strings, "
                             f"got {type(values).__name__}.")
        values = np.asarray(values).tolist() if isinstance(values, np.ndarray) else list(values)
        if len(values) < 2:
            raise ValueError(f"`params[{label!r}]` must hold at least 2 values (a slider), got {len(values)}.")
        out.append((label, values, _check_values(values, len(values), f"params[{label!r}]")))
    return out


def _check_start(start, axes) -> tuple[int, ...]:
    if start is None:
        return tuple(len(values) // 2 for _, values, _ in axes)
    start = (start,) if isinstance(start, (int, np.integer)) and not isinstance(start, bool) else start
    ok = (isinstance(start, tuple) and len(start) == len(axes)
          and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < len(values)
                  for i, (_, values, _) in zip(start, axes)))
    if not ok:
        raise ValueError(f"`start` must be None (the middle) or a tuple of one index per slider, each within "
                         f"its values ({[len(v) for _, v, _ in axes]} values), got {start!r}.")
    return tuple(int(i) for i in start)


def _render_frame(render, args, shape=None) -> np.ndarray:
    frame = render(*args)
    try:
        frame = _check_frames(np.asarray(frame)[None], "render(...)")[0]
    except ValueError as exc:
        raise ValueError(f"`render{tuple(args)!r}` must return one image (H, W, C) with values in [0, 1] and "
                         f"C = 1 or 3 (plotting.figure_image turns a figure into one): {exc}") from None
    if shape is not None and frame.shape != shape:
        raise ValueError(f"`render` must return frames of one shape, {shape} as its first, "
                         f"got {frame.shape} for {tuple(args)!r}.")
    return frame


class _LiveExplorer:
    """The ipywidgets form of :func:`explore`: each slider move calls ``render`` (results cached)."""

    def __init__(self, render, axes, title, start, scale, width):
        import ipywidgets as widgets

        self.render, self.axes, self.calls = render, axes, 0
        self._cache: dict[tuple[int, ...], str] = {}
        self.sliders = [widgets.IntSlider(value=i, min=0, max=len(values) - 1, step=1, description=label,
                                          readout=False, continuous_update=False)
                        for (label, values, _), i in zip(axes, start)]
        self.outputs = [widgets.Label(texts[i]) for (_, _, texts), i in zip(axes, start)]
        self._scale, self._width = scale, width
        self.image = widgets.HTML(self._img_html(start))
        for s in self.sliders:
            s.observe(self._on_change, names="value")
        rows = [widgets.HBox([s, o]) for s, o in zip(self.sliders, self.outputs)]
        self.widget = widgets.VBox(([widgets.HTML(f"<b>{_html.escape(title)}</b>")] if title else [])
                                   + [self.image] + rows)

    def _img_html(self, index: tuple[int, ...]) -> str:
        if index not in self._cache:
            frame = _render_frame(self.render, [values[i] for (_, values, _), i in zip(self.axes, index)])
            self.calls += 1
            h, w = frame.shape[:2]
            cw, ch, style = _img_style(w, h, self._scale, self._width)
            desc = ", ".join(f"{label} = {texts[i]}" for (label, _, texts), i in zip(self.axes, index))
            uri = png_data_uri(frame, colors=None if self._width is None else 256)
            self._cache[index] = (f'<img src="{uri}" width="{cw}" height="{ch}" '
                                  f'alt="{_html.escape(desc)}" style="{style}">')
        return self._cache[index]

    def _on_change(self, change) -> None:
        index = tuple(int(s.value) for s in self.sliders)
        for out, (_, _, texts), i in zip(self.outputs, self.axes, index):
            out.value = texts[i]
        self.image.value = self._img_html(index)


def explore(render: Callable[..., ArrayLike], params: dict[str, Sequence[float | str] | np.ndarray], *,
            title: str | None = None, scale: int = 4, width: int | None = None,
            start: int | tuple[int, ...] | None = None, max_bytes: int = MAX_EMBED_BYTES,
            live: bool | None = None) -> Explorer | ipywidgets.VBox:
    """An explorer that *computes* its frames: ``render(v1[, v2])`` draws the frame for slider values.

    Args:
        render: called with one value per slider (in the order of ``params``); returns one image
            ``(H, W, C)`` in [0, 1], ``C`` = 1 or 3, the same shape every time — a decoded image, or a
            matplotlib figure turned into pixels by :func:`vae_book.plotting.figure_image`.
        params: ``{slider label: values}``, one or two sliders, each with at least 2 values (numbers
            or strings, shown next to the slider).
        title: optional caption above the image.
        scale: integer magnification of pixel images (drawn pixelated), as in :func:`explorer_html`.
        width: show each frame this many CSS pixels wide instead (smoothly scaled, and never wider than
            its column): for a figure rendered at twice its size, so it is sharp on high-DPI screens.
            Such frames are stored with a palette of 256 colours (:func:`png_bytes`), which keeps a
            figure's flat colours at a third of the bytes.
        start: the initial index of each slider (an int for one slider, a tuple for two); default the
            middle value of each.
        max_bytes: budget for the PNG data of the static form; a static explorer over more is refused
            (a grid of two sliders cannot be thinned evenly): pass fewer values or smaller frames.
        live: ``None`` (default) — static HTML when :func:`is_static` (the book build) or without
            ipywidgets, else live; ``True``/``False`` force the form.

    Returns:
        Static: an :class:`Explorer` with every combination's frame computed now and embedded, and one
        ``<input type="range">`` per slider; it needs no kernel. Live: an ``ipywidgets.VBox`` whose
        sliders call ``render`` when moved (each combination once; moved frames are cached), so a
        kernel computes only what the reader looks at.
    """
    if not callable(render):
        raise ValueError(f"`render` must be callable (slider values -> image), got {type(render).__name__}.")
    axes = _check_params(params)
    title = _check_text(title, "title")
    scale = _check_scale(scale)
    if width is not None:
        width = check_positive_int(width, "width")
    max_bytes = check_positive_int(max_bytes, "max_bytes")
    start = _check_start(start, axes)
    if live is not None and not isinstance(live, bool):
        raise ValueError(f"`live` must be None, True or False, got {live!r}.")
    if live is None:
        live = not is_static() and _ipywidgets_or_warn()
    if live:
        return _LiveExplorer(render, axes, title, start, scale, width).widget
    import itertools

    frames, shape = [], None
    for combo in itertools.product(*[values for _, values, _ in axes]):
        frames.append(_render_frame(render, combo, shape))
        shape = frames[0].shape
    uris = [png_data_uri(f, colors=None if width is None else 256) for f in frames]
    total = sum(len(u) for u in uris)
    if total > max_bytes:
        raise ValueError(f"`max_bytes` must hold the embedded frames: they take {total / 1e6:.2f} MB, more than "
                         f"the {max_bytes / 1e6:.2f} MB got; pass fewer values, smaller frames or a larger max_bytes.")
    page = _explorer_page(uris, [(label, texts, i) for (label, _, texts), i in zip(axes, start)], title,
                          shape[:2], scale, width)
    return Explorer(page, len(uris), shape)
