"""The collapse study's data, exact likelihood and autoregressive decoder, against enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import logsumexp

from vae_book.companion import collapse as C


def _all_binary_images(side):
    d = side * side
    return np.array(list(itertools.product([0.0, 1.0], repeat=d)), np.float32).reshape(-1, side, side, 1)


def _randomised(model, seed=0):
    """Give the (zero-initialised) autoregressive weights random values, so every mask matters."""
    rng = np.random.default_rng(seed)
    for name in ("direct", "made_out", "made_bias"):
        p = getattr(model, name)
        p[...] = jnp.asarray(rng.normal(size=p[...].shape), jnp.float32)
    return model


def test_the_markov_likelihood_is_normalised_and_matches_sampled_frequencies():
    images = _all_binary_images(3)
    log_p = C.markov_log_prob(images, flip=0.2)
    assert logsumexp(log_p) == pytest.approx(0.0, abs=1e-9)  # sums to 1 over all 512 images
    samples = C.markov_images(50_000, side=3, flip=0.2, seed=3).reshape(50_000, -1)
    changes = samples[:, 1:] != samples[:, :-1]
    assert changes.mean() == pytest.approx(0.2, abs=0.005)
    assert samples[:, 0].mean() == pytest.approx(0.5, abs=0.01)
    # the all-zero image: 1/2 * 0.8^8
    assert np.exp(C.markov_log_prob(np.zeros((1, 3, 3, 1), np.float32), flip=0.2))[0] == pytest.approx(0.5 * 0.8**8)


def test_each_logit_sees_only_the_pixels_before_it():
    model = _randomised(C.AutoregressiveVAE(C.AutoregressiveConfig(image_shape=(3, 3, 1), hidden=8, z_dim=2,
                                                                     made_hidden=16), rngs=nnx.Rngs(0)))
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(1, 3, 3, 1)), jnp.float32)
    jac = jax.jacobian(lambda v: model.autoregressive_logits(v.reshape(1, 3, 3, 1)).reshape(-1))(x.reshape(-1))
    jac = np.asarray(jac)  # jac[d, j] = d logit_d / d x_j
    assert np.all(jac[np.triu_indices(9)] == 0)  # nothing on or above the diagonal: no own or later pixel
    assert np.count_nonzero(jac[np.tril_indices(9, -1)]) > 20  # and earlier pixels do matter


def test_the_autoregressive_likelihood_is_normalised_for_any_code():
    model = _randomised(C.AutoregressiveVAE(C.AutoregressiveConfig(image_shape=(3, 3, 1), hidden=8, z_dim=2,
                                                                     made_hidden=16), rngs=nnx.Rngs(0)))
    images = jnp.asarray(_all_binary_images(3))
    for z in ([0.0, 0.0], [1.5, -2.0]):
        decoded = model.decode(jnp.tile(jnp.asarray([z], jnp.float32), (images.shape[0], 1)))
        log_p = np.asarray(model.log_likelihood(images, decoded), np.float64)
        assert logsumexp(log_p) == pytest.approx(0.0, abs=1e-4)


def test_draws_follow_the_likelihood():
    model = _randomised(C.AutoregressiveVAE(C.AutoregressiveConfig(image_shape=(2, 2, 1), hidden=8, z_dim=2,
                                                                     made_hidden=8), rngs=nnx.Rngs(0)), seed=2)
    n = 40_000
    decoded = model.decode(jnp.tile(jnp.asarray([[0.3, -0.7]], jnp.float32), (n, 1)))
    draws = np.asarray(model.draw(jax.random.key(0), decoded)).reshape(n, -1)
    index = draws @ (2 ** np.arange(3, -1, -1))
    freq = np.bincount(index.astype(int), minlength=16) / n
    images = jnp.asarray(_all_binary_images(2))
    p = np.exp(np.asarray(model.log_likelihood(images, decoded[:16]), np.float64))
    assert 0.5 * np.abs(freq - p).sum() < 0.015  # total variation
    with pytest.raises(NotImplementedError, match="no per-pixel mean"):
        model.sample(jax.random.key(0), 2)
    assert model.sample_images(jax.random.key(1), 3).shape == (3, 2, 2, 1)


def test_pretraining_fits_the_decoder_alone_and_leaves_the_encoder():
    config = C.AutoregressiveConfig(image_shape=(4, 4, 1), hidden=8, z_dim=2, made_hidden=16)
    model = C.AutoregressiveVAE(config, rngs=nnx.Rngs(0))
    images = C.markov_images(500, side=4, seed=0)
    encoder = np.asarray(model.enc_hidden.kernel[...]).copy()
    before = C.decoder_alone_log_prob(model, images).mean()
    C.pretrain_decoder(model, images, steps=200, batch_size=50, learning_rate=1e-2)
    after = C.decoder_alone_log_prob(model, images).mean()
    exact = C.markov_log_prob(images).mean()
    np.testing.assert_array_equal(np.asarray(model.enc_hidden.kernel[...]), encoder)
    assert before < exact - 3  # 16 pixels at log(1/2) each is far from the chain
    assert after > exact - 1.0  # the decoder alone comes within a nat of the exact likelihood


def test_the_study_measures_five_runs():
    study = C.collapse_study(steps=20, side=3, num_train=200, num_test=50, z_dim=2, hidden=8, made_hidden=8,
                             batch_size=50, free_bits=0.25)
    assert list(study.table.index) == ["factorised decoder, β = 1", "autoregressive decoder, β = 1",
                                       "pretrained autoregressive, β = 1", "pretrained, KL warm-up",
                                       "pretrained, free bits 0.25"]
    assert np.all(np.isfinite(study.table.to_numpy(float)))
    assert np.all(study.table["rate"] >= 0)
    # the ELBO is a lower bound on the exact log p(x) for every run (up to the 5-sample noise of its estimate)
    assert np.all(study.table["gap to log p(x)"] > -0.5)
    assert study.histories["pretrained, KL warm-up"].train["beta"][0] < 1.0
