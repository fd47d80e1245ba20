"""The model families, one per file, all with the interface of :class:`vae_book.models.base.VAE`."""

from vae_book.models.base import VAE, VAEConfig, VAEOutput
from vae_book.models.conv import ConvConfig, ConvVAE
from vae_book.models.linear import LinearGaussianModel
from vae_book.models.mlp import MLPAutoencoder, MLPConfig, MLPVAE
from vae_book.models.transformer import TransformerConfig, TransformerVAE

__all__ = ["VAE", "VAEConfig", "VAEOutput", "MLPVAE", "MLPConfig", "MLPAutoencoder", "ConvVAE", "ConvConfig",
           "TransformerVAE", "TransformerConfig", "LinearGaussianModel"]
