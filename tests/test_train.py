"""Training, the NaN guard, checkpoints and the trained-model cache, profiles and the CLI."""

import re
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vae_book import cache as K
from vae_book import checkpoints as C
from vae_book import profiles
from vae_book.models.mlp import MLPConfig, MLPVAE
from vae_book.train import TrainingDiverged, fit, mean_metrics

CFG = MLPConfig(image_shape=(6, 6, 1), hidden=32, z_dim=3, likelihood="bernoulli")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    # Two prototypes with noise: learnable in a few hundred steps.
    protos = (rng.uniform(size=(2, 6, 6, 1)) > 0.5).astype(np.float32)
    x = protos[rng.integers(0, 2, 512)]
    flip = rng.uniform(size=x.shape) < 0.05
    return np.where(flip, 1 - x, x).astype(np.float32)


def test_fit_lowers_the_held_out_loss_and_logs_everything(images):
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    before = mean_metrics(model, images[:128], jax.random.key(0))
    h = fit(model, images[128:], steps=300, batch_size=32, learning_rate=3e-3, eval_images=images[:128],
            eval_every=100, progress=False)
    after = h.last("eval")
    assert after["loss"] < before["loss"] - 5.0, (before["loss"], after["loss"])
    assert h.eval["step"] == [100, 200, 300]
    assert set(h.train) == {"step", "loss", "recon", "kl", "elbo", "encoder_std"}  # no decoder sigma: Bernoulli
    assert len(h.train["step"]) == 100  # log_every defaults to steps // 100
    np.testing.assert_allclose(np.array(h.eval["elbo"]), -np.array(h.eval["loss"]), rtol=1e-5)
    assert h.steps == 300 and h.seconds > 0


def test_progress_bar_is_shown_but_not_in_a_static_build(images, capsys, monkeypatch):
    monkeypatch.delenv("VAE_BOOK_STATIC", raising=False)
    fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), images, steps=3, batch_size=16, desc="bar-check")
    assert "bar-check" in capsys.readouterr().err
    monkeypatch.setenv("VAE_BOOK_STATIC", "1")  # what scripts/build_book.py sets
    fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), images, steps=3, batch_size=16, desc="bar-check")
    assert "bar-check" not in capsys.readouterr().err


def test_fit_is_deterministic_given_the_seed(images):
    losses = []
    for _ in range(2):
        model = MLPVAE(CFG, rngs=nnx.Rngs(1))
        losses.append(fit(model, images, steps=20, batch_size=16, seed=5, progress=False).train["loss"])
    assert losses[0] == losses[1]


def test_nan_guard_stops_names_the_step_and_keeps_finite_parameters(images):
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    init = jnp.array(model.dec_out.bias[...])
    drift = lambda m: jnp.max(jnp.abs(m.dec_out.bias[...] - init))  # noqa: E731

    def poisoned_loss(m, x, key):
        from vae_book.objectives import vae_loss

        loss, metrics = vae_loss(m, x, key)
        # NaN once the decoder bias has moved 0.05 from its start: after a few Adam steps of ~0.01.
        return loss + jnp.where(drift(m) > 0.05, jnp.nan, 0.0), metrics

    with pytest.raises(TrainingDiverged, match=r"NaN/Inf at step ([2-9]|1\d) of 400"):
        fit(model, images, steps=400, batch_size=32, learning_rate=1e-2, loss_fn=poisoned_loss, log_every=50,
            progress=False)
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in params)
    # The failing step's update was not applied: the model holds the parameters after the last good
    # update (the ones at which the loss first became NaN), one Adam step (~lr) past the threshold.
    assert 0.05 < float(drift(model)) < 0.05 + 1.5e-2


def _params(model):
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_divergence_guard_keeps_exactly_the_parameters_after_step_n_minus_1(images):
    # Step N's update is NaN (a learning-rate schedule that is NaN at Adam's count N - 1: finite loss
    # and gradients, non-finite update); the steps after it in the same log_every window are finite
    # again and must be skipped too. The result must equal an (N - 1)-step run, bit for bit.
    import optax

    n = 7
    schedule = lambda count: jnp.where(count == n - 1, jnp.nan, 3e-3)  # noqa: E731
    diverged = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with pytest.raises(TrainingDiverged, match=rf"step {n} of 40.*parameters from step {n - 1}"):
        fit(diverged, images, steps=40, batch_size=16, optimizer=optax.adam(schedule), log_every=20,
            progress=False)
    reference = MLPVAE(CFG, rngs=nnx.Rngs(0))
    fit(reference, images, steps=n - 1, batch_size=16, optimizer=optax.adam(schedule), progress=False)
    initial = _params(MLPVAE(CFG, rngs=nnx.Rngs(0)))
    for got, want, start in zip(_params(diverged), _params(reference), initial):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(g, s) for g, s in zip(_params(diverged), initial))  # it did train


def test_a_nan_update_at_the_first_step_keeps_the_initial_parameters(images):
    import optax

    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    initial = _params(model)
    with pytest.raises(TrainingDiverged, match="step 1 of 5"):
        fit(model, images, steps=5, batch_size=16, optimizer=optax.sgd(float("nan")), progress=False)
    for got, want in zip(_params(model), initial):
        np.testing.assert_array_equal(got, want)


# every bad argument of `fit` is a row of tests/test_bad_inputs.py


def test_fit_accepts_numpy_and_jax_scalars_for_learning_rate_and_beta(images):
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    h = fit(model, images, steps=2, batch_size=16, learning_rate=np.float32(1e-3), beta=jnp.asarray(0.5),
            progress=False)
    assert h.steps == 2


def test_a_beta_schedule_weights_the_kl_of_each_step(images):
    import optax

    # warm-up from 0 to 1 over 4 steps, logged every step: the logged beta is the schedule at that step
    schedule = optax.linear_schedule(0.0, 1.0, 4)
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    h = fit(model, images, steps=6, batch_size=16, beta=schedule, log_every=1, progress=False)
    np.testing.assert_allclose(h.train["beta"], [0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(h.train["loss"], np.asarray(h.train["beta"]) * h.train["kl"] - h.train["recon"],
                               rtol=1e-5)
    # a constant schedule trains exactly as the number does
    a, b = MLPVAE(CFG, rngs=nnx.Rngs(0)), MLPVAE(CFG, rngs=nnx.Rngs(0))
    fit(a, images, steps=3, batch_size=16, beta=0.5, progress=False)
    fit(b, images, steps=3, batch_size=16, beta=lambda step: 0.5, progress=False)
    for got, want in zip(_params(b), _params(a)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_a_beta_schedule_reaches_a_custom_loss_as_its_beta_argument(images):
    import functools

    from vae_book import objectives

    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    loss = functools.partial(objectives.vae_loss, free_bits=0.25)
    h = fit(model, images, steps=3, batch_size=16, beta=lambda step: 0.1 * step, loss_fn=loss, log_every=1,
            progress=False)
    np.testing.assert_allclose(h.train["beta"], [0.1, 0.2, 0.3], rtol=1e-6)


def test_fit_refuses_bad_arguments(images):
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`batch_size`"):
        fit(model, images[:10], steps=1, batch_size=11, progress=False)
    with pytest.raises(ValueError, match="`steps`"):
        fit(model, images, steps=0, progress=False)
    with pytest.raises(ValueError, match="`train_images` must have values in"):
        fit(model, images * 255, steps=1, progress=False)
    with pytest.raises(ValueError, match="`eval_images`"):
        fit(model, images, steps=1, eval_images=np.zeros((4, 5, 5, 1), np.float32), progress=False)


def test_save_and_load_round_trip(tmp_path):
    a = MLPVAE(CFG, rngs=nnx.Rngs(0))
    b = MLPVAE(CFG, rngs=nnx.Rngs(1))
    C.save_model(a, tmp_path / "ckpt", {"note": "hi"})
    meta = C.load_model(b, tmp_path / "ckpt")
    assert meta["note"] == "hi"
    for pa, pb in zip(jax.tree.leaves(nnx.state(a, nnx.Param)), jax.tree.leaves(nnx.state(b, nnx.Param))):
        np.testing.assert_array_equal(pa, pb)
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"
    blob = (tmp_path / "ckpt.msgpack").read_bytes()
    assert b"pickle" not in blob and blob[:1] != b"\x80"  # msgpack, not a pickle stream


def test_corrupt_and_mismatched_checkpoints_are_refused(tmp_path):
    a = MLPVAE(CFG, rngs=nnx.Rngs(0))
    C.save_model(a, tmp_path / "ckpt")
    other = MLPVAE(MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=3), rngs=nnx.Rngs(0))
    with pytest.raises(C.CheckpointError, match="written for the model config"):
        C.load_model(other, tmp_path / "ckpt")
    p = tmp_path / "ckpt.msgpack"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(C.CheckpointError, match="corrupt or truncated"):
        C.load_model(a, tmp_path / "ckpt")
    with pytest.raises(C.CheckpointError, match="`path` must name a saved checkpoint .*where there is none"):
        C.load_model(a, tmp_path / "missing")


@pytest.mark.parametrize("family", ["MLPVAE", "MLPAutoencoder", "ConvVAE", "TransformerVAE"])
def test_restore_model_rebuilds_every_family_from_the_checkpoint_alone(family, tmp_path):
    from vae_book.models import ConvConfig, TransformerConfig

    cls, config_cls = C.MODEL_CLASSES[family]
    small = {"MLPVAE": MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=3),
             "MLPAutoencoder": MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2),
             "ConvVAE": ConvConfig(image_shape=(8, 8, 3), channels=(4, 8), z_dim=4),
             "TransformerVAE": TransformerConfig(image_shape=(8, 8, 3), patch=4, hidden=16, depth=1, heads=2,
                                                 z_dim=4)}[family]
    saved = cls(small, rngs=nnx.Rngs(7))
    C.save_model(saved, tmp_path / "ckpt", {"note": family})
    model, meta = C.restore_model(tmp_path / "ckpt")
    assert type(model) is cls and model.config == small and meta["note"] == family
    for pa, pb in zip(jax.tree.leaves(nnx.state(saved, nnx.Param)), jax.tree.leaves(nnx.state(model, nnx.Param))):
        np.testing.assert_array_equal(pa, pb)


def test_restore_model_refuses_metadata_it_cannot_rebuild_from(tmp_path):
    import json

    C.save_model(MLPVAE(CFG, rngs=nnx.Rngs(0)), tmp_path / "ckpt")
    meta_path = tmp_path / "ckpt.json"
    good = json.loads(meta_path.read_text())
    for edit, message in [({"model_class": "ResNet"}, "must name a model class"),
                          ({"model_class": None}, "must name a model class"),  # a checkpoint of an older version
                          ({"model_class": "ConvVAE"}, "must hold a ConvConfig"),
                          ({"model": {**good["model"], "z_dim": -1}}, "holds a config MLPConfig refuses")]:
        meta_path.write_text(json.dumps({**good, **edit}))
        with pytest.raises(C.CheckpointError, match=message):
            C.restore_model(tmp_path / "ckpt")


def test_fit_cached_trains_once_then_loads_and_retrains_a_corrupt_entry(tmp_path, images):
    kwargs = dict(steps=30, batch_size=16, progress=False)
    a = MLPVAE(CFG, rngs=nnx.Rngs(0))
    h1, info1 = K.fit_cached(a, images, cache=tmp_path, **kwargs)
    b = MLPVAE(CFG, rngs=nnx.Rngs(0))
    h2, info2 = K.fit_cached(b, images, cache=tmp_path, **kwargs)
    assert not info1["cached"] and info2["cached"] and info1["key"] == info2["key"]
    assert h1.train == h2.train
    np.testing.assert_array_equal(a.enc_out.kernel[...], b.enc_out.kernel[...])
    # Anything that changes the result changes the key: settings, data, initial parameters.
    keys = {info1["key"]}
    for model, x, kw in [
        (MLPVAE(CFG, rngs=nnx.Rngs(0)), images, dict(kwargs, steps=31)),
        (MLPVAE(CFG, rngs=nnx.Rngs(0)), images, dict(kwargs, beta=2.0)),
        (MLPVAE(CFG, rngs=nnx.Rngs(0)), images[::-1].copy(), kwargs),
        (MLPVAE(CFG, rngs=nnx.Rngs(7)), images, kwargs),
    ]:
        keys.add(K.fit_cached(model, x, cache=tmp_path, **kw)[1]["key"])
    assert len(keys) == 5
    # A corrupt entry is reported and retrained, never used.
    params = next(tmp_path.glob(f"*{info1['key']}.msgpack"))
    params.write_bytes(b"garbage")
    c = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with pytest.warns(UserWarning, match="cannot be used and is retrained: checkpoint .* does not match the SHA-256"):
        _, info3 = K.fit_cached(c, images, cache=tmp_path, **kwargs)
    assert not info3["cached"]
    np.testing.assert_allclose(c.enc_out.kernel[...], a.enc_out.kernel[...], rtol=1e-5, atol=1e-6)


def test_profiles_choice_and_override(monkeypatch):
    monkeypatch.setenv("VAE_BOOK_PROFILE", "cpu")
    assert profiles.get_profile().name == "cpu"
    monkeypatch.delenv("VAE_BOOK_PROFILE")
    assert profiles.get_profile().name == ("cpu" if jax.default_backend() == "cpu" else "gpu")
    monkeypatch.setenv("VAE_BOOK_PROFILE", "huge")
    with pytest.raises(ValueError, match="VAE_BOOK_PROFILE='huge' is not a known profile"):
        profiles.get_profile()
    with pytest.raises(ValueError, match="`name` must be one of"):
        profiles.get_profile("nope")
    gpu = profiles.get_profile("gpu")
    t = gpu.transformer
    assert (gpu.image_side, t.patch, t.hidden, t.depth, t.heads, t.z_dim, t.batch_size, t.learning_rate) == (
        64, 8, 256, 4, 4, 64, 64, 3e-4)
    with pytest.raises(ValueError, match="`name` must be one of 'mlp'"):
        gpu.family("resnet")


def test_cli_trains_and_reports(tmp_path, capsys, monkeypatch):
    from vae_book.__main__ import main

    monkeypatch.setenv("VAE_BOOK_CACHE", str(tmp_path))
    assert main(["train", "--model", "mlp", "--dataset", "mnist5k", "--profile", "smoke", "--steps", "5",
                 "--out", str(tmp_path / "run")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] > 0 and np.isfinite(report["eval"]["elbo"])
    assert list((tmp_path / "run").glob("MLPVAE-*.msgpack"))
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--dataset", "nope", "--profile", "smoke"])
    assert exit_.value.code == 2 and "argument --dataset: invalid choice: 'nope'" in capsys.readouterr().err


def test_cli_reports_a_diverged_run_in_one_line_and_exits_1(monkeypatch, capsys):
    from vae_book import runs
    from vae_book.__main__ import main

    def diverge(*args, **kwargs):
        raise TrainingDiverged("the loss became NaN at step 7 of 40; the model keeps the parameters after step 6.")

    monkeypatch.setattr(runs, "train", diverge)
    assert main(["train", "--model", "mlp"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged: the loss became NaN at step 7") and "Traceback" not in err


def test_max_steps_caps_every_step_count_of_a_profile_and_refuses_a_bad_value(monkeypatch):
    from vae_book.profiles import PROFILES, get_profile

    monkeypatch.delenv("VAE_BOOK_MAX_STEPS", raising=False)
    assert get_profile("gpu") is PROFILES["gpu"]
    monkeypatch.setenv("VAE_BOOK_MAX_STEPS", "25")
    capped = get_profile("gpu")
    assert capped.name == "gpu" and capped.transformer.hidden == 256  # the sizes stay the gpu profile's
    assert (capped.mlp.steps, capped.conv.steps, capped.transformer.steps, capped.beta_steps) == (25, 25, 25, 25)
    assert get_profile("smoke").conv.steps == PROFILES["smoke"].conv.steps == 10  # already below the cap
    for bad in ("0", "-3", "1e3", "many"):
        monkeypatch.setenv("VAE_BOOK_MAX_STEPS", bad)
        with pytest.raises(ValueError, match=f"VAE_BOOK_MAX_STEPS must be a positive integer.*got '{re.escape(bad)}'"):
            get_profile("gpu")
