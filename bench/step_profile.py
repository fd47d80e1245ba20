"""Where the transformer VAE's training step spends its time: the top XLA ops, from a profiler trace.

    python bench/step_profile.py                 # the cpu profile's transformer and the full model
    python bench/step_profile.py --sizes cpu --steps 20 --top 25

For each size (the sizes of ``bench/train_step.py``) it compiles exactly the step ``vae_book.train.fit``
runs (``bench/train_step.py``'s ``VaeBookPeer``: ``make_train_step`` with fit's default optimizer), runs ``--steps`` steps under
``jax.profiler.trace`` and reads the trace's thunk events: XLA's CPU runtime records one event per
executed HLO instruction (a fusion, a dot, a copy, ...), named by the instruction. Each instruction is
looked up in the compiled module's HLO text to give

* its kind: ``matmul`` (a dot, or a fusion containing one: XLA's own or a YNNPACK/oneDNN fusion),
  ``conv``, ``reduce`` (a fusion rooted in a reduction), ``layout`` (copy, transpose), ``elementwise``
  (any other fusion), or its opcode;
* the JAX operation it came from (the ``op_name`` of its metadata, shortened), and its output shape.

Printed per size: the wall time per step, the total thunk time per step (thunks of one step can run at
once on several threads, so it may exceed the wall time), the time per kind, and the ``--top``
instructions by time, with their share of the thunk time. A ``while`` (the scan over the transformer
blocks) is an instruction whose body's instructions are timed on their own: it is left out of the sums.
Nothing is asserted about time: the machine is shared, and only the shares are meant to be compared.

When PyTorch is installed (``make bench`` installs it), the same model's step in PyTorch eager
(``bench/torch_reference.py``: loss, backward, Adam) is profiled too with ``torch.profiler``, and its
top operators by self CPU time are printed: the peer's own answer to "where does the time go".
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402

from train_step import LEARNING_RATE, VaeBookPeer, load, size_config, transformer_config  # noqa: E402

#: the instructions whose own event spans other instructions' events (timed on their own)
CONTAINERS = {"while", "conditional", "call"}

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s+([a-z][\w\-]*)\(")
_COMP = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")


def parse_hlo(text: str) -> tuple[dict, dict]:
    """Instructions (name -> opcode, shape, called computation, op_name) and computations (name -> opcodes)."""
    instructions, computations, current = {}, collections.defaultdict(set), None
    for line in text.splitlines():
        if line.startswith("}"):
            current = None
            continue
        m = _COMP.match(line)
        if m and not line.startswith(" "):
            current = m.group(1)
            continue
        m = _INSTR.match(line)
        if not m:
            continue
        name, shape, opcode = m.groups()
        calls = re.search(r"(?:calls|body)=%?([\w.\-]+)", line)
        op_name = re.search(r'op_name="([^"]*)"', line)
        instructions[name] = dict(opcode=opcode, shape=shape.split("{")[0], calls=calls.group(1) if calls else None,
                                  op_name=op_name.group(1) if op_name else "")
        if current:
            computations[current].add(opcode)
    return instructions, computations


def kind(info: dict, computations: dict) -> str:
    """``matmul``, ``conv``, ``reduce``, ``layout``, ``elementwise`` or the opcode of one instruction."""
    opcode = info["opcode"]
    ops = computations.get(info["calls"], set()) if info["calls"] else set()
    if opcode == "dot" or "dot" in ops:
        return "matmul"
    if opcode == "convolution" or "convolution" in ops:
        return "conv"
    if opcode == "fusion":
        if ops & {"reduce", "reduce-window"}:
            return "reduce"
        if ops <= {"parameter", "copy", "transpose", "bitcast", "reshape", "broadcast"}:
            return "layout"
        return "elementwise"
    if opcode in ("copy", "transpose"):
        return "layout"
    return opcode


def short(op_name: str, width: int = 70) -> str:
    """The interesting tail of a JAX op_name (``jit(step)/jvp(...)/encoder/.../dot_general``)."""
    parts = [p for p in op_name.split("/") if p and not p.startswith("jit(")]
    text = "/".join(parts)
    return text if len(text) <= width else "…" + text[-(width - 1):]


def op_times(compiled, run, steps: int) -> tuple[collections.Counter, int, float]:
    """Run ``run()`` (one call of ``compiled``, waited for) ``steps`` times under the profiler.

    Returns ``(per_op, unknown, wall)``: milliseconds per call of each HLO instruction of ``compiled``'s
    module (``while``/``conditional``/``call`` left out: their bodies are timed on their own), the number
    of events of instructions not found in its HLO text, and the wall seconds per call.
    """
    hlo = compiled.as_text()
    module = re.search(r"HloModule\s+([\w.\-]+)", hlo).group(1)
    instructions, _ = parse_hlo(hlo)
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(steps):
                run()
            wall = (time.perf_counter() - start) / steps
        trace = next(Path(folder).rglob("perfetto_trace.json.gz"))
        events = json.load(gzip.open(trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    per_op, unknown = collections.Counter(), 0
    for e in events:
        args = e.get("args") or {}
        if e.get("ph") != "X" or args.get("hlo_module") != module or "hlo_op" not in args:
            continue
        info = instructions.get(args["hlo_op"])
        if info is None:
            unknown += 1
        elif info["opcode"] not in CONTAINERS:
            per_op[args["hlo_op"]] += e.get("dur", 0.0) / 1e3 / steps  # trace durations are in microseconds
    return per_op, unknown, wall


def profile_size(name: str, steps: int, top: int) -> None:
    t = size_config(name)
    side = t["image_side"]
    x = jax.random.uniform(jax.random.key(1), (t["batch"], side, side, 3))
    peer = VaeBookPeer(transformer_config(t), x)  # the benchmark's peer: exactly fit's step
    instructions, computations = parse_hlo(peer.compiled.as_text())
    for _ in range(3):  # warm-up
        peer.run()
    per_op, unknown, wall = op_times(peer.compiled, peer.run, steps)
    total = sum(per_op.values())
    by_kind = collections.Counter()
    for op, ms in per_op.items():
        by_kind[kind(instructions[op], computations)] += ms
    print(f"\n=== {name}: {json.dumps(t)}, {peer.num_params:,} parameters; {load()}")
    print(f"wall {wall * 1e3:.1f} ms per step; thunks {total:.1f} ms per step in {len(per_op)} instructions"
          + (f" ({unknown} events of unknown instructions)" if unknown else ""))
    print("by kind: " + ", ".join(f"{k} {v:.1f} ms ({v / total:.0%})" for k, v in by_kind.most_common()))
    print(f"{'ms/step':>8} {'share':>6}  {'kind':<11} {'instruction':<22} {'shape':<24} from")
    for op, ms in per_op.most_common(top):
        info = instructions[op]
        print(f"{ms:8.2f} {ms / total:6.1%}  {kind(info, computations):<11} {op[:22]:<22} "
              f"{info['shape'][:24]:<24} {short(info['op_name'])}")


def profile_torch(name: str, steps: int, top: int) -> None:
    """The top operators of the PyTorch peer's step by self CPU time (``torch.profiler``)."""
    try:
        import torch
    except ImportError:
        print(f"\n=== {name}, PyTorch: not installed (make bench installs it); skipped")
        return
    from torch_reference import TorchVAE

    t = size_config(name)
    config = transformer_config(t)
    torch.manual_seed(0)
    model = TorchVAE(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    side = t["image_side"]
    x = torch.rand(t["batch"], side, side, 3)

    def run():
        optimizer.zero_grad(set_to_none=True)
        model.loss(x, torch.randn(x.shape[0], config.z_dim)).backward()
        optimizer.step()

    for _ in range(3):
        run()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            run()
        wall = (time.perf_counter() - start) / steps
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    print(f"\n=== {name}, PyTorch {torch.__version__} eager ({torch.get_num_threads()} threads); {load()}")
    print(f"wall {wall * 1e3:.1f} ms per step (profiler on); self CPU time {total:.1f} ms per step")
    print(f"{'ms/step':>8} {'share':>6}  {'calls':>5}  operator")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        ms = e.self_cpu_time_total / 1e3 / steps
        print(f"{ms:8.2f} {ms / total:6.1%}  {e.count // steps:5d}  {e.key}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="cpu,full", help="comma-separated: cpu, full")
    ap.add_argument("--steps", type=int, default=10, help="profiled steps per size")
    ap.add_argument("--top", type=int, default=20, help="instructions listed per size")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer's profile")
    ns = ap.parse_args(argv)
    print(f"jax {jax.__version__}, backend {jax.default_backend()}")
    for name in ns.sizes.split(","):
        profile_size(name.strip(), ns.steps, ns.top)
        if not ns.no_torch:
            profile_torch(name.strip(), ns.steps, ns.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
