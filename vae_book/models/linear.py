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

from vae_book import distributions as D
from vae_book._checks import check_array, check_positive_int


class LinearGaussianModel(nnx.Module):
    """Probabilistic PCA with a linear diagonal-Gaussian encoder; exact ``log_marginal`` and ``posterior``.

    Args:
        W: (D, k) decoder weights. b: (D,) offset. log_sigma: scalar decoder log sigma.
        seed: initialises the encoder parameters (A, c, s) randomly; use :meth:`set_encoder_to_posterior`
            to make q the exact posterior (possible when W has orthogonal columns).
    """

    likelihood = "gaussian"

    def __init__(self, W, b, log_sigma: float, *, seed: int = 0):
        W = np.asarray(W, np.float32)
        if W.ndim != 2:
            raise ValueError(f"`W` must have shape (D, k), got shape {W.shape}.")
        b = check_array(np.asarray(b, np.float32), "b", shape=(W.shape[0],))
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

    def encode(self, x):
        """q(z|x): (mean, log_std), each (batch, k)."""
        x = self._check_x(x)
        mean = x @ self.A[...].T + self.c[...]
        return mean, jnp.broadcast_to(self.s[...], mean.shape)

    def decode(self, z):
        """p(x|z): (mean, log_std), each (batch, D)."""
        mean = z @ self.W[...].T + self.b[...]
        return mean, jnp.full_like(mean, self.log_sigma[...])

    def log_likelihood(self, x, decoded):
        """log p(x|z) summed over the D dimensions: (batch,) nats."""
        mean, log_std = decoded
        return jnp.sum(D.gaussian_log_prob(x, mean, log_std), axis=-1)

    def decoder_std(self, decoded):
        return jnp.exp(decoded[1])

    def log_marginal(self, x):
        r"""Exact :math:`\log p(x) = \log\mathcal N(x; b, WW^\top+\sigma^2 I)`: (batch,) nats."""
        x = self._check_x(x)
        W = self.W[...]
        cov = W @ W.T + jnp.exp(2 * self.log_sigma[...]) * jnp.eye(self.data_dim)
        return jax.scipy.stats.multivariate_normal.logpdf(x, self.b[...], cov)

    def posterior(self, x):
        r"""Exact posterior p(z|x): ``(mean (batch, k), cov (k, k))``."""
        x = self._check_x(x)
        W, var = self.W[...], jnp.exp(2 * self.log_sigma[...])
        cov = jnp.linalg.inv(jnp.eye(self.z_dim) + W.T @ W / var)
        mean = (x - self.b[...]) @ W @ cov.T / var
        return mean, cov

    def set_encoder_to_posterior(self):
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

    def sample_data(self, key, n: int):
        """Draw n points x ~ p(x): (n, D)."""
        n = check_positive_int(n, "n")
        kz, kx = jax.random.split(key)
        z = jax.random.normal(kz, (n, self.z_dim))
        mean, log_std = self.decode(z)
        return mean + jnp.exp(log_std) * jax.random.normal(kx, mean.shape)
