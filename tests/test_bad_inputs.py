"""The bad-input table: every public function, the model configs and the CLI, called wrongly.

Each row is one call with one bad argument. It must raise ``ValueError`` or ``TypeError`` (the CLI:
exit with status 2) whose message names the argument, says what was expected (``must``, ``one of``)
and shows what came (``got``). A row that returns instead fails: nothing bad passes silently.
The row ids say what is wrong (``vae_loss-beta-nan``); ``test_the_table_is_large`` keeps it at 200+ rows.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import vae_book as V
from vae_book import __main__ as cli
from vae_book import cache as K
from vae_book import checkpoints as C
from vae_book import data as Dt
from vae_book import distributions as D
from vae_book import evaluation as E
from vae_book import latent as L
from vae_book import objectives as O
from vae_book import parallel as Pa
from vae_book import plotting as P
from vae_book import runs as R
from vae_book import shapes_score as Ss
T = importlib.import_module("vae_book.train")  # `vae_book.train` is the runs.train function
from vae_book import widgets as W
from vae_book.companion import collapse as Co
from vae_book.models import conv as Cv
from vae_book.models.conv import ConvConfig
from vae_book.models.mlp import MLPAutoencoder, MLPConfig, MLPVAE
from vae_book.models.transformer import TransformerConfig, attention_implementation

NAN, INF = float("nan"), float("inf")
KEY = jax.random.key(0)
X = (np.random.default_rng(0).uniform(size=(8, 6, 6, 1)) > 0.5).astype(np.float32)
GREY = np.random.default_rng(1).uniform(size=(8, 6, 6, 1)).astype(np.float32)
CFG = MLPConfig(image_shape=(6, 6, 1), hidden=8, z_dim=2)
V2 = np.zeros(2, np.float32)  # a (d,) vector for the gradient estimators
CODES = np.zeros((8, 2), np.float32)


@functools.cache
def model():
    return MLPVAE(CFG, rngs=nnx.Rngs(0))


@functools.cache
def autoencoder():
    return MLPAutoencoder(CFG, rngs=nnx.Rngs(0))


def square(z):
    return jnp.sum(z**2)


def vector_valued(z):
    return z**2


def with_value(x, value):
    x = x.copy()
    x.flat[0] = value
    return x


def _fit(**kw):
    args = dict(steps=2, batch_size=4, progress=False)
    args.update(kw)
    images = args.pop("train_images", X)
    return T.fit(MLPVAE(CFG, rngs=nnx.Rngs(0)), images, **args)


def _fit_cached(tmp, **kw):
    args = dict(steps=2, batch_size=4, progress=False, cache=tmp / "cache")
    args.update(kw)
    return K.fit_cached(MLPVAE(CFG, rngs=nnx.Rngs(0)), X, **args)


def _dataset(**kw):
    args = dict(name="d", train=np.zeros((4, 6, 6, 1), np.float32), test=np.zeros((2, 6, 6, 1), np.float32))
    args.update(kw)
    return Dt.Dataset(**args)


def _folder(tmp, **kw):
    from PIL import Image

    (tmp / "imgs").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp / "imgs" / "a.png")
    return Dt.image_folder(**{"path": tmp / "imgs", **kw})


def _file(tmp):
    (tmp / "a_file").write_text("x")
    return tmp / "a_file"


# Each row: (id, call, argument named in the message). ``call`` takes a fresh temporary folder.
ROWS: list[tuple[str, object, str]] = []


def row(id_: str, name: str):
    def register(call):
        ROWS.append((id_, call, name))
        return call
    return register


def rows(prefix: str, name: str, calls: dict):
    for suffix, call in calls.items():
        ROWS.append((f"{prefix}-{name}-{suffix}", call, name))


# ------------------------------------------------------------------------------ distributions
rows("gaussian_log_prob", "x", {
    "str": lambda t: D.gaussian_log_prob("a", 0.0, 0.0),
    "int-dtype": lambda t: D.gaussian_log_prob(np.arange(3), 0.0, 0.0),
    "none": lambda t: D.gaussian_log_prob(None, 0.0, 0.0)})
rows("gaussian_log_prob", "mean", {"str": lambda t: D.gaussian_log_prob(0.0, "m", 0.0)})
rows("gaussian_log_prob", "log_std", {
    "str": lambda t: D.gaussian_log_prob(0.0, 0.0, "s"),
    "shape": lambda t: D.gaussian_log_prob(np.zeros(3, np.float32), 0.0, np.zeros(4, np.float32))})
rows("standard_normal_log_prob", "z", {
    "str": lambda t: D.standard_normal_log_prob("z"),
    "int-dtype": lambda t: D.standard_normal_log_prob(np.arange(3))})
rows("bernoulli_log_prob", "x", {
    "above-1": lambda t: D.bernoulli_log_prob(np.float32([2.0]), np.float32([0.0])),
    "below-0": lambda t: D.bernoulli_log_prob(np.float32([-0.5]), np.float32([0.0])),
    "nan": lambda t: D.bernoulli_log_prob(np.float32([NAN]), np.float32([0.0])),
    "255": lambda t: D.bernoulli_log_prob(X * 255, np.zeros_like(X)),
    "str": lambda t: D.bernoulli_log_prob("x", np.float32([0.0]))})
rows("bernoulli_log_prob", "logits", {
    "str": lambda t: D.bernoulli_log_prob(X, "l"),
    "shape": lambda t: D.bernoulli_log_prob(X, np.zeros((3, 5), np.float32))})
rows("kl_to_standard_normal", "mean", {
    "str": lambda t: D.kl_to_standard_normal("m", 0.0),
    "int-dtype": lambda t: D.kl_to_standard_normal(np.arange(2), 0.0)})
rows("kl_to_standard_normal", "log_std", {
    "str": lambda t: D.kl_to_standard_normal(0.0, "s"),
    "shape": lambda t: D.kl_to_standard_normal(np.zeros(3, np.float32), np.zeros(2, np.float32))})
for arg in ("mean_q", "log_std_q", "mean_p", "log_std_p"):
    rows("kl_diag_gaussians", arg, {
        "str": lambda t, a=arg: D.kl_diag_gaussians(**{"mean_q": 0.0, "log_std_q": 0.0, "mean_p": 0.0,
                                                       "log_std_p": 0.0, a: "bad"})})
rows("kl_diag_gaussians", "log_std_p", {
    "shape": lambda t: D.kl_diag_gaussians(0.0, 0.0, np.zeros(3, np.float32), np.zeros(2, np.float32))})
rows("sample_diag_gaussian", "key", {
    "int": lambda t: D.sample_diag_gaussian(0, V2, V2),
    "str": lambda t: D.sample_diag_gaussian("k", V2, V2),
    "float-array": lambda t: D.sample_diag_gaussian(np.zeros(2, np.float32), V2, V2)})
rows("sample_diag_gaussian", "mean", {"str": lambda t: D.sample_diag_gaussian(KEY, "m", V2)})
rows("sample_diag_gaussian", "log_std", {
    "shape": lambda t: D.sample_diag_gaussian(KEY, V2, np.zeros(3, np.float32))})
rows("sample_diag_gaussian", "num_samples", {
    "zero": lambda t: D.sample_diag_gaussian(KEY, V2, V2, 0),
    "negative": lambda t: D.sample_diag_gaussian(KEY, V2, V2, -1),
    "float": lambda t: D.sample_diag_gaussian(KEY, V2, V2, 2.5),
    "bool": lambda t: D.sample_diag_gaussian(KEY, V2, V2, True)})

# ------------------------------------------------------------------------------ objectives
for fn in ("elbo", "vae_loss"):
    f = getattr(O, fn)
    rows(fn, "x", {
        "255": lambda t, f=f: f(model(), X * 255, KEY),
        "nan": lambda t, f=f: f(model(), with_value(X, NAN), KEY),
        "rank-3": lambda t, f=f: f(model(), X[0], KEY),
        "image-shape": lambda t, f=f: f(model(), np.zeros((2, 5, 5, 1), np.float32), KEY),
        "int-dtype": lambda t, f=f: f(model(), X.astype(np.int32), KEY)})
    rows(fn, "key", {"int": lambda t, f=f: f(model(), X, 0), "none": lambda t, f=f: f(model(), X, None)})
rows("elbo", "model", {"none": lambda t: O.elbo(None, X, KEY), "str": lambda t: O.elbo("mlp", X, KEY)})
rows("elbo", "analytic_kl", {"str": lambda t: O.elbo(model(), X, KEY, analytic_kl="no")})
rows("vae_loss", "beta", {
    "negative": lambda t: O.vae_loss(model(), X, KEY, beta=-1.0),
    "nan": lambda t: O.vae_loss(model(), X, KEY, beta=NAN),
    "inf": lambda t: O.vae_loss(model(), X, KEY, beta=INF),
    "numpy-nan": lambda t: O.vae_loss(model(), X, KEY, beta=np.float32(NAN)),
    "jax-negative": lambda t: O.vae_loss(model(), X, KEY, beta=jnp.asarray(-2.0)),
    "str": lambda t: O.vae_loss(model(), X, KEY, beta="1"),
    "none": lambda t: O.vae_loss(model(), X, KEY, beta=None),
    "vector": lambda t: O.vae_loss(model(), X, KEY, beta=np.ones(3))})
rows("vae_loss", "free_bits", {
    "negative": lambda t: O.vae_loss(model(), X, KEY, free_bits=-0.5),
    "nan": lambda t: O.vae_loss(model(), X, KEY, free_bits=NAN),
    "str": lambda t: O.vae_loss(model(), X, KEY, free_bits="0.5"),
    "none": lambda t: O.vae_loss(model(), X, KEY, free_bits=None)})
rows("autoencoder_loss", "x", {
    "255": lambda t: O.autoencoder_loss(autoencoder(), X * 255),
    "image-shape": lambda t: O.autoencoder_loss(autoencoder(), np.zeros((2, 5, 5, 1), np.float32))})
for fn in ("iwae_bound", "log_importance_weights"):
    f = getattr(O, fn)
    rows(fn, "num_samples", {
        "zero": lambda t, f=f: f(model(), X, KEY, 0),
        "float": lambda t, f=f: f(model(), X, KEY, 1.5),
        "str": lambda t, f=f: f(model(), X, KEY, "8")})
    rows(fn, "chunk_size", {"zero": lambda t, f=f: f(model(), X, KEY, 4, chunk_size=0)})
    rows(fn, "key", {"int": lambda t, f=f: f(model(), X, 3, 4)})
    rows(fn, "x", {"255": lambda t, f=f: f(model(), X * 255, KEY, 4)})
for fn in ("pathwise_grad", "score_function_grad"):
    f = getattr(O, fn)
    rows(fn, "f", {
        "not-callable": lambda t, f=f: f("square", KEY, V2, V2, 4),
        "vector-valued": lambda t, f=f: f(vector_valued, KEY, V2, V2, 4)})
    rows(fn, "mean", {
        "rank-2": lambda t, f=f: f(square, KEY, CODES, CODES, 4),
        "str": lambda t, f=f: f(square, KEY, "m", V2, 4)})
    rows(fn, "log_std", {"shape": lambda t, f=f: f(square, KEY, V2, np.zeros(3, np.float32), 4)})
    rows(fn, "num_samples", {"zero": lambda t, f=f: f(square, KEY, V2, V2, 0),
                             "float": lambda t, f=f: f(square, KEY, V2, V2, 2.0)})
    rows(fn, "key", {"int": lambda t, f=f: f(square, 1, V2, V2, 4)})
rows("score_function_grad", "baseline", {
    "str": lambda t: O.score_function_grad(square, KEY, V2, V2, 4, baseline="0"),
    "nan": lambda t: O.score_function_grad(square, KEY, V2, V2, 4, baseline=NAN)})

# ------------------------------------------------------------------------------ model configs
for Config in (MLPConfig, ConvConfig, TransformerConfig):
    n = Config.__name__
    side = 8 if Config is not MLPConfig else 6
    rows(n, "image_shape", {
        "zero": lambda t, c=Config: c(image_shape=(0, 8, 1)),
        "negative": lambda t, c=Config: c(image_shape=(-8, 8, 1)),
        "float": lambda t, c=Config: c(image_shape=(8.7, 8, 1)),
        "two-axes": lambda t, c=Config: c(image_shape=(8, 8)),
        "str": lambda t, c=Config: c(image_shape="28x28"),
        "none": lambda t, c=Config: c(image_shape=None)})
    rows(n, "z_dim", {
        "zero": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), z_dim=0),
        "float": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), z_dim=2.5),
        "str": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), z_dim="2"),
        "bool": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), z_dim=True)})
    rows(n, "likelihood", {
        "unknown": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), likelihood="normal"),
        "none": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), likelihood=None)})
    rows(n, "decoder_log_std", {
        "nan": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), likelihood="gaussian", decoder_log_std=NAN),
        "inf": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), likelihood="gaussian", decoder_log_std=INF),
        "str": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), likelihood="gaussian", decoder_log_std="0")})
    rows(n, "min_log_std", {
        "nan": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), min_log_std=NAN),
        "-inf": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), min_log_std=-INF),
        "str": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), min_log_std="-5"),
        "none": lambda t, c=Config, s=side: c(image_shape=(s, s, 1), min_log_std=None)})
for Config, sizes in ((ConvConfig, dict(channels=(8,))), (TransformerConfig, dict(patch=4))):
    rows(Config.__name__, "dtype", {
        "float16": lambda t, c=Config, k=sizes: c(image_shape=(8, 8, 1), dtype="float16", **k),
        "jnp-type": lambda t, c=Config, k=sizes: c(image_shape=(8, 8, 1), dtype=jnp.bfloat16, **k),
        "none": lambda t, c=Config, k=sizes: c(image_shape=(8, 8, 1), dtype=None, **k)})
rows("subpixel_kernel", "transposed", {
    "3x3": lambda t: Cv.subpixel_kernel(jnp.zeros((3, 3, 2, 2))),
    "rank-3": lambda t: Cv.subpixel_kernel(jnp.zeros((4, 4, 2))),
    "int-dtype": lambda t: Cv.subpixel_kernel(np.zeros((4, 4, 2, 2), np.int32)),
    "str": lambda t: Cv.subpixel_kernel("kernel")})
rows("recognisability_columns", "results", {
    "empty": lambda t: Ss.recognisability_columns({}),
    "floats": lambda t: Ss.recognisability_columns({"a": 0.5}),
    "none": lambda t: Ss.recognisability_columns(None)})
rows("conv.parameter_counts", "model", {
    "mlp": lambda t: Cv.parameter_counts(MLPVAE(MLPConfig(hidden=4, z_dim=2), rngs=nnx.Rngs(0))),
    "none": lambda t: Cv.parameter_counts(None)})
rows("attention_implementation", "dtype", {"unknown": lambda t: attention_implementation("bfloat17", "gpu")})
rows("attention_implementation", "backend", {"int": lambda t: attention_implementation("bfloat16", 0)})
rows("MLPConfig", "hidden", {"zero": lambda t: MLPConfig(hidden=0), "str": lambda t: MLPConfig(hidden="64")})
rows("ConvConfig", "channels", {
    "empty": lambda t: ConvConfig(image_shape=(8, 8, 1), channels=()),
    "zero": lambda t: ConvConfig(image_shape=(8, 8, 1), channels=(0, 8)),
    "str": lambda t: ConvConfig(image_shape=(8, 8, 1), channels=("a",))})
rows("ConvConfig", "image_shape", {
    "not-divisible": lambda t: ConvConfig(image_shape=(10, 10, 1), channels=(8, 8, 8))})
rows("TransformerConfig", "patch", {
    "zero": lambda t: TransformerConfig(image_shape=(8, 8, 1), patch=0),
    "not-dividing": lambda t: TransformerConfig(image_shape=(8, 8, 1), patch=3)})
rows("TransformerConfig", "heads", {
    "zero": lambda t: TransformerConfig(image_shape=(8, 8, 1), patch=4, heads=0),
    "not-dividing": lambda t: TransformerConfig(image_shape=(8, 8, 1), patch=4, hidden=30, heads=4)})
rows("TransformerConfig", "depth", {"zero": lambda t: TransformerConfig(image_shape=(8, 8, 1), patch=4, depth=0)})
rows("TransformerConfig", "hidden", {"zero": lambda t: TransformerConfig(image_shape=(8, 8, 1), patch=4, hidden=0)})

# ------------------------------------------------------------------------------ models
rows("MLPVAE", "config", {"str": lambda t: MLPVAE("mlp", rngs=nnx.Rngs(0)),
                          "other-family": lambda t: MLPVAE(ConvConfig(image_shape=(16, 16, 1)), rngs=nnx.Rngs(0))})
rows("model.encode", "x", {
    "255": lambda t: model().encode(X * 255),
    "rank-2": lambda t: model().encode(X.reshape(8, -1)),
    "image-shape": lambda t: model().encode(np.zeros((2, 5, 5, 1), np.float32)),
    "int-dtype": lambda t: model().encode(X.astype(np.int32))})
rows("model.decode", "z", {
    "shape": lambda t: model().decode(np.zeros((4, 3), np.float32)),
    "rank-1": lambda t: model().decode(np.zeros(2, np.float32)),
    "str": lambda t: model().decode("z")})
rows("model.__call__", "key", {"int": lambda t: model()(X, 0)})
rows("model.sample", "n", {"zero": lambda t: model().sample(KEY, 0), "float": lambda t: model().sample(KEY, 2.0)})
rows("model.sample", "key", {"int": lambda t: model().sample(5, 4)})
rows("model.reconstruct", "x", {"255": lambda t: model().reconstruct(X * 255)})
rows("model.log_likelihood", "x", {
    "above-1": lambda t: model().log_likelihood(X * 2, jnp.zeros_like(X)),
    "image-shape": lambda t: model().log_likelihood(np.zeros((8, 5, 5, 1), np.float32), jnp.zeros_like(X))})
rows("LinearGaussianModel", "W", {"str": lambda t: V.LinearGaussianModel("W", np.zeros(3, np.float32), 0.0)})
rows("LinearGaussianModel", "log_sigma", {
    "nan": lambda t: V.LinearGaussianModel(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), NAN)})

# ------------------------------------------------------------------------------ data
rows("Dataset", "train", {
    "list": lambda t: _dataset(train=[[0.0]]),
    "int16": lambda t: _dataset(train=np.zeros((4, 6, 6, 1), np.int16)),
    "rank-3": lambda t: _dataset(train=np.zeros((4, 6, 6), np.float32)),
    "255": lambda t: _dataset(train=np.full((4, 6, 6, 1), 255.0, np.float32)),
    "nan": lambda t: _dataset(train=with_value(np.zeros((4, 6, 6, 1), np.float32), NAN))})
rows("Dataset", "test", {
    "float-with-uint8-train": lambda t: _dataset(train=np.zeros((4, 6, 6, 1), np.uint8)),
    "image-shape": lambda t: _dataset(test=np.zeros((2, 5, 5, 1), np.float32)),
    "negative": lambda t: _dataset(test=np.full((2, 6, 6, 1), -1.0, np.float32))})
rows("Dataset", "train_labels", {
    "length": lambda t: _dataset(train_labels=np.zeros(3, np.int64)),
    "dtype": lambda t: _dataset(train_labels=np.zeros(4, np.float32))})
rows("Dataset", "train_factors", {"length": lambda t: _dataset(train_factors={"hue": np.zeros(3)})})
rows("Dataset", "value_range", {"reversed": lambda t: _dataset(value_range=(1.0, 0.0)),
                                "uint8-not-unit": lambda t: _dataset(train=np.zeros((4, 6, 6, 1), np.uint8),
                                                                     test=np.zeros((2, 6, 6, 1), np.uint8),
                                                                     value_range=(0.0, 255.0))})
rows("load_dataset", "name", {"unknown": lambda t: Dt.load_dataset("cifar"), "int": lambda t: Dt.load_dataset(3)})
rows("load_dataset", "num_train", {"zero": lambda t: Dt.load_dataset("shapes", num_train=0)})
rows("batches", "batch_size", {
    "zero": lambda t: next(Dt.batches(X, 0)),
    "too-large": lambda t: next(Dt.batches(X, 9)),
    "float": lambda t: next(Dt.batches(X, 2.5))})
rows("batches", "epochs", {"zero": lambda t: next(Dt.batches(X, 2, epochs=0))})
rows("batches", "seed", {"str": lambda t: next(Dt.batches(X, 2, seed="0"))})
rows("batches", "start", {"negative": lambda t: next(Dt.batches(X, 2, start=-1)),
                          "float": lambda t: next(Dt.batches(X, 2, start=1.0)),
                          "bool": lambda t: next(Dt.batches(X, 2, start=True))})
rows("batches", "labels", {"length": lambda t: next(Dt.batches(X, 2, labels=np.zeros(3)))})
rows("batches", "images", {"scalar": lambda t: next(Dt.batches(np.float32(1.0), 2)),
                           "str": lambda t: next(Dt.batches("images", 2))})
rows("binarize", "images", {"255": lambda t: Dt.binarize(X * 255), "nan": lambda t: Dt.binarize(with_value(X, NAN))})
rows("binarize", "seed", {"str": lambda t: Dt.binarize(X, seed="0")})
rows("shapes", "num_train", {"zero": lambda t: Dt.shapes(num_train=0), "float": lambda t: Dt.shapes(num_train=2.5)})
rows("shapes", "num_test", {"zero": lambda t: Dt.shapes(num_train=4, num_test=0)})
rows("shapes", "size", {"zero": lambda t: Dt.shapes(num_train=4, num_test=2, size=0)})
rows("shapes", "seed", {"str": lambda t: Dt.shapes(num_train=4, num_test=2, seed="a")})
rows("mnist5k", "test_size", {"zero": lambda t: Dt.mnist5k(test_size=0), "too-large": lambda t: Dt.mnist5k(test_size=10**6)})
rows("image_folder", "path", {
    "missing": lambda t: Dt.image_folder(t / "nowhere"),
    "a-file": lambda t: Dt.image_folder(_file(t)),
    "empty": lambda t: Dt.image_folder(t),
    "int": lambda t: Dt.image_folder(3)})
rows("image_folder", "size", {"zero": lambda t: _folder(t, size=0)})
rows("image_folder", "test_fraction", {"one": lambda t: _folder(t, test_fraction=1.0),
                                        "negative": lambda t: _folder(t, test_fraction=-0.1),
                                        "nan": lambda t: _folder(t, test_fraction=NAN)})
rows("image_folder", "max_images", {"zero": lambda t: _folder(t, max_images=0)})
rows("image_folder", "cache", {"int": lambda t: _folder(t, cache=3), "empty-str": lambda t: _folder(t, cache=""),
                               "a-file": lambda t: _folder(t, cache=_file(t)),
                               "none": lambda t: _folder(t, cache=None)})
rows("image_folder", "progress", {"str": lambda t: _folder(t, progress="yes")})

# ------------------------------------------------------------------------------ training
rows("fit", "learning_rate", {
    "negative": lambda t: _fit(learning_rate=-1e-3), "zero": lambda t: _fit(learning_rate=0.0),
    "nan": lambda t: _fit(learning_rate=NAN), "inf": lambda t: _fit(learning_rate=INF),
    "str": lambda t: _fit(learning_rate="1e-3"), "none": lambda t: _fit(learning_rate=None)})
rows("fit", "beta", {"nan": lambda t: _fit(beta=NAN), "negative": lambda t: _fit(beta=-1.0),
                     "str": lambda t: _fit(beta="1"),
                     "schedule-negative": lambda t: _fit(beta=lambda s: 1.0 - s),
                     "schedule-nan": lambda t: _fit(beta=lambda s: NAN * s),
                     "schedule-vector": lambda t: _fit(beta=lambda s: np.ones(3)),
                     "schedule-raises": lambda t: _fit(beta=lambda s: 1.0 / 0),
                     "schedule-python-min": lambda t: _fit(beta=lambda s: min(1.0, s / 10))})
rows("fit", "log_every", {"zero": lambda t: _fit(log_every=0), "negative": lambda t: _fit(log_every=-5)})
rows("fit", "eval_every", {"zero": lambda t: _fit(eval_every=0)})
rows("fit", "seed", {"str": lambda t: _fit(seed="0"), "float": lambda t: _fit(seed=1.5)})
rows("fit", "optimizer", {"str": lambda t: _fit(optimizer="adam")})
rows("fit", "loss_fn", {"str": lambda t: _fit(loss_fn="vae_loss")})
rows("fit", "eval_images", {"empty": lambda t: _fit(eval_images=np.zeros((0, 6, 6, 1), np.float32)),
                            "image-shape": lambda t: _fit(eval_images=np.zeros((4, 5, 5, 1), np.float32))})
rows("fit", "steps", {"zero": lambda t: _fit(steps=0), "float": lambda t: _fit(steps=2.0),
                      "none": lambda t: _fit(steps=None)})
rows("fit", "batch_size", {"too-large": lambda t: _fit(batch_size=9), "zero": lambda t: _fit(batch_size=0)})
rows("fit", "train_images", {"255": lambda t: _fit(train_images=X * 255),
                             "rank-3": lambda t: _fit(train_images=X[0])})
rows("fit", "model", {"none": lambda t: T.fit(None, X, steps=1, progress=False)})
rows("fit", "checkpoint_path", {"int": lambda t: _fit(checkpoint_path=3),
                                "empty-str": lambda t: _fit(checkpoint_path=""),
                                "a-folder": lambda t: _fit(checkpoint_path=t)})
rows("fit", "checkpoint_every", {"zero": lambda t: _fit(checkpoint_every=0),
                                 "float": lambda t: _fit(checkpoint_every=2.0),
                                 "negative": lambda t: _fit(checkpoint_every=-1)})
rows("fit", "checkpoint_minutes", {"zero": lambda t: _fit(checkpoint_minutes=0.0),
                                   "negative": lambda t: _fit(checkpoint_minutes=-1.0),
                                   "nan": lambda t: _fit(checkpoint_minutes=NAN),
                                   "inf": lambda t: _fit(checkpoint_minutes=INF),
                                   "str": lambda t: _fit(checkpoint_minutes="5")})
rows("fit", "resume", {"str": lambda t: _fit(resume="yes"), "none": lambda t: _fit(resume=None),
                       "int": lambda t: _fit(resume=1)})
rows("History.from_dict", "history", {
    "list": lambda t: T.History.from_dict([]),
    "missing-field": lambda t: T.History.from_dict({"train": {}}),
    "ragged": lambda t: T.History.from_dict({"train": {"step": [1, 2], "loss": [1.0]}, "eval": {},
                                             "seconds": 1.0, "steps": 2})})
rows("mean_metrics", "batch_size", {"zero": lambda t: T.mean_metrics(model(), X, KEY, batch_size=0)})
rows("mean_metrics", "images", {"255": lambda t: T.mean_metrics(model(), X * 255, KEY)})
rows("mean_metrics", "key", {"int": lambda t: T.mean_metrics(model(), X, 0)})
rows("reuse_host_memory", "limit", {"below 32 MiB": lambda t: T.reuse_host_memory(2**20),
                                   "over int": lambda t: T.reuse_host_memory(2**31),
                                   "str": lambda t: T.reuse_host_memory("1GiB"),
                                   "float": lambda t: T.reuse_host_memory(1.5e9)})
rows("default_optimizer", "learning_rate", {"zero": lambda t: T.default_optimizer(0.0),
                                            "nan": lambda t: T.default_optimizer(NAN),
                                            "str": lambda t: T.default_optimizer("3e-4")})
rows("prefetch", "size", {"zero": lambda t: next(T.prefetch(iter([1, 2]), size=0))})
rows("prefetch", "sharding", {"str": lambda t: next(T.prefetch(iter([X]), sharding="data"))})
rows("data_mesh", "batch_size", {"zero": lambda t: Pa.data_mesh(0), "float": lambda t: Pa.data_mesh(2.0)})

# ------------------------------------------------------------------------------ checkpoints and cache
rows("save_model", "model", {"none": lambda t: C.save_model(None, t / "m"), "str": lambda t: C.save_model("m", t / "m")})
rows("save_model", "path", {"int": lambda t: C.save_model(model(), 3), "none": lambda t: C.save_model(model(), None)})
rows("save_model", "metadata", {
    "list": lambda t: C.save_model(model(), t / "m", [1]),
    "reserved-key": lambda t: C.save_model(model(), t / "m", {"sha256": "0"}),
    "not-json": lambda t: C.save_model(model(), t / "m", {"x": object()})})
rows("load_model", "model", {"none": lambda t: C.load_model(None, t / "m")})
rows("load_model", "path", {"missing": lambda t: C.load_model(model(), t / "nowhere"),
                            "int": lambda t: C.load_model(model(), 3)})
rows("restore_model", "path", {"missing": lambda t: C.restore_model(t / "nowhere"),
                               "int": lambda t: C.restore_model(3)})
rows("save_training_state", "path", {"int": lambda t: C.save_training_state(3, params={}, opt_state=(), metadata={})})
rows("save_training_state", "metadata", {
    "list": lambda t: C.save_training_state(t / "s", params={}, opt_state=(), metadata=[1]),
    "not-json": lambda t: C.save_training_state(t / "s", params={}, opt_state=(), metadata={"x": object()})})
rows("load_training_state", "path", {"missing": lambda t: C.load_training_state(t / "nowhere", params={}, opt_state=()),
                                     "none": lambda t: C.load_training_state(None, params={}, opt_state=())})
rows("checkpoint_paths", "path", {"int": lambda t: C.checkpoint_paths(3), "none": lambda t: C.checkpoint_paths(None)})
rows("fit_cached", "cache", {"int": lambda t: _fit_cached(t, cache=1), "empty-str": lambda t: _fit_cached(t, cache=""),
                             "a-file": lambda t: _fit_cached(t, cache=_file(t))})
rows("fit_cached", "checkpoint_path", {"given": lambda t: _fit_cached(t, checkpoint_path=t / "c")})
rows("fit_cached", "resume", {"given": lambda t: _fit_cached(t, resume=False)})
rows("fit_cached", "checkpoint_every", {"zero": lambda t: _fit_cached(t, checkpoint_every=0)})
rows("fit_cached", "tag", {"int": lambda t: _fit_cached(t, tag=1)})
rows("fit_cached", "optimizer", {"given": lambda t: _fit_cached(t, optimizer=T.default_optimizer(1e-3))})
rows("fit_cached", "train_images", {"255": lambda t: K.fit_cached(model(), X * 255, steps=1, cache=False)})
rows("fit_cached", "steps", {"zero": lambda t: _fit_cached(t, steps=0)})
rows("array_fingerprint", "x", {"str": lambda t: K.array_fingerprint("x"), "none": lambda t: K.array_fingerprint(None)})

# ------------------------------------------------------------------------------ profiles and runs
rows("get_profile", "name", {"unknown": lambda t: V.get_profile("huge"), "int": lambda t: V.get_profile(3)})
rows("runs.train", "family", {"unknown": lambda t: R.train("gan", cache=False), "none": lambda t: R.train(None, cache=False)})
rows("runs.train", "dataset", {"unknown": lambda t: R.train("mlp", "cifar", cache=False)})
rows("runs.train", "likelihood", {"unknown": lambda t: R.train("mlp", likelihood="normal", cache=False),
                                  "autoencoder": lambda t: R.train("autoencoder", likelihood="gaussian", cache=False),
                                  "empty": lambda t: R.train("mlp", likelihood="", cache=False)})
rows("runs.train", "profile", {"int": lambda t: R.train("mlp", profile=3, cache=False),
                               "unknown": lambda t: R.train("mlp", profile="huge", cache=False)})
rows("runs.train", "steps", {"zero": lambda t: R.train("mlp", steps=0, cache=False),
                             "negative": lambda t: R.train("mlp", steps=-1, cache=False)})
rows("runs.train", "batch_size", {"zero": lambda t: R.train("mlp", batch_size=0, cache=False)})
rows("runs.train", "learning_rate", {"negative": lambda t: R.train("mlp", learning_rate=-1.0, cache=False)})
rows("runs.train", "beta", {"negative": lambda t: R.train("mlp", beta=-1.0, cache=False),
                            "nan": lambda t: R.train("mlp", beta=NAN, cache=False)})
rows("runs.train", "z_dim", {"zero": lambda t: R.train("mlp", z_dim=0, cache=False)})
rows("runs.train", "seed", {"str": lambda t: R.train("mlp", seed="0", cache=False)})
rows("runs.train", "hiden", {"unknown-setting": lambda t: R.train("mlp", hiden=3, cache=False)})
rows("runs.load_data", "dataset", {"unknown": lambda t: R.load_data("cifar")})
rows("runs.load_data", "data_path", {"missing": lambda t: R.load_data("image_folder", data_path=t / "nowhere")})
rows("runs.model_config", "family", {"unknown": lambda t: R.model_config("gan")})

# ------------------------------------------------------------------------------ evaluation
rows("bin_width", "levels", {"one": lambda t: E.bin_width(1), "float": lambda t: E.bin_width(2.5)})
rows("quantize", "levels", {"one": lambda t: E.quantize(GREY, 1)})
rows("quantize", "images", {"255": lambda t: E.quantize(GREY * 255)})
rows("is_quantized", "levels", {"zero": lambda t: E.is_quantized(GREY, 0)})
rows("bits_per_dim", "num_dims", {"zero": lambda t: E.bits_per_dim(np.float32([-10.0]), 0)})
rows("bits_per_dim", "levels", {"one": lambda t: E.bits_per_dim(np.float32([-10.0]), 36, levels=1)})
rows("bits_per_dim", "log_px", {"str": lambda t: E.bits_per_dim("lp", 36)})
rows("discretized_gaussian_log_prob", "levels", {"one": lambda t: E.discretized_gaussian_log_prob(GREY, GREY, GREY, levels=1)})
rows("discretized_gaussian_log_prob", "x", {"255": lambda t: E.discretized_gaussian_log_prob(GREY * 255, GREY, GREY)})
rows("rate_distortion", "num_samples", {"zero": lambda t: E.rate_distortion(model(), X, KEY, num_samples=0)})
rows("rate_distortion", "batch_size", {"zero": lambda t: E.rate_distortion(model(), X, KEY, batch_size=0)})
rows("rate_distortion", "key", {"int": lambda t: E.rate_distortion(model(), X, 0)})
rows("rate_distortion", "images", {"255": lambda t: E.rate_distortion(model(), X * 255, KEY)})
rows("dataset_log_weights", "num_samples", {"zero": lambda t: E.dataset_log_weights(model(), X, KEY, 0)})
rows("dataset_log_weights", "batch_size", {"zero": lambda t: E.dataset_log_weights(model(), X, KEY, 4, batch_size=0)})
rows("dataset_log_weights", "images", {"image-shape": lambda t: E.dataset_log_weights(model(), np.zeros((2, 5, 5, 1), np.float32), KEY, 4)})
rows("group_estimates", "k", {"zero": lambda t: E.group_estimates(np.zeros((8, 3)), 0),
                              "too-large": lambda t: E.group_estimates(np.zeros((8, 3)), 9)})
rows("group_estimates", "log_w", {"rank-1": lambda t: E.group_estimates(np.zeros(8), 2)})
rows("log_spaced_divisors", "n", {"zero": lambda t: E.log_spaced_divisors(0)})
rows("log_spaced_divisors", "count", {"zero": lambda t: E.log_spaced_divisors(16, 0)})
rows("iwae_curve", "ks", {"zero": lambda t: E.iwae_curve(model(), X, KEY, [0, 1]),
                          "empty": lambda t: E.iwae_curve(model(), X, KEY, [])})
rows("iwae_curve", "repeats", {"zero": lambda t: E.iwae_curve(model(), X, KEY, [1, 2], repeats=0)})
rows("evaluate", "num_samples", {"zero": lambda t: E.evaluate(model(), X, KEY, name="m", dataset="d", num_samples=0)})
rows("evaluate", "repeats", {"zero": lambda t: E.evaluate(model(), X, KEY, name="m", dataset="d", num_samples=4, repeats=0)})

# ------------------------------------------------------------------------------ latent
rows("latent.encode", "batch_size", {"zero": lambda t: L.encode(model(), X, batch_size=0)})
rows("latent.encode", "images", {"255": lambda t: L.encode(model(), X * 255),
                                 "image-shape": lambda t: L.encode(model(), np.zeros((2, 5, 5, 1), np.float32))})
rows("decode_mean", "z", {"shape": lambda t: L.decode_mean(model(), np.zeros((3, 5), np.float32)),
                          "nan": lambda t: L.decode_mean(model(), with_value(CODES, NAN))})
rows("lerp", "z1", {"shape": lambda t: L.lerp(V2, np.zeros(3), 0.5)})
rows("lerp", "t", {"rank-2": lambda t: L.lerp(V2, V2, np.zeros((2, 2))), "nan": lambda t: L.lerp(V2, V2, NAN)})
rows("slerp", "z1", {"shape": lambda t: L.slerp(V2, np.zeros(3), 0.5)})
rows("slerp", "z0", {"nan": lambda t: L.slerp(np.float32([NAN, 0.0]), V2, 0.5)})
rows("latent_activity", "log_std", {"shape": lambda t: L.latent_activity(CODES, np.zeros((8, 3), np.float32))})
rows("latent_activity", "mean", {"rank-1": lambda t: L.latent_activity(V2, V2)})
rows("latent_activity", "threshold", {"negative": lambda t: L.latent_activity(CODES, CODES, threshold=-1.0),
                                      "nan": lambda t: L.latent_activity(CODES, CODES, threshold=NAN)})
rows("traverse", "decode", {"str": lambda t: L.traverse("decode", V2, [0], [0.0])})
rows("traverse", "dims", {"out-of-range": lambda t: L.traverse(lambda z: z, V2, [5], [0.0]),
                          "empty": lambda t: L.traverse(lambda z: z, V2, [], [0.0])})
rows("traverse", "values", {"empty": lambda t: L.traverse(lambda z: z, V2, [0], [])})
rows("factor_correlations", "targets", {"length": lambda t: L.factor_correlations(CODES, {"hue": (np.zeros(3), np.ones(3), ["hue"])})})
TARGETS = {"a": (np.zeros((8, 1)), np.ones(8, bool), ["a"])}
rows("linear_probe_r2", "test_codes", {"dims": lambda t: L.linear_probe_r2(CODES, TARGETS, np.zeros((8, 3)), TARGETS)})
rows("linear_probe_r2", "ridge", {"negative": lambda t: L.linear_probe_r2(CODES, TARGETS, CODES, TARGETS, ridge=-1.0),
                                  "nan": lambda t: L.linear_probe_r2(CODES, TARGETS, CODES, TARGETS, ridge=NAN)})

# ------------------------------------------------------------------------------ plotting and widgets
rows("image_grid", "images", {"rank-2": lambda t: P.image_grid(np.zeros((6, 6))), "str": lambda t: P.image_grid("x")})
rows("image_grid", "ncols", {"zero": lambda t: P.image_grid(X, ncols=0)})
rows("image_grid", "pad", {"negative": lambda t: P.image_grid(X, pad=-1)})
rows("latent_scatter", "codes", {"rank-1": lambda t: P.latent_scatter(np.zeros(8))})
rows("manifold_grid", "n", {"zero": lambda t: P.manifold_grid(lambda z: X, (-1, 1), (-1, 1), n=0)})
rows("histograms", "bins", {"zero": lambda t: P.histograms({"a": np.zeros(3)}, bins=0, xlabel="x")})
rows("occupancy_grid", "bins", {"zero": lambda t: P.occupancy_grid(CODES, bins=0)})
rows("occupancy_grid", "codes", {"rank-1": lambda t: P.occupancy_grid(np.zeros(8))})
rows("png_bytes", "image", {"rank-1": lambda t: W.png_bytes(np.zeros(6)), "str": lambda t: W.png_bytes("img")})
rows("explorer_html", "frames", {"empty": lambda t: W.explorer_html(np.zeros((0, 6, 6, 1), np.float32))})
rows("explorer_html", "values", {"length": lambda t: W.explorer_html(X, values=[1.0, 2.0])})
rows("explorer_html", "scale", {"zero": lambda t: W.explorer_html(X, scale=0)})
rows("png_bytes", "colors", {"one": lambda t: W.png_bytes(X[0], colors=1)})
_FRAME = lambda *v: np.zeros((4, 4, 1), np.float32)  # noqa: E731
rows("explore", "render", {"int": lambda t: W.explore(3, {"a": [1, 2]}, live=False)})
rows("explore", "params", {"empty": lambda t: W.explore(_FRAME, {}, live=False),
                           "one-value": lambda t: W.explore(_FRAME, {"a": [1]}, live=False)})
rows("explore", "width", {"zero": lambda t: W.explore(_FRAME, {"a": [1, 2]}, width=0, live=False)})
rows("explore", "start", {"past-end": lambda t: W.explore(_FRAME, {"a": [1, 2]}, start=2, live=False)})
rows("explore", "max_bytes", {"tiny": lambda t: W.explore(_FRAME, {"a": [1, 2]}, max_bytes=10, live=False)})
rows("figure_image", "fig", {"array": lambda t: P.figure_image(np.zeros((2, 2)))})


# ------------------------------------------------------------------------------ the CLI
CLI_ROWS = [
    ("steps-zero", ["--steps", "0"], "--steps"),
    ("steps-negative", ["--steps", "-3"], "--steps"),
    ("steps-word", ["--steps", "many"], "--steps"),
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size"),
    ("z-dim-zero", ["--z-dim", "0"], "--z-dim"),
    ("learning-rate-negative", ["--learning-rate", "-1"], "--learning-rate"),
    ("learning-rate-nan", ["--learning-rate", "nan"], "--learning-rate"),
    ("beta-negative", ["--beta", "-1"], "--beta"),
    ("beta-inf", ["--beta", "inf"], "--beta"),
    ("model-unknown", ["--model", "gan"], "--model"),
    ("likelihood-unknown", ["--likelihood", "normal"], "--likelihood"),
    ("profile-unknown", ["--profile", "huge"], "--profile"),
    ("dataset-unknown", ["--dataset", "cifar"], "--dataset"),
    ("seed-word", ["--seed", "x"], "--seed"),
    ("out-is-a-file", ["--out", "{file}"], "--out"),
]


# ------------------------------------------------------------------------------ the collapse study (chapter 9)
_BINARY = np.zeros((2, 3, 3, 1), np.float32)
rows("markov_images", "num", {"zero": lambda t: Co.markov_images(0), "float": lambda t: Co.markov_images(2.5)})
rows("markov_images", "flip", {"zero": lambda t: Co.markov_images(2, flip=0.0),
                               "one": lambda t: Co.markov_images(2, flip=1.0),
                               "nan": lambda t: Co.markov_images(2, flip=NAN)})
rows("markov_log_prob", "images", {"grey": lambda t: Co.markov_log_prob(_BINARY + 0.5),
                                   "rank-2": lambda t: Co.markov_log_prob(np.zeros((3, 3), np.float32))})
rows("markov_log_prob", "flip", {"negative": lambda t: Co.markov_log_prob(_BINARY, flip=-0.1)})
rows("AutoregressiveConfig", "likelihood", {"gaussian": lambda t: Co.AutoregressiveConfig(likelihood="gaussian")})
rows("AutoregressiveConfig", "made_hidden", {"zero": lambda t: Co.AutoregressiveConfig(made_hidden=0)})
rows("pretrain_decoder", "model", {
    "mlp": lambda t: Co.pretrain_decoder(MLPVAE(MLPConfig(image_shape=(3, 3, 1), hidden=4, z_dim=2),
                                                  rngs=nnx.Rngs(0)), _BINARY, steps=1)})
rows("collapse_study", "free_bits", {"zero": lambda t: Co.collapse_study(steps=1, free_bits=0.0)})
rows("collapse_study", "warmup_fraction", {"two": lambda t: Co.collapse_study(steps=1, warmup_fraction=2.0),
                                           "zero": lambda t: Co.collapse_study(steps=1, warmup_fraction=0.0)})
rows("collapse_study", "steps", {"zero": lambda t: Co.collapse_study(steps=0)})


def _message_names(message: str, name: str) -> bool:
    # `name` itself, or one entry of it (`targets['hue']`, `ks[i]`)
    return f"`{name}`" in message or f"`{name}[" in message


@pytest.mark.parametrize("call, name", [pytest.param(c, n, id=i) for i, c, n in ROWS])
def test_a_bad_argument_gets_an_error_naming_it(tmp_path, call, name):
    with pytest.raises((ValueError, TypeError)) as info:
        call(tmp_path)
    message = str(info.value)
    assert _message_names(message, name), f"the error does not name `{name}`: {message}"
    assert "must" in message or "one of" in message, f"the error does not say what was expected: {message}"
    assert "got" in message, f"the error does not say what came: {message}"


@pytest.mark.parametrize("argv, name", [pytest.param(a, n, id=i) for i, a, n in CLI_ROWS])
def test_the_cli_exits_2_naming_a_bad_flag(tmp_path, capsys, monkeypatch, argv, name):
    monkeypatch.setattr(R, "train", lambda *a, **k: pytest.fail("the CLI trained despite a bad flag"))
    argv = [a.replace("{file}", str(_file(tmp_path))) for a in argv]
    with pytest.raises(SystemExit) as info:
        cli.main(["train", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {name}" in err, err
    assert "invalid choice" in err or ("must" in err and "got" in err), err  # argparse's choice errors list the choices


def test_the_table_is_large():
    assert len(ROWS) + len(CLI_ROWS) >= 200, len(ROWS) + len(CLI_ROWS)
    assert len({i for i, _, _ in ROWS}) == len(ROWS), "row ids must be unique"


# ------------------------------------------------------------------------------ valid but unusual
def test_beta_may_be_a_numpy_or_jax_scalar_or_traced():
    reference, _ = O.vae_loss(model(), X, KEY, beta=0.5)
    for beta in (np.float32(0.5), np.float64(0.5), jnp.asarray(0.5), jnp.asarray(0.5, jnp.bfloat16)):
        loss, _ = O.vae_loss(model(), X, KEY, beta=beta)
        np.testing.assert_allclose(float(loss), float(reference), rtol=1e-6)
    traced = nnx.jit(lambda m, b: O.vae_loss(m, X, KEY, beta=b)[0])(model(), jnp.asarray(0.5))
    np.testing.assert_allclose(float(traced), float(reference), rtol=1e-5)  # e.g. a KL warm-up schedule


def test_a_bernoulli_likelihood_takes_grey_levels_as_a_cross_entropy():
    logits = np.random.default_rng(2).normal(size=GREY.shape).astype(np.float32)
    got = np.asarray(D.bernoulli_log_prob(GREY, logits))
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(got, GREY * np.log(p) + (1 - GREY) * np.log1p(-p), rtol=1e-5, atol=1e-6)
    terms = O.elbo(model(), GREY, KEY)  # grey images are valid input: the "likelihood" is a cross-entropy
    assert np.all(np.isfinite(np.asarray(terms.elbo)))


def test_the_boundary_values_pass():
    MLPConfig(image_shape=(np.int64(6), 6, 1), hidden=8, z_dim=2, min_log_std=np.float32(-3.0))
    O.vae_loss(model(), X, KEY, beta=0)  # beta = 0: a plain autoencoder with a noisy code
    D.bernoulli_log_prob(np.float32([0.0, 1.0]), np.float32([0.0, 0.0]))  # the ends of [0, 1]
    _dataset(train=np.ones((4, 6, 6, 1), np.float32))  # exactly value_range's high end
    assert T.History.from_dict({"train": {}, "eval": {}, "seconds": 0, "steps": 0}).steps == 0


def test_bits_per_dim_keeps_float64():
    # a Python float log p(x) must not pass through float32 (chapter 10 compares to 1e-9)
    log_px = -1234.567891234
    assert E.bits_per_dim(log_px, 784, levels=256) == -log_px / (784 * np.log(2.0)) + np.log2(255)

