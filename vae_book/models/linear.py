r"""A linear-Gaussian latent-variable model (probabilistic PCA) where everything is exact.

.. math::
    p(z) = \mathcal N(0, I_k), \qquad p(x\mid z) = \mathcal N(Wz + b,\ \sigma^2 I_D)

so that :math:`p(x) = \mathcal N(b,\ WW^\top + \sigma^2 I_D)` and the posterior is Gaussian with
covariance :math:`\Sigma = (I_k + W^\top W/\sigma^2)^{-1}` and mean :math:`\Sigma W^\top(x-b)/\sigma^2`.
With an amortized linear encoder :math:`q(z\mid x)=\mathcal N(Ax + c, \operatorname{diag} e^{2s})` it
has the VAE interface, so the ELBO and IWAE code can be checked against the exact :math:`\log p(x)`.
Inputs are flat vectors of shape (batch, D).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from vae_book import distributions as D
from vae_book._checks import check_array, check_number, check_positive_int, check_seed


class LinearGaussianModel(nnx.Module):
    """Probabilistic PCA with a linear diagonal-Gaussian encoder; exact ``log_marginal`` and ``posterior``.

    Args:
        W: (D, k) decoder weights. b: (D,) offset. log_sigma: scalar decoder log sigma.
        seed: initialises the encoder parameters (A, c, s) randomly; use :meth:`set_encoder_to_posterior`
            to make q the exact posterior (possible when W has orthogonal columns).
    """

    likelihood = "gaussian"

    def __init__(self, W: ArrayLike, b: ArrayLike, log_sigma: float, *, seed: int = 0) -> None:
        W = np.asarray(check_array(W, "W", ndim=2, finite=True), np.float32)
        b = np.asarray(check_array(b, "b", shape=(W.shape[0],), finite=True), np.float32)
        log_sigma = check_number(log_sigma, "log_sigma")
        seed = check_seed(seed)
        d, k = W.shape
        rng = np.random.default_rng(seed)
        self.W = nnx.Param(jnp.asarray(W))
        self.b = nnx.Param(jnp.asarray(b))
        self.log_sigma = nnx.Param(jnp.asarray(log_sigma, jnp.float32))
        self.A = nnx.Param(jnp.asarray(0.1 * rng.standard_normal((k, d)), jnp.float32))
        self.c = nnx.Param(jnp.zeros((k,), jnp.float32))
        self.s = nnx.Param(jnp.full((k,), -1.0, jnp.float32))

    @property
    def z_dim(self) -> int:
        return self.W.shape[1]

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    def _check_x(self, x):
        return check_array(x, "x", shape=(None, self.data_dim))

    def encode(self, x: ArrayLike) -> tuple[jax.Array, jax.Array]:
        """q(z|x): (mean, log_std), each (batch, k)."""
        x = self._check_x(x)
        mean = x @ self.A[...].T + self.c[...]
        return mean, jnp.broadcast_to(self.s[...], mean.shape)

    def decode(self, z: ArrayLike) -> tuple[jax.Array, jax.Array]:
        """p(x|z): (mean, log_std), each (batch, D)."""
        mean = z @ self.W[...].T + self.b[...]
        return mean, jnp.full_like(mean, self.log_sigma[...])

    def log_likelihood(self, x: ArrayLike, decoded: tuple[jax.Array, jax.Array]) -> jax.Array:
        """log p(x|z) summed over the D dimensions: (batch,) nats."""
        mean, log_std = decoded
        return jnp.sum(D.gaussian_log_prob(x, mean, log_std), axis=-1)

    def decoder_std(self, decoded: tuple[jax.Array, jax.Array]) -> jax.Array:
        return jnp.exp(decoded[1])

    def log_marginal(self, x: ArrayLike) -> jax.Array:
        r"""Exact :math:`\log p(x) = \log\mathcal N(x; b, WW^\top+\sigma^2 I)`: (batch,) nats."""
        x = self._check_x(x)
        W = self.W[...]
        cov = W @ W.T + jnp.exp(2 * self.log_sigma[...]) * jnp.eye(self.data_dim)
        return jax.scipy.stats.multivariate_normal.logpdf(x, self.b[...], cov)

    def posterior(self, x: ArrayLike) -> tuple[jax.Array, jax.Array]:
        r"""Exact posterior p(z|x): ``(mean (batch, k), cov (k, k))``."""
        x = self._check_x(x)
        W, var = self.W[...], jnp.exp(2 * self.log_sigma[...])
        cov = jnp.linalg.inv(jnp.eye(self.z_dim) + W.T @ W / var)
        mean = (x - self.b[...]) @ W @ cov.T / var
        return mean, cov

    def set_encoder_to_posterior(self) -> None:
        """Set A, c, s so that q(z|x) equals p(z|x); raises if the posterior is not diagonal."""
        W, var = self.W[...], jnp.exp(2 * self.log_sigma[...])
        cov = jnp.linalg.inv(jnp.eye(self.z_dim) + W.T @ W / var)
        off = cov - jnp.diag(jnp.diag(cov))
        if float(jnp.max(jnp.abs(off))) > 1e-5 * float(jnp.max(jnp.abs(cov))):
            raise ValueError("the exact posterior is not diagonal (W's columns are not orthogonal); "
                             "a diagonal q cannot match it.")
        A = cov @ W.T / var
        self.A[...] = A
        self.c[...] = -A @ self.b[...]
        self.s[...] = 0.5 * jnp.log(jnp.diag(cov))

    # ---- closed forms used by the ELBO chapter -------------------------------------------------

    def _q_params(self, x, mean, log_std):
        """(x, mean, log_std) broadcast to a common batch; q defaults to the encoder's output."""
        x = self._check_x(x)
        if (mean is None) != (log_std is None):
            raise ValueError("pass both `mean` and `log_std` of q (or neither, to use the encoder).")
        if mean is None:
            mean, log_std = self.encode(x)
        mean = check_array(mean, "mean", ndim=(1, 2))
        log_std = check_array(log_std, "log_std", ndim=(1, 2))
        for name, a in (("mean", mean), ("log_std", log_std)):
            if a.shape[-1] != self.z_dim:
                raise ValueError(f"`{name}` must have shape (batch, {self.z_dim}) or ({self.z_dim},), "
                                 f"got shape {tuple(a.shape)}.")
        batch = np.broadcast_shapes(x.shape[:-1], mean.shape[:-1], log_std.shape[:-1])
        return (jnp.broadcast_to(x, (*batch, self.data_dim)),
                jnp.broadcast_to(mean, (*batch, self.z_dim)),
                jnp.broadcast_to(log_std, (*batch, self.z_dim)))

    def posterior_precision(self) -> jax.Array:
        r"""Precision of the exact posterior, :math:`\Lambda = I_k + W^\top W/\sigma^2`: (k, k)."""
        W = self.W[...]
        return jnp.eye(self.z_dim) + W.T @ W / jnp.exp(2 * self.log_sigma[...])

    def expected_log_likelihood(self, x: ArrayLike, mean: ArrayLike | None = None,
                                log_std: ArrayLike | None = None) -> jax.Array:
        r"""Closed-form :math:`\mathbb E_{q}[\log p(x\mid z)]` for :math:`q=\mathcal N(m,\operatorname{diag}e^{2s})`:
        (batch,) nats.

        .. math::
            -\tfrac D2\log 2\pi - D\log\sigma
            - \frac{\lVert x - Wm - b\rVert^2 + \sum_j \lVert w_j\rVert^2 e^{2 s_j}}{2\sigma^2}

        ``mean``/``log_std`` default to the encoder's output for ``x``; they may be (batch, k) or (k,)
        and broadcast against ``x`` (batch, D), e.g. one ``x`` against many ``q``.
        """
        x, mean, log_std = self._q_params(x, mean, log_std)
        W, log_sigma = self.W[...], self.log_sigma[...]
        resid = x - mean @ W.T - self.b[...]
        spread = jnp.exp(2 * log_std) @ jnp.sum(jnp.square(W), axis=0)
        sq = jnp.sum(jnp.square(resid), axis=-1) + spread
        return -0.5 * self.data_dim * D.LOG_2PI - self.data_dim * log_sigma - 0.5 * sq * jnp.exp(-2 * log_sigma)

    def analytic_elbo(self, x: ArrayLike, mean: ArrayLike | None = None, log_std: ArrayLike | None = None
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
        r"""Closed-form ELBO, no sampling: ``(recon, kl, elbo)``, each (batch,) nats.

        ``recon`` is :meth:`expected_log_likelihood`, ``kl`` is :math:`\mathrm{KL}(q\,\|\,\mathcal N(0,I))`
        and ``elbo = recon - kl``. q defaults to the encoder's output (see :meth:`expected_log_likelihood`).
        """
        x, mean, log_std = self._q_params(x, mean, log_std)
        recon = self.expected_log_likelihood(x, mean, log_std)
        kl = jnp.sum(D.kl_to_standard_normal(mean, log_std), axis=-1)
        return recon, kl, recon - kl

    def kl_to_posterior(self, x: ArrayLike, mean: ArrayLike | None = None,
                        log_std: ArrayLike | None = None) -> jax.Array:
        r""":math:`\mathrm{KL}\big(q(z\mid x)\,\|\,p(z\mid x)\big)` from a diagonal q to the exact (full-covariance)
        posterior: (batch,) nats.

        With posterior mean :math:`\mu_x`, precision :math:`\Lambda` and :math:`q=\mathcal N(m, S)`,
        :math:`S=\operatorname{diag}e^{2s}`:

        .. math::
            \tfrac12\Big[\operatorname{tr}(\Lambda S) + (m-\mu_x)^\top\Lambda(m-\mu_x) - k
            - \log\det\Lambda - \textstyle\sum_j 2 s_j\Big].

        It equals :math:`\log p(x) - \mathcal L(x)` (the ELBO gap). q defaults to the encoder's output.
        """
        x, mean, log_std = self._q_params(x, mean, log_std)
        prec = self.posterior_precision()
        post_mean, _ = self.posterior(x)
        diff = mean - post_mean
        trace = jnp.exp(2 * log_std) @ jnp.diag(prec)
        maha = jnp.sum((diff @ prec) * diff, axis=-1)
        _, logdet = jnp.linalg.slogdet(prec)
        return 0.5 * (trace + maha - self.z_dim - logdet - 2 * jnp.sum(log_std, axis=-1))

    def mutual_information(self) -> jax.Array:
        r"""Mutual information :math:`I(x;z) = \tfrac12\log\det(I_k + W^\top W/\sigma^2)` under the model, in nats.

        Equal to the average :math:`\mathrm{KL}(p(z\mid x)\,\|\,p(z))` over :math:`x\sim p(x)`.
        """
        return 0.5 * jnp.linalg.slogdet(self.posterior_precision())[1]

    def sample_data(self, key: jax.Array, n: int) -> jax.Array:
        """Draw n points x ~ p(x): (n, D)."""
        n = check_positive_int(n, "n")
        kz, kx = jax.random.split(key)
        z = jax.random.normal(kz, (n, self.z_dim))
        mean, log_std = self.decode(z)
        return mean + jnp.exp(log_std) * jax.random.normal(kx, mean.shape)

    def sample_data_numpy(self, rng: np.random.Generator | int, n: int) -> np.ndarray:
        r"""Draw n points :math:`x = Wz + b + \sigma\varepsilon \sim p(x)` with NumPy: (n, D) float32.

        The same distribution as :meth:`sample_data`, drawn from a NumPy generator instead of a JAX
        key (in float64, rounded to float32 at the end): nothing is compiled, so a study over many
        models of different sizes pays no compilation per shape, and it shares one ``rng`` stream with
        NumPy Monte Carlo (chapter 1). The draw is :math:`z` (n, k) first, then :math:`\varepsilon` (n, D).

        Args:
            rng: a ``numpy.random.Generator`` (advanced in place) or an int seed. n: number of points.
        """
        n = check_positive_int(n, "n")
        if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            rng = np.random.default_rng(int(rng))
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"`rng` must be a numpy Generator or an int seed, got {type(rng).__name__} {rng!r}.")
        W, b = np.asarray(self.W[...], np.float64), np.asarray(self.b[...], np.float64)
        sigma = float(np.exp(np.asarray(self.log_sigma[...], np.float64)))
        z = rng.standard_normal((n, self.z_dim))
        return (z @ W.T + b + sigma * rng.standard_normal((n, self.data_dim))).astype(np.float32)
