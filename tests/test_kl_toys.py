"""Tests of vae_book.companion.kl_toys (chapter 3) against independent computations (SciPy, quadrature, Monte Carlo)."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from vae_book.companion import kl_toys
from vae_book.distributions import kl_diag_gaussians, kl_to_standard_normal


def test_mixture_log_density_and_moments():
    t = np.linspace(-6, 6, 13)
    w, m, s = kl_toys.BIMODAL["weights"], kl_toys.BIMODAL["means"], kl_toys.BIMODAL["stds"]
    ref = np.log(sum(wi * stats.norm.pdf(t, mi, si) for wi, mi, si in zip(w, m, s)))
    np.testing.assert_allclose(kl_toys.mixture_log_density(t, w, m, s), ref, atol=1e-5)
    dens = lambda u: sum(wi * stats.norm.pdf(u, mi, si) for wi, mi, si in zip(w, m, s))
    mean = integrate.quad(lambda u: u * dens(u), -np.inf, np.inf)[0]
    var = integrate.quad(lambda u: (u - mean) ** 2 * dens(u), -np.inf, np.inf)[0]
    got = kl_toys.mixture_moments(w, m, s)
    assert abs(got[0] - mean) < 1e-8 and abs(got[1] - math.sqrt(var)) < 1e-8


def test_grid_kl_matches_closed_form():
    grid = np.linspace(-15, 15, 6001)
    lq = stats.norm.logpdf(grid, 1.0, 0.7)
    lp = stats.norm.logpdf(grid, -0.5, 1.3)
    got = float(kl_toys.grid_kl(lq, lp, grid[1] - grid[0]))
    ref = math.log(1.3 / 0.7) + (0.7**2 + 1.5**2) / (2 * 1.3**2) - 0.5
    assert abs(got - ref) < 1e-4


def test_fit_gaussian_kl_forward_is_moment_matching_reverse_finds_modes():
    grid = np.linspace(-10, 10, 4001)
    lp = kl_toys.mixture_log_density(grid, **kl_toys.BIMODAL)
    fwd = kl_toys.fit_gaussian_kl(lp, grid, "forward", 0.0, 0.0)
    mean, std = kl_toys.mixture_moments(**kl_toys.BIMODAL)
    assert abs(fwd["mean"] - mean) < 1e-3 and abs(math.exp(fwd["log_std"]) - std) < 1e-3
    rev = kl_toys.fit_gaussian_kl(lp, grid, "reverse", 2.5, 0.0)
    assert abs(rev["mean"] - 2.0) < 0.1 and abs(rev["kl"] + math.log(0.4)) < 0.02
    assert rev["grad_norm"] < 1e-3 and rev["history"].shape == (1500,)
    with pytest.raises(ValueError, match="direction"):
        kl_toys.fit_gaussian_kl(lp, grid, "sideways", 0.0, 0.0)


def test_kl_landscape_matches_grid_kl():
    grid = np.linspace(-10, 10, 2001)
    lp = kl_toys.mixture_log_density(grid, **kl_toys.BIMODAL)
    means, log_stds = np.array([-1.0, 0.5]), np.array([-0.3, 0.2, 0.6])
    land = kl_toys.kl_landscape(lp, grid, "reverse", means, log_stds)
    assert land.shape == (3, 2)
    lq = stats.norm.logpdf(grid, means[1], np.exp(log_stds[2]))
    ref = float(kl_toys.grid_kl(lq, np.asarray(lp, np.float64), grid[1] - grid[0]))
    assert abs(land[2, 1] - ref) < 1e-4


def test_kl_log_var_slip_formula_and_bound():
    mu, s = np.linspace(-2, 2, 11), np.linspace(-3, 2, 11)
    np.testing.assert_allclose(kl_toys.kl_log_var_slip(mu, s), 0.5 * (np.exp(s) + mu**2 - 1 - s), rtol=1e-5)
    assert np.all(np.asarray(kl_toys.kl_log_var_slip(mu, s)) <= np.asarray(kl_to_standard_normal(mu, s)) + 1e-6)


def test_linear_1d_neg_elbo_against_monte_carlo():
    rng = np.random.default_rng(0)
    w, tau, x, mu, sig = 1.7, 0.6, 0.9, -0.2, 0.5
    z = rng.normal(mu, sig, 400_000)
    r = -stats.norm.logpdf(x, w * z, tau) + stats.norm.logpdf(z, mu, sig) - stats.norm.logpdf(z)
    got = float(kl_toys.linear_1d_neg_elbo(mu, math.log(sig), x, w, tau))
    assert abs(got - r.mean()) < 4 * r.std() / np.sqrt(z.size)


@pytest.mark.parametrize("w,tau", [(2.0, 1.0), (0.5, 1.0), (3.0, 0.3)])
def test_optimal_std_formulas_against_numerical_minimisation(w, tau):
    a, x = w**2 / tau**2, 0.7
    mu_star = w * x / (w**2 + tau**2)
    for kl, formula in [(kl_to_standard_normal, kl_toys.exact_posterior_std(a)),
                        (kl_toys.kl_log_var_slip, kl_toys.slip_optimal_std(a))]:
        res = optimize.minimize_scalar(lambda s: float(kl_toys.linear_1d_neg_elbo(mu_star, s, x, w, tau, kl)),
                                       bounds=(-6, 2), method="bounded", options=dict(xatol=1e-8))
        assert abs(math.exp(res.x) - formula) < 1e-3
    # the true-KL optimum is the exact posterior: KL to it is zero
    post = float(kl_diag_gaussians(mu_star, math.log(kl_toys.exact_posterior_std(a)), mu_star,
                                   0.5 * math.log(tau**2 / (w**2 + tau**2))))
    assert abs(post) < 1e-6


def test_the_kl_explorer_frame_shades_an_area_equal_to_the_kl_and_titles_both_directions():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    kl_toys.plot_kl_to_standard_normal(axes, 1.0, 0.5)
    forward = float(kl_to_standard_normal(1.0, math.log(0.5)))
    reverse = float(kl_diag_gaussians(0.0, 0.0, 1.0, math.log(0.5)))
    assert f"{forward:.3f}" in axes[0].get_title() and f"{reverse:.3f}" in axes[1].get_title()
    assert forward != pytest.approx(reverse)
    # the shaded integrand's area (trapezoid over its outline) is the KL of the title
    outline = axes[0].collections[0].get_paths()[0].vertices[1:1202]  # (z, integrand), then back along 0
    ref = integrate.quad(lambda t: stats.norm.pdf(t, 1, 0.5) * (stats.norm.logpdf(t, 1, 0.5) - stats.norm.logpdf(t)),
                         -10, 10)[0]
    assert np.all(np.diff(outline[:, 0]) > 0)
    assert np.trapezoid(outline[:, 1], outline[:, 0]) == pytest.approx(ref, abs=1e-3)
    assert axes[1].lines[-1].get_xydata().tolist() == [[1.0, pytest.approx(math.log(0.5))]]
    plt.close(fig)
    with pytest.raises(ValueError, match="`std`"):
        kl_toys.plot_kl_to_standard_normal(axes, 0.0, 0.0)
