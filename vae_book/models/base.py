r"""The interface every VAE in the book implements, the config base and the shared likelihood head.

A model maps images ``x`` of shape ``(batch, H, W, C)`` with values in [0, 1] to the parameters of
the approximate posterior :math:`q_\phi(z\mid x)=\mathcal N(\mu,\operatorname{diag}\sigma^2)` (the
**encoder**), and codes ``z`` of shape ``(batch, z_dim)`` to the parameters of the likelihood
:math:`p_\theta(x\mid z)` (the **decoder**):

* ``likelihood == "bernoulli"``: ``decode(z)`` returns the pixel **logits**, shape ``(batch, H, W, C)``;
* ``likelihood == "gaussian"``: ``decode(z)`` returns ``(mean, log_std)``, each ``(batch, H, W, C)``;
  ``log_std`` is either learned per pixel (``decoder_log_std=None`` in the config) or fixed.

A model writes its forward pass once, as **named stages**: ``encoder_stages(x)`` and
``decoder_stages(z)`` return ordered dicts of every intermediate array. ``encode`` and ``decode``
are those same stages, read at their last entries (``mean``, ``log_std``; ``logits`` or ``mean``,
``log_std``), so a chapter that shows the stages shows exactly what the model computes.

The pieces every family shares live here once: :class:`VAEConfig` (the common fields and their
checks), :func:`posterior_stages` (the encoder's last split into ``mean`` and ``log_std``) and
:func:`likelihood_stages` (the decoder's last step, with the output-channel rule
:attr:`VAEConfig.out_channels`). Everything else — the ELBO, the IWAE bound, training — is written
once against this interface.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vae_book import distributions as D
from vae_book._checks import (as_float_images, check_array, check_images, check_key, check_number,
                              check_positive_int)
from vae_book.profiles import MIN_LOG_STD

LIKELIHOODS = ("bernoulli", "gaussian")
#: the compute dtypes a conv or transformer config may name (parameters are always float32)
COMPUTE_DTYPES = ("float32", "bfloat16")


class VAEOutput(NamedTuple):
    """What ``model(x, key)`` returns: the posterior parameters, the sampled code and the decoder output."""

    mean: jax.Array  #: posterior mean, (batch, z_dim)
    log_std: jax.Array  #: posterior log sigma, (batch, z_dim)
    z: jax.Array  #: reparameterized sample, (batch, z_dim)
    decoded: object  #: logits (bernoulli) or (mean, log_std) (gaussian), each (batch, H, W, C)


# --------------------------------------------------------------------------- config


def check_likelihood(likelihood: str) -> str:
    """Return ``likelihood`` if it is one of :data:`LIKELIHOODS`; raise a ``ValueError`` naming it otherwise."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"`likelihood` must be one of {LIKELIHOODS}, got {likelihood!r}.")
    return likelihood


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """The fields every model config has, and their checks; :class:`~vae_book.models.mlp.MLPConfig`,
    :class:`~vae_book.models.conv.ConvConfig` and :class:`~vae_book.models.transformer.TransformerConfig`
    inherit it (each with its own defaults) and add their sizes.

    Attributes:
        image_shape: ``(H, W, C)`` of positive ints (stored as a tuple).
        z_dim: latent dimension, a positive int.
        likelihood: ``"bernoulli"`` or ``"gaussian"``.
        decoder_log_std: ``None`` learns a per-pixel decoder log sigma; a finite float fixes it
            (Gaussian only, ignored for Bernoulli).
        min_log_std: finite lower bound of a learned decoder log sigma (see :func:`bounded_log_std`);
            default :data:`vae_book.profiles.MIN_LOG_STD` = log 0.1.

    Every check raises a ``ValueError`` that names the field, what it must be and what came.
    Subclasses check their own fields after calling ``super().__post_init__()``.
    """

    image_shape: tuple[int, int, int] = (28, 28, 1)
    z_dim: int = 20
    likelihood: str = "bernoulli"
    decoder_log_std: float | None = None
    min_log_std: float = MIN_LOG_STD

    def __post_init__(self):
        shape = self.image_shape
        if (isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3
                or any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 1
                       for s in shape)):
            raise ValueError(f"`image_shape` must be (H, W, C) of three positive ints, got {shape!r}.")
        object.__setattr__(self, "image_shape", tuple(int(s) for s in shape))
        self.check_positive_ints("z_dim")
        check_likelihood(self.likelihood)
        object.__setattr__(self, "decoder_log_std",
                           check_number(self.decoder_log_std, "decoder_log_std", allow_none=True))
        object.__setattr__(self, "min_log_std", check_number(self.min_log_std, "min_log_std"))

    def check_positive_ints(self, *names: str) -> None:
        """Check that the fields ``names`` are positive ints and store them as Python ints."""
        for name in names:
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))

    @property
    def out_channels(self) -> int:
        """Decoder outputs per pixel: ``2C`` (Gaussian with learned sigma: mean, raw log sigma) or ``C``."""
        c = self.image_shape[2]
        return 2 * c if self.likelihood == "gaussian" and self.decoder_log_std is None else c


def check_compute_dtype(dtype: object, name: str = "dtype") -> str:
    """Return ``dtype`` if it names one of :data:`COMPUTE_DTYPES`; raise a ``ValueError`` naming ``name``
    otherwise.

    The compute dtype is that of the matrix products and activations; parameters, optimiser state,
    softmax, LayerNorm statistics and the loss stay float32 whatever it is.
    """
    if not isinstance(dtype, str) or dtype not in COMPUTE_DTYPES:
        raise ValueError(f"`{name}` must be one of {COMPUTE_DTYPES} (the compute dtype; parameters stay "
                         f"float32), got {dtype!r}.")
    return dtype


def set_config(module: nnx.Module, config: object, kind: type) -> None:
    """Set ``module.config`` after checking that ``config`` is a ``kind`` (the family's config class)."""
    if not isinstance(config, kind):
        raise ValueError(f"`config` must be a {kind.__name__}, got {type(config).__name__} {config!r}"[:300] + ".")
    module.config = config


def config_dict(config: VAEConfig) -> dict:
    """A JSON-friendly dict of a model config (tuples become lists), used for cache keys."""
    return {"kind": type(config).__name__, **dataclasses.asdict(config)}


# --------------------------------------------------------------------------- heads


def bounded_log_std(raw: jax.Array, min_log_std: float) -> jax.Array:
    r"""Map an unconstrained output to a log sigma >= ``min_log_std`` smoothly: ``m + softplus(raw - m)``.

    Keeps a learned Gaussian decoder from shrinking sigma without bound (which makes the density, and
    the loss, diverge on pixels it reconstructs exactly) while staying differentiable everywhere.
    Any shape in, the same shape out.
    """
    return min_log_std + jax.nn.softplus(raw - min_log_std)


def posterior_stages(out: jax.Array) -> dict[str, jax.Array]:
    r"""The encoder's last step: split its output ``(B, 2 z_dim)`` into the parameters of :math:`q_\phi(z\mid x)`.

    Returns ``{"mean": (B, z_dim), "log_std": (B, z_dim)}`` (the first half, then the second), float32.
    """
    mean, log_std = jnp.split(out.astype(jnp.float32), 2, axis=-1)
    return {"mean": mean, "log_std": log_std}


def likelihood_stages(out: jax.Array, config: VAEConfig) -> dict[str, jax.Array]:
    r"""The decoder's last step, shared by every family: its output -> the parameters of :math:`p_\theta(x\mid z)`.

    Args:
        out: ``(B, H, W, config.out_channels)``; for a learned sigma the first ``C`` channels are the
            mean and the last ``C`` the raw (unconstrained) log sigma.
        config: the model's :class:`VAEConfig` (``likelihood``, ``decoder_log_std``, ``min_log_std``).

    Returns:
        An ordered dict of ``(B, H, W, C)`` arrays, float32: ``{"logits"}`` (Bernoulli),
        ``{"mean", "log_std"}`` (Gaussian, ``log_std`` filled with the fixed ``decoder_log_std``), or
        ``{"raw log_std", "mean", "log_std"}`` (learned sigma, ``log_std`` =
        :func:`bounded_log_std` of the raw one).
    """
    out = out.astype(jnp.float32)
    if config.likelihood == "bernoulli":
        return {"logits": out}
    if config.decoder_log_std is not None:
        return {"mean": out, "log_std": jnp.full_like(out, config.decoder_log_std)}
    mean, raw = jnp.split(out, 2, axis=-1)
    return {"raw log_std": raw, "mean": mean, "log_std": bounded_log_std(raw, config.min_log_std)}


def decoded_from_stages(stages: dict[str, jax.Array], likelihood: str) -> jax.Array | tuple[jax.Array, jax.Array]:
    """What ``decode`` returns, read from the end of :meth:`VAE.decoder_stages`: ``stages["logits"]``
    (Bernoulli) or ``(stages["mean"], stages["log_std"])`` (Gaussian), each ``(B, H, W, C)``."""
    if likelihood == "bernoulli":
        return stages["logits"]
    return stages["mean"], stages["log_std"]


# --------------------------------------------------------------------------- interface


class VAE(nnx.Module):
    """Base class: subclasses define ``encoder_stages`` and ``decoder_stages`` and set ``config``.

    ``config`` is a :class:`VAEConfig`. ``encode`` and ``decode`` run those stages and return their
    last entries, so every model has one forward pass (a subclass may instead override ``encode`` /
    ``decode`` directly, but then it has no stages to show).
    """

    config: VAEConfig

    # ----------------------------------------------------------------- to implement
    def encoder_stages(self, x: jax.Array) -> dict[str, jax.Array]:  # pragma: no cover - abstract
        """Images (batch, H, W, C) in [0, 1] -> every intermediate array in order, ending in
        ``mean`` and ``log_std``, each (batch, z_dim)."""
        raise NotImplementedError

    def decoder_stages(self, z: jax.Array) -> dict[str, jax.Array]:  # pragma: no cover - abstract
        """Codes (batch, z_dim) -> every intermediate array in order, ending in what
        :func:`likelihood_stages` returns."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shared
    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Images (batch, H, W, C) in [0, 1] -> (mean, log_std), each (batch, z_dim): the last
        two of :meth:`encoder_stages`."""
        stages = self.encoder_stages(x)
        return stages["mean"], stages["log_std"]

    def decode(self, z: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Codes (batch, z_dim) -> likelihood parameters (see the module docstring): the last
        entries of :meth:`decoder_stages`."""
        return decoded_from_stages(self.decoder_stages(z), self.likelihood)

    @property
    def z_dim(self) -> int:
        """Latent dimension (``config.z_dim``)."""
        return self.config.z_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the images (``config.image_shape``)."""
        return tuple(self.config.image_shape)

    @property
    def likelihood(self) -> str:
        """``"bernoulli"`` or ``"gaussian"`` (``config.likelihood``)."""
        return self.config.likelihood

    def check_input(self, x: jax.Array, name: str = "x") -> jax.Array:
        """Validate a batch of images against this model's image shape and the [0, 1] range; return it
        as floats (a uint8 batch, 8-bit images, becomes float32 ``x / 255``)."""
        return as_float_images(check_images(x, name, image_shape=self.image_shape))

    def check_code(self, z: jax.Array, name: str = "z") -> jax.Array:
        """Validate codes: shape (batch, z_dim)."""
        return check_array(z, name, shape=(None, self.z_dim))

    def __call__(self, x: jax.Array, key: jax.Array) -> VAEOutput:
        """Encode, draw one reparameterized code per image, decode. Returns a :class:`VAEOutput`."""
        key = check_key(key)
        mean, log_std = self.encode(x)
        z = D.sample_diag_gaussian(key, mean, log_std)
        return VAEOutput(mean, log_std, z, self.decode(z))

    def log_likelihood(self, x: jax.Array, decoded: jax.Array | tuple[jax.Array, jax.Array]) -> jax.Array:
        r""":math:`\log p_\theta(x\mid z)` summed over pixels: shape (batch,), nats per image.

        ``decoded`` is what :meth:`decode` returned for the codes of ``x``; ``x`` is checked like an
        input (shape, values in [0, 1]).
        """
        x = self.check_input(x)
        if self.likelihood == "bernoulli":
            per_pixel = D.bernoulli_log_prob(x, decoded)
        else:
            mean, log_std = decoded
            per_pixel = D.gaussian_log_prob(x, mean, log_std)
        return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)

    def mean_image(self, decoded: jax.Array | tuple[jax.Array, jax.Array]) -> jax.Array:
        """The mean of p(x|z) as displayable images in [0, 1], shape (batch, H, W, C)."""
        if self.likelihood == "bernoulli":
            return jax.nn.sigmoid(decoded)
        return jnp.clip(decoded[0], 0.0, 1.0)

    def decoder_std(self, decoded: jax.Array | tuple[jax.Array, jax.Array]) -> jax.Array | None:
        """Per-pixel decoder sigma (batch, H, W, C) for Gaussian likelihoods; None for Bernoulli."""
        if self.likelihood == "bernoulli":
            return None
        return jnp.exp(decoded[1])

    def reconstruct(self, x: jax.Array) -> jax.Array:
        """Decode the posterior mean of each image: images (batch, H, W, C) in [0, 1]."""
        mean, _ = self.encode(x)
        return self.mean_image(self.decode(mean))

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """Draw ``n`` codes from the prior N(0, I) and return the decoder means, (n, H, W, C) in [0, 1]."""
        key = check_key(key)
        n = check_positive_int(n, "n")
        z = jax.random.normal(key, (n, self.z_dim))
        return self.mean_image(self.decode(z))

    def draw(self, key: jax.Array, decoded: jax.Array | tuple[jax.Array, jax.Array]) -> jax.Array:
        r"""One image drawn from :math:`p_\theta(x\mid z)` for each decoded code, (batch, H, W, C).

        ``decoded`` is what :meth:`decode` returned. Bernoulli: every pixel 1 with its probability,
        else 0. Gaussian: :math:`x = \mu + \sigma\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`,
        independently per pixel value, *not* clipped (the density has mass outside [0, 1]; clip it
        to display it). The decoder mean (:meth:`mean_image`) is the average of such draws.
        """
        key = check_key(key)
        if self.likelihood == "bernoulli":
            return jax.random.bernoulli(key, jax.nn.sigmoid(decoded)).astype(jnp.float32)
        mean, log_std = decoded
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    def num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.size for p in jax.tree.leaves(nnx.state(self, nnx.Param)))
