"""ELBO, loss, IWAE bound and gradient estimators against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from vae_book import objectives as O
from vae_book.models.linear import LinearGaussianModel
from vae_book.models.mlp import MLPConfig, MLPVAE


@pytest.fixture(scope="module")
def small_vae():
    model = MLPVAE(MLPConfig(image_shape=(4, 4, 1), hidden=16, z_dim=3, likelihood="gaussian"), rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(5, 4, 4, 1)), jnp.float32)
    return model, x


def test_vae_loss_is_minus_recon_plus_beta_kl_by_hand(small_vae):
    model, x = small_vae
    key = jax.random.key(7)
    loss, metrics = O.vae_loss(model, x, key, beta=2.5)
    # Recompute independently with scipy from the same encoder/decoder outputs and the same noise.
    mean, log_std = (np.asarray(a, np.float64) for a in model.encode(x))
    eps = np.asarray(jax.random.normal(key, mean.shape))
    z = mean + np.exp(log_std) * eps
    dec_mean, dec_log_std = (np.asarray(a, np.float64) for a in model.decode(jnp.float32(z)))
    recon = stats.norm.logpdf(np.asarray(x), dec_mean, np.exp(dec_log_std)).reshape(5, -1).sum(1)
    kl = 0.5 * (np.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(1)
    assert float(loss) == pytest.approx(np.mean(2.5 * kl - recon), rel=1e-4)
    assert float(metrics["elbo"]) == pytest.approx(np.mean(recon - kl), rel=1e-4)
    assert float(metrics["recon"]) == pytest.approx(recon.mean(), rel=1e-4)
    assert float(metrics["kl"]) == pytest.approx(kl.mean(), rel=1e-4)


def test_free_bits_clamps_each_dimensions_batch_mean_kl_from_below(small_vae):
    model, x = small_vae
    key = jax.random.key(7)
    mean, log_std = (np.asarray(a, np.float64) for a in model.encode(x))
    kl_per_dim = (0.5 * (np.exp(2 * log_std) + mean**2 - 1 - 2 * log_std)).mean(0)  # (z_dim,)
    plain, plain_metrics = O.vae_loss(model, x, key, beta=2.0)
    recon = float(plain_metrics["recon"])
    # a lambda between the smallest and the largest dimension's KL clamps some dimensions and not others
    lam = float(np.sort(kl_per_dim)[1])
    assert kl_per_dim.min() < lam <= kl_per_dim.max()
    loss, metrics = O.vae_loss(model, x, key, beta=2.0, free_bits=lam)
    assert float(loss) == pytest.approx(2.0 * np.maximum(lam, kl_per_dim).sum() - recon, rel=1e-5)
    assert float(loss) > float(plain)  # the clamped dimensions cost more than their KL
    assert float(metrics["elbo"]) == pytest.approx(float(plain_metrics["elbo"]), rel=1e-6)  # still the true ELBO
    # below every dimension's KL the clamp is inactive: the plain loss
    low, _ = O.vae_loss(model, x, key, beta=2.0, free_bits=0.5 * kl_per_dim.min())
    assert float(low) == pytest.approx(float(plain), rel=1e-5)
    # the gradient of a clamped dimension's KL is zero: only the reconstruction moves the encoder there
    z_dim = mean.shape[1]
    grads = jax.grad(lambda m: O.vae_loss(m, x, key, beta=1.0, free_bits=1e6)[0] + 0.0)(model)
    grads_recon = jax.grad(lambda m: -O.vae_loss(m, x, key)[1]["recon"])(model)
    np.testing.assert_allclose(np.asarray(grads.enc_out.kernel[...]), np.asarray(grads_recon.enc_out.kernel[...]),
                               rtol=1e-5, atol=1e-6)
    assert z_dim == 3


def test_elbo_is_recon_minus_kl(small_vae):
    model, x = small_vae
    t = O.elbo(model, x, jax.random.key(0))
    assert t.recon.shape == t.kl.shape == t.elbo.shape == (5,)
    np.testing.assert_allclose(t.elbo, t.recon - t.kl, rtol=1e-6)
    assert np.all(np.asarray(t.kl) > 0)


def test_monte_carlo_kl_is_unbiased_for_the_analytic_kl(small_vae):
    model, x = small_vae
    keys = jax.random.split(jax.random.key(1), 4000)
    mc = jax.jit(jax.vmap(lambda k: O.elbo(model, x, k, analytic_kl=False).kl))(keys)
    exact = O.elbo(model, x, keys[0]).kl
    se = mc.std(0) / np.sqrt(mc.shape[0])
    assert np.all(np.abs(np.asarray(mc.mean(0) - exact)) <= 4 * np.asarray(se) + 1e-4)


def test_iwae_with_one_sample_is_the_single_sample_elbo(small_vae):
    model, x = small_vae
    key = jax.random.key(11)
    np.testing.assert_allclose(O.iwae_bound(model, x, key, 1), O.elbo(model, x, key, analytic_kl=False).elbo,
                               rtol=1e-5)


def _linear_model():
    W = np.array([[1.5, 0.3], [-0.4, 1.0], [0.2, -0.8], [0.7, 0.1]])
    return LinearGaussianModel(W, np.array([0.1, -0.2, 0.3, 0.0]), np.log(0.5), seed=3)


def test_iwae_below_exact_log_marginal_and_tightens():
    model = _linear_model()
    x = model.sample_data(jax.random.key(0), 8)
    log_px = np.asarray(model.log_marginal(x))
    means = {}
    for K in (1, 10, 100):
        est = np.stack([np.asarray(O.iwae_bound(model, x, jax.random.key(r), K)) for r in range(60)])
        means[K] = est.mean(0)
        se = est.std(0) / np.sqrt(est.shape[0])
        # A lower bound in expectation: mean estimate <= log p(x) (within Monte-Carlo error).
        assert np.all(means[K] <= log_px + 4 * se + 1e-4), (K, means[K] - log_px)
    gap = {K: np.mean(log_px - means[K]) for K in means}
    assert gap[1] > gap[10] > gap[100] >= -1e-3


def test_iwae_is_exact_when_q_is_the_true_posterior():
    W = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # orthogonal columns: diagonal posterior
    model = LinearGaussianModel(W, np.zeros(3), -0.5)
    model.set_encoder_to_posterior()
    x = model.sample_data(jax.random.key(0), 6)
    for K in (1, 7):
        np.testing.assert_allclose(O.iwae_bound(model, x, jax.random.key(K), K), model.log_marginal(x),
                                   rtol=1e-5, atol=1e-4)


def test_iwae_chunking_does_not_change_the_distribution(small_vae):
    model, x = small_vae
    a = O.log_importance_weights(model, x, jax.random.key(0), 10, chunk_size=3)
    assert a.shape == (10, 5)
    assert np.all(np.isfinite(np.asarray(a)))


def test_gradient_estimators_match_the_analytic_gradient():
    # f(z) = z^2: E = mu^2 + sigma^2, d/dmu = 2 mu, d/dlog sigma = 2 sigma^2 (per dimension).
    mean, log_std = jnp.array([0.5, -1.0]), jnp.log(jnp.array([0.8, 0.3]))
    exact_mean, exact_log_std = 2 * np.asarray(mean), 2 * np.exp(2 * np.asarray(log_std))
    f = lambda z: jnp.sum(z**2)  # noqa: E731
    for estimator in (O.pathwise_grad, O.score_function_grad):
        gm, gs = estimator(f, jax.random.key(0), mean, log_std, 200_000, per_sample=True)
        for g, exact in ((gm, exact_mean), (gs, exact_log_std)):
            g = np.asarray(g)
            se = g.std(0) / np.sqrt(g.shape[0])
            assert np.all(np.abs(g.mean(0) - exact) <= 4 * se + 1e-4), (estimator.__name__, g.mean(0), exact)


def test_score_function_with_baseline_is_unbiased_and_lower_variance():
    mean, log_std = jnp.array([1.0]), jnp.array([0.0])
    f = lambda z: jnp.sum(z**2) + 10.0  # noqa: E731 - a large offset makes the plain estimator noisy
    gm0, _ = O.score_function_grad(f, jax.random.key(1), mean, log_std, 100_000, per_sample=True)
    gm1, _ = O.score_function_grad(f, jax.random.key(1), mean, log_std, 100_000, baseline=12.0, per_sample=True)
    assert float(gm1.mean()) == pytest.approx(2.0, abs=4 * float(gm1.std()) / np.sqrt(1e5))
    assert float(gm1.var()) < 0.5 * float(gm0.var())


def test_bad_beta_and_num_samples_are_refused(small_vae):
    model, x = small_vae
    with pytest.raises(ValueError, match="`beta`"):
        O.vae_loss(model, x, jax.random.key(0), beta=-1.0)
    with pytest.raises(ValueError, match="`num_samples`"):
        O.iwae_bound(model, x, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="`x` must have images of shape"):
        O.vae_loss(model, jnp.zeros((2, 5, 5, 1)), jax.random.key(0))
