r"""Chapter 9's beta sweep: the same MLP VAE trained with KL weights beta, and what each run trades.

For every beta of the sweep, :func:`beta_sweep` trains (or loads from the model cache)
:func:`vae_book.runs.train` (``"mlp"``) with the loss :math:`-(\text{recon} - \beta\,\mathrm{KL})` and
measures on the held-out images

* the **rate** :math:`R = \mathbb E_x\,\mathrm{KL}(q(z\mid x)\,\Vert\,p(z))` (nats per image),
* the **distortion** :math:`D = -\mathbb E_x\,\mathbb E_{q(z\mid x)}\log p(x\mid z)` (nats per image),
* the ELBO :math:`-(D + R)`, the KL of each latent dimension and the number of active units,
* a few reconstructions and samples,

so that a chapter can plot the rate–distortion curve of Alemi et al. (2018) (with
:func:`vae_book.plotting.rate_distortion`) and explore the runs. The figures here take plain arrays
(e.g. ``sweep.betas``, ``sweep.unit_variances``) and an ``Axes``, never the trained models.

Chapter 9 (the balancing act).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike
from matplotlib.patches import Patch

from vae_book import evaluation, latent
from vae_book._checks import check_array, check_images, check_positive_int
from vae_book.data import batch_slices
from vae_book.plotting import axes_row, image_grid
from vae_book.profiles import Profile, get_profile

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "BetaPoint",
    "BetaSweep",
    "beta_sweep",
    "plot_active_units",
    "plot_kl_per_dim",
    "posterior_weights",
]


@dataclass
class BetaPoint:
    """One run of the sweep: its beta, the trained :class:`~vae_book.runs.Run` and held-out measurements."""

    beta: float
    run: object  #: the :class:`vae_book.runs.Run` (model, history, data)
    rate: float  #: mean KL(q(z|x) || p(z)) over the held-out images, nats per image
    distortion: float  #: mean -E_q log p(x|z), nats per image
    train_rate: float  #: the rate on the training images (what the run's objective was optimised on)
    train_distortion: float  #: the distortion on the training images, nats per image
    active_units: int  #: units with Var_x(E_q[z_u]) > 0.01 (:func:`vae_book.latent.latent_activity`)
    unit_variances: np.ndarray  #: (z_dim,) Var_x(E_q[z_u]) over the held-out images
    kl_per_dim: np.ndarray  #: (z_dim,) mean KL of each latent dimension over the held-out images, nats
    reconstructions: np.ndarray  #: (n, H, W, C) decoder means of the posterior means of the originals
    samples: np.ndarray  #: (m, H, W, C) decoder means of codes drawn from the prior

    @property
    def elbo(self) -> float:
        """Held-out ELBO -(D + R), nats per image (the true ELBO, whatever beta the model was trained with)."""
        return -(self.rate + self.distortion)


@dataclass
class BetaSweep:
    """The results of :func:`beta_sweep`, one :class:`BetaPoint` per beta (in increasing beta)."""

    points: list
    originals: np.ndarray  #: (n, H, W, C) the held-out images that were reconstructed
    steps: int  #: optimiser updates per run
    likelihood: str

    @property
    def betas(self) -> np.ndarray:
        return np.array([p.beta for p in self.points])

    @property
    def rates(self) -> np.ndarray:
        return np.array([p.rate for p in self.points])

    @property
    def distortions(self) -> np.ndarray:
        return np.array([p.distortion for p in self.points])

    @property
    def train_rates(self) -> np.ndarray:
        return np.array([p.train_rate for p in self.points])

    @property
    def train_distortions(self) -> np.ndarray:
        return np.array([p.train_distortion for p in self.points])

    @property
    def elbos(self) -> np.ndarray:
        return np.array([p.elbo for p in self.points])

    @property
    def active(self) -> np.ndarray:
        return np.array([p.active_units for p in self.points])

    @property
    def unit_variances(self) -> np.ndarray:
        """(runs, z_dim): Var_x(E_q[z_u]) of every unit of every run."""
        return np.stack([p.unit_variances for p in self.points])

    @property
    def kl_per_dim(self) -> np.ndarray:
        """(runs, z_dim): mean KL of every latent dimension of every run, nats."""
        return np.stack([p.kl_per_dim for p in self.points])

    def point(self, beta: float) -> BetaPoint:
        """The run with this beta (ValueError listing the betas if there is none)."""
        for p in self.points:
            if np.isclose(p.beta, beta):
                return p
        raise ValueError(f"`beta` must be one of the sweep's betas {list(self.betas)}, got {beta!r}.")

    def objective_matrix(self, split: str = "test") -> np.ndarray:
        r"""``M[i, j] = D_i + beta_j R_i``: the beta_j-objective (nats per image) of the model trained with beta_i.

        ``split="train"`` measures R and D on the training images, where the optimality inequalities
        hold for optimal runs; ``"test"`` (default) on the held-out images, where generalization can
        break them too. If every run had reached the optimum of its own objective, each column's
        minimum on the training images would be on the diagonal.
        """
        if split not in ("train", "test"):
            raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
        rates, dists = (self.train_rates, self.train_distortions) if split == "train" else (self.rates,
                                                                                           self.distortions)
        return dists[:, None] + self.betas[None, :] * rates[:, None]

    def frames(self, ncols: int | None = None) -> np.ndarray:
        """One image grid per beta, stacked: (B, H', W', C) in [0, 1].

        Each grid has a row of the held-out originals, a row of their reconstructions and rows of samples
        (``ncols`` images per row, default the number of originals).
        """
        ncols = ncols or len(self.originals)
        grids = []
        for p in self.points:
            imgs = np.concatenate([self.originals[:ncols], p.reconstructions[:ncols], p.samples], axis=0)
            grids.append(image_grid(imgs, ncols=ncols, pad=2, pad_value=1.0))
        return np.stack(grids)

    def table(self) -> pd.DataFrame:
        """A :class:`pandas.DataFrame`: beta, rate, distortion, ELBO (nats per image), active units."""
        import pandas as pd

        return pd.DataFrame({
            "beta": self.betas,
            "rate R (nats)": np.round(self.rates, 2),
            "distortion D (nats)": np.round(self.distortions, 2),
            "ELBO -(D+R) (nats)": np.round(self.elbos, 2),
            "active units": self.active,
        })


def beta_sweep(betas: Iterable[float] | None = None, *, profile: Profile | None = None, steps: int | None = None,
               likelihood: str = "bernoulli", z_dim: int = 20, hidden: int = 500, num_images: int = 8,
               num_samples: int = 16, num_mc: int = 4, seed: int = 0, cache: bool | str | os.PathLike = True,
               progress: bool = True) -> BetaSweep:
    r"""Train the MLP VAE of :func:`vae_book.runs.train` (``"mlp"``) once per beta and measure each run.

    Args:
        betas: KL weights; default the profile's ``beta_values``.
        profile: run sizes (default :func:`~vae_book.profiles.get_profile`).
        steps: optimiser updates per run; default the profile's ``beta_steps`` (the same budget for every beta).
        likelihood: ``"bernoulli"`` (binarized mnist5k) or ``"gaussian"`` (grey levels).
        z_dim, hidden: sizes of the MLP VAE (the defaults of ``train_mlp``).
        num_images: held-out images to reconstruct. num_samples: prior samples per run.
        num_mc: posterior samples per held-out image for the distortion.
        seed: model initialisation / batch-order seed (the same for every beta), and the sampling seed.
        cache, progress: passed to ``train_mlp``.

    Returns:
        :class:`BetaSweep` with the points in increasing beta. Rate and distortion are averages over
        all held-out images of the run (``run.test_images``), and over its training images
        (``train_rate``, ``train_distortion``), in nats per image.
    """
    from vae_book import runs

    profile = profile or get_profile()
    betas = profile.beta_values if betas is None else betas
    try:
        betas = sorted(float(b) for b in betas)
    except (TypeError, ValueError):
        raise ValueError(f"`betas` must be a sequence of non-negative numbers, got {betas!r}.") from None
    if not betas or any(not np.isfinite(b) or b < 0 for b in betas) or len(set(betas)) != len(betas):
        raise ValueError(f"`betas` must be a non-empty sequence of distinct non-negative numbers, got {betas!r}.")
    steps = check_positive_int(steps or profile.beta_steps, "steps")
    num_images = check_positive_int(num_images, "num_images")
    num_samples = check_positive_int(num_samples, "num_samples")
    num_mc = check_positive_int(num_mc, "num_mc")
    points, originals = [], None
    for beta in betas:
        run = runs.train("mlp", profile=profile, likelihood=likelihood, z_dim=z_dim, hidden=hidden, beta=beta,
                         steps=steps, seed=seed, cache=cache, progress=progress)
        model, test = run.model, run.test_images
        originals = np.asarray(test[:num_images])
        key = jax.random.key(seed)
        rate, dist = evaluation.rate_distortion(model, test, jax.random.fold_in(key, 1), num_samples=num_mc)
        train_rate, train_dist = evaluation.rate_distortion(model, run.train_images, jax.random.fold_in(key, 3),
                                                            num_samples=num_mc)
        act = latent.latent_activity(*latent.encode(model, test))  # one encoder pass per run
        points.append(BetaPoint(
            beta=beta, run=run, rate=rate, distortion=dist, train_rate=train_rate, train_distortion=train_dist,
            active_units=int(act["active"].sum()),
            unit_variances=act["mean_var"], kl_per_dim=act["kl"],
            reconstructions=np.asarray(model.reconstruct(jnp.asarray(originals))),
            samples=np.asarray(model.sample(jax.random.fold_in(key, 2), num_samples)),
        ))
    return BetaSweep(points=points, originals=originals, steps=steps, likelihood=likelihood)


# --------------------------------------------------------------------------------------------------
# the optimal decoder of a fixed encoder
# --------------------------------------------------------------------------------------------------


def posterior_weights(model: nnx.Module, train_images: ArrayLike, z: ArrayLike, *, batch_size: int = 500,
                      chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    r"""Weights :math:`w_i(z) = q(z\mid x_i) / \sum_j q(z\mid x_j)` of the training images at codes ``z``;
    weighted means.

    For a *fixed* encoder, the decoder mean that maximises the average reconstruction term
    :math:`\frac1N\sum_i\mathbb E_{q(z\mid x_i)}[\log p(x_i\mid z)]` — for a Gaussian or a Bernoulli
    likelihood — is, at every ``z``, the average of the training images weighted by how likely each
    would have produced ``z``: :math:`\mu^*(z) = \sum_i w_i(z)\,x_i`.

    Args:
        model: a VAE. train_images: (N, H, W, C) in [0, 1].
        z: codes, (M, z_dim), or one code (z_dim,).
        batch_size: images per encoder call. chunk: codes per vectorised weight computation.

    Returns:
        ``(weights, mean_images)``: (M, N) float64, each row summing to 1, and (M, H, W, C) float64
        (without the M axis if ``z`` was one code).
    """
    train_images = check_images(train_images, "train_images")
    z = np.asarray(check_array(z, "z", ndim=(1, 2)), np.float64)
    single = z.ndim == 1
    z = z.reshape(1, -1) if single else z
    mean, log_std = (np.asarray(a, np.float64) for a in latent.encode(model, train_images, batch_size=batch_size))
    if z.shape[1] != mean.shape[1]:
        raise ValueError(f"`z` must have {mean.shape[1]} entries per code (the model's z_dim), got {z.shape[1]}.")
    x = np.asarray(train_images, np.float64).reshape(len(mean), -1)
    inv = np.exp(-log_std)
    weights = []
    for sl in batch_slices(len(z), chunk):
        zc = z[sl, None, :]  # (m, 1, z_dim)
        log_q = np.sum(-0.5 * np.log(2 * np.pi) - log_std - 0.5 * ((zc - mean) * inv) ** 2, axis=-1)  # (m, N)
        w = np.exp(log_q - log_q.max(axis=1, keepdims=True))
        weights.append(w / w.sum(axis=1, keepdims=True))
    weights = np.concatenate(weights)
    means = (weights @ x).reshape(len(z), *train_images.shape[1:])
    return (weights[0], means[0]) if single else (weights, means)


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------


def _check_runs(betas, per_unit: dict, per_run: dict):
    """The arrays of a figure over runs: ``betas`` (P,), each ``per_unit`` (P, z_dim), each ``per_run`` (P,)."""
    b = np.asarray(check_array(betas, "betas", ndim=1, finite=True), np.float64)
    out = [b]
    for name, v in per_unit.items():
        out.append(np.asarray(check_array(v, name, shape=(len(b), None), finite=True), np.float64))
    for name, v in per_run.items():
        out.append(np.asarray(check_array(v, name, shape=(len(b),), finite=True), np.float64))
    return out


def plot_active_units(ax: Axes, betas: ArrayLike, unit_variances: ArrayLike, rates: ArrayLike, *,
                      thresholds: Sequence[float] = (0.01,), z_dim: int | None = None) -> Axes:
    """Active units for each threshold on Var_x(E_q[z_u]) (left axis) and rate (right axis) against beta
    (log axis).

    Args:
        betas: (P,) the KL weights of the runs (positive: the axis is logarithmic).
        unit_variances: (P, z_dim) Var_x(E_q[z_u]) of each run (``sweep.unit_variances``).
        rates: (P,) held-out rates, nats per image.

    Returns ``ax``; the rate is drawn on a twin axis.
    """
    from matplotlib.ticker import NullFormatter

    b, var, rates = _check_runs(betas, {"unit_variances": unit_variances}, {"rates": rates})
    for k, t in enumerate(thresholds):
        counts = np.sum(var > t, axis=1)
        ax.plot(b, counts, "o-" if k == 0 else "o--", color="C0", alpha=1.0 if k == 0 else 0.55,
                label=f"active units (Var > {t:g})")
    if z_dim:
        ax.axhline(z_dim, color="0.4", ls=":", lw=1, label=f"z_dim = {z_dim}")
    ax.set_xscale("log")
    ax.set_xticks(b)
    ax.set_xticklabels([f"{v:g}" for v in b])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("β (KL weight in training)")
    ax.set_ylabel("active units  (Var_x E_q[z_u] > threshold)", color="C0")
    ax.set_ylim(0, (z_dim or var.shape[1]) * 1.15)
    ax2 = ax.twinx()
    ax2.plot(b, rates, "s-", color="C3", label="rate R")
    ax2.set_ylabel("rate R [nats per image]", color="C3")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    return ax


def plot_kl_per_dim(axes: Sequence[Axes] | None, betas: ArrayLike, kl_per_dim: ArrayLike, unit_variances: ArrayLike,
                    rates: ArrayLike, *, thresholds: tuple[float, float] = (0.01, 0.1)) -> Sequence[Axes] | np.ndarray:
    """Bars of the KL of each latent dimension (sorted, largest first), one panel per run.

    Args:
        axes: one Axes per run. betas: (P,) the runs' KL weights.
        kl_per_dim, unit_variances: (P, z_dim) per-dimension KL (nats) and Var_x(E_q[z_u]) of each run.
        rates: (P,) held-out rates, nats per image (shown in the titles).

    Bars are coloured by the variance of the unit's posterior mean over the held-out images: above
    ``thresholds[1]`` dark blue, between the two thresholds light blue, below ``thresholds[0]``
    (inactive by Burda's criterion) grey. All panels share the KL axis. Returns ``axes``.
    """
    b, kl, var_all, rates = _check_runs(betas, {"kl_per_dim": kl_per_dim, "unit_variances": unit_variances},
                                        {"rates": rates})
    axes = axes_row(axes, len(b), "beta")
    lo, hi = thresholds
    top = float(kl.max()) * 1.1
    for ax, beta, kl_u, var_u, rate in zip(axes, b, kl, var_all, rates):
        order = np.argsort(-kl_u)
        var = var_u[order]
        colours = np.where(var > hi, "C0", np.where(var > lo, "#9ecae1", "0.6"))
        ax.bar(np.arange(len(order)), kl_u[order], color=colours)
        ax.set_xticks(np.arange(len(order)))
        ax.set_xticklabels([str(i) for i in order], fontsize=7)
        ax.set_xlabel("latent dimension (sorted by KL)")
        ax.set_ylabel("mean KL(q(z_u|x) || N(0,1)) [nats]")
        ax.set_ylim(0, top if top > 0 else 1)
        ax.set_title(f"β = {beta:g}: rate {rate:.1f} nats; active units {int(np.sum(var > lo))} (Var > {lo:g}), "
                     f"{int(np.sum(var > hi))} (Var > {hi:g})")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(handles=[Patch(color="C0", label=f"Var_x E_q[z_u] > {hi:g}"),
                           Patch(color="#9ecae1", label=f"{lo:g} < Var <= {hi:g}"),
                           Patch(color="0.6", label=f"Var <= {lo:g} (inactive)")], fontsize=8, loc="upper right")
    return axes
