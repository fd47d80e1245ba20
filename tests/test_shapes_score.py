"""vae_book.shapes_score: the classifier of the shapes factors, its cache entry, and the recognisability scores."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from flax import nnx

from vae_book import cache as K
from vae_book import shapes_score as S
from vae_book.data import Dataset, shapes
from vae_book.models import MLPConfig, MLPVAE
from vae_book.train import History

PACKAGE = Path(S.__file__).resolve().parent
SIZE = 32
#: the test's classifier: 3000 images of 32 x 32, 500 steps (the default is DEFAULT_STEPS on 10000)
TRAIN = dict(steps=500, batch_size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def data():
    return shapes(3000, 500, size=SIZE, seed=1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """``(classifier, cache folder)``: trained once into a temporary model cache (``VAE_BOOK_CACHE``)."""
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(K.CACHE_ENV, str(folder))
        classifier = S.train_classifier(data, cache=True, **TRAIN)
    return classifier, folder


def _no_training(*args, **kwargs):
    raise AssertionError("fit was called: the classifier was trained instead of loaded from the cache")


# ------------------------------------------------------------------------------------------- targets


def test_the_targets_bin_the_factors_as_documented():
    f = {"shape": np.array([0, 1, 2, 2, 0]), "hue": np.array([0.0, 0.95, 1 / 6, 0.24, 0.26], np.float32),
         "pos_x": np.array([0.2, 0.5, 0.8, 0.05, 0.99]), "pos_y": np.array([0.2, 0.2, 0.8, 0.5, 0.5])}
    t = S.factor_targets(f, (0.2, 0.8))
    np.testing.assert_array_equal(t["shape"], [0, 1, 2, 2, 0])
    # red spans both ends of [0, 1): 0.95 is nearer 1 = red than 5/6 = magenta
    np.testing.assert_array_equal(t["hue"], [0, 0, 1, 1, 2])
    assert [S.HUE_NAMES[h] for h in t["hue"]] == ["red", "red", "yellow", "yellow", "green"]
    # row-major 3 x 3 grid from the top left; centres outside the range fall in the edge cells
    np.testing.assert_array_equal(t["position"], [0, 1, 8, 3, 5])


def test_every_target_class_occurs_in_a_shapes_set(data):
    targets = S.factor_targets(data.train_factors, (0.0, 1.0))
    for name in S.TARGETS[:2]:
        assert set(np.unique(targets[name])) == set(range(S.NUM_CLASSES[name])), name


def test_the_packed_targets_come_back_exactly(data):
    f = data.train_factors
    targets = S.factor_targets(f, (0.15, 0.85))
    images, back = S._unpack(jnp.asarray(S._pack(data.train[:500], {k: v[:500] for k, v in targets.items()})))
    np.testing.assert_array_equal(np.asarray(images), data.train[:500])
    for name in S.TARGETS:
        np.testing.assert_array_equal(np.asarray(back[name]), targets[name][:500])


def test_the_network_reads_the_sprites_colour_and_centre(data):
    net = S.ClassifierNet(S.ClassifierConfig(image_shape=(SIZE, SIZE, 3)), rngs=nnx.Rngs(0))
    stages = nnx.jit(lambda net, x: net.stages(x))(net, jnp.asarray(data.test[:200]))
    f = data.test_factors
    centre = np.stack([f["pos_x"][:200], f["pos_y"][:200]], axis=-1)
    np.testing.assert_allclose(np.asarray(stages["centroid"]), centre, atol=0.1 / SIZE)
    assert np.abs(np.asarray(stages["mean colour"]).max(axis=-1) - 1.0).max() < 1e-2  # full value
    assert {k: v.shape for k, v in jax.eval_shape(lambda x: net(x), jnp.asarray(data.test[:3])).items()} == {
        "shape": (3, 3), "hue": (3, 6), "position": (3, 9)}


# ----------------------------------------------------------------------------------------- accuracy


def test_the_classifier_recognises_held_out_true_images(trained, data):
    classifier, _ = trained
    # measured: shape 0.996, hue 0.98, position 0.98 after 300 steps on 3000 images
    assert classifier.accuracy["shape"] >= 0.97, classifier.accuracy
    assert classifier.accuracy["hue"] >= 0.95, classifier.accuracy
    assert classifier.accuracy["position"] >= 0.95, classifier.accuracy
    result = S.score(classifier, data.test, data.test_factors)
    assert result.accuracy == classifier.accuracy and result.shape_accuracy == classifier.accuracy["shape"]
    assert result.num_images == 500 and sum(result.shape_fractions.values()) == pytest.approx(1.0)
    # training images are no easier than held-out ones by more than a few percent
    train = S.score(classifier, data.train[:500], {k: v[:500] for k, v in data.train_factors.items()})
    assert train.shape_accuracy - result.shape_accuracy < 0.03


def test_empty_frames_are_not_classified_confidently_and_true_images_are(trained, data):
    classifier, _ = trained
    black = np.zeros((200, SIZE, SIZE, 3), np.float32)
    empty = S.score(classifier, black)
    assert empty.accuracy is None and empty.shape_accuracy is None
    assert empty.confident_fraction <= 0.02 and empty.mean_confidence < 0.6, empty
    true = S.score(classifier, data.test)
    assert true.confident_fraction >= 0.9, true
    # the shape head's Inception Score: near its maximum 3 on true images, near 1 on empty frames
    assert true.inception_score > 2.5 and empty.inception_score < 1.05, (true, empty)
    # a looser threshold counts more images as confident, never fewer
    assert S.score(classifier, data.test, confidence=0.5).confident_fraction >= true.confident_fraction


@pytest.mark.parametrize("sigma", [0.0, 0.4, 1.0, 2.5])
def test_gaussian_blur_is_scipys_gaussian_filter_with_zeros_outside(sigma):
    x = np.random.default_rng(0).random((2, 11, 9, 3)).astype(np.float32)
    got = np.asarray(S.gaussian_blur(jnp.asarray(x), jnp.full((2,), sigma)))
    for img, out in zip(x, got):
        want = img if sigma == 0 else ndimage.gaussian_filter(img.astype(np.float64), (sigma, sigma, 0),
                                                               mode="constant", truncate=20.0)
        np.testing.assert_allclose(out, want, atol=1e-6)
    # each image gets its own width: the second image of a pair is blurred, the first is not
    pair = np.asarray(S.gaussian_blur(jnp.asarray(x), jnp.asarray([0.0, 1.0])))
    np.testing.assert_allclose(pair[0], x[0], atol=1e-6)
    assert np.abs(pair[1] - x[1]).max() > 0.1


_IMAGES = np.zeros((2, 8, 8, 3), np.float32)
_OUT_OF_RANGE = r"`sigma` must have values in \[0.0, 15.0\]"


@pytest.mark.parametrize("images, sigma, message", [
    (_IMAGES[..., 0], np.zeros(2, np.float32), "`images` must have rank 4"),
    (_IMAGES.astype(np.int32), np.zeros(2, np.float32), "`images` must have a floating dtype"),
    (_IMAGES, np.zeros(3, np.float32), r"`sigma` must have shape \(2\)"),
    (_IMAGES, np.float32(1.0), r"`sigma` must have shape \(2\)"),
    (_IMAGES, np.array([0.5, -0.1], np.float32), _OUT_OF_RANGE),
    (_IMAGES, np.array([0.5, 16.0], np.float32), _OUT_OF_RANGE),
    (_IMAGES, np.array([0.5, np.nan], np.float32), "`sigma` must have finite values"),
])
def test_gaussian_blur_refuses_bad_arguments_naming_them(images, sigma, message):
    with pytest.raises(ValueError, match=message):
        S.gaussian_blur(images, sigma)


def test_gaussian_blur_runs_on_traced_widths_inside_jit():
    x = np.random.default_rng(1).random((2, 6, 5, 1)).astype(np.float32)
    sigma = jnp.asarray([0.0, 1.5])
    np.testing.assert_allclose(jax.jit(S.gaussian_blur)(x, sigma), S.gaussian_blur(x, sigma), atol=1e-6)


def test_blurred_sprites_keep_their_shape_and_a_sharp_only_classifier_loses_it(trained, data, tmp_path):
    classifier, _ = trained
    factors = {k: v[:300] for k, v in data.test_factors.items()}
    blurred = np.stack([ndimage.gaussian_filter(img, (1.0, 1.0, 0), mode="constant") for img in data.test[:300]])
    assert S.score(classifier, blurred, factors).shape_accuracy >= 0.95
    sharp_only = S.train_classifier(data, cache=tmp_path, blur_max=0.0, **TRAIN)
    assert sharp_only.accuracy["shape"] >= 0.95  # as good on the sharp held-out sprites
    assert S.score(sharp_only, blurred, factors).shape_accuracy < 0.8


def test_a_scrambled_image_loses_its_shape_but_keeps_its_colour(trained, data):
    classifier, _ = trained
    rng = np.random.default_rng(0)
    x = data.test[:200]
    scrambled = np.stack([img.reshape(-1, 3)[rng.permutation(SIZE * SIZE)].reshape(SIZE, SIZE, 3) for img in x])
    factors = {k: v[:200] for k, v in data.test_factors.items()}
    got = S.score(classifier, scrambled, factors)
    assert got.shape_accuracy < 0.7 and got.accuracy["hue"] > 0.9, got


# -------------------------------------------------------------------------------------------- cache


def test_a_second_call_loads_from_the_cache_and_predicts_the_same(trained, data, monkeypatch):
    classifier, folder = trained
    assert not classifier.cached and Path(classifier.path).parent == folder
    monkeypatch.setenv(K.CACHE_ENV, str(folder))
    monkeypatch.setattr(K, "fit", _no_training)
    again = S.train_classifier(data, cache=True, **TRAIN)
    assert again.cached and again.key == classifier.key and again.accuracy == classifier.accuracy
    want, got = classifier.probabilities(data.test), again.probabilities(data.test)
    for name in S.TARGETS:
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("change", ["steps", "seed", "data", "code", "blur"])
def test_the_cache_key_follows_the_settings_the_data_and_the_code(trained, data, monkeypatch, change):
    _, folder = trained
    monkeypatch.setenv(K.CACHE_ENV, str(folder))

    class Trains(Exception):
        pass

    def fit(*args, **kwargs):
        raise Trains

    monkeypatch.setattr(K, "fit", fit)
    settings, dataset = dict(TRAIN), data
    if change == "steps":
        settings["steps"] += 1
    elif change == "seed":
        settings["seed"] = 1
    elif change == "blur":
        settings["blur_max"] = 0.0
    elif change == "data":
        train = data.train.copy()
        train[0, 0, 0, 0] = 0.5  # one pixel of one image
        dataset = Dataset("shapes", train, data.test, train_factors=data.train_factors,
                          test_factors=data.test_factors)
    else:
        monkeypatch.setattr(S, "classifier_code_fingerprint", lambda: "edited")
    with pytest.raises(Trains):
        S.train_classifier(dataset, cache=True, **settings)


def test_the_code_fingerprint_follows_this_module_and_not_a_figure(tmp_path):
    copy = tmp_path / "vae_book"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    base = S.classifier_code_fingerprint(copy)
    assert base == S.classifier_code_fingerprint(PACKAGE)
    with open(copy / "plotting.py", "a") as f:
        f.write("\n# an edit of a figure\n")
    assert S.classifier_code_fingerprint(copy) == base
    for rel in ("shapes_score.py", "train.py"):
        with open(copy / rel, "a") as f:
            f.write("\n# an edit of the training code\n")
        assert S.classifier_code_fingerprint(copy) != base, rel
        base = S.classifier_code_fingerprint(copy)


def test_a_corrupt_cache_entry_is_named_in_a_warning_and_retrained(trained, data, tmp_path):
    classifier, folder = trained
    name = Path(classifier.path).name
    for suffix in (".msgpack", ".json"):  # a copy of the entry, so the other tests keep theirs
        shutil.copy(folder / (name + suffix), tmp_path / (name + suffix))
    params = tmp_path / (name + ".msgpack")
    blob = bytearray(params.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # flip the bits of one byte in the middle of the parameters
    params.write_bytes(bytes(blob))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = S.train_classifier(data, cache=tmp_path, **TRAIN)
    texts = [str(w.message) for w in caught]
    assert any(str(tmp_path / name) in t and "cannot be used and is retrained" in t and "SHA-256" in t
               for t in texts), texts
    assert not again.cached and again.key == classifier.key
    want, got = classifier.probabilities(data.test), again.probabilities(data.test)
    for target in S.TARGETS:  # retrained from the same initial parameters: the same network
        np.testing.assert_array_equal(got[target], want[target])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.train_classifier(data, cache=tmp_path, **TRAIN).cached


def test_cache_false_trains_without_writing(tmp_path, monkeypatch):
    monkeypatch.setenv(K.CACHE_ENV, str(tmp_path))
    calls = []
    monkeypatch.setattr(K, "fit", lambda *args, **kwargs: calls.append(kwargs) or History())
    classifier = S.train_classifier(shapes(100, 20, size=16), steps=2, batch_size=16, cache=False, progress=False)
    loss_fn = calls[0]["loss_fn"]
    assert len(calls) == 1 and calls[0]["steps"] == 2 and loss_fn.func is S.classifier_loss
    assert loss_fn.keywords == {"blur_max": S.BLUR_MAX_PIXELS}
    assert classifier.path is None and not classifier.cached and not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------- recognisability


class Echo(nnx.Module):
    """A stand-in for a VAE: reconstructs every image exactly and decodes every code to a black frame."""

    image_shape: tuple[int, int, int] = (SIZE, SIZE, 3)
    z_dim = 4

    def __init__(self):
        self.offset = nnx.Param(jnp.zeros(()))

    def reconstruct(self, x):
        return x + self.offset[...]

    def decode(self, z):
        return jnp.zeros((z.shape[0], *self.image_shape)) + self.offset[...]

    def mean_image(self, decoded):
        return decoded


class Small(Echo):
    image_shape = (16, 16, 3)


def test_recognisability_of_a_perfect_reconstructor_that_samples_nothing(trained, data):
    classifier, _ = trained
    r = S.recognisability(Echo(), classifier, data, jax.random.key(0), num_samples=100)
    assert r.true_accuracy == classifier.accuracy["shape"] == r.true.shape_accuracy
    assert r.reconstruction_accuracy == r.true_accuracy and r.reconstructions.accuracy == r.true.accuracy
    assert r.sample_confident_fraction <= 0.02 and r.samples.num_images == 100 and r.samples.accuracy is None


def test_score_table_has_a_row_per_score_in_percent(trained, data):
    classifier, _ = trained
    r = S.recognisability(Echo(), classifier, data, jax.random.key(0), num_samples=50)
    table = S.score_table({"true": r.true, "samples": r.samples})
    assert list(table.index) == ["true", "samples"]
    assert table.loc["true", "shape accuracy (%)"] == pytest.approx(100 * r.true_accuracy)
    assert table.loc["true", "hue accuracy (%)"] == pytest.approx(100 * r.true.accuracy["hue"])
    assert np.isnan(table.loc["samples", "position accuracy (%)"])  # samples have no factors
    assert table.loc["samples", "confident, p >= 0.9 (%)"] == pytest.approx(100 * r.sample_confident_fraction)
    assert table.loc["true", "Inception Score (shape)"] == pytest.approx(r.true.inception_score)
    for bad in ({}, {"x": 0.5}, [r.true]):
        with pytest.raises(ValueError, match="`scores` must be a non-empty mapping"):
            S.score_table(bad)


def test_recognisability_samples_are_the_models_samples_at_temperature_one(trained, data):
    classifier, _ = trained
    model = MLPVAE(MLPConfig(image_shape=(SIZE, SIZE, 3), hidden=16, z_dim=4), rngs=nnx.Rngs(0))
    key = jax.random.key(3)
    r = S.recognisability(model, classifier, data, key, num_samples=300, batch_size=128)
    direct = S.score(classifier, np.clip(np.asarray(nnx.jit(lambda m, k: m.sample(k, 300))(model, key)), 0, 1))
    assert r.samples.mean_confidence == pytest.approx(direct.mean_confidence, abs=1e-5)
    assert r.sample_confident_fraction == pytest.approx(direct.confident_fraction, abs=1 / 300)
    assert 0.0 <= r.reconstruction_accuracy <= 1.0 and r.temperature == 1.0
    # temperature 0: every code is the prior mean, so every sample is the same image and one shape
    cold = S.recognisability(model, classifier, data, key, num_samples=300, temperature=0.0, batch_size=128)
    assert sorted(cold.samples.shape_fractions.values())[-1] == 1.0
    assert cold.sample_confident_fraction in (0.0, 1.0)


# ------------------------------------------------------------------------------------- bad arguments


def _mnist_like():
    x = np.zeros((20, 16, 16, 3), np.float32)
    return Dataset("mnist", x, x[:5], train_labels=np.zeros(20, np.int64), test_labels=np.zeros(5, np.int64))


TRAIN_ROWS = [
    (lambda d: dict(dataset=_mnist_like()), "dataset"),
    (lambda d: dict(dataset="shapes"), "dataset"),
    (lambda d: dict(dataset=d, steps=0), "steps"),
    (lambda d: dict(dataset=d, batch_size=4), "batch_size"),
    (lambda d: dict(dataset=d, batch_size=10**6), "batch_size"),
    (lambda d: dict(dataset=d, learning_rate=0.0), "learning_rate"),
    (lambda d: dict(dataset=d, seed=-1), "seed"),
    (lambda d: dict(dataset=d, blur_max=-0.5), "blur_max"),
    (lambda d: dict(dataset=d, blur_max=float("nan")), "blur_max"),
    (lambda d: dict(dataset=d, cache=""), "cache"),
    (lambda d: dict(dataset=d, progress="yes"), "progress"),
]


@pytest.mark.parametrize("make, name", TRAIN_ROWS)
def test_train_classifier_refuses_bad_arguments_naming_them(data, make, name, monkeypatch):
    monkeypatch.setattr(K, "fit", _no_training)
    kwargs = make(data)
    with pytest.raises(ValueError, match=f"`{name}"):
        S.train_classifier(kwargs.pop("dataset"), **{"progress": False, **kwargs})


def test_a_dataset_without_the_factors_the_targets_need_is_refused(data):
    factors = {k: v for k, v in data.train_factors.items() if k != "hue"}
    bad = Dataset("shapes", data.train, data.test, train_factors=factors, test_factors=data.test_factors)
    with pytest.raises(ValueError, match=r"`dataset\.train_factors` must be a dict of the shapes factors"):
        S.train_classifier(bad)


SCORE_ROWS = [
    (lambda c, d: dict(classifier="classifier", images=d.test), "classifier"),
    (lambda c, d: dict(classifier=c, images=np.zeros((5, 16, 16, 3), np.float32)),
     r"images` must have images of shape \(H, W, C\) = \(32, 32, 3\)"),
    (lambda c, d: dict(classifier=c, images=d.test[0]), "images"),
    (lambda c, d: dict(classifier=c, images=d.test * 255), "images"),
    (lambda c, d: dict(classifier=c, images=d.test[:0]), "images"),
    (lambda c, d: dict(classifier=c, images=d.test, confidence=1.5), "confidence"),
    (lambda c, d: dict(classifier=c, images=d.test, confidence=0.0), "confidence"),
    (lambda c, d: dict(classifier=c, images=d.test, factors={"shape": d.test_factors["shape"]}), "factors"),
    (lambda c, d: dict(classifier=c, images=d.test, factors={k: v[:3] for k, v in d.test_factors.items()}), "factors"),
    (lambda c, d: dict(classifier=c, images=d.test, batch_size=0), "batch_size"),
]


@pytest.mark.parametrize("make, name", SCORE_ROWS)
def test_score_refuses_bad_arguments_naming_them(trained, data, make, name):
    kwargs = make(trained[0], data)
    with pytest.raises(ValueError, match=f"`{name}"):
        S.score(kwargs.pop("classifier"), kwargs.pop("images"), **kwargs)


RECOGNISABILITY_ROWS = [
    (lambda: dict(model="vae"), "model"),
    (lambda: dict(model=Small()), "model"),
    (lambda: dict(dataset=_mnist_like()), "dataset"),
    (lambda: dict(key=0), "key"),
    (lambda: dict(num_samples=0), "num_samples"),
    (lambda: dict(temperature=-1.0), "temperature"),
    (lambda: dict(classifier=None), "classifier"),
]


@pytest.mark.parametrize("make, name", RECOGNISABILITY_ROWS)
def test_recognisability_refuses_bad_arguments_naming_them(trained, data, make, name):
    kwargs = {"model": Echo(), "classifier": trained[0], "dataset": data, "key": jax.random.key(0), **make()}
    with pytest.raises(ValueError, match=f"`{name}"):
        S.recognisability(kwargs.pop("model"), kwargs.pop("classifier"), kwargs.pop("dataset"), kwargs.pop("key"),
                          **kwargs)


@pytest.mark.parametrize("kwargs, name", [
    (dict(image_shape=(32, 32, 1)), "image_shape"),
    (dict(image_shape=(4, 4, 3)), "image_shape"),
    (dict(position_range=(0.8, 0.2)), "position_range"),
    (dict(features=()), "features"),
    (dict(hidden=0), "hidden"),
])
def test_the_config_refuses_bad_sizes_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        S.ClassifierConfig(**kwargs)


def test_factor_targets_refuses_bad_factors_and_ranges():
    f = {"shape": np.array([0, 3]), "hue": np.zeros(2), "pos_x": np.zeros(2), "pos_y": np.zeros(2)}
    with pytest.raises(ValueError, match=r"`factors\['shape'\]` must hold indices"):
        S.factor_targets(f, (0.1, 0.9))
    with pytest.raises(ValueError, match="`factors` must be a dict"):
        S.factor_targets([1, 2], (0.1, 0.9))
    with pytest.raises(ValueError, match="`position_range`"):
        S.factor_targets({**f, "shape": np.array([0, 1])}, (0.5,))


def test_blur_table_has_a_row_per_classifier_and_a_column_per_width(trained, data):
    classifier, _ = trained
    small = Dataset("shapes", data.train, data.test[:200], train_factors=data.train_factors,
                    test_factors={k: v[:200] for k, v in data.test_factors.items()})
    table = S.blur_table({"a": classifier, "b": classifier}, small, (0.0, 1.0))
    assert list(table.index) == ["a", "b"] and list(table.columns) == ["blur 0 px", "blur 1 px"]
    sharp = 100 * S.score(classifier, small.test, small.test_factors).shape_accuracy
    assert table.loc["a", "blur 0 px"] == pytest.approx(sharp)
    blurred = np.stack([ndimage.gaussian_filter(img, (1.0, 1.0, 0), mode="constant") for img in small.test])
    assert table.loc["b", "blur 1 px"] == pytest.approx(100 * S.score(classifier, blurred,
                                                                      small.test_factors).shape_accuracy, abs=0.6)


@pytest.mark.parametrize("kwargs, name", [
    (dict(classifiers={}), "classifiers"),
    (dict(classifiers={"a": "clf"}), "classifiers"),
    (dict(widths=()), "widths"),
    (dict(widths=(0.0, -1.0)), "widths"),
    (dict(widths="1"), "widths"),
    (dict(dataset="shapes"), "dataset"),
    (dict(batch_size=0), "batch_size"),
])
def test_blur_table_refuses_bad_arguments_naming_them(trained, data, kwargs, name):
    classifier, _ = trained
    args = {"classifiers": {"a": classifier}, "dataset": data, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}` must"):
        S.blur_table(args.pop("classifiers"), args.pop("dataset"), **args)


def test_recognisability_columns_join_a_table_on_model_names(trained, data):
    classifier, _ = trained
    r = S.recognisability(Echo(), classifier, data, jax.random.key(0), num_samples=50)
    cols = S.recognisability_columns({"echo": r})
    recon, hue, samples = S.RECOGNISABILITY_COLUMNS
    assert list(cols.index) == ["echo"] and list(cols.columns) == [recon, hue, samples]
    assert cols.loc["echo", recon] == round(100 * r.reconstruction_accuracy, 1)
    assert cols.loc["echo", hue] == round(100 * r.reconstructions.accuracy["hue"], 1)
    assert cols.loc["echo", samples] == round(100 * r.sample_confident_fraction, 1)
    table = pd.DataFrame({"model": ["other", "echo"], "x": [1, 2]}).join(cols, on="model")
    assert list(table["model"]) == ["other", "echo"] and np.isnan(table.loc[0, recon])
    assert table.loc[1, recon] == cols.loc["echo", recon]
    for bad in ({}, {"echo": r.true}, [r]):
        with pytest.raises(ValueError, match="`results` must be a non-empty mapping"):
            S.recognisability_columns(bad)
