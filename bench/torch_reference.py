"""The PyTorch peer: the same transformer VAE and loss, in eager PyTorch on the CPU (float32).

Written as a PyTorch user usually would: ``nn.Module`` s, a ``ModuleList`` of blocks, separate
q/k/v ``nn.Linear`` s with attention spelled out (``softmax(q k^T / sqrt(d)) v``), tanh-GELU (the
book's ``jax.nn.gelu``), LayerNorm with eps 1e-6 (Flax's default), ``torch.optim.Adam(lr=3e-4)``.
Same architecture and parameter count as ``vae_book``'s model; :func:`port_parameters` copies the
parameters of ``bench/reference.py``'s model into it so the two can be checked against each other.
Imported only when torch is installed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

LOG_2PI = math.log(2.0 * math.pi)


def sincos(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    from vae_book.models.transformer import sincos_2d_position_embedding

    return torch.from_numpy(np.array(sincos_2d_position_embedding(grid_h, grid_w, dim)))


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, eps=1e-6)
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-6)
        self.fc1 = nn.Linear(hidden, mlp_ratio * hidden)
        self.fc2 = nn.Linear(mlp_ratio * hidden, hidden)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        y = self.norm1(x)
        q = self.q(y).view(b, t, h, d // h).transpose(1, 2)  # (b, h, t, hd)
        k = self.k(y).view(b, t, h, d // h).transpose(1, 2)
        v = self.v(y).view(b, t, h, d // h).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)
        attn = (w @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(attn)
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class TorchVAE(nn.Module):
    """Gaussian-likelihood transformer VAE with a learned per-pixel decoder sigma (the book's default)."""

    def __init__(self, config):
        super().__init__()
        self.config = c = config
        if c.likelihood != "gaussian" or c.decoder_log_std is not None:
            raise ValueError("the PyTorch peer implements the default Gaussian, learned-sigma likelihood only")
        h_img, w_img, img_c = c.image_shape
        p = c.patch
        self.patch_embedding = nn.Conv2d(img_c, c.hidden, p, stride=p)
        self.embedding_token = nn.Parameter(0.02 * torch.randn(1, 1, c.hidden))
        self.encoder_blocks = nn.ModuleList([Block(c.hidden, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.encoder_norm = nn.LayerNorm(c.hidden, eps=1e-6)
        self.encoder_head = nn.Linear(c.hidden, 2 * c.z_dim)
        self.decoder_input = nn.Linear(c.z_dim, c.hidden)
        self.decoder_blocks = nn.ModuleList([Block(c.hidden, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.decoder_norm = nn.LayerNorm(c.hidden, eps=1e-6)
        self.decoder_head = nn.Linear(c.hidden, p * p * 2 * img_c)
        self.register_buffer("pos", sincos(*c.grid, c.hidden), persistent=False)

    def encode(self, x):  # x: (B, H, W, C) in [0, 1]
        b = x.shape[0]
        tokens = self.patch_embedding(x.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2) + self.pos
        h = torch.cat([self.embedding_token.expand(b, 1, -1), tokens], dim=1)
        for block in self.encoder_blocks:
            h = block(h)
        mean, log_std = self.encoder_head(self.encoder_norm(h[:, 0])).chunk(2, dim=-1)
        return mean, log_std

    def decode(self, z):
        c = self.config
        h_img, w_img, img_c = c.image_shape
        p = c.patch
        gh, gw = c.grid
        h = self.decoder_input(z)[:, None, :] + self.pos
        for block in self.decoder_blocks:
            h = block(h)
        out = self.decoder_head(self.decoder_norm(h))  # (B, N, p*p*2C)
        b = out.shape[0]
        out = out.view(b, gh, gw, p, p, 2 * img_c).permute(0, 1, 3, 2, 4, 5).reshape(b, h_img, w_img, 2 * img_c)
        raw = out[..., img_c:]
        m = c.min_log_std
        return out[..., :img_c], m + nn.functional.softplus(raw - m)

    def loss(self, x, eps):
        """Negative ELBO (beta = 1), nats per image; ``eps`` (B, z_dim) is the reparameterization noise."""
        mean, log_std = self.encode(x)
        z = mean + torch.exp(log_std) * eps
        mu_x, log_std_x = self.decode(z)
        zz = (x - mu_x) * torch.exp(-log_std_x)
        recon = (-0.5 * LOG_2PI - log_std_x - 0.5 * zz * zz).flatten(1).sum(1)
        kl = (0.5 * (torch.exp(2 * log_std) + mean * mean - 1.0 - 2.0 * log_std)).sum(1)
        return (kl - recon).mean()


def port_parameters(reference, model: TorchVAE) -> None:
    """Copy the parameters of ``bench/reference.py``'s ``ReferenceVAE`` into ``model`` (in place).

    Flax kernels are ``(in, out)`` and torch weights ``(out, in)``; the patch convolution goes from
    HWIO to OIHW.
    """

    def t(v):
        return torch.from_numpy(np.array(v[...]))

    def linear(dst, src):
        dst.weight.copy_(t(src.kernel).T)
        dst.bias.copy_(t(src.bias))

    def norm(dst, src):
        dst.weight.copy_(t(src.scale))
        dst.bias.copy_(t(src.bias))

    with torch.no_grad():
        model.patch_embedding.weight.copy_(t(reference.patch_embedding.kernel).permute(3, 2, 0, 1))
        model.patch_embedding.bias.copy_(t(reference.patch_embedding.bias))
        model.embedding_token.copy_(t(reference.embedding_token))
        for stack in ("encoder_blocks", "decoder_blocks"):
            for dst, src in zip(getattr(model, stack), getattr(reference, stack)):
                norm(dst.norm1, src.norm1)
                norm(dst.norm2, src.norm2)
                for name in ("q", "k", "v", "proj", "fc1", "fc2"):
                    linear(getattr(dst, name), getattr(src, name))
        norm(model.encoder_norm, reference.encoder_norm)
        norm(model.decoder_norm, reference.decoder_norm)
        for name in ("encoder_head", "decoder_input", "decoder_head"):
            linear(getattr(model, name), getattr(reference, name))
