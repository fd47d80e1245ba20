"""Run sizes: one name decides how much work a run does.

* ``smoke`` — tests: every chapter executes in seconds; models are tiny and barely trained.
* ``cpu``   — the default without an accelerator: the whole book builds in minutes on 2 cores.
* ``gpu``   — the default when JAX sees a GPU/TPU: the full transformer VAE of the source
  configuration (64x64x3, patch 8, hidden 256, depth 4, 4 heads, z_dim 64, batch 64, Adam 3e-4).

The choice comes from ``jax.default_backend()`` and is overridden by the ``VAE_BOOK_PROFILE``
environment variable. Chapters never hard-code sizes: they ask :func:`get_profile`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

import jax

__all__ = ["Profile", "PROFILES", "get_profile", "profile_name"]

ENV_VAR = "VAE_BOOK_PROFILE"

#: floor of the learned decoder log sigma of the conv and transformer VAEs: sigma >= 0.1 (chapter 7,
#: "Where to put the floor", measures why a lower floor gives blurrier reconstructions on shapes).
_MIN_LOG_STD = math.log(0.1)


@dataclass(frozen=True)
class Profile:
    """How much work a run does. All step counts are optimiser updates."""

    name: str
    #: MLP VAE / autoencoder on mnist5k
    mlp_steps: int
    mlp_batch: int
    #: transformer VAE: image side, patch, hidden width, depth, heads, z_dim, batch, steps
    transformer: dict = field(default_factory=dict)
    transformer_steps: int = 0
    #: Adam step size of the transformer and conv VAEs
    transformer_lr: float = 3e-4
    #: lower bound of their learned decoder log sigma (log 0.1)
    transformer_min_log_std: float = _MIN_LOG_STD
    #: conv VAE (evaluation chapter's comparison)
    conv_channels: tuple = (32, 64, 128)
    conv_steps: int = 0
    #: shapes dataset sizes
    shapes_train: int = 0
    shapes_test: int = 0
    #: beta sweep: values and steps per value
    beta_values: tuple = (0.5, 1.0, 4.0)
    beta_steps: int = 0
    #: evaluation
    eval_every: int = 100
    eval_images: int = 500
    iwae_samples: int = 100
    #: the evaluation chapter: independent repeats of each IWAE estimate, the large K and its image count
    iwae_repeats: int = 4
    iwae_samples_large: int = 1000
    eval_images_large: int = 200
    #: Monte-Carlo sample counts used by the part-I checks
    mc_samples: int = 100_000

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (e.g. ``get_profile().replace(mlp_steps=100)``)."""
        return dataclasses.replace(self, **changes)


_FULL_TRANSFORMER = dict(image_side=64, patch=8, hidden=256, depth=4, heads=4, z_dim=64, batch=64)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        mlp_steps=30,
        mlp_batch=64,
        transformer=dict(image_side=16, patch=4, hidden=32, depth=1, heads=2, z_dim=8, batch=16),
        transformer_steps=10,
        transformer_lr=1e-3,
        conv_channels=(8, 16),
        conv_steps=10,
        shapes_train=256,
        shapes_test=64,
        beta_values=(0.5, 4.0),
        beta_steps=10,
        eval_every=10,
        eval_images=64,
        iwae_samples=8,
        iwae_samples_large=2,
        eval_images_large=16,
        mc_samples=10_000,
    ),
    "cpu": Profile(
        name="cpu",
        mlp_steps=3000,
        mlp_batch=100,
        # patch 8: 16 tokens instead of 64, ~4x less work per step than patch 4 (bench/train_step.py)
        transformer=dict(image_side=32, patch=8, hidden=128, depth=2, heads=4, z_dim=32, batch=64),
        transformer_steps=2000,
        transformer_lr=1e-3,
        conv_channels=(32, 64, 128),
        conv_steps=2000,
        shapes_train=20_000,
        shapes_test=1000,
        beta_values=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
        beta_steps=1500,
        eval_every=250,
        eval_images=500,
        iwae_samples=500,
        iwae_samples_large=50,
        eval_images_large=100,
        mc_samples=200_000,
    ),
    "gpu": Profile(
        name="gpu",
        mlp_steps=20_000,
        mlp_batch=100,
        transformer=_FULL_TRANSFORMER,
        transformer_steps=50_000,
        conv_channels=(32, 64, 128, 256),
        conv_steps=20_000,
        shapes_train=50_000,
        shapes_test=2000,
        beta_values=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
        beta_steps=10_000,
        eval_every=1000,
        eval_images=1000,
        iwae_samples=5000,
        iwae_samples_large=500,
        eval_images_large=200,
        mc_samples=1_000_000,
    ),
}


def profile_name() -> str:
    """The active profile's name: ``$VAE_BOOK_PROFILE`` if set, else ``gpu`` on GPU/TPU, else ``cpu``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if env not in PROFILES:
            raise ValueError(
                f"environment variable {ENV_VAR}={env!r} is not a known profile; "
                f"use one of {sorted(PROFILES)} (or unset it to choose from the backend)."
            )
        return env
    return "cpu" if jax.default_backend() == "cpu" else "gpu"


def get_profile(name: str | None = None) -> Profile:
    """The :class:`Profile` called ``name``, or the active one (see :func:`profile_name`) if None."""
    if name is None:
        name = profile_name()
    if name not in PROFILES:
        raise ValueError(f"`name` must be one of {sorted(PROFILES)}, got {name!r}.")
    return PROFILES[name]
