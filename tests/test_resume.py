"""Resumable training and every local device.

* A run interrupted after a training checkpoint and resumed ends with **bitwise** the parameters and
  the same history as one never stopped (by step count and by time; the batch stream resumes by
  epoch arithmetic, :func:`vae_book.data.batches` ``start``).
* kill -9 at lines of the second checkpoint write leaves a usable checkpoint (the first or the
  second), from which the run resumes to the same parameters.
* A checkpoint of other settings, or a corrupt one, is refused by name; ``fit_cached`` resumes an
  interrupted cached run, warns about and retrains past a corrupt one, and deletes its checkpoint.
* With two (forced host) devices each batch is split over both, and the losses match one device.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vae_book import cache as K
from vae_book import checkpoints as C
from vae_book.data import batches
from vae_book.models.mlp import MLPConfig, MLPVAE

T = importlib.import_module("vae_book.train")  # `vae_book.train` is the runs.train function
ROOT = Path(__file__).resolve().parents[1]
CFG = MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2)
FIT = dict(steps=20, batch_size=16, log_every=3, progress=False)  # 4 batches an epoch: resumes cross epochs


def _images():
    return (np.random.default_rng(0).uniform(size=(64, 6, 6, 1)) > 0.5).astype(np.float32)


def _params(model):
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def _same_history(got, want):
    assert got.train == want.train and got.eval == want.eval and got.steps == want.steps


@pytest.fixture(scope="module")
def reference():
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    history = T.fit(model, _images(), **FIT)
    return _params(model), history


def _interrupt_at(monkeypatch, at: int):
    """Make every train step built from now on raise KeyboardInterrupt at step ``at`` (a Ctrl-C)."""
    build = T.make_train_step

    def patched(*args):
        step_fn = build(*args)

        def step(params, opt_state, x, key, n, bad):
            if n == at:
                raise KeyboardInterrupt
            return step_fn(params, opt_state, x, key, n, bad)
        return step

    monkeypatch.setattr(T, "make_train_step", patched)


def test_batches_start_skips_by_arithmetic():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    for kw in ({}, {"drop_remainder": False}, {"epochs": 3}):
        full = [b.copy() for b, _ in zip(batches(x, 3, seed=4, **kw), range(12))]
        for start in (0, 1, 3, 5, 7):
            got = [b.copy() for b, _ in zip(batches(x, 3, seed=4, start=start, **kw), range(12 - start))]
            assert len(got) == len(full[start:]) and all(np.array_equal(g, w) for g, w in zip(got, full[start:]))
    assert list(batches(x, 3, epochs=1, start=3)) == []


@pytest.mark.parametrize("schedule", [{"checkpoint_every": 5}, {"checkpoint_minutes": 1e-9}])
def test_an_interrupted_run_resumes_to_bitwise_the_same_parameters_and_history(tmp_path, monkeypatch, reference,
                                                                                 schedule):
    trained, history = reference
    path = tmp_path / "run.train"
    _interrupt_at(monkeypatch, 12)  # checkpoints at 5, 10 (or after every step, by time): resumed from 10 / 11
    with pytest.raises(KeyboardInterrupt):
        T.fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), _images(), checkpoint_path=path, **schedule, **FIT)
    monkeypatch.undo()
    meta = C.load_training_state(path, params=nnx.state(MLPVAE(CFG, rngs=nnx.Rngs(0)), nnx.Param),
                                 opt_state=T.default_optimizer(3e-4).init(nnx.state(MLPVAE(CFG, rngs=nnx.Rngs(0)),
                                                                                    nnx.Param)))[2]
    assert meta["step"] == (10 if "checkpoint_every" in schedule else 11)
    assert meta["pending"], "the checkpoint is between two log points: it holds metrics not yet logged"
    model = MLPVAE(CFG, rngs=nnx.Rngs(7))  # another init: the checkpoint's parameters replace it
    resumed = T.fit(model, _images(), checkpoint_path=path, **schedule, **FIT)
    assert _max_diff(_params(model), trained) == 0.0
    _same_history(resumed, history)


_KILL_CHILD = """
import importlib, os, signal, sys
import numpy as np
from flax import nnx
from vae_book import checkpoints
from vae_book.models.mlp import MLPConfig, MLPVAE
T = importlib.import_module("vae_book.train")

path, kill_at = sys.argv[1], int(sys.argv[2])
storage, watched = checkpoints.__file__, set(sys.argv[3].split(","))
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
    return local if code.co_name in watched and code.co_filename == storage else None

x = (np.random.default_rng(0).uniform(size=(64, 6, 6, 1)) > 0.5).astype(np.float32)
sys.settrace(trace)
T.fit(MLPVAE(MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2), rngs=nnx.Rngs(0)), x, steps=20, batch_size=16,
      log_every=3, progress=False, checkpoint_path=path, checkpoint_every=5)
"""
#: the functions of checkpoints.py that write a training checkpoint (their lines are the kill points)
_WRITE = ("save_training_state", "_atomic_write", "_leaves", "_host", "_state_hash", "_umask", "json_default")


def test_kill_9_during_a_checkpoint_write_leaves_a_usable_checkpoint(tmp_path, reference):
    trained, history = reference
    # count the lines of checkpoints.py one run executes (three writes: at steps 5, 10, 15), in this process
    lines = [0]

    def local(frame, event, arg):
        lines[0] += event == "line"
        return local

    def trace(frame, event, arg):
        return local if frame.f_code.co_name in _WRITE and frame.f_code.co_filename == C.__file__ else None

    sys.settrace(trace)
    try:
        T.fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), _images(), checkpoint_path=tmp_path / "count.train", checkpoint_every=5,
              **FIT)
    finally:
        sys.settrace(None)
    per_write = lines[0] // 3
    assert lines[0] == 3 * per_write and per_write > 20, lines[0]
    # kill points inside the second write: its first line, one in the middle, its last
    points = [per_write + 1, per_write + per_write // 2, 2 * per_write]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}

    def run(k):
        args = [str(tmp_path / f"k{k}.train"), str(k), ",".join(_WRITE)]
        return subprocess.run([sys.executable, "-c", _KILL_CHILD, *args],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(points, pool.map(run, points)))
    for k, child in runs.items():
        assert child.returncode == -signal.SIGKILL, (k, child.returncode, child.stderr[-2000:])
        model = MLPVAE(CFG, rngs=nnx.Rngs(0))
        resumed = T.fit(model, _images(), checkpoint_path=tmp_path / f"k{k}.train", checkpoint_every=5, **FIT)
        assert _max_diff(_params(model), trained) == 0.0, f"kill at line {k}: resumed to other parameters"
        _same_history(resumed, history)


def _checkpoint(tmp_path, monkeypatch, **kw):
    path = tmp_path / "run.train"
    _interrupt_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        T.fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), _images(), checkpoint_path=path, checkpoint_every=5, **{**FIT, **kw})
    monkeypatch.undo()
    return path


MISMATCHES = {
    "steps": dict(steps=21), "batch_size": dict(batch_size=8), "seed": dict(seed=1),
    "learning_rate": dict(learning_rate=1e-3), "beta": dict(beta=0.5), "log_every": dict(log_every=4),
    "train_images": dict(train_images=1.0 - _images()), "model": dict(model=MLPConfig(image_shape=(6, 6, 1), hidden=8,
                                                                                        z_dim=2)),
}


def test_a_checkpoint_of_other_settings_or_a_corrupt_one_is_refused(tmp_path, monkeypatch):
    path = _checkpoint(tmp_path, monkeypatch)
    for name, change in MISMATCHES.items():
        change = dict(change)
        model = MLPVAE(change.pop("model", CFG), rngs=nnx.Rngs(0))
        before = _params(model)
        with pytest.raises(C.CheckpointError, match=f"other settings.*{name}:"):
            T.fit(model, change.pop("train_images", _images()), checkpoint_path=path, **{**FIT, **change})
        assert _max_diff(_params(model), before) == 0.0, f"{name}: a refused checkpoint changed the model"
    blob = bytearray(path.read_bytes())
    for corrupt in (blob[: len(blob) // 2], blob[:-40] + bytes(b ^ 1 for b in blob[-40:]), b"", b"\x00" * 100):
        path.write_bytes(bytes(corrupt))
        with pytest.raises(C.CheckpointError, match="corrupt or truncated"):
            T.fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), _images(), checkpoint_path=path, **FIT)
    assert T.fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), _images(), checkpoint_path=path, resume=False, steps=1,
                 batch_size=16, progress=False).steps == 1  # resume=False starts over


def test_a_checkpoint_of_another_beta_schedule_is_refused(tmp_path, monkeypatch):
    path = _checkpoint(tmp_path, monkeypatch)  # written with the constant beta = 1
    for schedule in (lambda step: jnp.minimum(1.0, step / 10), lambda step: 0.5):  # a KL warm-up, a constant 0.5
        model = MLPVAE(CFG, rngs=nnx.Rngs(0))
        before = _params(model)
        with pytest.raises(C.CheckpointError, match="other settings.*beta:"):
            T.fit(model, _images(), checkpoint_path=path, **{**FIT, "beta": schedule})
        assert _max_diff(_params(model), before) == 0.0


def test_fit_cached_resumes_an_interrupted_run_and_deletes_its_checkpoint(tmp_path, monkeypatch, reference):
    trained, history = reference
    _interrupt_at(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        K.fit_cached(MLPVAE(CFG, rngs=nnx.Rngs(0)), _images(), cache=tmp_path, checkpoint_every=5, **FIT)
    monkeypatch.undo()
    (train_path,) = tmp_path.glob("*.train")
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, info = K.fit_cached(model, _images(), cache=tmp_path, **FIT)  # no checkpoint_every: the same key
    assert not [w for w in caught if "checkpoint" in str(w.message)], [str(w.message) for w in caught]
    assert not info["cached"] and Path(info["path"] + ".train") == train_path and not train_path.exists()
    assert _max_diff(_params(model), trained) == 0.0
    _same_history(got, history)
    # a corrupt training checkpoint of a cached run: named in a warning, trained from the start
    os.remove(info["path"] + ".json")
    train_path.write_bytes(b"not a checkpoint")
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    with pytest.warns(UserWarning, match="training checkpoint .* cannot be used"):
        K.fit_cached(model, _images(), cache=tmp_path, **FIT)
    assert _max_diff(_params(model), trained) == 0.0 and not train_path.exists()


_TWO_DEVICES = """
import importlib, json, warnings
import jax, numpy as np
from flax import nnx
from vae_book.models.mlp import MLPConfig, MLPVAE
T = importlib.import_module("vae_book.train")
assert len(jax.devices()) == 2, jax.devices()
seen = []
build = T.make_train_step
def spy(*args):
    step = build(*args)
    def recorded(params, opt_state, x, *rest):
        seen.append([len(x.sharding.device_set), [s.data.shape[0] for s in x.addressable_shards]])
        return step(params, opt_state, x, *rest)
    return recorded
T.make_train_step = spy
x = (np.random.default_rng(0).uniform(size=(64, 6, 6, 1)) > 0.5).astype(np.float32)
model = MLPVAE(MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2), rngs=nnx.Rngs(0))
h = T.fit(model, x, steps=20, batch_size=16, log_every=1, progress=False)
where = sorted({len(a.sharding.device_set) for a in jax.tree.leaves(nnx.state(model, nnx.Param))})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    T.fit(MLPVAE(MLPConfig(image_shape=(6, 6, 1), hidden=16, z_dim=2), rngs=nnx.Rngs(0)), x, steps=1, batch_size=15,
          progress=False)
print(json.dumps({"loss": h.train["loss"], "seen": seen, "where": where, "warnings": [str(w.message) for w in caught]}))
"""


def test_two_devices_split_each_batch_and_match_one_device():
    assert len(jax.devices()) == 1, "this process must see one device (the reference)"
    model = MLPVAE(CFG, rngs=nnx.Rngs(0))
    one = T.fit(model, _images(), **{**FIT, "log_every": 1})
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()}
    child = subprocess.run([sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    got = json.loads(child.stdout.splitlines()[-1])
    assert got["seen"][:20] == [[2, [8, 8]]] * 20, got["seen"]  # every batch of 16: 8 images on each device
    assert got["seen"][20:] == [[1, [15]]]  # batch 15 on 2 devices: one device ...
    assert any("not a multiple of the 2 devices" in w for w in got["warnings"]), got["warnings"]  # ... and a warning
    assert got["where"] == [1], "the trained parameters end on one device"
    diff = float(np.max(np.abs(np.array(got["loss"]) - np.array(one.train["loss"]))))
    print(f"2-device vs 1-device max |loss difference| over 20 steps: {diff:.3g}")
    assert diff <= 1e-5, diff
