"""Chapter-only helpers: the code behind one or two chapters' studies and figures.

Each module's docstring names the chapter that uses it. Nothing here is re-exported by
:mod:`vae_book` (it is not part of ``vae_book.__all__``): these helpers serve the book's
exposition, and the core library (models, objectives, training, evaluation, latent analysis)
does not depend on them.

* :mod:`vae_book.companion.toys` — chapters 1 and 3: toy latent-variable models and KL pictures;
* :mod:`vae_book.companion.estimators` — chapters 4 and 5: Monte-Carlo studies of the ELBO and of
  gradient estimators;
* :mod:`vae_book.companion.inspection` — chapter 7: the transformer VAE's stages, step by step;
* :mod:`vae_book.companion.sweeps` — chapter 9: the beta sweep.
"""
