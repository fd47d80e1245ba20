"""Tests of vae_book.data: the loaders' contract (float32 NHWC in [0, 1], splits that never leak),
the sprite renderer against geometry, the MNIST downloader against a loopback HTTP server, the
image-folder loader against a temporary folder, batching and binarization."""

from __future__ import annotations

import ast
import colorsys
import functools
import gzip
import hashlib
import http.server
import importlib
import itertools
import math
import pkgutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_book import data
from vae_book.data import (
    DATASETS,
    FACTOR_NAMES,
    MNIST_FILES,
    SHAPE_NAMES,
    SHAPE_SYMMETRY,
    Dataset,
    batches,
    binarize,
    image_folder,
    load_dataset,
    mnist,
    mnist5k,
    render_shapes,
    shapes,
)


def row_hashes(x: np.ndarray) -> set[str]:
    return {hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest() for row in x}


def assert_image_contract(x: np.ndarray, image_shape):
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.float32
    assert x.ndim == 4 and x.shape[1:] == tuple(image_shape)
    if x.size:
        assert x.min() >= 0.0 and x.max() <= 1.0


# ------------------------------------------------------------------------------------------------
# Dataset / load_dataset
# ------------------------------------------------------------------------------------------------


def test_load_dataset_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as info:
        load_dataset("cifar10")
    msg = str(info.value)
    assert "cifar10" in msg
    for name in DATASETS:
        assert name in msg
    assert set(DATASETS) == {"mnist5k", "shapes", "mnist", "image_folder"}


def test_load_dataset_dispatches_with_kwargs():
    ds = load_dataset("shapes", num_train=5, num_test=3, size=8, seed=1)
    assert ds.name == "shapes" and ds.num_train == 5 and ds.num_test == 3
    assert ds.image_shape == (8, 8, 3)


def test_dataset_rejects_wrong_dtype_and_mismatched_shapes():
    good = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="train"):
        Dataset("x", good.astype(np.float64), good)
    with pytest.raises(ValueError, match="same"):
        Dataset("x", good, np.zeros((2, 5, 4, 1), np.float32))
    with pytest.raises(ValueError, match="train_labels"):
        Dataset("x", good, good, train_labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="test_factors"):
        Dataset("x", good, good, test_factors={"a": np.zeros(5)})


# ------------------------------------------------------------------------------------------------
# mnist5k
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return mnist5k()


def test_mnist5k_shapes_range_and_labels(digits):
    assert digits.name == "mnist5k"
    assert (digits.num_train, digits.num_test) == (4500, 500)
    assert digits.image_shape == (28, 28, 1)
    assert_image_contract(digits.train, (28, 28, 1))
    assert_image_contract(digits.test, (28, 28, 1))
    assert digits.train.max() == 1.0  # divided by 255, not by something else
    assert digits.train_labels.dtype == np.int64 and digits.test_labels.dtype == np.int64
    assert np.array_equal(np.bincount(digits.test_labels, minlength=10), np.full(10, 50))
    assert np.array_equal(np.bincount(digits.train_labels, minlength=10), np.full(10, 450))
    # shuffled: the first images are not all the same digit
    assert len(np.unique(digits.train_labels[:50])) > 3


def test_mnist5k_split_never_leaks(digits):
    train, test = row_hashes(digits.train), row_hashes(digits.test)
    assert len(test) == 500
    assert not train & test


def test_mnist5k_is_deterministic_and_test_size_works(digits):
    again = mnist5k()
    assert np.array_equal(again.train, digits.train)
    assert np.array_equal(again.test_labels, digits.test_labels)
    big = mnist5k(test_size=1000)
    assert (big.num_train, big.num_test) == (4000, 1000)
    assert np.array_equal(np.bincount(big.test_labels), np.full(10, 100))


@pytest.mark.parametrize("bad", [0, 15, 5000, -10, 2.0, True, "500"])
def test_mnist5k_bad_test_size(bad):
    with pytest.raises(ValueError, match="test_size"):
        mnist5k(test_size=bad)


# ------------------------------------------------------------------------------------------------
# shapes
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sprites():
    return shapes(num_train=600, num_test=200, size=32, seed=0)


def test_shapes_contract(sprites):
    assert sprites.image_shape == (32, 32, 3)
    assert_image_contract(sprites.train, (32, 32, 3))
    assert_image_contract(sprites.test, (32, 32, 3))
    assert SHAPE_NAMES == ("square", "circle", "triangle")
    for factors, n in ((sprites.train_factors, 600), (sprites.test_factors, 200)):
        assert set(factors) == set(FACTOR_NAMES)
        for name in FACTOR_NAMES:
            assert factors[name].shape == (n,)
    assert np.array_equal(sprites.train_labels, sprites.train_factors["shape"])
    assert sprites.train_labels.dtype == np.int64
    assert set(np.unique(sprites.train_labels)) == {0, 1, 2}


def test_shapes_factor_ranges(sprites):
    f = sprites.train_factors
    assert f["hue"].min() >= 0.0 and f["hue"].max() < 1.0
    assert f["scale"].min() >= 0.25 and f["scale"].max() <= 0.5
    # the circumscribed circle stays inside the image
    for pos in (f["pos_x"], f["pos_y"]):
        assert np.all(pos - f["scale"] / 2 >= 0.0) and np.all(pos + f["scale"] / 2 <= 1.0)
    period = {0: math.pi / 2, 2: 2 * math.pi / 3}
    for kind, p in period.items():
        rot = f["rotation"][f["shape"] == kind]
        assert rot.min() >= 0.0 and rot.max() < p
        assert rot.max() > 0.8 * p  # the whole range is used
    assert np.all(f["rotation"][f["shape"] == 1] == 0.0)


def test_shapes_sprites_stay_inside_and_background_is_dark(sprites):
    x = sprites.train
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    assert border.max() == 0.0
    # every image shows a sprite
    assert np.all(x.max(axis=(1, 2, 3)) > 0.9)


def test_shapes_deterministic_seeds_differ_and_splits_disjoint(sprites):
    again = shapes(num_train=600, num_test=200, size=32, seed=0)
    assert np.array_equal(again.train, sprites.train)
    assert np.array_equal(again.test, sprites.test)
    for name in FACTOR_NAMES:
        assert np.array_equal(again.train_factors[name], sprites.train_factors[name])
    other = shapes(num_train=600, num_test=200, size=32, seed=1)
    assert not np.array_equal(other.train, sprites.train)
    assert not row_hashes(sprites.train) & row_hashes(sprites.test)
    # the first images do not depend on how many are asked for
    small = shapes(num_train=10, num_test=5, size=32, seed=0)
    assert np.array_equal(small.train, sprites.train[:10])
    assert np.array_equal(small.test, sprites.test[:5])


def one(shape, hue=0.0, scale=0.5, pos_x=0.5, pos_y=0.5, rotation=0.0):
    return {
        "shape": np.array([SHAPE_NAMES.index(shape)]),
        "hue": np.array([hue]),
        "scale": np.array([scale]),
        "pos_x": np.array([pos_x]),
        "pos_y": np.array([pos_y]),
        "rotation": np.array([rotation]),
    }


@pytest.mark.parametrize(
    "shape, size, scale, rotation, area_per_r2, tol",
    [
        ("circle", 64, 0.5, 0.0, math.pi, 0.01),
        ("circle", 32, 0.3, 0.0, math.pi, 0.03),
        ("square", 64, 0.5, 0.3, 2.0, 0.01),  # side R*sqrt(2)
        ("triangle", 64, 0.5, 0.5, 3 * math.sqrt(3) / 4, 0.015),  # equilateral, circumradius R
    ],
)
def test_shapes_rendered_area_matches_geometry(shape, size, scale, rotation, area_per_r2, tol):
    img = render_shapes(one(shape, scale=scale, rotation=rotation, pos_x=0.47, pos_y=0.52), size)
    coverage = img[0, :, :, 0]  # hue 0 is pure red: the red channel is the coverage
    assert np.all(img[0, :, :, 1:] == 0.0)
    r = scale * size / 2
    assert coverage.sum() == pytest.approx(area_per_r2 * r**2, rel=tol)


def test_shapes_circle_centre_and_colour():
    size = 48
    for hue in (0.0, 0.1, 0.37, 0.62, 0.9):
        img = render_shapes(one("circle", hue=hue, scale=0.3, pos_x=0.3, pos_y=0.6), size)[0]
        expected = colorsys.hsv_to_rgb(hue, 1.0, 1.0)
        np.testing.assert_allclose(img[int(0.6 * size), int(0.3 * size)], expected, atol=1e-5)
        cov = img.max(axis=-1)
        rows, cols = np.indices(cov.shape) + 0.5
        cy, cx = (cov * rows).sum() / cov.sum(), (cov * cols).sum() / cov.sum()
        assert cx == pytest.approx(0.3 * size, abs=0.05)  # pos_x is horizontal, from the left
        assert cy == pytest.approx(0.6 * size, abs=0.05)  # pos_y is vertical, from the top


def test_shapes_rotation_respects_symmetry():
    base = render_shapes(one("triangle", rotation=0.2), 32)
    turned = render_shapes(one("triangle", rotation=0.2 + 2 * math.pi / 3), 32)
    np.testing.assert_allclose(base, turned, atol=1e-4)
    square = render_shapes(one("square", rotation=0.0), 32)
    assert np.abs(square - render_shapes(one("square", rotation=math.pi / 4), 32)).max() > 0.5
    np.testing.assert_allclose(square, render_shapes(one("square", rotation=math.pi / 2), 32), atol=1e-4)


def test_shape_symmetry_table_matches_the_renderer_and_the_sampled_rotations():
    assert SHAPE_SYMMETRY.dtype.kind == "i" and SHAPE_SYMMETRY.shape == (len(SHAPE_NAMES),)
    assert not SHAPE_SYMMETRY.flags.writeable
    for kind, k in zip(SHAPE_NAMES, SHAPE_SYMMETRY.tolist()):
        if k == 1:  # a circle looks the same at any angle
            turned = render_shapes(one(kind, rotation=1.0), 32)
        else:  # a turn by 2 pi / k gives the same image, a turn by half of it does not
            turned = render_shapes(one(kind, rotation=2 * math.pi / k), 32)
            half = render_shapes(one(kind, rotation=math.pi / k), 32)
            assert np.abs(half - render_shapes(one(kind, rotation=0.0), 32)).max() > 0.1, kind
        np.testing.assert_allclose(turned, render_shapes(one(kind, rotation=0.0), 32), atol=1e-4, err_msg=kind)
    ds = shapes(num_train=300, num_test=10, size=16, seed=1)
    f = ds.train_factors
    period = 2 * np.pi / SHAPE_SYMMETRY[f["shape"]]
    circle = f["shape"] == SHAPE_NAMES.index("circle")
    assert np.all(f["rotation"][circle] == 0.0)
    assert np.all((f["rotation"] >= 0) & (f["rotation"] < period))


def test_shapes_other_sizes():
    ds = shapes(num_train=20, num_test=4, size=64, seed=2)
    assert_image_contract(ds.train, (64, 64, 3))
    tiny = shapes(num_train=20, num_test=4, size=8)
    assert_image_contract(tiny.train, (8, 8, 3))
    assert np.all(tiny.train.max(axis=(1, 2, 3)) > 0.5)
    with pytest.raises(ValueError, match="size"):
        shapes(num_train=4, num_test=4, size=7)
    with pytest.raises(ValueError, match="num_train"):
        shapes(num_train=0)
    with pytest.raises(ValueError, match="seed"):
        shapes(num_train=4, num_test=4, seed=-1)


# ------------------------------------------------------------------------------------------------
# mnist download (against a loopback HTTP server)
# ------------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A tiny MNIST served on 127.0.0.1; yields (base_url, served_dir, arrays, sha256 per file)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    served = tmp_path / "served"
    served.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 12, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 5, dtype=np.uint8),
    }
    hashes = {}
    for name, arr in arrays.items():
        blob = idx_bytes(arr)
        (served / name).write_bytes(blob)
        hashes[name] = hashlib.sha256(blob).hexdigest()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served, arrays, hashes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_mnist_hashes_are_the_official_ones():
    assert set(MNIST_FILES) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert MNIST_FILES["train-images-idx3-ubyte.gz"].startswith("440fcabf73cc546f")
    assert all(len(h) == 64 for h in MNIST_FILES.values())


def test_mnist_download_round_trip_and_cache(mirror, tmp_path):
    base_url, served, arrays, hashes = mirror
    cache = tmp_path / "cache"
    ds = mnist(cache_dir=cache, base_url=base_url, files=hashes)
    assert ds.name == "mnist"
    assert (ds.num_train, ds.num_test) == (12, 5)
    assert_image_contract(ds.train, (28, 28, 1))
    np.testing.assert_array_equal(ds.train[..., 0] * 255, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.test[..., 0] * 255, arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.train_labels, arrays["train-labels-idx1-ubyte.gz"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte.gz"])
    assert ds.train_labels.dtype == np.int64
    assert sorted(p.name for p in cache.iterdir()) == sorted(hashes)
    # second call is served from the cache: remove the files from the mirror
    for name in hashes:
        (served / name).unlink()
    again = mnist(cache_dir=cache, base_url=base_url, files=hashes)
    np.testing.assert_array_equal(again.train, ds.train)


def test_mnist_hash_mismatch_is_reported_and_not_cached(mirror, tmp_path):
    base_url, _, _, hashes = mirror
    cache = tmp_path / "cache"
    wrong = dict(hashes)
    wrong["t10k-images-idx3-ubyte.gz"] = "0" * 64
    with pytest.raises(ValueError) as info:
        mnist(cache_dir=cache, base_url=base_url, files=wrong)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "0" * 64 in msg
    assert "corrupt" in msg and "mirror" in msg and "base_url" in msg
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()
    # nothing left over that a later call could mistake for the file
    assert not [p for p in cache.iterdir() if p.name not in hashes]
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        mnist(cache_dir=cache, base_url=base_url, files=wrong)
    ds = mnist(cache_dir=cache, base_url=base_url, files=hashes)
    assert ds.num_test == 5


def test_mnist_corrupt_mirror_then_fixed(mirror, tmp_path):
    base_url, served, arrays, hashes = mirror
    good = (served / "train-labels-idx1-ubyte.gz").read_bytes()
    (served / "train-labels-idx1-ubyte.gz").write_bytes(good[:-3] + b"xyz")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        mnist(cache_dir=cache, base_url=base_url, files=hashes)
    assert not (cache / "train-labels-idx1-ubyte.gz").exists()
    (served / "train-labels-idx1-ubyte.gz").write_bytes(good)
    ds = mnist(cache_dir=cache, base_url=base_url, files=hashes)
    np.testing.assert_array_equal(ds.train_labels, arrays["train-labels-idx1-ubyte.gz"])


def test_mnist_network_errors_name_the_url(mirror, tmp_path):
    base_url, _, _, hashes = mirror
    missing = base_url + "nowhere/"
    with pytest.raises(ConnectionError) as info:
        mnist(cache_dir=tmp_path / "c1", base_url=missing, files=hashes)
    assert missing in str(info.value) and "base_url" in str(info.value) and "cache_dir" in str(info.value)
    # a port with nothing listening
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        mnist(cache_dir=tmp_path / "c2", base_url=f"http://127.0.0.1:{port}/", files=hashes)


def test_mnist_cache_env_var(mirror, tmp_path, monkeypatch):
    base_url, _, _, hashes = mirror
    monkeypatch.setenv("VAE_BOOK_DATA_CACHE", str(tmp_path / "envcache"))
    mnist(base_url=base_url, files=hashes)
    assert (tmp_path / "envcache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_mnist_bad_arguments():
    with pytest.raises(ValueError, match="files"):
        mnist(files={"train-images-idx3-ubyte.gz": "0" * 64})
    bad = dict(MNIST_FILES, **{"t10k-labels-idx1-ubyte.gz": "abc"})
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        mnist(files=bad)


def test_read_idx_checks_magic_and_size(tmp_path):
    mnist_source = importlib.import_module("vae_book.data.mnist")  # the module (`data.mnist` is the loader)
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good.gz"
    good.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(mnist_source._read_idx(good), arr)
    plain = tmp_path / "plain"
    plain.write_bytes(gzip.decompress(idx_bytes(arr)))
    np.testing.assert_array_equal(mnist_source._read_idx(plain), arr)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 8))
    with pytest.raises(ValueError, match="magic"):
        mnist_source._read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(gzip.decompress(idx_bytes(arr))[:-1])
    with pytest.raises(ValueError, match="corrupt"):
        mnist_source._read_idx(short)


# ------------------------------------------------------------------------------------------------
# image_folder
# ------------------------------------------------------------------------------------------------


def solid(w, h, rgb):
    return Image.new("RGB", (w, h), tuple(rgb))


def test_image_folder_loads_mixed_files(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    solid(40, 20, (255, 0, 0)).save(tmp_path / "wide.png")
    solid(20, 50, (0, 255, 0)).save(tmp_path / "sub" / "tall.JPG", quality=95)
    solid(30, 30, (0, 0, 255)).save(tmp_path / "sub" / "deeper" / "square.jpeg")
    Image.new("RGBA", (25, 25), (10, 20, 30, 128)).save(tmp_path / "alpha.PNG")
    Image.new("L", (25, 35), 200).save(tmp_path / "grey.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = image_folder(tmp_path, size=16, test_fraction=0.0)
    assert ds.name == "image_folder"
    assert (ds.num_train, ds.num_test) == (5, 0)
    assert_image_contract(ds.train, (16, 16, 3))
    assert_image_contract(ds.test, (16, 16, 3))
    means = ds.train.mean(axis=(1, 2))
    # sorted by relative path: alpha.PNG, grey.png, sub/deeper/square.jpeg, sub/tall.JPG, wide.png
    np.testing.assert_allclose(means[1], [200 / 255] * 3, atol=1e-5)
    np.testing.assert_allclose(means[2], [0, 0, 1], atol=0.02)
    np.testing.assert_allclose(means[3], [0, 1, 0], atol=0.02)
    np.testing.assert_allclose(means[4], [1, 0, 0], atol=1e-5)


def test_image_folder_keeps_the_range_of_16_bit_grey_pngs(tmp_path):
    # PIL's own conversion of a 16-bit PNG to RGB clips every value above 255: mid-grey became white
    levels = np.array([0, 8192, 32768, 65535], np.uint16)
    for value in levels:
        Image.fromarray(np.full((12, 12), value, np.uint16)).save(tmp_path / f"g{value:05d}.png")
    assert Image.open(tmp_path / "g32768.png").mode.startswith("I")  # really a 16-bit file
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    ds = image_folder(tmp_path, size=8, test_fraction=0.0)
    assert_image_contract(ds.train, (8, 8, 3))
    flat = ds.train[:4]  # g00000, g08192, g32768, g65535 (sorted by name)
    np.testing.assert_allclose(flat.mean(axis=(1, 2, 3)), levels / 65535, atol=1e-5)
    row = ds.train[4, 0, :, 0]  # the ramp rises left to right and stays inside [0, 1]
    assert np.all(np.diff(row) > 0) and 0.0 <= row.min() and row.max() <= 1.0


def test_image_folder_centre_crop(tmp_path):
    img = np.zeros((30, 60, 3), np.uint8)  # H=30, W=60: crop keeps columns 15..44
    img[:, :15] = (255, 0, 0)
    img[:, 45:] = (255, 0, 0)
    img[:, 15:45] = (0, 0, 255)
    Image.fromarray(img).save(tmp_path / "framed.png")
    tall = np.zeros((80, 20, 3), np.uint8)  # H=80, W=20: crop keeps rows 30..49
    tall[:] = (0, 255, 0)
    tall[30:50] = (255, 255, 255)
    Image.fromarray(tall).save(tmp_path / "tall.png")
    ds = image_folder(tmp_path, size=10, test_fraction=0.0)
    np.testing.assert_allclose(ds.train[0], np.broadcast_to([0, 0, 1], (10, 10, 3)), atol=1e-6)
    np.testing.assert_allclose(ds.train[1], np.ones((10, 10, 3)), atol=1e-6)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        image_folder(tmp_path / "missing")
    afile = tmp_path / "a.png"
    solid(8, 8, (1, 2, 3)).save(afile)
    with pytest.raises(ValueError, match="not a directory"):
        image_folder(afile)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(ValueError) as info:
        image_folder(empty)
    msg = str(info.value)
    assert ".png" in msg and ".jpg" in msg and ".jpeg" in msg and "VAE_BOOK_DATA" in msg
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    solid(8, 8, (1, 2, 3)).save(corrupt / "fine.png")
    (corrupt / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        image_folder(corrupt)
    with pytest.raises(ValueError, match="test_fraction"):
        image_folder(tmp_path, test_fraction=1.0)
    with pytest.raises(ValueError, match="size"):
        image_folder(tmp_path, size=0)


def grey_folder(root, levels):
    for level in levels:
        Image.new("L", (6, 9), int(level)).save(root / f"img_{level:03d}.png")


def levels_of(x):
    return set(np.round(x[:, 0, 0, 0] * 255).astype(int).tolist())


def test_image_folder_split_is_stable_when_files_are_added(tmp_path):
    grey_folder(tmp_path, range(0, 120, 3))  # 40 images
    before = image_folder(tmp_path, size=8, test_fraction=0.3)
    assert before.num_test > 0 and before.num_train > 0
    assert not levels_of(before.train) & levels_of(before.test)
    grey_folder(tmp_path, range(1, 200, 3))  # 67 more
    after = image_folder(tmp_path, size=8, test_fraction=0.3)
    assert after.num_train + after.num_test == 107
    assert levels_of(before.test) <= levels_of(after.test)
    assert levels_of(before.train) <= levels_of(after.train)
    again = image_folder(tmp_path, size=8, test_fraction=0.3)
    np.testing.assert_array_equal(again.test, after.test)


def test_image_folder_max_images_and_env_default(tmp_path, monkeypatch):
    grey_folder(tmp_path, range(0, 60, 2))  # 30 images
    few = image_folder(tmp_path, size=8, test_fraction=0.0, max_images=5)
    more = image_folder(tmp_path, size=8, test_fraction=0.0, max_images=12)
    assert few.num_train == 5 and more.num_train == 12
    assert levels_of(few.train) <= levels_of(more.train)
    assert levels_of(few.train) != set(range(0, 10, 2))  # not just the first names
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path))
    assert data.default_image_folder() == tmp_path
    assert image_folder(size=8, max_images=3).num_train + image_folder(size=8, max_images=3).num_test == 3
    monkeypatch.delenv("VAE_BOOK_DATA")
    assert data.default_image_folder() is None
    with pytest.raises(ValueError, match="VAE_BOOK_DATA"):
        image_folder()


# ------------------------------------------------------------------------------------------------
# batches
# ------------------------------------------------------------------------------------------------


def numbered(n):
    """Images whose every pixel holds the example's index (as a float)."""
    return np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None, None], (n, 2, 2, 1)).copy()


def ids(batch):
    return batch[:, 0, 0, 0].astype(int).tolist()


def test_batches_cover_each_image_once_per_epoch():
    x = numbered(10)
    out = list(batches(x, 3, epochs=2, drop_remainder=False))
    assert [len(b) for b in out] == [3, 3, 3, 1] * 2
    assert all(b.dtype == np.float32 and b.shape[1:] == (2, 2, 1) for b in out)
    first, second = sum(map(ids, out[:4]), []), sum(map(ids, out[4:]), [])
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second  # a fresh permutation per epoch
    dropped = list(batches(x, 3, epochs=1))
    assert [len(b) for b in dropped] == [3, 3, 3]
    assert len(set(sum(map(ids, dropped), []))) == 9


def test_batches_reproducible_and_infinite():
    x = numbered(20)
    a = [ids(b) for b in itertools.islice(batches(x, 4, seed=5), 23)]
    b = [ids(b) for b in itertools.islice(batches(x, 4, seed=5), 23)]
    c = [ids(b) for b in itertools.islice(batches(x, 4, seed=6), 23)]
    assert a == b and a != c
    assert len(a) == 23  # more than 4 epochs of 5 batches: it keeps going
    # the order of epoch e only depends on (seed, e)
    perm = np.random.default_rng([5, 2]).permutation(20)
    assert sum(a[10:15], []) == perm.tolist()


def test_batches_labels_stay_aligned():
    x = numbered(17)
    labels = np.arange(17) * 10
    for xb, yb in batches(x, 5, epochs=3, labels=labels, seed=1):
        assert np.array_equal(np.array(ids(xb)) * 10, yb)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4", 11])
def test_batches_bad_batch_size_fails_at_call(bad):
    with pytest.raises(ValueError, match="batch_size"):
        batches(numbered(10), bad)  # not iterated: the error comes at the call


def test_batches_other_errors():
    with pytest.raises(ValueError, match="labels"):
        batches(numbered(10), 2, labels=np.arange(9))
    with pytest.raises(ValueError, match="epochs"):
        batches(numbered(10), 2, epochs=0)
    with pytest.raises(ValueError, match="images"):
        batches(np.zeros((10, 2), np.int32), 2)
    # drop_remainder=False allows a batch larger than the data
    assert [len(b) for b in batches(numbered(4), 10, epochs=1, drop_remainder=False)] == [4]


# ------------------------------------------------------------------------------------------------
# binarize
# ------------------------------------------------------------------------------------------------


def test_binarize_threshold():
    x = np.array([[0.0, 0.2, 0.5, 0.51, 1.0]], np.float32)
    out = binarize(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 0, 0, 1, 1]])


def test_binarize_dynamic():
    p = np.full((200, 10, 10, 1), 0.3, np.float32)
    a, b, c = binarize(p, seed=0), binarize(p, seed=0), binarize(p, seed=1)
    assert a.dtype == np.float32 and a.shape == p.shape
    assert set(np.unique(a).tolist()) == {0.0, 1.0}
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.mean() == pytest.approx(0.3, abs=0.01)  # E[x] = p
    edges = binarize(np.array([0.0, 1.0] * 500, np.float32), seed=3)
    np.testing.assert_array_equal(edges, [0.0, 1.0] * 500)


def test_binarize_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"images.*\[0, 1\]"):
        binarize(np.array([0.0, 255.0], np.float32))


# ------------------------------------------------------------------------------------------------
# The package: one module per source, re-exported
# ------------------------------------------------------------------------------------------------

DATA_DIR = Path(data.__file__).parent


def data_modules():
    return [importlib.import_module(f"vae_book.data.{info.name}") for info in pkgutil.iter_modules([str(DATA_DIR)])]


def test_package_re_exports_every_public_name_of_its_modules():
    exported = set()
    for module in data_modules():
        assert module.__doc__ and module.__doc__.strip(), f"{module.__name__} has no docstring"
        assert isinstance(getattr(module, "__all__", None), list), f"{module.__name__} has no __all__"
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
            if not module.__name__.split(".")[-1].startswith("_"):
                assert getattr(data, name) is getattr(module, name), f"vae_book.data.{name} is not {module.__name__}.{name}"
                exported.add(name)
    assert set(data.__all__) == exported and len(data.__all__) == len(exported)
    # the loaders shadow the modules of the same name as attributes of the package
    assert callable(data.mnist) and data.mnist.__module__ == "vae_book.data.mnist"
    assert callable(data.shapes) and data.shapes.__module__ == "vae_book.data.shapes"


def test_modules_import_one_way_and_no_private_names_of_each_other():
    order = ["_common", "base", "mnist", "shapes", "folder", "registry", "__init__"]
    files = sorted(p.stem for p in DATA_DIR.glob("*.py"))
    assert files == sorted(order), f"a new module of vae_book.data must be placed in this test's order: {files}"
    for path in DATA_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vae_book.data"):
                target = node.module.split(".")[2] if node.module.count(".") >= 2 else "__init__"
                assert order.index(target) < order.index(path.stem), f"{path.name} imports {node.module}"
                if target != path.stem:
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"{path.name} imports the private names {private} of {node.module}"
            elif isinstance(node, ast.ImportFrom) and node.module == "vae_book" and path.stem != "__init__":
                assert "data" not in [a.name for a in node.names], f"{path.name} imports vae_book.data"
        assert len(path.read_text().splitlines()) <= 400, f"{path.name} is longer than 400 lines"
