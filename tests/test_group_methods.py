"""Group methods against independent references: Group DRO
weights worked out by hand over two steps, JTT on a constructed example, and the DFR refit against scipy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from scipy.special import expit

from gs_jax import group_methods as gm
from gs_jax.errors import GsJaxError

# ---------------------------------------------------------------------------------------------- Group DRO


def test_group_mean_losses_absent_group_is_zero():
    per_ex = jnp.array([0.5, 1.5, 2.0, 0.25, 0.75])
    groups = jnp.array([0, 0, 1, 3, 3])
    means, counts = gm.group_mean_losses(per_ex, groups, 4)
    np.testing.assert_allclose(means, [1.0, 2.0, 0.0, 0.5])
    np.testing.assert_array_equal(counts, [2, 1, 0, 2])


def test_group_dro_two_steps_by_hand():
    """η = 0.5, four groups, group 2 never in the batch; adjustment C = 1 in the second step only.

    Step 1: group means L = (1.0, 2.0, 0 [absent], 0.5); factors exp(ηL) = (1.648721, 2.718282, 1, 1.284025);
            q1 = 0.25·factors / 1.662757 = (0.247890, 0.408701, 0.150353, 0.193057).
    Step 2: L = (0.5, 1.0, 0 [absent], 2.0), training counts n = (100, 25, 4, 400), C/√n = (0.1, 0.2, 0.5, 0.05);
            adjusted = (0.6, 1.2, 0.5, 2.05); factors = (1.349859, 1.822119, 1.284025, 2.787095);
            q2 = (0.184826, 0.411337, 0.106635, 0.297202); robust loss q2·L = 1.098154 (unadjusted L).
    """
    eta, n_g = 0.5, jnp.array([100.0, 25.0, 4.0, 400.0])
    q0 = gm.group_dro_init(4)
    np.testing.assert_allclose(q0, [0.25] * 4)

    per_ex1, groups1 = jnp.array([0.5, 1.5, 2.0, 0.25, 0.75]), jnp.array([0, 0, 1, 3, 3])
    loss1, q1, l1 = gm.group_dro_step(q0, per_ex1, groups1, 4, eta)
    np.testing.assert_allclose(l1, [1.0, 2.0, 0.0, 0.5])
    np.testing.assert_allclose(q1, [0.247890, 0.408701, 0.150353, 0.193057], atol=1e-6)
    np.testing.assert_allclose(
        float(loss1), float(np.dot([0.247890, 0.408701, 0.150353, 0.193057], l1)), atol=1e-6
    )

    per_ex2, groups2 = jnp.array([0.5, 1.0, 1.0, 1.0, 2.0]), jnp.array([0, 1, 1, 1, 3])
    loss2, q2, _ = gm.group_dro_step(q1, per_ex2, groups2, 4, eta, group_counts_g=n_g, adj=1.0)
    np.testing.assert_allclose(q2, [0.184826, 0.411337, 0.106635, 0.297202], atol=1e-6)
    np.testing.assert_allclose(float(loss2), 1.098154, atol=1e-6)
    # the pieces give the same as the chained step
    q2b = gm.group_dro_update(q1, jnp.array([0.5, 1.0, 0.0, 2.0]), n_g, eta, adj=jnp.ones(4))
    np.testing.assert_allclose(q2b, q2, atol=1e-7)
    robust, _ = gm.group_dro_loss(per_ex2, groups2, q2, 4)
    np.testing.assert_allclose(float(robust), float(loss2), atol=1e-7)


def test_group_dro_gradient_ignores_q_dependence():
    per_ex = jnp.array([1.0, 3.0, 2.0])
    groups = jnp.array([0, 1, 1])

    def loss(scale):
        value, _, _ = gm.group_dro_step(gm.group_dro_init(2), scale * per_ex, groups, 2, eta=1.0)
        return value

    # q is a constant for the gradient: d/ds Σ q_g (s·L_g) = Σ q_g L_g with q the updated weights
    _, q, l_g = gm.group_dro_step(gm.group_dro_init(2), per_ex, groups, 2, eta=1.0)
    np.testing.assert_allclose(float(jax.grad(loss)(1.0)), float(jnp.dot(q, l_g)), rtol=1e-6)


def test_group_dro_large_losses_do_not_overflow():
    q = gm.group_dro_update(gm.group_dro_init(3), jnp.array([1e4, 0.0, 1e4 - 1.0]), None, eta=1.0)
    assert np.all(np.isfinite(np.asarray(q)))
    np.testing.assert_allclose(q, [1 / (1 + np.exp(-1)), 0.0, np.exp(-1) / (1 + np.exp(-1))], atol=1e-6)
    with pytest.raises(GsJaxError, match="group_counts"):
        gm.group_dro_update(q, jnp.zeros(3), None, 0.1, adj=1.0)


# ---------------------------------------------------------------------------------------------- JTT


def test_jtt_error_set_weights_and_upsampling():
    pred = np.array([1, 0, 1, 1, 0, 0])
    y = np.array([1, 1, 1, 0, 0, 1])
    err = gm.jtt_error_set(pred, y)
    np.testing.assert_array_equal(err, [False, True, False, True, False, True])
    np.testing.assert_array_equal(gm.jtt_weights(err, 50), [1, 50, 1, 50, 1, 50])
    idx = gm.jtt_upsample_indices(err, 2)
    # the reference: ConcatDataset([train, Subset(train, [1, 3, 5] * 2)])
    np.testing.assert_array_equal(idx, [0, 1, 2, 3, 4, 5, 1, 3, 5, 1, 3, 5])
    # error examples appear λ_up + 1 times: the weights with λ_up + 1
    np.testing.assert_array_equal(np.bincount(idx), gm.jtt_weights(err, 3))
    np.testing.assert_array_equal(gm.jtt_upsample_indices(err, 0), np.arange(6))
    with pytest.raises(GsJaxError, match="non-negative integer"):
        gm.jtt_upsample_indices(err, 1.5)
    with pytest.raises(GsJaxError, match="shape"):
        gm.jtt_error_set(pred, y[:3])


# ---------------------------------------------------------------------------------------------- DFR


def test_group_balanced_indices_counts():
    groups = np.array([0] * 5 + [1] * 3 + [3] * 7)  # group 2 is empty
    rng = np.random.default_rng(0)
    groups = groups[rng.permutation(len(groups))]
    idx = gm.group_balanced_indices(groups, 4, jax.random.key(0))
    assert idx.dtype == np.int64 and len(idx) == 9 and len(np.unique(idx)) == 9
    np.testing.assert_array_equal(np.bincount(groups[idx], minlength=4), [3, 3, 0, 3])
    np.testing.assert_array_equal(idx, gm.group_balanced_indices(groups, 4, jax.random.key(0)))
    draws = {tuple(np.sort(gm.group_balanced_indices(groups, 4, jax.random.key(k)))) for k in range(8)}
    assert len(draws) > 1  # the key matters
    with pytest.raises(GsJaxError, match="0..3"):
        gm.group_balanced_indices(np.array([0, 4]), 4, jax.random.key(0))


def scipy_reference(x, y, s, l2):
    def fun(theta):
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        value = np.sum(s * (np.logaddexp(0, z) - y * z)) / s.sum() + 0.5 * l2 * w @ w
        r = s * (expit(z) - y) / s.sum()
        return value, np.concatenate([x.T @ r + l2 * w, [r.sum()]])

    res = scipy.optimize.minimize(
        fun, np.zeros(x.shape[1] + 1), jac=True, method="BFGS", options={"gtol": 1e-12}
    )
    return res.x[:-1], res.x[-1]


def logistic_problem(seed, n=300, d=6):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(0.5, 3, d)
    y = (rng.random(n) < expit(x @ rng.standard_normal(d) + 0.7)).astype(np.float64)
    s = rng.uniform(0.2, 3.0, n)
    return x, y, s


@pytest.mark.parametrize("weighted", [False, True])
def test_fit_last_layer_matches_scipy(x64, weighted):
    x, y, s = logistic_problem(0)
    s = s if weighted else np.ones_like(y)
    w_ref, b_ref = scipy_reference(x, y, s, l2=0.05)
    w, b, info = gm.fit_last_layer(x, y, l2=0.05, sample_weight=s if weighted else None, with_info=True)
    assert info["converged"] and info["n_iter"] < 30
    np.testing.assert_allclose(np.asarray(w), w_ref, atol=1e-4)
    np.testing.assert_allclose(float(b), b_ref, atol=1e-4)


def test_fit_last_layer_float32_and_separable():
    x, y, _ = logistic_problem(1)
    w_ref, b_ref = scipy_reference(x, y, np.ones_like(y), l2=0.05)
    w, b = gm.fit_last_layer(x.astype(np.float32), y, l2=0.05)
    assert w.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(w), w_ref, atol=1e-4)
    np.testing.assert_allclose(float(b), b_ref, atol=1e-4)
    # separable data: the penalty keeps the solution finite; Newton still converges
    xs = np.array([[-2.0], [-1.0], [1.0], [2.0]], np.float32)
    w, b, info = gm.fit_last_layer(xs, np.array([0, 0, 1, 1]), l2=1e-3, with_info=True)
    assert np.isfinite(float(w[0])) and float(w[0]) > 0 and info["converged"]


def test_fit_last_layer_bad_input_is_one_line():
    x, y, _ = logistic_problem(2, n=10, d=2)
    for kwargs, match in (
        ({"l2": 0.0}, "l2 must be > 0"),
        ({"l2": 0.1, "sample_weight": -np.ones(10)}, ">= 0"),
    ):
        with pytest.raises(GsJaxError, match=match) as err:
            gm.fit_last_layer(x, y, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(GsJaxError, match="shape"):
        gm.fit_last_layer(x, y[:5], l2=0.1)
