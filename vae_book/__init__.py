"""vae_book: the library behind The VAE Book (provisional; re-exports filled in below)."""

__version__ = "0.1.0"
