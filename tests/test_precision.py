"""Mixed precision (bfloat16 compute, float32 parameters and loss) and the attention kernel choice.

Measured when the tolerance was chosen (tiny models of this file, 200 Adam steps, batch 16, 16x16
``shapes``; mean training loss of the last 50 steps, nats per image, seeds 0 and 1):

* transformer: relative gap bf16 vs float32 0.06 % and 0.16 %;
* conv: 1.7 % and 0.4 %;
* for scale, float32 alone differs by 1.7 % (transformer) and 5 % (conv) between the two seeds.

So :data:`TOLERANCE` = 4 % (about twice the largest gap seen, below the seed-to-seed spread).

On CPU bfloat16 is slower, which is why the CPU profiles keep float32: the ``cpu`` profile's
transformer (32x32x3, patch 8, hidden 128, depth 2, batch 64) took 235-275 ms per step in float32
and 295-390 ms in bfloat16 on the 2-core build machine.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vae_book import data, objectives, profiles, runs
from vae_book.checkpoints import model_config
from vae_book.models._blocks import attention_implementation
from vae_book.models.conv import ConvConfig, ConvVAE
from vae_book.models.transformer import TransformerConfig, TransformerVAE
from vae_book.train import History, fit

#: largest relative difference of the mean training loss over the last 50 of 200 steps, bf16 vs float32
TOLERANCE = 0.04

FAMILIES = {
    "transformer": (TransformerVAE, lambda dt: TransformerConfig(image_shape=(16, 16, 3), patch=4, hidden=32,
                                                                 depth=1, heads=2, z_dim=8, dtype=dt)),
    "conv": (ConvVAE, lambda dt: ConvConfig(image_shape=(16, 16, 3), channels=(8, 16), z_dim=8, dtype=dt)),
}


@pytest.fixture(scope="module")
def images():
    return data.shapes(num_train=512, num_test=8, size=16).train


def _params_dtypes(model) -> set:
    return {leaf.dtype for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))}


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_training_follows_float32(family, images):
    Model, config = FAMILIES[family]
    final = {}
    for dt in ("float32", "bfloat16"):
        model = Model(config(dt), rngs=nnx.Rngs(0))
        history = fit(model, images, steps=200, batch_size=16, learning_rate=1e-3, log_every=10, progress=False)
        assert np.all(np.isfinite(history.train["loss"]))
        final[dt] = float(np.mean(history.train["loss"][-5:]))  # each a mean of 10 steps: the last 50
        assert _params_dtypes(model) == {jnp.dtype(jnp.float32)}, "parameters must stay float32"
        loss, metrics = objectives.vae_loss(model, jnp.asarray(images[:8]), jax.random.key(0))
        assert loss.dtype == jnp.float32 and all(v.dtype == jnp.float32 for v in metrics.values())
    gap = abs(final["bfloat16"] - final["float32"]) / abs(final["float32"])
    assert gap <= TOLERANCE, f"{family}: bf16 loss {final['bfloat16']:.2f} vs float32 {final['float32']:.2f}"


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_computes_in_bf16_and_returns_float32(family, images):
    Model, config = FAMILIES[family]
    model = Model(config("bfloat16"), rngs=nnx.Rngs(0))
    x = jnp.asarray(images[:4])
    enc = model.encoder_stages(x)
    dec = model.decoder_stages(enc["mean"])
    inner = enc["patch tokens"] if family == "transformer" else enc["down 1"]
    assert inner.dtype == jnp.bfloat16
    assert dec["after blocks" if family == "transformer" else "bottleneck"].dtype == jnp.bfloat16
    for name in ("mean", "log_std"):
        assert enc[name].dtype == jnp.float32 and dec[name].dtype == jnp.float32
    assert model.log_likelihood(x, model.decode(enc["mean"])).dtype == jnp.float32


def test_the_dtype_enters_the_cache_key():
    f32 = model_config(TransformerVAE(FAMILIES["transformer"][1]("float32"), rngs=nnx.Rngs(0)))
    bf16 = model_config(TransformerVAE(FAMILIES["transformer"][1]("bfloat16"), rngs=nnx.Rngs(0)))
    assert f32["dtype"] == "float32" and bf16["dtype"] == "bfloat16" and f32 != bf16
    assert model_config(ConvVAE(FAMILIES["conv"][1]("bfloat16"), rngs=nnx.Rngs(0)))["dtype"] == "bfloat16"


def test_the_profiles_choose_bf16_on_gpu_only():
    for name, profile in profiles.PROFILES.items():
        want = "bfloat16" if name == "gpu" else "float32"
        assert profile.conv.dtype == want and profile.transformer.dtype == want
    cfg = runs.model_config("transformer", profile="gpu", image_shape=(64, 64, 3))
    assert cfg.dtype == "bfloat16"
    assert runs.model_config("conv", profile="smoke", image_shape=(16, 16, 3)).dtype == "float32"


@pytest.mark.parametrize("dtype, backend, want", [
    ("bfloat16", "gpu", "cudnn"), (jnp.bfloat16, "cuda", "cudnn"), ("float16", "gpu", "cudnn"),
    ("float32", "gpu", "xla"), ("bfloat16", "cpu", "xla"), ("float32", "cpu", "xla"),
    ("bfloat16", "tpu", "xla"), ("float32", "tpu", "xla")])
def test_attention_implementation(dtype, backend, want):
    assert attention_implementation(dtype, backend) == want


def test_attention_implementation_defaults_to_this_backend():
    expected = "cudnn" if jax.default_backend() == "gpu" else "xla"
    assert attention_implementation("bfloat16") == expected
    model = TransformerVAE(FAMILIES["transformer"][1]("bfloat16"), rngs=nnx.Rngs(0))
    assert model.attention == expected


def test_what_was_run_names_the_precision_and_the_attention(images):
    model = TransformerVAE(FAMILIES["transformer"][1]("bfloat16"), rngs=nnx.Rngs(0))
    run = runs.Run("transformer VAE", model, History(), {}, profiles.get_profile("smoke"), "shapes",
                   images, images[:8], {"batch_size": 16}, "transformer")
    text = str(run)
    assert "bfloat16 compute, float32 parameters" in text
    assert f"implementation={attention_implementation('bfloat16')!r}" in text
    mlp_like = runs.Run("conv VAE", ConvVAE(FAMILIES["conv"][1]("float32"), rngs=nnx.Rngs(0)), History(), {},
                        profiles.get_profile("smoke"), "shapes", images, images[:8], {}, "conv")
    assert "attention" not in mlp_like.summary() and "float32 compute" in str(mlp_like)
