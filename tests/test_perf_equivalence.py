"""The fast training step computes what the straightforward reference computes.

``fit``'s update step (``make_train_step``: split parameters, donation, NaN guard) on ``vae_book``'s
transformer (fused QKV, ``dot_product_attention``, a scanned and rematerialised block stack, an encoder
whose last block computes only the embedding token) is checked against ``bench/reference.py`` (Python
loop over blocks, einsum attention, separate q/k/v) on the same parameters and inputs: the loss and
every gradient. Tiny sizes, few compilations: the file runs in seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from reference import ReferenceVAE, port_state  # noqa: E402

from vae_book.models.transformer import TransformerConfig, TransformerVAE  # noqa: E402
from vae_book.objectives import vae_loss  # noqa: E402
from vae_book.train import _compiler_options, default_optimizer, make_train_step  # noqa: E402

# depth 2: the decoder scans two blocks; the encoder scans one and applies its last block to the
# embedding token only
CFG = TransformerConfig(image_shape=(8, 8, 3), patch=4, hidden=16, depth=2, heads=2, mlp_ratio=2, z_dim=4)
B = 4


def abstract(cls):
    """``(graphdef, parameter shapes, rest)`` of a model, without running its initialisers."""
    return nnx.split(nnx.eval_shape(lambda: cls(CFG, rngs=nnx.Rngs(0))), nnx.Param, ...)


def with_values(shapes, values: dict):
    """A copy of the state ``shapes`` holding ``values`` (a pure dict of the same structure)."""
    state = jax.tree.map(lambda leaf: leaf, shapes)
    nnx.replace_by_pure_dict(state, values)
    return state


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    graphdef, shapes, rest = abstract(ReferenceVAE)
    # random values everywhere (LayerNorm scales and all biases too), so every path is exercised
    ref_params = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype), shapes.to_pure_dict())
    x = jnp.asarray(rng.uniform(size=(B, *CFG.image_shape)), jnp.float32)
    key = jax.random.key(7)

    def ref_loss(params):
        model = nnx.merge(graphdef, with_values(shapes, params), rest)
        return vae_loss(model, x, key)

    # (-O1 as in fit's step on CPU: the compile is most of this file's run time)
    ref_grad = jax.jit(jax.value_and_grad(ref_loss, has_aux=True), compiler_options=_compiler_options())
    (loss, metrics), grads = ref_grad(ref_params)
    return dict(graphdef=graphdef, shapes=shapes, rest=rest, params=ref_params, x=x, key=key, loss=loss,
                metrics=metrics, grads=grads)


def capture_gradients() -> optax.GradientTransformation:
    """An "optimiser" that stores the gradients in its state and leaves the parameters unchanged."""
    zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)  # noqa: E731
    return optax.GradientTransformation(init=zeros, update=lambda g, state, params=None: (zeros(g), g))


def assert_trees_close(actual: dict, expected: dict, rtol: float, atol: float):
    flat_a = dict(jax.tree_util.tree_flatten_with_path(actual)[0])
    flat_e = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
    assert flat_a.keys() == flat_e.keys()
    for path, value in flat_e.items():
        np.testing.assert_allclose(np.asarray(flat_a[path]), np.asarray(value), rtol=rtol, atol=atol,
                                   err_msg=jax.tree_util.keystr(path))


def test_fast_step_loss_and_gradients_match_the_reference(setup):
    graphdef, shapes, rest = abstract(TransformerVAE)
    # (a copy: the step donates its parameter buffers)
    params = with_values(shapes, jax.tree.map(jnp.copy, port_state(setup["params"])))
    assert sum(p.size for p in jax.tree.leaves(params)) == sum(p.size for p in jax.tree.leaves(setup["params"]))

    step = make_train_step(graphdef, rest, vae_loss, capture_gradients())
    opt_state = capture_gradients().init(params)
    _, grads, metrics, bad = step(params, opt_state, setup["x"], setup["key"], 1, jnp.asarray(-1))

    assert int(bad) == -1
    np.testing.assert_allclose(metrics["loss"], setup["loss"], rtol=1e-5)
    for k, v in setup["metrics"].items():
        np.testing.assert_allclose(metrics[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    expected = port_state(setup["grads"])
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(expected))
    assert_trees_close(grads.to_pure_dict(), expected, rtol=1e-4, atol=1e-5 * scale)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))  # every parameter is used


def test_fits_default_adam_is_per_array_adam():
    """``fit``'s default optimizer gives optax Adam's updates and keeps its moments per parameter array
    (not one flat vector: its concatenation made the MLP step 4-5x slower on a 2-core CPU)."""
    params = {"a": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(4)}

    @jax.jit
    def three_updates(params):
        out = []
        for opt in (default_optimizer(1e-3), optax.adam(1e-3)):
            state, updates = opt.init(params), None
            for i in range(3):
                grads = jax.tree.map(lambda p: jnp.sin(p + i) + 0.5, params)
                updates, state = opt.update(grads, state, params)
            out.append(updates)
        return out

    ours, plain = three_updates(params)
    assert_trees_close(ours, plain, rtol=1e-6, atol=1e-9)
    shapes = sorted(a.shape for a in jax.tree.leaves(default_optimizer(1e-3).init(params)) if a.ndim)
    assert shapes == [(2, 3), (2, 3), (4,), (4,)], shapes  # mu and nu of each array, no (10,) vector


def test_flush_subnormals_zeroes_subnormal_state_and_keeps_the_rest():
    from vae_book.train import _flush_subnormals

    subnormal = np.float32(1e-40)
    assert 0 < subnormal < np.finfo(np.float32).tiny
    state_out = jnp.asarray(np.array([subnormal, 1e-30, -subnormal, 2.0], np.float32))
    inner = optax.GradientTransformation(lambda p: jnp.zeros(4), lambda g, s, p=None: (g, state_out))
    updates, state = _flush_subnormals(inner).update({"w": jnp.ones(4)}, jnp.zeros(4))
    np.testing.assert_array_equal(np.asarray(state), np.array([0.0, 1e-30, 0.0, 2.0], np.float32))
    np.testing.assert_array_equal(np.asarray(updates["w"]), np.ones(4))


@pytest.mark.bench
def test_pytorch_peer_computes_the_same_loss(setup):
    """The benchmark's PyTorch peer is the same model: same loss on ported parameters and noise."""
    import torch
    from torch_reference import TorchVAE
    from torch_reference import port_parameters as port_to_torch

    ref = nnx.merge(setup["graphdef"], with_values(setup["shapes"], setup["params"]), setup["rest"])
    model = TorchVAE(CFG)
    port_to_torch(ref, model)
    eps = jax.random.normal(setup["key"], (B, CFG.z_dim))  # the noise vae_loss drew: z = mean + sigma * eps
    loss = model.loss(torch.from_numpy(np.array(setup["x"])), torch.from_numpy(np.array(eps)))
    np.testing.assert_allclose(float(loss.detach()), float(setup["loss"]), rtol=1e-5)
