"""Tests of the three VAE models (MLP, convolutional, Transformer) and the Transformer helpers.

Every model is tiny here (8x8 images, a few channels) so the whole file runs in well under a minute
on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from vae_book import distributions as D  # noqa: E402
from vae_book.models.base import VAEConfig, config_dict, likelihood_stages  # noqa: E402
from vae_book.models.conv import ConvConfig, ConvVAE  # noqa: E402
from vae_book.models.mlp import MLPConfig, MLPVAE  # noqa: E402
from vae_book.models.transformer import (  # noqa: E402
    BlockStack,
    TransformerConfig,
    TransformerVAE,
    parameter_counts,
    patchify,
    sincos_2d_position_embedding,
    unpatchify,
)

IMAGE = (8, 8, 2)
Z = 3
B = 4  # one batch size everywhere: eager JAX compiles each op once per shape
KINDS = ("mlp", "conv", "transformer")
VARIANTS = {
    "bernoulli": dict(likelihood="bernoulli"),
    "gaussian": dict(likelihood="gaussian"),
    "gaussian_fixed": dict(likelihood="gaussian", decoder_log_std=-1.0),
}


def make_config(kind: str, **overrides):
    base = dict(image_shape=IMAGE, z_dim=Z)
    if kind == "mlp":
        return MLPConfig(**{**base, "hidden": 16, **overrides})
    if kind == "conv":
        return ConvConfig(**{**base, "channels": (4, 8), **overrides})
    return TransformerConfig(
        **{**base, "patch": 4, "hidden": 16, "depth": 3, "heads": 2, "mlp_ratio": 2, **overrides}
    )


MODEL_CLASSES = {"mlp": MLPVAE, "conv": ConvVAE, "transformer": TransformerVAE}
_CACHE: dict = {}


def get_model(kind: str, variant: str):
    """Models are cached: construction is the slow part and tests never mutate them."""
    if (kind, variant) not in _CACHE:
        config = make_config(kind, **VARIANTS[variant])
        _CACHE[kind, variant] = MODEL_CLASSES[kind](config, rngs=nnx.Rngs(0))
    return _CACHE[kind, variant]


def images(seed=0, n=B, shape=IMAGE):
    return jax.random.uniform(jax.random.key(seed), (n, *shape))


ALL = [(k, v) for k in KINDS for v in VARIANTS]
ids = [f"{k}-{v}" for k, v in ALL]


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("kind,variant", ALL, ids=ids)
def test_output_shapes(kind, variant):
    model = get_model(kind, variant)
    x = images()
    mean, log_std = model.encode(x)
    assert mean.shape == log_std.shape == (B, Z)
    assert mean.dtype == log_std.dtype == jnp.float32

    decoded = model.decode(mean)
    if variant == "bernoulli":
        assert decoded.shape == (B, *IMAGE)
    else:
        mu, ls = decoded
        assert mu.shape == ls.shape == (B, *IMAGE)
        assert mu.dtype == ls.dtype == jnp.float32
        if variant == "gaussian_fixed":
            np.testing.assert_array_equal(ls, -1.0)
        else:  # learned sigma is bounded below by min_log_std
            assert float(jnp.min(ls)) >= model.config.min_log_std
            assert float(jnp.std(ls)) > 0  # per-pixel, not a constant

    out = model(x, jax.random.key(1))
    assert out.mean.shape == out.log_std.shape == out.z.shape == (B, Z)
    assert jax.tree.map(jnp.shape, out.decoded) == jax.tree.map(jnp.shape, decoded)
    assert not np.allclose(out.z, out.mean)  # a sample, not the mean

    samples = model.sample(jax.random.key(2), B)
    assert samples.shape == (B, *IMAGE)
    assert not np.allclose(samples[0], samples[1])
    recon = model.reconstruct(x)
    assert recon.shape == (B, *IMAGE)
    for arr in (samples, recon):
        assert float(jnp.min(arr)) >= 0.0 and float(jnp.max(arr)) <= 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_model_different_seed_different(kind):
    a = get_model(kind, "gaussian")
    b = MODEL_CLASSES[kind](a.config, rngs=nnx.Rngs(0))
    c = MODEL_CLASSES[kind](a.config, rngs=nnx.Rngs(1))
    x = images()
    np.testing.assert_array_equal(a.encode(x)[0], b.encode(x)[0])
    assert not np.allclose(a.encode(x)[0], c.encode(x)[0])


# --------------------------------------------------------------------------- named stages


@pytest.mark.parametrize("kind,variant", ALL, ids=ids)
def test_stages_end_in_what_encode_and_decode_return(kind, variant):
    """One forward pass: encode / decode are the last entries of the model's own named stages."""
    model = get_model(kind, variant)
    x = images()
    enc = model.encoder_stages(x)
    assert list(enc)[-2:] == ["mean", "log_std"] and len(enc) >= 3
    for got, want in zip(model.encode(x), (enc["mean"], enc["log_std"])):
        np.testing.assert_array_equal(got, want)
    z = enc["mean"]
    dec = model.decoder_stages(z)
    decoded = model.decode(z)
    assert all(v.shape[0] == B for v in (*enc.values(), *dec.values()))
    if variant == "bernoulli":
        assert list(dec)[-1] == "logits"
        np.testing.assert_array_equal(decoded, dec["logits"])
    else:
        assert list(dec)[-2:] == ["mean", "log_std"]
        for got, want in zip(decoded, (dec["mean"], dec["log_std"])):
            np.testing.assert_array_equal(got, want)
    assert dec["pixels"].shape == (B, *IMAGE[:2], model.config.out_channels)


def test_likelihood_head_is_shared_and_its_channel_rule():
    out = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 3, 4)), jnp.float32)
    learned = make_config("mlp", image_shape=(3, 3, 2), likelihood="gaussian")
    assert learned.out_channels == 4
    assert make_config("mlp", image_shape=(3, 3, 2), likelihood="bernoulli").out_channels == 2
    assert make_config("conv", likelihood="gaussian", decoder_log_std=0.0).out_channels == IMAGE[2]
    s = likelihood_stages(out, learned)
    assert list(s) == ["raw log_std", "mean", "log_std"]
    np.testing.assert_array_equal(s["mean"], out[..., :2])
    m = learned.min_log_std
    assert m == pytest.approx(np.log(0.1))  # the default floor: sigma >= 0.1
    np.testing.assert_allclose(s["log_std"], m + np.logaddexp(0.0, np.asarray(out[..., 2:]) - m), rtol=1e-6)
    fixed = likelihood_stages(out[..., :2], make_config("mlp", image_shape=(3, 3, 2), likelihood="gaussian",
                                                        decoder_log_std=-1.0))
    np.testing.assert_array_equal(fixed["log_std"], np.full((2, 3, 3, 2), -1.0, np.float32))


# --------------------------------------------------------------------------- likelihood


@pytest.mark.parametrize("kind,variant", ALL, ids=ids)
def test_log_likelihood_matches_scipy(kind, variant):
    model = get_model(kind, variant)
    z = jax.random.normal(jax.random.key(3), (B, Z))
    decoded = model.decode(z)
    if variant == "bernoulli":
        x = jax.random.bernoulli(jax.random.key(4), 0.5, (B, *IMAGE)).astype(jnp.float32)
        p = expit(np.asarray(decoded, np.float64))
        expected = stats.bernoulli.logpmf(np.asarray(x), p)
    else:
        x = images(seed=4)
        mu, ls = (np.asarray(a, np.float64) for a in decoded)
        expected = stats.norm.logpdf(np.asarray(x, np.float64), loc=mu, scale=np.exp(ls))
    expected = expected.reshape(B, -1).sum(axis=1)
    got = model.log_likelihood(x, decoded)
    assert got.shape == (B,)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("kind,variant", ALL, ids=ids)
def test_draws_from_the_likelihood_have_its_moments(kind, variant):
    """``draw``: 4000 draws per pixel of one decoded code average to the decoder mean and (Gaussian)
    spread by the decoder sigma, to 5 standard errors; Bernoulli draws are 0 or 1."""
    model = get_model(kind, variant)
    decoded = model.decode(jax.random.normal(jax.random.key(3), (1, Z)))
    n = 4000
    rep = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape[1:])), decoded)
    x = np.asarray(model.draw(jax.random.key(7), rep), np.float64)
    assert x.shape == (n, *IMAGE)
    mean = np.asarray(model.mean_image(decoded), np.float64)[0]
    if variant == "bernoulli":
        assert set(np.unique(x)) <= {0.0, 1.0}
        sd = np.sqrt(mean * (1 - mean))
    else:
        sd = np.exp(np.asarray(decoded[1], np.float64))[0]
        mean = np.asarray(decoded[0], np.float64)[0]  # unclipped: draws are not clipped
        np.testing.assert_allclose(x.std(axis=0), sd, rtol=5 * np.sqrt(0.5 / n) * 1.2)
    assert np.all(np.abs(x.mean(axis=0) - mean) <= 5 * sd / np.sqrt(n) + 1e-6)
    with pytest.raises(ValueError, match="key"):
        model.draw(0, decoded)


# --------------------------------------------------------------------------- gradients + jit


def negative_elbo(model, x, key):
    """-log p(x|z) + KL(q(z|x) || N(0, I)) by hand, averaged over the batch."""
    out = model(x, key)
    kl = D.kl_to_standard_normal(out.mean, out.log_std).sum(axis=-1)
    return jnp.mean(kl - model.log_likelihood(x, out.decoded))


@pytest.mark.parametrize("kind,variant", ALL, ids=ids)
def test_gradients_finite_and_nonzero_under_jit_of_split_state(kind, variant):
    model = get_model(kind, variant)
    graphdef, state = nnx.split(model)

    @jax.jit
    def loss_and_grad(state, x, key):
        def f(state):
            return negative_elbo(nnx.merge(graphdef, state), x, key)

        return jax.value_and_grad(f)(state)

    x, key = images(), jax.random.key(5)
    loss, grads = loss_and_grad(state, x, key)
    assert np.isfinite(float(loss))
    np.testing.assert_allclose(float(loss), float(negative_elbo(model, x, key)), rtol=1e-4)

    flat = nnx.to_flat_state(nnx.state(nnx.merge(graphdef, grads), nnx.Param))
    assert len(flat) == len(jax.tree.leaves(nnx.state(model, nnx.Param))) > 0
    for path, g in flat:
        g = np.asarray(g[...])
        name = "/".join(map(str, path))
        assert np.all(np.isfinite(g)), name
        assert np.any(g != 0), f"zero gradient for {name}"
        if "blocks" in name:  # stacked parameters: every layer's slice must get a gradient
            assert all(np.any(g[i] != 0) for i in range(g.shape[0])), name


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "factory,kwargs,field",
    [
        (TransformerConfig, dict(image_shape=(8, 8, 1), patch=3), "patch"),
        (TransformerConfig, dict(image_shape=(8, 12, 1), patch=8), "patch"),
        (TransformerConfig, dict(hidden=36, heads=8), "heads"),
        (TransformerConfig, dict(hidden=18, heads=2), "divisible by 4"),
        (TransformerConfig, dict(hidden=0), "hidden"),
        (TransformerConfig, dict(depth=0), "depth"),
        (TransformerConfig, dict(heads=-1), "heads"),
        (TransformerConfig, dict(z_dim=0), "z_dim"),
        (TransformerConfig, dict(likelihood="poisson"), "likelihood"),
        (TransformerConfig, dict(dtype="float16"), "dtype"),
        (TransformerConfig, dict(image_shape=(8, 8)), "image_shape"),
        (ConvConfig, dict(image_shape=(12, 12, 1), channels=(4, 8, 16)), "image_shape"),
        (ConvConfig, dict(image_shape=(28, 28, 1)), "2\\*\\*len\\(channels\\)"),
        (ConvConfig, dict(channels=()), "channels"),
        (ConvConfig, dict(channels=(4, 0)), "channels"),
        (ConvConfig, dict(likelihood="poisson"), "likelihood"),
        (ConvConfig, dict(kernel_size=5), "kernel_size"),
        (ConvConfig, dict(activation="tanh"), "activation"),
        (ConvConfig, dict(decoder_log_std=float("nan")), "decoder_log_std"),
        (MLPConfig, dict(likelihood="poisson"), "likelihood"),
    ],
)
def test_config_refusals_name_the_field(factory, kwargs, field):
    with pytest.raises(ValueError, match=field):
        factory(**kwargs)


SHARED_REFUSALS = [
    (dict(image_shape=(8, 8)), "`image_shape` must be \\(H, W, C\\)"),
    (dict(image_shape=(0, 8, 1)), "`image_shape` must be .* positive"),
    (dict(image_shape="abc"), "`image_shape`"),
    (dict(z_dim=0), "`z_dim` must be a positive integer, got 0"),
    (dict(z_dim=2.5), "`z_dim` must be a positive integer, got 2.5"),
    (dict(z_dim=True), "`z_dim` must be a positive integer, got True"),
    (dict(likelihood="poisson"), "`likelihood` must be one of .*'poisson'"),
    (dict(decoder_log_std=float("nan")), "`decoder_log_std` must be finite, got nan"),
    (dict(decoder_log_std="-1"), "`decoder_log_std` must be a real number or None, got str '-1'"),
    (dict(min_log_std=float("-inf")), "`min_log_std` must be finite, got -inf"),
    (dict(min_log_std=None), "`min_log_std` must be a real number, got NoneType None"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kwargs,message", SHARED_REFUSALS, ids=[str(i) for i in range(len(SHARED_REFUSALS))])
def test_every_config_checks_the_shared_fields(kind, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_config(kind, **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_configs_share_the_base_and_keep_their_fields(kind):
    config = make_config(kind, image_shape=[8, 8, 2], z_dim=np.int64(3))
    assert isinstance(config, VAEConfig)
    assert config.image_shape == IMAGE and type(config.z_dim) is int
    d = config_dict(config)
    assert d["kind"] == type(config).__name__ and d["image_shape"] == IMAGE and d["min_log_std"] == np.log(0.1)
    assert type(config)(**{k: v for k, v in d.items() if k != "kind"}) == config
    own, bad = {"mlp": ("hidden", 0), "conv": ("channels", (4, 0.5)), "transformer": ("mlp_ratio", 0)}[kind]
    with pytest.raises(ValueError, match=f"`{own}` must be a positive integer, got {bad if kind != 'conv' else 0.5}"):
        make_config(kind, **{own: bad})


def test_config_defaults_and_field_names_unchanged():
    fields = lambda cls: {f.name: f.default for f in dataclasses.fields(cls)}  # noqa: E731
    shared = dict(decoder_log_std=None, min_log_std=np.log(0.1))  # sigma >= 0.1, what the book teaches
    assert fields(MLPConfig) == dict(image_shape=(28, 28, 1), hidden=500, z_dim=20, likelihood="bernoulli", **shared)
    assert fields(ConvConfig) == dict(image_shape=(64, 64, 3), channels=(32, 64, 128, 256), z_dim=32,
                                      likelihood="gaussian", kernel_size=4, activation="relu", dtype="float32",
                                      **shared)
    assert fields(TransformerConfig) == dict(image_shape=(64, 64, 3), patch=8, hidden=256, depth=4, heads=4,
                                             mlp_ratio=4, z_dim=64, likelihood="gaussian", dtype="float32", **shared)


def test_defaults_are_the_full_size_models():
    c = TransformerConfig()
    assert (c.image_shape, c.patch, c.hidden, c.depth, c.heads, c.mlp_ratio, c.z_dim) == (
        (64, 64, 3), 8, 256, 4, 4, 4, 64,
    )
    assert c.likelihood == "gaussian" and c.dtype == "float32" and c.decoder_log_std is None
    assert ConvConfig().bottleneck_shape == (4, 4, 256)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_raise_value_error(kind):
    model = get_model(kind, "gaussian")
    with pytest.raises(ValueError, match="`x`"):
        model.encode(jnp.zeros((B, 8, 8, 3)))  # wrong channel count
    with pytest.raises(ValueError, match="`x`"):
        model.encode(jnp.zeros((8, 8, 2)))  # missing batch axis
    with pytest.raises(ValueError, match="255"):
        model.encode(images() * 255.0)  # out of [0, 1]
    with pytest.raises(ValueError, match="`x`"):
        model(jnp.full((B, *IMAGE), -0.5), jax.random.key(0))
    with pytest.raises(ValueError, match="`z`"):
        model.decode(jnp.zeros((B, Z + 1)))
    with pytest.raises(ValueError, match="`n`"):
        model.sample(jax.random.key(0), 0)


# --------------------------------------------------------------------------- position embedding


def test_sincos_position_embedding():
    gh, gw, dim = 3, 5, 16
    emb = sincos_2d_position_embedding(gh, gw, dim)
    assert emb.shape == (gh * gw, dim) and emb.dtype == np.float32
    assert np.all(np.abs(emb) <= 1.0)
    grid = emb.reshape(gh, gw, dim)
    rows, cols = grid[..., : dim // 2], grid[..., dim // 2 :]
    np.testing.assert_array_equal(rows, np.broadcast_to(rows[:, :1], rows.shape))  # row half: no column dependence
    np.testing.assert_array_equal(cols, np.broadcast_to(cols[:1], cols.shape))  # column half: no row dependence
    assert np.ptp(rows, axis=0).max() > 0.1 and np.ptp(cols, axis=1).max() > 0.1
    dists = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    assert np.all(dists[~np.eye(gh * gw, dtype=bool)] > 1e-3)  # every position distinct
    # The formula, entry by entry: token k at (i, j); quarter m of each half uses omega_m.
    q = dim // 4
    for k in range(gh * gw):
        i, j = divmod(k, gw)
        for m in range(q):
            w = 10000.0 ** (-m / q)
            expected = [math.sin(i * w), math.cos(i * w), math.sin(j * w), math.cos(j * w)]
            got = [emb[k, m], emb[k, q + m], emb[k, 2 * q + m], emb[k, 3 * q + m]]
            np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="`dim`"):
        sincos_2d_position_embedding(2, 2, 6)


def test_position_embedding_is_a_constant_and_token_a_param():
    model = get_model("transformer", "gaussian")
    c = model.config
    assert model.embedding_token[...].shape == (1, 1, c.hidden)
    assert isinstance(model.embedding_token, nnx.Param)
    # the whole state is parameters: nothing else (no position table, no RNG state) is carried
    assert len(jax.tree.leaves(nnx.state(model))) == len(jax.tree.leaves(nnx.state(model, nnx.Param)))
    np.testing.assert_array_equal(
        model.position_embedding, sincos_2d_position_embedding(*c.grid, c.hidden)
    )


# --------------------------------------------------------------------------- patches


def test_patchify_unpatchify_round_trip_and_crops():
    x = jax.random.normal(jax.random.key(0), (2, 8, 12, 3))
    p = 4
    tokens = patchify(x, p)
    assert tokens.shape == (2, 6, p * p * 3)
    gw = 12 // p
    for k in range(6):
        i, j = divmod(k, gw)
        crop = x[:, i * p : (i + 1) * p, j * p : (j + 1) * p, :]
        np.testing.assert_array_equal(tokens[:, k], crop.reshape(2, -1))
    np.testing.assert_array_equal(unpatchify(tokens, p, 8, 12, 3), x)
    t = jax.random.normal(jax.random.key(1), (2, 6, p * p * 3))
    np.testing.assert_array_equal(patchify(unpatchify(t, p, 8, 12, 3), p), t)
    with pytest.raises(ValueError, match="`patch`"):
        patchify(x, 5)
    with pytest.raises(ValueError, match="`tokens`"):
        unpatchify(t, p, 8, 8, 3)


# --------------------------------------------------------------------------- scanned stack


def test_scanned_block_stack_equals_python_loop():
    stack = get_model("transformer", "gaussian").encoder_blocks
    depth = stack.depth
    assert isinstance(stack, BlockStack) and depth == 3
    graphdef, state = nnx.split(stack.layers)
    assert all(leaf.shape[0] == depth for leaf in jax.tree.leaves(state))  # stacked parameters
    kernels = np.asarray(stack.layers.qkv.kernel[...])
    assert not np.allclose(kernels[0], kernels[1])  # each layer got its own initialisation

    x = jax.random.normal(jax.random.key(1), (B, 5, 16))
    scanned = stack(x)
    looped = x
    for i in range(depth):
        block = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
        looped = block(looped)
    np.testing.assert_allclose(scanned, looped, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stack.layer(1)(x), nnx.merge(graphdef, jax.tree.map(lambda a: a[1], state))(x))
    assert not np.allclose(scanned, x)
    assert not np.allclose(scanned, stack.layer(0)(x), atol=1e-3)  # all layers count, not just one

    # the stack is one scan in the traced program, not `depth` copies of the block
    jaxpr = str(jax.make_jaxpr(stack)(x))
    assert jaxpr.count("scan[") == 1
    assert jaxpr.count("dot_general") == 6  # qkv, proj, fc1, fc2 + the two attention products, once


def test_transformer_uses_the_position_embedding():
    """Without positions the encoder would not see where a patch is, and the decoder would paint
    every patch the same (its input is one token copied to every position)."""
    model = get_model("transformer", "gaussian")
    p = model.config.patch
    x = images()
    tokens = patchify(x, p)
    shuffled = unpatchify(tokens[:, ::-1], p, *IMAGE)  # same patches, other places
    assert not np.allclose(model.encode(x)[0], model.encode(shuffled)[0], atol=1e-4)
    patches = patchify(model.decode(jnp.zeros((B, Z)))[0], p)  # (B, N, p*p*C)
    assert not np.allclose(patches[:, 0], patches[:, 1], atol=1e-4)


def test_jit_of_a_closure_over_the_model():
    """`jax.jit(model.encode)` closes over the parameters; the scanned stack must allow that."""
    model = get_model("transformer", "gaussian")
    x = images()
    np.testing.assert_allclose(jax.jit(model.encode)(x)[0], model.encode(x)[0], rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_close_to_float32():
    m32 = get_model("transformer", "gaussian")
    m16 = TransformerVAE(make_config("transformer", dtype="bfloat16"), rngs=nnx.Rngs(0))
    for a, b in zip(jax.tree.leaves(nnx.state(m32)), jax.tree.leaves(nnx.state(m16))):
        assert b.dtype == jnp.float32  # parameters stay float32
        np.testing.assert_array_equal(a, b)
    x = images()
    (mu32, ls32), (mu16, ls16) = m32.encode(x), m16.encode(x)
    assert mu16.dtype == ls16.dtype == jnp.float32
    np.testing.assert_allclose(mu16, mu32, atol=0.05, rtol=0.05)
    d32, d16 = m32.decode(mu32), m16.decode(mu32)
    for a, b in zip(d32, d16):
        assert b.dtype == jnp.float32
        np.testing.assert_allclose(b, a, atol=0.05, rtol=0.05)
    assert not np.array_equal(d16[0], d32[0])  # the bfloat16 path really is a different computation
    assert "bf16" in str(jax.make_jaxpr(m16.decode)(mu32)) and "bf16" not in str(jax.make_jaxpr(m32.decode)(mu32))


# --------------------------------------------------------------------------- parameter counts


def test_parameter_counts_sum_to_num_params():
    model = get_model("transformer", "gaussian")
    c = model.config
    counts = parameter_counts(model)
    assert set(counts) == {
        "patch_embedding", "embedding_token", "encoder_blocks", "encoder_head",
        "decoder_input", "decoder_blocks", "decoder_head",
    }
    assert sum(counts.values()) == model.num_params()
    h, p, ch = c.hidden, c.patch, c.image_shape[2]
    per_block = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * c.mlp_ratio * h + c.mlp_ratio * h) + (c.mlp_ratio * h * h + h)
    assert counts["patch_embedding"] == p * p * ch * h + h
    assert counts["embedding_token"] == h
    assert counts["encoder_blocks"] == counts["decoder_blocks"] == c.depth * per_block
    assert counts["encoder_head"] == 2 * h + h * 2 * Z + 2 * Z
    assert counts["decoder_input"] == Z * h + h
    assert counts["decoder_head"] == 2 * h + h * p * p * 2 * ch + p * p * 2 * ch
    fixed = get_model("transformer", "gaussian_fixed")
    assert parameter_counts(fixed)["decoder_head"] == 2 * h + h * p * p * ch + p * p * ch
    with pytest.raises(ValueError, match="`model`"):
        parameter_counts(get_model("mlp", "gaussian"))


def test_depth_to_space_puts_channel_group_ij_at_block_offset_ij():
    from vae_book.models.conv import depth_to_space

    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 3, 4, 4 * 5)).astype(np.float32)
    out = np.asarray(depth_to_space(jnp.asarray(h), 2))
    assert out.shape == (2, 6, 8, 5)
    expected = np.empty_like(out)
    for i in range(3):
        for j in range(4):
            for di in range(2):
                for dj in range(2):
                    g = di * 2 + dj
                    expected[:, 2 * i + di, 2 * j + dj, :] = h[:, i, j, g * 5:(g + 1) * 5]
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="multiple of block"):
        depth_to_space(jnp.zeros((1, 2, 2, 6)), 2)


def test_subpixel_kernel_reproduces_a_4x4_stride2_transposed_convolution():
    """Checked against jax.lax.conv_transpose and flax's nnx.ConvTranspose, not against depth_to_space alone."""
    from vae_book.models.conv import depth_to_space, subpixel_kernel

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
    layer = nnx.ConvTranspose(3, 4, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, rngs=nnx.Rngs(0))
    w = layer.kernel[...]
    want = jax.lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(want), atol=1e-6)
    v = subpixel_kernel(w)
    assert v.shape == (3, 3, 3, 16)
    conv = jax.lax.conv_general_dilated(x, v, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    got = depth_to_space(conv, 2)
    assert got.shape == want.shape == (2, 10, 12, 4)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    # a quarter of each phase's 3x3 taps are structurally zero: 4 of 9 taps used per phase
    used = np.asarray(jnp.any(v.reshape(3, 3, 3, 4, 4) != 0, axis=(2, 4)))  # (dy, dx, phase)
    assert used.sum(axis=(0, 1)).tolist() == [4, 4, 4, 4]
    for bad, match in [(jnp.zeros((3, 3, 1, 1)), r"\(4, 4, C_in, C_out\).*got shape \(3, 3, 1, 1\)"),
                       (jnp.zeros((4, 4, 1)), "`transposed`")]:
        with pytest.raises(ValueError, match=match):
            subpixel_kernel(bad)


def test_conv_parameter_counts_sum_to_the_model_and_follow_the_layer_sizes():
    from vae_book.models.conv import parameter_counts as conv_counts

    cfg = ConvConfig(image_shape=(32, 32, 3), channels=(8, 16), z_dim=4)
    model = ConvVAE(cfg, rngs=nnx.Rngs(0))
    counts = conv_counts(model)
    assert list(counts) == ["down 1", "down 2", "encoder head", "decoder input", "up 1", "output"]
    assert sum(counts.values()) == model.num_params()
    assert counts["down 1"] == 4 * 4 * 3 * 8 + 8
    assert counts["encoder head"] == 8 * 8 * 16 * 8 + 8
    assert counts["up 1"] == 3 * 3 * 16 * 4 * 8 + 4 * 8
    assert counts["output"] == 3 * 3 * 8 * 4 * 6 + 4 * 6  # learned sigma: 6 output channels
    with pytest.raises(ValueError, match="`model` must be a ConvVAE"):
        conv_counts(get_model("mlp", "gaussian"))
