"""Input validation shared by every public function.

Each check raises :class:`ValueError` whose message names the argument, says what was expected and
what was received, so a wrong call fails at the boundary instead of deep inside JAX. Checks of
*values* (range, finiteness) run only on concrete arrays; inside ``jax.jit`` the arrays are tracers
and only shapes and dtypes are checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "check_array",
    "check_images",
    "as_float_images",
    "check_key",
    "check_positive_int",
    "check_number",
    "check_callable",
    "check_module",
    "check_path",
    "check_seed",
    "check_broadcastable",
    "is_concrete",
]


def is_concrete(x: object) -> bool:
    """True if ``x`` holds values (a NumPy/JAX array outside a trace), False for a tracer."""
    return not isinstance(x, jax.core.Tracer)


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None:
        return f"{type(x).__name__} {x!r}"[:120]
    return f"array of shape {tuple(shape)} and dtype {dtype}"


def check_array(
    x: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    floating: bool = True,
    finite: bool = False,
    value_range: tuple[float, float] | None = None,
) -> jax.Array | np.ndarray:
    """Return ``x`` as an array after checking rank, shape and dtype.

    ``shape`` may hold ``None`` for "any size" along an axis. ``floating`` requires a floating dtype
    (Python floats and ints are converted to float32 first). ``finite`` additionally rejects NaN/Inf
    when the values are concrete; ``value_range=(lo, hi)`` rejects NaN and values outside
    ``[lo, hi]`` (tolerance 1e-6), also only on concrete values.
    """
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = jnp.asarray(x, dtype=jnp.float32)
    if isinstance(x, (list, tuple)):
        x = np.asarray(x, dtype=np.float32 if floating else None)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"`{name}` must be an array, got {_describe(x)}.")
    if floating and not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"`{name}` must have a floating dtype (e.g. float32), got {_describe(x)}. "
            f"Convert it with `.astype('float32')`."
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"`{name}` must have rank {want}, got {_describe(x)}.")
    if shape is not None:
        shape = tuple(shape)
        ok = len(shape) == x.ndim and all(s is None or s == d for s, d in zip(shape, x.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"`{name}` must have shape {want}, got {_describe(x)}.")
    if finite and is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"`{name}` must be finite, got an {_describe(x)} holding NaN or Inf.")
    if value_range is not None:
        _check_range(x, name, value_range)
    return x


def _check_range(x, name: str, value_range: tuple[float, float]) -> None:
    if not is_concrete(x) or not x.size:
        return
    lo, hi = value_range
    values = np.asarray(x)  # NumPy: works inside a trace on arrays captured as constants
    xmin, xmax = float(values.min()), float(values.max())
    if not (np.isfinite(xmin) and np.isfinite(xmax)):
        raise ValueError(f"`{name}` must have finite values in [{lo}, {hi}], got an {_describe(x)} "
                         f"holding NaN or Inf.")
    if xmin < lo - 1e-6 or xmax > hi + 1e-6:
        hint = " Did you forget to divide by 255?" if xmax > 1.5 and hi == 1.0 else ""
        raise ValueError(
            f"`{name}` must have values in [{lo}, {hi}], got values in [{xmin:.4g}, {xmax:.4g}].{hint}"
        )


def check_images(
    x: object,
    name: str = "x",
    *,
    image_shape: Sequence[int | None] | None = None,
    value_range: tuple[float, float] | None = (0.0, 1.0),
    batched: bool = True,
) -> jax.Array | np.ndarray:
    """Check a batch of images: rank 4 NHWC, floating (or uint8), values inside ``value_range``.

    ``image_shape`` is ``(H, W, C)`` (entries may be ``None``). The range is checked only on concrete
    arrays, with a tolerance of 1e-6.

    A ``uint8`` array is accepted too, as 8-bit images whose value ``v`` means ``v / 255``: every value
    0..255 is in range, so its values are not read (a memory-mapped file stays on disk). It is
    returned as it came, uint8; :func:`as_float_images` gives the float32 images in [0, 1]. Float
    inputs are checked exactly as before.
    """
    want_rank = 4 if batched else 3
    is_uint8 = getattr(x, "dtype", None) == np.uint8
    x = check_array(x, name, floating=not is_uint8)
    if x.ndim != want_rank:
        layout = "(batch, height, width, channels)" if batched else "(height, width, channels)"
        hint = ""
        if batched and x.ndim == 3:
            hint = " For a single image add a batch axis: `x[None]`."
        if batched and x.ndim == 2:
            hint = " Flat vectors must be reshaped to images, e.g. `x.reshape(-1, 28, 28, 1)`."
        raise ValueError(f"`{name}` must be images of layout {layout} (NHWC), got {_describe(x)}.{hint}")
    if image_shape is not None:
        got = tuple(x.shape[-3:])
        if any(s is not None and s != g for s, g in zip(image_shape, got)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in image_shape) + ")"
            raise ValueError(
                f"`{name}` must have images of shape (H, W, C) = {want}, got {_describe(x)}."
            )
    if value_range is not None and not is_uint8:
        _check_range(x, name, value_range)
    return x


def as_float_images(x: jax.Array | np.ndarray) -> jax.Array | np.ndarray:
    """Images as floats: a ``uint8`` array (NumPy or JAX, also traced) becomes float32 ``x / 255`` in
    [0, 1]; any other array is returned unchanged. Shapes are kept."""
    if getattr(x, "dtype", None) != np.uint8:
        return x
    if isinstance(x, np.ndarray):
        return np.asarray(x, dtype=np.float32) / np.float32(255.0)
    return jnp.asarray(x, dtype=jnp.float32) / jnp.float32(255.0)


def check_key(key: object, name: str = "key") -> jax.Array:
    """Check that ``key`` is a JAX PRNG key (new-style typed key or legacy uint32[2])."""
    if not hasattr(key, "dtype"):
        raise ValueError(
            f"`{name}` must be a JAX random key such as `jax.random.key(0)`, got {_describe(key)}."
        )
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return key
    raise ValueError(
        f"`{name}` must be a JAX random key such as `jax.random.key(0)`, got {_describe(key)}."
    )


def check_positive_int(n: object, name: str, *, allow_none: bool = False) -> int | None:
    """Check that ``n`` is a positive Python/NumPy integer (or None if allowed)."""
    if n is None and allow_none:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {n!r}.")
    return int(n)


def check_number(x: object, name: str, *, minimum: float | None = None, strict: bool = False,
                 below: float | None = None, allow_none: bool = False) -> float | None:
    """Check that ``x`` is a finite real number (Python, NumPy or 0-d JAX), ``>= minimum`` (``>`` if
    ``strict``) and ``< below``; return it as a Python float (``None`` passes when ``allow_none``)."""
    if x is None and allow_none:
        return None
    shape = getattr(x, "shape", None)
    is_real = isinstance(x, (int, float, np.integer, np.floating)) or (
        shape == () and jnp.issubdtype(getattr(x, "dtype", None), jnp.number)
        and not jnp.issubdtype(x.dtype, jnp.complexfloating))
    if isinstance(x, (bool, np.bool_)) or not is_real or not is_concrete(x):
        want = "a real number or None" if allow_none else "a real number"
        raise ValueError(f"`{name}` must be {want}, got {_describe(x)}.")
    value = float(x)
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"`{name}` must be {relation} {minimum:g}, got {value!r}.")
    if below is not None and value >= below:
        raise ValueError(f"`{name}` must be < {below:g}, got {value!r}.")
    return value


def check_callable(f: object, name: str) -> Callable[..., Any]:
    """Check that ``f`` is callable (a function, a bound method, a ``functools.partial``)."""
    if not callable(f):
        raise ValueError(f"`{name}` must be a function, got {_describe(f)}.")
    return f


def check_module(model: object, name: str = "model", *, methods: Sequence[str] = ()) -> nnx.Module:
    """Check that ``model`` is a Flax NNX module with the methods ``methods`` (e.g. ``("encode",)``)."""

    missing = [m for m in methods if not callable(getattr(model, m, None))]
    if not isinstance(model, nnx.Module) or missing:
        want = "a Flax NNX model" + (f" with {', '.join(f'`{m}`' for m in methods)}" if methods else "")
        raise ValueError(f"`{name}` must be {want}, got {_describe(model)}.")
    return model


def check_path(path: object, name: str = "path") -> Path:
    """Check that ``path`` is a non-empty ``str`` or ``os.PathLike``; return it as a ``Path``."""

    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`{name}` must be a file path (a non-empty str or Path), got {_describe(path)}.")
    return Path(path)


def check_broadcastable(names_and_arrays: dict[str, object]) -> tuple[int, ...]:
    """Check that the arrays broadcast together; name them all in the error if they do not."""
    shapes = {k: tuple(getattr(v, "shape", ())) for k, v in names_and_arrays.items()}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        desc = ", ".join(f"`{k}` {s}" for k, s in shapes.items())
        raise ValueError(f"these arguments must have broadcast-compatible shapes, got {desc}.") from None


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an ``int``; a ``ValueError`` naming ``name`` unless it is a non-negative integer.

    Booleans are refused (``True`` is an ``int`` to Python, but never a meant seed).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {seed!r}.")
    return int(seed)
