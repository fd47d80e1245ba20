"""The classic MLP VAE of Kingma & Welling (2014): one hidden Dense layer each way.

Encoder: flatten -> Dense(hidden) -> ReLU -> Dense(2 * z_dim) -> (mean, log_std).
Decoder: Dense(hidden) -> ReLU -> Dense(H * W * C [* 2]) -> logits, or per-pixel (mean, log_std).
Also a plain (deterministic) :class:`MLPAutoencoder` of the same shape, for the chapter that shows why
an autoencoder alone is not a generative model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from vae_book._checks import check_positive_int
from vae_book.models.base import VAE, bounded_log_std, check_likelihood


@dataclass(frozen=True)
class MLPConfig:
    """Sizes of the MLP VAE. ``decoder_log_std=None`` learns a per-pixel sigma; a float fixes it."""

    image_shape: tuple[int, int, int] = (28, 28, 1)
    hidden: int = 500
    z_dim: int = 20
    likelihood: str = "bernoulli"
    decoder_log_std: float | None = None
    min_log_std: float = -5.0

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        if len(self.image_shape) != 3:
            raise ValueError(f"`image_shape` must be (H, W, C), got {self.image_shape!r}.")
        check_positive_int(self.hidden, "hidden")
        check_positive_int(self.z_dim, "z_dim")
        check_likelihood(self.likelihood)


class MLPVAE(VAE):
    """MLP encoder and decoder; see :class:`MLPConfig` for the sizes."""

    def __init__(self, config: MLPConfig = MLPConfig(), *, rngs: nnx.Rngs):
        self.config = config
        d = math.prod(config.image_shape)
        out = d * (2 if config.likelihood == "gaussian" and config.decoder_log_std is None else 1)
        self.enc_hidden = nnx.Linear(d, config.hidden, rngs=rngs)
        self.enc_out = nnx.Linear(config.hidden, 2 * config.z_dim, rngs=rngs)
        self.dec_hidden = nnx.Linear(config.z_dim, config.hidden, rngs=rngs)
        self.dec_out = nnx.Linear(config.hidden, out, rngs=rngs)

    def encode(self, x):
        x = self.check_input(x)
        h = jax.nn.relu(self.enc_hidden(x.reshape(x.shape[0], -1)))
        mean, log_std = jnp.split(self.enc_out(h), 2, axis=-1)
        return mean, log_std

    def decode(self, z):
        z = self.check_code(z)
        c = self.config
        out = self.dec_out(jax.nn.relu(self.dec_hidden(z)))
        if c.likelihood == "bernoulli":
            return out.reshape(z.shape[0], *c.image_shape)
        if c.decoder_log_std is not None:
            mean = out.reshape(z.shape[0], *c.image_shape)
            return mean, jnp.full_like(mean, c.decoder_log_std)
        mean, raw = jnp.split(out, 2, axis=-1)
        shape = (z.shape[0], *c.image_shape)
        return mean.reshape(shape), bounded_log_std(raw, c.min_log_std).reshape(shape)


class MLPAutoencoder(nnx.Module):
    """A deterministic autoencoder: x -> z = encode(x) -> logits = decode(z). Not a generative model."""

    def __init__(self, config: MLPConfig = MLPConfig(z_dim=2), *, rngs: nnx.Rngs):
        self.config = config
        d = math.prod(config.image_shape)
        self.enc_hidden = nnx.Linear(d, config.hidden, rngs=rngs)
        self.enc_out = nnx.Linear(config.hidden, config.z_dim, rngs=rngs)
        self.dec_hidden = nnx.Linear(config.z_dim, config.hidden, rngs=rngs)
        self.dec_out = nnx.Linear(config.hidden, d, rngs=rngs)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def image_shape(self):
        return self.config.image_shape

    def encode(self, x):
        """Images (batch, H, W, C) in [0, 1] -> codes (batch, z_dim)."""
        x = VAE.check_input(self, x)
        return self.enc_out(jax.nn.relu(self.enc_hidden(x.reshape(x.shape[0], -1))))

    def decode(self, z):
        """Codes (batch, z_dim) -> pixel logits (batch, H, W, C)."""
        z = VAE.check_code(self, z)
        return self.dec_out(jax.nn.relu(self.dec_hidden(z))).reshape(z.shape[0], *self.config.image_shape)

    def __call__(self, x):
        return self.decode(self.encode(x))

    def reconstruct(self, x):
        """Images in [0, 1] through the bottleneck: sigmoid(decode(encode(x)))."""
        return jax.nn.sigmoid(self(x))
