"""Run sizes: one name decides how much work a run does.

* ``smoke`` — tests: every chapter executes in seconds; models are tiny and barely trained.
* ``cpu``   — the default without an accelerator: the whole book builds in minutes on 2 cores.
* ``gpu``   — the default when JAX sees a GPU/TPU: the full transformer VAE of the source
  configuration (64x64x3, patch 8, hidden 256, depth 4, 4 heads, z_dim 64, batch 64, Adam 3e-4),
  computed in bfloat16 with float32 parameters (the conv VAE too).

The choice comes from ``jax.default_backend()`` and is overridden by the ``VAE_BOOK_PROFILE``
environment variable. Chapters never hard-code sizes: they ask :func:`get_profile` (through
:mod:`vae_book.runs`, which turns a profile's settings into a trained model).

Each model family has its own typed settings (:class:`MLPSettings`, :class:`ConvSettings`,
:class:`TransformerSettings`): how many steps, which batch size and step size, and the sizes of its
model, and the compute dtype of the conv and transformer VAEs (``float32`` on the CPU profiles, where
bfloat16 matrix products are slower, measured in ``tests/test_precision.py``'s docstring;
``bfloat16`` on ``gpu``). :func:`is_static` says whether the code runs inside the static-site build.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Self

import jax

__all__ = [
    "RunSettings",
    "MLPSettings",
    "ConvSettings",
    "TransformerSettings",
    "Profile",
    "PROFILES",
    "get_profile",
    "profile_name",
    "is_static",
    "ENV_VAR",
    "STATIC_ENV_VAR",
]

#: environment variable that overrides the profile chosen from the backend
ENV_VAR = "VAE_BOOK_PROFILE"
#: environment variable the book build sets to ``1``: static HTML explorers, no progress bars
STATIC_ENV_VAR = "VAE_BOOK_STATIC"

#: floor of a learned decoder log sigma, for images in [0, 1]: sigma >= 0.1, the default of every model
#: config and of every profile. A floor far below any error (e.g. -5, sigma >= 0.007) lets the easy
#: pixels (a black background) take almost all the gradient weight 1 / sigma^2: chapter 7 ("Where to put
#: the floor") derives why, chapter 9 measures it on learned-sigma MLP VAEs with both floors.
MIN_LOG_STD = math.log(0.1)


def is_static() -> bool:
    """True inside the static-site build: ``VAE_BOOK_STATIC`` is ``1``/``true``/``yes``/``on``."""
    return os.environ.get(STATIC_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class RunSettings:
    """How one model family trains: optimiser updates, images per update, Adam step size."""

    steps: int
    batch_size: int
    learning_rate: float

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class MLPSettings(RunSettings):
    """The MLP VAE and the MLP autoencoder on mnist5k (28x28x1)."""

    hidden: int = 500
    z_dim: int = 20


@dataclass(frozen=True)
class ConvSettings(RunSettings):
    """The convolutional VAE: channels per resolution, code size, decoder sigma floor (log sigma),
    compute dtype (``"float32"`` or ``"bfloat16"``; parameters are float32 either way)."""

    channels: tuple = (32, 64, 128)
    z_dim: int = 32
    min_log_std: float = MIN_LOG_STD
    dtype: str = "float32"


@dataclass(frozen=True)
class TransformerSettings(RunSettings):
    """The transformer VAE: patch size, width, depth, heads, code size, decoder sigma floor (log sigma),
    compute dtype (``"float32"`` or ``"bfloat16"``; parameters are float32 either way)."""

    patch: int = 8
    hidden: int = 256
    depth: int = 4
    heads: int = 4
    z_dim: int = 64
    min_log_std: float = MIN_LOG_STD
    dtype: str = "float32"


@dataclass(frozen=True)
class Profile:
    """How much work a run does. All step counts are optimiser updates."""

    name: str
    mlp: MLPSettings
    conv: ConvSettings
    transformer: TransformerSettings
    #: side of the square colour images the conv and transformer VAEs train on
    image_side: int
    #: train the conv and transformer VAEs on the face folder of ``$VAE_BOOK_DATA`` when it is set
    #: (else on ``shapes``)
    faces_from_env: bool = False
    #: the procedural ``shapes`` data set: training and held-out images
    shapes_train: int = 0
    shapes_test: int = 0
    #: beta sweep (chapter 9): values and steps per value
    beta_values: tuple = (0.5, 1.0, 4.0)
    beta_steps: int = 0
    #: evaluation: held-out metrics every ``eval_every`` steps on the first ``eval_images`` images
    eval_every: int = 100
    eval_images: int = 500
    iwae_samples: int = 100
    #: the evaluation chapter: independent repeats of each IWAE estimate, the large K and its image count
    iwae_repeats: int = 4
    iwae_samples_large: int = 1000
    eval_images_large: int = 200
    #: Monte-Carlo sample counts used by the part-I checks
    mc_samples: int = 100_000

    def replace(self, **changes: Any) -> "Profile":
        """A copy with some fields changed (e.g. ``get_profile().replace(beta_steps=100)``)."""
        return dataclasses.replace(self, **changes)

    def family(self, name: str) -> RunSettings:
        """The run settings of model family ``name`` (``mlp``, ``autoencoder``, ``conv``, ``transformer``)."""
        key = {"autoencoder": "mlp"}.get(name, name)
        if key not in ("mlp", "conv", "transformer"):
            raise ValueError(f"`name` must be one of 'mlp', 'autoencoder', 'conv', 'transformer', got {name!r}.")
        return getattr(self, key)


#: the profiles by name: ``smoke``, ``cpu``, ``gpu``
PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        mlp=MLPSettings(steps=30, batch_size=64, learning_rate=3e-4),
        conv=ConvSettings(steps=10, batch_size=16, learning_rate=1e-3, channels=(8, 16), z_dim=8),
        transformer=TransformerSettings(steps=10, batch_size=16, learning_rate=1e-3, patch=4, hidden=32,
                                        depth=1, heads=2, z_dim=8),
        image_side=16,
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
        mlp=MLPSettings(steps=3000, batch_size=100, learning_rate=3e-4),
        conv=ConvSettings(steps=2000, batch_size=64, learning_rate=1e-3, channels=(32, 64, 128), z_dim=32),
        # patch 8: 16 tokens instead of 64, ~4x less work per step than patch 4 (bench/train_step.py)
        transformer=TransformerSettings(steps=2000, batch_size=64, learning_rate=1e-3, patch=8, hidden=128,
                                        depth=2, heads=4, z_dim=32),
        image_side=32,
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
        mlp=MLPSettings(steps=20_000, batch_size=100, learning_rate=3e-4),
        conv=ConvSettings(steps=20_000, batch_size=64, learning_rate=3e-4, channels=(32, 64, 128, 256), z_dim=64,
                          dtype="bfloat16"),
        transformer=TransformerSettings(steps=50_000, batch_size=64, learning_rate=3e-4, patch=8, hidden=256,
                                        depth=4, heads=4, z_dim=64, dtype="bfloat16"),
        image_side=64,
        faces_from_env=True,
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


#: environment variable that caps every step count of a profile (a quick end-to-end run of the gpu
#: profile's chapters, e.g. ``bench/gpu_check.py``); unset, the profiles train as tabled
MAX_STEPS_ENV_VAR = "VAE_BOOK_MAX_STEPS"


def max_steps() -> int | None:
    """``$VAE_BOOK_MAX_STEPS`` as a positive int, or None when unset; anything else is refused."""
    env = os.environ.get(MAX_STEPS_ENV_VAR, "").strip()
    if not env:
        return None
    if not env.isdigit() or int(env) < 1:
        raise ValueError(f"environment variable {MAX_STEPS_ENV_VAR} must be a positive integer (or unset), "
                         f"got {env!r}.")
    return int(env)


def get_profile(name: str | None = None) -> Profile:
    """The :class:`Profile` called ``name``, or the active one (see :func:`profile_name`) if None.

    With ``$VAE_BOOK_MAX_STEPS`` set, every step count of the profile (each family's ``steps`` and
    ``beta_steps``) is capped at it; the name stays, and the trained-model cache keys on the steps
    actually run, so a capped run never serves or replaces a full one.
    """
    if name is None:
        name = profile_name()
    if name not in PROFILES:
        raise ValueError(f"`name` must be one of {sorted(PROFILES)}, got {name!r}.")
    profile, cap = PROFILES[name], max_steps()
    if cap is None:
        return profile
    return profile.replace(**{f: getattr(profile, f).replace(steps=min(getattr(profile, f).steps, cap))
                              for f in ("mlp", "conv", "transformer")},
                           beta_steps=min(profile.beta_steps, cap))
