"""Tests of vae_book.companion.toys (chapter 1) against independent computations (NumPy sampling, SciPy quadrature)."""

import math

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from scipy import integrate, stats

from vae_book.companion import toys
from vae_book.distributions import sample_diag_gaussian
from vae_book.models.linear import LinearGaussianModel

matplotlib.use("Agg")


# ----------------------------------------------------------------------------- chapter 1


def test_curve_mean_values_and_shape():
    z = np.array([-1.0, 0.0, 0.7])
    f = np.asarray(toys.curve_mean(z))
    assert f.shape == (3, 2)
    np.testing.assert_allclose(f[:, 0], 2 * np.sin(1.2 * z), atol=1e-6)
    np.testing.assert_allclose(f[:, 1], 0.8 * z, atol=1e-6)


def test_curve_model_ancestral_samples_moments():
    # chapter 1 samples z ~ N(0, 1), then x ~ N(f(z), s^2 I) with the library's sample_diag_gaussian.
    # E[x] = 0, Var[x2] = 0.64 + s^2, Var[x1] = 4 E[sin^2(1.2 z)] + s^2 = 2 (1 - exp(-2.88)) + s^2
    n, s = 200_000, toys.CURVE_NOISE_STD
    kz, kx = jax.random.split(jax.random.key(0))
    z = jax.random.normal(kz, (n,))
    x = np.asarray(sample_diag_gaussian(kx, toys.curve_mean(z), jnp.full((n, 2), jnp.log(s))), np.float64)
    assert x.shape == (n, 2)
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


def test_linear_model_log_marginal_and_posterior_match_scipy():
    # the chapter calls LinearGaussianModel.log_marginal and .posterior directly
    m = toys.orthogonal_linear_model(2, 5)
    W, b, s = np.asarray(m.W[...], np.float64), np.asarray(m.b[...], np.float64), 0.5
    x = m.sample_data_numpy(1, 4)
    ref = stats.multivariate_normal.logpdf(x, b, W @ W.T + s**2 * np.eye(5))
    np.testing.assert_allclose(np.asarray(m.log_marginal(x), np.float64), ref, atol=1e-4)
    mean, cov = (np.asarray(a, np.float64) for a in m.posterior(x))
    np.testing.assert_allclose(cov, s**2 / (4 + s**2) * np.eye(2), atol=1e-6)
    np.testing.assert_allclose(mean, 2 * (x - b) @ (W / 2) / (4 + s**2), atol=1e-5)
    # a non-orthogonal W: Bayes' rule by brute force, p(z | x) ∝ p(x | z) p(z) on a grid (d = 1)
    m1 = LinearGaussianModel(np.array([[1.3], [-0.4]]), np.array([0.2, -0.1]), np.log(0.7))
    x1 = np.array([[0.9, 0.3]], np.float32)
    t = np.linspace(-8, 8, 16001)
    post = (stats.norm.pdf(x1[0, 0], 1.3 * t + 0.2, 0.7) * stats.norm.pdf(x1[0, 1], -0.4 * t - 0.1, 0.7)
            * stats.norm.pdf(t))
    post /= post.sum()
    pm, pc = (np.asarray(a, np.float64) for a in m1.posterior(x1))
    assert abs(pm[0, 0] - (t * post).sum()) < 1e-5 and abs(pc[0, 0] - ((t - pm[0, 0]) ** 2 * post).sum()) < 1e-5


def test_sample_data_numpy_moments_stream_and_errors():
    m = toys.orthogonal_linear_model(2, 3, seed=3)
    W = np.asarray(m.W[...], np.float64)
    x = m.sample_data_numpy(0, 200_000)
    assert x.shape == (200_000, 3) and x.dtype == np.float32
    x = x.astype(np.float64)
    assert np.all(np.abs(x.mean(0)) < 5 * np.sqrt(np.diag(W @ W.T + 0.25) / len(x)))
    np.testing.assert_allclose(np.cov(x.T), W @ W.T + 0.25 * np.eye(3), atol=0.05)
    # a generator is advanced in place (z first, then the noise); an int seed starts a fresh one
    rng = np.random.default_rng(7)
    a, b = m.sample_data_numpy(rng, 2), m.sample_data_numpy(rng, 2)
    ref = np.random.default_rng(7)
    z, eps = ref.standard_normal((2, 2)), ref.standard_normal((2, 3))
    np.testing.assert_allclose(a, z @ W.T + 0.5 * eps, atol=1e-6)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(m.sample_data_numpy(7, 2), a)
    for bad in (1.5, True, "0"):
        with pytest.raises(ValueError, match="rng"):
            m.sample_data_numpy(bad, 2)
    with pytest.raises(ValueError, match="n"):
        m.sample_data_numpy(0, 0)


def test_prior_mc_log_marginal_accuracy_and_determinism():
    m = toys.orthogonal_linear_model(1)
    x = m.sample_data_numpy(0, 3)
    exact = np.asarray(m.log_marginal(x), np.float64)
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
    x = m.sample_data_numpy(5, 2).astype(np.float64)
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
    for xi in m.sample_data_numpy(2, 2).astype(np.float64):
        lik = lambda t: np.prod(stats.norm.pdf(xi, W[:, 0] * t + b, 0.5))
        px = integrate.quad(lambda t: lik(t) * stats.norm.pdf(t), -10, 10, epsabs=0)[0]
        m2 = integrate.quad(lambda t: lik(t) ** 2 * stats.norm.pdf(t), -10, 10, epsabs=0)[0]
        c = toys.prior_chi2(m, xi[None])[0]
        assert abs(np.exp(c) - m2 / px**2) < 1e-5 * m2 / px**2


def test_prior_chi2_against_posterior_product_formula():
    # 1 + chi^2 = prod_j exp(m_j^2 / (2 - s^2)) / (s sqrt(2 - s^2)) for the orthogonal model
    m = toys.orthogonal_linear_model(6)
    x = m.sample_data_numpy(4, 3)
    mean, cov = (np.asarray(a, np.float64) for a in m.posterior(x))
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


def test_plot_generator_draws_codes_their_means_on_the_curve_and_noise_of_sigma():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, ConnectionPatch

    sigma = 0.2
    axes = toys.plot_generator(num_codes=5, num_noise=2000, noise_std=sigma, seed=1)
    a1, a2, a3 = axes
    z = a1.collections[0].get_offsets()[:, 0]
    assert len(z) == 5 and np.allclose(a1.collections[0].get_offsets()[:, 1], 0)
    means = np.asarray(a2.collections[0].get_offsets())
    np.testing.assert_allclose(means, np.stack([2 * np.sin(1.2 * z), 0.8 * z], 1), atol=1e-5)  # f of (ch01-curve)
    clouds = [np.asarray(c.get_offsets()) for c in a3.collections[:5]]
    for cloud, centre in zip(clouds, means):
        assert cloud.shape == (2000, 2)
        assert np.all(np.abs(cloud.mean(0) - centre) < 4 * sigma / np.sqrt(2000))
        assert np.all(np.abs(cloud.std(0) / sigma - 1) < 0.06)
    circles = [p for p in a3.patches if isinstance(p, Circle)]
    assert len(circles) == 5 and all(np.isclose(c.get_radius(), 2 * sigma) for c in circles)
    links = [a for a in a1.figure.artists if isinstance(a, ConnectionPatch)]
    assert len(links) == 5
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close("all")
    with pytest.raises(ValueError, match="`noise_std` must be a positive number"):
        toys.plot_generator(noise_std=0.0)
    with pytest.raises(ValueError, match="`num_codes`"):
        toys.plot_generator(num_codes=0)
    _, two = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="`axes` must be three Axes, got 2"):
        toys.plot_generator(two)
    plt.close("all")
