"""Benchmark of fit's default optimizer: Adam per parameter array vs Adam on one flat vector.

    python bench/optimizer.py                  # the cpu profile's MLP VAEs and transformer VAE
    python bench/optimizer.py --rounds 5 --steps 30

``vae_book.train.default_optimizer`` runs Adam on each parameter array. ``optax.flatten(optax.adam)``
does the same arithmetic on one vector of all parameters, which needs every gradient copied into that
vector at each step. For each model (the ``cpu`` profile's sizes, one fixed batch) this builds the
jitted step of :func:`vae_book.train.make_train_step` with both optimizers (the flat one without the
default's flush of subnormal moments, which can only make it faster), then times them in one process,
interleaved round by round so that a busy machine slows both alike: the median over rounds of the
median step time over ``--steps`` steps, each ended by ``block_until_ready``. It prints the ratio
flat / per array (> 1: per array is faster) and the loss after the timed steps of each, which must
agree.
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


class Peer:
    """One model's jitted training step with one optimizer, and the state it carries from step to step."""

    def __init__(self, name: str, optimizer: optax.GradientTransformation, profile: profiles.Profile):
        family, dataset, binarized, overrides = MODELS[name]
        images = runs.load_data(dataset, profile=profile, binarized=binarized).train
        config = runs.model_config(family, profile=profile, image_shape=images.shape[1:], **overrides)
        graphdef, self.params, rest = nnx.split(runs.FAMILIES[family].model(config, rngs=nnx.Rngs(0)), nnx.Param, ...)
        self.step = make_train_step(graphdef, rest, functools.partial(objectives.vae_loss, beta=1.0), optimizer)
        self.x = jnp.asarray(images[: profile.family(family).batch_size], jnp.float32)
        self.opt_state, self.bad, self.metrics = optimizer.init(self.params), jnp.asarray(-1), None
        self.compile_seconds = self.run(0)  # the first call traces and compiles

    def run(self, i: int) -> float:
        """Step ``i`` (its own sampling key), ended by ``block_until_ready``; its wall seconds."""
        t0 = time.perf_counter()
        self.params, self.opt_state, self.metrics, self.bad = self.step(
            self.params, self.opt_state, self.x, jax.random.key(i), i, self.bad)
        jax.block_until_ready(self.params)
        return time.perf_counter() - t0


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
        built = {k: Peer(name, opt, profile) for k, opt in peers.items()}
        medians = {k: [] for k in peers}
        for r in range(args.rounds):
            for k, peer in built.items():
                first = 1 + r * args.steps
                medians[k].append(float(np.median([peer.run(i) for i in range(first, first + args.steps)])))
        ms = {k: 1000 * float(np.median(v)) for k, v in medians.items()}
        losses = {k: float(peer.metrics["loss"]) for k, peer in built.items()}
        print(f"{name}: per array {ms['per array']:.1f} ms/step (compile {built['per array'].compile_seconds:.1f} s), "
              f"flat {ms['flat']:.1f} ms/step (compile {built['flat'].compile_seconds:.1f} s); "
              f"flat / per array = {ms['flat'] / ms['per array']:.2f}x; "
              f"loss after {args.rounds * args.steps + 1} steps {losses['per array']:.4f} vs {losses['flat']:.4f}")
        np.testing.assert_allclose(losses["per array"], losses["flat"], rtol=1e-3, err_msg=name)


if __name__ == "__main__":
    main()
