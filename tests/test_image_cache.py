"""Faces at scale: the uint8 memory-map cache of ``image_folder``, uint8 datasets, batches and fit on them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from vae_book import data as Dt
from vae_book._checks import as_float_images, check_images
from vae_book.data import folder as folder_module
from vae_book.models.mlp import MLPConfig, MLPVAE
from vae_book.train import fit


def _write_folder(root, n=12):
    """``n`` images: PNGs and JPEGs of different sizes, one in a subfolder."""
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = 20 + 3 * (i % 4), 24 + 2 * (i % 3)
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        name = ("sub/" if i == 0 else "") + f"img{i:02d}" + (".jpg" if i % 3 == 0 else ".png")
        img.save(root / name)
    return root


@pytest.fixture
def folder(tmp_path):
    return _write_folder(tmp_path / "imgs")


def _count_decodes(monkeypatch):
    calls = []
    real = folder_module._load_image

    def counting(path, size, uint8=False):
        calls.append(path)
        return real(path, size, uint8)

    monkeypatch.setattr(folder_module, "_load_image", counting)
    return calls


def test_the_cache_holds_the_decoded_images_as_uint8(folder, tmp_path, monkeypatch):
    plain = Dt.image_folder(folder, size=8, test_fraction=0.3, progress=False)
    calls = _count_decodes(monkeypatch)
    first = Dt.image_folder(folder, size=8, test_fraction=0.3, progress=False, cache=tmp_path / "c")
    assert len(calls) == 12
    for split in ("train", "test"):
        a = getattr(first, split)
        assert a.dtype == np.uint8 and isinstance(a, np.memmap)
        # the float32 decode is exactly the uint8 one divided by 255 for 8-bit files
        np.testing.assert_array_equal(as_float_images(np.asarray(a)), getattr(plain, split))
    assert len(first.test) > 0 and len(first.train) > 0
    assert [p.name for p in (tmp_path / "c").iterdir()] == [p.name for p in (tmp_path / "c").glob("*.npy")]
    second = Dt.image_folder(folder, size=8, test_fraction=0.3, progress=False, cache=tmp_path / "c")
    assert len(calls) == 12, "the second call must open the map, not decode"
    np.testing.assert_array_equal(second.train, first.train)
    assert not second.train.flags.writeable


def test_the_key_follows_the_files_and_the_settings(folder, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    Dt.image_folder(folder, size=8, progress=False, cache=cache)
    Dt.image_folder(folder, size=6, progress=False, cache=cache)  # another size: another entry
    assert len(list(cache.glob("*.npy"))) == 2
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(folder / "img05.png")  # same name, new content
    calls = _count_decodes(monkeypatch)
    ds = Dt.image_folder(folder, size=8, test_fraction=0.0, progress=False, cache=cache)
    assert len(calls) == 12 and len(list(cache.glob("*.npy"))) == 3
    rel = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*"))
    assert np.all(np.asarray(ds.train[rel.index("img05.png")]) == 0)


@pytest.mark.parametrize("fault", ["truncated", "garbage", "wrong-shape"])
def test_a_bad_cache_file_is_named_and_rebuilt(folder, tmp_path, fault):
    cache = tmp_path / "c"
    good = np.array(Dt.image_folder(folder, size=8, test_fraction=0.0, progress=False, cache=cache).train)  # a copy
    (path,) = cache.glob("*.npy")
    if fault == "truncated":  # a write that stopped half way
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif fault == "garbage":
        path.write_bytes(b"not a npy file at all")
    else:
        np.save(path, np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.warns(UserWarning, match="decoded-image cache .* unusable"):
        again = Dt.image_folder(folder, size=8, test_fraction=0.0, progress=False, cache=cache)
    np.testing.assert_array_equal(np.asarray(again.train), good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: the next call is quiet
        Dt.image_folder(folder, size=8, test_fraction=0.0, progress=False, cache=cache)


def test_a_killed_decode_leaves_nothing_that_is_used(folder, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    real = folder_module._load_image
    seen = []

    def dies(path, size, uint8=False):
        seen.append(path)
        if len(seen) == 5:
            raise KeyboardInterrupt  # Ctrl-C half way through
        return real(path, size, uint8)

    monkeypatch.setattr(folder_module, "_load_image", dies)
    with pytest.raises(KeyboardInterrupt):
        Dt.image_folder(folder, size=8, progress=False, cache=cache)
    assert list(cache.iterdir()) == []
    monkeypatch.setattr(folder_module, "_load_image", real)
    # a temporary file of a process killed outright (no cleanup ran) is ignored, and swept once stale
    stale = cache / "0123456789abcdef01234567.npy.999-deadbeef.tmp"
    stale.write_bytes(b"half")
    ds = Dt.image_folder(folder, size=8, test_fraction=0.0, progress=False, cache=cache)
    assert ds.train.shape == (12, 8, 8, 3) and stale.exists()
    old = 2 * folder_module._STALE_TMP_SECONDS
    import os
    import time
    os.utime(stale, (time.time() - old, time.time() - old))
    Dt.image_folder(folder, size=6, progress=False, cache=cache)  # a build sweeps stale files
    assert not stale.exists()


def test_the_progress_bar_shows_unless_static(folder, capsys, monkeypatch):
    monkeypatch.delenv("VAE_BOOK_STATIC", raising=False)
    Dt.image_folder(folder, size=8)
    assert "decoding imgs" in capsys.readouterr().err
    monkeypatch.setenv("VAE_BOOK_STATIC", "1")
    Dt.image_folder(folder, size=8)
    assert "decoding" not in capsys.readouterr().err


def test_image_cache_dir_is_in_the_data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_BOOK_DATA_CACHE", str(tmp_path))
    assert folder_module.image_cache_dir() == tmp_path / "images"


def test_uint8_datasets_and_batches(folder, tmp_path):
    ds = Dt.image_folder(folder, size=8, test_fraction=0.3, progress=False, cache=tmp_path / "c")
    ref = Dt.image_folder(folder, size=8, test_fraction=0.3, progress=False)
    a = next(Dt.batches(ds.train, 4, seed=3))
    b = next(Dt.batches(ref.train, 4, seed=3))
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert Dt.Dataset("d", train=np.zeros((2, 4, 4, 1), np.uint8), test=np.zeros((1, 4, 4, 1), np.uint8)).num_train == 2
    np.testing.assert_array_equal(Dt.binarize(np.array([0, 200], np.uint8)), [0.0, 1.0])


def test_check_images_takes_uint8_and_keeps_its_float_checks():
    x = np.full((2, 4, 4, 3), 255, np.uint8)
    assert check_images(x) is x  # returned as it came: a memory map stays a memory map
    assert as_float_images(x).dtype == np.float32 and as_float_images(x).max() == 1.0
    with pytest.raises(ValueError, match="`x` must have values in"):
        check_images(np.full((2, 4, 4, 3), 255.0, np.float32))
    with pytest.raises(ValueError, match="floating dtype"):
        check_images(np.zeros((2, 4, 4, 3), np.int64))


def test_fit_trains_on_uint8_images_as_on_their_floats(folder, tmp_path):
    ds = Dt.image_folder(folder, size=8, test_fraction=0.3, progress=False, cache=tmp_path / "c")
    ref = Dt.image_folder(folder, size=8, test_fraction=0.3, progress=False)
    histories = []
    for d in (ds, ref):
        model = MLPVAE(MLPConfig(image_shape=(8, 8, 3), hidden=16, z_dim=2, likelihood="gaussian"), rngs=nnx.Rngs(0))
        histories.append(fit(model, d.train, steps=4, batch_size=4, eval_images=d.test, log_every=1, progress=False))
    assert np.all(np.isfinite(histories[0].train["loss"]))
    np.testing.assert_allclose(histories[0].train["loss"], histories[1].train["loss"], rtol=1e-6)
    np.testing.assert_allclose(histories[0].eval["loss"], histories[1].eval["loss"], rtol=1e-6)
