"""Tests for vae_book.companion.estimator_figures: labelled axes, and the drawn data equal independent computations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from vae_book.companion import estimator_figures as F  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax):
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel()) and ax.get_legend() is not None


def test_elbo_sweep_draws_the_gap_between_elbo_and_log_px():
    fig, ax = plt.subplots()
    values, elbo = np.linspace(0, 1, 5), -(np.linspace(0, 1, 5) - 0.5) ** 2 - 0.1
    F.plot_elbo_sweep(ax, values, elbo, 0.0, xlabel="m", best=0.5)
    assert _labelled(ax)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), values)
    np.testing.assert_allclose(line.get_ydata(), elbo)
    # the shaded gap spans from the ELBO up to log p(x) = 0
    (gap,) = ax.collections
    ys = np.concatenate([p.vertices[:, 1] for p in gap.get_paths()])
    assert ys.min() == pytest.approx(elbo.min()) and ys.max() == pytest.approx(0.0)


def test_iwae_panels_show_mean_and_gap_of_the_estimates():
    fig, axes = plt.subplots(1, 2)
    rng = np.random.default_rng(0)
    ks = [1, 2, 4]
    est = [rng.normal(-1.0 / k, 0.1, 100) for k in ks]
    F.plot_iwae(axes, ks, est, 0.0, elbo=-1.0, chi2=2.0)
    assert all(_labelled(a) for a in axes)
    mean_line = next(l for l in axes[0].get_lines() if "mean" in l.get_label())
    np.testing.assert_allclose(mean_line.get_ydata(), [e.mean() for e in est])
    # right panel: the gap log p(x) - mean with error bars, and the chi^2 / (2K) line
    points = axes[1].containers[0].lines[0]
    np.testing.assert_allclose(points.get_ydata(), [-e.mean() for e in est])
    chi_line = next(l for l in axes[1].get_lines() if "chi" in l.get_label())
    np.testing.assert_allclose(chi_line.get_ydata(), 2.0 / (2 * chi_line.get_xdata()))


def test_aggregate_posterior_densities_match_scipy():
    fig, axes = plt.subplots(1, 2)
    pm = np.random.default_rng(0).normal(size=(50, 2))
    cov = 0.1 * np.eye(2)
    F.plot_aggregate_posterior(axes, pm, cov, pm)
    assert all(_labelled(a) for a in axes)
    lines = axes[1].get_lines()
    t = lines[0].get_xdata()
    for i, line in enumerate(lines[:5]):  # q(z_1 | x_i), i = 0..4
        np.testing.assert_allclose(line.get_ydata(), stats.norm.pdf(t, pm[i, 0], np.sqrt(0.1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lines[5].get_ydata(), stats.norm.pdf(t), rtol=1e-5, atol=1e-7)  # the prior
    assert len(axes[0].patches) == 12 + 2  # 12 posterior ellipses, 2 prior circles


def test_variance_plot_is_log_log_with_two_standard_error_bars():
    fig, ax = plt.subplots()
    x = np.array([1.0, 10.0])
    F.plot_variance(ax, x, [("a", "C0", [1.0, 0.1], [0.1, 0.01], [1.0, 0.1])], xlabel="N")
    assert _labelled(ax) and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    (bars,) = ax.containers[0].lines[2]
    segs = bars.get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segs], [0.4, 0.04])  # +-2 s.e.


def test_reparameterization_graph_draws_both_panels():
    fig = F.draw_reparameterization_graph()
    axes = fig.get_axes()
    assert len(axes) == 2
    assert all(a.get_title() for a in axes)
    texts = [t.get_text() for a in axes for t in a.texts]
    assert any("varepsilon" in t for t in texts) and any("encoder" in t for t in texts)
    assert len(fig.legends) == 1


def test_elbo_gap_frame_draws_the_gap_between_the_elbo_and_log_px():
    fig, axes = plt.subplots(1, 2)
    F.plot_elbo_gap(axes, [0.0, 0.0], np.diag([0.1, 0.2]), [0.5, 0.0], [0.3, 0.4], -5.0, -6.25,
                    limits=((-2, 2), (-2, 2)), nats=(-10, -4))
    assert "1.250" in axes[1].get_title()
    ys = axes[1].patches[0].get_verts()[:, 1]  # the band, in display units -> back to data
    lo, hi = axes[1].transData.inverted().transform([[0, ys.min()], [0, ys.max()]])[:, 1]
    assert (lo, hi) == (pytest.approx(-6.25), pytest.approx(-5.0))
    assert [ln.get_ydata()[0] for ln in axes[1].lines] == [-5.0, -6.25]  # log p(x), then the ELBO
    assert axes[1].get_ylim() == (-10, -4) and axes[0].get_xlim() == (-2, 2)
    assert len(axes[0].patches) == 4  # 1- and 2-sd ellipses of each
    plt.close(fig)


def test_gradient_spread_frame_reports_each_estimators_sd_and_what_falls_off_the_axis():
    fig, ax = plt.subplots()
    g = np.concatenate([np.zeros(90), np.full(10, 100.0)])
    F.plot_gradient_spread(ax, {"wide": g, "narrow": np.linspace(-1, 1, 100)}, 0.5, xlim=(-5, 5), title="t")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"wide: sd {g.std(ddof=1):.3g}, 10% off the axis"
    assert labels[1] == f"narrow: sd {np.linspace(-1, 1, 100).std(ddof=1):.3g}"
    assert labels[2] == "true gradient 0.5" and ax.get_xlim() == (-5, 5)
    plt.close(fig)
