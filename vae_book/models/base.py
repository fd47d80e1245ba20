r"""The interface every VAE in the book implements.

A model maps images ``x`` of shape ``(batch, H, W, C)`` with values in [0, 1] to the parameters of
the approximate posterior :math:`q_\phi(z\mid x)=\mathcal N(\mu,\operatorname{diag}\sigma^2)` (the
**encoder**), and codes ``z`` of shape ``(batch, z_dim)`` to the parameters of the likelihood
:math:`p_\theta(x\mid z)` (the **decoder**):

* ``likelihood == "bernoulli"``: ``decode(z)`` returns the pixel **logits**, shape ``(batch, H, W, C)``;
* ``likelihood == "gaussian"``: ``decode(z)`` returns ``(mean, log_std)``, each ``(batch, H, W, C)``;
  ``log_std`` is either learned per pixel (``decoder_log_std=None`` in the config) or fixed.

Everything else — the ELBO, the IWAE bound, training — is written once against this interface.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from vae_book import distributions as D
from vae_book._checks import check_array, check_images, check_key, check_positive_int

LIKELIHOODS = ("bernoulli", "gaussian")


class VAEOutput(NamedTuple):
    """What ``model(x, key)`` returns: the posterior parameters, the sampled code and the decoder output."""

    mean: jax.Array  #: posterior mean, (batch, z_dim)
    log_std: jax.Array  #: posterior log sigma, (batch, z_dim)
    z: jax.Array  #: reparameterized sample, (batch, z_dim)
    decoded: object  #: logits (bernoulli) or (mean, log_std) (gaussian), each (batch, H, W, C)


def check_likelihood(likelihood: str) -> str:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"`likelihood` must be one of {LIKELIHOODS}, got {likelihood!r}.")
    return likelihood


def bounded_log_std(raw, min_log_std: float):
    r"""Map an unconstrained output to a log sigma >= ``min_log_std`` smoothly: ``m + softplus(raw - m)``.

    Keeps a learned Gaussian decoder from shrinking sigma without bound (which makes the density, and
    the loss, diverge on pixels it reconstructs exactly) while staying differentiable everywhere.
    """
    return min_log_std + jax.nn.softplus(raw - min_log_std)


class VAE(nnx.Module):
    """Base class: subclasses define ``encode`` and ``decode`` and set ``config``.

    ``config`` is a frozen dataclass with at least ``image_shape`` (H, W, C), ``z_dim``,
    ``likelihood`` and (for Gaussian likelihoods) ``decoder_log_std``.
    """

    config: object

    # ----------------------------------------------------------------- to implement
    def encode(self, x):  # pragma: no cover - abstract
        """Images (batch, H, W, C) in [0, 1] -> (mean, log_std), each (batch, z_dim)."""
        raise NotImplementedError

    def decode(self, z):  # pragma: no cover - abstract
        """Codes (batch, z_dim) -> likelihood parameters (see the module docstring)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shared
    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.config.image_shape)

    @property
    def likelihood(self) -> str:
        return self.config.likelihood

    def check_input(self, x, name: str = "x"):
        """Validate a batch of images against this model's image shape and the [0, 1] range."""
        return check_images(x, name, image_shape=self.image_shape)

    def check_code(self, z, name: str = "z"):
        """Validate codes: shape (batch, z_dim)."""
        return check_array(z, name, shape=(None, self.z_dim))

    def __call__(self, x, key) -> VAEOutput:
        """Encode, draw one reparameterized code per image, decode. Returns a :class:`VAEOutput`."""
        key = check_key(key)
        mean, log_std = self.encode(x)
        z = D.sample_diag_gaussian(key, mean, log_std)
        return VAEOutput(mean, log_std, z, self.decode(z))

    def log_likelihood(self, x, decoded):
        r""":math:`\log p_\theta(x\mid z)` summed over pixels: shape (batch,), nats per image.

        ``decoded`` is what :meth:`decode` returned for the codes of ``x``.
        """
        if self.likelihood == "bernoulli":
            per_pixel = D.bernoulli_log_prob(x, decoded)
        else:
            mean, log_std = decoded
            per_pixel = D.gaussian_log_prob(x, mean, log_std)
        return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)

    def mean_image(self, decoded):
        """The mean of p(x|z) as displayable images in [0, 1], shape (batch, H, W, C)."""
        if self.likelihood == "bernoulli":
            return jax.nn.sigmoid(decoded)
        return jnp.clip(decoded[0], 0.0, 1.0)

    def decoder_std(self, decoded):
        """Per-pixel decoder sigma (batch, H, W, C) for Gaussian likelihoods; None for Bernoulli."""
        if self.likelihood == "bernoulli":
            return None
        return jnp.exp(decoded[1])

    def reconstruct(self, x):
        """Decode the posterior mean of each image: images (batch, H, W, C) in [0, 1]."""
        mean, _ = self.encode(x)
        return self.mean_image(self.decode(mean))

    def sample(self, key, n: int):
        """Draw ``n`` codes from the prior N(0, I) and return the decoder means, (n, H, W, C) in [0, 1]."""
        key = check_key(key)
        n = check_positive_int(n, "n")
        z = jax.random.normal(key, (n, self.z_dim))
        return self.mean_image(self.decode(z))

    def num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.size for p in jax.tree.leaves(nnx.state(self, nnx.Param)))


def config_dict(config) -> dict:
    """A JSON-friendly dict of a model config (tuples become lists), used for cache keys."""
    return {"kind": type(config).__name__, **dataclasses.asdict(config)}
