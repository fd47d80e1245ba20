r"""Evaluating a VAE: importance-weighted log-likelihoods, bits per dimension, active units, one table.

The ELBO is a lower bound whose gap is unknown. The importance-weighted bound of Burda et al. (2016),

.. math::
    \mathcal L_K(x) = \mathbb E\Big[\log\frac1K\sum_{k=1}^K \frac{p_\theta(x\mid z_k)\,p(z_k)}{q_\phi(z_k\mid x)}\Big],
    \qquad z_k\sim q_\phi(z\mid x),

tightens towards :math:`\log p_\theta(x)` as K grows; one draw of the K samples gives one *estimate*
of it. This module turns those estimates into the numbers a paper reports, with their spread over
repeated estimates:

* :func:`dataset_log_weights` — the K log weights of every held-out image, in batches (a driver of
  :func:`vae_book.objectives.log_importance_weights`, the one definition of a log weight);
* :func:`iwae_curve` — the estimate for several K from one set of draws (disjoint groups);
* :func:`evaluate` — one model on one held-out set: ELBO, :math:`\mathcal L_K` ± spread, rate,
  distortion, active units, bits per dimension; :func:`comparison_table` puts several in a table.

Per-dimension KL and active units have one home, :func:`vae_book.latent.latent_activity`.

Units. Log-likelihoods are **nats per image** (summed over pixels). **Bits per dimension** are
``-log P(x) / (D ln 2)`` of a *discrete* probability ``P``. A Bernoulli likelihood on binary pixels
already gives one. A Gaussian likelihood gives a *density* on :math:`[0,1]^D`; for data stored with
``levels`` grey levels at the values :math:`k/(L-1)`, each value stands for a bin of width
:math:`\Delta = 1/(L-1)`, and the probability of the bin is approximately density times width,

.. math::
    \log P(x) \approx \log p(x) + D\log\Delta = \log p(x) - D\log(L-1),

so bits per dimension are :math:`-\log p(x)/(D\ln2) + \log_2(L-1)` (see :func:`bits_per_dim`; the
convention of writing :math:`\log_2 256 = 8` comes from scaling integers by 1/256 instead of 1/255 and
differs by :math:`\log_2(256/255)\approx 0.0056` bits per dimension).

Longer than 400 lines because the units (quantisation,
bits per dimension, the discretized Gaussian) and the estimators reported in them are defined
together here, the one place chapter 10's numbers come from.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike
from scipy import special

from vae_book import latent, objectives
from vae_book._checks import as_float_images, check_array, check_images, check_key, check_positive_int
from vae_book.data import batch_slices

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "bin_width",
    "quantize",
    "is_quantized",
    "bits_per_dim",
    "discretized_gaussian_log_prob",
    "elbo_per_image",
    "rate_distortion",
    "dataset_log_weights",
    "group_estimates",
    "log_spaced_divisors",
    "IWAECurve",
    "iwae_curve",
    "Evaluation",
    "evaluate",
    "comparison_table",
]


# --------------------------------------------------------------------------------------------------
# discrete data, densities and bits per dimension
# --------------------------------------------------------------------------------------------------


def _check_levels(levels, name: str = "levels") -> int:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ValueError(f"`{name}` must be an integer >= 2 (e.g. 256 for 8-bit images), got {levels!r}.")
    return int(levels)


def bin_width(levels: int = 256) -> float:
    r"""Width :math:`\Delta = 1/(L-1)` of the bin around each of ``levels`` values :math:`k/(L-1)` in [0, 1]."""
    return 1.0 / (_check_levels(levels) - 1)


def quantize(images: ArrayLike, levels: int = 256) -> np.ndarray:
    """Round images in [0, 1] to the nearest of ``levels`` values ``k / (levels - 1)`` (float32, same shape).

    This is what storing the images as ``log2(levels)``-bit files would do; 8-bit data is ``levels=256``.
    """
    levels = _check_levels(levels)
    x = np.asarray(as_float_images(check_images(images, "images")), np.float32)
    return (np.round(x * (levels - 1)) / np.float32(levels - 1)).astype(np.float32)


def is_quantized(images: ArrayLike, levels: int = 256, atol: float = 1e-5) -> bool:
    """True if every value of ``images`` is within ``atol`` of one of the ``levels`` grid values."""
    levels = _check_levels(levels)
    x = np.asarray(images, np.float64) * (levels - 1)
    return bool(np.all(np.abs(x - np.round(x)) <= atol * (levels - 1)))


def bits_per_dim(log_px: ArrayLike, num_dims: int, *, levels: int | None = None) -> float | np.ndarray:
    r"""Bits per dimension of a log-likelihood ``log_px`` (nats per image) over ``num_dims`` dimensions.

    * ``levels=None``: ``log_px`` is the log of a *probability* (e.g. a Bernoulli likelihood on binary
      pixels): ``-log_px / (D ln 2)``.
    * ``levels=L``: ``log_px`` is the log of a *density* on [0, 1]^D for data on the ``L`` values
      ``k/(L-1)``. The probability of a pixel's bin of width :math:`\Delta=1/(L-1)` is approximately
      density times width, so :math:`\log P \approx \log p - D\log(L-1)` and the result is
      ``-log_px / (D ln 2) + log2(L - 1)``.

    Returns a float (or an array of the shape of ``log_px``); lower is better.
    """
    num_dims = check_positive_int(num_dims, "num_dims")
    try:  # float64 all the way: a float32 round trip would move the result by ~1e-7 bits
        log_px = np.asarray(log_px, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`log_px` must be a number or an array of numbers (nats per image), "
                         f"got {type(log_px).__name__} {log_px!r:.60}.") from None
    bpd = -log_px / (num_dims * math.log(2.0))
    if levels is not None:
        bpd = bpd + math.log2(_check_levels(levels) - 1)
    return float(bpd) if bpd.ndim == 0 else bpd


def _binned_log_prob(x, mean, log_std, width: float):
    """log(Phi(b) - Phi(a)) of :func:`discretized_gaussian_log_prob`, unchecked (traceable)."""
    half = 0.5 * width
    inv = jnp.exp(-log_std)
    a = (x - half - mean) * inv
    b = (x + half - mean) * inv
    # log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b))); mirror when a > 0.
    upper = a > 0
    lo, hi = jnp.where(upper, -b, a), jnp.where(upper, -a, b)
    log_hi = jax.scipy.special.log_ndtr(hi)
    log_lo = jax.scipy.special.log_ndtr(lo)
    return log_hi + jnp.log(-jnp.expm1(jnp.minimum(log_lo - log_hi, -1e-30)))


def discretized_gaussian_log_prob(x: ArrayLike, mean: ArrayLike, log_std: ArrayLike, *,
                                  levels: int = 256) -> jax.Array:
    r"""Elementwise log-probability of the bin :math:`[x-\Delta/2,\,x+\Delta/2]` under :math:`\mathcal N(\mu,\sigma^2)`.

    .. math::
        \log\big(\Phi(b) - \Phi(a)\big),\quad a = \frac{x - \Delta/2 - \mu}{\sigma},
        \ b = \frac{x + \Delta/2 - \mu}{\sigma},

    with :math:`\Delta = 1/(L-1)`, computed stably on the side of the mean where the tail is small.
    This is the exact probability that :func:`bits_per_dim` approximates by density times width.

    Args:
        x: values on the grid ``k/(levels-1)``; mean, log_std: broadcast-compatible (``log_std`` = log sigma).

    Returns:
        Array of the broadcast shape (nats).
    """
    x = check_array(x, "x", value_range=(0.0, 1.0))
    mean = check_array(mean, "mean")
    log_std = check_array(log_std, "log_std")
    return _binned_log_prob(x, mean, log_std, bin_width(levels))


# --------------------------------------------------------------------------------------------------
# rate and distortion
# --------------------------------------------------------------------------------------------------


@nnx.jit
def _elbo_terms(model, x, key):
    t = objectives.elbo(model, x, key)
    return t.recon, t.kl


def elbo_per_image(model: nnx.Module, images: ArrayLike, key: jax.Array, *, num_samples: int = 1,
                   batch_size: int = 250) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The ELBO of every image and its two terms, nats per image, as float64 arrays of shape (N,).

    ``(elbo, recon, kl)`` with ``kl`` :math:`=\mathrm{KL}(q(z\mid x)\,\Vert\,p(z))` (analytic) and ``recon``
    :math:`=\mathbb E_{q(z\mid x)}[\log p(x\mid z)]` averaged over ``num_samples`` reparameterized
    draws per image, ``elbo = recon - kl``. Their spread over images gives a standard error of the
    held-out ELBO; :func:`rate_distortion` is their mean.
    """
    images = check_images(images, "images", image_shape=getattr(model, "image_shape", None))
    key = check_key(key)
    num_samples = check_positive_int(num_samples, "num_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    recon_sum, kl = np.zeros(images.shape[0]), np.zeros(images.shape[0])
    for s in range(num_samples):
        for i, sl in enumerate(batch_slices(images.shape[0], batch_size)):
            r, k = _elbo_terms(model, jnp.asarray(images[sl]), jax.random.fold_in(key, s * 100_003 + i))
            recon_sum[sl] += np.asarray(r, np.float64)
            kl[sl] = np.asarray(k, np.float64)  # analytic: the same for every draw
    recon = recon_sum / num_samples
    return recon - kl, recon, kl


def rate_distortion(model: nnx.Module, images: ArrayLike, key: jax.Array, *, num_samples: int = 1,
                    batch_size: int = 250) -> tuple[float, float]:
    r"""Held-out rate and distortion of a VAE, averaged over ``images``, in nats per image.

    * rate :math:`R = \mathbb E_x\,\mathrm{KL}(q(z\mid x)\,\Vert\,p(z))` (analytic),
    * distortion :math:`D = -\mathbb E_x\,\mathbb E_{q(z\mid x)}[\log p(x\mid z)]` (``num_samples``
      reparameterized draws per image),

    so that the ELBO is :math:`-(D + R)`: the means of :func:`elbo_per_image`. Returns
    ``(rate, distortion)`` as floats.
    """
    _, recon, kl = elbo_per_image(model, images, key, num_samples=num_samples, batch_size=batch_size)
    return float(kl.mean()), float(-recon.mean())


def _repeated_rate_distortion(model, images, key, repeats: int, batch_size: int):
    """``repeats`` held-out (rate, distortion) pairs with independent keys, as two (repeats,) arrays."""
    pairs = [rate_distortion(model, images, jax.random.fold_in(key, 7_000_003 + r), batch_size=batch_size)
             for r in range(repeats)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _spread(values) -> float:
    """Standard deviation (ddof=1) of repeated estimates; NaN for a single one."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


# --------------------------------------------------------------------------------------------------
# importance-weighted estimates
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _binned_log_likelihood(levels: int) -> Callable:
    """``log P(x|z)`` of a Gaussian decoder with each value's bin of ``levels`` (one function per ``levels``,
    so that jit sees the same static argument every call)."""
    width = bin_width(levels)

    def log_likelihood(x: jax.Array, decoded: tuple[jax.Array, jax.Array]) -> jax.Array:
        mean, log_std = decoded
        per_value = _binned_log_prob(x, mean, log_std, width)
        return jnp.sum(per_value.reshape(per_value.shape[0], -1), axis=-1)

    return log_likelihood


def dataset_log_weights(model: nnx.Module, images: ArrayLike, key: jax.Array, num_samples: int, *, chunk_size: int = 64,
                        batch_size: int = 100, discretized: bool = False, levels: int = 256) -> np.ndarray:
    r"""The ``num_samples`` log importance weights of every image of a data set, as float64 NumPy.

    Calls :func:`vae_book.objectives.log_importance_weights` (the one definition of
    :math:`\log w_k = \log p(x\mid z_k) + \log p(z_k) - \log q(z_k\mid x)`) on the batches of
    :func:`vae_book.data.batch_slices`, ``batch_size`` images
    (each with its own key, folded from ``key``), drawing ``chunk_size`` samples at a time, so memory
    stays bounded for large models.

    With ``discretized=True`` (a Gaussian decoder, images on the grid ``k/(levels-1)``), the density
    :math:`p(x\mid z_k)` is replaced by the exact probability of every value's bin,
    :math:`P(x\mid z_k) = \prod_i \big(\Phi(b_i) - \Phi(a_i)\big)` (:func:`discretized_gaussian_log_prob`):
    the weights are then those of the discrete image's probability :math:`P(x)`, and their
    log-mean-exp is a lower bound on :math:`\log P(x)` in expectation, with no density-times-width
    approximation. The same ``key`` draws the same :math:`z_k` either way.

    Returns:
        float64 array (num_samples, N) in nats.
    """
    images = check_images(images, "images", image_shape=getattr(model, "image_shape", None))
    key = check_key(key)
    num_samples = check_positive_int(num_samples, "num_samples")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(discretized, bool):
        raise ValueError(f"`discretized` must be True or False, got {discretized!r}.")
    log_likelihood = None
    if discretized:
        levels = _check_levels(levels)
        if getattr(model, "likelihood", None) != "gaussian":
            raise ValueError(f"`discretized=True` needs a model with a Gaussian decoder (likelihood 'gaussian'), "
                             f"got one with likelihood {getattr(model, 'likelihood', None)!r}.")
        if not is_quantized(images, levels):
            raise ValueError(f"`images` must lie on the {levels} values k/{levels - 1} for `discretized=True` "
                             f"(see quantize), got values off that grid.")
        log_likelihood = _binned_log_likelihood(levels)
    out = []
    for i, sl in enumerate(batch_slices(images.shape[0], batch_size)):
        lw = objectives.log_importance_weights(model, jnp.asarray(images[sl]), jax.random.fold_in(key, i),
                                               num_samples, chunk_size=min(chunk_size, num_samples),
                                               log_likelihood=log_likelihood)
        out.append(np.asarray(lw, np.float64))
    return np.concatenate(out, axis=1)


def group_estimates(log_w: ArrayLike, k: int) -> np.ndarray:
    r"""Split log weights (K_total, N) into disjoint groups of ``k`` and return :math:`\log\frac1k\sum w` per group.

    ``k`` must divide K_total. Returns (K_total // k, N): independent estimates of :math:`\mathcal L_k`
    of every image.
    """
    log_w = np.asarray(check_array(log_w, "log_w", ndim=2), np.float64)
    k = check_positive_int(k, "k")
    if log_w.shape[0] % k:
        raise ValueError(f"`k` must divide the number of log weights per image ({log_w.shape[0]}), got {k}.")
    groups = log_w.reshape(log_w.shape[0] // k, k, log_w.shape[1])
    return special.logsumexp(groups, axis=1) - math.log(k)


def log_spaced_divisors(n: int, count: int = 10) -> np.ndarray:
    """About ``count`` divisors of ``n``, roughly evenly spaced on a log axis, always including 1 and ``n``."""
    n = check_positive_int(n, "n")
    count = check_positive_int(count, "count")
    divisors = np.array([d for d in range(1, n + 1) if n % d == 0])
    if len(divisors) <= count:
        return divisors
    targets = np.geomspace(1, n, count)
    picked = {int(divisors[np.argmin(np.abs(np.log(divisors) - np.log(t)))]) for t in targets}
    return np.array(sorted(picked | {1, n}))


@dataclass
class IWAECurve:
    r"""Importance-weighted estimates of the held-out average :math:`\frac1N\sum_i\mathcal L_K(x_i)` for several K.

    All values are nats per image. For each K the draws are split into ``num_estimates[j]`` disjoint
    groups of K samples; each group gives one estimate of the held-out average.
    """

    ks: np.ndarray  #: the sample counts K
    mean: np.ndarray  #: mean over the estimates, per K
    std: np.ndarray  #: spread (standard deviation) of one estimate of the held-out average, per K
    per_image_std: np.ndarray  #: spread of one single-image estimate, averaged over the images, per K
    num_estimates: np.ndarray  #: number of independent estimates per K
    elbo: float  #: held-out ELBO (analytic KL), averaged over the same number of draws as K_max
    elbo_std: float  #: spread of one ELBO estimate of the held-out average (one z per image)
    num_images: int = 0
    estimates: list = field(default_factory=list, repr=False)  #: per K, the (groups, N) estimates

    def standard_error(self) -> np.ndarray:
        """Standard error of ``mean`` (std / sqrt(number of estimates)), per K."""
        return self.std / np.sqrt(np.maximum(self.num_estimates, 1))


def iwae_curve(model: nnx.Module, images: ArrayLike, key: jax.Array, ks: Sequence[int] | np.ndarray, *,
               repeats: int = 4, chunk_size: int = 64, batch_size: int = 100) -> IWAECurve:
    r"""The importance-weighted estimate of the held-out log-likelihood for each K in ``ks``, with its spread.

    Draws ``repeats * max(ks)`` log weights per image (:func:`dataset_log_weights`) and, for each
    K, splits them into ``repeats * max(ks) / K`` disjoint groups (:func:`group_estimates`). Each
    group gives one estimate of the held-out average :math:`\frac1N\sum_i \mathcal L_K(x_i)`; the
    curve reports their mean and standard deviation. Every K must divide ``max(ks)``. The ELBO is
    computed with the analytic KL, ``repeats`` times with different keys.

    Returns:
        :class:`IWAECurve` (nats per image).
    """
    key = check_key(key)
    repeats = check_positive_int(repeats, "repeats")
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__len__") or not len(ks):
        raise ValueError(f"`ks` must be a non-empty list of positive integers, got {ks!r:.80}.")
    ks = np.array([check_positive_int(k.item() if isinstance(k, np.generic) else k, f"ks[{i}]")
                   for i, k in enumerate(ks)])
    k_max = int(ks.max())
    if any(k_max % k for k in ks):
        raise ValueError(f"every K in `ks` must divide max(ks) = {k_max}, got {list(ks)}.")
    images = check_images(images, "images", image_shape=getattr(model, "image_shape", None))
    log_w = dataset_log_weights(model, images, key, repeats * k_max, chunk_size=chunk_size,
                                batch_size=batch_size)
    means, stds, per_image, counts, ests = [], [], [], [], []
    for k in ks:
        g = group_estimates(log_w, int(k))  # (G, N)
        avg = g.mean(axis=1)
        means.append(avg.mean())
        stds.append(_spread(avg))
        per_image.append(g.std(axis=0, ddof=1).mean() if len(g) > 1 else np.nan)
        counts.append(len(avg))
        ests.append(g)
    rates, dists = _repeated_rate_distortion(model, images, key, repeats, batch_size)
    elbos = -(rates + dists)
    return IWAECurve(ks=ks, mean=np.array(means), std=np.array(stds), per_image_std=np.array(per_image),
                     num_estimates=np.array(counts), elbo=float(np.mean(elbos)), elbo_std=_spread(elbos),
                     num_images=int(images.shape[0]), estimates=ests)


# --------------------------------------------------------------------------------------------------
# one model, one table
# --------------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """One model evaluated on one held-out set. Log-likelihoods in nats per image; bits per dimension discrete."""

    name: str  #: model name
    dataset: str  #: data set name, including its preprocessing (e.g. "mnist5k, binarized")
    likelihood: str  #: "bernoulli" or "gaussian"
    num_images: int  #: held-out images evaluated
    num_dims: int  #: D = H * W * C
    num_samples: int  #: K of the importance-weighted estimate
    repeats: int  #: independent estimates of the held-out average
    levels: int | None  #: grey levels of the data for the density-to-probability conversion (None: discrete likelihood)
    elbo: float  #: held-out ELBO, mean over repeats
    elbo_std: float  #: spread of the held-out ELBO over repeats
    log_px: float  #: importance-weighted estimate of log p(x), mean over repeats
    log_px_std: float  #: its spread over repeats
    rate: float  #: mean KL(q(z|x) || p(z))
    distortion: float  #: mean -E_q log p(x|z)
    active_units: int  #: units with Var_x(E_q[z_u]) > 0.01 (:func:`vae_book.latent.latent_activity`)
    z_dim: int
    num_params: int = 0
    seconds: float = 0.0  #: wall time of the evaluation
    per_image: np.ndarray | None = field(default=None, repr=False)  #: (N,) L_K of each image, mean over repeats

    @property
    def bits_per_dim(self) -> float:
        """Bits per dimension of ``log_px`` (discretised for Gaussian likelihoods, see :func:`bits_per_dim`)."""
        return bits_per_dim(self.log_px, self.num_dims, levels=self.levels)

    @property
    def bits_per_dim_std(self) -> float:
        """Spread of :attr:`bits_per_dim` over repeats (the conversion is linear)."""
        return self.log_px_std / (self.num_dims * math.log(2.0))

    @property
    def elbo_bits_per_dim(self) -> float:
        """The ELBO in bits per dimension (an upper bound on the true bits per dimension)."""
        return bits_per_dim(self.elbo, self.num_dims, levels=self.levels)


def evaluate(model: nnx.Module, images: ArrayLike, key: jax.Array, *, name: str, dataset: str, num_samples: int,
             repeats: int = 3, levels: int | None = None, chunk_size: int = 64, batch_size: int = 100,
             estimates: ArrayLike | None = None) -> Evaluation:
    r"""Evaluate one VAE on held-out ``images``: ELBO, importance-weighted :math:`\log p(x)`, rate, distortion,
    active units.

    The importance-weighted estimate :math:`\log\frac1K\sum_k w_k` with ``K = num_samples`` is drawn
    ``repeats`` times (independent samples); the held-out average of each draw is one estimate, and
    :class:`Evaluation` stores their mean and standard deviation. The same for the ELBO (one
    :math:`z` per image per repeat, analytic KL).

    Honest comparisons need the same data and the same likelihood convention, so the function checks:

    * a Bernoulli likelihood needs binary images and ``levels=None`` (its probability is already discrete);
    * a Gaussian likelihood needs ``levels`` (e.g. 256) and images quantised to that grid
      (:func:`quantize`), so that bits per dimension refer to the probability of the discrete image.

    ``estimates`` may pass precomputed single-image estimates of shape (repeats, N) with
    ``K = num_samples`` — e.g. ``curve.estimates[-1]`` of an :func:`iwae_curve` on the same images whose
    largest K is ``num_samples`` — to avoid drawing the samples twice.

    Returns:
        :class:`Evaluation`.
    """
    import time

    t0 = time.perf_counter()
    images = check_images(images, "images", image_shape=getattr(model, "image_shape", None))
    key = check_key(key)
    num_samples = check_positive_int(num_samples, "num_samples")
    repeats = check_positive_int(repeats, "repeats")
    x = np.asarray(images)
    if model.likelihood == "bernoulli":
        if levels is not None:
            raise ValueError(f"`levels` must be None for a Bernoulli likelihood (its probability is already "
                             f"discrete), got {levels!r}.")
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("`images` must be binary (0 or 1) for a Bernoulli likelihood: on grey levels it is "
                             "not a normalised probability.")
    else:
        if levels is None:
            raise ValueError("`levels` must be given for a Gaussian likelihood (e.g. 256 for 8-bit data): a density "
                             "must be converted to the probability of the discrete image.")
        if not is_quantized(x, levels):
            raise ValueError(f"`images` must lie on the grid of {levels} levels k/{levels - 1}; "
                             f"call evaluation.quantize(images, {levels}) first.")
    if estimates is None:
        log_w = dataset_log_weights(model, x, key, repeats * num_samples, chunk_size=chunk_size,
                                    batch_size=batch_size)
        groups = group_estimates(log_w, num_samples)  # (repeats, N)
    else:
        groups = np.asarray(check_array(estimates, "estimates", shape=(repeats, x.shape[0])), np.float64)
    lk = groups.mean(axis=1)  # (repeats,)
    rates, dists = _repeated_rate_distortion(model, x, key, repeats, batch_size)
    elbos = -(rates + dists)
    au = int(latent.latent_activity(*latent.encode(model, x, batch_size=batch_size))["active"].sum())
    return Evaluation(
        name=name, dataset=dataset, likelihood=model.likelihood, num_images=int(x.shape[0]),
        num_dims=int(np.prod(x.shape[1:])), num_samples=num_samples, repeats=repeats, levels=levels,
        elbo=float(elbos.mean()), elbo_std=_spread(elbos), log_px=float(lk.mean()), log_px_std=_spread(lk),
        rate=float(np.mean(rates)), distortion=float(np.mean(dists)), active_units=au, z_dim=int(model.z_dim),
        num_params=int(model.num_params()) if hasattr(model, "num_params") else 0,
        seconds=time.perf_counter() - t0, per_image=groups.mean(axis=0),
    )


def comparison_table(evaluations: Iterable[Evaluation]) -> pd.DataFrame:
    """A :class:`pandas.DataFrame` with one row per :class:`Evaluation`, in the order given.

    Columns: data, likelihood, model, parameters, z_dim, active units, K, held-out images, ELBO and
    :math:`\\log p(x)\\approx\\mathcal L_K` (nats per image, "mean ± spread over repeats"), the gap
    :math:`\\mathcal L_K - \\text{ELBO}`, and bits per dimension (discrete; lower is better).
    """
    import pandas as pd

    evaluations = list(evaluations)
    if not evaluations or not all(isinstance(e, Evaluation) for e in evaluations):
        raise ValueError("`evaluations` must be a non-empty sequence of evaluation.Evaluation objects.")
    rows = []
    for e in evaluations:
        rows.append({
            "data": e.dataset,
            "likelihood": e.likelihood + ("" if e.levels is None else f" ({e.levels} levels)"),
            "model": e.name,
            "parameters": f"{e.num_params:,}",
            "active / z_dim": f"{e.active_units} / {e.z_dim}",
            "K x repeats": f"{e.num_samples} x {e.repeats}",
            "images": e.num_images,
            "ELBO (nats)": f"{e.elbo:.1f} ± {e.elbo_std:.1f}",
            "log p(x) ≈ L_K (nats)": f"{e.log_px:.1f} ± {e.log_px_std:.1f}",
            "L_K - ELBO (nats)": f"{e.log_px - e.elbo:.1f}",
            "bits/dim": f"{e.bits_per_dim:.3f} ± {e.bits_per_dim_std:.3f}",
        })
    return pd.DataFrame(rows)
