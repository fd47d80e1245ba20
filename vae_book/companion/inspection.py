r"""Looking inside the transformer VAE: its stages one by one, its parameter budget, its position code.

Chapter 7 walks through :class:`~vae_book.models.transformer.TransformerVAE` stage by stage. The
functions here add a one-line note to each of the model's **own named stages**
(``model.encoder_stages`` / ``model.decoder_stages``, the one forward pass that ``encode`` /
``decode`` also run), so the chapter can print shapes and plot what each stage produces; the tests
check that the last stages are ``model.encode`` / ``model.decode`` exactly.

* :func:`encoder_stages`, :func:`decoder_stages` — the intermediate arrays of one batch, as a list
  of :class:`Stage` (name, array, one-line description); :func:`format_stages` prints them as a table.
* :func:`parameter_formula` — the trainable parameters of every part, counted by hand from the
  config (a check on :func:`~vae_book.models.transformer.parameter_counts`);
  :func:`abstract_model` builds a model without allocating its parameters (for the full size).
* :func:`position_similarity` — cosine similarity between the position-embedding vectors of all
  patch positions; :func:`plot_position_channels` draws channels of the embedding over the grid.
* :func:`gaussian_decoder_residuals` — per-pixel decoder variance and squared error of a learned-sigma
  Gaussian decoder (for the check "optimal sigma^2 = mean squared error").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from vae_book import distributions as D
from vae_book.plotting import axes_row
from vae_book._checks import check_array, check_key, check_positive_int
from vae_book.models.base import VAE
from vae_book.models.transformer import TransformerConfig, TransformerVAE, patchify

__all__ = [
    "Stage",
    "encoder_stages",
    "decoder_stages",
    "format_stages",
    "parameter_formula",
    "abstract_model",
    "position_similarity",
    "plot_position_channels",
    "gaussian_decoder_residuals",
]


class Stage(NamedTuple):
    """One step of the forward pass: a short ``name``, the ``value`` it produced, a ``note`` saying what it is."""

    name: str
    value: jax.Array
    note: str


def _check_model(model):
    if not isinstance(model, TransformerVAE):
        raise ValueError(f"`model` must be a TransformerVAE, got {type(model).__name__}.")
    return model


def _with_notes(arrays: dict, notes: dict) -> list[Stage]:
    return [Stage(name, value, notes.get(name, "")) for name, value in arrays.items()]


def encoder_stages(model: TransformerVAE, x: jax.Array, *,
                   position_embedding: jax.Array | float | None = None) -> list[Stage]:
    r"""The encoder :math:`q_\phi(z\mid x)` of ``model`` stage by stage on images ``x``, with a note per stage.

    The arrays are the model's own forward pass,
    :meth:`~vae_book.models.transformer.TransformerVAE.encoder_stages` (the very code
    ``model.encode`` runs), preceded by the input and its patches (a view for the chapter: the
    patch embedding is one convolution on the image); the last two stages are ``model.encode(x)``.

    Args:
        model: a :class:`~vae_book.models.transformer.TransformerVAE`.
        x: images ``(B, H, W, C)`` in [0, 1].
        position_embedding: ``None`` for the model's fixed sine-cosine table, or an array that
            broadcasts to ``(N, hidden)`` to use instead (e.g. ``0.0`` to switch it off, an experiment
            of chapter 7's exercises).

    Returns:
        A list of :class:`Stage`: ``images`` (B, H, W, C), ``patches`` (B, N, p*p*C),
        ``patch tokens`` (B, N, hidden), ``+ position`` (B, N, hidden), ``with embedding token``
        (B, 1+N, hidden), ``after blocks`` (B, 1, hidden), ``summary`` (B, hidden),
        ``mean`` (B, z_dim), ``log_std`` (B, z_dim).
    """
    model = _check_model(model)
    x = model.check_input(x)
    c = model.config
    p = c.patch
    notes = {
        "images": "input images in [0, 1]",
        "patches": f"{c.num_patches} patches of {p}x{p}x{c.image_shape[2]} pixels, row-major",
        "patch tokens": f"conv with kernel = stride = {p}: one linear map per patch",
        "+ position": "plus the fixed 2-D sine-cosine position embedding",
        "with embedding token": "learned embedding token in front (no position)",
        "after blocks": f"{c.depth} transformer blocks, every token attending to every token; "
                        "the last computes the embedding token's output only",
        "summary": "LayerNorm of the embedding token's output",
        "mean": "Dense(hidden -> 2 z_dim), first half: posterior mean",
        "log_std": "second half: posterior log sigma",
    }
    arrays = {"images": x, "patches": patchify(x, p),
              **model.encoder_stages(x, position_embedding=position_embedding)}
    return _with_notes(arrays, notes)


def decoder_stages(model: TransformerVAE, z: jax.Array, *,
                   position_embedding: jax.Array | float | None = None) -> list[Stage]:
    r"""The decoder :math:`p_\theta(x\mid z)` of ``model`` stage by stage on codes ``z`` ``(B, z_dim)``, with notes.

    The arrays are the model's own forward pass,
    :meth:`~vae_book.models.transformer.TransformerVAE.decoder_stages` (the very code
    ``model.decode`` runs), preceded by the code; the last stage(s) are ``model.decode(z)``.
    ``position_embedding`` as in :func:`encoder_stages`.

    Returns:
        A list of :class:`Stage`: ``code`` (B, z_dim), ``one token`` (B, hidden), ``tiled + position``
        (B, N, hidden), ``after blocks`` (B, N, hidden, LayerNorm applied), ``head output``
        (B, N, p*p*C_out), ``pixels`` (B, H, W, C_out), then (each (B, H, W, C)) ``logits`` for a
        Bernoulli decoder, ``mean`` and ``log_std`` for a fixed sigma, ``raw log_std``, ``mean`` and
        ``log_std`` for a learned one.
    """
    model = _check_model(model)
    z = model.check_code(z)
    c = model.config
    m = c.min_log_std
    notes = {
        "code": "latent code z",
        "one token": "Dense(z_dim -> hidden): the code as one token",
        "tiled + position": f"copied to all {c.num_patches} patch positions, plus the same position embedding",
        "after blocks": f"{c.depth} transformer blocks (own weights) and a LayerNorm",
        "head output": f"per-token Dense(hidden -> {c.patch}*{c.patch}*{c.out_channels})",
        "pixels": "unpatchify: every token's outputs back to its patch",
        "logits": "Bernoulli logits of every pixel",
        "raw log_std": "last C channels, unconstrained",
        "mean": "Gaussian mean of every pixel" + (" (first C channels)" if c.decoder_log_std is None else ""),
        "log_std": (f"log sigma, fixed at {c.decoder_log_std}" if c.decoder_log_std is not None else
                    f"log sigma = m + softplus(raw - m) >= m = {m:.3f} (sigma >= {math.exp(m):.3g})"),
    }
    arrays = {"code": z, **model.decoder_stages(z, position_embedding=position_embedding)}
    return _with_notes(arrays, notes)


def format_stages(stages: list[Stage] | tuple[Stage, ...]) -> str:
    """A text table of ``stages`` (a list of :class:`Stage`): name, shape, dtype and note, one per line."""
    if not isinstance(stages, (list, tuple)) or not all(isinstance(s, Stage) for s in stages):
        raise ValueError("`stages` must be a list of Stage, as returned by encoder_stages / decoder_stages.")
    if not stages:
        return ""
    width = max(len(s.name) for s in stages)
    shapes = [str(tuple(s.value.shape)) for s in stages]
    sw = max(len(t) for t in shapes)
    return "\n".join(f"{s.name:<{width}}  {t:<{sw}}  {str(s.value.dtype):<8} {s.note}"
                     for s, t in zip(stages, shapes))


def parameter_formula(config: TransformerConfig) -> dict[str, int]:
    r"""Trainable parameters per part of a :class:`TransformerVAE`, counted by hand from its sizes.

    With image channels ``C``, patch ``p``, width ``h``, MLP ratio ``r``, depth ``L``, code size ``d``
    and decoder outputs per pixel ``C_out``:

    * patch embedding: a ``p x p x C -> h`` convolution with bias, ``p^2 C h + h``;
    * embedding token: ``h``;
    * one block: two LayerNorms (scale and bias, ``4h``), the fused QKV projection ``3h^2 + 3h``, the
      output projection ``h^2 + h`` and the MLP ``2 r h^2 + r h + h``; a stack has ``L`` blocks;
    * encoder head: LayerNorm ``2h`` + ``Dense(h -> 2d)`` = ``2hd + 2d``;
    * decoder input: ``Dense(d -> h)`` = ``dh + h``;
    * decoder head: LayerNorm ``2h`` + ``Dense(h -> p^2 C_out)``.

    Returns a dict with the keys of :func:`~vae_book.models.transformer.parameter_counts`.
    """
    if not isinstance(config, TransformerConfig):
        raise ValueError(f"`config` must be a TransformerConfig, got {type(config).__name__}.")
    c = config
    h, r, d, p = c.hidden, c.mlp_ratio, c.z_dim, c.patch
    img_c = c.image_shape[2]
    block = 4 * h + (3 * h * h + 3 * h) + (h * h + h) + (2 * r * h * h + r * h + h)
    out = p * p * c.out_channels
    return {
        "patch_embedding": p * p * img_c * h + h,
        "embedding_token": h,
        "encoder_blocks": c.depth * block,
        "encoder_head": 2 * h + h * 2 * d + 2 * d,
        "decoder_input": d * h + h,
        "decoder_blocks": c.depth * block,
        "decoder_head": 2 * h + h * out + out,
    }


def abstract_model(config: TransformerConfig) -> TransformerVAE:
    """A :class:`TransformerVAE` whose parameters are shapes only (``jax.ShapeDtypeStruct``), nothing allocated.

    Enough for :func:`~vae_book.models.transformer.parameter_counts` of a model too large to build
    cheaply (e.g. the full 64x64 configuration on a laptop); it cannot be called on data.
    """
    if not isinstance(config, TransformerConfig):
        raise ValueError(f"`config` must be a TransformerConfig, got {type(config).__name__}.")
    return nnx.eval_shape(lambda: TransformerVAE(config, rngs=nnx.Rngs(0)))


def position_similarity(embedding: ArrayLike) -> np.ndarray:
    r"""Cosine similarity between all pairs of position vectors: ``(N, dim)`` -> ``(N, N)`` in [-1, 1].

    Entry ``(k, l)`` is :math:`\langle e_k, e_l\rangle / (\lVert e_k\rVert\,\lVert e_l\rVert)`, computed in float64.
    """
    e = np.asarray(check_array(embedding, "embedding", ndim=2, finite=True), np.float64)
    norms = np.linalg.norm(e, axis=1)
    if np.any(norms == 0):
        raise ValueError("`embedding` has an all-zero row; its cosine similarity is undefined.")
    u = e / norms[:, None]
    return np.clip(u @ u.T, -1.0, 1.0)


def plot_position_channels(embedding: np.ndarray, grid: tuple[int, int], channels: Iterable[int],
                           axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """Draw channels of a position embedding as images over the patch grid.

    Args:
        embedding: ``(N, dim)`` with ``N = grid[0] * grid[1]`` (row-major positions).
        grid: ``(rows, cols)`` of patches.
        channels: indices into ``dim`` to draw, one panel each.
        axes: a sequence of Matplotlib Axes, one per channel (a new row of panels if None).

    Returns:
        The Matplotlib Figure.
    """
    e = np.asarray(check_array(embedding, "embedding", ndim=2))
    gh, gw = (check_positive_int(g, "grid") for g in grid)
    if e.shape[0] != gh * gw:
        raise ValueError(f"`embedding` must have grid[0] * grid[1] = {gh * gw} rows, got {e.shape[0]}.")
    channels = [int(ch) for ch in channels]
    bad = [ch for ch in channels if not 0 <= ch < e.shape[1]]
    if not channels or bad:
        raise ValueError(f"`channels` must be a non-empty list of indices in [0, {e.shape[1]}), got {channels}.")
    axes = axes_row(axes, len(channels), "channel", panel_size=(1.9, 2.3))
    quarter = e.shape[1] // 4
    for ax, ch in zip(axes, channels):
        im = ax.imshow(e[:, ch].reshape(gh, gw), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        if e.shape[1] % 4 == 0:  # the layout of sincos_2d_position_embedding: [sin row, cos row, sin col, cos col]
            part, m = divmod(ch, quarter)
            what = ("sin", "cos")[part % 2] + (" row" if part < 2 else " column")
            omega = 10000.0 ** (-m / quarter)
            ax.set_title(f"channel {ch}: {what}\n$m={m}$, $\\omega_m={omega:.3g}$", fontsize=9)
        else:
            ax.set_title(f"channel {ch}", fontsize=9)
        ax.set_xlabel("patch column")
        ax.set_ylabel("patch row")
    axes[0].figure.colorbar(im, ax=list(axes), shrink=0.8, label="value")
    return axes[0].figure


def gaussian_decoder_residuals(model: VAE, images: np.ndarray, key: jax.Array, *,
                               batch_size: int = 250) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-pixel decoder variance and squared error of a Gaussian decoder with learned sigma.

    For each image ``x`` draw one code :math:`z\sim q_\phi(z\mid x)` (as training does), decode it to
    :math:`(\mu, \log\sigma)` and return, per pixel, :math:`\sigma^2` and :math:`(x-\mu)^2`.

    Args:
        model: a VAE with ``likelihood == "gaussian"`` (``decode`` returns ``(mean, log_std)``).
        images: ``(N, H, W, C)`` in [0, 1].
        key: JAX PRNG key for the codes.

    Returns:
        ``(var, sq_err)``: NumPy float32 arrays of shape ``(N, H, W, C)``, in squared [0, 1] intensity units.
    """
    if getattr(model, "likelihood", None) != "gaussian":
        raise ValueError(f"`model` must have a Gaussian likelihood, got {getattr(model, 'likelihood', None)!r}.")
    images = model.check_input(images)
    key = check_key(key)
    batch_size = check_positive_int(batch_size, "batch_size")

    @nnx.jit
    def one(model, x, key):
        mean, log_std = model.encode(x)
        z = D.sample_diag_gaussian(key, mean, log_std)
        mu, log_sigma = model.decode(z)
        return jnp.exp(2 * log_sigma), (x - mu) ** 2

    var, sq = [], []
    for i, start in enumerate(range(0, images.shape[0], batch_size)):
        v, s = one(model, jnp.asarray(images[start:start + batch_size]), jax.random.fold_in(key, i))
        var.append(np.asarray(v))
        sq.append(np.asarray(s))
    return np.concatenate(var), np.concatenate(sq)
