"""Two-moons data (gs_jax.data.moons): the authors' construction, separability, rotation, evaluation grid."""

import numpy as np
import pytest
from scipy.optimize import linprog
from sklearn.datasets import make_moons

from gs_jax.data import moons
from gs_jax.errors import GsJaxError


def _linearly_separable(x_n2, y_n) -> bool:
    """LP feasibility of y±(w·x + b) ≥ 1 (scipy HiGHS): feasible iff strictly linearly separable."""
    ypm = 2.0 * y_n - 1.0
    a_ub = -ypm[:, None] * np.concatenate([x_n2, np.ones((len(x_n2), 1))], axis=1)
    res = linprog(np.zeros(3), A_ub=a_ub, b_ub=-np.ones(len(x_n2)), bounds=[(None, None)] * 3, method="highs")
    assert res.status in (0, 2), res.message  # 0: feasible, 2: infeasible
    return res.status == 0


@pytest.mark.parametrize("seed", range(10))
def test_positive_margin_is_separable_with_gap_2delta(seed):
    x, y = moons.two_moons(seed, 0.1)
    assert x.shape == (300, 2) and x.dtype == np.float64 and set(np.unique(y)) == {0, 1}
    assert np.sum(y == 1) == 150
    # class 1 on the negative side of the horizontal axis, class 0 on the positive side, gap ≥ 2Δ = 0.2
    assert x[y == 1, 0].max() <= -0.1 and x[y == 0, 0].min() >= 0.1
    assert x[y == 0, 0].min() - x[y == 1, 0].max() >= 0.2
    assert _linearly_separable(x, y)


@pytest.mark.parametrize("seed", range(10))
def test_negative_margin_is_not_linearly_separable(seed):
    x, y = moons.two_moons(seed, -0.1)
    assert not _linearly_separable(x, y)


def test_seed0_ranges_match_the_spec():
    """SPEC §1.1 step 6 quotes, for seed 0 and Δ = +0.1: class-1 x0 ∈ [-1.352, -0.103], class-0 x0 ∈ [0.118, 1.386]."""
    x, y = moons.two_moons(0, 0.1)
    np.testing.assert_allclose([x[y == 1, 0].min(), x[y == 1, 0].max()], [-1.352, -0.103], atol=5e-4)
    np.testing.assert_allclose([x[y == 0, 0].min(), x[y == 0, 0].max()], [0.118, 1.386], atol=5e-4)


@pytest.mark.parametrize("delta", [-0.1, 0.0, 0.1, 0.37])
def test_construction_matches_closed_form(delta):
    """Closed form of steps 2-7: horizontal = −y±(|u| + Δ) with u = x₁ − 0.3y± − mean(·), vertical = x₀ − 0.5."""
    xs, ys = make_moons(n_samples=300, noise=0.1, random_state=3)
    ypm = 2.0 * ys - 1.0
    u = xs[:, 1] - 0.3 * ypm
    u = u - u.mean()
    x, y = moons.two_moons(3, delta)
    np.testing.assert_array_equal(y, ys)
    np.testing.assert_allclose(x[:, 0], -ypm * (np.abs(u) + delta), rtol=0, atol=1e-12)
    np.testing.assert_allclose(x[:, 1], xs[:, 0] - 0.5, rtol=0, atol=1e-12)


def test_rotation_is_x_times_r():
    x0, _ = moons.two_moons(1, 0.1)
    x45, _ = moons.two_moons(1, 0.1, rotation_deg=45.0)
    c = s = np.sqrt(0.5)
    np.testing.assert_allclose(x45, x0 @ np.array([[c, -s], [s, c]]), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(x45, axis=1), np.linalg.norm(x0, axis=1), atol=1e-12)
    # clockwise: the point (1, 0) goes to (c, −s)
    np.testing.assert_allclose(np.array([1.0, 0.0]) @ np.array([[c, -s], [s, c]]), [c, -s])


def test_stack_seeds_and_grid():
    x, y = moons.stack_seeds([0, 1, 2], 0.1)
    assert x.shape == (3, 300, 2) and y.shape == (3, 300) and x.dtype == np.float32
    np.testing.assert_allclose(x[1], moons.two_moons(1, 0.1)[0].astype(np.float32))
    assert not np.allclose(x[0], x[1])  # one dataset per seed
    axis, pts = moons.eval_grid(5, 2.0)
    np.testing.assert_allclose(axis, np.linspace(-2, 2, 5))
    i, j = 3, 1
    np.testing.assert_allclose(pts[i * 5 + j], [axis[i], axis[j]])  # 'ij': first coordinate varies slowest


def test_bad_inputs_raise():
    with pytest.raises(GsJaxError):
        moons.two_moons(-1, 0.1)
    with pytest.raises(GsJaxError):
        moons.two_moons(0, float("nan"))
    with pytest.raises(GsJaxError):
        moons.eval_grid(1, 2.0)
    with pytest.raises(GsJaxError):
        moons.check_labels(np.array([0, 1, 2]))
