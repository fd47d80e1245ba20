"""vae_book.companion.sweeps: the beta sweep, the optimal decoder of a fixed encoder, and the sweep's figures."""

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402
from scipy import stats  # noqa: E402

from vae_book import evaluation  # noqa: E402
from vae_book.companion import sweeps  # noqa: E402
from vae_book.models.mlp import MLPConfig, MLPVAE  # noqa: E402
from vae_book.profiles import get_profile  # noqa: E402


@pytest.fixture(scope="module")
def sweep():
    profile = get_profile("smoke")
    return sweeps.beta_sweep([2.0, 0.5], profile=profile, steps=2, z_dim=4, hidden=16, num_images=4,
                             num_samples=4, num_mc=1,
                             cache=False, progress=False)


def test_sweep_measures_each_run(sweep):
    assert list(sweep.betas) == [0.5, 2.0]  # sorted
    for p in sweep.points:
        z_dim = p.run.model.z_dim
        assert z_dim == 4
        assert p.rate >= 0 and p.distortion > 0
        assert p.elbo == pytest.approx(-(p.rate + p.distortion))
        assert p.kl_per_dim.shape == (z_dim,) and p.kl_per_dim.sum() == pytest.approx(p.rate, rel=1e-4)
        assert 0 <= p.active_units <= z_dim and p.active_units == int(np.sum(p.unit_variances > 0.01))
        # one encoder pass gives both statistics: they match a direct computation from the encoder
        mean, log_std = (np.asarray(a, np.float64) for a in p.run.model.encode(jnp.asarray(p.run.test_images)))
        np.testing.assert_allclose(p.unit_variances, mean.var(0), rtol=1e-4, atol=1e-10)
        kl = 0.5 * (np.exp(2 * log_std) + mean**2 - 1 - 2 * log_std)
        np.testing.assert_allclose(p.kl_per_dim, kl.mean(0), rtol=1e-4, atol=1e-8)
        assert p.reconstructions.shape == (4, 28, 28, 1) and p.samples.shape == (4, 28, 28, 1)
        assert p.run.settings["beta"] == p.beta and p.run.settings["steps"] == 2
    frames = sweep.frames()
    assert frames.shape[0] == 2 and frames.shape[-1] == 1 and 0 <= frames.min() and frames.max() <= 1
    m = sweep.objective_matrix()
    assert m[1, 0] == pytest.approx(sweep.distortions[1] + 0.5 * sweep.rates[1])
    for p in sweep.points:  # the training-set numbers are measured on the run's own training images
        rate, dist = evaluation.rate_distortion(p.run.model, p.run.train_images, jax.random.key(11), num_samples=4)
        assert p.train_rate == pytest.approx(rate, rel=1e-5)  # analytic KL: no Monte Carlo error
        assert abs(p.train_distortion - dist) < 0.05 * dist + 1.0
    mt = sweep.objective_matrix("train")
    assert mt[0, 1] == pytest.approx(sweep.train_distortions[0] + 2.0 * sweep.train_rates[0])
    with pytest.raises(ValueError, match="`split` must be 'train' or 'test'"):
        sweep.objective_matrix("val")
    assert len(sweep.table()) == 2
    assert sweep.point(2.0) is sweep.points[1]
    assert sweep.kl_per_dim.shape == sweep.unit_variances.shape == (2, 4)
    np.testing.assert_array_equal(sweep.unit_variances[1], sweep.points[1].unit_variances)
    with pytest.raises(ValueError, match="beta"):
        sweep.point(3.0)


def test_sweep_rejects_bad_betas():
    with pytest.raises(ValueError, match="betas"):
        sweeps.beta_sweep([1.0, -1.0], steps=1, cache=False, progress=False)
    with pytest.raises(ValueError, match="betas"):
        sweeps.beta_sweep([], steps=1, cache=False, progress=False)
    with pytest.raises(ValueError, match="betas"):
        sweeps.beta_sweep("ab", steps=1, cache=False, progress=False)


def test_posterior_weights_against_scipy():
    model = MLPVAE(MLPConfig(image_shape=(4, 4, 1), hidden=8, z_dim=2), rngs=nnx.Rngs(0))
    x = (np.random.default_rng(0).uniform(size=(30, 4, 4, 1)) > 0.5).astype(np.float32)
    z = np.array([0.1, -0.2])
    w, mean_image = sweeps.posterior_weights(model, x, z, batch_size=7)
    mu, log_std = (np.asarray(a, np.float64) for a in model.encode(jnp.asarray(x)))
    dens = np.array([stats.multivariate_normal(m, np.diag(np.exp(2 * s))).pdf(z) for m, s in zip(mu, log_std)])
    np.testing.assert_allclose(w, dens / dens.sum(), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(mean_image, np.tensordot(dens / dens.sum(), x, axes=1), rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="z"):
        sweeps.posterior_weights(model, x, np.zeros(3))


def test_plots_have_labels(sweep):
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    ax = sweeps.plot_active_units(axes[0], sweep.betas, sweep.unit_variances, sweep.rates, thresholds=(0.01, 0.1),
                                  z_dim=20)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), sweep.active)  # the 0.01 line is the active-unit count
    sweeps.plot_kl_per_dim(axes[1:], sweep.betas, sweep.kl_per_dim, sweep.unit_variances, sweep.rates,
                           thresholds=(0.01, 0.1))
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    heights = [bar.get_height() for bar in axes[2].patches]
    np.testing.assert_allclose(heights, np.sort(sweep.points[1].kl_per_dim)[::-1])  # sorted, largest first
    assert axes[2].get_title().startswith("β = 2:")
    with pytest.raises(ValueError, match="axes"):
        sweeps.plot_kl_per_dim(axes[:1], sweep.betas, sweep.kl_per_dim, sweep.unit_variances, sweep.rates)
    with pytest.raises(ValueError, match="unit_variances"):
        sweeps.plot_active_units(axes[0], sweep.betas, sweep.unit_variances[:1], sweep.rates)
    plt.close(fig)


def test_posterior_weights_for_many_codes_match_one_at_a_time():
    model = MLPVAE(MLPConfig(image_shape=(4, 4, 1), hidden=8, z_dim=2), rngs=nnx.Rngs(0))
    x = (np.random.default_rng(1).uniform(size=(20, 4, 4, 1)) > 0.5).astype(np.float32)
    zs = np.random.default_rng(2).standard_normal((5, 2))
    w, m = sweeps.posterior_weights(model, x, zs, chunk=2)
    assert w.shape == (5, 20) and m.shape == (5, 4, 4, 1)
    for i in range(5):
        wi, mi = sweeps.posterior_weights(model, x, zs[i])
        np.testing.assert_allclose(w[i], wi, rtol=1e-10)
        np.testing.assert_allclose(m[i], mi, rtol=1e-10)
