"""Tests for vae_book.companion.estimators and the closed forms added to LinearGaussianModel.

Every closed form is checked against an independent computation: Monte Carlo in float64 NumPy /
SciPy, quadrature, finite differences or a brute-force formula.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from vae_book import objectives
from vae_book.companion import estimators as E
from vae_book.distributions import kl_diag_gaussians
from vae_book.models.linear import LinearGaussianModel

D, K = 5, 2
SIGMA = 0.6


def _weights(orthogonal: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    if orthogonal:
        return np.linalg.qr(rng.standard_normal((D, K)))[0] * np.array([1.8, 0.9])
    return rng.standard_normal((D, K))


def _model(orthogonal=False, seed=0):
    rng = np.random.default_rng(seed + 100)
    return LinearGaussianModel(_weights(orthogonal, seed), 0.2 * rng.standard_normal(D), math.log(SIGMA), seed=seed)


def _np_posterior(model, x):
    """Exact posterior in float64 NumPy: (mean (n, k), cov (k, k))."""
    W = np.asarray(model.W[...], np.float64)
    b = np.asarray(model.b[...], np.float64)
    var = math.exp(2 * float(model.log_sigma[...]))
    cov = np.linalg.inv(np.eye(W.shape[1]) + W.T @ W / var)
    mean = (np.asarray(x, np.float64) - b) @ W @ cov / var
    return mean, cov


@pytest.fixture(scope="module")
def setup():
    model = _model(orthogonal=False)
    x = model.sample_data(jax.random.key(0), 3)
    return model, x


# ---------------------------------------------------------------------------------------------
# LinearGaussianModel closed forms
# ---------------------------------------------------------------------------------------------


def test_expected_log_likelihood_matches_monte_carlo(setup):
    model, x = setup
    mean, log_std = model.encode(x)
    exact = np.asarray(model.expected_log_likelihood(x))
    W, b = np.asarray(model.W[...], np.float64), np.asarray(model.b[...], np.float64)
    rng = np.random.default_rng(1)
    n = 200_000
    for i in range(x.shape[0]):
        m, s = np.asarray(mean[i], np.float64), np.exp(np.asarray(log_std[i], np.float64))
        z = m + s * rng.standard_normal((n, K))
        ll = stats.norm.logpdf(np.asarray(x[i], np.float64), z @ W.T + b, SIGMA).sum(axis=1)
        assert abs(ll.mean() - exact[i]) < 4 * ll.std() / math.sqrt(n) + 1e-4


def test_analytic_elbo_terms(setup):
    model, x = setup
    recon, kl, elbo = (np.asarray(a) for a in model.analytic_elbo(x))
    mean, log_std = (np.asarray(a, np.float64) for a in model.encode(x))
    kl_ref = 0.5 * np.sum(np.exp(2 * log_std) + mean**2 - 1 - 2 * log_std, axis=1)
    np.testing.assert_allclose(kl, kl_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(elbo, recon - kl, rtol=1e-6, atol=1e-6)
    # agrees with the library's Monte Carlo ELBO
    n = 50_000
    mc = np.asarray(objectives.elbo(model, jnp.broadcast_to(x[:1], (n, D)), jax.random.key(3)).elbo, np.float64)
    assert abs(mc.mean() - elbo[0]) < 4 * mc.std() / math.sqrt(n)


def test_kl_to_posterior_matches_monte_carlo(setup):
    model, x = setup
    mean, log_std = (np.asarray(a, np.float64) for a in model.encode(x))
    kl = np.asarray(model.kl_to_posterior(x))
    post_mean, post_cov = _np_posterior(model, x)
    rng = np.random.default_rng(2)
    n = 200_000
    for i in range(x.shape[0]):
        s = np.exp(log_std[i])
        z = mean[i] + s * rng.standard_normal((n, K))
        log_ratio = stats.norm.logpdf(z, mean[i], s).sum(1) - stats.multivariate_normal(post_mean[i], post_cov).logpdf(z)
        assert abs(log_ratio.mean() - kl[i]) < 4 * log_ratio.std() / math.sqrt(n) + 1e-4
    # and the float64 general-Gaussian KL
    ref = E.gaussian_kl(mean, np.eye(K) * np.exp(2 * log_std)[:, :, None], post_mean, post_cov)
    np.testing.assert_allclose(kl, ref, atol=1e-4, rtol=1e-5)


def test_gap_identity_float64_reference():
    """log p(x) - ELBO = KL(q || p(z|x)) for many q, with log p(x) and the KL computed in float64."""
    model = _model(orthogonal=False, seed=3)
    x = model.sample_data(jax.random.key(4), 1)
    rng = np.random.default_rng(5)
    means = rng.normal(size=(200, K))
    log_stds = rng.normal(scale=0.7, size=(200, K)) - 0.5
    elbo = np.asarray(model.analytic_elbo(x, jnp.asarray(means, jnp.float32), jnp.asarray(log_stds, jnp.float32))[2],
                      np.float64)
    W, b = np.asarray(model.W[...], np.float64), np.asarray(model.b[...], np.float64)
    log_px = stats.multivariate_normal(b, W @ W.T + SIGMA**2 * np.eye(D)).logpdf(np.asarray(x[0], np.float64))
    pm, pc = _np_posterior(model, x)
    kl = E.gaussian_kl(means.astype(np.float32).astype(np.float64),
                       np.eye(K) * np.exp(2 * log_stds.astype(np.float32).astype(np.float64))[:, :, None], pm[0], pc)
    gap = log_px - elbo
    assert np.max(np.abs(gap - kl)) < 2e-4 * max(1.0, np.max(np.abs(kl)))
    assert np.all(gap > -1e-4)


def test_gap_closes_at_posterior_and_mutual_information():
    model = _model(orthogonal=True, seed=6)
    model.set_encoder_to_posterior()
    x = model.sample_data(jax.random.key(7), 200)
    assert np.max(np.abs(np.asarray(model.kl_to_posterior(x)))) < 1e-4
    assert np.max(np.abs(np.asarray(model.log_marginal(x) - model.analytic_elbo(x)[2]))) < 1e-4
    # average KL(p(z|x) || p(z)) over x ~ p(x) is the mutual information 1/2 log det(I + W^T W / sigma^2)
    W = np.asarray(model.W[...], np.float64)
    mi = 0.5 * np.linalg.slogdet(np.eye(K) + W.T @ W / SIGMA**2)[1]
    assert abs(float(model.mutual_information()) - mi) < 1e-5
    xs = model.sample_data(jax.random.key(8), 100_000)
    _, kl_prior, _ = model.analytic_elbo(xs)
    kl_prior = np.asarray(kl_prior, np.float64)
    assert abs(kl_prior.mean() - mi) < 4 * kl_prior.std() / math.sqrt(len(kl_prior))


def test_posterior_precision(setup):
    model, _ = setup
    _, cov = _np_posterior(model, np.zeros((1, D)))
    np.testing.assert_allclose(np.asarray(model.posterior_precision()), np.linalg.inv(cov), rtol=1e-4, atol=1e-4)


def test_q_param_broadcasting_and_errors(setup):
    model, x = setup
    means = jnp.zeros((7, K))
    log_stds = jnp.zeros((7, K))
    assert model.analytic_elbo(x[:1], means, log_stds)[2].shape == (7,)
    assert model.kl_to_posterior(x[:1], jnp.zeros(K), jnp.zeros(K)).shape == (1,)
    assert model.kl_to_posterior(x, jnp.zeros(K), jnp.zeros(K)).shape == (3,)
    with pytest.raises(ValueError, match="both"):
        model.analytic_elbo(x, means, None)
    with pytest.raises(ValueError, match="mean"):
        model.kl_to_posterior(x, jnp.zeros((3, K + 1)), jnp.zeros((3, K + 1)))
    with pytest.raises(ValueError, match="x"):
        model.expected_log_likelihood(jnp.zeros((3, D + 1)))


# ---------------------------------------------------------------------------------------------
# Gaussian reference results
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [E.square(), E.sine(), E.exponential(0.5), E.exponential(-1.3)], ids=lambda f: f.name)
@pytest.mark.parametrize("mean,std", [(0.7, 0.8), (-1.2, 0.3), (0.0, 2.0)])
def test_test_functions_closed_forms(fn, mean, std):
    def quad(m, s):
        return E.gaussian_expectation_quad(fn.g_np, m, s)

    assert abs(fn.expectation([mean], [std]) - quad(mean, std)) < 1e-8 * max(1, abs(quad(mean, std)))
    fd_mean, fd_log_std = E.finite_difference_grad(quad, mean, std)
    scale = max(1.0, abs(quad(mean, std)))
    assert abs(fn.grad_mean([mean], [std])[0] - fd_mean) < 1e-5 * scale
    assert abs(fn.grad_log_std([mean], [std])[0] - fd_log_std) < 1e-5 * scale
    # f is the sum of g over coordinates
    z = jnp.array([0.3, -0.4])
    assert abs(float(fn.f(z)) - float(np.sum(fn.g_np(np.asarray(z, np.float64))))) < 1e-5


def test_quadrature_of_a_polynomial():
    m, s = 0.4, 1.7
    assert abs(E.gaussian_expectation_quad(lambda z: z**4, m, s) - (m**4 + 6 * m**2 * s**2 + 3 * s**4)) < 1e-9
    with pytest.raises(ValueError, match="std"):
        E.gaussian_expectation_quad(np.sin, 0.0, 0.0)


def test_gaussian_kl_against_monte_carlo_and_diagonal_formula():
    rng = np.random.default_rng(9)
    A = rng.normal(size=(3, 3))
    cov_p = A @ A.T + 0.5 * np.eye(3)
    mean_p = rng.normal(size=3)
    mean_q, cov_q = rng.normal(size=3), np.diag(rng.uniform(0.3, 1.5, 3))
    kl = E.gaussian_kl(mean_q, cov_q, mean_p, cov_p)
    z = rng.multivariate_normal(mean_q, cov_q, 400_000)
    lr = stats.multivariate_normal(mean_q, cov_q).logpdf(z) - stats.multivariate_normal(mean_p, cov_p).logpdf(z)
    assert abs(lr.mean() - kl) < 4 * lr.std() / math.sqrt(len(z))
    assert abs(E.gaussian_kl(mean_p, cov_p, mean_p, cov_p)) < 1e-10
    # diagonal case equals the library's elementwise KL
    sq, sp = np.array([0.5, 1.2]), np.array([0.9, 0.7])
    mq, mp = np.array([0.1, -0.3]), np.array([0.4, 0.2])
    ref = float(np.sum(kl_diag_gaussians(mq, np.log(sq), mp, np.log(sp))))
    assert abs(E.gaussian_kl(mq, np.diag(sq**2), mp, np.diag(sp**2)) - ref) < 1e-5
    with pytest.raises(ValueError, match="cov_q"):
        E.gaussian_kl(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


def test_gaussian_chi2_against_monte_carlo():
    rng = np.random.default_rng(10)
    mean_p, cov_p = np.array([0.3, -0.5]), np.array([[0.3, 0.1], [0.1, 0.2]])
    mean_q, cov_q = np.array([0.5, -0.2]), np.diag([0.5, 0.4])
    chi2 = E.gaussian_chi2(mean_p, cov_p, mean_q, cov_q)
    z = rng.multivariate_normal(mean_q, cov_q, 1_000_000)
    ratio = np.exp(stats.multivariate_normal(mean_p, cov_p).logpdf(z) - stats.multivariate_normal(mean_q, cov_q).logpdf(z))
    assert abs(ratio.mean() - 1) < 0.01
    assert abs(ratio.var() - chi2) < 0.05 * chi2
    assert abs(E.gaussian_chi2(mean_p, cov_p, mean_p, cov_p)) < 1e-10
    with pytest.raises(ValueError, match="infinite"):
        E.gaussian_chi2(mean_p, cov_p, mean_q, 0.1 * cov_p)


# ---------------------------------------------------------------------------------------------
# Gradient-estimator variances
# ---------------------------------------------------------------------------------------------


def _brute_force_square_variance(kind, mean, std, baseline, n=1_000_000, seed=11):
    """Per-sample variances (and their standard errors) of the estimators for f = sum z^2, in NumPy."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n, len(mean)))
    z = mean + std * eps
    if kind == "pathwise":
        g_mean, g_log_std = 2 * z, 2 * z * std * eps
    else:
        f = np.sum(z**2, axis=1, keepdims=True) - baseline
        g_mean, g_log_std = f * eps / std, f * (eps**2 - 1)
    g = np.stack([g_mean, g_log_std])  # (2, n, d)
    c = g - g.mean(axis=1, keepdims=True)
    var = np.mean(c**2, axis=1)
    return var, np.sqrt((np.mean(c**4, axis=1) - var**2) / n)


@pytest.mark.parametrize("kind,baseline", [("pathwise", 0.0), ("score", 0.0), ("score", 1.3), ("score", 4.0)])
def test_square_grad_variance_closed_form(kind, baseline):
    mean, std = np.array([0.8, -0.3, 1.1]), np.array([0.5, 0.9, 0.3])
    theory = E.square_grad_variance(kind, mean, std, baseline)
    brute, se = _brute_force_square_variance(kind, mean, std, baseline)
    assert np.all(np.abs(brute - theory) < 5 * se)
    assert np.all(np.abs(brute - theory) < 0.1 * theory)


def test_estimator_variance_agrees_with_closed_form_and_scales_as_one_over_n():
    sq = E.square()
    mean, log_std = jnp.array([1.0]), jnp.log(jnp.array([0.5]))
    for kind, b in [("pathwise", 0.0), ("score", 0.0), ("score", 1.25)]:
        theory = E.square_grad_variance(kind, [1.0], [0.5], b)
        for n_samples in (1, 8):
            v = E.estimator_variance(kind, sq.f, jax.random.key(n_samples), mean, log_std,
                                     num_samples=n_samples, repeats=20_000, baseline=b)
            assert v.variance.shape == (2, 1) and v.stderr.shape == (2, 1)
            assert np.all(np.abs(v.variance - theory / n_samples) < 5 * v.stderr)
    with pytest.raises(ValueError, match="kind"):
        E.estimator_variance("other", sq.f, jax.random.key(0), mean, log_std, num_samples=1, repeats=2)
    with pytest.raises(ValueError, match="kind"):
        E.square_grad_variance("other", [1.0], [1.0])


# ---------------------------------------------------------------------------------------------
# IWAE repeats
# ---------------------------------------------------------------------------------------------


def test_iwae_repeats_groups_match_library_and_bound():
    model = _model(orthogonal=True, seed=12)
    x = model.sample_data(jax.random.key(13), 1)
    ks = [1, 2, 8, 32]
    est = E.iwae_repeats(model, x[0], jax.random.key(14), ks, repeats=50, chunk_size=16)
    assert [len(e) for e in est] == [50 * 32 // k for k in ks]
    lib = np.asarray(objectives.iwae_bound(model, jnp.broadcast_to(x, (50, D)), jax.random.key(14), 32, chunk_size=16))
    np.testing.assert_allclose(est[-1], lib, atol=1e-4)
    log_w = np.asarray(objectives.log_importance_weights(model, jnp.broadcast_to(x, (50, D)), jax.random.key(14), 32,
                                                         chunk_size=16), np.float64)
    np.testing.assert_allclose(np.sort(est[0]), np.sort(log_w.ravel()), atol=1e-6)
    # K = 8: group g of repeat r is draws 8g .. 8g+7 of that repeat, estimate number g * repeats + r
    brute = [special.logsumexp(log_w[8 * g : 8 * g + 8, r]) - math.log(8) for g in range(4) for r in range(50)]
    np.testing.assert_allclose(est[2], brute, atol=1e-9)
    log_px = float(model.log_marginal(x)[0])
    elbo = float(model.analytic_elbo(x)[2][0])
    assert abs(est[0].mean() - elbo) < 4 * est[0].std() / math.sqrt(len(est[0]))
    means = [e.mean() for e in est]
    assert all(m <= log_px + 4 * e.std() / math.sqrt(len(e)) for m, e in zip(means, est))
    with pytest.raises(ValueError, match="divide"):
        E.iwae_repeats(model, x[0], jax.random.key(0), [3, 4], repeats=2)
