"""MNIST–Fashion-MNIST dominoes on synthetic pools (random 28×28 images, so every image is identifiable), plus
one test on the real files when Debian's dataset-fashion-mnist is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gs_jax.data import dominoes, mnist
from gs_jax.errors import GsJaxError


def pool(n, seed, n_classes=10):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), (np.arange(n) % n_classes).astype(np.uint8)


def binomial_tol(p, n):
    """Five standard deviations of a binomial proportion: a fresh seed fails with probability ≈ 6e-7
    (normal approximation, valid here since n·p·(1−p) ≫ 10)."""
    return 5 * np.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def pools():
    return {"d_tr": pool(400, 0), "d_te": pool(200, 1), "i_tr": pool(6000, 2), "i_te": pool(3000, 3)}


@pytest.fixture(scope="module")
def data(pools):
    return dominoes.make_dominoes(pools["d_tr"], pools["d_te"], pools["i_tr"], pools["i_te"], rho=0.9, seed=7)


def test_shapes_and_halves(data, pools):
    # items of classes 4 and 3: 1,200 in the train pool -> 120 val / 1,080 train; 600 in the test pool
    assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (1080, 120, 600)
    for split, (dx, _), (ix, iy) in (
        (data.train, pools["d_tr"], pools["i_tr"]),
        (data.val, pools["d_tr"], pools["i_tr"]),
        (data.test, pools["d_te"], pools["i_te"]),
    ):
        assert split.x.shape == (len(split.y), 56, 28, 1) and split.x.dtype == np.float32
        assert 0.0 <= split.x.min() and split.x.max() <= 1.0
        np.testing.assert_array_equal(split.x[:, :28, :, 0], dx[split.digit_index] / np.float32(255))
        np.testing.assert_array_equal(split.x[:, 28:, :, 0], ix[split.item_index] / np.float32(255))
        # label follows the item: coat (4) -> 0, dress (3) -> 1; the digit shown is the digit bit
        np.testing.assert_array_equal(split.y, (iy[split.item_index] == 3).astype(np.int32))
        assert set(np.unique(iy[split.item_index])) == {3, 4}
        dy = (pools["d_te"] if split is data.test else pools["d_tr"])[1]
        np.testing.assert_array_equal(dy[split.digit_index], split.digit)


def test_group_counts_consistent(data):
    for split in (data.train, data.val, data.test):
        np.testing.assert_array_equal(split.groups, 2 * split.y + split.digit)
        np.testing.assert_array_equal(split.group_counts, np.bincount(split.groups, minlength=4))
        assert split.group_counts.sum() == len(split.y)
    assert set(data.group_counts) == {"train", "val", "test"}


def test_disjoint_pools_and_items_used_once(data):
    tr, va = data.train, data.val
    assert np.intersect1d(tr.item_index, va.item_index).size == 0
    assert np.intersect1d(tr.digit_index, va.digit_index).size == 0
    for split in (tr, va, data.test):
        assert np.unique(split.item_index).size == split.item_index.size  # every item at most once
    # the train and val item pools together are exactly the pair's items of the train file
    # (test items come from the other file, so they cannot overlap the train pools)
    assert np.union1d(tr.item_index, va.item_index).size == 1200


def test_agreement_rates_within_binomial_tolerance(pools):
    # a big single split for the training rate: 4,000 pair items, ρ = 0.95 -> tolerance 5·sqrt(.95·.05/4000) = .017
    dx, dy = pools["d_tr"]
    ix, iy = pool(20000, 5)
    split = dominoes.build_dominoes(dx, dy, ix, iy, rho=0.95, seed=11)
    n = len(split.y)
    assert n == 4000
    assert abs(split.agreement - 0.95) <= binomial_tol(0.95, n)
    # the labels are balanced by the item pool, and the minority groups hold ≈ (1 - ρ)/2 each
    frac = split.group_counts / n
    assert abs(frac[1] - 0.025) <= binomial_tol(0.025, n) and abs(frac[2] - 0.025) <= binomial_tol(0.025, n)
    val = dominoes.build_dominoes(dx, dy, ix, iy, rho=0.5, seed=12)
    assert abs(val.agreement - 0.5) <= binomial_tol(0.5, n)


def test_val_and_test_are_unconfounded(data):
    assert abs(data.train.agreement - 0.9) <= binomial_tol(0.9, 1080)
    assert abs(data.val.agreement - 0.5) <= binomial_tol(0.5, 120)
    assert abs(data.test.agreement - 0.5) <= binomial_tol(0.5, 600)
    assert data.rho == 0.9 and data.pair == (4, 3)


def test_seeded_and_configurable(pools):
    args = (pools["d_tr"], pools["d_te"], pools["i_tr"], pools["i_te"])
    a = dominoes.make_dominoes(*args, seed=3, pair=(1, 8))
    b = dominoes.make_dominoes(*args, seed=3, pair=(1, 8))
    c = dominoes.make_dominoes(*args, seed=4, pair=(1, 8))
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.item_index, c.train.item_index)
    ix, iy = pools["i_tr"]
    np.testing.assert_array_equal(a.train.y, (iy[a.train.item_index] == 8).astype(np.int32))
    sub = dominoes.build_dominoes(*pools["d_tr"], *pools["i_tr"], rho=1.0, n=50, seed=0)
    assert len(sub.y) == 50 and sub.agreement == 1.0


def test_celeba_layout_has_celebas_group_shares_and_balanced_evaluation(pools):
    # one minority group inside the minority class (SPEC §5c): y = 1 is ~15 % of training, its digit-1 group 0.85 %
    data = dominoes.make_dominoes(
        pools["d_tr"], pools["d_te"], pools["i_tr"], pools["i_te"], seed=7, layout="celeba"
    )
    c = data.train.group_counts
    assert c.sum() == len(data.train.y) and c[3] == min(c) and c[3] >= 1
    np.testing.assert_allclose(
        c / c.sum(), dominoes.CELEBA_SHARES, atol=1.0 / c.sum()
    )  # exact up to rounding
    assert (
        np.sum(data.train.y == 0) + np.sum(data.val.y == 0) == 600
    )  # every class-0 item of the train file used
    for split in (data.val, data.test):  # group-balanced: half of each class per digit
        n0, n1 = np.bincount(split.y, minlength=2)
        np.testing.assert_array_equal(split.group_counts, [n0 - n0 // 2, n0 // 2, n1 - n1 // 2, n1 // 2])
        np.testing.assert_array_equal(split.groups, 2 * split.y + split.digit)
    assert np.unique(data.train.item_index).size == len(data.train.y)  # items used once
    assert "CelebA layout" in data.layout_text
    assert dominoes.celeba_counts(5400, 5400) == (2793, 2607, 892, 54)  # the real coat/dress pools
    with pytest.raises(GsJaxError, match="unknown dominoes layout"):
        dominoes.make_dominoes(
            pools["d_tr"], pools["d_te"], pools["i_tr"], pools["i_te"], layout="waterbirds"
        )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pair": (4, 4)}, "two distinct"),
        ({"pair": (4, 12)}, "two distinct"),
        ({"rho": 1.5}, "rho"),
        ({"n": 10**6}, "item pool holds"),
    ],
)
def test_bad_arguments_fail_in_one_line(pools, kwargs, match):
    kw = {"rho": 0.9, **kwargs}
    with pytest.raises(GsJaxError, match=match) as err:
        dominoes.build_dominoes(*pools["d_tr"], *pools["i_tr"], **kw)
    assert "\n" not in str(err.value)


def test_missing_digit_class_and_bad_shapes(pools):
    dx, dy = pools["d_tr"]
    with pytest.raises(GsJaxError, match="no image of the digit 1"):
        dominoes.build_dominoes(dx[dy != 1], dy[dy != 1], *pools["i_tr"], rho=0.9)
    with pytest.raises(GsJaxError, match=r"\(n, 28, 28\)"):
        dominoes.build_dominoes(dx[:, :14], dy, *pools["i_tr"], rho=0.9)


def test_missing_fashion_dir_is_one_line(tmp_path):
    with pytest.raises(GsJaxError, match="make data-fashion") as err:
        dominoes.load_dominoes(str(tmp_path / "absent"))
    assert "\n" not in str(err.value)
    with pytest.raises(GsJaxError, match="make data-fashion"):  # directory present, files missing
        dominoes.load_dominoes(str(tmp_path))


@pytest.mark.skipif(not Path(mnist.FASHION_DEBIAN_DIR).is_dir(), reason="Fashion-MNIST not installed")
def test_real_files():
    data = dominoes.load_dominoes()
    assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (10800, 1200, 2000)
    assert data.train.x.shape == (10800, 56, 28, 1)
    assert abs(data.train.agreement - 0.95) <= binomial_tol(0.95, 10800)
    assert abs(data.test.agreement - 0.5) <= binomial_tol(0.5, 2000)
    np.testing.assert_array_equal(np.bincount(data.test.y), [1000, 1000])
    assert np.intersect1d(data.train.item_index, data.val.item_index).size == 0
    # the digit half of a train example really is an MNIST 0 or 1: a 0 has an empty centre, a 1 a bright one
    centre = data.train.x[:, 10:18, 12:16, 0].mean(axis=(1, 2))
    assert centre[data.train.digit == 1].mean() > centre[data.train.digit == 0].mean() + 0.3
