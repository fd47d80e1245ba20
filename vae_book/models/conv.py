r"""A convolutional VAE: stride-2 convolutions down, sub-pixel convolutions up.

Encoder :math:`q_\phi(z\mid x)`: ``len(channels)`` stages of ``Conv(kernel, stride 2, SAME)`` +
activation, each halving the image side, then flatten -> ``Dense(2 * z_dim)`` -> ``(mean, log_std)``.

Decoder :math:`p_\theta(x\mid z)`: ``Dense`` -> a ``(side / 2**stages, side / 2**stages,
channels[-1])`` feature map -> ``len(channels)`` upsampling stages through ``channels`` in reverse,
each doubling the side. An upsampling stage is a *sub-pixel convolution* (Shi et al., 2016): a
``3x3`` convolution to four times the output channels, whose four groups become the four pixels of
each 2x2 block (:func:`depth_to_space`). It can express everything a stride-2 transposed convolution
with a ``4x4`` kernel can, without the zero-stuffed input that makes transposed convolutions and their
gradients slow on CPU (``bench/`` measured 5x on the last stage). Every stage but the last is followed
by the activation; the last one outputs ``C`` values per pixel (Bernoulli logits, or the Gaussian
mean with a fixed ``decoder_log_std``) or ``2C`` (Gaussian mean + raw log sigma, bounded below by
:func:`~vae_book.models.base.bounded_log_std`).

With the defaults (64x64x3 images, channels (32, 64, 128, 256)) the feature maps go
64 -> 32 -> 16 -> 8 -> 4 and back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from vae_book._checks import check_positive_int
from vae_book.models.base import VAE, bounded_log_std, check_likelihood

__all__ = ["ConvConfig", "ConvVAE", "depth_to_space"]

_ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}


def _check_finite_float(value, name: str, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        want = "a finite float or None" if allow_none else "a finite float"
        raise ValueError(f"`{name}` must be {want}, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class ConvConfig:
    """Sizes of the convolutional VAE.

    Attributes:
        image_shape: ``(H, W, C)``; ``H`` and ``W`` must be divisible by ``2 ** len(channels)``.
        channels: output channels of the encoder's stride-2 stages (the decoder mirrors them).
        z_dim: latent dimension.
        likelihood: ``"gaussian"`` or ``"bernoulli"``.
        decoder_log_std: ``None`` learns a per-pixel log sigma; a float fixes it (Gaussian only,
            ignored for Bernoulli).
        min_log_std: lower bound of a learned decoder log sigma.
        kernel_size: 3 or 4 (4 tiles stride-2 transposed convolutions evenly).
        activation: ``"relu"`` or ``"gelu"``.
    """

    image_shape: tuple[int, int, int] = (64, 64, 3)
    channels: tuple[int, ...] = (32, 64, 128, 256)
    z_dim: int = 32
    likelihood: str = "gaussian"
    decoder_log_std: float | None = None
    min_log_std: float = -5.0
    kernel_size: int = 4
    activation: str = "relu"

    def __post_init__(self):
        try:
            shape = tuple(int(s) for s in self.image_shape)
        except (TypeError, ValueError):
            raise ValueError(f"`image_shape` must be (H, W, C), got {self.image_shape!r}.") from None
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"`image_shape` must be (H, W, C) of positive ints, got {self.image_shape!r}.")
        object.__setattr__(self, "image_shape", shape)
        if isinstance(self.channels, (int, str)) or len(tuple(self.channels)) == 0:
            raise ValueError(
                f"`channels` must be a non-empty tuple of positive ints (one per stride-2 stage), "
                f"got {self.channels!r}."
            )
        channels = tuple(self.channels)
        for c in channels:
            check_positive_int(c, "channels")
        object.__setattr__(self, "channels", tuple(int(c) for c in channels))
        stages = len(channels)
        h, w, _ = shape
        if h % 2**stages or w % 2**stages:
            raise ValueError(
                f"`image_shape` height and width must be divisible by 2**len(channels) = {2**stages} "
                f"({stages} stride-2 stages), got image_shape={shape}; use fewer `channels` stages "
                f"or resize the images."
            )
        check_positive_int(self.z_dim, "z_dim")
        check_likelihood(self.likelihood)
        _check_finite_float(self.decoder_log_std, "decoder_log_std", allow_none=True)
        _check_finite_float(self.min_log_std, "min_log_std")
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size not in (3, 4):
            raise ValueError(f"`kernel_size` must be 3 or 4, got {self.kernel_size!r}.")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {tuple(_ACTIVATIONS)}, got {self.activation!r}.")

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        """Shape of the smallest feature map: ``(H / 2**stages, W / 2**stages, channels[-1])``."""
        s = 2 ** len(self.channels)
        return (self.image_shape[0] // s, self.image_shape[1] // s, self.channels[-1])


def depth_to_space(h, block: int = 2):
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

    def __init__(self, config: ConvConfig = ConvConfig(), *, rngs: nnx.Rngs):
        self.config = config
        c = config
        k = (c.kernel_size, c.kernel_size)
        _, _, img_c = c.image_shape
        # Encoder: C -> channels[0] -> ... -> channels[-1], each stage halves the side.
        ins = (img_c, *c.channels[:-1])
        self.enc_convs = nnx.List(
            [
                nnx.Conv(i, o, k, strides=(2, 2), padding="SAME", rngs=rngs)
                for i, o in zip(ins, c.channels)
            ]
        )
        self.enc_out = nnx.Linear(math.prod(c.bottleneck_shape), 2 * c.z_dim, rngs=rngs)
        # Decoder: channels[-1] -> channels[-2] -> ... -> channels[0] -> likelihood parameters, each
        # stage a sub-pixel convolution that doubles the side.
        self.dec_in = nnx.Linear(c.z_dim, math.prod(c.bottleneck_shape), rngs=rngs)
        rev = tuple(reversed(c.channels))
        self.dec_convs = nnx.List(
            [nnx.Conv(i, 4 * o, (3, 3), padding="SAME", rngs=rngs) for i, o in zip(rev[:-1], rev[1:])]
        )
        out = img_c * (2 if c.likelihood == "gaussian" and c.decoder_log_std is None else 1)
        self.dec_out = nnx.Conv(c.channels[0], 4 * out, (3, 3), padding="SAME", rngs=rngs)

    def encode(self, x):
        r"""Parameters of :math:`q_\phi(z\mid x)`: images ``(B, H, W, C)`` in [0, 1] -> ``(mean, log_std)``, each ``(B, z_dim)``."""
        x = self.check_input(x)
        act = _ACTIVATIONS[self.config.activation]
        h = x
        for conv in self.enc_convs:
            h = act(conv(h))
        mean, log_std = jnp.split(self.enc_out(h.reshape(h.shape[0], -1)), 2, axis=-1)
        return mean, log_std

    def decode(self, z):
        r"""Parameters of :math:`p_\theta(x\mid z)`: codes ``(B, z_dim)`` -> logits ``(B, H, W, C)``
        (Bernoulli) or ``(mean, log_std)``, each ``(B, H, W, C)`` (Gaussian; the mean is unconstrained)."""
        z = self.check_code(z)
        c = self.config
        act = _ACTIVATIONS[c.activation]
        h = act(self.dec_in(z)).reshape(z.shape[0], *c.bottleneck_shape)
        for conv in self.dec_convs:
            h = act(depth_to_space(conv(h)))
        out = depth_to_space(self.dec_out(h))  # (B, H, W, C or 2C)
        if c.likelihood == "bernoulli":
            return out
        if c.decoder_log_std is not None:
            return out, jnp.full_like(out, c.decoder_log_std)
        mean, raw = jnp.split(out, 2, axis=-1)
        return mean, bounded_log_std(raw, c.min_log_std)
