"""The baseline: the transformer VAE written the way people usually write it in JAX / Flax NNX.

Same architecture, same parameter count and same loss as :class:`vae_book.models.transformer.TransformerVAE`,
but written in the straightforward style of the Flax tutorials:

* the blocks are a Python list applied in a Python ``for`` loop (XLA sees ``depth`` copies);
* attention is written out with ``einsum`` and ``softmax``, with separate ``q``, ``k``, ``v`` projections;
* everything is float32;
* the training step is ``nnx.jit`` over the model and an ``nnx.Optimizer`` (no buffer donation).

:func:`port_parameters` copies this model's parameters into a ``TransformerVAE`` (fusing q/k/v and
stacking the blocks) so both compute the same function; ``tests/test_perf_equivalence.py`` uses it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from vae_book import objectives
from vae_book.models.base import VAE, bounded_log_std
from vae_book.models.transformer import TransformerConfig, sincos_2d_position_embedding, unpatchify


class Block(nnx.Module):
    """Pre-LayerNorm block, attention spelled out: ``softmax(q k^T / sqrt(d_head)) v``."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: int, *, rngs: nnx.Rngs):
        self.heads = heads
        self.norm1 = nnx.LayerNorm(hidden, rngs=rngs)
        self.q = nnx.Linear(hidden, hidden, rngs=rngs)
        self.k = nnx.Linear(hidden, hidden, rngs=rngs)
        self.v = nnx.Linear(hidden, hidden, rngs=rngs)
        self.proj = nnx.Linear(hidden, hidden, rngs=rngs)
        self.norm2 = nnx.LayerNorm(hidden, rngs=rngs)
        self.fc1 = nnx.Linear(hidden, mlp_ratio * hidden, rngs=rngs)
        self.fc2 = nnx.Linear(mlp_ratio * hidden, hidden, rngs=rngs)

    def __call__(self, x):
        b, t, d = x.shape
        h = self.heads
        y = self.norm1(x)
        q = self.q(y).reshape(b, t, h, d // h)
        k = self.k(y).reshape(b, t, h, d // h)
        v = self.v(y).reshape(b, t, h, d // h)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // h)
        weights = jax.nn.softmax(scores, axis=-1)
        attn = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d)
        x = x + self.proj(attn)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.norm2(x))))


class ReferenceVAE(VAE):
    """The book's transformer VAE, straightforwardly written (see the module docstring)."""

    def __init__(self, config: TransformerConfig = TransformerConfig(), *, rngs: nnx.Rngs):
        if config.dtype != "float32":
            raise ValueError("the reference is float32 only")
        self.config = c = config
        img_c = c.image_shape[2]
        p = c.patch
        self.patch_embedding = nnx.Conv(img_c, c.hidden, (p, p), strides=(p, p), padding="VALID", rngs=rngs)
        self.embedding_token = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, 1, c.hidden)))
        self.encoder_blocks = nnx.List([Block(c.hidden, c.heads, c.mlp_ratio, rngs=rngs) for _ in range(c.depth)])
        self.encoder_norm = nnx.LayerNorm(c.hidden, rngs=rngs)
        self.encoder_head = nnx.Linear(c.hidden, 2 * c.z_dim, rngs=rngs)
        self.decoder_input = nnx.Linear(c.z_dim, c.hidden, rngs=rngs)
        self.decoder_blocks = nnx.List([Block(c.hidden, c.heads, c.mlp_ratio, rngs=rngs) for _ in range(c.depth)])
        self.decoder_norm = nnx.LayerNorm(c.hidden, rngs=rngs)
        self.decoder_head = nnx.Linear(c.hidden, p * p * c.out_channels, rngs=rngs)

    def encode(self, x):
        c = self.config
        b = x.shape[0]
        pos = jnp.asarray(sincos_2d_position_embedding(*c.grid, c.hidden))
        tokens = self.patch_embedding(x).reshape(b, c.num_patches, c.hidden) + pos[None]
        first = jnp.broadcast_to(self.embedding_token[...], (b, 1, c.hidden))
        h = jnp.concatenate([first, tokens], axis=1)
        for block in self.encoder_blocks:
            h = block(h)
        mean, log_std = jnp.split(self.encoder_head(self.encoder_norm(h[:, 0])), 2, axis=-1)
        return mean, log_std

    def decode(self, z):
        c = self.config
        h_img, w_img, img_c = c.image_shape
        pos = jnp.asarray(sincos_2d_position_embedding(*c.grid, c.hidden))
        h = self.decoder_input(z)[:, None, :] + pos[None]
        for block in self.decoder_blocks:
            h = block(h)
        out = unpatchify(self.decoder_head(self.decoder_norm(h)), c.patch, h_img, w_img, c.out_channels)
        if c.likelihood == "bernoulli":
            return out
        if c.decoder_log_std is not None:
            return out, jnp.full_like(out, c.decoder_log_std)
        return out[..., :img_c], bounded_log_std(out[..., img_c:], c.min_log_std)


def make_reference_step(model: ReferenceVAE, learning_rate: float = 3e-4, loss_fn=objectives.vae_loss):
    """The tutorial-style training step: ``nnx.jit`` over (model, optimizer, batch, key), no donation.

    Returns ``(optimizer, train_step)`` with ``train_step(model, optimizer, x, key) -> loss``.
    """
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, key):
        (loss, _), grads = nnx.value_and_grad(lambda m: loss_fn(m, x, key), has_aux=True)(model)
        optimizer.update(model, grads)
        return loss

    return optimizer, train_step


# --------------------------------------------------------------------------- parameter porting


def port_state(reference_params: dict) -> dict:
    """Map the reference's parameters (``nnx.state(ref, nnx.Param).to_pure_dict()``, or a pytree of the
    same shape such as its gradients) to the layout of a ``TransformerVAE`` of the same config.

    q/k/v kernels and biases are concatenated along the output axis into the fused QKV projection
    (the fast block splits its output into q, k, v, each ``(heads, head_dim)``), and the per-block
    arrays are stacked on a leading ``depth`` axis for the scanned block stack. Gradients map the
    same way, since both maps are linear rearrangements.
    """
    out = {k: v for k, v in reference_params.items() if not k.endswith("_blocks")}
    for stack in ("encoder_blocks", "decoder_blocks"):
        blocks = reference_params[stack]
        per_layer = []
        for i in sorted(blocks, key=int):
            b = blocks[i]
            per_layer.append({
                "norm1": b["norm1"],
                "qkv": {
                    "kernel": jnp.concatenate([b["q"]["kernel"], b["k"]["kernel"], b["v"]["kernel"]], axis=1),
                    "bias": jnp.concatenate([b["q"]["bias"], b["k"]["bias"], b["v"]["bias"]], axis=0),
                },
                "proj": b["proj"], "norm2": b["norm2"], "fc1": b["fc1"], "fc2": b["fc2"],
            })
        out[stack] = {"layers": jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)}
    return out


def port_parameters(reference: ReferenceVAE, fast) -> None:
    """Copy ``reference``'s parameters into ``fast`` (a ``TransformerVAE`` of the same config), in place."""
    state = nnx.state(fast, nnx.Param)
    ported = port_state(nnx.state(reference, nnx.Param).to_pure_dict())
    flat_new = dict(jax.tree_util.tree_flatten_with_path(ported)[0])
    flat_old = dict(jax.tree_util.tree_flatten_with_path(state.to_pure_dict())[0])
    if flat_new.keys() != flat_old.keys():
        raise ValueError(f"parameter names differ: {sorted(set(flat_new) ^ set(flat_old))}")
    for path, value in flat_new.items():
        if value.shape != flat_old[path].shape:
            raise ValueError(f"shape mismatch at {jax.tree_util.keystr(path)}: {value.shape} vs {flat_old[path].shape}")
    nnx.replace_by_pure_dict(state, ported)
    nnx.update(fast, state)
