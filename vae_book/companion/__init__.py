"""Chapter-only helpers: the code behind one or two chapters' studies and figures.

Each module's docstring names the chapter that uses it. Nothing here is re-exported by
:mod:`vae_book` (it is not part of ``vae_book.__all__``): these helpers serve the book's
exposition, and the core library (models, objectives, training, evaluation, latent analysis)
does not depend on them.

* :mod:`vae_book.companion.toys` — chapter 1: toy latent-variable models;
* :mod:`vae_book.companion.kl_toys` — chapter 3: the KL divergence's pictures and toy fits;
* :mod:`vae_book.companion.estimators` — chapters 4 and 5: Monte-Carlo studies of the ELBO and of
  gradient estimators; :mod:`vae_book.companion.estimator_figures` draws their results;
* :mod:`vae_book.companion.inspection` — chapter 7: the transformer VAE's stages, step by step;
* :mod:`vae_book.companion.sweeps` — chapter 9: the beta sweep;
* :mod:`vae_book.companion.collapse` — chapter 9: posterior collapse at beta = 1 with an
  autoregressive decoder, KL warm-up and free bits.
"""
