r"""The transformer VAE's fast block stack: ``depth`` pre-LayerNorm blocks applied by one scan.

Used by :class:`~vae_book.models.transformer.TransformerVAE` (whose module docstring describes the
architecture); kept apart so that file reads top to bottom as the model. The speed tricks live
here: one fused QKV projection, :func:`jax.nn.dot_product_attention` (cuDNN's fused attention on a
GPU in bfloat16 / float16, chosen in one place: :func:`attention_implementation`), parameters
stacked on a leading ``depth`` axis and applied with :func:`jax.lax.scan` (traced and compiled once
whatever the depth), rematerialisation by :data:`REMAT_POLICY`, and a last
encoder block that computes only the tokens somebody reads.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import DTypeLike

from vae_book._checks import check_positive_int

__all__ = ["TransformerBlock", "BlockStack", "REMAT_POLICY", "scan_blocks", "attention_implementation"]

#: compute dtypes cuDNN's fused attention kernel takes (it has no float32 kernel)
_CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)


def attention_implementation(dtype: DTypeLike, backend: str | None = None) -> str:
    """The ``implementation=`` the blocks pass to :func:`jax.nn.dot_product_attention`: the one place it is
    chosen.

    ``"cudnn"`` (the fused flash-attention kernel) when ``backend`` is ``"gpu"`` / ``"cuda"`` and the
    compute ``dtype`` is bfloat16 or float16; ``"xla"`` otherwise (CPU, TPU, or float32 anywhere:
    cuDNN has no float32 kernel). Either way the softmax is computed in float32.

    Args:
        dtype: the compute dtype of queries, keys and values (a NumPy / JAX dtype or its name).
        backend: ``"cpu"``, ``"gpu"``, ``"cuda"``, ``"tpu"``, ...; default :func:`jax.default_backend`.

    Returns:
        ``"cudnn"`` or ``"xla"``.
    """
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"`dtype` must be a dtype or its name (e.g. 'bfloat16'), got {dtype!r}.") from None
    if backend is None:
        backend = jax.default_backend()
    if not isinstance(backend, str):
        raise ValueError(f"`backend` must be a backend name such as 'gpu' or None, got {backend!r}.")
    on_gpu = backend.lower() in ("gpu", "cuda")
    return "cudnn" if on_gpu and dtype in _CUDNN_DTYPES else "xla"


def _dense_columns(linear: nnx.Linear, x, start: int, stop: int):
    """``linear(x)[..., start:stop]`` computed with only those output columns of the kernel."""
    kernel, bias = linear.kernel[...][:, start:stop], linear.bias[...][start:stop]
    x, kernel, bias = linear.promote_dtype((x, kernel, bias), dtype=linear.dtype)
    out = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=linear.precision)
    return out + bias


class TransformerBlock(nnx.Module):
    """One pre-LayerNorm block: ``x = x + MHSA(LN(x)); x = x + MLP(LN(x))``, shape ``(B, T, hidden)`` -> same.

    Attention is non-causal (every token sees every token), computed by
    :func:`jax.nn.dot_product_attention` (the implementation of :func:`attention_implementation`)
    from one fused ``Dense(hidden -> 3 hidden)`` QKV projection. Matrix products and activations run
    in ``dtype``; parameters, the residual stream, LayerNorm statistics and the softmax stay float32.

    ``block(x, num_outputs=n)`` returns only the first ``n`` tokens' outputs ``(B, n, hidden)``: all
    ``T`` tokens still provide keys and values, but queries, the projection and the MLP are computed
    for those ``n`` tokens only (the encoder's last block, whose other outputs nobody reads).
    """

    def __init__(self, hidden: int, heads: int, mlp_ratio: int, dtype: DTypeLike = jnp.float32, *,
                 rngs: nnx.Rngs) -> None:
        self.heads = heads
        self.norm1 = nnx.LayerNorm(hidden, dtype=dtype, rngs=rngs)
        self.qkv = nnx.Linear(hidden, 3 * hidden, dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(hidden, hidden, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.LayerNorm(hidden, dtype=dtype, rngs=rngs)
        self.fc1 = nnx.Linear(hidden, mlp_ratio * hidden, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(mlp_ratio * hidden, hidden, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, num_outputs: int | None = None) -> jax.Array:
        """``(B, T, hidden)`` -> ``(B, T, hidden)``, or ``(B, num_outputs, hidden)`` (see the class docstring)."""
        b, t, d = x.shape
        heads = lambda a: a.reshape(b, a.shape[1], self.heads, d // self.heads)  # noqa: E731  (B, ., heads, head_dim)
        y = self.norm1(x)
        if num_outputs is None:
            # jnp.split (not indexing): its gradient is one concatenate, where indexing's is three pads
            q, k, v = map(heads, jnp.split(self.qkv(y), 3, axis=-1))
        else:
            x = x[:, :num_outputs]
            q = heads(_dense_columns(self.qkv, y[:, :num_outputs], 0, d))
            k, v = map(heads, jnp.split(_dense_columns(self.qkv, y, d, 3 * d), 2, axis=-1))
        impl = attention_implementation(q.dtype)
        attn = jax.nn.dot_product_attention(q, k, v, implementation=impl).reshape(x.shape[0], x.shape[1], d)
        x = x + self.proj(attn).astype(x.dtype)
        h = self.fc2(jax.nn.gelu(self.fc1(self.norm2(x))))
        return x + h.astype(x.dtype)


#: What the scanned block keeps for the backward pass (see :func:`scan_blocks`): the outputs of
#: its weight matrix products (QKV, projection, MLP); the elementwise ops (LayerNorm, softmax, GELU)
#: and the two small attention products are recomputed.
REMAT_POLICY = jax.checkpoint_policies.dots_with_no_batch_dims_saveable


@functools.partial(jax.jit, static_argnums=(0, 3))
def scan_blocks(graphdef: nnx.GraphDef, state: nnx.State, x: jax.Array, num_outputs: int | None = None) -> jax.Array:
    """Apply stacked blocks ``nnx.merge(graphdef, state[i])`` for i = 0, 1, ... with one ``lax.scan``.

    ``x`` ``(B, T, hidden)`` -> ``(B, T, hidden)``, or ``(B, num_outputs, hidden)`` with ``num_outputs``.
    ``graphdef`` / ``state`` are ``nnx.split`` of a :class:`BlockStack`'s ``layers`` (every leaf of
    ``state`` has a leading ``depth`` axis).

    A plain :func:`jax.lax.scan` over the split state rather than :func:`flax.nnx.scan`: it also works
    when the model is closed over by ``jax.jit`` / ``jax.make_jaxpr`` (e.g. ``jax.jit(model.encode)``),
    and the blocks hold parameters only, so there is no state to write back. The ``jax.jit`` (a no-op
    inside an outer jit) caches the compiled scan, so eager calls in a notebook do not re-trace it.

    The block is wrapped in :func:`jax.checkpoint` with :data:`REMAT_POLICY`. Under a scan, every
    value the backward pass needs is copied into a ``(depth, ...)`` stack on the way forward and
    sliced back out on the way back; with the default "save everything" that copying made the scanned
    update step 20-25% slower than an unrolled loop on CPU. Saving only the weight matrix-product
    outputs and recomputing the cheap rest brings it to within a few percent of the unrolled loop
    (see ``bench/train_step.py``) while the block is still compiled once, whatever the depth.

    With ``num_outputs`` the last block is applied outside the scan, to compute only the first
    ``num_outputs`` tokens (see :class:`TransformerBlock`).
    """

    def step(h, layer_state):
        return nnx.merge(graphdef, layer_state)(h), None

    step = jax.checkpoint(step, policy=REMAT_POLICY, prevent_cse=False)
    if num_outputs is None:
        return jax.lax.scan(step, x, state)[0]
    depth = jax.tree.leaves(state)[0].shape[0]
    if depth > 1:
        x = jax.lax.scan(step, x, jax.tree.map(lambda a: a[:-1], state))[0]
    return nnx.merge(graphdef, jax.tree.map(lambda a: a[-1], state))(x, num_outputs)


class BlockStack(nnx.Module):
    """``depth`` :class:`TransformerBlock` s as one module with stacked parameters, applied by a scan.

    Every parameter has a leading axis of size ``depth`` (created with :func:`flax.nnx.vmap` over the
    block constructor, one RNG split per layer). ``__call__`` runs :func:`jax.lax.scan` over that
    axis, so the block is traced and compiled once whatever ``depth`` is.
    Shapes: ``(B, T, hidden)`` -> ``(B, T, hidden)``.
    """

    def __init__(self, depth: int, hidden: int, heads: int, mlp_ratio: int, dtype: DTypeLike = jnp.float32, *,
                 rngs: nnx.Rngs) -> None:
        self.depth = depth

        @nnx.split_rngs(splits=depth)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def create(rngs):
            return TransformerBlock(hidden, heads, mlp_ratio, dtype, rngs=rngs)

        self.layers = create(rngs)

    def __call__(self, x: jax.Array, num_outputs: int | None = None) -> jax.Array:
        """``(B, T, hidden)`` -> ``(B, T, hidden)``, or ``(B, num_outputs, hidden)``: the first
        ``num_outputs`` tokens only, the others' last-block outputs not computed."""
        if num_outputs is not None:
            num_outputs = check_positive_int(num_outputs, "num_outputs")
        graphdef, state = nnx.split(self.layers)
        return scan_blocks(graphdef, state, x, num_outputs)

    def layer(self, i: int) -> TransformerBlock:
        """A standalone copy of block ``i`` (its parameter slices), e.g. to inspect one layer."""
        if not (isinstance(i, (int, np.integer)) and -self.depth <= i < self.depth):
            raise ValueError(f"`i` must be an int in [-{self.depth}, {self.depth}), got {i!r}.")
        graphdef, state = nnx.split(self.layers)
        return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))
