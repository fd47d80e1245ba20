"""The classic MLP VAE of Kingma & Welling (2014): one hidden Dense layer each way.

Encoder: flatten -> Dense(hidden) -> ReLU -> Dense(2 * z_dim) -> (mean, log_std).
Decoder: Dense(hidden) -> ReLU -> Dense(H * W * C_out) -> logits, or per-pixel (mean, log_std), where
``C_out`` is :attr:`~vae_book.models.base.VAEConfig.out_channels` (``2C`` for a learned sigma: all
the means first, then all the raw log sigmas).
Also a plain (deterministic) :class:`MLPAutoencoder` of the same shape, for the chapter that shows why
an autoencoder alone is not a generative model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from vae_book.models.base import VAE, VAEConfig, likelihood_stages, posterior_stages, set_config
from vae_book.profiles import MIN_LOG_STD


@dataclass(frozen=True)
class MLPConfig(VAEConfig):
    """Sizes of the MLP VAE: the fields of :class:`~vae_book.models.base.VAEConfig` and ``hidden``.

    ``decoder_log_std=None`` learns a per-pixel sigma; a float fixes it.
    """

    image_shape: tuple[int, int, int] = (28, 28, 1)
    hidden: int = 500
    z_dim: int = 20
    likelihood: str = "bernoulli"
    decoder_log_std: float | None = None
    min_log_std: float = MIN_LOG_STD

    def __post_init__(self):
        super().__post_init__()
        self.check_positive_ints("hidden")


class MLPVAE(VAE):
    """MLP encoder and decoder; see :class:`MLPConfig` for the sizes."""

    def __init__(self, config: MLPConfig = MLPConfig(), *, rngs: nnx.Rngs) -> None:
        set_config(self, config, MLPConfig)
        d = math.prod(config.image_shape)
        out = math.prod(config.image_shape[:2]) * config.out_channels
        self.enc_hidden = nnx.Linear(d, config.hidden, rngs=rngs)
        self.enc_out = nnx.Linear(config.hidden, 2 * config.z_dim, rngs=rngs)
        self.dec_hidden = nnx.Linear(config.z_dim, config.hidden, rngs=rngs)
        self.dec_out = nnx.Linear(config.hidden, out, rngs=rngs)

    def encoder_stages(self, x: jax.Array) -> dict[str, jax.Array]:
        """Images ``(B, H, W, C)`` in [0, 1] -> ``hidden`` ``(B, hidden)``, ``mean``, ``log_std`` ``(B, z_dim)``."""
        x = self.check_input(x)
        h = jax.nn.relu(self.enc_hidden(x.reshape(x.shape[0], -1)))
        return {"hidden": h, **posterior_stages(self.enc_out(h))}

    def decoder_stages(self, z: jax.Array) -> dict[str, jax.Array]:
        """Codes ``(B, z_dim)`` -> ``hidden`` ``(B, hidden)``, ``pixels`` ``(B, H, W, C_out)``, then
        the likelihood parameters ``(B, H, W, C)`` of :func:`~vae_book.models.base.likelihood_stages`."""
        z = self.check_code(z)
        c = self.config
        h = jax.nn.relu(self.dec_hidden(z))
        # (B, k * H * W * C), k parameter maps one after the other -> (B, H, W, k * C)
        out = self.dec_out(h).reshape(z.shape[0], -1, *c.image_shape)
        pixels = jnp.concatenate(jnp.unstack(out, axis=1), axis=-1)
        return {"hidden": h, "pixels": pixels, **likelihood_stages(pixels, c)}


class MLPAutoencoder(nnx.Module):
    """A deterministic autoencoder: x -> z = encode(x) -> logits = decode(z). Not a generative model."""

    def __init__(self, config: MLPConfig = MLPConfig(z_dim=2), *, rngs: nnx.Rngs) -> None:
        set_config(self, config, MLPConfig)
        d = math.prod(config.image_shape)
        self.enc_hidden = nnx.Linear(d, config.hidden, rngs=rngs)
        self.enc_out = nnx.Linear(config.hidden, config.z_dim, rngs=rngs)
        self.dec_hidden = nnx.Linear(config.z_dim, config.hidden, rngs=rngs)
        self.dec_out = nnx.Linear(config.hidden, d, rngs=rngs)

    @property
    def z_dim(self) -> int:
        """Code dimension (``config.z_dim``)."""
        return self.config.z_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the images."""
        return self.config.image_shape

    def encode(self, x: jax.Array) -> jax.Array:
        """Images (batch, H, W, C) in [0, 1] -> codes (batch, z_dim)."""
        x = VAE.check_input(self, x)
        return self.enc_out(jax.nn.relu(self.enc_hidden(x.reshape(x.shape[0], -1))))

    def decode(self, z: jax.Array) -> jax.Array:
        """Codes (batch, z_dim) -> pixel logits (batch, H, W, C)."""
        z = VAE.check_code(self, z)
        return self.dec_out(jax.nn.relu(self.dec_hidden(z))).reshape(z.shape[0], *self.config.image_shape)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Images (batch, H, W, C) in [0, 1] -> pixel logits (batch, H, W, C) through the bottleneck."""
        return self.decode(self.encode(x))

    def reconstruct(self, x: jax.Array) -> jax.Array:
        """Images in [0, 1] through the bottleneck: sigmoid(decode(encode(x)))."""
        return jax.nn.sigmoid(self(x))
