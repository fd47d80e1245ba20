"""The fault suite: a killed process, a corrupt file, or a copied entry never makes the cache serve a
wrong model.

* **kill -9** at points of ``fit_cached`` and ``save_model`` spread over every line they execute
  (a child process counts the lines of the storage code it runs and SIGKILLs itself at line k); the
  next ``fit_cached`` in this process must return exactly the parameters of a clean training run,
  and no temporary file may remain.
* **a corruption matrix** over one cache entry: truncated, a flipped byte, a deleted file, invalid
  UTF-8, JSON of the wrong shape, an entry copied from another key, an edited config. Each is named
  in a warning (with the entry's path) and retrained from the initial parameters; the next call is a
  hit.

Two processes filling one entry at once are in ``tests/test_runs.py``.
"""

import json
import os
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from vae_book import cache as K
from vae_book import checkpoints as C
from vae_book.models.mlp import MLPConfig, MLPVAE
from vae_book.train import fit

ROOT = Path(__file__).resolve().parents[1]
CFG = MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2)
FIT = dict(steps=20, batch_size=16, progress=False)


def _images():
    return (np.random.default_rng(0).uniform(size=(64, 6, 6, 1)) > 0.5).astype(np.float32)


def _params(model):
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.fixture(scope="module")
def reference():
    """The parameters of a clean run (no cache), and of the model a child saves over a checkpoint."""
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    fit(model, _images(), **FIT)
    return _params(model), _params(MLPVAE(CFG, rngs=nnx.Rngs(1))), _params(MLPVAE(CFG, rngs=nnx.Rngs(2)))


# --------------------------------------------------------------------------------------------------
# kill -9

_CHILD = """
import os, signal, sys
import numpy as np
from flax import nnx
from vae_book import cache, checkpoints
from vae_book.models.mlp import MLPConfig, MLPVAE
from vae_book.train import fit

folder, kill_at = sys.argv[1], int(sys.argv[2])
storage = {os.path.realpath(cache.__file__), os.path.realpath(checkpoints.__file__)}
watched = {"fit_cached", "_locked", "_load_entry", "save_model", "load_model", "_atomic_write", "_umask",
           "_check_model", "checkpoint_paths", "model_config", "json_default"}
lines = 0

def local(frame, event, arg):
    global lines
    if event == "line":
        lines += 1
        if lines == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return local

def trace(frame, event, arg):
    code = frame.f_code
    if code.co_name in watched and os.path.realpath(code.co_filename) in storage:
        return local
    return None

x = (np.random.default_rng(0).uniform(size=(64, 6, 6, 1)) > 0.5).astype(np.float32)
model = MLPVAE(MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2), rngs=nnx.Rngs(0))
other = MLPVAE(MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2), rngs=nnx.Rngs(2))
sys.settrace(trace)
cache.fit_cached(model, x, steps=20, batch_size=16, progress=False, cache=os.path.join(folder, "cache"))
checkpoints.save_model(other, os.path.join(folder, "ckpt"), {"note": "overwrite"})  # over a good one
sys.settrace(None)
print(lines)
"""


def _child(folder: Path, kill_at: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(kill_at)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def test_kill_9_anywhere_in_fit_cached_or_save_model_never_serves_a_wrong_model(tmp_path, reference):
    trained, saved_before, saved_after = reference
    images = _images()

    def prepare(folder: Path):
        folder.mkdir()
        C.save_model(MLPVAE(CFG, rngs=nnx.Rngs(1)), folder / "ckpt", {"note": "the good one"})

    prepare(tmp_path / "count")
    counted = _child(tmp_path / "count", 0)
    assert counted.returncode == 0, counted.stderr[-2000:]
    total = int(counted.stdout.split()[-1])
    assert total > 50, total  # the storage code's lines were traced
    # 12 kill points spread over every traced line, the first and the last included
    points = sorted({1, total, *np.random.default_rng(0).choice(np.arange(2, total), 10, replace=False).tolist()})
    for k in points:
        prepare(tmp_path / f"k{k}")
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(points, pool.map(lambda k: _child(tmp_path / f"k{k}", k), points)))
    served = {"hit": 0, "retrained": 0}
    for k, run in runs.items():
        assert run.returncode == -9, (k, run.returncode, run.stderr[-2000:])
        folder = tmp_path / f"k{k}"
        model = MLPVAE(CFG, rngs=nnx.Rngs(0))
        _, info = K.fit_cached(model, images, cache=folder / "cache", **FIT)
        served["hit" if info["cached"] else "retrained"] += 1
        for got, want in zip(_params(model), trained):
            np.testing.assert_array_equal(got, want, err_msg=f"kill at line {k} of {total}: a wrong model")
        assert not list((folder / "cache").glob("*.tmp")), f"kill at line {k}: orphan temporary files"
        # the overwritten checkpoint holds the old parameters, the new ones, or is refused: never a mix
        loaded = MLPVAE(CFG, rngs=nnx.Rngs(3))
        try:
            C.load_model(loaded, folder / "ckpt")
        except C.CheckpointError:
            continue
        got = _params(loaded)
        assert any(all(np.array_equal(g, w) for g, w in zip(got, want)) for want in (saved_before, saved_after)), k
    assert served["hit"] >= 1 and served["retrained"] >= 1, served  # kills before and after the entry was whole


# --------------------------------------------------------------------------------------------------
# the corruption matrix


def _truncate(path: Path, other: Path):
    blob = path.with_suffix(".msgpack").read_bytes()
    path.with_suffix(".msgpack").write_bytes(blob[: len(blob) // 2])


def _flip_byte(path: Path, other: Path):
    p = path.with_suffix(".msgpack")
    blob = bytearray(p.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    p.write_bytes(bytes(blob))


def _delete_params(path: Path, other: Path):
    path.with_suffix(".msgpack").unlink()


def _delete_metadata(path: Path, other: Path):
    path.with_suffix(".json").unlink()


def _invalid_utf8(path: Path, other: Path):
    p = path.with_suffix(".json")
    p.write_bytes(b"\xff\xfe" + p.read_bytes()[2:])


def _json(value):
    def corrupt(path: Path, other: Path):
        path.with_suffix(".json").write_text(json.dumps(value))
    return corrupt


def _edit(field_path, value):
    def corrupt(path: Path, other: Path):
        p = path.with_suffix(".json")
        meta = json.loads(p.read_text())
        d = meta
        for f in field_path[:-1]:
            d = d[f]
        d[field_path[-1]] = value
        p.write_text(json.dumps(meta))
    return corrupt


def _swap_from_other_key(path: Path, other: Path):
    for suffix in (".msgpack", ".json"):
        shutil.copyfile(other.with_suffix(suffix), path.with_suffix(suffix))


CORRUPTIONS = {
    "truncated parameters": (_truncate, "SHA-256"),
    "flipped byte": (_flip_byte, "SHA-256"),
    "deleted parameters": (_delete_params, "must name a saved checkpoint"),
    "deleted metadata": (_delete_metadata, None),  # no entry: trains, nothing to warn about
    "invalid UTF-8": (_invalid_utf8, "corrupt"),
    "JSON list": (_json([]), "not a JSON object"),
    "JSON null": (_json(None), "not a JSON object"),
    "history a string": (_edit(["history"], "x"), "no valid training history"),
    "steps not a number": (_edit(["history", "steps"], "abc"), "no valid training history"),
    "train table ragged": (_edit(["history", "train", "loss"], [1.0]), "no valid training history"),
    "key edited": (_edit(["key"], "0" * 20), "stored under the key"),
    "settings edited": (_edit(["key_parts", "settings", "steps"], "3"), "stored under the key"),
    "config edited": (_edit(["model", "z_dim"], 3), "written for the model config"),
    "entry copied from another key": (_swap_from_other_key, "stored under the key"),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_corrupt_entry_is_named_and_retrained_from_the_initial_parameters(tmp_path, reference, name):
    corrupt, message = CORRUPTIONS[name]
    trained = reference[0]
    images = _images()
    _, info = K.fit_cached(MLPVAE(CFG, rngs=nnx.Rngs(0)), images, cache=tmp_path, **FIT)
    # another key in the same folder: the same model trained for 21 steps
    _, info_other = K.fit_cached(MLPVAE(CFG, rngs=nnx.Rngs(0)), images, cache=tmp_path, **{**FIT, "steps": 21})
    path, other = Path(info["path"] + ".x"), Path(info_other["path"] + ".x")  # with_suffix swaps ".x"
    corrupt(path, other)
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, again = K.fit_cached(model, images, cache=tmp_path, **FIT)
    texts = [str(w.message) for w in caught]
    assert not again["cached"]
    if message is None:
        assert not texts, texts
    else:
        assert len(texts) == 1 and info["path"] in texts[0] and message in texts[0], texts
    for got, want in zip(_params(model), trained):
        np.testing.assert_array_equal(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hit = MLPVAE(CFG, rngs=nnx.Rngs(0))
        assert K.fit_cached(hit, images, cache=tmp_path, **FIT)[1]["cached"]
    for got, want in zip(_params(hit), trained):
        np.testing.assert_array_equal(got, want)


def test_checkpoint_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        C.save_model(MLPVAE(CFG, rngs=nnx.Rngs(0)), tmp_path / "ckpt")
    finally:
        os.umask(old)
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o777 == 0o644, (p.name, oct(p.stat().st_mode))


def test_storage_refuses_a_model_that_is_not_one(tmp_path):
    with pytest.raises(ValueError, match="`model` must be a Flax NNX model"):
        C.save_model(None, tmp_path / "ckpt")
    with pytest.raises(ValueError, match="`model` must be a Flax NNX model"):
        C.load_model("model", tmp_path / "ckpt")
    assert not list(tmp_path.iterdir())
