"""``bench/step_profile.py`` reads the profiler's per-instruction times and classifies the instructions.

On a small jitted function whose operations are known (a matmul inside a ``fori_loop``, a reduction,
a transpose, an elementwise map), the profile must find the dot inside the loop's body (the ``while``
itself is left out: its body is timed on its own), and each kind of operation must land in its kind.
Nothing about time is asserted beyond "measured and positive".
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import step_profile as SP  # noqa: E402

HLO = """HloModule jit_f, entry_computation_layout={(f32[4,4]{1,0})->f32[4]{0}}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%fused_reduce (p: f32[4,4]) -> f32[4] {
  %p = f32[4,4]{1,0} parameter(0)
  %c = f32[] constant(0)
  ROOT %r = f32[4]{0} reduce(%p, %c), dimensions={1}, to_apply=%add
}

%fused_dot (p0: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4]{1,0} parameter(0)
  ROOT %d = f32[4,4]{1,0} dot(%p0, %p0), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %main (x: f32[4,4]) -> f32[4] {
  %x = f32[4,4]{1,0} parameter(0)
  %ynn_fusion.3 = f32[4,4]{1,0} fusion(%x), kind=kCustom, calls=%fused_dot, metadata={op_name="jit(f)/dot_general"}
  %copy.1 = f32[4,4]{0,1} copy(%ynn_fusion.3)
  ROOT %reduce_fusion = f32[4]{0} fusion(%copy.1), kind=kInput, calls=%fused_reduce, metadata={op_name="jit(f)/reduce_sum"}
}
"""


def test_parse_hlo_and_kinds_of_a_written_module():
    instructions, computations = SP.parse_hlo(HLO)
    assert set(instructions) >= {"ynn_fusion.3", "copy.1", "reduce_fusion", "d", "r"}
    assert instructions["ynn_fusion.3"]["calls"] == "fused_dot"
    assert instructions["ynn_fusion.3"]["shape"] == "f32[4,4]"
    assert instructions["reduce_fusion"]["op_name"] == "jit(f)/reduce_sum"
    assert computations["fused_reduce"] >= {"reduce", "parameter", "constant"}
    kinds = {name: SP.kind(instructions[name], computations) for name in ("ynn_fusion.3", "copy.1", "reduce_fusion")}
    assert kinds == {"ynn_fusion.3": "matmul", "copy.1": "layout", "reduce_fusion": "reduce"}
    assert SP.short("jit(step)/jvp(TransformerVAE)/encoder/dot_general") == "jvp(TransformerVAE)/encoder/dot_general"


def test_op_times_finds_the_instructions_of_a_profiled_function():
    def f(a, b):
        c = jax.lax.fori_loop(0, 3, lambda i, h: jnp.tanh(h @ b), a)  # a while with a dot in its body
        return (c.T * 2.0).sum(axis=0) + jnp.exp(b).sum(axis=1)

    a = jax.random.normal(jax.random.key(0), (128, 128))
    b = jax.random.normal(jax.random.key(1), (128, 128)) / 16
    compiled = jax.jit(f).lower(a, b).compile()
    compiled(a, b).block_until_ready()
    per_op, unknown, wall = SP.op_times(compiled, lambda: compiled(a, b).block_until_ready(), steps=3)
    instructions, computations = SP.parse_hlo(compiled.as_text())
    assert per_op and unknown == 0 and wall > 0
    assert set(per_op) <= set(instructions)
    assert all(ms > 0 for ms in per_op.values())
    assert not any(instructions[op]["opcode"] in SP.CONTAINERS for op in per_op)
    kinds = {SP.kind(instructions[op], computations) for op in per_op}
    assert "matmul" in kinds  # the dot of the loop's body, timed although the while is not counted
    assert "while" in {info["opcode"] for info in instructions.values()}
