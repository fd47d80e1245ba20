"""vae_book — the library behind The VAE Book: variational auto-encoders in JAX, Flax NNX and Optax.

Public API (each name is documented in its module; values are in nats per image unless stated):

Distributions (:mod:`vae_book.distributions`, parameterised by ``mean`` and ``log_std`` = log sigma)
    gaussian_log_prob      elementwise log N(x; mean, sigma^2), including -1/2 log 2 pi
    bernoulli_log_prob     elementwise log Bernoulli(x; sigmoid(logits)), stable for any logits
    kl_to_standard_normal  elementwise KL(N(mean, sigma^2) || N(0, 1))
    kl_diag_gaussians      elementwise KL between two diagonal Gaussians
    sample_diag_gaussian   reparameterized sample mean + sigma * eps

Objectives (:mod:`vae_book.objectives`)
    elbo                   per-example reconstruction, KL and ELBO = recon - KL
    vae_loss               the beta-weighted training loss and its metrics
    iwae_bound             the importance-weighted bound of Burda et al. (2016)
    score_function_grad    REINFORCE estimate of a gradient of E_q[f(z)]
    pathwise_grad          reparameterized estimate of a gradient of E_q[f(z)]

Models (:mod:`vae_book.models`)
    MLPVAE, ConvVAE, TransformerVAE   encode(x) -> (mean, log_std); decode(z) -> likelihood parameters
    MLPConfig, ConvConfig, TransformerConfig   their sizes
    LinearGaussianModel    probabilistic PCA with exact log p(x) and posterior

Data, training, caching, profiles
    load_dataset           mnist5k, shapes, mnist (download), image_folder: float32 NHWC in [0, 1]
    batches                shuffled, seeded batch iterator
    fit                    train with Adam, progress bar, evaluation and a NaN guard
    TrainingDiverged       what fit raises when the loss or a gradient becomes NaN / Inf
    fit_cached             fit once, then load from the trained-model cache
    save_model, load_model a checkpoint of a model's parameters (msgpack, hashed, atomic)
    restore_model          rebuild a saved model from its checkpoint alone -> (model, metadata)
    CheckpointError        a checkpoint that is missing, corrupt or for another model
    get_profile            the smoke / cpu / gpu run sizes
    train, Run             a model of the book by family name, sized by the profile and cached
"""

__version__ = "0.1.0"

from vae_book.cache import fit_cached  # noqa: E402
from vae_book.checkpoints import CheckpointError, load_model, restore_model, save_model  # noqa: E402
from vae_book.data import Dataset, batches, binarize, load_dataset  # noqa: E402
from vae_book.distributions import (  # noqa: E402
    bernoulli_log_prob,
    gaussian_log_prob,
    kl_diag_gaussians,
    kl_to_standard_normal,
    sample_diag_gaussian,
)
from vae_book.models import (  # noqa: E402
    ConvConfig,
    ConvVAE,
    LinearGaussianModel,
    MLPAutoencoder,
    MLPConfig,
    MLPVAE,
    TransformerConfig,
    TransformerVAE,
)
from vae_book.objectives import (  # noqa: E402
    elbo,
    iwae_bound,
    pathwise_grad,
    score_function_grad,
    vae_loss,
)
from vae_book.profiles import get_profile  # noqa: E402
from vae_book.runs import Run, train  # noqa: E402
from vae_book.train import History, TrainingDiverged, fit  # noqa: E402

__all__ = [
    "__version__",
    "gaussian_log_prob", "bernoulli_log_prob", "kl_to_standard_normal", "kl_diag_gaussians",
    "sample_diag_gaussian",
    "elbo", "vae_loss", "iwae_bound", "score_function_grad", "pathwise_grad",
    "MLPVAE", "MLPConfig", "MLPAutoencoder", "ConvVAE", "ConvConfig", "TransformerVAE", "TransformerConfig",
    "LinearGaussianModel",
    "Dataset", "load_dataset", "batches", "binarize",
    "fit", "History", "TrainingDiverged", "fit_cached", "save_model", "load_model", "restore_model",
    "CheckpointError", "get_profile", "train", "Run",
]
