r"""Posterior collapse at :math:`\beta = 1`, and its two standard remedies, for chapter 9.

The study needs data whose :math:`\log p(x)` is exact, and a decoder that can model that data without
any code. Both are here:

* :func:`markov_images` — binary images whose pixels, read in raster order, form a Markov chain: the
  first pixel is a fair coin, and every later pixel repeats the one before it with probability
  :math:`1 - \text{flip}`. Its exact log-likelihood (:func:`markov_log_prob`) is
  :math:`-\log 2 + \sum_{d \ge 2}\log\big(\text{flip}\text{ if } x_d \ne x_{d-1}\text{ else }1 - \text{flip}\big)`.
* :class:`AutoregressiveVAE` — the MLP VAE of :mod:`vae_book.models.mlp` whose Bernoulli decoder also
  sees the pixels before each one: the logit of pixel :math:`d` is the code's logit plus a function of
  :math:`x_{<d}` (direct masked connections, as in an FVSBN, and one masked hidden layer, as in MADE,
  Germain et al. 2015). The likelihood :math:`p(x\mid z) = \prod_d p(x_d\mid x_{<d}, z)` is still
  exact and normalised, so the ELBO is still a bound on :math:`\log p(x)`.
* :func:`pretrain_decoder` fits the decoder's autoregressive part alone (the code's logits at 0): a
  decoder that already models the data, as a pretrained one does.
* :func:`collapse_study` trains the factorised and the autoregressive VAE at :math:`\beta = 1`, the
  pretrained one at :math:`\beta = 1`, with a KL warm-up and with free bits, and measures each.

Everything is in nats per image.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx
from jax.typing import ArrayLike

from vae_book import evaluation, latent, objectives
from vae_book._checks import check_images, check_key, check_number, check_positive_int, check_seed
from vae_book.models.base import set_config
from vae_book.models.mlp import MLPConfig, MLPVAE
from vae_book.train import History, fit

__all__ = [
    "markov_images",
    "markov_log_prob",
    "AutoregressiveConfig",
    "AutoregressiveVAE",
    "pretrain_decoder",
    "CollapseStudy",
    "collapse_study",
]

#: the flip probability of :func:`markov_images` used by the chapter
FLIP = 0.1


def _check_flip(flip: float) -> float:
    return check_number(flip, "flip", minimum=0.0, strict=True, below=1.0)


def markov_images(num: int, *, side: int = 8, flip: float = FLIP, seed: int = 0) -> np.ndarray:
    """``num`` binary images (num, side, side, 1) float32 in {0, 1}: a raster-order Markov chain per image.

    The first pixel is 0 or 1 with probability 1/2; each later pixel differs from the one before it
    (in raster order) with probability ``flip``.
    """
    num = check_positive_int(num, "num")
    side = check_positive_int(side, "side")
    flip = _check_flip(flip)
    rng = np.random.default_rng(check_seed(seed))
    changes = (rng.uniform(size=(num, side * side)) < flip).astype(np.int64)
    changes[:, 0] = rng.integers(0, 2, num)
    return (np.cumsum(changes, axis=1) % 2).astype(np.float32).reshape(num, side, side, 1)


def markov_log_prob(images: ArrayLike, *, flip: float = FLIP) -> np.ndarray:
    """Exact log-likelihood (nats, shape (num,)) of binary images under :func:`markov_images`' chain."""
    flip = _check_flip(flip)
    x = np.asarray(check_images(images, "images"))
    if not np.all((x == 0) | (x == 1)):
        raise ValueError("`images` must be binary (every value 0 or 1), got values strictly between 0 and 1.")
    x = x.reshape(x.shape[0], -1)
    changed = x[:, 1:] != x[:, :-1]
    return -math.log(2) + np.where(changed, math.log(flip), math.log1p(-flip)).sum(axis=1)


@dataclass(frozen=True)
class AutoregressiveConfig(MLPConfig):
    """The MLP VAE's sizes (Bernoulli only) and ``made_hidden``, the masked hidden layer's width."""

    image_shape: tuple[int, int, int] = (8, 8, 1)
    hidden: int = 128
    z_dim: int = 8
    made_hidden: int = 128

    def __post_init__(self):
        super().__post_init__()
        self.check_positive_ints("made_hidden")
        if self.likelihood != "bernoulli":
            raise ValueError(
                f"`likelihood` must be 'bernoulli' for the autoregressive decoder, got {self.likelihood!r}.")


class AutoregressiveVAE(MLPVAE):
    r"""The MLP VAE with a decoder that also sees the pixels before each one (raster order).

    ``decode(z)`` returns the code's logits, as for :class:`~vae_book.models.mlp.MLPVAE`;
    :meth:`log_likelihood` adds to them the autoregressive logits of ``x`` itself, so
    :math:`\log p(x\mid z) = \sum_d \log p(x_d \mid x_{<d}, z)`. Pixel :math:`d` sees pixel :math:`j`
    only if :math:`j < d` (both the direct weights and the hidden layer's masks ensure it; a test
    checks that no logit depends on its own or a later pixel).
    """

    def __init__(self, config: AutoregressiveConfig = AutoregressiveConfig(), *, rngs: nnx.Rngs) -> None:
        set_config(self, config, AutoregressiveConfig)
        super().__init__(config, rngs=rngs)
        d, h = math.prod(config.image_shape), config.made_hidden
        order = np.arange(1, d + 1)  # pixel d has degree d
        degree = np.random.default_rng(0).integers(1, d, h) if d > 1 else np.ones(h, np.int64)
        self.direct_mask = nnx.Variable(jnp.asarray(order[:, None] < order[None, :], jnp.float32))  # (d, d)
        self.in_mask = nnx.Variable(jnp.asarray(order[:, None] <= degree[None, :], jnp.float32))  # (d, h)
        self.out_mask = nnx.Variable(jnp.asarray(degree[:, None] < order[None, :], jnp.float32))  # (h, d)
        self.direct = nnx.Param(jnp.zeros((d, d)))
        self.made_in = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (d, h)))
        self.made_bias = nnx.Param(jnp.zeros((h,)))
        self.made_out = nnx.Param(jnp.zeros((h, d)))

    def autoregressive_logits(self, x: jax.Array) -> jax.Array:
        """The logits' part that depends on ``x`` itself, (batch, H, W, 1): pixel d sees only x_{<d}."""
        x = self.check_input(x)
        flat = x.reshape(x.shape[0], -1)
        hidden = jax.nn.relu(flat @ (self.made_in[...] * self.in_mask[...]) + self.made_bias[...])
        logits = flat @ (self.direct[...] * self.direct_mask[...]) + hidden @ (self.made_out[...] * self.out_mask[...])
        return logits.reshape(x.shape)

    def log_likelihood(self, x: jax.Array, decoded: jax.Array) -> jax.Array:
        r""":math:`\sum_d \log p(x_d\mid x_{<d}, z)`, shape (batch,), nats per image."""
        x = self.check_input(x)
        return super().log_likelihood(x, decoded + self.autoregressive_logits(x))

    def draw(self, key: jax.Array, decoded: jax.Array) -> jax.Array:
        """One image drawn from p(x|z) per decoded code, pixel by pixel in raster order, (batch, H, W, 1)."""
        key = check_key(key)
        d = math.prod(self.image_shape)
        noise = jax.random.uniform(key, (decoded.shape[0], d))
        code_logits = decoded.reshape(decoded.shape[0], -1)

        def step(i, x):
            logits = code_logits + self.autoregressive_logits(x.reshape(-1, *self.image_shape)).reshape(x.shape)
            return x.at[:, i].set((noise[:, i] < jax.nn.sigmoid(logits[:, i])).astype(x.dtype))

        return jax.lax.fori_loop(0, d, step, jnp.zeros_like(code_logits)).reshape(-1, *self.image_shape)

    def mean_image(self, decoded: jax.Array) -> jax.Array:
        """Not defined: the decoder's pixel probabilities depend on the pixels drawn before them."""
        raise NotImplementedError(
            "an autoregressive decoder has no per-pixel mean given z alone; use draw(key, decoded) or sample_images")

    def sample_images(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` images drawn from the model: z ~ N(0, I), then x ~ p(x|z) pixel by pixel."""
        key = check_key(key)
        n = check_positive_int(n, "n")
        k_z, k_x = jax.random.split(key)
        return self.draw(k_x, self.decode(jax.random.normal(k_z, (n, self.z_dim))))


def _decoder_alone(model: AutoregressiveVAE, x: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
    """Minus the mean log-likelihood of the decoder with the code's logits at 0 (``key`` unused)."""
    nll = -jnp.mean(model.log_likelihood(x, jnp.zeros(x.shape, x.dtype)))
    return nll, {"loss": nll}


def pretrain_decoder(model: AutoregressiveVAE, images: ArrayLike, *, steps: int, batch_size: int = 100,
                     learning_rate: float = 1e-3, seed: int = 0) -> History:
    """Fit the decoder's autoregressive part alone on ``images`` (in place): a decoder that needs no code.

    The encoder and the code's decoder layers get zero gradients and stay as they were.
    """
    if not isinstance(model, AutoregressiveVAE):
        raise ValueError(f"`model` must be an AutoregressiveVAE, got {type(model).__name__}.")
    return fit(model, images, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
               loss_fn=_decoder_alone, progress=False)


def decoder_alone_log_prob(model: AutoregressiveVAE, images: ArrayLike) -> np.ndarray:
    """Log-likelihood (nats, (num,)) of ``images`` under the decoder with the code's logits at 0."""
    x = model.check_input(images, "images")
    return np.asarray(model.log_likelihood(x, jnp.zeros(x.shape, x.dtype)))


@dataclass
class CollapseStudy:
    """What :func:`collapse_study` measured. ``table`` has one row per run; ``histories`` its training logs."""

    table: pd.DataFrame
    histories: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  #: the trained models, by run name
    exact_log_px: float = math.nan  #: the exact mean held-out log p(x), nats per image
    decoder_alone: float = math.nan  #: the pretrained decoder's mean held-out log-likelihood without a code
    free_bits: float = math.nan
    warmup_steps: int = 0
    test_images: np.ndarray | None = None  #: the held-out images


def _measure(model, images, key, repeats: int = 5) -> dict:
    """Held-out ELBO (``repeats`` reparameterized draws per image), rate and active units of ``model``."""
    activity = latent.latent_activity(*latent.encode(model, images))
    elbo, _, _ = evaluation.elbo_per_image(model, images, key, num_samples=repeats)
    return {"held-out ELBO": float(np.mean(elbo)), "rate": float(activity["kl"].sum()),
            "active (Var > 0.01)": int(np.sum(activity["mean_var"] > 0.01)),
            "active (Var > 0.1)": int(np.sum(activity["mean_var"] > 0.1))}


def collapse_study(*, steps: int, side: int = 8, flip: float = FLIP, num_train: int = 5000, num_test: int = 1000,
                   z_dim: int = 8, hidden: int = 128, made_hidden: int = 128, batch_size: int = 100,
                   learning_rate: float = 1e-3, free_bits: float = 0.5, warmup_fraction: float = 0.5,
                   seed: int = 0) -> CollapseStudy:
    r"""Train five VAEs on :func:`markov_images` for ``steps`` updates each and measure them on held-out images.

    Runs: the factorised MLP VAE at :math:`\beta = 1`; the :class:`AutoregressiveVAE` at :math:`\beta = 1`
    from scratch; and the autoregressive VAE whose decoder was first pretrained alone for ``steps``
    updates (:func:`pretrain_decoder`), then trained at :math:`\beta = 1`, with a linear KL warm-up from
    0 to 1 over the first ``warmup_fraction`` of the steps, and with ``free_bits`` nats per latent
    dimension (:func:`vae_book.objectives.vae_loss`). Every run starts from the same initialisation.

    Returns:
        :class:`CollapseStudy`: per run the held-out ELBO (:func:`vae_book.evaluation.elbo_per_image`,
        5 draws per image), the rate (mean KL, nats), the active units at Burda's threshold 0.01 and at
        0.1, the gap to the exact :math:`\log p(x)`, and the training seconds.
    """
    steps = check_positive_int(steps, "steps")
    free_bits = check_number(free_bits, "free_bits", minimum=0.0, strict=True)
    warmup_fraction = check_number(warmup_fraction, "warmup_fraction", minimum=0.0, strict=True)
    if warmup_fraction > 1:
        raise ValueError(f"`warmup_fraction` must be in (0, 1], got {warmup_fraction!r}.")
    seed = check_seed(seed)
    train = markov_images(num_train, side=side, flip=flip, seed=seed)
    test = markov_images(num_test, side=side, flip=flip, seed=seed + 1)
    exact = float(np.mean(markov_log_prob(test, flip=flip)))
    config = AutoregressiveConfig(image_shape=(side, side, 1), hidden=hidden, z_dim=z_dim, made_hidden=made_hidden)
    factorised = MLPConfig(image_shape=(side, side, 1), hidden=hidden, z_dim=z_dim, likelihood="bernoulli")
    pretrained = AutoregressiveVAE(config, rngs=nnx.Rngs(seed))
    pretrain_decoder(pretrained, train, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    decoder_alone = float(np.mean(decoder_alone_log_prob(pretrained, test)))
    weights = jax.tree.map(np.asarray, nnx.state(pretrained))

    def from_pretrained():
        model = AutoregressiveVAE(config, rngs=nnx.Rngs(seed))
        nnx.update(model, jax.tree.map(jnp.asarray, weights))
        return model

    warmup_steps = max(1, round(warmup_fraction * steps))
    runs = {
        "factorised decoder, β = 1": (lambda: MLPVAE(factorised, rngs=nnx.Rngs(seed)), {}),
        "autoregressive decoder, β = 1": (lambda: AutoregressiveVAE(config, rngs=nnx.Rngs(seed)), {}),
        "pretrained autoregressive, β = 1": (from_pretrained, {}),
        "pretrained, KL warm-up": (from_pretrained, {"beta": optax.linear_schedule(0.0, 1.0, warmup_steps)}),
        f"pretrained, free bits {free_bits:g}": (
            from_pretrained, {"loss_fn": functools.partial(objectives.vae_loss, free_bits=free_bits)}),
    }
    rows, histories, models = [], {}, {}
    key = jax.random.key(seed + 2)
    for name, (make, options) in runs.items():
        model = make()
        start = time.perf_counter()
        history = fit(model, train, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                      progress=False, **options)
        seconds = time.perf_counter() - start
        measured = _measure(model, test, key)
        rows.append({"run": name, **measured, "gap to log p(x)": exact - measured["held-out ELBO"],
                     "seconds": seconds})
        histories[name], models[name] = history, model
    table = pd.DataFrame(rows).set_index("run")
    return CollapseStudy(table=table, histories=histories, models=models, exact_log_px=exact,
                         decoder_alone=decoder_alone, free_bits=free_bits, warmup_steps=warmup_steps,
                         test_images=test)
