r"""Exploring a latent space: interpolation paths, single-dimension traversals, and the true factors.

* :func:`encode`, :func:`decode_mean` — a model's posterior parameters for many images and its
  decoded images for many codes, in jitted batches, as NumPy arrays.
* :func:`lerp`, :func:`slerp` — straight and spherical paths between two codes. :func:`slerp` moves
  the *direction* along the great circle between the two directions and the *norm* linearly
  between the two norms, so a path between two codes of the typical norm
  :math:`\lVert z\rVert\approx\sqrt d` of :math:`\mathcal N(0, I_d)` stays at that norm; it handles
  parallel, antipodal and zero codes.
* :func:`latent_activity` — per-dimension KL, posterior variance and variance of the posterior
  mean over a data set, to find the dimensions a VAE actually uses.
* :func:`traverse` — decode a base code with one dimension swept over a range of values.
* :func:`factor_targets`, :func:`factor_correlations`, :func:`linear_probe_r2` — relate latent
  dimensions to known generating factors (e.g. of the ``shapes`` data set), with circular factors
  encoded as :math:`(\cos, \sin)` of their angle and undefined values masked out.

Codes are NumPy/JAX arrays of shape ``(..., d)``; apart from :func:`encode` and :func:`decode_mean`
everything here computes in float64 NumPy and returns float32 codes (what a decoder takes) or
float64 statistics.

Longer than 400 lines because the factor probes need their
target encoding (circular and categorical factors, masks) and the paths need their special cases
(parallel, antipodal, zero codes), each documented where it is handled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from vae_book import distributions as D
from vae_book._checks import check_array, check_number, check_positive_int
from vae_book.data import batch_slices


@nnx.jit
def _encode(model, x):
    return model.encode(x)


@nnx.jit
def _decode_mean(model, z):
    return model.mean_image(model.decode(z))


def _batched(fn, model, arrays, batch_size):
    """Apply ``fn(model, batch)`` over the batches of :func:`vae_book.data.batch_slices`, the last one
    padded to full size (so the jitted function compiles once); returns the concatenated NumPy outputs."""
    n = arrays.shape[0]
    outs = []
    for sl in batch_slices(n, batch_size):
        chunk = arrays[sl]
        m = chunk.shape[0]
        if m < batch_size and n > batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - m, axis=0)])
        out = fn(model, jnp.asarray(chunk))
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:m], out))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)


def encode(model: nnx.Module, images: ArrayLike, *, batch_size: int = 250) -> tuple[np.ndarray, np.ndarray]:
    r"""Posterior parameters of :math:`q_\phi(z\mid x)` for many images, in jitted batches.

    Args:
        model: a VAE (``encode`` maps images to ``(mean, log_std)``).
        images: ``(N, H, W, C)`` in [0, 1].
        batch_size: images per call.

    Returns:
        ``(mean, log_std)``: NumPy float32 arrays ``(N, z_dim)``.
    """
    images = np.asarray(model.check_input(images, "images"), np.float32)
    batch_size = check_positive_int(batch_size, "batch_size")
    mean, log_std = _batched(_encode, model, images, batch_size)
    return mean, log_std


def decode_mean(model: nnx.Module, z: ArrayLike, *, batch_size: int = 250) -> np.ndarray:
    r"""The mean of :math:`p_\theta(x\mid z)` as images in [0, 1] for codes ``z`` ``(M, z_dim)``, in jitted batches.

    Returns:
        NumPy float32 ``(M, H, W, C)``.
    """
    z = np.asarray(model.check_code(check_array(z, "z", ndim=2, finite=True)), np.float32)
    batch_size = check_positive_int(batch_size, "batch_size")
    return _batched(_decode_mean, model, z, batch_size)


def _codes_pair(z0, z1):
    a = np.asarray(check_array(z0, "z0", finite=True), np.float64)
    b = np.asarray(check_array(z1, "z1", finite=True), np.float64)
    if a.ndim < 1:
        raise ValueError("`z0` must be a code of shape (d,) or codes (..., d), got a scalar.")
    if a.shape != b.shape:
        raise ValueError(f"`z0` and `z1` must have the same shape, got {a.shape} and {b.shape}.")
    return a, b


def _times(t):
    arr = np.asarray(check_array(t, "t", ndim=(0, 1), finite=True), np.float64)
    return arr


def lerp(z0: ArrayLike, z1: ArrayLike, t: ArrayLike) -> np.ndarray:
    r"""Linear interpolation :math:`z(t) = (1 - t)\,z_0 + t\,z_1`.

    Args:
        z0, z1: codes of the same shape ``(..., d)``.
        t: a number or a 1-D array ``(T,)`` of times (0 gives ``z0``, 1 gives ``z1``; values outside
            [0, 1] extrapolate).

    Returns:
        float32 codes: ``(..., d)`` for a scalar ``t``, else ``(T, ..., d)``.
    """
    a, b = _codes_pair(z0, z1)
    ts = _times(t)
    tt = ts.reshape(ts.shape + (1,) * a.ndim)
    out = (1.0 - tt) * a + tt * b
    return out.astype(np.float32)


def slerp(z0: ArrayLike, z1: ArrayLike, t: ArrayLike, *, eps: float = 1e-9) -> np.ndarray:
    r"""Spherical interpolation: great-circle path of the direction, linear path of the norm.

    Write :math:`z_i = r_i u_i` with :math:`r_i = \lVert z_i\rVert` and unit :math:`u_i`, and let
    :math:`\Omega = \angle(u_0, u_1)`. Then

    .. math::
        z(t) = \big((1-t)\,r_0 + t\,r_1\big)\;
               \frac{\sin((1-t)\Omega)\,u_0 + \sin(t\Omega)\,u_1}{\sin\Omega},

    whose direction turns at constant angular speed from :math:`u_0` to :math:`u_1` and whose norm is
    *exactly* :math:`(1-t)r_0 + t r_1` — constant when :math:`r_0 = r_1`, in which case this is
    Shoemake's slerp :math:`\frac{\sin((1-t)\Omega)}{\sin\Omega}z_0 + \frac{\sin(t\Omega)}{\sin\Omega}z_1`
    (White 2016). It is computed in the equivalent, numerically stable form
    :math:`\cos(t\Omega)\,u_0 + \sin(t\Omega)\,v` with :math:`v` the unit vector along the part of
    :math:`u_1` orthogonal to :math:`u_0`, and :math:`\Omega` from ``atan2`` (accurate near 0 and pi,
    where ``arccos`` is not). Special cases, decided per pair of codes, when :math:`\sin\Omega < \varepsilon`:

    * **parallel** (:math:`u_0 = u_1`): the direction stays put and only the norm moves;
    * **antipodal** (:math:`u_1 = -u_0`): every great circle through :math:`u_0` and :math:`-u_0` is
      as short as any other; the path turns through the coordinate axis least aligned with
      :math:`u_0` (made orthogonal to it), a deterministic choice;
    * **a zero code**: its direction is taken from the other code (the path is then the straight
      line, which is also the limit); two zero codes give zeros.

    Args:
        z0, z1: codes of the same shape ``(..., d)``; ``d >= 2`` if some pair is antipodal.
        t: a number or a 1-D array ``(T,)`` of times; 0 gives ``z0``, 1 gives ``z1``.
        eps: threshold on :math:`\sin\Omega` below which a pair counts as parallel or antipodal.

    Returns:
        float32 codes: ``(..., d)`` for a scalar ``t``, else ``(T, ..., d)``.
    """
    a, b = _codes_pair(z0, z1)
    ts = _times(t)
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and 0 < eps < 1e-2):
        raise ValueError(f"`eps` must be a small positive number (below 1e-2), got {eps!r}.")
    d = a.shape[-1]
    r0 = np.linalg.norm(a, axis=-1, keepdims=True)  # (..., 1)
    r1 = np.linalg.norm(b, axis=-1, keepdims=True)
    tiny = np.finfo(np.float64).tiny
    u0 = a / np.maximum(r0, tiny)  # zero code -> zero vector
    u1 = b / np.maximum(r1, tiny)
    u0, u1 = np.where(r0 > tiny, u0, u1), np.where(r1 > tiny, u1, u0)  # a zero code borrows the other's direction
    cos = np.clip(np.sum(u0 * u1, axis=-1, keepdims=True), -1.0, 1.0)
    ortho = u1 - cos * u0  # the part of u1 orthogonal to u0; its norm is sin(Omega)
    sin = np.linalg.norm(ortho, axis=-1, keepdims=True)
    omega = np.arctan2(sin, cos)  # (..., 1) in [0, pi]
    degenerate = sin < eps
    parallel = degenerate & (cos >= 0)
    antipodal = degenerate & (cos < 0)
    if np.any(antipodal):
        if d < 2:
            raise ValueError("`z0` and `z1` are 1-D codes of opposite signs: no great circle joins them.")
        # a unit vector orthogonal to u0, from the coordinate axis least aligned with it
        idx = np.argmin(np.abs(u0), axis=-1)
        e = np.zeros_like(u0)
        np.put_along_axis(e, idx[..., None], 1.0, axis=-1)
        w = e - np.sum(e * u0, axis=-1, keepdims=True) * u0
        w = w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), tiny)
    else:
        w = np.zeros_like(u0)
    v = np.where(degenerate, w, ortho / np.maximum(sin, tiny))
    omega = np.where(parallel, 0.0, np.where(antipodal, np.pi, omega))

    tt = ts.reshape(ts.shape + (1,) * a.ndim)
    direction = np.cos(tt * omega) * u0 + np.sin(tt * omega) * v
    norm = (1.0 - tt) * r0 + tt * r1
    return (norm * direction).astype(np.float32)


#: Burda et al.'s (2016) threshold on :math:`\operatorname{Var}_x(\mathbb E_q[z_u])` above which a unit is active.
ACTIVE_THRESHOLD = 0.01


def latent_activity(mean: ArrayLike, log_std: ArrayLike, *,
                    threshold: float = ACTIVE_THRESHOLD) -> dict[str, np.ndarray]:
    r"""How much a VAE uses each latent dimension, from the posteriors of a data set.

    The one home of the per-dimension KL and the active-unit count: pass the output of
    :func:`encode` (one encoder pass over the data).

    Args:
        mean, log_std: posterior parameters ``(N, d)`` of :math:`q_\phi(z\mid x_n)` for N inputs.
        threshold: the variance of the posterior mean above which a unit counts as active.

    Returns:
        A dict of ``(d,)`` arrays (float64 unless said otherwise):

        * ``kl`` — :math:`\frac1N\sum_n \mathrm{KL}(q(z_j\mid x_n)\,\Vert\,\mathcal N(0,1))`, nats per
          input; the per-dimension terms sum to the average KL term of the ELBO (the rate);
        * ``posterior_var`` — average posterior variance :math:`\frac1N\sum_n\sigma_{nj}^2` (close to
          1 for an unused dimension, whose posterior is the prior);
        * ``mean_var`` — variance over the data of the posterior mean :math:`\mu_{nj}` (population
          variance), the "activity" of Burda et al. (close to 0 for an unused dimension);
        * ``active`` — bool, ``mean_var > threshold``; ``active.sum()`` is the number of active units;
        * ``order`` — dimension indices sorted by decreasing ``kl`` (an int array).
    """
    mu = np.asarray(check_array(mean, "mean", ndim=2, finite=True), np.float64)
    ls = np.asarray(check_array(log_std, "log_std", ndim=2, finite=True), np.float64)
    if mu.shape != ls.shape:
        raise ValueError(f"`mean` and `log_std` must have the same shape, got {mu.shape} and {ls.shape}.")
    if mu.shape[0] < 2:
        raise ValueError(f"`mean` needs at least 2 rows (inputs) to measure a variance, got {mu.shape[0]}.")
    threshold = check_number(threshold, "threshold", minimum=0.0, strict=True)
    with jax.enable_x64(True):  # the one KL formula, evaluated in float64 like the rest of the statistics
        kl_dim = np.asarray(D.kl_to_standard_normal(mu, ls), np.float64).mean(axis=0)
    mean_var = mu.var(axis=0)
    return {
        "kl": kl_dim,
        "posterior_var": np.exp(2 * ls).mean(axis=0),
        "mean_var": mean_var,
        "active": mean_var > threshold,
        "order": np.argsort(-kl_dim, kind="stable"),
    }


def traverse(decode: Callable[[np.ndarray], ArrayLike], z0: ArrayLike, dims: int | Sequence[int] | np.ndarray,
             values: ArrayLike) -> np.ndarray:
    """Decode ``z0`` with one dimension at a time swept over ``values``.

    Args:
        decode: maps codes ``(M, d)`` float32 to images ``(M, H, W, C)`` in [0, 1].
        z0: the base code ``(d,)``.
        dims: latent dimensions to sweep (ints in [0, d)).
        values: ``(T,)`` values each swept dimension is set to (the others stay at ``z0``).

    Returns:
        ``(len(dims), T, H, W, C)`` float32 images; ``[i, t]`` decodes ``z0`` with ``z0[dims[i]] = values[t]``.
        ``out[i]`` are the frames of a :func:`vae_book.widgets.show` explorer of dimension ``dims[i]``;
        for all dimensions at once, tile each ``out[:, t]`` with :func:`vae_book.plotting.image_grid`.
    """
    if not callable(decode):
        raise ValueError(f"`decode` must be a function from codes (M, d) to images, got {type(decode).__name__}.")
    base = np.asarray(check_array(z0, "z0", ndim=1, finite=True), np.float32)
    d = base.shape[0]
    vals = np.asarray(check_array(values, "values", ndim=1, finite=True), np.float32)
    if vals.size == 0:
        raise ValueError("`values` must hold at least one value, got an empty array.")
    dims = [int(i) for i in np.atleast_1d(np.asarray(dims))]
    if not dims or any(not 0 <= i < d for i in dims):
        raise ValueError(f"`dims` must be a non-empty list of dimensions in [0, {d}), got {dims}.")
    codes = np.repeat(base[None, None, :], len(dims), axis=0).repeat(len(vals), axis=1)  # (D, T, d)
    for i, dim in enumerate(dims):
        codes[i, :, dim] = vals
    images = np.asarray(decode(codes.reshape(-1, d)), np.float32)
    if images.ndim != 4 or images.shape[0] != codes.shape[0] * codes.shape[1]:
        raise ValueError(f"`decode` must return images (M, H, W, C) for M codes, got shape {images.shape}.")
    return images.reshape(len(dims), len(vals), *images.shape[1:])


def factor_targets(factors: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    r"""Regression targets for the generating factors of the ``shapes`` data set.

    A linear probe or a correlation needs each factor as numbers in which "close" means "similar
    image". Raw values do not always have that property:

    * ``shape`` is categorical: one-hot, three columns ``square``, ``circle``, ``triangle``;
    * ``hue`` is an angle with period 1 (hue 0.99 is next to hue 0.01): two columns
      :math:`\cos 2\pi h`, :math:`\sin 2\pi h`;
    * ``rotation`` :math:`\theta` of a shape with k-fold symmetry (square k=4, triangle k=3) draws
      the same image as :math:`\theta + 2\pi/k`, so the angle that matters is :math:`k\theta`: two
      columns :math:`\cos k\theta`, :math:`\sin k\theta`. A circle has no rotation: those rows are
      masked out;
    * ``scale``, ``pos_x``, ``pos_y`` are ordinary numbers: one column each.

    Args:
        factors: dict with the keys of :data:`vae_book.data.FACTOR_NAMES`, arrays of length N
            (``Dataset.train_factors`` / ``Dataset.test_factors``).

    Returns:
        dict factor name -> ``(targets (N, k) float64, mask (N,) bool, column names)``; ``mask``
        says for which inputs the factor is defined.
    """
    from vae_book.data import FACTOR_NAMES, SHAPE_NAMES, SHAPE_SYMMETRY

    if not isinstance(factors, Mapping):
        raise ValueError(f"`factors` must be a dict of factor arrays, got {type(factors).__name__}.")
    missing = [k for k in FACTOR_NAMES if k not in factors]
    if missing:
        raise ValueError(f"`factors` must have the keys {FACTOR_NAMES}, missing {missing}.")
    f = {k: np.asarray(factors[k]) for k in FACTOR_NAMES}
    n = len(f["shape"])
    for k, v in f.items():
        if v.shape != (n,):
            raise ValueError(f"`factors[{k!r}]` must have shape ({n},), got {v.shape}.")
    shape = f["shape"].astype(np.int64)
    if n and not np.isin(shape, np.arange(len(SHAPE_NAMES))).all():
        raise ValueError(f"`factors['shape']` must hold indices into {SHAPE_NAMES}, got {np.unique(shape)}.")
    everywhere = np.ones(n, bool)
    out = {"shape": (np.eye(len(SHAPE_NAMES))[shape], everywhere, list(SHAPE_NAMES))}
    hue_angle = 2 * np.pi * f["hue"].astype(np.float64)
    out["hue"] = (np.stack([np.cos(hue_angle), np.sin(hue_angle)], 1), everywhere, ["cos hue", "sin hue"])
    for name in ("scale", "pos_x", "pos_y"):
        out[name] = (f[name].astype(np.float64)[:, None], everywhere, [name])
    k = SHAPE_SYMMETRY[shape]
    rot_angle = k * f["rotation"].astype(np.float64)
    out["rotation"] = (np.stack([np.cos(rot_angle), np.sin(rot_angle)], 1), k > 1,
                       ["cos k·rot", "sin k·rot"])
    return out


def _check_targets(targets, n: int, name: str):
    if not isinstance(targets, Mapping) or not targets:
        raise ValueError(f"`{name}` must be the non-empty dict returned by factor_targets.")
    for key, value in targets.items():
        if not (isinstance(value, tuple) and len(value) == 3):
            raise ValueError(f"`{name}[{key!r}]` must be a (targets, mask, column names) tuple.")
        y, mask, cols = value
        if np.ndim(y) != 2 or np.shape(y)[0] != n or np.shape(mask) != (n,) or len(cols) != np.shape(y)[1]:
            raise ValueError(
                f"`{name}[{key!r}]` must hold targets ({n}, k), a mask ({n},) and k column names, got "
                f"{np.shape(y)}, {np.shape(mask)}, {len(cols)} names."
            )


def factor_correlations(codes: ArrayLike, targets: Mapping[str, tuple[np.ndarray, np.ndarray, list[str]]]
                        ) -> tuple[np.ndarray, list[str]]:
    """Pearson correlation of every latent dimension with every target column.

    Args:
        codes: ``(N, d)`` latent codes (e.g. posterior means of held-out images).
        targets: the dict of :func:`factor_targets` for the same N inputs; each column is
            correlated over the inputs where its factor is defined.

    Returns:
        ``(corr, names)``: ``corr`` is ``(columns, d)`` float64 in [-1, 1] (0 where a column or
        dimension is constant), ``names`` the column names, in the order of ``targets``.
    """
    z = np.asarray(check_array(codes, "codes", ndim=2, finite=True), np.float64)
    _check_targets(targets, z.shape[0], "targets")
    rows, names = [], []
    for y, mask, cols in targets.values():
        zm = z[np.asarray(mask, bool)]
        zc = zm - zm.mean(0)
        zs = np.sqrt(np.sum(zc**2, 0))
        for j, col in enumerate(cols):
            yc = np.asarray(y, np.float64)[np.asarray(mask, bool), j]
            yc = yc - yc.mean()
            ys = np.sqrt(np.sum(yc**2))
            denom = zs * ys
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where(denom > 0, (yc @ zc) / np.where(denom > 0, denom, 1.0), 0.0)
            rows.append(np.clip(r, -1.0, 1.0))
            names.append(col)
    return np.stack(rows), names


def _design(z):
    return np.concatenate([z, np.ones((z.shape[0], 1))], axis=1)


def linear_probe_r2(train_codes: ArrayLike, train_targets: Mapping[str, tuple[np.ndarray, np.ndarray, list[str]]],
                    test_codes: ArrayLike, test_targets: Mapping[str, tuple[np.ndarray, np.ndarray, list[str]]],
                    *, ridge: float = 1e-3) -> dict[str, float]:
    r"""How much of each factor a linear function of the code explains, on held-out codes.

    For every factor fit :math:`\hat y = W z + b` by ridge-regularised least squares on the
    ``train`` codes (where the factor is defined), predict the ``test`` codes, and report

    .. math::
        R^2 = 1 - \frac{\sum_n\sum_k (y_{nk} - \hat y_{nk})^2}{\sum_n\sum_k (y_{nk} - \bar y_k)^2},

    summed over the factor's columns (so a circular factor's :math:`(\cos, \sin)` pair counts as
    one factor), with :math:`\bar y` the mean of the held-out targets. :math:`R^2 = 1` is a
    perfect linear read-out; 0 is no better than predicting the mean; it can be negative on
    held-out data.

    Args:
        train_codes, test_codes: ``(N_train, d)``, ``(N_test, d)`` codes.
        train_targets, test_targets: dicts from :func:`factor_targets` for the same inputs.
        ridge: L2 penalty on ``W`` (not on ``b``), relative to the number of training codes.

    Returns:
        dict factor name -> held-out :math:`R^2` (float).
    """
    ztr = np.asarray(check_array(train_codes, "train_codes", ndim=2, finite=True), np.float64)
    zte = np.asarray(check_array(test_codes, "test_codes", ndim=2, finite=True), np.float64)
    if ztr.shape[1] != zte.shape[1]:
        raise ValueError(f"`train_codes` and `test_codes` must have the same width, got {ztr.shape} and {zte.shape}.")
    _check_targets(train_targets, ztr.shape[0], "train_targets")
    _check_targets(test_targets, zte.shape[0], "test_targets")
    if set(train_targets) != set(test_targets):
        raise ValueError("`train_targets` and `test_targets` must have the same factors.")
    ridge = check_number(ridge, "ridge", minimum=0.0)
    d = ztr.shape[1]
    out = {}
    for name, (ytr, mtr, _) in train_targets.items():
        yte, mte, _ = test_targets[name]
        mtr, mte = np.asarray(mtr, bool), np.asarray(mte, bool)
        a, y = _design(ztr[mtr]), np.asarray(ytr, np.float64)[mtr]
        if a.shape[0] < 2 or mte.sum() < 2:
            raise ValueError(f"factor {name!r} is defined for fewer than 2 train or test inputs.")
        penalty = ridge * a.shape[0] * np.eye(d + 1)
        penalty[-1, -1] = 0.0  # do not shrink the intercept
        coef = np.linalg.solve(a.T @ a + penalty, a.T @ y)
        yt = np.asarray(yte, np.float64)[mte]
        pred = _design(zte[mte]) @ coef
        ss_res = np.sum((yt - pred) ** 2)
        ss_tot = np.sum((yt - yt.mean(0)) ** 2)
        out[name] = float(1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")
    return out
