r"""The book's main model: a Vision-Transformer VAE.

**Encoder** :math:`q_\phi(z\mid x)`. Cut the image into ``patch x patch`` squares and embed each with
one linear map (a convolution with kernel = stride = ``patch``): ``N = (H / patch)(W / patch)``
tokens of width ``hidden``. Add the *fixed* 2-D sine-cosine position embedding
(:func:`sincos_2d_position_embedding`) so the tokens know where they came from, and put one learned
**embedding token** in front. The embedding token gets **no** position embedding: it is not at any
place in the image, it is the slot the encoder writes its summary into. ``depth`` pre-LayerNorm
Transformer blocks let every token attend to every other; a final LayerNorm and one ``Dense(hidden ->
2 z_dim)`` read the embedding token only and give ``(mean, log_std)``.

**Decoder** :math:`p_\theta(x\mid z)`. ``Dense(z_dim -> hidden)`` turns the code into one token
that is copied to every patch position; adding the same position embedding makes the copies
different. Another stack of ``depth`` blocks (its own weights), a final LayerNorm and a per-token
``Dense(hidden -> patch * patch * C_out)`` give each patch's pixels, which :func:`unpatchify` puts
back in place. ``C_out = 2C`` for a Gaussian with learned sigma (mean, then raw log sigma, bounded
below by :func:`~vae_book.models.base.bounded_log_std`), ``C`` otherwise (Bernoulli logits, or the
Gaussian mean with a fixed ``decoder_log_std``).

A block is ``x = x + MHSA(LN(x)); x = x + MLP(LN(x))`` with ``MLP = Dense(mlp_ratio * hidden) ->
GELU -> Dense(hidden)`` and non-causal attention. For speed the attention goes through
:func:`jax.nn.dot_product_attention` with one fused QKV projection, and the ``depth`` blocks of a
stack are **one** module whose parameters carry a leading ``depth`` axis, applied with
:func:`jax.lax.scan`: the block is traced and compiled once, however deep the stack. That fast block
stack lives in ``vae_book/models/_blocks.py`` (:class:`BlockStack`, :class:`TransformerBlock` and
``REMAT_POLICY``, re-exported here).

The forward pass is written once, as named stages (:meth:`TransformerVAE.encoder_stages`,
:meth:`TransformerVAE.decoder_stages`); ``encode`` / ``decode`` return their last entries, and
chapter 7 (through :mod:`vae_book.companion.inspection`) prints and plots the same arrays.

``dtype="bfloat16"`` computes the matrix products and activations in bfloat16; parameters, the
residual stream, the attention softmax, LayerNorm statistics and the returned posterior and
likelihood parameters stay float32 (so the loss is float32). Attention uses cuDNN's fused kernel
on a GPU in bfloat16 (:func:`~vae_book.models._blocks.attention_implementation`, re-exported here).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vae_book._checks import check_array, check_positive_int
from vae_book.models._blocks import REMAT_POLICY, BlockStack, TransformerBlock  # noqa: F401  (re-exported)
from vae_book.models._blocks import attention_implementation  # noqa: F401  (re-exported)
from vae_book.models.base import (VAE, VAEConfig, check_compute_dtype, likelihood_stages,
                                  posterior_stages, set_config)
from vae_book.profiles import MIN_LOG_STD

__all__ = [
    "TransformerConfig",
    "TransformerVAE",
    "TransformerBlock",
    "BlockStack",
    "sincos_2d_position_embedding",
    "patchify",
    "unpatchify",
    "parameter_counts",
    "attention_implementation",
]


# --------------------------------------------------------------------------- helpers


def sincos_2d_position_embedding(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    r"""Fixed 2-D sine-cosine position embedding (as in ViT / MAE), shape ``(grid_h * grid_w, dim)``.

    Token ``k`` sits at row ``i = k // grid_w`` and column ``j = k % grid_w`` (row-major, the order
    of :func:`patchify`). The first half of its vector encodes the row, the second half the column;
    each half is ``[sin(pos * omega), cos(pos * omega)]`` with ``dim / 4`` frequencies

    .. math::
        \omega_m = 10000^{-m / (dim/4)},\quad m = 0, \dots, dim/4 - 1,

    so every entry lies in [-1, 1] and nothing is learned. ``dim`` must be divisible by 4.

    Returns:
        float32 NumPy array ``(grid_h * grid_w, dim)``.
    """
    grid_h = check_positive_int(grid_h, "grid_h")
    grid_w = check_positive_int(grid_w, "grid_w")
    dim = check_positive_int(dim, "dim")
    if dim % 4:
        raise ValueError(
            f"`dim` must be divisible by 4 (half for rows, half for columns, each half sin and cos), got {dim}."
        )
    return _sincos_cached(grid_h, grid_w, dim)


@functools.lru_cache(maxsize=32)
def _sincos_cached(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter)  # (dim/4,)

    def encode(pos):  # (n,) -> (n, dim/2)
        angles = pos[:, None].astype(np.float64) * omega[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")  # (gh, gw)
    emb = np.concatenate([encode(rows.reshape(-1)), encode(cols.reshape(-1))], axis=1)
    emb = emb.astype(np.float32)
    emb.setflags(write=False)  # cached: nobody may modify it in place
    return emb


def _check_patch(shape, patch, name: str):
    patch = check_positive_int(patch, "patch")
    h, w = shape
    if h % patch or w % patch:
        raise ValueError(
            f"`patch` must divide the image height and width, got patch={patch} for {name} of "
            f"height {h} and width {w}."
        )
    return patch


def patchify(images: jax.Array, patch: int) -> jax.Array:
    """Cut images into non-overlapping square patches, row-major.

    Args:
        images: ``(B, H, W, C)``; ``patch`` must divide ``H`` and ``W``.
        patch: the side ``p`` of a patch.

    Returns:
        ``(B, N, p * p * C)`` with ``N = (H / p)(W / p)``. Token ``k`` is the crop
        ``images[:, i*p:(i+1)*p, j*p:(j+1)*p, :]`` with ``i = k // (W / p)``, ``j = k % (W / p)``,
        flattened in (row, column, channel) order. :func:`unpatchify` is its exact inverse.
    """
    images = check_array(images, "images", ndim=4, floating=False)
    b, h, w, c = images.shape
    p = _check_patch((h, w), patch, "`images`")
    x = images.reshape(b, h // p, p, w // p, p, c)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, H/p, W/p, p, p, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: jax.Array, patch: int, height: int, width: int, channels: int) -> jax.Array:
    """Put patches back into images: the exact inverse of :func:`patchify`.

    Args:
        tokens: ``(B, N, p * p * C)`` with ``N = (H / p)(W / p)``, row-major patch order.
        patch, height, width, channels: ``p``, ``H``, ``W``, ``C``.

    Returns:
        ``(B, H, W, C)``.
    """
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    channels = check_positive_int(channels, "channels")
    p = _check_patch((height, width), patch, "an image")
    gh, gw = height // p, width // p
    tokens = check_array(tokens, "tokens", shape=(None, gh * gw, p * p * channels), floating=False)
    b = tokens.shape[0]
    x = tokens.reshape(b, gh, gw, p, p, channels)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, H/p, p, W/p, p, C)
    return x.reshape(b, height, width, channels)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TransformerConfig(VAEConfig):
    """Sizes of the Transformer VAE. The defaults are the full model of the source chapter.

    The fields of :class:`~vae_book.models.base.VAEConfig` (checked there) and the sizes below.

    Attributes:
        image_shape: ``(H, W, C)``; ``patch`` must divide ``H`` and ``W``.
        patch: side of the square patches; ``N = (H / patch)(W / patch)`` tokens.
        hidden: token width; divisible by ``heads`` and by 4 (the 2-D sine-cosine embedding).
        depth: blocks in the encoder stack, and again in the decoder stack.
        heads: attention heads; head width is ``hidden / heads``.
        mlp_ratio: the block MLP is ``hidden -> mlp_ratio * hidden -> hidden``.
        z_dim: latent dimension.
        likelihood: ``"gaussian"`` or ``"bernoulli"``.
        decoder_log_std: ``None`` learns a per-pixel log sigma; a float fixes it (Gaussian only,
            ignored for Bernoulli).
        min_log_std: lower bound of a learned decoder log sigma.
        dtype: compute dtype of the matrix products and activations, ``"float32"`` or
            ``"bfloat16"``. Parameters (hence the optimiser state), the residual stream, the softmax,
            LayerNorm statistics and the returned posterior and likelihood parameters are always
            float32, so the loss is computed in float32.
    """

    image_shape: tuple[int, int, int] = (64, 64, 3)
    patch: int = 8
    hidden: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    z_dim: int = 64
    likelihood: str = "gaussian"
    decoder_log_std: float | None = None
    min_log_std: float = MIN_LOG_STD
    dtype: str = "float32"

    def __post_init__(self):
        super().__post_init__()
        self.check_positive_ints("patch", "hidden", "depth", "heads", "mlp_ratio")
        h, w, _ = self.image_shape
        if h % self.patch or w % self.patch:
            raise ValueError(
                f"`patch` must divide the image height and width, got patch={self.patch} for "
                f"image_shape={self.image_shape}."
            )
        if self.hidden % self.heads:
            raise ValueError(
                f"`hidden` must be divisible by `heads` (each head gets hidden / heads features), "
                f"got hidden={self.hidden}, heads={self.heads}."
            )
        if self.hidden % 4:
            raise ValueError(
                f"`hidden` must be divisible by 4 (the 2-D sine-cosine position embedding uses "
                f"hidden / 4 frequencies for each of sin/cos of rows/columns), got hidden={self.hidden}."
            )
        check_compute_dtype(self.dtype)

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid ``(H / patch, W / patch)``."""
        return (self.image_shape[0] // self.patch, self.image_shape[1] // self.patch)

    @property
    def num_patches(self) -> int:
        """``N = (H / patch)(W / patch)``."""
        return self.grid[0] * self.grid[1]


# --------------------------------------------------------------------------- model


class TransformerVAE(VAE):
    r"""Vision-Transformer encoder :math:`q_\phi(z\mid x)` and decoder :math:`p_\theta(x\mid z)`.

    * ``encode(x)``: images ``(B, H, W, C)`` in [0, 1] -> ``(mean, log_std)``, each ``(B, z_dim)``.
    * ``decode(z)``: codes ``(B, z_dim)`` -> logits ``(B, H, W, C)`` (Bernoulli) or
      ``(mean, log_std)``, each ``(B, H, W, C)`` float32 (Gaussian; the mean is unconstrained).
    * ``encoder_stages(x)`` / ``decoder_stages(z)``: every intermediate array of the same pass.

    Submodules (see the module docstring): ``patch_embedding``, ``embedding_token`` (a
    ``(1, 1, hidden)`` parameter), ``encoder_blocks``, ``encoder_norm``, ``encoder_head``,
    ``decoder_input``, ``decoder_blocks``, ``decoder_norm``, ``decoder_head``. The position embedding
    is a constant (recomputed from the config, never trained, not in the state).
    """

    def __init__(self, config: TransformerConfig = TransformerConfig(), *, rngs: nnx.Rngs) -> None:
        set_config(self, config, TransformerConfig)
        c = config
        dt = jnp.dtype(c.dtype)
        _, _, img_c = c.image_shape
        p = c.patch
        # encoder
        self.patch_embedding = nnx.Conv(
            img_c, c.hidden, (p, p), strides=(p, p), padding="VALID", dtype=dt, rngs=rngs
        )
        self.embedding_token = nnx.Param(
            0.02 * jax.random.normal(rngs.params(), (1, 1, c.hidden), jnp.float32)
        )
        self.encoder_blocks = BlockStack(c.depth, c.hidden, c.heads, c.mlp_ratio, dt, rngs=rngs)
        self.encoder_norm = nnx.LayerNorm(c.hidden, rngs=rngs)
        self.encoder_head = nnx.Linear(c.hidden, 2 * c.z_dim, rngs=rngs)
        # decoder
        self.decoder_input = nnx.Linear(c.z_dim, c.hidden, rngs=rngs)
        self.decoder_blocks = BlockStack(c.depth, c.hidden, c.heads, c.mlp_ratio, dt, rngs=rngs)
        self.decoder_norm = nnx.LayerNorm(c.hidden, dtype=dt, rngs=rngs)
        self.decoder_head = nnx.Linear(c.hidden, p * p * c.out_channels, dtype=dt, rngs=rngs)

    @property
    def attention(self) -> str:
        """The attention implementation this model runs on the current backend (``"cudnn"`` or
        ``"xla"``, see :func:`attention_implementation`)."""
        return attention_implementation(self.config.dtype)

    @property
    def position_embedding(self) -> jax.Array:
        """The fixed sine-cosine position embedding of the patch tokens, ``(N, hidden)`` float32."""
        c = self.config
        return jnp.asarray(sincos_2d_position_embedding(*c.grid, c.hidden))

    def _positions(self, position_embedding) -> jax.Array:
        """``None`` -> :attr:`position_embedding`; otherwise an array that broadcasts to ``(N, hidden)``."""
        if position_embedding is None:
            return self.position_embedding
        c = self.config
        want = (c.num_patches, c.hidden)
        pe = check_array(position_embedding, "position_embedding", ndim=(0, 1, 2))
        try:
            np.broadcast_shapes(pe.shape, want)
        except ValueError:
            raise ValueError(
                f"`position_embedding` must broadcast to (num_patches, hidden) = {want}, got shape {pe.shape}."
            ) from None
        return jnp.broadcast_to(jnp.asarray(pe, jnp.float32), want)

    def encoder_stages(self, x: jax.Array, *,
                       position_embedding: jax.Array | float | None = None) -> dict[str, jax.Array]:
        r"""The encoder :math:`q_\phi(z\mid x)` stage by stage; ``encode(x)`` is its last two entries.

        Args:
            x: images ``(B, H, W, C)`` in [0, 1].
            position_embedding: ``None`` for the fixed sine-cosine table, or an array that broadcasts
                to ``(N, hidden)`` to use instead (e.g. ``0.0`` to switch it off, an experiment of
                chapter 7).

        Returns:
            ``patch tokens`` ``(B, N, hidden)`` (compute dtype), ``+ position`` ``(B, N, hidden)``,
            ``with embedding token`` ``(B, 1 + N, hidden)``, ``after blocks`` ``(B, 1, hidden)`` (the
            embedding token's output: the last block computes no other), ``summary`` ``(B, hidden)``
            (its LayerNorm), ``mean`` and ``log_std`` ``(B, z_dim)``; float32 unless noted.
        """
        x = self.check_input(x)
        c = self.config
        b = x.shape[0]
        tokens = self.patch_embedding(x).reshape(b, c.num_patches, c.hidden)  # (B, N, hidden)
        placed = tokens.astype(jnp.float32) + self._positions(position_embedding)[None]
        first = jnp.broadcast_to(self.embedding_token[...], (b, 1, c.hidden))
        seq = jnp.concatenate([first, placed], axis=1)  # (B, 1 + N, hidden)
        # only the embedding token is read, so only its output is computed
        h = self.encoder_blocks(seq, num_outputs=1)  # (B, 1, hidden)
        summary = self.encoder_norm(h[:, 0])
        return {"patch tokens": tokens, "+ position": placed, "with embedding token": seq, "after blocks": h,
                "summary": summary, **posterior_stages(self.encoder_head(summary))}

    def decoder_stages(self, z: jax.Array, *,
                       position_embedding: jax.Array | float | None = None) -> dict[str, jax.Array]:
        r"""The decoder :math:`p_\theta(x\mid z)` stage by stage; ``decode(z)`` is its last entries.

        Args:
            z: codes ``(B, z_dim)``.
            position_embedding: as in :meth:`encoder_stages`.

        Returns:
            ``one token`` ``(B, hidden)``, ``tiled + position`` ``(B, N, hidden)``, ``after blocks``
            ``(B, N, hidden)`` (LayerNorm applied), ``head output`` ``(B, N, p * p * C_out)``,
            ``pixels`` ``(B, H, W, C_out)``, then the likelihood parameters ``(B, H, W, C)`` of
            :func:`~vae_book.models.base.likelihood_stages`; all float32 but the middle two (compute dtype).
        """
        z = self.check_code(z)
        c = self.config
        h_img, w_img, _ = c.image_shape
        token = self.decoder_input(z.astype(jnp.float32))  # (B, hidden)
        tiled = token[:, None, :] + self._positions(position_embedding)[None]  # every patch: (B, N, hidden)
        h = self.decoder_norm(self.decoder_blocks(tiled))
        out = self.decoder_head(h).astype(jnp.float32)  # (B, N, p * p * C_out)
        pixels = unpatchify(out, c.patch, h_img, w_img, c.out_channels)  # (B, H, W, C_out)
        return {"one token": token, "tiled + position": tiled, "after blocks": h, "head output": out,
                "pixels": pixels, **likelihood_stages(pixels, c)}


#: Which submodules make up each part reported by :func:`parameter_counts`.
_PARTS = {
    "patch_embedding": ("patch_embedding",),
    "embedding_token": ("embedding_token",),
    "encoder_blocks": ("encoder_blocks",),
    "encoder_head": ("encoder_norm", "encoder_head"),
    "decoder_input": ("decoder_input",),
    "decoder_blocks": ("decoder_blocks",),
    "decoder_head": ("decoder_norm", "decoder_head"),
}


def parameter_counts(model: TransformerVAE) -> dict[str, int]:
    """Trainable parameters per part of a :class:`TransformerVAE`; the values sum to ``model.num_params()``.

    Keys: ``patch_embedding``, ``embedding_token``, ``encoder_blocks`` (all ``depth`` blocks, their
    LayerNorms included), ``encoder_head`` (final LayerNorm + ``Dense(hidden -> 2 z_dim)``),
    ``decoder_input``, ``decoder_blocks``, ``decoder_head`` (final LayerNorm + per-token output Dense).
    """
    if not isinstance(model, TransformerVAE):
        raise ValueError(f"`model` must be a TransformerVAE, got {type(model).__name__}.")
    owner = {attr: part for part, attrs in _PARTS.items() for attr in attrs}
    counts = dict.fromkeys(_PARTS, 0)
    for path, leaf in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        part = owner.get(str(path[0]))
        if part is None:  # a new submodule nobody filed under a part
            raise RuntimeError(f"parameter {'/'.join(map(str, path))} belongs to no part in _PARTS")
        counts[part] += int(np.prod(leaf.shape))
    return counts
