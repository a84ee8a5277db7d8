"""Colored MNIST environments: shapes, subsampling, label noise and colour rates, channel zeroing, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

from gs_jax.data import colored_mnist as cm
from gs_jax.data.mnist import Pool
from gs_jax.errors import GsJaxError

N_TRAIN, N_TEST = 20000, 8000


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(0)
    return Pool(
        name="synthetic",
        train_images=rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        train_classes=rng.integers(0, 10, N_TRAIN).astype(np.uint8),
        test_images=rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        test_classes=rng.integers(0, 10, N_TEST).astype(np.uint8),
        source="test",
    )


@pytest.fixture(scope="module")
def restart(pool):
    return cm.build_restart(pool, 1234)


def within_binomial(count_rate: float, p: float, n: int, sigmas: float = 5.0) -> bool:
    """|rate − p| ≤ 5 binomial standard deviations (false-failure probability < 1e-6)."""
    return abs(count_rate - p) <= sigmas * np.sqrt(p * (1 - p) / n)


def test_shapes_and_split(pool, restart):
    env0, env1 = restart.train
    assert env0.x.shape == (N_TRAIN // 2, 392) and env1.x.shape == (N_TRAIN // 2, 392)
    assert restart.test.x.shape == (N_TEST, 392) and env0.x.dtype == np.float32
    assert (env0.e, env1.e, restart.test.e) == (0.2, 0.1, 0.9)
    # env0/env1 are the even/odd entries of ONE permutation of the pool drawn from RandomState(seed)
    perm = np.random.RandomState(1234).permutation(N_TRAIN)
    img0 = pool.train_images[perm[0::2]][:, ::2, ::2].astype(np.float32) / 255
    kept = env0.x.reshape(-1, 2, 14, 14)[np.arange(N_TRAIN // 2), env0.color]
    np.testing.assert_array_equal(kept, img0)


def test_subsample_reference():
    img = np.arange(28 * 28, dtype=np.uint8).reshape(1, 28, 28)
    ref = np.array([[img[0, 2 * i, 2 * j] for j in range(14)] for i in range(14)])
    np.testing.assert_array_equal(cm.subsample(img)[0], ref)


@pytest.mark.parametrize("which", [0, 1, "test"])
def test_label_noise_and_colour_rates(pool, restart, which):
    env = restart.test if which == "test" else restart.train[which]
    n = env.y.shape[0]
    assert within_binomial(env.noisy.mean(), 0.25, n)
    agreement = (env.color == env.y).mean()
    assert within_binomial(agreement, 1 - env.e, n)
    if which == "test":  # the label is the digit class (< 5 → 1) flipped where noisy
        np.testing.assert_array_equal(env.y, (pool.test_classes < 5) != env.noisy)


def test_channel_zeroing(restart):
    env = restart.train[0]
    x = env.x.reshape(-1, 2, 14, 14)
    idx = np.arange(x.shape[0])
    assert np.all(x[idx, 1 - env.color] == 0.0)  # the other channel is zeroed
    assert np.all(x[idx, env.color].reshape(len(idx), -1).max(1) > 0)  # random images are never blank
    assert env.x.min() >= 0.0 and env.x.max() <= 1.0


def test_four_diagnostic_environments(pool, restart):
    four = restart.four
    assert tuple(four) == cm.FOUR_ENVS
    img = pool.test_images[:, ::2, ::2].astype(np.float32) / 255
    gray = four["grayscale_digits"].x.reshape(-1, 2, 14, 14)
    np.testing.assert_allclose(gray[:, 0] + gray[:, 1], img, atol=1e-6)  # channel sum = the digit
    blank = four["colored_blank"].x.reshape(-1, 2, 14, 14)
    mean = pool.test_images[:, ::2, ::2].mean() / 255
    kept = blank[np.arange(N_TEST), four["colored_blank"].color]
    np.testing.assert_allclose(kept, mean, rtol=1e-5)
    gblank = four["grayscale_blank"].x
    np.testing.assert_allclose(gblank, mean / 2, rtol=1e-5)
    for name in ("colored_digits", "colored_blank"):
        assert within_binomial((four[name].color == four[name].y).mean(), 0.1, N_TEST)
    # every diagnostic env has its own fresh noise draws
    assert not np.array_equal(four["colored_digits"].noisy, restart.test.noisy)
    assert not np.array_equal(four["grayscale_digits"].noisy, four["colored_digits"].noisy)


def test_deterministic_per_seed(pool, restart):
    again = cm.build_restart(pool, 1234, four_envs=False)
    np.testing.assert_array_equal(again.train[1].x, restart.train[1].x)
    np.testing.assert_array_equal(again.test.y, restart.test.y)
    other = cm.build_restart(pool, 1235, four_envs=False)
    assert not np.array_equal(other.train[0].y, restart.train[0].y)


def test_stack_restarts(pool):
    small = Pool(
        "s", pool.train_images[:10], pool.train_classes[:10], pool.test_images[:6], pool.test_classes[:6], ""
    )
    stacked = cm.stack_restarts([cm.build_restart(small, s) for s in (1, 2, 3)])
    assert stacked["train_x"].shape == (3, 2, 5, 392) and stacked["train_y"].shape == (3, 2, 5)
    assert stacked["four_x"].shape == (3, 4, 6, 392) and stacked["test_y"].shape == (3, 6)


def test_bad_inputs(pool):
    rng = np.random.RandomState(0)
    with pytest.raises(GsJaxError):
        cm.make_environment(pool.test_images[:4], pool.test_classes[:3], 0.1, rng)
    with pytest.raises(GsJaxError):
        cm.make_environment(pool.test_images[:4], np.array([1, 2, 3, 11]), 0.1, rng)
    with pytest.raises(GsJaxError):
        cm.make_environment(pool.test_images[:4], pool.test_classes[:4], 1.5, rng)
    odd = Pool(
        "o", pool.train_images[:5], pool.train_classes[:5], pool.test_images[:2], pool.test_classes[:2], ""
    )
    with pytest.raises(GsJaxError, match="even"):
        cm.build_restart(odd, 0)
