"""Benchmark of the transformer VAE's training step: vae_book vs a straightforward JAX reference vs PyTorch.

    python bench/train_step.py            # both sizes, all peers (make bench)
    python bench/train_step.py --sizes cpu --steps 30
    python bench/train_step.py --depth-sweep   # also: compile time vs depth, scan vs unrolled

For each size (the ``cpu`` profile's transformer and the full model of the book) it measures, in one
process and interleaved round by round so that a busy machine slows every peer alike:

* steady-state step time (median and inter-quartile range over ``--steps`` steps after warm-up, each
  ended by ``block_until_ready``), images per second, and first-call (trace + compile) time, in wall
  seconds and in CPU seconds of this process (the CPU seconds barely depend on other jobs);
* FLOPs per step from XLA's cost analysis of the compiled step (``lower(...).compile().cost_analysis()``),
  the achieved FLOP/s and its fraction of this machine's float32 matmul peak, measured below by a
  large ``jnp`` matmul in the same run;
* the same for the peers of identical architecture and parameter count: ``bench/reference.py``
  (Python loop over blocks, einsum attention, separate q/k/v, float32, ``nnx.jit``, no donation)
  and ``bench/torch_reference.py`` (PyTorch eager, ``torch.set_num_threads(os.cpu_count())``),
  skipped with a note if torch is not installed;
* the input pipeline: ``fit``'s loop fed by ``vae_book.data.batches`` through its background
  prefetch, vs the same loop fed one pre-made device batch.

The ratios vae_book / reference and vae_book / PyTorch come last. Load average is printed with
every measurement: the numbers are only comparable within one run.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import vae_book.models._blocks as B  # noqa: E402
import vae_book.models.transformer as T  # noqa: E402
from reference import ReferenceVAE, make_reference_step  # noqa: E402
from vae_book import objectives  # noqa: E402
from vae_book.train import HOST_MALLOC_ENV, default_optimizer, make_train_step, prefetch  # noqa: E402

try:
    import torch
except ImportError:  # the PyTorch column is optional
    torch = None

SIZES = {
    # the `cpu` profile's transformer (vae_book/profiles.py), batch 64
    "cpu": None,
    # the book's full model: 64x64x3, patch 8, hidden 256, depth 4, 4 heads, z_dim 64, batch 64
    "full": dict(image_side=64, patch=8, hidden=256, depth=4, heads=4, z_dim=64, batch=64),
}
LEARNING_RATE = 3e-4


def load() -> str:
    return "load " + " ".join(open("/proc/loadavg").read().split()[:3])


def cpu_info() -> str:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(extras)}"


def size_config(name: str) -> dict:
    if SIZES[name] is None:
        from vae_book.profiles import PROFILES

        cpu = PROFILES["cpu"]
        t = cpu.transformer
        return dict(image_side=cpu.image_side, patch=t.patch, hidden=t.hidden, depth=t.depth, heads=t.heads,
                    z_dim=t.z_dim, batch=t.batch_size)
    return dict(SIZES[name])


def transformer_config(t: dict) -> T.TransformerConfig:
    side = t["image_side"]
    return T.TransformerConfig(image_shape=(side, side, 3), patch=t["patch"], hidden=t["hidden"],
                               depth=t["depth"], heads=t["heads"], z_dim=t["z_dim"])


def first(cost):
    return cost[0] if isinstance(cost, (list, tuple)) else cost


# --------------------------------------------------------------------------- matmul peak


def matmul_peak(n: int = 2048, reps: int = 10) -> dict:
    """float32 (and, for information, bfloat16) GFLOP/s of one large jnp matmul; best and median of ``reps``."""
    out = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), dtype)
        f = jax.jit(jnp.matmul)
        f(a, b).block_until_ready()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            f(a, b).block_until_ready()
            ts.append(time.perf_counter() - t)
        out[jnp.dtype(dtype).name] = (2 * n**3 / min(ts) / 1e9, 2 * n**3 / float(np.median(ts)) / 1e9)
    if torch is not None:
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            a @ b
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                a @ b
                ts.append(time.perf_counter() - t)
            out["torch " + str(dtype).replace("torch.", "")] = (2 * n**3 / min(ts) / 1e9, 2 * n**3 / float(np.median(ts)) / 1e9)
    return out


# --------------------------------------------------------------------------- peers


class Peer:
    """One way of running the training step: ``run()`` does one step and waits for it."""

    name: str
    first_call: tuple = (float("nan"), float("nan"))  # (wall, cpu) seconds of trace + compile
    flops: float = float("nan")  # XLA's count for this program, per step
    note: str = ""

    def run(self):  # pragma: no cover - interface
        raise NotImplementedError


def _timed(fn):
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t, time.process_time() - c)


def _unrolled_scan_blocks():
    """``scan_blocks`` with the scan unrolled: the same arithmetic, for XLA's FLOP count only
    (XLA's cost analysis counts a while loop's body once, not ``depth`` times)."""

    @functools.partial(jax.jit, static_argnums=(0, 3))
    def scan_blocks(graphdef, state, x, num_outputs=None):
        def step(h, layer_state):
            return nnx.merge(graphdef, layer_state)(h), None

        step = jax.checkpoint(step, policy=B.REMAT_POLICY, prevent_cse=False)
        if num_outputs is None:
            return jax.lax.scan(step, x, state, unroll=True)[0]
        depth = jax.tree.leaves(state)[0].shape[0]
        if depth > 1:
            x = jax.lax.scan(step, x, jax.tree.map(lambda a: a[:-1], state), unroll=True)[0]
        return nnx.merge(graphdef, jax.tree.map(lambda a: a[-1], state))(x, num_outputs)

    return scan_blocks


class VaeBookPeer(Peer):
    """Exactly the step ``vae_book.train.fit`` runs: ``make_train_step`` (split params, donation, NaN guard)
    with fit's default optimizer (Adam per parameter array)."""

    name = "vae_book"

    def __init__(self, config, x, seed=0):
        model = T.TransformerVAE(config, rngs=nnx.Rngs(seed))
        self.num_params = model.num_params()
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        optimizer = default_optimizer(LEARNING_RATE)
        opt_state = optimizer.init(params)
        step = make_train_step(graphdef, rest, objectives.vae_loss, optimizer)
        key = jax.random.key(seed)
        args = (params, opt_state, x, key, 1, jnp.asarray(-1))
        lowered, (tw, tc) = _timed(lambda: step.lower(*args))
        self.compiled, (cw, cc) = _timed(lambda: lowered.compile())
        self.first_call = (tw + cw, tc + cc)
        self.compile_only = (cw, cc)
        # XLA's count, with the scan unrolled so that every layer is counted
        original = B.scan_blocks
        B.scan_blocks = _unrolled_scan_blocks()
        try:
            unrolled = make_train_step(graphdef, rest, objectives.vae_loss, optimizer)
            self.flops = first(unrolled.lower(*args).compile().cost_analysis())["flops"]
        finally:
            B.scan_blocks = original
        self.state = [params, opt_state, jnp.asarray(-1)]
        self.x, self.key, self.i = x, key, 0

    def run(self):
        self.i += 1
        p, o, bad = self.state
        p, o, metrics, bad = self.compiled(p, o, self.x, jax.random.fold_in(self.key, self.i), self.i, bad)
        self.state = [p, o, bad]
        jax.block_until_ready((p, o, metrics))


class ReferencePeer(Peer):
    """``bench/reference.py``: the straightforward JAX / Flax NNX way."""

    name = "reference"

    def __init__(self, config, x, seed=0):
        self.model = ReferenceVAE(config, rngs=nnx.Rngs(seed))
        self.num_params = self.model.num_params()
        self.optimizer, self.step = make_reference_step(self.model, LEARNING_RATE)
        self.x, self.key, self.i = x, jax.random.key(seed), 0
        # first call = trace + compile + one step, as a user sees it
        _, self.first_call = _timed(lambda: self.run())
        # XLA's count for the same program (a separate lowering; not part of the timing)
        lowered = self.step.lower(self.model, self.optimizer, x, self.key)
        self.flops = first(lowered.compile().cost_analysis())["flops"]

    def run(self):
        self.i += 1
        self.step(self.model, self.optimizer, self.x, jax.random.fold_in(self.key, self.i)).block_until_ready()


class TorchPeer(Peer):
    """``bench/torch_reference.py``: PyTorch eager, float32, all cores."""

    name = "pytorch"

    def __init__(self, config, x, seed=0):
        from torch_reference import TorchVAE

        torch.manual_seed(seed)
        self.model = TorchVAE(config)
        self.num_params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.x = torch.from_numpy(np.array(x))
        self.z_dim = config.z_dim
        _, self.first_call = _timed(lambda: self.run())
        self.note = "eager, no compile"

    def run(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model.loss(self.x, torch.randn(self.x.shape[0], self.z_dim))
        loss.backward()
        self.optimizer.step()


def interleaved(peers, steps: int, warmup: int, per_round: int = 2):
    """Run every peer ``per_round`` steps in turn until each has ``steps`` timed steps.

    Returns ``{name: (wall_times, cpu_times)}``.
    """
    for p in peers:
        for _ in range(warmup):
            p.run()
    times = {p.name: ([], []) for p in peers}
    while min(len(w) for w, _ in times.values()) < steps:
        for p in peers:
            for _ in range(per_round):
                _, (w, c) = _timed(p.run)
                times[p.name][0].append(w)
                times[p.name][1].append(c)
    return times


# --------------------------------------------------------------------------- input pipeline


def input_pipeline(config, batch: int, steps: int, block: int = 5, seed: int = 0) -> dict:
    """``fit``'s loop fed by ``batches`` + background prefetch vs by one pre-made device batch.

    Both arms run the same loop (fold the key, call the jitted step, keep the metrics); blocks of
    ``block`` steps alternate between them. Returns median step times and the overhead.
    """
    from vae_book.data import batches, shapes

    side = config.image_shape[0]
    train = shapes(num_train=max(8 * batch, 2048), num_test=16, size=side, seed=seed).train
    model = T.TransformerVAE(config, rngs=nnx.Rngs(seed))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer = default_optimizer(LEARNING_RATE)
    opt_state = optimizer.init(params)
    train_step = make_train_step(graphdef, rest, objectives.vae_loss, optimizer)
    key = jax.random.key(seed)
    fixed = jax.device_put(train[:batch])
    stream = prefetch(batches(train, batch, seed=seed))
    state = [params, opt_state, jnp.asarray(-1)]
    i = 0

    def step(x):
        nonlocal i
        i += 1
        p, o, bad = state
        p, o, metrics, bad = train_step(p, o, x, jax.random.fold_in(key, i), i, bad)
        state[:] = [p, o, bad]
        return metrics

    step(fixed)  # compile
    step(next(stream))
    jax.block_until_ready(state)
    times = {"pipeline": [], "fixed": []}
    while len(times["pipeline"]) < steps:
        for arm in ("pipeline", "fixed"):
            for _ in range(block):
                t = time.perf_counter()
                metrics = step(next(stream) if arm == "pipeline" else fixed)
                jax.block_until_ready((state, metrics))
                times[arm].append(time.perf_counter() - t)
    stream.close()
    pipe, fix = float(np.median(times["pipeline"])), float(np.median(times["fixed"]))
    return {"pipeline": pipe, "fixed": fix, "overhead": (pipe - fix) / fix}


# --------------------------------------------------------------------------- depth sweep


def depth_sweep(depths=(2, 4, 8)) -> list:
    """Compile (CPU seconds) of the vae_book step at full width for several depths: scan vs unrolled."""
    rows = []
    base = size_config("full")
    for depth in depths:
        config = transformer_config({**base, "depth": depth})
        x = jnp.zeros((base["batch"], *config.image_shape), jnp.float32)
        row = {"depth": depth}
        for label in ("scan", "unrolled"):
            original = B.scan_blocks
            if label == "unrolled":
                B.scan_blocks = _unrolled_scan_blocks()
            try:
                model = T.TransformerVAE(config, rngs=nnx.Rngs(0))
                graphdef, params, rest = nnx.split(model, nnx.Param, ...)
                optimizer = default_optimizer(LEARNING_RATE)
                step = make_train_step(graphdef, rest, objectives.vae_loss, optimizer)
                args = (params, optimizer.init(params), x, jax.random.key(0), 1, jnp.asarray(-1))
                lowered, (tw, tc) = _timed(lambda: step.lower(*args))
                _, (cw, cc) = _timed(lambda: lowered.compile())
            finally:
                B.scan_blocks = original
            row[label] = (tw + cw, tc + cc)
        rows.append(row)
        print(f"  depth {depth}: scan {row['scan'][0]:5.1f} s wall / {row['scan'][1]:5.1f} s CPU   "
              f"unrolled {row['unrolled'][0]:5.1f} s wall / {row['unrolled'][1]:5.1f} s CPU   ({load()})", flush=True)
    return rows


# --------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="cpu,full", help="comma-separated: cpu, full")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per peer (>= 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per peer after the first call")
    parser.add_argument("--pipeline-steps", type=int, default=30, help="timed steps per arm of the input-pipeline test")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--depth-sweep", action="store_true", help="also compile the full model at depth 2, 4, 8")
    args = parser.parse_args(argv)
    use_torch = torch is not None and not args.no_torch

    print("== The VAE Book: transformer VAE training-step benchmark")
    print(f"machine: {cpu_info()}; JAX backend {jax.default_backend()}")
    malloc = {k: os.environ[k] for k in HOST_MALLOC_ENV if k in os.environ}
    print(f"glibc malloc settings of this process (every peer): {malloc or 'the defaults'}"
          + ("" if malloc == HOST_MALLOC_ENV else "; the book's kernels run with vae_book.train.HOST_MALLOC_ENV"))
    import flax

    versions = f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}"
    print(f"versions: {versions}" + (f", torch {torch.__version__}" if torch is not None else ""))
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    if torch is None:
        print("NOTE: torch is not installed, so the PyTorch column is skipped "
              "(`.venv/bin/pip install torch==2.13.0`, or `make bench`, installs it).")
    elif use_torch:
        torch.set_num_threads(os.cpu_count())
        print(f"torch threads: {torch.get_num_threads()}")

    print(f"\n-- matmul peak (2048 x 2048, best / median of 10)  [{load()}]")
    peak = matmul_peak()
    for k, (best, med) in peak.items():
        print(f"  {k:>16}: {best:7.1f} / {med:7.1f} GFLOP/s")
    peak_f32 = peak["float32"][0]

    results = {}
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        t = size_config(size)
        config = transformer_config(t)
        batch = t["batch"]
        x = jax.random.uniform(jax.random.key(42), (batch, *config.image_shape), jnp.float32)
        print(f"\n-- size '{size}': {t}")
        peers = []
        for cls in (VaeBookPeer, ReferencePeer) + ((TorchPeer,) if use_torch else ()):
            p = cls(config, x)
            peers.append(p)
            print(f"  built {p.name:<10} params {p.num_params:,}  first call {p.first_call[0]:6.1f} s wall "
                  f"/ {p.first_call[1]:6.1f} s CPU  [{load()}]", flush=True)
        assert len({p.num_params for p in peers}) == 1, "peers must have the same parameter count"
        times = interleaved(peers, args.steps, args.warmup)
        model_flops = next(p.flops for p in peers if p.name == "reference")
        print(f"  timed {args.steps} steps per peer, interleaved  [{load()}]")
        header = (f"  {'peer':<10} {'step med':>9} {'IQR':>7} {'min':>7} {'CPU s/step':>10} {'img/s':>7} "
                  f"{'first call':>16} {'XLA GFLOP':>9} {'GFLOP/s':>8} {'% peak':>6}")
        print(header)
        rows = {}
        for p in peers:
            wall, cpu = np.array(times[p.name][0]), np.array(times[p.name][1])
            med = float(np.median(wall))
            iqr = float(np.subtract(*np.percentile(wall, [75, 25])))
            # achieved rate of the model's arithmetic (the reference program's XLA count: same
            # architecture; vae_book skips work the reference does, so its own count is lower)
            rate = model_flops / med / 1e9
            own = p.flops / 1e9 if np.isfinite(p.flops) else float("nan")
            rows[p.name] = dict(med=med, iqr=iqr, cpu=float(np.median(cpu)), first=p.first_call)
            print(f"  {p.name:<10} {med:9.4f} {iqr:7.4f} {wall.min():7.4f} {np.median(cpu):10.4f} {batch / med:7.1f} "
                  f"{p.first_call[0]:7.1f}s/{p.first_call[1]:5.1f}sCPU {own:9.2f} {rate:8.1f} {100 * rate / peak_f32:5.1f}%")
        vb = next(p for p in peers if p.name == "vae_book")
        print(f"  vae_book compile alone: {vb.compile_only[0]:.1f} s wall / {vb.compile_only[1]:.1f} s CPU; "
              f"GFLOP/s use the reference's XLA count ({model_flops / 1e9:.2f} GFLOP/step) for every peer")
        print(f"  input pipeline (fit's loop: batches + prefetch vs one device batch)  [{load()}]", flush=True)
        pipe = input_pipeline(config, batch, args.pipeline_steps)
        print(f"    pipeline {pipe['pipeline']:.4f} s/step, fixed batch {pipe['fixed']:.4f} s/step: "
              f"overhead {100 * pipe['overhead']:+.1f}% of the step  [{load()}]")
        results[size] = dict(rows=rows, pipeline=pipe)

    if args.depth_sweep:
        print(f"\n-- compile time vs depth (full width; trace + compile of the update step)  [{load()}]")
        depth_sweep()

    print(f"\n== Ratios (peer step time / vae_book step time, medians; > 1 means vae_book is faster)  [{load()}]")
    print(f"  {'size':<6} {'vs reference':>13} {'vs PyTorch':>11}   {'(CPU-time ratios)':>18}   {'pipeline overhead':>17}")
    for size, r in results.items():
        rows = r["rows"]
        vb = rows["vae_book"]
        ref = rows["reference"]["med"] / vb["med"]
        ref_c = rows["reference"]["cpu"] / vb["cpu"]
        if "pytorch" in rows:
            pt, pt_c = rows["pytorch"]["med"] / vb["med"], rows["pytorch"]["cpu"] / vb["cpu"]
            pt_s, pt_cs = f"{pt:11.2f}x", f"{pt_c:.2f}x"
        else:
            pt_s, pt_cs = f"{'skipped':>12}", "-"
        print(f"  {size:<6} {ref:12.2f}x {pt_s}   {ref_c:8.2f}x / {pt_cs:<7}   {100 * r['pipeline']['overhead']:+16.1f}%")


if __name__ == "__main__":
    main()
