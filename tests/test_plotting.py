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
    h = {"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0], "kl": [0.1, 0.2, 0.3]}
    ax = P.training_curves(h, ["loss", "kl"])
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "nats per image"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "kl"]
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
    with pytest.raises(ValueError, match="`history` has no"):
        P.training_curves({"step": [1]}, ["loss"])
    with pytest.raises(ValueError, match="`codes` must have shape"):
        P.latent_scatter(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="same shape"):
        P.compare_rows({"a": np.zeros((2, 4, 4, 1), np.float32), "b": np.zeros((3, 4, 4, 1), np.float32)})
