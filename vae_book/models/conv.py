r"""A convolutional VAE: stride-2 convolutions down, sub-pixel convolutions up.

Encoder :math:`q_\phi(z\mid x)`: ``S = len(channels)`` stages of ``Conv(kernel_size, stride 2,
SAME)`` + activation, each halving the image side, then flatten -> ``Dense(2 * z_dim)`` ->
``(mean, log_std)``.

Decoder :math:`p_\theta(x\mid z)`: ``Dense`` + activation -> a ``(H / 2**S, W / 2**S, channels[-1])``
feature map -> ``S`` upsampling stages through ``channels`` in reverse, each doubling the side.
Every upsampling stage is a *sub-pixel convolution* (Shi et al., 2016): a ``3x3`` stride-1
convolution to four times the stage's output channels, then :func:`depth_to_space`, which makes the
four channel groups of each pixel the four pixels of a 2x2 output block. There is no transposed
convolution in the model: a sub-pixel stage computes every output pixel from a 3x3 neighbourhood of
the input as a stride-2 ``4x4`` transposed convolution would from a 2x2 one, without the
zero-stuffed input that makes transposed convolutions and their gradients slow on CPU (``bench/``
measured 5x on the last stage). Every stage but the last is followed by the activation; the last
one outputs :attr:`~vae_book.models.base.VAEConfig.out_channels` values per pixel, which the shared
head :func:`~vae_book.models.base.likelihood_stages` turns into Bernoulli logits, or a Gaussian
mean with a fixed ``decoder_log_std``, or a Gaussian mean and a learned log sigma bounded below by
:func:`~vae_book.models.base.bounded_log_std`.

With the defaults (64x64x3 images, channels (32, 64, 128, 256)) the feature maps go
64 -> 32 -> 16 -> 8 -> 4 and back.

``dtype="bfloat16"`` runs the convolutions, dense layers and activations in bfloat16 with float32
parameters; the shared heads return float32 posterior and likelihood parameters, so the loss is
float32.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vae_book._checks import check_array, check_positive_int
from vae_book.models.base import (VAE, VAEConfig, check_compute_dtype, likelihood_stages,
                                  posterior_stages, set_config)
from vae_book.profiles import MIN_LOG_STD

__all__ = ["ConvConfig", "ConvVAE", "depth_to_space", "parameter_counts", "subpixel_kernel"]

#: The activations a :class:`ConvConfig` may name.
ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}


@dataclass(frozen=True)
class ConvConfig(VAEConfig):
    """Sizes of the convolutional VAE: the fields of :class:`~vae_book.models.base.VAEConfig`
    (checked there) and the layer sizes below.

    Attributes:
        image_shape: ``(H, W, C)``; ``H`` and ``W`` must be divisible by ``2 ** len(channels)``.
        channels: output channels of the encoder's stride-2 stages (the decoder mirrors them).
        z_dim: latent dimension.
        likelihood: ``"gaussian"`` or ``"bernoulli"``.
        decoder_log_std: ``None`` learns a per-pixel log sigma; a float fixes it (Gaussian only,
            ignored for Bernoulli).
        min_log_std: lower bound of a learned decoder log sigma.
        kernel_size: 3 or 4, the encoder's convolution kernel (the decoder's sub-pixel convolutions
            are always ``3x3``).
        activation: ``"relu"`` or ``"gelu"``.
        dtype: compute dtype of the convolutions, dense layers and activations, ``"float32"`` or
            ``"bfloat16"``. Parameters (hence the optimiser state) and the returned posterior and
            likelihood parameters are always float32, so the loss is computed in float32.
    """

    image_shape: tuple[int, int, int] = (64, 64, 3)
    channels: tuple[int, ...] = (32, 64, 128, 256)
    z_dim: int = 32
    likelihood: str = "gaussian"
    decoder_log_std: float | None = None
    min_log_std: float = MIN_LOG_STD
    kernel_size: int = 4
    activation: str = "relu"
    dtype: str = "float32"

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.channels, (int, str)) or len(tuple(self.channels)) == 0:
            raise ValueError(
                f"`channels` must be a non-empty tuple of positive ints (one per stride-2 stage), "
                f"got {self.channels!r}."
            )
        channels = tuple(check_positive_int(c, "channels") for c in self.channels)
        object.__setattr__(self, "channels", channels)
        stages = len(channels)
        h, w, _ = self.image_shape
        if h % 2**stages or w % 2**stages:
            raise ValueError(
                f"`image_shape` height and width must be divisible by 2**len(channels) = {2**stages} "
                f"({stages} stride-2 stages), got image_shape={self.image_shape}; use fewer `channels` "
                f"stages or resize the images."
            )
        if (isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int)
                or self.kernel_size not in (3, 4)):
            raise ValueError(f"`kernel_size` must be 3 or 4, got {self.kernel_size!r}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}.")
        check_compute_dtype(self.dtype)

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        """Shape of the smallest feature map: ``(H / 2**stages, W / 2**stages, channels[-1])``."""
        s = 2 ** len(self.channels)
        return (self.image_shape[0] // s, self.image_shape[1] // s, self.channels[-1])


def depth_to_space(h: jax.Array, block: int = 2) -> jax.Array:
    """Rearrange ``(B, H, W, block*block*C)`` into ``(B, block*H, block*W, C)``.

    Channel group ``(i, j)`` (row-major over the ``block x block`` offsets) becomes the pixel at offset
    ``(i, j)`` of every output block — the inverse of cutting an image into ``block x block`` patches.
    """
    b, hh, ww, c = h.shape
    if c % (block * block):
        raise ValueError(f"`h` must have a multiple of block**2 = {block * block} channels, got {c}.")
    h = h.reshape(b, hh, ww, block, block, c // (block * block))
    return h.transpose(0, 1, 3, 2, 4, 5).reshape(b, block * hh, block * ww, c // (block * block))


class ConvVAE(VAE):
    r"""Convolutional encoder :math:`q_\phi(z\mid x)` and decoder :math:`p_\theta(x\mid z)`.

    * ``encode(x)``: images ``(B, H, W, C)`` in [0, 1] -> ``(mean, log_std)``, each ``(B, z_dim)``.
    * ``decode(z)``: codes ``(B, z_dim)`` -> logits ``(B, H, W, C)`` (Bernoulli) or
      ``(mean, log_std)``, each ``(B, H, W, C)`` (Gaussian).

    See :class:`ConvConfig` for the sizes and the module docstring for the layer stack.
    """

    def __init__(self, config: ConvConfig = ConvConfig(), *, rngs: nnx.Rngs) -> None:
        set_config(self, config, ConvConfig)
        c = config
        dt = jnp.dtype(c.dtype)  # compute dtype; parameters stay float32 (param_dtype's default)
        k = (c.kernel_size, c.kernel_size)
        _, _, img_c = c.image_shape
        # Encoder: C -> channels[0] -> ... -> channels[-1], each stage halves the side.
        ins = (img_c, *c.channels[:-1])
        self.enc_convs = nnx.List(
            [
                nnx.Conv(i, o, k, strides=(2, 2), padding="SAME", dtype=dt, rngs=rngs)
                for i, o in zip(ins, c.channels)
            ]
        )
        self.enc_out = nnx.Linear(math.prod(c.bottleneck_shape), 2 * c.z_dim, dtype=dt, rngs=rngs)
        # Decoder: channels[-1] -> channels[-2] -> ... -> channels[0] -> likelihood parameters, each
        # stage a sub-pixel convolution that doubles the side.
        self.dec_in = nnx.Linear(c.z_dim, math.prod(c.bottleneck_shape), dtype=dt, rngs=rngs)
        rev = tuple(reversed(c.channels))
        self.dec_convs = nnx.List(
            [nnx.Conv(i, 4 * o, (3, 3), padding="SAME", dtype=dt, rngs=rngs) for i, o in zip(rev[:-1], rev[1:])]
        )
        self.dec_out = nnx.Conv(c.channels[0], 4 * c.out_channels, (3, 3), padding="SAME", dtype=dt, rngs=rngs)

    def encoder_stages(self, x: jax.Array) -> dict[str, jax.Array]:
        r"""The encoder :math:`q_\phi(z\mid x)` stage by stage: images ``(B, H, W, C)`` in [0, 1] ->
        ``down 1`` ... ``down S`` (each ``(B, H / 2**s, W / 2**s, channels[s-1])``), then ``mean`` and
        ``log_std``, each ``(B, z_dim)``."""
        x = self.check_input(x)
        act = ACTIVATIONS[self.config.activation]
        stages, h = {}, x
        for s, conv in enumerate(self.enc_convs, 1):
            h = stages[f"down {s}"] = act(conv(h))
        return {**stages, **posterior_stages(self.enc_out(h.reshape(h.shape[0], -1)))}

    def decoder_stages(self, z: jax.Array) -> dict[str, jax.Array]:
        r"""The decoder :math:`p_\theta(x\mid z)` stage by stage: codes ``(B, z_dim)`` -> ``bottleneck``
        ``(B, *bottleneck_shape)``, ``up 1`` ... ``up S-1`` (each doubling the side), ``pixels``
        ``(B, H, W, C_out)``, then the likelihood parameters ``(B, H, W, C)`` of
        :func:`~vae_book.models.base.likelihood_stages` (the Gaussian mean is unconstrained)."""
        z = self.check_code(z)
        c = self.config
        act = ACTIVATIONS[c.activation]
        h = act(self.dec_in(z)).reshape(z.shape[0], *c.bottleneck_shape)
        stages = {"bottleneck": h}
        for s, conv in enumerate(self.dec_convs, 1):
            h = stages[f"up {s}"] = act(depth_to_space(conv(h)))
        pixels = depth_to_space(self.dec_out(h))  # (B, H, W, C_out)
        return {**stages, "pixels": pixels, **likelihood_stages(pixels, c)}


def subpixel_kernel(transposed: jax.Array) -> jax.Array:
    """The 3x3 sub-pixel kernel equal to a 4x4 stride-2 transposed convolution.

    ``transposed`` is an ``HWIO`` kernel ``(4, 4, C_in, C_out)`` of
    ``jax.lax.conv_transpose(x, transposed, (2, 2), "SAME")`` (what ``nnx.ConvTranspose(C_in, C_out, (4, 4),
    strides=(2, 2))`` computes, bias aside). The result ``(3, 3, C_in, 4 C_out)`` is the kernel of a
    stride-1 ``SAME`` convolution whose output, through :func:`depth_to_space`, is the same image.

    Along one axis the transposed convolution pads the zero-stuffed input by 2 and correlates it with
    taps ``w[0..3]``, so output pixel ``2m + a`` reads input ``m + (k + a - 2) / 2`` through tap ``k``
    for the ``k`` of the same parity as ``a``: the even outputs use ``w[0], w[2]`` on inputs
    ``m - 1, m``, the odd ones ``w[1], w[3]`` on ``m, m + 1``. A 3x3 convolution reads ``m - 1, m, m + 1``,
    so phase ``a`` puts tap ``k`` at position ``(k + a) / 2`` and leaves the third position zero. A
    sub-pixel stage is therefore the more general layer: a 4x4 transposed convolution is one whose
    kernel has a zero row and column in each phase.
    """
    w = check_array(transposed, "transposed", ndim=4)
    if w.shape[:2] != (4, 4):
        raise ValueError(f"`transposed` must be a (4, 4, C_in, C_out) kernel, got shape {tuple(w.shape)}.")
    c_in, c_out = w.shape[2:]
    v = jnp.zeros((3, 3, c_in, 2, 2, c_out), w.dtype)  # (dy, dx, C_in, phase row, phase column, C_out)
    for a in range(2):
        for b in range(2):
            for ky in range(a, 4, 2):
                for kx in range(b, 4, 2):
                    v = v.at[(ky + a) // 2, (kx + b) // 2, :, a, b].set(w[ky, kx])
    # depth_to_space reads channel group (a, b) row-major: channel (2 a + b) C_out + c
    return v.reshape(3, 3, c_in, 4 * c_out)


def parameter_counts(model: ConvVAE) -> dict[str, int]:
    """Trainable parameters per stage of a :class:`ConvVAE`; the values sum to ``model.num_params()``.

    Keys, in the order data flows: ``down 1`` ... ``down S`` (the encoder's stride-2 convolutions),
    ``encoder head`` (``Dense(bottleneck -> 2 z_dim)``), ``decoder input`` (``Dense(z_dim -> bottleneck)``),
    ``up 1`` ... ``up S-1`` and ``output`` (the sub-pixel convolutions; ``output`` makes the pixels).
    """
    if not isinstance(model, ConvVAE):
        raise ValueError(f"`model` must be a ConvVAE, got {type(model).__name__}.")

    def size(module: nnx.Module) -> int:
        return sum(int(np.prod(leaf.shape)) for _, leaf in nnx.to_flat_state(nnx.state(module, nnx.Param)))

    counts = {f"down {s}": size(conv) for s, conv in enumerate(model.enc_convs, 1)}
    counts["encoder head"] = size(model.enc_out)
    counts["decoder input"] = size(model.dec_in)
    counts.update({f"up {s}": size(conv) for s, conv in enumerate(model.dec_convs, 1)})
    counts["output"] = size(model.dec_out)
    return counts
