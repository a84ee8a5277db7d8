"""Definition 1 for k outputs (gs_jax.features, gs_jax.monitor) against brute force: Φ₀ by jax.jacrev on the raveled
parameters, numpy's SVD of Y_cΦ₀⁽ᶜ⁾ per class (one-vs-rest) and of YΦ₀ on all n·k rows (joint), z = UᵀYŷ by hand."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gs_jax import features, monitor, ntk
from gs_jax.errors import GsJaxError

N, D, C, R = 10, 3, 3, 4  # examples, inputs, classes, features compared


class MLP(nn.Module):
    classes: int = C

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.classes)(jnp.tanh(nn.Dense(12)(x)))


def _setup(seed=0):
    kx, kp = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (N, D), dtype=jnp.float64)
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), MLP().init(kp, x)["params"])
    y = np.arange(N) % C  # every class present
    apply_fn = lambda p, xx: MLP().apply({"params": p}, xx)  # noqa: E731
    return apply_fn, params, x, y


def _phi(apply_fn, params, x) -> np.ndarray:
    """Φ₀ ``(n·k, m)``, rows example-major, by jax.jacrev of the flattened logits."""
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.jacrev(lambda t: apply_fn(unravel(t), x).reshape(-1))(flat))


def _svd(A: np.ndarray):
    """numpy SVD, columns oriented as gs_jax.features (1ᵀu_j ≥ 0), and the singular values' smallest gap."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    sign = np.where(U.sum(0) < 0, -1.0, 1.0)
    return U * sign, s, Vt.T * sign


def _ovr_labels(y):
    return 2.0 * (np.asarray(y)[:, None] == np.arange(C)[None, :]) - 1.0  # (n, k)


def _separated(s, r=R):
    """The leading r singular values are distinct (each column of U is then unique up to its sign)."""
    assert np.all(-np.diff(s[: r + 1]) > 1e-6 * s[0]), s[: r + 1]


def test_class_labels():
    Y = np.asarray(features.class_labels(np.array([0, 2, 1]), 3))
    np.testing.assert_array_equal(Y, [[1, -1, -1], [-1, -1, 1], [-1, 1, -1]])
    with pytest.raises(GsJaxError, match="lie in 0..2"):
        features.class_labels(np.array([0, 3]), 3)
    with pytest.raises(GsJaxError, match="integers"):
        features.class_labels(np.array([0.5, 1.0]), 3)


def test_one_vs_rest_matches_per_class_svd(x64):
    apply_fn, params, x, y = _setup()
    phi = _phi(apply_fn, params, x)
    Y = _ovr_labels(y)
    f_svd = features.one_vs_rest_from_ntrf(jnp.asarray(phi), y)
    f_gram = features.one_vs_rest_from_gram(ntk.empirical_ntk(apply_fn, params, x), y, top_k=R)
    assert f_svd.U.shape == (C, N, min(N, phi.shape[1])) and f_gram.U.shape == (C, N, R)
    logits = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (N, C), dtype=jnp.float64))
    z = np.asarray(features.one_vs_rest_responses(f_svd, y, logits))
    for c in range(C):
        U, s, V = _svd(Y[:, c, None] * phi[c::C])  # Y_c Φ₀⁽ᶜ⁾, Φ₀⁽ᶜ⁾ = rows of output c
        _separated(s)
        np.testing.assert_allclose(np.asarray(f_svd.s[c]), s, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(f_svd.U[c, :, :R]), U[:, :R], atol=1e-9)
        np.testing.assert_allclose(np.asarray(f_svd.V[c, :, :R]), V[:, :R], atol=1e-9)
        np.testing.assert_allclose(np.asarray(f_gram.s[c]), s[:R], rtol=1e-9)
        np.testing.assert_allclose(np.asarray(f_gram.U[c]), U[:, :R], atol=1e-7)
        np.testing.assert_allclose(z[c], U.T @ (Y[:, c] * logits[:, c]), atol=1e-10)  # z_c = U_cᵀ Y_c ŷ_c


def test_joint_matches_svd_on_all_rows(x64):
    apply_fn, params, x, y = _setup(1)
    phi = _phi(apply_fn, params, x)
    y_rows = _ovr_labels(y).reshape(-1)  # row i·k + c
    U, s, V = _svd(y_rows[:, None] * phi)
    _separated(s)
    f_svd = features.joint_from_ntrf(jnp.asarray(phi), y)
    f_gram = features.joint_from_gram(ntk.empirical_ntk(apply_fn, params, x), y, top_k=R)
    f_top = features.top_k(apply_fn, params, x, y_rows, R)  # matrix-free, per-row labels
    np.testing.assert_allclose(np.asarray(f_svd.s), s, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(f_svd.U[:, :R]), U[:, :R], atol=1e-9)
    for f, tol in ((f_gram, 1e-7), (f_top, 1e-6)):
        np.testing.assert_allclose(np.asarray(f.s), s[:R], rtol=tol)
        np.testing.assert_allclose(np.asarray(f.U), U[:, :R], atol=tol * 10)
    logits = np.asarray(jax.random.normal(jax.random.PRNGKey(6), (2, N, C), dtype=jnp.float64))
    z = np.asarray(features.joint_responses(f_svd, y, logits))
    np.testing.assert_allclose(z, (y_rows * logits.reshape(2, -1)) @ U, atol=1e-10)  # z = Uᵀ Y vec(ŷ)


def test_joint_is_the_union_of_one_vs_rest_without_cross_output_blocks(x64):
    # a linear model ŷ = xW: row (i, c) of Φ₀ is e_c ⊗ x_i, so K has no cross-output blocks and the joint
    # strengths are the one-vs-rest strengths of all classes together (the relation stated in the docstring)
    x = jax.random.normal(jax.random.PRNGKey(2), (N, D), dtype=jnp.float64)
    W = jnp.zeros((D, C), jnp.float64)
    y = np.arange(N) % C
    K = ntk.empirical_ntk(lambda w, xx: xx @ w, W, x)
    ovr = np.sort(np.asarray(features.one_vs_rest_from_gram(K, y).s).ravel())[::-1]
    joint = np.asarray(features.joint_from_gram(K, y).s)
    np.testing.assert_allclose(joint, ovr, atol=1e-6)


@pytest.mark.parametrize("method", ["dense", "lanczos"])
def test_monitor_forms_match_brute_force(method, x64):
    apply_fn, params, x, y = _setup(2)
    phi = _phi(apply_fn, params, x)
    Y = _ovr_labels(y)
    yhat0 = np.asarray(apply_fn(params, x))
    p2 = jax.tree_util.tree_map(lambda a: 1.1 * a + 0.01, params)
    logits = np.asarray(apply_fn(p2, x))
    tol = 1e-8 if method == "dense" else 1e-6

    ovr = monitor.at_reference(apply_fn, params, x, y, R, form="one_vs_rest", method=method)
    assert ovr.one_vs_rest and ovr.U.shape == (C, N, R) and ovr.k == R
    z = np.asarray(monitor.responses(ovr, logits))
    assert z.shape == (C, R)
    for c in range(C):
        U, s, _ = _svd(Y[:, c, None] * phi[c::C])
        np.testing.assert_allclose(np.asarray(ovr.s[c]), s[:R], rtol=tol)
        np.testing.assert_allclose(np.asarray(monitor.for_class(ovr, c).U), U[:, :R], atol=tol * 10)
        want = U[:, :R].T @ (Y[:, c] * (logits[:, c] - yhat0[:, c]))  # z_c = U_cᵀ Y_c (ŷ_c − ŷ_c,₀)
        np.testing.assert_allclose(z[c], want, atol=tol * 10)

    joint = monitor.at_reference(apply_fn, params, x, y, R, form="joint", method=method)
    y_rows = Y.reshape(-1)
    U, s, _ = _svd(y_rows[:, None] * phi)
    np.testing.assert_allclose(np.asarray(joint.s), s[:R], rtol=tol)
    np.testing.assert_allclose(np.asarray(joint.U), U[:, :R], atol=tol * 10)
    want = U[:, :R].T @ (y_rows * (logits - yhat0).reshape(-1))
    np.testing.assert_allclose(np.asarray(monitor.responses(joint, logits)), want, atol=tol * 10)
    np.testing.assert_allclose(np.asarray(monitor.responses(joint, logits.reshape(-1))), want, atol=tol * 10)


def test_monitor_one_vs_rest_alignment_and_evaluator(x64):
    apply_fn, params, x, y = _setup(3)
    ovr = monitor.at_reference(apply_fn, params, x, y, R, form="one_vs_rest")
    attr = np.asarray(jax.random.normal(jax.random.PRNGKey(7), (N, C)))
    corr = monitor.alignment(ovr, attr)
    assert corr.shape == (C, R)
    for c in range(C):  # Pearson correlation of u_j (class c) with column c, by numpy
        U = np.asarray(ovr.U[c])
        want = [np.corrcoef(U[:, j], attr[:, c])[0, 1] for j in range(R)]
        np.testing.assert_allclose(corr[c], want, atol=1e-12)
    np.testing.assert_allclose(
        monitor.alignment(ovr, attr[:, 0])[2], monitor.alignment(ovr, attr[:, [0] * C])[2]
    )
    # the evaluator records z_j of class c as the scalar z{j}_c{c}; trajectory stacks them back to (R, T, C, k)
    ev = monitor.evaluator(lambda state, data: apply_fn(state, x), ovr, every=1)
    rec = ev.fn(params, None)
    z = np.asarray(monitor.responses(ovr, apply_fn(params, x)))
    assert sorted(rec) == sorted(f"z{j}_c{c}" for j in range(R) for c in range(C))
    history = [{"step": t, **{key: np.full(2, float(v) + t) for key, v in rec.items()}} for t in (0, 5)]
    steps, zt = monitor.trajectory(history, R, classes=C)
    np.testing.assert_array_equal(steps, [0, 5])
    assert zt.shape == (2, 2, C, R)
    np.testing.assert_allclose(zt[1, 0], z, atol=1e-12)
    np.testing.assert_allclose(zt[0, 1], z + 5, atol=1e-12)
    with pytest.raises(GsJaxError, match="for_class"):
        monitor.identify(ovr, {"a": attr[:, 0]})
    found = monitor.identify(monitor.for_class(ovr, 1), {"a": attr[:, 1]})
    assert found["a"]["index"] == int(np.argmax(np.abs(corr[1])))


def test_bad_multiclass_inputs_are_one_line(x64):
    apply_fn, params, x, y = _setup()
    with pytest.raises(GsJaxError, match="form='one_vs_rest' or form='joint'"):
        monitor.at_reference(apply_fn, params, x, y, 2)
    with pytest.raises(GsJaxError, match="needs C > 1 logits"):
        monitor.at_reference(lambda p, xx: apply_fn(p, xx)[:, 0], params, x, y % 2, 2, form="joint")
    with pytest.raises(GsJaxError, match="do not split"):
        features.joint_from_ntrf(jnp.ones((7, 4)), np.arange(3) % 2)
    with pytest.raises(GsJaxError, match="lie in 0..2"):
        features.one_vs_rest_from_gram(jnp.eye(6), np.array([0, 3]))
    ovr = monitor.at_reference(apply_fn, params, x, y, 2, form="one_vs_rest")
    with pytest.raises(GsJaxError, match=rf"\(\.\.\., {N}, {C}\)"):
        monitor.responses(ovr, jnp.ones((N,)))
