"""vae_book.evaluation: bits per dimension, discretisation, importance-weighted estimates, rate, active units."""

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import special, stats

from vae_book import evaluation, latent, objectives
from vae_book.models.base import VAE
from vae_book.models.mlp import MLPConfig, MLPVAE


# --------------------------------------------------------------------------------------------------
# a VAE whose log p(x) is known exactly: linear-Gaussian decoder, exact-posterior encoder
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ExactConfig:
    image_shape: tuple = (2, 2, 1)
    z_dim: int = 2
    likelihood: str = "gaussian"
    decoder_log_std: float = math.log(0.3)


class ExactVAE(VAE):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I); q(z|x) is the exact (diagonal, W has orthogonal columns) posterior."""

    def __init__(self):
        self.config = _ExactConfig()
        q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 2)))
        self.W = nnx.Param(jnp.asarray(q * np.array([0.4, 0.2]), jnp.float32))
        self.b = nnx.Param(jnp.full((4,), 0.5, jnp.float32))

    def exact_log_px(self, x):
        W, b, s = np.asarray(self.W[...], np.float64), np.asarray(self.b[...], np.float64), 0.3
        cov = W @ W.T + s**2 * np.eye(4)
        return stats.multivariate_normal(b, cov).logpdf(np.asarray(x, np.float64).reshape(len(x), -1))

    def encode(self, x):
        s2 = 0.3**2
        W, b = self.W[...], self.b[...]
        prec = 1.0 + jnp.sum(W**2, axis=0) / s2  # diagonal because the columns are orthogonal
        mean = ((x.reshape(x.shape[0], -1) - b) @ W) / s2 / prec
        return mean, jnp.broadcast_to(-0.5 * jnp.log(prec), mean.shape)

    def decode(self, z):
        mean = (z @ self.W[...].T + self.b[...]).reshape(z.shape[0], 2, 2, 1)
        return mean, jnp.full_like(mean, self.config.decoder_log_std)


def _images(n=40, seed=1):
    model = ExactVAE()
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    x = z @ np.asarray(model.W[...]).T + np.asarray(model.b[...]) + 0.3 * rng.standard_normal((n, 4))
    return model, evaluation.quantize(np.clip(x, 0, 1).reshape(n, 2, 2, 1).astype(np.float32))


def _tiny_mlp(likelihood="bernoulli", z_dim=3):
    return MLPVAE(MLPConfig(image_shape=(4, 4, 1), hidden=8, z_dim=z_dim, likelihood=likelihood), rngs=nnx.Rngs(0))


# --------------------------------------------------------------------------------------------------


def test_bits_per_dim_discrete_and_discretised():
    assert evaluation.bits_per_dim(-784 * math.log(2), 784) == pytest.approx(1.0)
    # a density: add log2(levels - 1) bits per dimension
    assert evaluation.bits_per_dim(-10.0, 5, levels=256) == pytest.approx(10 / (5 * math.log(2)) + math.log2(255))
    arr = evaluation.bits_per_dim(np.array([-1.0, -2.0]), 1)
    np.testing.assert_allclose(arr, [1 / math.log(2), 2 / math.log(2)])
    with pytest.raises(ValueError, match="levels"):
        evaluation.bits_per_dim(-1.0, 1, levels=1)
    with pytest.raises(ValueError, match="num_dims"):
        evaluation.bits_per_dim(-1.0, 0)


def test_quantize_and_bin_width():
    x = np.array([0.0, 0.1, 0.5, 1.0], np.float32).reshape(1, 2, 2, 1)
    q = evaluation.quantize(x)
    np.testing.assert_allclose(q.ravel() * 255, np.round(x.ravel() * 255), atol=1e-4)
    assert evaluation.is_quantized(q) and not evaluation.is_quantized(x + 0.001)
    assert evaluation.bin_width(256) == pytest.approx(1 / 255)
    with pytest.raises(ValueError, match="images"):
        evaluation.quantize(x * 2)


def test_discretized_gaussian_matches_scipy_and_density_times_width():
    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(0, 1, 500) * 255) / 255
    mean = rng.uniform(-0.2, 1.2, 500)
    log_std = rng.uniform(np.log(0.003), np.log(0.5), 500)
    got = np.asarray(evaluation.discretized_gaussian_log_prob(jnp.asarray(x), jnp.asarray(mean), jnp.asarray(log_std)),
                     np.float64)
    h, s = 0.5 / 255, np.exp(log_std)
    a, b = (x - h - mean) / s, (x + h - mean) / s
    upper = a > 0  # float64 reference, on the side of the mean where the tail probabilities are small
    with np.errstate(divide="ignore"):
        ref = np.log(np.where(upper, stats.norm.sf(a) - stats.norm.sf(b), stats.norm.cdf(b) - stats.norm.cdf(a)))
    ok = np.isfinite(ref) & (ref > -60)  # scipy itself underflows further out
    np.testing.assert_allclose(got[ok], ref[ok], rtol=2e-3, atol=2e-4)
    assert np.all(np.isfinite(got))  # stable even 50 sigma out, where the difference of CDFs underflows
    # sigma >> bin width: the bin probability is density x width to O((width/sigma)^2)
    wide = np.asarray(evaluation.discretized_gaussian_log_prob(jnp.asarray(x), jnp.asarray(mean), jnp.log(0.2)))
    approx = stats.norm.logpdf(x, mean, 0.2) - np.log(255)
    assert np.max(np.abs(wide - approx)) < 1e-3


def test_group_estimates_and_divisors():
    rng = np.random.default_rng(0)
    lw = rng.standard_normal((12, 3))
    g = evaluation.group_estimates(lw, 4)
    assert g.shape == (3, 3)
    np.testing.assert_allclose(g[1], special.logsumexp(lw[4:8], axis=0) - np.log(4))
    with pytest.raises(ValueError, match="k"):
        evaluation.group_estimates(lw, 5)
    d = evaluation.log_spaced_divisors(500, 8)
    assert d[0] == 1 and d[-1] == 500 and all(500 % k == 0 for k in d) and np.all(np.diff(d) > 0)
    np.testing.assert_array_equal(evaluation.log_spaced_divisors(8), [1, 2, 4, 8])


def test_latent_activity_of_an_encoded_set_sums_to_the_rate_and_evaluate_counts_its_active_units():
    model = _tiny_mlp()
    w = np.asarray(model.enc_out.kernel[...]).copy()
    w[:, 0] = 0.0  # the posterior mean of unit 0 no longer depends on x
    model.enc_out.kernel[...] = jnp.asarray(w)
    x = (np.random.default_rng(0).uniform(size=(64, 4, 4, 1)) > 0.5).astype(np.float32)
    act = latent.latent_activity(*latent.encode(model, x, batch_size=16))
    rate, _ = evaluation.rate_distortion(model, x, jax.random.key(0))
    assert act["kl"].shape == (3,) and act["kl"].sum() == pytest.approx(rate, rel=1e-5)
    assert act["mean_var"][0] < 1e-12 and not act["active"][0]
    # the bound used in the book: mean KL of a unit >= half the variance of its posterior mean
    assert np.all(act["kl"] >= 0.5 * act["mean_var"] - 1e-9)
    ev = evaluation.evaluate(model, x, jax.random.key(1), name="m", dataset="d", num_samples=2, repeats=2,
                             batch_size=16)
    assert ev.active_units == int(act["active"].sum()) and ev.active_units <= 2
    assert ev.rate == pytest.approx(rate, rel=1e-5)  # the analytic KL does not depend on the draw


def test_dataset_log_weights_are_the_objectives_weights_batch_by_batch():
    model = _tiny_mlp()
    x = (np.random.default_rng(2).uniform(size=(10, 4, 4, 1)) > 0.5).astype(np.float32)
    key = jax.random.key(3)
    lw = evaluation.dataset_log_weights(model, x, key, 5, chunk_size=2, batch_size=4)
    assert lw.shape == (5, 10) and lw.dtype == np.float64
    for i, sl in enumerate([slice(0, 4), slice(4, 8), slice(8, 10)]):  # data.batch_slices(10, 4)
        ref = objectives.log_importance_weights(model, jnp.asarray(x[sl]), jax.random.fold_in(key, i), 5,
                                                chunk_size=2)
        np.testing.assert_allclose(lw[:, sl], np.asarray(ref, np.float64), rtol=1e-6)
    with pytest.raises(ValueError, match="num_samples"):
        evaluation.dataset_log_weights(model, x, key, 0)


def test_discretized_weights_are_the_bin_probabilities_at_the_same_codes():
    """``discretized=True``: log P(x|z_k) from scipy's normal CDF at the z_k the library draws, plus the
    prior and posterior terms, equals the weights; the density weights at the same key differ only in
    the likelihood term."""
    from vae_book import distributions as D

    model = _tiny_mlp("gaussian", z_dim=2)
    x = evaluation.quantize(np.random.default_rng(4).uniform(size=(3, 4, 4, 1)))
    key = jax.random.key(5)
    disc = evaluation.dataset_log_weights(model, x, key, 4, discretized=True)
    dens = evaluation.dataset_log_weights(model, x, key, 4)
    mean, log_std = model.encode(jnp.asarray(x))
    z = D.sample_diag_gaussian(jax.random.fold_in(key, 0), mean, log_std, num_samples=4)  # one batch, one chunk
    mu, ls = (np.asarray(a, np.float64) for a in model.decode(z.reshape(12, 2)))
    sd, xr, h = np.exp(ls), np.broadcast_to(x, (4, *x.shape)).reshape(12, 4, 4, 1).astype(np.float64), 0.5 / 255
    a, b = (xr - h - mu) / sd, (xr + h - mu) / sd
    # Phi(b) - Phi(a), or SF(a) - SF(b) above the mean, in logs with scipy's tails (the bins lie far out)
    hi = np.where(a > 0, stats.norm.logsf(a), stats.norm.logcdf(b))
    lo = np.where(a > 0, stats.norm.logsf(b), stats.norm.logcdf(a))
    log_bins = (hi + np.log1p(-np.exp(lo - hi))).reshape(4, 3, -1).sum(-1)
    log_dens = stats.norm.logpdf(xr, mu, sd).reshape(4, 3, -1).sum(-1)
    zz, m_, s_ = np.asarray(z, np.float64), np.asarray(mean, np.float64), np.exp(np.asarray(log_std, np.float64))
    prior_minus_q = (stats.norm.logpdf(zz).sum(-1) - stats.norm.logpdf(zz, m_, s_).sum(-1))
    np.testing.assert_allclose(disc, log_bins + prior_minus_q, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(dens, log_dens + prior_minus_q, rtol=1e-5, atol=1e-3)  # the same z_k


def test_discretized_weights_tend_to_density_times_width_for_wide_decoders():
    """The exact-posterior VAE (sigma = 0.3, 85 bins wide): every density weight is log p(x), and the
    bin probabilities are density x width to O(Delta^2 / sigma^2), so the discrete weights are
    log p(x) - D log 255."""
    model, x = _images(n=20)
    disc = evaluation.dataset_log_weights(model, x, jax.random.key(0), 3, discretized=True)
    np.testing.assert_allclose(disc, np.broadcast_to(model.exact_log_px(x) - 4 * math.log(255), disc.shape),
                               atol=2e-3)


def test_discretized_weights_refuse_bernoulli_models_and_off_grid_images():
    x = evaluation.quantize(np.random.default_rng(0).uniform(size=(2, 4, 4, 1)))
    with pytest.raises(ValueError, match="discretized=True.*Gaussian decoder.*bernoulli"):
        evaluation.dataset_log_weights(_tiny_mlp("bernoulli"), x, jax.random.key(0), 2, discretized=True)
    with pytest.raises(ValueError, match="`images` must lie on the 256 values"):
        evaluation.dataset_log_weights(_tiny_mlp("gaussian"), x + 0.001, jax.random.key(0), 2, discretized=True)
    with pytest.raises(ValueError, match="`discretized` must be True or False"):
        evaluation.dataset_log_weights(_tiny_mlp("gaussian"), x, jax.random.key(0), 2, discretized="yes")
    with pytest.raises(ValueError, match="log_likelihood"):
        objectives.log_importance_weights(_tiny_mlp("gaussian"), jnp.asarray(x), jax.random.key(0), 2,
                                          log_likelihood="exact")


def test_iwae_and_evaluate_are_exact_for_the_exact_posterior():
    model, x = _images()
    exact = model.exact_log_px(x).mean()
    curve = evaluation.iwae_curve(model, x, jax.random.key(0), [1, 2, 4], repeats=2, batch_size=16)
    # with q the exact posterior every log weight equals log p(x): no spread, no gap
    np.testing.assert_allclose(curve.mean, exact, atol=2e-3)
    assert np.nanmax(curve.per_image_std) < 2e-3
    assert list(curve.num_estimates) == [8, 4, 2]
    ev = evaluation.evaluate(model, x, jax.random.key(1), name="exact", dataset="toy", num_samples=4, repeats=2,
                             levels=256, batch_size=16)
    assert ev.log_px == pytest.approx(exact, abs=2e-3)
    assert ev.bits_per_dim == pytest.approx(-exact / (4 * math.log(2)) + math.log2(255), abs=1e-3)
    assert ev.elbo == pytest.approx(exact, abs=0.5)  # the ELBO is exact in expectation; one z per image is noisy
    table = evaluation.comparison_table([ev, ev])
    assert len(table) == 2 and "bits/dim" in table.columns


def test_iwae_curve_on_a_vae_k1_is_the_elbo_and_the_bound_rises():
    model = _tiny_mlp()
    x = (np.random.default_rng(0).uniform(size=(32, 4, 4, 1)) > 0.5).astype(np.float32)
    c = evaluation.iwae_curve(model, x, jax.random.key(0), [1, 4, 16], repeats=8, batch_size=32)
    se = c.standard_error()
    assert abs(c.mean[0] - c.elbo) < 4 * (se[0] + c.elbo_std / np.sqrt(8)) + 1e-3
    assert c.mean[2] >= c.mean[0] - 4 * se[0]
    with pytest.raises(ValueError, match="divide"):
        evaluation.iwae_curve(model, x, jax.random.key(0), [3, 4])


def test_evaluate_refuses_incomparable_conventions():
    bern = _tiny_mlp()
    grey = np.full((4, 4, 4, 1), 0.5, np.float32)
    with pytest.raises(ValueError, match="binary"):
        evaluation.evaluate(bern, grey, jax.random.key(0), name="m", dataset="d", num_samples=2)
    with pytest.raises(ValueError, match="levels"):
        evaluation.evaluate(bern, np.round(grey), jax.random.key(0), name="m", dataset="d", num_samples=2, levels=256)
    gauss = _tiny_mlp("gaussian")
    with pytest.raises(ValueError, match="levels"):
        evaluation.evaluate(gauss, grey, jax.random.key(0), name="m", dataset="d", num_samples=2)
    with pytest.raises(ValueError, match="quantize"):
        evaluation.evaluate(gauss, grey + 0.001, jax.random.key(0), name="m", dataset="d", num_samples=2, levels=256)
    with pytest.raises(ValueError, match="evaluations"):
        evaluation.comparison_table([])


def test_elbo_per_image_matches_numpy_and_its_mean_is_the_rate_distortion():
    """Per image: KL in closed form from the encoder, the reconstruction term a NumPy Bernoulli average
    over the same draws; the means are rate_distortion's (rate, distortion); more draws shrink the
    spread of the reconstruction term's estimate."""
    from scipy.special import expit

    model = _tiny_mlp()
    x = (np.random.default_rng(3).uniform(size=(37, 4, 4, 1)) > 0.5).astype(np.float32)
    elbo, recon, kl = evaluation.elbo_per_image(model, x, jax.random.key(2), num_samples=3, batch_size=10)
    assert elbo.shape == recon.shape == kl.shape == (37,) and elbo.dtype == np.float64
    mean, log_std = (np.asarray(a, np.float64) for a in model.encode(jnp.asarray(x)))
    np.testing.assert_allclose(kl, 0.5 * (np.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(1), rtol=1e-5)
    np.testing.assert_allclose(elbo, recon - kl)
    # with many draws the reconstruction term agrees with an independent NumPy Monte Carlo average
    big = evaluation.elbo_per_image(model, x, jax.random.key(5), num_samples=400, batch_size=37)[1]
    rng = np.random.default_rng(0)
    z = mean[None] + np.exp(log_std)[None] * rng.standard_normal((4000, *mean.shape))
    logits = np.asarray(model.decode(jnp.asarray(z.reshape(-1, mean.shape[1]), jnp.float32)), np.float64)
    p = np.clip(expit(logits.reshape(4000, 37, -1)), 1e-12, 1 - 1e-12)
    xs = x.reshape(1, 37, -1).astype(np.float64)
    draws = (xs * np.log(p) + (1 - xs) * np.log1p(-p)).sum(-1)  # (4000, 37)
    sd = draws.std(0)
    assert np.all(np.abs(big - draws.mean(0)) < 4 * sd * np.sqrt(1 / 400 + 1 / 4000))  # Monte Carlo error
    rate, dist = evaluation.rate_distortion(model, x, jax.random.key(2), num_samples=3, batch_size=10)
    assert rate == pytest.approx(kl.mean(), rel=1e-12) and dist == pytest.approx(-recon.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="`num_samples`"):
        evaluation.elbo_per_image(model, x, jax.random.key(0), num_samples=0)
