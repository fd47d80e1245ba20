"""Ready-made training runs: the models the chapters train, sized by the active profile and cached.

Each ``train_*`` function builds a model, loads its data, and calls
:func:`vae_book.checkpoints.fit_cached`, so the first chapter that asks for a model trains it and
every later chapter (or build) that asks for the same one loads it in seconds. They return a
:class:`Run` that also knows how to describe itself ("what was run": device, profile, data, size,
steps, batch size, wall time).
"""

from __future__ import annotations

import functools
import html
import os
from dataclasses import dataclass, field

import jax
import numpy as np
from flax import nnx

from vae_book import data as data_lib
from vae_book import objectives
from vae_book.checkpoints import fit_cached
from vae_book.models.conv import ConvConfig, ConvVAE
from vae_book.models.mlp import MLPAutoencoder, MLPConfig, MLPVAE
from vae_book.models.transformer import TransformerConfig, TransformerVAE
from vae_book.profiles import Profile, get_profile
from vae_book.train import DEFAULT_LEARNING_RATE, History

__all__ = [
    "Run",
    "mnist_data",
    "shapes_data",
    "transformer_dataset",
    "train_mlp",
    "train_autoencoder",
    "train_conv",
    "train_transformer",
    "train_from_args",
]


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

    def summary(self) -> dict:
        """The "what was run" facts as a dict (device, profile, data set, parameters, steps, batch, time)."""
        n_params = self.model.num_params() if hasattr(self.model, "num_params") else sum(
            p.size for p in jax.tree.leaves(nnx.state(self.model, nnx.Param)))
        return {
            "model": self.name,
            "device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
            "profile": self.profile.name,
            "data set": f"{self.dataset}: {len(self.train_images)} train / {len(self.test_images)} held-out images "
                        f"of {'x'.join(map(str, self.train_images.shape[1:]))}",
            "parameters": f"{n_params:,}",
            "code size": getattr(getattr(self.model, "config", None), "z_dim", None),
            "likelihood": getattr(getattr(self.model, "config", None), "likelihood", "bernoulli (cross-entropy)"),
            "beta": self.settings.get("beta", "n/a (no KL term)"),
            "steps": self.history.steps,
            "batch size": self.settings.get("batch_size"),
            "wall time": f"{self.history.seconds:.1f} s" + (" (loaded from the model cache)" if self.info.get("cached") else ""),
        }

    def __str__(self) -> str:
        return "\n".join(f"{k:>11}: {v}" for k, v in self.summary().items())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in self.summary().items())
        return f"<div class='vae-run'><b>What was run</b><table>{rows}</table></div>"


@functools.cache
def _mnist5k():
    return data_lib.mnist5k()


def mnist_data(binarized: bool = True, seed: int = 0):
    """mnist5k images for the MLP models: ``(train, test, train_labels, test_labels)``.

    ``binarized=True`` draws each pixel once from Bernoulli(intensity) with ``seed`` (so a Bernoulli
    likelihood is a true likelihood); otherwise the grey levels in [0, 1].
    """
    ds = _mnist5k()
    if binarized:
        return (data_lib.binarize(ds.train, seed=seed), data_lib.binarize(ds.test, seed=seed + 1),
                ds.train_labels, ds.test_labels)
    return ds.train, ds.test, ds.train_labels, ds.test_labels


@functools.cache
def shapes_data(num_train: int, num_test: int, size: int, seed: int = 0) -> data_lib.Dataset:
    """The procedural ``shapes`` data set (cached in memory for the session)."""
    return data_lib.shapes(num_train=num_train, num_test=num_test, size=size, seed=seed)


def transformer_dataset(profile: Profile | None = None) -> data_lib.Dataset:
    """The transformer VAE's data: a face folder from ``$VAE_BOOK_DATA`` on the ``gpu`` profile, else ``shapes``."""
    profile = profile or get_profile()
    side = profile.transformer["image_side"]
    folder = data_lib.default_image_folder()
    if profile.name == "gpu" and folder is not None:
        return data_lib.image_folder(folder, size=side)
    return shapes_data(profile.shapes_train, profile.shapes_test, side)


def _finish(name, model, fit_out, profile, dataset, train, test, settings) -> Run:
    history, info = fit_out
    return Run(name, model, history, info, profile, dataset, train, test, settings)


def train_mlp(*, profile: Profile | None = None, likelihood: str = "bernoulli", z_dim: int = 20,
              hidden: int = 500, beta: float = 1.0, decoder_log_std: float | None = None,
              steps: int | None = None, seed: int = 0, cache=True, progress: bool = True) -> Run:
    """The MLP VAE on mnist5k (binarized for a Bernoulli likelihood, grey levels for a Gaussian one)."""
    profile = profile or get_profile()
    train, test, _, _ = mnist_data(binarized=likelihood == "bernoulli")
    config = MLPConfig(hidden=hidden, z_dim=z_dim, likelihood=likelihood, decoder_log_std=decoder_log_std)
    model = MLPVAE(config, rngs=nnx.Rngs(seed))
    settings = dict(steps=steps or profile.mlp_steps, batch_size=profile.mlp_batch, beta=beta, seed=seed,
                    eval_every=profile.eval_every)
    out = fit_cached(model, train, cache=cache, eval_images=test[: profile.eval_images], progress=progress,
                     desc=f"MLP VAE (z={z_dim}, beta={beta})", **settings)
    return _finish("MLP VAE", model, out, profile, "mnist5k", train, test, settings)


def train_autoencoder(*, profile: Profile | None = None, z_dim: int = 2, hidden: int = 500,
                      steps: int | None = None, seed: int = 0, cache=True, progress: bool = True) -> Run:
    """A plain (deterministic) MLP autoencoder on binarized mnist5k."""
    profile = profile or get_profile()
    train, test, _, _ = mnist_data(binarized=True)
    model = MLPAutoencoder(MLPConfig(hidden=hidden, z_dim=z_dim), rngs=nnx.Rngs(seed))
    settings = dict(steps=steps or profile.mlp_steps, batch_size=profile.mlp_batch, seed=seed,
                    eval_every=profile.eval_every)
    out = fit_cached(model, train, cache=cache, loss_fn=objectives.autoencoder_loss,
                     eval_images=test[: profile.eval_images], progress=progress,
                     desc=f"autoencoder (z={z_dim})", **settings)
    return _finish("MLP autoencoder", model, out, profile, "mnist5k", train, test, settings)


def transformer_config(profile: Profile | None = None, image_shape=None, **overrides) -> TransformerConfig:
    """The transformer VAE config of ``profile`` (sizes from ``profile.transformer``, the decoder's
    sigma floor from ``profile.transformer_min_log_std``)."""
    profile = profile or get_profile()
    t = profile.transformer
    side = t["image_side"]
    kwargs = dict(image_shape=image_shape or (side, side, 3), patch=t["patch"], hidden=t["hidden"],
                  depth=t["depth"], heads=t["heads"], z_dim=t["z_dim"],
                  min_log_std=profile.transformer_min_log_std)
    kwargs.update(overrides)
    return TransformerConfig(**kwargs)


def train_transformer(*, profile: Profile | None = None, beta: float = 1.0, steps: int | None = None,
                      seed: int = 0, cache=True, progress: bool = True, **config_overrides) -> Run:
    """The transformer VAE on the profile's data (``shapes``, or faces on a GPU with ``VAE_BOOK_DATA``)."""
    profile = profile or get_profile()
    ds = transformer_dataset(profile)
    model = TransformerVAE(transformer_config(profile, ds.image_shape, **config_overrides), rngs=nnx.Rngs(seed))
    settings = dict(steps=steps or profile.transformer_steps, batch_size=profile.transformer["batch"],
                    beta=beta, seed=seed, eval_every=profile.eval_every, learning_rate=profile.transformer_lr)
    out = fit_cached(model, ds.train, cache=cache, eval_images=ds.test[: profile.eval_images],
                     progress=progress, desc="transformer VAE", **settings)
    return _finish("transformer VAE", model, out, profile, ds.name, ds.train, ds.test, settings)


def train_conv(*, profile: Profile | None = None, dataset: str = "shapes", z_dim: int | None = None,
               beta: float = 1.0, steps: int | None = None, seed: int = 0, cache=True,
               progress: bool = True) -> Run:
    """The convolutional VAE on ``shapes`` (the transformer's data) or on ``mnist5k`` (padded to 32x32)."""
    profile = profile or get_profile()
    if dataset == "shapes":
        ds = transformer_dataset(profile)
        train, test = ds.train, ds.test
        z_dim = z_dim or profile.transformer["z_dim"]
    elif dataset == "mnist5k":
        train, test, _, _ = mnist_data(binarized=False)
        pad = ((0, 0), (2, 2), (2, 2), (0, 0))
        train, test = np.pad(train, pad), np.pad(test, pad)
        z_dim = z_dim or 20
    else:
        raise ValueError(f"`dataset` must be 'shapes' or 'mnist5k', got {dataset!r}.")
    model = ConvVAE(ConvConfig(image_shape=train.shape[1:], channels=tuple(profile.conv_channels), z_dim=z_dim,
                               min_log_std=profile.transformer_min_log_std), rngs=nnx.Rngs(seed))
    settings = dict(steps=steps or profile.conv_steps, batch_size=profile.transformer["batch"], beta=beta,
                    seed=seed, eval_every=profile.eval_every, learning_rate=profile.transformer_lr)
    out = fit_cached(model, train, cache=cache, eval_images=test[: profile.eval_images], progress=progress,
                     desc="conv VAE", **settings)
    return _finish("conv VAE", model, out, profile, dataset, train, test, settings)


def train_from_args(*, model: str, dataset: str, data_path=None, profile=None, steps=None, batch_size=None,
                    learning_rate=None, beta=1.0, likelihood=None, z_dim=None, seed=0, out=None) -> Run:
    """What ``python -m vae_book train`` runs: any model family on any data set, with the shared ``fit``.

    ``learning_rate=None`` takes the model family's default: :data:`vae_book.train.DEFAULT_LEARNING_RATE`
    for the MLP, the profile's ``transformer_lr`` for the conv and transformer VAEs (which also get the
    profile's decoder sigma floor).
    """
    prof = get_profile(profile)
    if data_path is not None:
        os.environ["VAE_BOOK_DATA"] = str(data_path)
    if dataset == "mnist5k":
        lik = likelihood or "bernoulli"
        train, test, _, _ = mnist_data(binarized=lik == "bernoulli")
    else:
        kwargs = {}
        if dataset == "shapes":
            side = prof.transformer["image_side"]
            kwargs = dict(num_train=prof.shapes_train, num_test=prof.shapes_test, size=side)
        elif dataset == "image_folder":
            folder = data_path or data_lib.default_image_folder()
            if folder is None:
                raise ValueError("`--dataset image_folder` needs --data-path or the VAE_BOOK_DATA variable.")
            kwargs = dict(path=folder, size=prof.transformer["image_side"])
        ds = data_lib.load_dataset(dataset, **kwargs)
        train, test = ds.train, ds.test
        lik = likelihood or ("bernoulli" if dataset == "mnist" else "gaussian")
        if lik == "bernoulli":
            train, test = data_lib.binarize(train, seed=seed), data_lib.binarize(test, seed=seed + 1)
    shape = train.shape[1:]
    rngs = nnx.Rngs(seed)
    if model == "mlp":
        net = MLPVAE(MLPConfig(image_shape=shape, z_dim=z_dim or 20, likelihood=lik), rngs=rngs)
    elif model == "conv":
        net = ConvVAE(ConvConfig(image_shape=shape, channels=tuple(prof.conv_channels), z_dim=z_dim or 32,
                                 likelihood=lik, min_log_std=prof.transformer_min_log_std), rngs=rngs)
    elif model == "transformer":
        overrides = {"likelihood": lik}
        if z_dim:
            overrides["z_dim"] = z_dim
        net = TransformerVAE(transformer_config(prof, shape, **overrides), rngs=rngs)
    else:
        raise ValueError(f"`model` must be 'mlp', 'conv' or 'transformer', got {model!r}.")
    default_steps = {"mlp": prof.mlp_steps, "conv": prof.conv_steps, "transformer": prof.transformer_steps}[model]
    default_batch = prof.mlp_batch if model == "mlp" else prof.transformer["batch"]
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATE if model == "mlp" else prof.transformer_lr
    settings = dict(steps=steps or default_steps, batch_size=batch_size or default_batch, beta=beta, seed=seed,
                    learning_rate=learning_rate, eval_every=prof.eval_every)
    fit_out = fit_cached(net, train, cache=out if out is not None else True,
                         eval_images=test[: prof.eval_images], **settings)
    return _finish(f"{model} VAE", net, fit_out, prof, dataset, train, test, settings)
