"""vae_book.latent: interpolation paths, activity, traversals, factor targets, correlations and probes."""

import numpy as np
import pytest

from vae_book import latent
from vae_book.data import shapes


def shoemake(z0, z1, t):
    """Textbook slerp on the raw vectors (White 2016), float64."""
    omega = np.arccos(np.clip(z0 @ z1 / (np.linalg.norm(z0) * np.linalg.norm(z1)), -1, 1))
    t = np.asarray(t)[:, None]
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)


# ------------------------------------------------------------------ lerp


def test_lerp_endpoints_midpoint_and_shapes():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((2, 5))
    path = latent.lerp(z0, z1, np.linspace(0, 1, 5))
    assert path.shape == (5, 5) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], z0, rtol=1e-6)
    np.testing.assert_allclose(path[-1], z1, rtol=1e-6)
    np.testing.assert_allclose(path[2], (z0 + z1) / 2, rtol=1e-6)
    batch = latent.lerp(rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), [0.0, 0.5])
    assert batch.shape == (2, 3, 4)
    assert latent.lerp(z0, z1, 0.25).shape == (5,)


def test_lerp_rejects_bad_input():
    with pytest.raises(ValueError, match="z0"):
        latent.lerp(np.zeros(3), np.zeros(4), 0.5)
    with pytest.raises(ValueError, match="t"):
        latent.lerp(np.zeros(3), np.ones(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="z1"):
        latent.lerp(np.zeros(3), np.array([0, np.nan, 0.0]), 0.5)


# ------------------------------------------------------------------ slerp


def test_slerp_equals_shoemake_for_equal_norms_and_keeps_the_norm():
    rng = np.random.default_rng(1)
    d = 32
    z0 = rng.standard_normal(d)
    z1 = rng.standard_normal(d)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    t = np.linspace(0, 1, 11)
    path = latent.slerp(z0, z1, t)
    np.testing.assert_allclose(path, shoemake(z0, z1, t), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-5)
    np.testing.assert_allclose(path[0], z0, atol=1e-5)
    np.testing.assert_allclose(path[-1], z1, atol=1e-5)


def test_slerp_norm_is_linear_and_angle_moves_at_constant_speed():
    rng = np.random.default_rng(2)
    z0, z1 = rng.standard_normal(8) * 3, rng.standard_normal(8)
    t = np.linspace(0, 1, 21)
    path = latent.slerp(z0, z1, t).astype(np.float64)
    r0, r1 = np.linalg.norm(z0), np.linalg.norm(z1)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), (1 - t) * r0 + t * r1, rtol=1e-5)
    u = path / np.linalg.norm(path, axis=1, keepdims=True)
    steps = np.arccos(np.clip(np.sum(u[1:] * u[:-1], axis=1), -1, 1))
    np.testing.assert_allclose(steps, steps.mean(), atol=1e-4)
    omega = np.arccos(z0 @ z1 / (r0 * r1))
    np.testing.assert_allclose(steps.sum(), omega, atol=1e-4)


def test_slerp_parallel_codes_move_only_in_norm():
    z0 = np.array([1.0, 2.0, -2.0])
    path = latent.slerp(z0, 2.0 * z0, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(path, [z0, 1.5 * z0, 2.0 * z0], rtol=1e-6)
    nearly = z0 + np.array([0.0, 0.0, 1e-12])
    assert np.all(np.isfinite(latent.slerp(z0, nearly, np.linspace(0, 1, 5))))


def test_slerp_antipodal_codes_take_a_half_great_circle():
    z0 = np.array([3.0, 0.0, 0.0, 0.0])
    t = np.linspace(0, 1, 9)
    path = latent.slerp(z0, -z0, t).astype(np.float64)
    assert np.all(np.isfinite(path))
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0, rtol=1e-6)
    np.testing.assert_allclose(path[-1], -z0, atol=1e-6)
    np.testing.assert_allclose(path @ z0 / 9.0, np.cos(np.pi * t), atol=1e-6)  # constant angular speed
    # the path is deterministic and stays in one plane
    np.testing.assert_array_equal(path, latent.slerp(z0, -z0, t))
    assert np.linalg.matrix_rank(path, tol=1e-5) == 2
    # nearly antipodal: well defined and still on the sphere
    near = latent.slerp(z0, -z0 + np.array([0, 1e-6, 0, 0]), t)
    np.testing.assert_allclose(np.linalg.norm(near, axis=1), 3.0, rtol=1e-5)


def test_slerp_with_a_zero_code_is_the_straight_line():
    z1 = np.array([0.5, -1.0, 2.0])
    t = np.linspace(0, 1, 5)
    np.testing.assert_allclose(latent.slerp(np.zeros(3), z1, t), latent.lerp(np.zeros(3), z1, t), atol=1e-6)
    np.testing.assert_allclose(latent.slerp(z1, np.zeros(3), t), latent.lerp(z1, np.zeros(3), t), atol=1e-6)
    np.testing.assert_array_equal(latent.slerp(np.zeros(3), np.zeros(3), t), np.zeros((5, 3)))


def test_slerp_batches_mixed_cases():
    z0 = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z1 = np.array([[0.0, 1.0], [-1.0, 0.0], [0.0, 4.0]])  # orthogonal, antipodal, parallel
    path = latent.slerp(z0, z1, np.linspace(0, 1, 3))
    assert path.shape == (3, 3, 2)
    np.testing.assert_allclose(path[1, 0], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(np.abs(path[1, 1]), [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(path[1, 2], [0.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(path[-1], z1, atol=1e-6)


def test_slerp_rejects_1d_antipodes_and_bad_eps():
    with pytest.raises(ValueError, match="opposite"):
        latent.slerp(np.array([1.0]), np.array([-2.0]), 0.5)
    np.testing.assert_allclose(latent.slerp(np.array([1.0]), np.array([3.0]), 0.5), [2.0])
    with pytest.raises(ValueError, match="eps"):
        latent.slerp(np.ones(2), np.ones(2), 0.5, eps=0.5)


# ------------------------------------------------------------------ activity and traversals


def test_latent_activity_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    mean = rng.standard_normal((50, 4)) * np.array([2.0, 0.0, 0.5, 0.01])
    log_std = rng.normal(-1, 0.1, (50, 4)) * np.array([1.0, 0.0, 1.0, 0.01])
    act = latent.latent_activity(mean, log_std)
    kl = 0.5 * (np.exp(2 * log_std) + mean**2 - 1 - 2 * log_std)
    np.testing.assert_allclose(act["kl"], kl.mean(0))
    np.testing.assert_allclose(act["mean_var"], mean.var(0))
    np.testing.assert_allclose(act["posterior_var"], np.exp(2 * log_std).mean(0))
    assert list(act["order"][:1]) == [0] and act["kl"][1] == 0.0  # an unused dimension has zero KL
    np.testing.assert_array_equal(act["active"], mean.var(0) > 0.01)
    assert list(act["active"]) == [True, False, True, False]
    assert list(latent.latent_activity(mean, log_std, threshold=1e-5)["active"]) == [True, False, True, True]
    with pytest.raises(ValueError, match="log_std"):
        latent.latent_activity(mean, log_std[:, :3])
    with pytest.raises(ValueError, match="threshold"):
        latent.latent_activity(mean, log_std, threshold=0)


def test_traverse_layout_and_values():
    seen = []

    def decode(z):
        seen.append(np.array(z))
        return np.full((len(z), 2, 2, 3), 0.5, np.float32)

    z0 = np.zeros(6, np.float32)
    frames = latent.traverse(decode, z0, [4, 1], np.array([-1.0, 0.0, 2.0]))
    assert frames.shape == (2, 3, 2, 2, 3)
    codes = seen[0].reshape(2, 3, 6)
    np.testing.assert_array_equal(codes[0, :, 4], [-1, 0, 2])
    np.testing.assert_array_equal(codes[1, :, 1], [-1, 0, 2])
    assert np.all(codes[0][:, [0, 1, 2, 3, 5]] == 0)
    with pytest.raises(ValueError, match="dims"):
        latent.traverse(decode, z0, [6], [0.0])
    with pytest.raises(ValueError, match="decode"):
        latent.traverse(None, z0, [0], [0.0])


# ------------------------------------------------------------------ factors


@pytest.fixture(scope="module")
def small_shapes():
    return shapes(num_train=600, num_test=300, size=16, seed=0)


def test_factor_targets_encodings(small_shapes):
    f = small_shapes.test_factors
    t = latent.factor_targets(f)
    assert list(t) == ["shape", "hue", "scale", "pos_x", "pos_y", "rotation"]
    onehot, mask, cols = t["shape"]
    assert cols == ["square", "circle", "triangle"] and mask.all()
    np.testing.assert_array_equal(onehot.argmax(1), f["shape"])
    hue, _, _ = t["hue"]
    np.testing.assert_allclose(np.hypot(hue[:, 0], hue[:, 1]), 1.0)
    rot, rmask, _ = t["rotation"]
    np.testing.assert_array_equal(rmask, f["shape"] != 1)  # circles have no rotation
    # the k-fold angle is the same for theta and theta + 2 pi / k: a square turned by 90 degrees
    g = {k: v[:4].copy() for k, v in f.items()}
    g["shape"][:] = 0
    g["rotation"][:] = [0.1, 0.1 + np.pi / 2, 0.3, 0.3 - np.pi / 2]
    r = latent.factor_targets(g)["rotation"][0]
    np.testing.assert_allclose(r[0], r[1], atol=1e-6)
    np.testing.assert_allclose(r[2], r[3], atol=1e-6)
    # hue wraps: 0.999 is next to 0.001
    h = latent.factor_targets({**g, "hue": np.array([0.999, 0.001, 0.5, 0.25], np.float32)})["hue"][0]
    assert np.linalg.norm(h[0] - h[1]) < 0.02 and np.linalg.norm(h[0] - h[2]) > 1.9
    with pytest.raises(ValueError, match="factors"):
        latent.factor_targets({"hue": f["hue"]})


def test_factor_correlations_against_numpy(small_shapes):
    f = small_shapes.test_factors
    t = latent.factor_targets(f)
    rng = np.random.default_rng(4)
    codes = np.stack([f["pos_x"], -f["scale"], rng.standard_normal(len(f["hue"])), np.zeros(len(f["hue"]))], 1)
    corr, names = latent.factor_correlations(codes, t)
    assert corr.shape == (len(names), 4) and len(names) == 3 + 2 + 3 + 2
    row = dict(zip(names, corr))
    np.testing.assert_allclose(row["pos_x"][0], 1.0, atol=1e-9)
    np.testing.assert_allclose(row["scale"][1], -1.0, atol=1e-9)
    np.testing.assert_allclose(row["pos_y"][2], np.corrcoef(f["pos_y"], codes[:, 2])[0, 1], atol=1e-9)
    assert np.all(corr[:, 3] == 0)  # a constant dimension correlates with nothing
    m = f["shape"] != 1  # rotation columns use the non-circles only
    rc = latent.factor_targets(f)["rotation"][0][m, 0]
    np.testing.assert_allclose(row["cos k·rot"][2], np.corrcoef(rc, codes[m, 2])[0, 1], atol=1e-9)


def test_linear_probe_r2(small_shapes):
    ds = small_shapes
    ttr, tte = latent.factor_targets(ds.train_factors), latent.factor_targets(ds.test_factors)
    rng = np.random.default_rng(5)

    def codes(f, t):
        hue = t["hue"][0]
        return np.stack([f["pos_x"], f["pos_y"] + 0.3 * f["scale"], f["scale"], hue[:, 0], hue[:, 1],
                         rng.standard_normal(len(f["hue"]))], 1)

    r2 = latent.linear_probe_r2(codes(ds.train_factors, ttr), ttr, codes(ds.test_factors, tte), tte, ridge=0.0)
    for name in ("hue", "scale", "pos_x", "pos_y"):
        assert r2[name] > 0.999, (name, r2[name])
    assert r2["rotation"] < 0.1 and r2["shape"] < 0.1  # the codes hold no information about them
    # against a least-squares fit by numpy for one factor
    ztr, zte = codes(ds.train_factors, ttr), codes(ds.test_factors, tte)
    a = np.c_[ztr, np.ones(len(ztr))]
    coef = np.linalg.lstsq(a, ttr["rotation"][0] * 0 + ds.train_factors["scale"][:, None], rcond=None)[0]
    pred = np.c_[zte, np.ones(len(zte))] @ coef
    y = ds.test_factors["scale"][:, None]
    assert abs(latent.linear_probe_r2(ztr, ttr, zte, tte, ridge=0.0)["scale"]
               - (1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))) < 1e-9
    with pytest.raises(ValueError, match="test_codes"):
        latent.linear_probe_r2(ztr, ttr, zte[:, :3], tte)


# ------------------------------------------------------------------ batched encode / decode


def test_encode_and_decode_mean_match_the_model_in_uneven_batches():
    import jax
    from flax import nnx

    from vae_book.models.mlp import MLPConfig, MLPVAE

    model = MLPVAE(MLPConfig(hidden=16, z_dim=3), rngs=nnx.Rngs(0))
    x = np.asarray(jax.random.uniform(jax.random.key(0), (7, 28, 28, 1)))
    mean, log_std = latent.encode(model, x, batch_size=3)
    m_ref, s_ref = model.encode(x)
    assert mean.shape == (7, 3) and isinstance(mean, np.ndarray)
    np.testing.assert_allclose(mean, m_ref, atol=1e-5)
    np.testing.assert_allclose(log_std, s_ref, atol=1e-5)
    images = latent.decode_mean(model, mean, batch_size=4)
    np.testing.assert_allclose(images, model.mean_image(model.decode(m_ref)), atol=1e-5)
    with pytest.raises(ValueError, match="z"):
        latent.decode_mean(model, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="images"):
        latent.encode(model, x * 3)
