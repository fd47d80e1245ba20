"""Tests of vae_book.companion.toys against independent computations (NumPy sampling, SciPy quadrature)."""

import math

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from scipy import integrate, optimize, stats

from vae_book.companion import toys
from vae_book.distributions import kl_diag_gaussians, kl_to_standard_normal

matplotlib.use("Agg")


# ----------------------------------------------------------------------------- chapter 1


def test_curve_mean_values_and_shape():
    z = np.array([-1.0, 0.0, 0.7])
    f = np.asarray(toys.curve_mean(z))
    assert f.shape == (3, 2)
    np.testing.assert_allclose(f[:, 0], 2 * np.sin(1.2 * z), atol=1e-6)
    np.testing.assert_allclose(f[:, 1], 0.8 * z, atol=1e-6)


def test_sample_curve_model_moments():
    # E[x] = 0, Var[x2] = 0.64 + s^2, Var[x1] = 4 E[sin^2(1.2 z)] + s^2 = 2 (1 - exp(-2.88)) + s^2
    n, s = 200_000, toys.CURVE_NOISE_STD
    z, x = toys.sample_curve_model(jax.random.key(0), n)
    x = np.asarray(x, np.float64)
    assert z.shape == (n,) and x.shape == (n, 2)
    var = np.array([2 * (1 - math.exp(-2.88)) + s**2, 0.64 + s**2])
    assert np.all(np.abs(x.mean(0)) < 5 * np.sqrt(var / n))
    np.testing.assert_allclose(x.var(0), var, rtol=0.02)


def _curve_density_quad(pt, s=toys.CURVE_NOISE_STD):
    f = lambda t: (stats.norm.pdf(pt[0], 2 * np.sin(1.2 * t), s) * stats.norm.pdf(pt[1], 0.8 * t, s)
                   * stats.norm.pdf(t))
    return integrate.quad(f, -10, 10, points=[pt[1] / 0.8], limit=200, epsabs=0, epsrel=1e-10)[0]


@pytest.mark.parametrize("noise_std", [0.15, 0.3])
def test_curve_log_marginal_matches_scipy_quad(noise_std):
    pts = np.array([[0.0, 0.0], [1.9, 1.0], [-1.0, 0.7], [0.3, -2.0]])
    ours = np.exp(np.asarray(toys.curve_log_marginal(pts, noise_std), np.float64))
    ref = np.array([_curve_density_quad(p, noise_std) for p in pts])
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_bin_probabilities_gaussian_against_cdf():
    edges = np.linspace(-3, 3, 13)
    log_density = lambda p: stats.norm.logpdf(p[:, 0]) + stats.norm.logpdf(p[:, 1], 0.5, 0.8)
    probs, cx, cy, dens = toys.bin_probabilities(log_density, edges, edges, sub=8, return_fine=True)
    px = np.diff(stats.norm.cdf(edges))
    py = np.diff(stats.norm.cdf(edges, 0.5, 0.8))
    np.testing.assert_allclose(probs, np.outer(px, py), atol=2e-4)
    assert dens.shape == (96, 96) and cx.shape == (96,) and cy.shape == (96,)


def test_histogram_tv_noise_level_and_detects_wrong_model():
    rng = np.random.default_rng(0)
    edges = np.linspace(-4, 4, 21)
    px = np.diff(stats.norm.cdf(edges))
    probs = np.outer(px, px)
    x = rng.standard_normal((20_000, 2))
    tv, noise, noise_sd = toys.histogram_tv(x, probs, edges, edges)
    assert tv < noise + 4 * noise_sd
    tv_wrong, _, _ = toys.histogram_tv(1.3 * x, probs, edges, edges)
    assert tv_wrong > noise + 10 * noise_sd


def test_orthogonal_linear_model_columns():
    m = toys.orthogonal_linear_model(3, 7, weight_scale=1.5, noise_std=0.4)
    W = np.asarray(m.W[...], np.float64)
    assert W.shape == (7, 3)
    np.testing.assert_allclose(W.T @ W, 1.5**2 * np.eye(3), atol=1e-5)
    assert abs(float(np.exp(m.log_sigma[...])) - 0.4) < 1e-6
    with pytest.raises(ValueError, match="data_dim"):
        toys.orthogonal_linear_model(3, 2)


def test_linear_helpers_match_scipy():
    m = toys.orthogonal_linear_model(2, 5)
    W, b, s = np.asarray(m.W[...], np.float64), np.asarray(m.b[...], np.float64), 0.5
    x = toys.sample_linear_data(m, 4, 1)
    ref = stats.multivariate_normal.logpdf(x, b, W @ W.T + s**2 * np.eye(5))
    np.testing.assert_allclose(toys.linear_log_marginal(m, x), ref, atol=1e-4)
    mean, cov = toys.linear_posterior(m, x)
    np.testing.assert_allclose(cov, s**2 / (4 + s**2) * np.eye(2), atol=1e-6)
    np.testing.assert_allclose(mean, 2 * (x - b) @ (W / 2) / (4 + s**2), atol=1e-5)


def test_sample_linear_data_covariance():
    m = toys.orthogonal_linear_model(2, 3, seed=3)
    W = np.asarray(m.W[...], np.float64)
    x = toys.sample_linear_data(m, 200_000, 0).astype(np.float64)
    np.testing.assert_allclose(np.cov(x.T), W @ W.T + 0.25 * np.eye(3), atol=0.05)


def test_prior_mc_log_marginal_accuracy_and_determinism():
    m = toys.orthogonal_linear_model(1)
    x = toys.sample_linear_data(m, 3, 0)
    exact = toys.linear_log_marginal(m, x)
    est, ess = toys.prior_mc_log_marginal(m, x, 1, 100_000, chunk_size=7_000)  # uneven chunks
    sd = np.sqrt(np.expm1(toys.prior_chi2(m, x)) / 100_000)
    assert np.all(np.abs(est - exact) < 5 * sd)
    assert np.all((ess > 1) & (ess <= 100_000))
    again, _ = toys.prior_mc_log_marginal(m, x, 1, 100_000, chunk_size=7_000)
    np.testing.assert_array_equal(est, again)


def test_prior_mc_log_marginal_against_bruteforce_weights():
    # the chunked quadratic-form evaluation equals a direct evaluation of log p(x|z) with scipy
    m = toys.orthogonal_linear_model(3)
    W, b = np.asarray(m.W[...], np.float64), np.asarray(m.b[...], np.float64)
    x = toys.sample_linear_data(m, 2, 5).astype(np.float64)
    est, ess = toys.prior_mc_log_marginal(m, x, np.random.default_rng(9), 5_000, chunk_size=1_000)
    rng = np.random.default_rng(9)
    z = np.concatenate([rng.standard_normal((1_000, 3), dtype=np.float32) for _ in range(5)]).astype(np.float64)
    lw = stats.norm.logpdf(x[:, None, :], z @ W.T + b, 0.5).sum(-1)  # (B, K)
    ref = np.logaddexp.reduce(lw, axis=1) - np.log(5_000)
    np.testing.assert_allclose(est, ref, atol=2e-4)
    w = np.exp(lw - lw.max(1, keepdims=True))
    np.testing.assert_allclose(ess, w.sum(1) ** 2 / (w**2).sum(1), rtol=1e-3)


def test_prior_chi2_against_quadrature_d1():
    m = toys.orthogonal_linear_model(1)
    W, b = np.asarray(m.W[...], np.float64), np.asarray(m.b[...], np.float64)
    for xi in toys.sample_linear_data(m, 2, 2).astype(np.float64):
        lik = lambda t: np.prod(stats.norm.pdf(xi, W[:, 0] * t + b, 0.5))
        px = integrate.quad(lambda t: lik(t) * stats.norm.pdf(t), -10, 10, epsabs=0)[0]
        m2 = integrate.quad(lambda t: lik(t) ** 2 * stats.norm.pdf(t), -10, 10, epsabs=0)[0]
        c = toys.prior_chi2(m, xi[None])[0]
        assert abs(np.exp(c) - m2 / px**2) < 1e-5 * m2 / px**2


def test_prior_chi2_against_posterior_product_formula():
    # 1 + chi^2 = prod_j exp(m_j^2 / (2 - s^2)) / (s sqrt(2 - s^2)) for the orthogonal model
    m = toys.orthogonal_linear_model(6)
    x = toys.sample_linear_data(m, 3, 4)
    mean, cov = toys.linear_posterior(m, x)
    s2 = cov[0, 0]
    ref = np.sum(mean**2, 1) / (2 - s2) - 6 * 0.5 * np.log(s2 * (2 - s2))
    np.testing.assert_allclose(toys.prior_chi2(m, x), ref, rtol=1e-4)


def test_prior_mc_study_shapes_and_trend():
    st = toys.prior_mc_study((1, 16), num_samples=2_000, num_points=2, repeats=3)
    assert st["error"].shape == (2, 2, 3) and st["ess"].shape == (2, 2, 3) and st["log1p_chi2"].shape == (2, 2)
    assert np.abs(st["error"][0]).max() < 0.2 < np.abs(st["error"][1]).min()
    fig = toys.plot_prior_mc_study(st)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() and fig.axes[1].get_ylabel()
    import matplotlib.pyplot as plt

    plt.close(fig)


# ----------------------------------------------------------------------------- chapter 3


def test_mixture_log_density_and_moments():
    t = np.linspace(-6, 6, 13)
    w, m, s = toys.BIMODAL["weights"], toys.BIMODAL["means"], toys.BIMODAL["stds"]
    ref = np.log(sum(wi * stats.norm.pdf(t, mi, si) for wi, mi, si in zip(w, m, s)))
    np.testing.assert_allclose(toys.mixture_log_density(t, w, m, s), ref, atol=1e-5)
    dens = lambda u: sum(wi * stats.norm.pdf(u, mi, si) for wi, mi, si in zip(w, m, s))
    mean = integrate.quad(lambda u: u * dens(u), -np.inf, np.inf)[0]
    var = integrate.quad(lambda u: (u - mean) ** 2 * dens(u), -np.inf, np.inf)[0]
    got = toys.mixture_moments(w, m, s)
    assert abs(got[0] - mean) < 1e-8 and abs(got[1] - math.sqrt(var)) < 1e-8


def test_grid_kl_matches_closed_form():
    grid = np.linspace(-15, 15, 6001)
    lq = stats.norm.logpdf(grid, 1.0, 0.7)
    lp = stats.norm.logpdf(grid, -0.5, 1.3)
    got = float(toys.grid_kl(lq, lp, grid[1] - grid[0]))
    ref = math.log(1.3 / 0.7) + (0.7**2 + 1.5**2) / (2 * 1.3**2) - 0.5
    assert abs(got - ref) < 1e-4


def test_fit_gaussian_kl_forward_is_moment_matching_reverse_finds_modes():
    grid = np.linspace(-10, 10, 4001)
    lp = toys.mixture_log_density(grid, **toys.BIMODAL)
    fwd = toys.fit_gaussian_kl(lp, grid, "forward", 0.0, 0.0)
    mean, std = toys.mixture_moments(**toys.BIMODAL)
    assert abs(fwd["mean"] - mean) < 1e-3 and abs(math.exp(fwd["log_std"]) - std) < 1e-3
    rev = toys.fit_gaussian_kl(lp, grid, "reverse", 2.5, 0.0)
    assert abs(rev["mean"] - 2.0) < 0.1 and abs(rev["kl"] + math.log(0.4)) < 0.02
    assert rev["grad_norm"] < 1e-3 and rev["history"].shape == (1500,)
    with pytest.raises(ValueError, match="direction"):
        toys.fit_gaussian_kl(lp, grid, "sideways", 0.0, 0.0)


def test_kl_landscape_matches_grid_kl():
    grid = np.linspace(-10, 10, 2001)
    lp = toys.mixture_log_density(grid, **toys.BIMODAL)
    means, log_stds = np.array([-1.0, 0.5]), np.array([-0.3, 0.2, 0.6])
    land = toys.kl_landscape(lp, grid, "reverse", means, log_stds)
    assert land.shape == (3, 2)
    lq = stats.norm.logpdf(grid, means[1], np.exp(log_stds[2]))
    ref = float(toys.grid_kl(lq, np.asarray(lp, np.float64), grid[1] - grid[0]))
    assert abs(land[2, 1] - ref) < 1e-4


def test_kl_log_var_slip_formula_and_bound():
    mu, s = np.linspace(-2, 2, 11), np.linspace(-3, 2, 11)
    np.testing.assert_allclose(toys.kl_log_var_slip(mu, s), 0.5 * (np.exp(s) + mu**2 - 1 - s), rtol=1e-5)
    assert np.all(np.asarray(toys.kl_log_var_slip(mu, s)) <= np.asarray(kl_to_standard_normal(mu, s)) + 1e-6)


def test_linear_1d_neg_elbo_against_monte_carlo():
    rng = np.random.default_rng(0)
    w, tau, x, mu, sig = 1.7, 0.6, 0.9, -0.2, 0.5
    z = rng.normal(mu, sig, 400_000)
    r = -stats.norm.logpdf(x, w * z, tau) + stats.norm.logpdf(z, mu, sig) - stats.norm.logpdf(z)
    got = float(toys.linear_1d_neg_elbo(mu, math.log(sig), x, w, tau))
    assert abs(got - r.mean()) < 4 * r.std() / np.sqrt(z.size)


@pytest.mark.parametrize("w,tau", [(2.0, 1.0), (0.5, 1.0), (3.0, 0.3)])
def test_optimal_std_formulas_against_numerical_minimisation(w, tau):
    a, x = w**2 / tau**2, 0.7
    mu_star = w * x / (w**2 + tau**2)
    for kl, formula in [(kl_to_standard_normal, toys.exact_posterior_std(a)),
                        (toys.kl_log_var_slip, toys.slip_optimal_std(a))]:
        res = optimize.minimize_scalar(lambda s: float(toys.linear_1d_neg_elbo(mu_star, s, x, w, tau, kl)),
                                       bounds=(-6, 2), method="bounded", options=dict(xatol=1e-8))
        assert abs(math.exp(res.x) - formula) < 1e-3
    # the true-KL optimum is the exact posterior: KL to it is zero
    post = float(kl_diag_gaussians(mu_star, math.log(toys.exact_posterior_std(a)), mu_star,
                                   0.5 * math.log(tau**2 / (w**2 + tau**2))))
    assert abs(post) < 1e-6
