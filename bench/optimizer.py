"""Benchmark of fit's default optimizer: Adam per parameter array vs Adam on one flat vector.

    python bench/optimizer.py                  # the cpu profile's MLP VAEs and transformer VAE
    python bench/optimizer.py --rounds 5 --steps 30

``vae_book.train.default_optimizer`` runs Adam on each parameter array. ``optax.flatten(optax.adam)``
does the same arithmetic on one vector of all parameters, which needs every gradient copied into that
vector at each step. For each model (the ``cpu`` profile's sizes, one fixed batch) this builds the
jitted step of :func:`vae_book.train.make_train_step` with both optimizers (the flat one without the
default's flush of subnormal moments, which can only make it faster), then times them in one process, interleaved round by round so that a busy machine
slows both alike: the median over rounds of the median step time over ``--steps`` steps, each ended by
``block_until_ready``. It prints the ratio flat / per-array (> 1: per array is faster) and the loss after
the timed steps of each, which must agree.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from vae_book import objectives, profiles, runs  # noqa: E402
from vae_book.train import default_optimizer, make_train_step  # noqa: E402

#: (family, dataset, binarized, config overrides)
MODELS = {
    "MLP VAE, Gaussian, learned sigma": ("mlp", "mnist5k", False, {"likelihood": "gaussian"}),
    "MLP VAE, Bernoulli": ("mlp", "mnist5k", True, {}),
    "transformer VAE": ("transformer", "shapes", False, {}),
}


def build(name: str, optimizer: optax.GradientTransformation, profile: profiles.Profile):
    family, dataset, binarized, overrides = MODELS[name]
    images = runs.load_data(dataset, profile=profile, binarized=binarized).train
    config = runs.model_config(family, profile=profile, image_shape=images.shape[1:], **overrides)
    model = runs.FAMILIES[family].model(config, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    step = make_train_step(graphdef, rest, functools.partial(objectives.vae_loss, beta=1.0), optimizer)
    x = jnp.asarray(images[: profile.family(family).batch_size], jnp.float32)
    state = [params, optimizer.init(params), jnp.asarray(-1), None]
    t0 = time.perf_counter()
    state[0], state[1], state[3], state[2] = step(state[0], state[1], x, jax.random.key(0), 0, state[2])
    jax.block_until_ready(state[0])
    return step, x, state, time.perf_counter() - t0


def time_steps(step, x, state, steps: int, offset: int) -> float:
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        params, opt_state, metrics, bad = step(state[0], state[1], x, jax.random.key(offset + i), offset + i, state[2])
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
        state[:] = [params, opt_state, bad, metrics]
    return float(np.median(times))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    profile = profiles.get_profile("cpu")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    for name in args.models:
        peers = {"per array": default_optimizer(3e-4), "flat": optax.flatten(optax.adam(3e-4))}
        built = {k: build(name, opt, profile) for k, opt in peers.items()}
        medians = {k: [] for k in peers}
        for r in range(args.rounds):
            for k, (step, x, state, _) in built.items():
                medians[k].append(time_steps(step, x, state, args.steps, 1 + r * args.steps))
        ms = {k: 1000 * float(np.median(v)) for k, v in medians.items()}
        losses = {k: float(b[2][3]["loss"]) for k, b in built.items()}
        print(f"{name}: per array {ms['per array']:.1f} ms/step (compile {built['per array'][3]:.1f} s), "
              f"flat {ms['flat']:.1f} ms/step (compile {built['flat'][3]:.1f} s); "
              f"flat / per array = {ms['flat'] / ms['per array']:.2f}x; "
              f"loss after {args.rounds * args.steps + 1} steps {losses['per array']:.4f} vs {losses['flat']:.4f}")
        np.testing.assert_allclose(losses["per array"], losses["flat"], rtol=1e-3, err_msg=name)


if __name__ == "__main__":
    main()
