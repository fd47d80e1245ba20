"""Training runs from one table: every model the book trains, sized by the profile and cached.

``runs.train(family, dataset, profile=..., **overrides)`` is the one way the chapters and the command
line (``python -m vae_book train``) train a model. It looks the family up in :data:`FAMILIES`, takes
its sizes and optimiser settings from the profile's typed settings
(:class:`vae_book.profiles.MLPSettings`, ...), loads the data with :func:`load_data`, and calls
:func:`vae_book.cache.fit_cached`, so the first caller that asks for a model trains it and every later
one — another chapter, a rebuild, the CLI with the same flags — loads it in seconds.

>>> run = train("mlp", z_dim=2)                 # the MLP VAE of chapter 6, on binarized mnist5k
>>> run = train("transformer", beta=1.0)        # chapter 7's model on the profile's images
>>> print(run)                                  # "what was run": device, data, size, steps, time
"""

from __future__ import annotations

import dataclasses
import functools
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from vae_book import data as data_lib
from vae_book import objectives
from vae_book._checks import as_float_images, check_number, check_path, check_positive_int, check_seed
from vae_book.cache import fit_cached
from vae_book.models.base import VAEConfig
from vae_book.models.conv import ConvConfig, ConvVAE
from vae_book.models.mlp import MLPAutoencoder, MLPConfig, MLPVAE
from vae_book.models.transformer import TransformerConfig, TransformerVAE
from vae_book.profiles import PROFILES, Profile, RunSettings, get_profile
from vae_book.train import History

__all__ = ["IMAGES", "DATASETS", "Family", "FAMILIES", "Run", "load_data", "model_config", "train"]

#: the profile's colour images: the face folder of ``$VAE_BOOK_DATA`` on a profile with
#: ``faces_from_env`` when it is set, else the procedural ``shapes``
IMAGES = "images"
#: the data sets :func:`load_data` knows
DATASETS = ("mnist5k", "shapes", "mnist", "image_folder", IMAGES)


@dataclass(frozen=True)
class Family:
    """One row of the run table: a model family, its default data and how a profile sizes it."""

    name: str  #: the family's key in :data:`FAMILIES` and the CLI's ``--model``
    title: str  #: how a run of it is named ("MLP VAE")
    model: type  #: the NNX module
    config: type  #: its config dataclass
    dataset: str  #: the data set it trains on unless told otherwise
    likelihood: str | None  #: its default decoder likelihood (None: the autoencoder, which has none)
    sizes: Callable[[RunSettings], dict]  #: config fields taken from the profile's settings
    loss_fn: Callable | None = None  #: a loss other than the beta-VAE loss
    side_multiple: Callable[[RunSettings], int] = lambda s: 1  #: images are zero-padded to a multiple


#: the run table: one :class:`Family` per model family the book trains
FAMILIES: dict[str, Family] = {
    "mlp": Family("mlp", "MLP VAE", MLPVAE, MLPConfig, "mnist5k", "bernoulli",
                  lambda s: dict(hidden=s.hidden, z_dim=s.z_dim)),
    "autoencoder": Family("autoencoder", "MLP autoencoder", MLPAutoencoder, MLPConfig, "mnist5k", None,
                          lambda s: dict(hidden=s.hidden, z_dim=s.z_dim), loss_fn=objectives.autoencoder_loss),
    "conv": Family("conv", "conv VAE", ConvVAE, ConvConfig, IMAGES, "gaussian",
                   lambda s: dict(channels=tuple(s.channels), z_dim=s.z_dim, min_log_std=s.min_log_std,
                                  dtype=s.dtype),
                   side_multiple=lambda s: 2 ** len(s.channels)),
    "transformer": Family("transformer", "transformer VAE", TransformerVAE, TransformerConfig, IMAGES, "gaussian",
                          lambda s: dict(patch=s.patch, hidden=s.hidden, depth=s.depth, heads=s.heads,
                                         z_dim=s.z_dim, min_log_std=s.min_log_std, dtype=s.dtype)),
}


def _choice(value, name: str, options) -> str:
    if value not in options:
        raise ValueError(f"`{name}` must be one of {list(options)}, got {value!r}.")
    return value


def _profile(profile) -> Profile:
    if isinstance(profile, str):
        _choice(profile, "profile", sorted(PROFILES))
    if profile is None or isinstance(profile, str):
        return get_profile(profile)
    if not isinstance(profile, Profile):
        raise ValueError(f"`profile` must be a profile name or a Profile, got {type(profile).__name__}.")
    return profile


@functools.cache
def _load(dataset: str, shapes_train: int, shapes_test: int, side: int, folder: str | None) -> data_lib.Dataset:
    if dataset == "mnist5k":
        return data_lib.mnist5k()
    if dataset == "mnist":
        return data_lib.mnist()
    if dataset == "image_folder":  # decoded once per machine (uint8 cache), float32 in the session
        ds = data_lib.image_folder(folder, size=side, cache=True)
        return dataclasses.replace(ds, train=as_float_images(ds.train), test=as_float_images(ds.test))
    return data_lib.shapes(num_train=shapes_train, num_test=shapes_test, size=side)


def load_data(dataset: str = IMAGES, *, profile: Profile | str | None = None, binarized: bool = False,
              data_path: str | Path | None = None) -> data_lib.Dataset:
    """The data set ``dataset`` as the profile sizes it (loaded once per session).

    * ``mnist5k`` / ``mnist``: grey levels in [0, 1], or with ``binarized=True`` each pixel drawn once
      from Bernoulli(intensity) (seed 0 for the training images, 1 for the held-out ones), so that a
      Bernoulli likelihood is a true likelihood;
    * ``shapes``: ``profile.shapes_train`` / ``shapes_test`` images of side ``profile.image_side``;
    * ``image_folder``: the images under ``data_path`` (default ``$VAE_BOOK_DATA``) resized to
      ``profile.image_side``, float32 in [0, 1]; decoded once per machine into the uint8 cache of
      :func:`vae_book.data.image_cache_dir` (later sessions and chapters open it instead of decoding);
    * ``images`` (:data:`IMAGES`): ``image_folder`` on a profile with ``faces_from_env`` when a folder
      is given, else ``shapes``.
    """
    profile = _profile(profile)
    _choice(dataset, "dataset", DATASETS)
    folder = data_path if data_path is not None else data_lib.default_image_folder()
    if dataset == IMAGES:
        dataset = "image_folder" if profile.faces_from_env and folder is not None else "shapes"
    if dataset == "image_folder" and folder is None:
        raise ValueError("`data_path` must name a folder of images for the image_folder data set "
                         "(or set the VAE_BOOK_DATA environment variable), got None.")
    if dataset == "image_folder" and not Path(check_path(folder, "data_path")).expanduser().is_dir():
        raise ValueError(f"`data_path` must be an existing folder of images, got {str(folder)!r}, "
                         f"which is not a folder.")
    ds = _load(dataset, profile.shapes_train, profile.shapes_test, profile.image_side,
               None if dataset != "image_folder" else str(folder))
    if binarized:
        ds = dataclasses.replace(ds, train=data_lib.binarize(ds.train, seed=0), test=data_lib.binarize(ds.test, seed=1))
    return ds


def _pad_to_multiple(images: np.ndarray, multiple: int) -> np.ndarray:
    h, w = images.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return images
    return np.pad(images, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))


def _family(family: str) -> Family:
    return FAMILIES[_choice(family, "family", FAMILIES)]


def model_config(family: str, *, profile: Profile | str | None = None, image_shape: Sequence[int] | None = None,
                 **overrides: Any) -> VAEConfig:
    """The config of ``family``'s model under ``profile``: sizes from its settings, then ``overrides``.

    ``image_shape`` defaults to that of the family's data set. An override that is not a field of the
    family's config is refused with its name.
    """
    fam, profile = _family(family), _profile(profile)
    fields = {f.name for f in dataclasses.fields(fam.config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        names = ", ".join(f"`{k}`" for k in unknown)
        raise ValueError(f"{names}: every setting must be a field of the {fam.title} ({fam.config.__name__}), one of "
                         f"{sorted(fields)}; got {unknown}.")
    kwargs = fam.sizes(profile.family(family))
    if fam.likelihood is not None:
        kwargs["likelihood"] = fam.likelihood
    if image_shape is None:
        image_shape = load_data(fam.dataset, profile=profile).image_shape
    kwargs["image_shape"] = tuple(int(d) for d in image_shape)
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return fam.config(**kwargs)


@dataclass(repr=False)
class Run:
    """A trained model with its history, data and the facts of how it was trained."""

    name: str
    model: object
    history: History
    info: dict
    profile: Profile
    dataset: str
    train_images: np.ndarray
    test_images: np.ndarray
    settings: dict = field(default_factory=dict)
    family: str = ""

    def summary(self) -> dict:
        """The "what was run" facts as a dict (device, profile, data set, parameters, steps, batch, time;
        the compute dtype for the conv and transformer VAEs, and the attention implementation for the
        transformer)."""
        n_params = sum(p.size for p in jax.tree.leaves(nnx.state(self.model, nnx.Param)))
        config = getattr(self.model, "config", None)
        facts = {
            "model": self.name,
            "device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
            "profile": self.profile.name,
            "data set": f"{self.dataset}: {len(self.train_images)} train / {len(self.test_images)} held-out images "
                        f"of {'x'.join(map(str, self.train_images.shape[1:]))}",
            "parameters": f"{n_params:,}",
            "code size": getattr(config, "z_dim", None),
            "likelihood": getattr(config, "likelihood", "bernoulli (cross-entropy)")
            if self.family != "autoencoder" else "bernoulli (cross-entropy)",
            "beta": self.settings.get("beta", "n/a (no KL term)"),
            "steps": self.history.steps,
            "batch size": self.settings.get("batch_size"),
            "wall time": f"{self.history.seconds:.1f} s"
                         + (" (loaded from the model cache)" if self.info.get("cached") else ""),
        }
        if getattr(config, "dtype", None) is not None:
            facts["precision"] = f"{config.dtype} compute, float32 parameters"
        if isinstance(self.model, TransformerVAE):
            facts["attention"] = f"jax.nn.dot_product_attention, implementation={self.model.attention!r}"
        return facts

    def __str__(self) -> str:
        return "\n".join(f"{k:>11}: {v}" for k, v in self.summary().items())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in self.summary().items())
        return f"<div class='vae-run'><b>What was run</b><table>{rows}</table></div>"


def train(family: str, dataset: str | None = None, *, profile: Profile | str | None = None,
          likelihood: str | None = None, beta: float = 1.0, steps: int | None = None,
          batch_size: int | None = None, learning_rate: float | None = None, seed: int = 0,
          data_path: str | Path | None = None, cache: bool | str | Path = True, progress: bool = True,
          **config: Any) -> Run:
    """Train (or load from the model cache) the model of ``family`` on ``dataset``; return a :class:`Run`.

    Args:
        family: a key of :data:`FAMILIES`: ``mlp``, ``autoencoder``, ``conv`` or ``transformer``.
        dataset: one of :data:`DATASETS`; default the family's (``mnist5k`` for the MLPs, the
            profile's ``images`` for the conv and transformer VAEs).
        profile: a name or a :class:`~vae_book.profiles.Profile`; default the active one.
        likelihood: ``bernoulli`` (the images are binarized) or ``gaussian``; default the family's.
        beta: KL weight (1 = the ELBO); not used by the autoencoder.
        steps, batch_size, learning_rate: default the profile's settings of the family.
        seed: initial parameters, batch order and sampling keys.
        cache: as in :func:`vae_book.cache.fit_cached` (True: the model cache; a path: that folder).
        **config: model config fields that differ from the profile's (``z_dim=2``, ``decoder_log_std=0.0``).
    """
    fam, profile = _family(family), _profile(profile)
    dataset = _choice(fam.dataset if dataset is None else dataset, "dataset", DATASETS)
    if fam.likelihood is None and likelihood is not None:
        raise ValueError(f"`likelihood` must be None for the {fam.title} (it has no likelihood), got {likelihood!r}.")
    likelihood = fam.likelihood if likelihood is None else _choice(likelihood, "likelihood", ("bernoulli", "gaussian"))
    # the cheap checks before the data is loaded and the model built (fit checks them again)
    steps = check_positive_int(steps, "steps", allow_none=True)
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
    if learning_rate is not None:
        learning_rate = check_number(learning_rate, "learning_rate", minimum=0.0, strict=True)
    if fam.loss_fn is None:
        beta = check_number(beta, "beta", minimum=0.0)
    seed = check_seed(seed)
    settings_of = profile.family(family)
    ds = load_data(dataset, profile=profile, binarized=likelihood in (None, "bernoulli"), data_path=data_path)
    multiple = fam.side_multiple(settings_of)
    train_x, test_x = _pad_to_multiple(ds.train, multiple), _pad_to_multiple(ds.test, multiple)
    if likelihood is not None:
        config["likelihood"] = likelihood
    cfg = model_config(family, profile=profile, image_shape=train_x.shape[1:], **config)
    model = fam.model(cfg, rngs=nnx.Rngs(seed))
    settings = dict(steps=settings_of.steps if steps is None else steps,
                    batch_size=settings_of.batch_size if batch_size is None else batch_size,
                    learning_rate=settings_of.learning_rate if learning_rate is None else learning_rate,
                    seed=seed, eval_every=profile.eval_every)
    if fam.loss_fn is None:
        settings["beta"] = beta
    desc = f"{fam.title} (z={cfg.z_dim}" + (f", beta={beta})" if fam.loss_fn is None else ")")
    history, info = fit_cached(model, train_x, cache=cache, loss_fn=fam.loss_fn,
                               eval_images=test_x[: profile.eval_images], progress=progress, desc=desc, **settings)
    return Run(fam.title, model, history, info, profile, ds.name, train_x, test_x, settings, family)
