"""``reuse_host_memory`` and ``HOST_MALLOC_ENV``: a training step whose buffers are larger than glibc's
arena and mmap ceilings page-faults them in on every step by default, and not with either (counted,
not timed).

The counts run in subprocesses: the settings are process-wide and cannot be undone. Linux with glibc only (where the function does something); elsewhere the test
checks that it says it did nothing.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import numpy as np
import pytest

from vae_book.train import HOST_MALLOC_ENV, reuse_host_memory

SCRIPT = r"""
import json, sys
if sys.argv[1] == "call":
    from vae_book.train import HOST_MALLOC_ENV, reuse_host_memory
    assert reuse_host_memory() is True
import jax, jax.numpy as jnp
from flax import nnx
from vae_book import objectives, runs
from vae_book.train import default_optimizer, make_train_step

def minor_faults():
    return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])

# the MLP VAE of chapter 10 at 32x32x3 (4.7M parameters): its step's buffers are over 64 MiB
config = runs.model_config("mlp", profile="cpu", image_shape=(32, 32, 3), likelihood="gaussian")
graphdef, params, rest = nnx.split(runs.FAMILIES["mlp"].model(config, rngs=nnx.Rngs(0)), nnx.Param, ...)
optimizer = default_optimizer(1e-3)
state = [params, optimizer.init(params), jnp.asarray(-1)]
step = make_train_step(graphdef, rest, objectives.vae_loss, optimizer)
x = jax.random.uniform(jax.random.key(1), (64, 32, 32, 3))

def run(i):
    p, o, metrics, bad = step(*state[:2], x, jax.random.key(i), i, state[2])
    state[:] = [p, o, bad]
    jax.block_until_ready(metrics)

for i in range(6):  # the heap settles in the first steps
    run(i)
faults = []
for i in range(8):
    start = minor_faults()
    run(i + 6)
    faults.append(minor_faults() - start)
print(json.dumps({"faults": faults}))
"""


def _faults_per_step(how: str) -> float:
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin", "VAE_BOOK_PROFILE": "smoke"}
    if how == "env":
        env.update(HOST_MALLOC_ENV)
    out = subprocess.run([sys.executable, "-c", SCRIPT, how], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(np.median(json.loads(out.stdout.strip().splitlines()[-1])["faults"]))


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_a_large_step_stops_page_faulting_its_buffers():
    default = _faults_per_step("default")
    assert default > 32 * 2**20 / 4096  # the premise: more than 32 MiB of fresh pages in every step
    assert _faults_per_step("call") < default / 20  # reuse_host_memory() before the first step
    assert _faults_per_step("env") < default / 20  # a process started with HOST_MALLOC_ENV


@pytest.mark.parametrize("limit", [2**20, 2**31, 0, -5, 1.5, "1GiB", True])
def test_a_bad_limit_is_refused(limit):
    with pytest.raises((ValueError, TypeError), match="`limit` must"):
        reuse_host_memory(limit)


@pytest.mark.skipif(sys.platform == "linux" and platform.libc_ver()[0] == "glibc", reason="not glibc only")
def test_without_glibc_it_does_nothing():
    assert reuse_host_memory() is False
