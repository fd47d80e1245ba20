"""The distributions module against independent computations (scipy, Monte Carlo, finite differences)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from vae_book import distributions as D

RNG = np.random.default_rng(0)


def test_gaussian_log_prob_matches_scipy():
    x, mean = RNG.normal(size=(50, 3)), RNG.normal(size=(50, 3))
    log_std = RNG.uniform(-3, 2, size=(50, 3))
    got = D.gaussian_log_prob(jnp.float32(x), jnp.float32(mean), jnp.float32(log_std))
    want = stats.norm.logpdf(x, loc=mean, scale=np.exp(log_std))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_gaussian_log_prob_has_half_log_two_pi():
    # At x = mean, sigma = 1 the density is 1/sqrt(2 pi): log = -0.5 log(2 pi) = -0.9189...
    assert float(D.gaussian_log_prob(0.0, 0.0, 0.0)) == pytest.approx(-0.5 * np.log(2 * np.pi), abs=1e-6)


def test_standard_normal_log_prob():
    z = RNG.normal(size=20)
    np.testing.assert_allclose(D.standard_normal_log_prob(jnp.float32(z)), stats.norm.logpdf(z), rtol=1e-5)


def test_bernoulli_log_prob_matches_scipy_and_is_stable():
    logits = RNG.normal(scale=3, size=100)
    x = RNG.integers(0, 2, size=100).astype(np.float32)
    p = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(D.bernoulli_log_prob(x, jnp.float32(logits)), stats.bernoulli.logpmf(x, p),
                               rtol=1e-4, atol=1e-5)
    # Large |logits|: finite and equal to the exact asymptotes (-|l| on the wrong side, ~0 on the right one).
    big = jnp.array([200.0, -200.0, 200.0, -200.0])
    xs = jnp.array([0.0, 1.0, 1.0, 0.0])
    got = np.asarray(D.bernoulli_log_prob(xs, big))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [-200.0, -200.0, 0.0, 0.0], atol=1e-5)


def test_kl_to_standard_normal_matches_monte_carlo():
    """Monte Carlo with 2e5 samples: E_q[log q - log p] agrees within 4 standard errors."""
    rng = np.random.default_rng(1)
    for mean, std in [(0.0, 1.0), (1.5, 0.3), (-0.7, 2.0), (0.2, 0.05)]:
        z = rng.normal(mean, std, size=200_000)
        ratio = stats.norm.logpdf(z, mean, std) - stats.norm.logpdf(z)
        mc, se = ratio.mean(), ratio.std() / np.sqrt(z.size)
        closed = float(D.kl_to_standard_normal(jnp.float32(mean), jnp.log(jnp.float32(std))))
        assert abs(closed - mc) <= 4 * se + 1e-6, (mean, std, closed, mc, se)


def test_kl_to_standard_normal_is_the_log_std_formula_not_the_log_var_one():
    # mean 0, sigma = e (log_std = 1): 0.5 (e^2 - 1 - 2) = 2.1945; the log-variance slip gives 0.5 (e - 2) = 0.359
    assert float(D.kl_to_standard_normal(0.0, 1.0)) == pytest.approx(0.5 * (np.e**2 - 3), rel=1e-6)


def test_kl_diag_gaussians_matches_monte_carlo_and_reduces_to_standard():
    rng = np.random.default_rng(2)
    mq, sq, mp, sp = 0.3, 0.5, -1.0, 1.7
    z = rng.normal(mq, sq, size=200_000)
    ratio = stats.norm.logpdf(z, mq, sq) - stats.norm.logpdf(z, mp, sp)
    closed = float(D.kl_diag_gaussians(mq, np.log(sq), mp, np.log(sp)))
    assert abs(closed - ratio.mean()) <= 4 * ratio.std() / np.sqrt(z.size)
    m, s = jnp.float32(RNG.normal(size=10)), jnp.float32(RNG.normal(size=10))
    np.testing.assert_allclose(D.kl_diag_gaussians(m, s, 0.0, 0.0), D.kl_to_standard_normal(m, s), rtol=1e-5, atol=1e-6)


finite = st.floats(-3, 3, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(finite, finite, finite, finite)
def test_kl_nonnegative_and_zero_iff_equal(mq, sq, mp, sp):
    kl = float(D.kl_diag_gaussians(mq, sq, mp, sp))
    assert kl >= -1e-6
    if abs(mq - mp) > 1e-2 or abs(sq - sp) > 1e-2:
        assert kl > 0
    assert float(D.kl_diag_gaussians(mq, sq, mq, sq)) == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(finite, finite)
def test_kl_to_standard_normal_nonnegative_zero_only_at_standard(m, s):
    kl = float(D.kl_to_standard_normal(m, s))
    assert kl >= -1e-6
    if abs(m) > 1e-2 or abs(s) > 1e-2:
        assert kl > 0


def test_sample_diag_gaussian_moments_and_shapes():
    key = jax.random.key(0)
    mean, log_std = jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.5, 3.0]))
    z = D.sample_diag_gaussian(key, mean, log_std, num_samples=100_000)
    assert z.shape == (100_000, 2)
    assert np.all(np.abs(np.asarray(z.mean(0)) - [1.0, -2.0]) <= 4 * np.array([0.5, 3.0]) / np.sqrt(1e5))
    np.testing.assert_allclose(z.std(0), [0.5, 3.0], rtol=0.01)
    assert D.sample_diag_gaussian(key, mean, log_std).shape == (2,)


def test_sample_diag_gaussian_gradient_matches_finite_differences():
    key = jax.random.key(3)
    mean, log_std = jnp.array([0.3, -0.4, 1.0]), jnp.array([-0.2, 0.5, 0.1])

    def f(m, s):
        z = D.sample_diag_gaussian(key, m, s, num_samples=4)
        return jnp.sum(jnp.sin(z) * z)

    g_mean, g_log_std = jax.grad(f, argnums=(0, 1))(mean, log_std)
    eps = 1e-3
    for i in range(3):
        e = jnp.zeros(3).at[i].set(eps)
        fd_m = (f(mean + e, log_std) - f(mean - e, log_std)) / (2 * eps)
        fd_s = (f(mean, log_std + e) - f(mean, log_std - e)) / (2 * eps)
        assert float(g_mean[i]) == pytest.approx(float(fd_m), rel=2e-2, abs=2e-3)
        assert float(g_log_std[i]) == pytest.approx(float(fd_s), rel=2e-2, abs=2e-3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: D.gaussian_log_prob(np.zeros(3, np.float32), np.zeros(4, np.float32), 0.0), "broadcast"),
        (lambda: D.bernoulli_log_prob(np.zeros(3, np.int32), np.zeros(3, np.float32)), "`x` must have a floating"),
        (lambda: D.kl_to_standard_normal("a", 0.0), "`mean` must be an array"),
        (lambda: D.sample_diag_gaussian(0, jnp.zeros(2), jnp.zeros(2)), "`key` must be a JAX random key"),
        (lambda: D.sample_diag_gaussian(jax.random.key(0), jnp.zeros(2), jnp.zeros(3)), "same shape"),
        (lambda: D.sample_diag_gaussian(jax.random.key(0), jnp.zeros(2), jnp.zeros(2), 0), "`num_samples`"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
