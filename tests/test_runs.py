"""vae_book.runs (one table of runs for the chapters and the CLI) and vae_book.cache (fingerprints, faults)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from vae_book import cache as K
from vae_book import checkpoints as C
from vae_book import runs
from vae_book.models.mlp import MLPConfig, MLPVAE
from vae_book.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_book"
CFG = MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return (rng.uniform(size=(128, 6, 6, 1)) > 0.5).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# the run table


def test_train_sizes_every_family_from_the_profile_and_the_cli_hits_the_same_entry(tmp_path, capsys, monkeypatch):
    from vae_book.__main__ import main

    monkeypatch.setenv("VAE_BOOK_CACHE", str(tmp_path))
    smoke = get_profile("smoke")
    for family, settings in [("mlp", smoke.mlp), ("conv", smoke.conv), ("transformer", smoke.transformer)]:
        run = runs.train(family, profile="smoke", progress=False)  # what the chapters call
        assert not run.info["cached"]
        assert run.history.steps == settings.steps and run.settings["batch_size"] == settings.batch_size
        assert run.settings["learning_rate"] == settings.learning_rate
        assert run.model.config.z_dim == settings.z_dim
        assert main(["train", "--model", family, "--profile", "smoke"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["cached"] is True, f"the CLI retrained the {family} model a chapter had trained"
        assert report["checkpoint"] == run.info["path"]
    conv = runs.train("conv", profile="smoke", progress=False)
    assert conv.dataset == "shapes" and conv.train_images.shape[1:] == (smoke.image_side,) * 2 + (3,)


def test_train_binarizes_for_a_bernoulli_likelihood_and_pads_for_the_conv_vae(tmp_path):
    grey = runs.load_data("mnist5k")
    binary = runs.load_data("mnist5k", binarized=True)
    assert set(np.unique(binary.train)) == {0.0, 1.0} and len(np.unique(grey.train)) > 2
    np.testing.assert_array_equal(binary.train_labels, grey.train_labels)
    run = runs.train("conv", "mnist5k", profile="cpu", steps=1, batch_size=8, cache=False, progress=False)
    # 28 is padded to 32 = 2 ** 3 for three halvings, by 2 zero pixels on each side
    assert run.train_images.shape[1:] == (32, 32, 1)
    np.testing.assert_array_equal(run.train_images[:, 2:30, 2:30], grey.train)
    assert not run.train_images[:, :2].any()


def test_train_refuses_bad_arguments_by_name(monkeypatch):
    with pytest.raises(ValueError, match="`family` must be one of"):
        runs.train("resnet")
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        runs.train("mlp", "cifar")
    with pytest.raises(ValueError, match=r"`depth`: every setting must be a field of the MLP VAE .*got \['depth'\]"):
        runs.train("mlp", depth=3)
    with pytest.raises(ValueError, match="`likelihood` must be None for the MLP autoencoder"):
        runs.train("autoencoder", likelihood="gaussian")
    with pytest.raises(ValueError, match="`likelihood` must be one of"):
        runs.train("mlp", likelihood="poisson")
    with pytest.raises(ValueError, match="`profile` must be a profile name or a Profile"):
        runs.train("mlp", profile=3)
    monkeypatch.delenv("VAE_BOOK_DATA", raising=False)
    with pytest.raises(ValueError, match="`data_path` must name a folder"):
        runs.load_data("image_folder")


def test_the_cli_never_writes_the_environment(tmp_path, monkeypatch, capsys):
    from vae_book.__main__ import main

    monkeypatch.delenv("VAE_BOOK_DATA", raising=False)
    before = dict(os.environ)
    assert main(["train", "--dataset", "image_folder", "--data-path", str(tmp_path / "none"), "--profile",
                 "smoke"]) == 2
    assert dict(os.environ) == before
    assert "error:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# the fingerprint follows the training code's imports


def _copy_package(tmp_path) -> Path:
    dst = tmp_path / "vae_book"
    shutil.copytree(PACKAGE, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_training_modules_are_found_from_the_imports():
    found = set(K.training_modules())
    for rel in ("runs.py", "cache.py", "train.py", "checkpoints.py", "objectives.py", "distributions.py",
                "profiles.py", "_checks.py", "__init__.py", "models/transformer.py", "data/__init__.py",
                "data/shapes.py"):
        assert rel in found, f"{rel} is imported by the training code but not fingerprinted"
    for rel in ("plotting.py", "widgets.py", "evaluation.py", "latent.py", "__main__.py"):
        assert rel not in found, f"{rel} is not imported by the training code but is fingerprinted"
    assert not any(r.startswith("companion/") for r in found)


def test_changing_an_imported_file_changes_the_fingerprint_and_another_does_not(tmp_path):
    pkg = _copy_package(tmp_path)
    base = K.training_fingerprint(pkg)
    assert base == K.training_fingerprint(PACKAGE)  # same bytes, same fingerprint
    modules = K.training_modules(package_dir=pkg)
    untouched = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*.py") if str(p.relative_to(pkg)) not in modules)
    assert untouched, "every module is imported by the training code?"
    for rel in untouched:
        other = _copy_package(tmp_path / f"u-{rel.replace('/', '-')}")
        with open(other / rel, "a") as f:
            f.write("\n# an edit of a module training does not import\n")
        assert K.training_fingerprint(other) == base, f"editing {rel} changed the fingerprint"
    for rel in modules:
        other = _copy_package(tmp_path / f"t-{rel.replace('/', '-')}")
        with open(other / rel, "a") as f:
            f.write("\n# an edit of a module training imports\n")
        assert K.training_fingerprint(other) != base, f"editing {rel} left the fingerprint unchanged"


def test_a_new_import_brings_its_module_into_the_fingerprint(tmp_path):
    pkg = _copy_package(tmp_path)
    assert "plotting.py" not in K.training_modules(package_dir=pkg)
    train = pkg / "train.py"
    train.write_text(train.read_text() + "\n\ndef _late():\n    from vae_book import plotting  # noqa: F401\n")
    assert "plotting.py" in K.training_modules(package_dir=pkg)
    before = K.training_fingerprint(pkg)
    (pkg / "plotting.py").write_text((pkg / "plotting.py").read_text() + "\n# edited\n")
    assert K.training_fingerprint(pkg) != before


# --------------------------------------------------------------------------------------------------
# faults: the cache never serves or saves a wrongly trained model


def test_an_entry_without_history_is_retrained_from_the_initial_parameters(tmp_path, images):
    kwargs = dict(steps=5, batch_size=16, progress=False, cache=tmp_path)
    a = MLPVAE(CFG, rngs=nnx.Rngs(0))
    _, info = K.fit_cached(a, images, **kwargs)
    meta_path = Path(info["path"] + ".json")
    meta = json.loads(meta_path.read_text())
    del meta["history"]
    meta_path.write_text(json.dumps(meta))
    b = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with pytest.warns(UserWarning, match="cannot be used and is retrained: its metadata has no valid training history"):
        _, info_b = K.fit_cached(b, images, **kwargs)
    assert not info_b["cached"]
    # 5 steps from the initial parameters, not 5 more from the cached ones: the same as the first run
    for pa, pb in zip(jax.tree.leaves(nnx.state(a, nnx.Param)), jax.tree.leaves(nnx.state(b, nnx.Param))):
        np.testing.assert_allclose(pa, pb, rtol=1e-6, atol=1e-7)
    c = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert K.fit_cached(c, images, **kwargs)[1]["cached"]


def test_a_killed_training_leaves_no_entry_and_the_next_call_trains(tmp_path, images):
    a = MLPVAE(CFG, rngs=nnx.Rngs(0))

    def boom(model, x, key):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        K.fit_cached(a, images, steps=5, batch_size=16, progress=False, cache=tmp_path, loss_fn=boom)
    assert not list(tmp_path.glob("*.msgpack")) and not list(tmp_path.glob("*.json"))


_RACE = """
import sys, json
import numpy as np
from flax import nnx
from vae_book import cache
from vae_book.models.mlp import MLPConfig, MLPVAE
x = (np.random.default_rng(0).uniform(size=(64, 6, 6, 1)) > 0.5).astype(np.float32)
m = MLPVAE(MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2), rngs=nnx.Rngs(0))
_, info = cache.fit_cached(m, x, steps=200, batch_size=16, progress=False, cache=sys.argv[1])
print(json.dumps(info["cached"]))
"""


def test_two_processes_asking_for_one_model_train_it_once(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=env, cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(outs) == ["false", "true"], outs  # one trained, the other waited and loaded
    assert len(list(tmp_path.glob("*.msgpack"))) == 1


# --------------------------------------------------------------------------------------------------
# checkpoints


def test_dotted_names_do_not_collide(tmp_path):
    a, b = MLPVAE(CFG, rngs=nnx.Rngs(0)), MLPVAE(CFG, rngs=nnx.Rngs(1))
    C.save_model(a, tmp_path / "run.v1")
    C.save_model(b, tmp_path / "run.v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.v1.json", "run.v1.msgpack", "run.v2.json",
                                                         "run.v2.msgpack"]
    c = MLPVAE(CFG, rngs=nnx.Rngs(2))
    C.load_model(c, tmp_path / "run.v1")
    np.testing.assert_array_equal(c.enc_out.kernel[...], a.enc_out.kernel[...])


def test_unencodable_metadata_leaves_the_checkpoint_intact(tmp_path):
    a, b = MLPVAE(CFG, rngs=nnx.Rngs(0)), MLPVAE(CFG, rngs=nnx.Rngs(1))
    C.save_model(a, tmp_path / "ckpt")
    with pytest.raises(ValueError, match="`metadata` must be JSON-serialisable"):
        C.save_model(b, tmp_path / "ckpt", {"when": object()})
    with pytest.raises(ValueError, match=r"`metadata` must not set the computed fields .*got the keys \['sha256'\]"):
        C.save_model(b, tmp_path / "ckpt", {"sha256": "0" * 64})
    c = MLPVAE(CFG, rngs=nnx.Rngs(2))
    C.load_model(c, tmp_path / "ckpt")  # still a consistent pair: a's parameters
    np.testing.assert_array_equal(c.enc_out.kernel[...], a.enc_out.kernel[...])


# --------------------------------------------------------------------------------------------------
# after the book build, the CLI with no flags reuses each chapter's model


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mlp", "transformer", "conv"])
def test_cli_after_the_chapters_reports_a_cache_hit(family, built_book):
    models = built_book[0].parent / "models"
    assert list(models.glob("*.msgpack")), "the book build trained no model"
    env = {**os.environ, "VAE_BOOK_PROFILE": "smoke", "VAE_BOOK_CACHE": str(models)}
    out = subprocess.run([sys.executable, "-m", "vae_book", "train", "--model", family], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["cached"] is True, f"`train --model {family}` retrained: {out.stdout}"


def test_an_image_folder_is_decoded_once_then_opened_from_the_cache(tmp_path, monkeypatch):
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    monkeypatch.setenv("VAE_BOOK_DATA_CACHE", str(tmp_path / "cache"))
    runs._load.cache_clear()
    first = runs.load_data("image_folder", profile="smoke", data_path=folder)
    stored = list((tmp_path / "cache" / "images").glob("*.npy"))
    assert len(stored) == 1 and first.train.dtype == np.float32
    uncached = runs.data_lib.image_folder(folder, size=runs.get_profile("smoke").image_side, progress=False)
    np.testing.assert_array_equal(first.train, uncached.train)
    runs._load.cache_clear()  # a new session: the memory map is opened, not the PNGs
    monkeypatch.setattr(runs.data_lib.folder, "_decode", lambda *a, **k: pytest.fail("decoded again"))
    again = runs.load_data("image_folder", profile="smoke", data_path=folder)
    np.testing.assert_array_equal(again.train, first.train)
    np.testing.assert_array_equal(again.test, first.test)
    runs._load.cache_clear()
