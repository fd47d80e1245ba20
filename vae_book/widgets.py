"""Interactive image explorers: a slider that steps through precomputed frames.

The same call works in two places:

* On the **static website** (the book build sets ``VAE_BOOK_STATIC=1``) :func:`show` returns an
  :class:`Explorer`: self-contained HTML — the frames embedded as PNG ``data:`` URIs, a native
  ``<input type="range">`` slider (keyboard accessible: arrow keys, Home/End, PageUp/PageDown) and a
  few lines of inline JavaScript that use no library and load nothing from the network. It needs no
  running kernel.
* In a **live kernel** (JupyterLab) :func:`show` returns an ipywidgets slider built by
  :func:`live_explorer` (the ``ipywidgets`` package, extra ``vae-book[widgets]``).

Frames are always precomputed, so the reader of the website sees exactly what the learner sees in
JupyterLab. This module takes plain arrays only and never imports models: compute the frames with
:mod:`vae_book.latent` (:func:`~vae_book.latent.traverse`, :func:`~vae_book.latent.lerp`,
:func:`~vae_book.latent.decode_mean`) and pass them in. Typical use, a latent traversal::

    values = np.linspace(-3, 3, 13)
    frames = latent.traverse(lambda z: latent.decode_mean(model, z), z0, [0], values)[0]
    show(frames, values, label="z[0]", title="Traversal of the first latent")

Shapes: ``frames`` is ``(N, H, W, C)`` float in [0, 1] with ``C`` = 1 (grey) or 3 (RGB) — one frame
per slider position; build multi-image frames with :func:`vae_book.plotting.image_grid`.
``values`` is ``N`` numbers or strings shown next to the slider.
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


def png_bytes(image: ArrayLike) -> bytes:
    """Encode one image ``(H, W, C)`` with values in [0, 1], ``C`` = 1 or 3, as PNG bytes.

    Values are mapped to 8 bits by ``round(255 * x)``; a grey image becomes an 8-bit grey PNG.
    """
    image = as_float_images(check_images(image, "image", batched=False))
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] not in (1, 3):
        raise ValueError(f"`image` must have 1 or 3 channels (H, W, C), got an array of shape {image.shape}.")
    from PIL import Image

    pixels = _to_uint8(image)
    pil = Image.fromarray(pixels[..., 0], mode="L") if pixels.shape[-1] == 1 else Image.fromarray(pixels, mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_data_uri(image: ArrayLike) -> str:
    """``data:image/png;base64,...`` URI of one image ``(H, W, C)`` in [0, 1] (see :func:`png_bytes`)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


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
  var frames = %(frames)s, texts = %(texts)s, label = %(label)s, title = %(title)s;
  var slider = document.getElementById(%(sid)s), img = document.getElementById(%(iid)s),
      out = document.getElementById(%(oid)s);
  if (!slider || !img || !out) { return; }
  function update() {
    var i = Math.max(0, Math.min(frames.length - 1, parseInt(slider.value, 10) || 0));
    img.src = frames[i];
    out.textContent = texts[i];
    var desc = label + " = " + texts[i];
    slider.setAttribute("aria-valuetext", desc);
    img.alt = (title ? title + ": " : "") + desc;
  }
  slider.addEventListener("input", update);
  slider.addEventListener("change", update);
  update();
})();"""


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
    uid = "vbx-" + uuid.uuid4().hex
    sid, iid, oid = f"{uid}-slider", f"{uid}-img", f"{uid}-value"
    esc = _html.escape
    desc = f"{label} = {shown[start]}"
    alt = (f"{title}: " if title else "") + desc
    parts = [
        f'<div class="vae-book-explorer" id="{uid}" '
        'style="display:inline-block;margin:0.5em 0;padding:0.5em;border:1px solid #ccc;border-radius:4px;">',
    ]
    if title:
        parts.append(f'<div class="vae-book-explorer-title" style="font-weight:600;margin-bottom:0.3em;">'
                     f'{esc(title)}</div>')
    parts.append(
        f'<img id="{iid}" src="{uris[start]}" width="{w * scale}" height="{h * scale}" alt="{esc(alt)}" '
        f'style="display:block;width:{w * scale}px;height:{h * scale}px;max-width:none;'
        'image-rendering:crisp-edges;image-rendering:pixelated;">'
    )
    parts.append(
        '<div style="display:flex;align-items:center;gap:0.5em;margin-top:0.4em;">'
        f'<label for="{sid}">{esc(label)}</label>'
        f'<input type="range" id="{sid}" min="0" max="{len(uris) - 1}" step="1" value="{start}" '
        f'aria-valuetext="{esc(desc)}" style="flex:1;min-width:8em;">'
        f'<output id="{oid}" for="{sid}" aria-live="polite" style="min-width:4em;font-family:monospace;">'
        f'{esc(shown[start])}</output></div>'
    )
    parts.append("</div>")
    js = _JS % {
        "frames": _json_for_script(uris), "texts": _json_for_script(shown),
        "label": _json_for_script(label), "title": _json_for_script(title or ""),
        "sid": _json_for_script(sid), "iid": _json_for_script(iid), "oid": _json_for_script(oid),
    }
    parts.append(f"<script>\n{js}\n</script>")
    return "\n".join(parts)


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

    def img_html(i: int) -> str:
        return (f'<img src="{uris[i]}" width="{w * scale}" height="{h * scale}" alt="{_html.escape(label)} = '
                f'{_html.escape(texts[i])}" style="width:{w * scale}px;height:{h * scale}px;'
                'image-rendering:crisp-edges;image-rendering:pixelated;">')

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
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            warnings.warn('ipywidgets is not installed, so this is the static explorer; for the live one: '
                          'pip install "vae-book[widgets]"', stacklevel=2)
            return image_explorer(frames, values, **kwargs)
        live_factory = live_explorer
    if not callable(live_factory):
        raise ValueError(f"`live_factory` must be callable, got {type(live_factory).__name__}.")
    return live_factory(frames, values, **kwargs)
