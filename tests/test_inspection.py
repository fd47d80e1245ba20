"""vae_book.companion.inspection: stage-by-stage runs equal the model, hand-counted parameters, position embedding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vae_book.companion import inspection
from vae_book.models.transformer import (
    TransformerConfig,
    TransformerVAE,
    parameter_counts,
    sincos_2d_position_embedding,
)

SMALL = dict(image_shape=(16, 16, 3), patch=4, hidden=32, depth=1, heads=2, z_dim=6)


@pytest.fixture(scope="module")
def model():
    return TransformerVAE(TransformerConfig(**SMALL), rngs=nnx.Rngs(0))


VARIANTS = {"gaussian": {}, "fixed": dict(decoder_log_std=-1.0), "bernoulli": dict(likelihood="bernoulli")}


def images(n=3, seed=0):
    return jax.random.uniform(jax.random.key(seed), (n, 16, 16, 3))


def test_encoder_stages_end_in_model_encode(model):
    x = images()
    stages = inspection.encoder_stages(model, x)
    names = [s.name for s in stages]
    assert names[0] == "images" and names[-2:] == ["mean", "log_std"]
    by = {s.name: s.value for s in stages}
    mean, log_std = model.encode(x)
    np.testing.assert_array_equal(by["mean"], mean)
    np.testing.assert_array_equal(by["log_std"], log_std)
    assert by["patches"].shape == (3, 16, 48)
    assert by["patch tokens"].shape == (3, 16, 32)
    assert by["with embedding token"].shape == (3, 17, 32)
    assert by["after blocks"].shape == (3, 1, 32)  # the last block computes the embedding token only
    assert by["summary"].shape == (3, 32)
    assert all(s.note for s in stages)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stages_are_the_models_own_stages(variant, model):
    """inspection adds notes (and the input views) to the model's forward pass; it computes nothing else."""
    if variant != "gaussian":
        model = TransformerVAE(TransformerConfig(**SMALL, **VARIANTS[variant]), rngs=nnx.Rngs(0))
    x, z = images(), jax.random.normal(jax.random.key(1), (2, 6))
    for ours, theirs, extra in ((inspection.encoder_stages(model, x), model.encoder_stages(x), ["images", "patches"]),
                                (inspection.decoder_stages(model, z), model.decoder_stages(z), ["code"])):
        assert [s.name for s in ours] == extra + list(theirs)
        for s in ours[len(extra):]:
            np.testing.assert_array_equal(s.value, theirs[s.name], err_msg=s.name)
            assert s.note, s.name


def test_patch_embedding_is_a_linear_map_of_the_patches(model):
    x = images()
    by = {s.name: s.value for s in inspection.encoder_stages(model, x)}
    kernel = model.patch_embedding.kernel[...].reshape(-1, 32)  # (p*p*C, hidden), (row, col, channel) order
    manual = by["patches"] @ kernel + model.patch_embedding.bias[...]
    np.testing.assert_allclose(manual, by["patch tokens"], atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_decoder_stages_end_in_model_decode(variant, model):
    if variant != "gaussian":
        model = TransformerVAE(TransformerConfig(**SMALL, **VARIANTS[variant]), rngs=nnx.Rngs(0))
    z = jax.random.normal(jax.random.key(1), (2, 6))
    stages = inspection.decoder_stages(model, z)
    by = {s.name: s.value for s in stages}
    decoded = model.decode(z)
    assert by["tiled + position"].shape == (2, 16, 32)
    c = model.config
    if c.likelihood == "bernoulli":
        assert stages[-1].name == "logits"
        np.testing.assert_array_equal(by["logits"], decoded)
    elif c.decoder_log_std is not None:
        assert [s.name for s in stages[-2:]] == ["mean", "log_std"] and "raw log_std" not in by
        np.testing.assert_array_equal(by["mean"], decoded[0])
        np.testing.assert_array_equal(by["log_std"], np.full((2, 16, 16, 3), -1.0, np.float32))
    else:
        assert [s.name for s in stages[-2:]] == ["mean", "log_std"]
        np.testing.assert_array_equal(by["mean"], decoded[0])
        np.testing.assert_array_equal(by["log_std"], decoded[1])
        assert float(by["log_std"].min()) >= c.min_log_std
        assert by["raw log_std"].shape == (2, 16, 16, 3)


def test_position_embedding_override(model):
    x = images()
    base = inspection.encoder_stages(model, x)
    same = inspection.encoder_stages(model, x, position_embedding=model.position_embedding)
    np.testing.assert_allclose(base[-2].value, same[-2].value, atol=1e-6)
    off = {s.name: s.value for s in inspection.encoder_stages(model, x, position_embedding=0.0)}
    np.testing.assert_allclose(off["+ position"], off["patch tokens"], atol=1e-6)
    # without a position embedding the encoder cannot tell where a patch was: shuffling the patches
    # (as whole squares) leaves the code unchanged
    perm = np.random.default_rng(0).permutation(16)
    xp = np.asarray(x).reshape(3, 4, 4, 4, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(3, 16, 4, 4, 3)[:, perm]
    xp = xp.reshape(3, 4, 4, 4, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(3, 16, 16, 3)
    shuffled = {s.name: s.value for s in inspection.encoder_stages(model, jnp.asarray(xp), position_embedding=0.0)}
    np.testing.assert_allclose(shuffled["mean"], off["mean"], atol=1e-5)
    with pytest.raises(ValueError, match="position_embedding"):
        inspection.encoder_stages(model, x, position_embedding=np.zeros((5, 32)))


def test_stages_reject_other_models_and_bad_input(model):
    with pytest.raises(ValueError, match="model"):
        inspection.encoder_stages(object(), np.zeros((1, 28, 28, 1), np.float32))
    tvae = model
    with pytest.raises(ValueError, match="x"):
        inspection.encoder_stages(tvae, np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="z"):
        inspection.decoder_stages(tvae, np.zeros((1, 5), np.float32))


def test_format_stages_lists_every_stage(model):
    stages = inspection.encoder_stages(model, images())
    text = inspection.format_stages(stages)
    assert len(text.splitlines()) == len(stages)
    assert "(3, 17, 32)" in text
    with pytest.raises(ValueError, match="stages"):
        inspection.format_stages([1, 2])


def test_parameter_formula_matches_parameter_counts(model):
    assert inspection.parameter_formula(model.config) == parameter_counts(model)
    assert parameter_counts(inspection.abstract_model(model.config)) == parameter_counts(model)


@pytest.mark.parametrize("kw", [dict(SMALL, likelihood="bernoulli"), dict(SMALL, mlp_ratio=2, depth=3),
                                dict(SMALL, decoder_log_std=0.0),
                                dict(image_shape=(8, 12, 1), patch=4, hidden=16, depth=1, heads=4, z_dim=3)])
def test_parameter_formula_matches_parameter_counts_of_other_configs(kw):
    config = TransformerConfig(**kw)
    assert inspection.parameter_formula(config) == parameter_counts(inspection.abstract_model(config))


def test_abstract_full_size_model_counts_without_allocating():
    full = TransformerConfig()
    counts = parameter_counts(inspection.abstract_model(full))
    assert counts == inspection.parameter_formula(full)
    assert counts["encoder_blocks"] == 4 * (12 * 256**2 + 13 * 256)
    leaf = jax.tree.leaves(nnx.state(inspection.abstract_model(full), nnx.Param))[0]
    assert isinstance(leaf, jax.ShapeDtypeStruct)


def test_position_similarity_depends_only_on_the_offset():
    grid, dim = (5, 6), 32
    pe = sincos_2d_position_embedding(*grid, dim)
    sim = inspection.position_similarity(pe)
    assert sim.shape == (30, 30)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)
    np.testing.assert_allclose(sim, sim.T, atol=1e-12)
    # every vector has norm sqrt(dim / 2) (sin^2 + cos^2 = 1 per frequency), and the dot product is a sum of cosines
    # of the offsets: identical for (0,0)-(1,2) and (3,3)-(4,5)
    k = lambda i, j: i * grid[1] + j  # noqa: E731
    np.testing.assert_allclose(sim[k(0, 0), k(1, 2)], sim[k(3, 3), k(4, 5)], atol=1e-6)
    with pytest.raises(ValueError, match="embedding"):
        inspection.position_similarity(np.zeros((3, 4)))


def test_plot_position_channels():
    import matplotlib

    matplotlib.use("Agg")
    pe = sincos_2d_position_embedding(4, 4, 16)
    fig = inspection.plot_position_channels(pe, (4, 4), [0, 3, 8])
    assert len(fig.axes) == 4  # three panels and a colour bar
    with pytest.raises(ValueError, match="channels"):
        inspection.plot_position_channels(pe, (4, 4), [16])
    with pytest.raises(ValueError, match="embedding"):
        inspection.plot_position_channels(pe, (3, 4), [0])


def test_gaussian_decoder_residuals(model):
    tvae = model
    x = np.asarray(images(4))
    var, sq = inspection.gaussian_decoder_residuals(tvae, x, jax.random.key(0), batch_size=2)
    assert var.shape == sq.shape == x.shape
    # same key, same batch split -> the same as doing it by hand for the first batch
    mean, log_std = tvae.encode(x[:2])
    z = mean + jnp.exp(log_std) * jax.random.normal(jax.random.fold_in(jax.random.key(0), 0), mean.shape)
    mu, ls = tvae.decode(z)
    np.testing.assert_allclose(var[:2], np.exp(2 * np.asarray(ls)), rtol=1e-4)
    np.testing.assert_allclose(sq[:2], (x[:2] - np.asarray(mu)) ** 2, rtol=1e-4, atol=1e-7)
    class Bernoulli:
        likelihood = "bernoulli"

    with pytest.raises(ValueError, match="Gaussian"):
        inspection.gaussian_decoder_residuals(Bernoulli(), x, jax.random.key(0))
