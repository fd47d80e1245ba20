"""The GPU check: does the book's GPU path work on this machine, and how fast is it?

    python bench/gpu_check.py                       # or: make gpu-check
    python bench/gpu_check.py --wheels /path/to/wheels   # offline: missing packages from a folder
    python bench/gpu_check.py --skip-chapter --steps 20

With no GPU it says so and exits 0. With one, in a few minutes, it prints:

1. the device, and the versions of jax, jaxlib and the CUDA plugin;
2. the attention implementation the transformer chooses for float32 and for bfloat16;
3. for the full-size transformer VAE (64x64x3, patch 8, hidden 256, depth 4, 4 heads, 64 latents,
   batch 64), in float32 and bfloat16: the step time (median of ``--steps`` steps after warm-up),
   images per second, the achieved TFLOP/s (XLA's cost analysis of the compiled step, with the block
   scan unrolled so every layer is counted, as ``bench/train_step.py`` does) and the peak GPU memory;
4. the held-out ELBO (nats per image) of the gpu profile's transformer after ``--budget`` steps;
5. then it executes chapter 7 in the gpu profile with every step count capped at ``--chapter-steps``
   (``VAE_BOOK_MAX_STEPS``) and fails if any cell fails.

It needs no package index: it works with whichever jax (at least the floor in ``pyproject.toml``) is
installed, and ``--wheels DIR`` installs the project's missing pure-Python packages from a folder
of wheels (``pip install --no-index --find-links DIR``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: import name -> distribution, for the packages the check needs beyond jax
NEEDED = {"flax": "flax", "optax": "optax", "numpy": "numpy", "scipy": "scipy", "pandas": "pandas",
          "matplotlib": "matplotlib", "tqdm": "tqdm", "pooch": "pooch", "requests": "requests",
          "PIL": "pillow", "msgpack": "msgpack", "filelock": "filelock"}
#: what executing a chapter needs in addition
NEEDED_FOR_CHAPTER = {"jupytext": "jupytext", "nbclient": "nbclient", "nbformat": "nbformat",
                      "ipykernel": "ipykernel"}


def _missing(modules: dict[str, str]) -> list[str]:
    out = []
    for module, dist in modules.items():
        try:
            importlib.import_module(module)
        except ImportError:
            out.append(dist)
    return out


def ensure_packages(modules: dict[str, str], wheels: str | None) -> None:
    """Install the distributions of ``modules`` that do not import, from ``wheels`` only (no index)."""
    missing = _missing(modules)
    if not missing:
        return
    if wheels is None:
        raise SystemExit(f"gpu_check: missing packages {missing}; install them, or pass --wheels DIR with their "
                         f"wheels (pip install --no-index --find-links DIR).")
    print(f"installing {missing} from {wheels} (no index)", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", wheels,
                    *missing], check=True)
    importlib.invalidate_caches()
    still = _missing(modules)
    if still:
        raise SystemExit(f"gpu_check: {still} still missing after installing from {wheels}.")


def jax_floor() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d.split(">=")[1] for d in deps if d.startswith("jax>="))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _vtuple(v: str) -> tuple:
    return tuple(int(p) for p in v.split("+")[0].split(".")[:3] if p.isdigit())


def step_numbers(dtype: str, steps: int, warmup: int = 5) -> dict:
    """Time the full-size transformer's training step (fit's own step) in ``dtype``."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    sys.path.insert(0, str(HERE))
    from train_step import _unrolled_scan_blocks, first  # the benchmark's FLOP counting

    import vae_book.models._blocks as B
    from vae_book import objectives
    from vae_book.models.transformer import TransformerConfig, TransformerVAE
    from vae_book.train import default_optimizer, make_train_step

    config = TransformerConfig(image_shape=(64, 64, 3), patch=8, hidden=256, depth=4, heads=4, z_dim=64,
                               likelihood="gaussian", min_log_std=float(np.log(0.1)), dtype=dtype)
    model = TransformerVAE(config, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer = default_optimizer(3e-4)
    opt_state = optimizer.init(params)
    step = make_train_step(graphdef, rest, objectives.vae_loss, optimizer)
    x = jax.random.uniform(jax.random.key(1), (64, 64, 64, 3), jnp.float32)
    key = jax.random.key(0)
    bad = jnp.asarray(-1)
    t0 = time.perf_counter()
    compiled = step.lower(params, opt_state, x, key, 1, bad).compile()
    compile_s = time.perf_counter() - t0
    original = B.scan_blocks
    B.scan_blocks = _unrolled_scan_blocks()
    try:
        unrolled = make_train_step(graphdef, rest, objectives.vae_loss, optimizer)
        flops = first(unrolled.lower(params, opt_state, x, key, 1, bad).compile().cost_analysis())["flops"]
    finally:
        B.scan_blocks = original
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        params, opt_state, metrics, bad = compiled(params, opt_state, x, jax.random.fold_in(key, i), i + 1, bad)
        jax.block_until_ready((params, opt_state, metrics))
        if i >= warmup:
            times.append(time.perf_counter() - t)
    med = float(np.median(times))
    stats = jax.devices()[0].memory_stats() or {}
    return {"dtype": dtype, "step_ms": 1e3 * med, "images_per_s": 64 / med, "tflops": flops / med / 1e12,
            "gflop_per_step": flops / 1e9, "compile_s": compile_s, "loss": float(metrics["loss"]),
            "peak_gib": stats.get("peak_bytes_in_use", float("nan")) / 2**30}


def attention_choice(dtype: str):
    from vae_book.models import transformer

    choose = getattr(transformer, "attention_implementation", None)
    if choose is None:
        return "xla (jax.nn.dot_product_attention's default; this version has no choice function)"
    return choose(dtype)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", default=None, help="folder of wheels for missing packages (no index is used)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per dtype (after 5 warm-up steps)")
    ap.add_argument("--budget", type=int, default=300, help="training steps before the held-out ELBO")
    ap.add_argument("--chapter-steps", type=int, default=200, help="step cap for chapter 7 (VAE_BOOK_MAX_STEPS)")
    ap.add_argument("--skip-chapter", action="store_true", help="do not execute chapter 7")
    args = ap.parse_args(argv)

    try:
        import jax
    except ImportError:
        print("gpu_check: jax is not installed; nothing to check (install jax with a CUDA extra, see README).")
        return 0
    backend = jax.default_backend()
    if backend != "gpu":
        print(f"gpu_check: no GPU — JAX's backend is {backend!r} ({jax.devices()}); nothing to check. "
              f"On a machine with an NVIDIA GPU and jax[cuda12] or jax[cuda13] installed, this prints the device, "
              f"the step time in float32 and bfloat16, the peak memory and the held-out ELBO, and runs chapter 7.")
        return 0
    floor = jax_floor()
    if _vtuple(jax.__version__) < _vtuple(floor):
        print(f"gpu_check: jax {jax.__version__} is older than the floor {floor} in pyproject.toml.")
        return 1
    ensure_packages(NEEDED, args.wheels)
    if not args.skip_chapter:
        ensure_packages(NEEDED_FOR_CHAPTER, args.wheels)
    sys.path.insert(0, str(ROOT))
    t_start = time.perf_counter()

    dev = jax.devices()[0]
    plugins = {d: _version(d) for d in ("jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin",
                                          "jax-cuda13-pjrt")}
    print(f"device: {dev.device_kind} ({len(jax.devices())} visible: {jax.devices()})")
    print(f"jax {jax.__version__}, jaxlib {_version('jaxlib')}, "
          + ", ".join(f"{k} {v}" for k, v in plugins.items() if v != "absent"))
    for dtype in ("float32", "bfloat16"):
        print(f"attention ({dtype}): {attention_choice(dtype)}")
    print("\nfull-size transformer VAE step (64x64x3, patch 8, hidden 256, depth 4, 4 heads, z 64, batch 64):")
    for dtype in ("float32", "bfloat16"):
        r = step_numbers(dtype, args.steps)
        print(f"  {dtype:>8}: {r['step_ms']:7.2f} ms/step  {r['images_per_s']:8.0f} images/s  "
              f"{r['tflops']:6.2f} TFLOP/s ({r['gflop_per_step']:.1f} GFLOP/step)  compile {r['compile_s']:.1f} s  "
              f"peak memory {r['peak_gib']:.2f} GiB  loss {r['loss']:.1f}")

    from vae_book import runs
    from vae_book.profiles import get_profile
    from vae_book.train import mean_metrics

    run = runs.train("transformer", profile=get_profile("gpu"), steps=args.budget, cache=False, progress=False)
    heldout = mean_metrics(run.model, run.test_images[:1000], jax.random.key(0))["elbo"]
    print(f"\nheld-out ELBO after {args.budget} steps of the gpu profile's transformer: {float(heldout):.1f} nats per "
          f"image ({run.history.seconds:.0f} s of training)")

    if not args.skip_chapter:
        env = dict(os.environ, VAE_BOOK_PROFILE="gpu", VAE_BOOK_MAX_STEPS=str(args.chapter_steps))
        print(f"\nexecuting chapter 7 in the gpu profile, steps capped at {args.chapter_steps} ...", flush=True)
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_chapter.py"),
                               str(ROOT / "chapters" / "07_transformer_vae.md")], env=env)
        if proc.returncode != 0:
            print("gpu_check: chapter 7 FAILED in the gpu profile")
            return 1
        print("chapter 7: every cell ran")
    print(f"\ngpu_check: done in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
