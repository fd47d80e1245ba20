"""Plotting helpers: layout of image grids, labelled axes, and refusals of bad input."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vae_book import plotting as P  # noqa: E402


def test_image_grid_places_each_image_in_its_cell():
    imgs = np.stack([np.full((3, 4, 1), i / 10, np.float32) for i in range(5)])
    grid = P.image_grid(imgs, ncols=3, pad=1, pad_value=1.0)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 2, 1)
    assert np.all(grid[0:3, 0:4] == 0.0) and np.all(grid[0:3, 10:14] == np.float32(0.2))
    assert np.all(grid[4:7, 5:9] == np.float32(0.4))
    assert np.all(grid[4:7, 10:14] == 1.0)  # empty cell
    assert np.all(grid[3, :] == 1.0)  # padding row


def test_plots_have_labels():
    ax = P.latent_scatter(np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32),
                          labels=np.arange(30) % 3)
    assert ax.get_xlabel() == "$z_1$" and len(ax.get_legend().get_texts()) == 3
    ax = P.manifold_grid(lambda z: np.tile(z[:, :1, None, None], (1, 4, 4, 1)).clip(0, 1) * 0 + 0.5,
                         (-2, 2), (-2, 2), n=5)
    assert ax.get_ylabel() == "$z_2$" and ax.images[0].get_array().shape == (20, 20)
    plt.close("all")


def test_bad_input_is_refused_with_the_argument_name():
    with pytest.raises(ValueError, match="`images` must be images of layout"):
        P.image_grid(np.zeros((4, 28 * 28), np.float32))
    with pytest.raises(ValueError, match="`distortions` must have shape"):
        P.rate_distortion(np.array([1.0, 2.0]), np.array([3.0]))
    with pytest.raises(ValueError, match="`point_labels`"):
        P.rate_distortion(np.array([1.0, 2.0]), np.array([3.0, 1.0]), point_labels=["a"])
    with pytest.raises(ValueError, match="`codes` must have shape"):
        P.latent_scatter(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="same shape"):
        P.compare_rows({"a": np.zeros((2, 4, 4, 1), np.float32), "b": np.zeros((3, 4, 4, 1), np.float32)})


def test_train_eval_curves_draws_one_panel_per_key_with_both_curves():
    train = {"step": [10, 20, 30], "loss": [3.0, 2.0, 1.5], "kl": [0.1, 0.2, 0.3]}
    held_out = {"step": [15, 30], "loss": [3.1, 1.9], "kl": [0.2, 0.3]}
    fig = P.train_eval_curves(train, held_out, ["loss", "kl"], titles=["negative ELBO", "KL"])
    axes = fig.axes
    assert len(axes) == 2 and axes[1].get_title() == "KL"
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["training batches", "held-out images"]
    np.testing.assert_array_equal(axes[0].lines[1].get_xdata(), [15, 30])
    np.testing.assert_array_equal(axes[1].lines[0].get_ydata(), [0.1, 0.2, 0.3])
    assert axes[0].get_xlabel() == "training step" and axes[0].get_ylabel() == "nats per image"
    with pytest.raises(ValueError, match="`eval` has no"):
        P.train_eval_curves(train, {"step": [1]}, ["loss"])
    with pytest.raises(ValueError, match="`titles` must have one entry per key"):
        P.train_eval_curves(train, held_out, ["loss"], titles=["a", "b"])
    plt.close("all")


def test_prior_contours_have_the_chi2_radii_and_keep_the_legend_title():
    ax = P.latent_scatter(np.zeros((6, 2), np.float32), labels=np.arange(6) % 2)
    P.prior_contours(ax, masses=(0.5, 0.99))
    radii = [np.hypot(line.get_xdata(), line.get_ydata()).mean() for line in ax.lines]
    # independent: the chi-square(2) quantile is the squared radius
    from scipy.stats import chi2
    np.testing.assert_allclose(radii, np.sqrt(chi2(2).ppf([0.5, 0.99])), rtol=1e-6)
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "digit" and len(legend.get_texts()) == 3
    with pytest.raises(ValueError, match="`masses` must be probabilities"):
        P.prior_contours(ax, masses=(0.5, 1.0))
    plt.close("all")


def test_histograms_share_bins_and_draw_threshold_lines():
    rng = np.random.default_rng(0)
    ax = P.histograms({"a": rng.uniform(1, 2, 100), "b": rng.uniform(1, 10, 100)}, bins=10,
                      xlabel="distance", vlines={"threshold": 3.0}, logx=True)
    assert ax.get_xlabel() == "distance" and ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "threshold"]
    # each histogram is a density: its integral over the shared bins is 1
    for patch in ax.patches:
        xy = patch.get_xy()
        xs, ys = xy[1:-1:2, 0], xy[1:-1:2, 1]  # left edge and height of each bin of the step outline
        widths = np.diff(np.append(xs, xy[-2, 0]))
        np.testing.assert_allclose(np.sum(widths * ys), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="must be positive for `logx=True`"):
        P.histograms({"a": np.array([0.0, 1.0])}, xlabel="x", logx=True)
    with pytest.raises(ValueError, match="`samples` must contain"):
        P.histograms({}, xlabel="x")
    plt.close("all")


def test_occupancy_grid_shades_exactly_the_empty_cells():
    codes = np.array([[0.1, 0.1], [0.6, 0.1], [0.6, 0.6]], np.float32)  # 3 of 4 cells occupied
    ax = P.occupancy_grid(codes, bins=2, extent=((0, 1), (0, 1)))
    mesh = ax.collections[0]
    shaded = ~np.ma.getmaskarray(mesh.get_array()).reshape(2, 2)  # rows: z2, columns: z1
    np.testing.assert_array_equal(shaded, [[False, False], [True, False]])
    assert ax.get_legend().get_texts()[0].get_text() == "empty cell (25%)"
    with pytest.raises(ValueError, match="`codes` must have shape"):
        P.occupancy_grid(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="`extent` must be"):
        P.occupancy_grid(codes, extent=((1, 0), (0, 1)))
    plt.close("all")


def test_rate_distortion_draws_the_points_their_labels_and_lines_of_equal_elbo():
    rates, dists = np.array([10.0, 4.0, 1.0]), np.array([80.0, 90.0, 100.0])
    ax = P.rate_distortion(rates, dists, point_labels=["a", "b", "c"], label="sweep", extra={"other": (2.0, 95.0)})
    curve = ax.lines[0]
    np.testing.assert_allclose(curve.get_xdata(), rates)
    np.testing.assert_allclose(curve.get_ydata(), dists)
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    best = ax.lines[1]  # the line of equal ELBO through the best point: D + R = min(D + R) = 90
    np.testing.assert_allclose(best.get_xdata() + best.get_ydata(), 90.0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["sweep", "equal ELBO: D + R = const", "other"]
    assert "rate" in ax.get_xlabel() and "distortion" in ax.get_ylabel()
    plt.close("all")


def test_figure_image_is_the_figures_pixels_at_twice_its_dpi_and_closes_it():
    fig, ax = plt.subplots(figsize=(2.0, 1.0), dpi=50)
    fig.patch.set_facecolor("red")  # figure_image paints the background white
    ax.set_axis_off()
    ax.add_patch(plt.Rectangle((0, 0), 1, 1, color=(0.0, 0.0, 1.0), transform=fig.transFigure))
    img = P.figure_image(fig)
    assert img.shape == (100, 200, 3) and img.dtype == np.float32  # 2 x 1 inches at 2 x 50 dpi
    np.testing.assert_allclose(img[50, 100], [0.0, 0.0, 1.0])  # the blue rectangle fills it
    assert not plt.fignum_exists(fig.number)
    fig2, _ = plt.subplots(figsize=(1.0, 1.0))
    assert P.figure_image(fig2, dpi=30).shape == (30, 30, 3)
    np.testing.assert_allclose(P.figure_image(plt.figure(figsize=(1, 1)), dpi=20), 1.0)  # empty: white
    with pytest.raises(ValueError, match="`fig`"):
        P.figure_image(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="`dpi`"):
        P.figure_image(plt.figure(), dpi=0)
