"""gs_jax.features: SVD path = Gram/eigh path = matrix-free top-k, Eq. 4 on the linearised model, labels, alignment."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gs_jax import features, ntk
from gs_jax.errors import GsJaxError


class TwoLayer(nn.Module):
    """The Fig. 1 network shape (2 → width → 1), narrow so Φ₀ stays small."""

    width: int = 40

    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.relu(nn.Dense(self.width)(x)))[:, 0]


def _setup(n=30, width=40, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed), (n, 2), dtype=jnp.float64)
    model = TwoLayer(width)
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64), model.init(jax.random.PRNGKey(seed + 1), x)
    )
    y01 = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(jnp.int32)  # {0, 1} labels
    return model.apply, params, x, y01


def _assert_same_features(a: features.Features, b: features.Features, r: int, rtol: float):
    np.testing.assert_allclose(np.asarray(a.s[:r]), np.asarray(b.s[:r]), rtol=rtol)
    # same U under the fixed sign convention (distinct singular values, so each column is unique up to sign)
    np.testing.assert_allclose(np.asarray(a.U[:, :r]), np.asarray(b.U[:, :r]), atol=rtol * 100)


def _assert_sign_convention(U):
    """1ᵀu_j ≥ 0; where 1ᵀu_j is round-off (a direction orthogonal to 1, e.g. a null direction of a rank-deficient
    YΦ₀), the largest-|entry| of u_j is positive instead."""
    U = np.asarray(U)
    tol = (
        np.sqrt(U.shape[0]) * np.finfo(U.dtype).eps * 1e3
    )  # round-off of a sum of n entries of a unit vector
    col_sum = U.sum(0)
    peak = U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])]
    clear = np.abs(col_sum) > tol
    assert np.all(col_sum[clear] > 0), col_sum
    assert np.all(peak[~clear] > 0), peak[~clear]


def test_svd_and_gram_paths_agree(x64):
    apply_fn, params, x, y = _setup()
    phi = ntk.ntrf(apply_fn, params, x)
    K = ntk.empirical_ntk(apply_fn, params, x)
    f_svd = features.from_ntrf(phi, y)
    f_eig = features.from_gram(K, y)
    assert f_svd.U.shape == (30, 30) and f_svd.V.shape == (ntk.num_params(params), 30) and f_eig.V is None
    assert np.all(np.diff(np.asarray(f_svd.s)) <= 0)
    _assert_sign_convention(f_svd.U)
    _assert_sign_convention(f_eig.U)
    # eigh of YKY squares the condition number: compare the features whose s² is well above round-off.
    r = int(np.sum(np.asarray(f_svd.s) > 1e-5 * float(f_svd.s[0])))
    assert r >= 20
    _assert_same_features(f_svd, f_eig, r, rtol=1e-8)
    # reconstruction: Y Φ₀ = U S Vᵀ
    y_pm = features.as_pm1(y)
    np.testing.assert_allclose(
        np.asarray((f_svd.U * f_svd.s) @ f_svd.V.T), np.asarray(y_pm[:, None] * phi), atol=1e-12
    )
    # V recovered matrix-free from the eigh features equals the SVD's V
    f_v = features.with_right_vectors(f_eig, apply_fn, params, x, y)
    np.testing.assert_allclose(np.asarray(f_v.V[:, :r]), np.asarray(f_svd.V[:, :r]), atol=1e-7)


@pytest.mark.parametrize("method", ["lanczos", "randomized"])
def test_matrix_free_top_k_matches_dense(method, x64):
    apply_fn, params, x, y = _setup(n=60)
    dense = features.from_gram(ntk.empirical_ntk(apply_fn, params, x), y, top_k=5)
    f = features.top_k(apply_fn, params, x, y, 5, method=method, n_iter=30, with_v=True)
    assert f.U.shape == (60, 5) and f.V.shape == (ntk.num_params(params), 5)
    _assert_same_features(dense, f, 5, rtol=1e-8)


def test_responses_on_linearised_model_equal_S_Vt_dtheta(x64):
    """Eq. 4: for ŷ_lin(θ) − ŷ(θ₀) = Φ₀Δθ, the responses are z = UᵀYΦ₀Δθ = S Vᵀ Δθ."""
    apply_fn, params, x, y = _setup()
    f = features.from_ntrf(ntk.ntrf(apply_fn, params, x), y)
    f_lin = ntk.linearize(apply_fn, params)
    theta0, unravel = ravel_pytree(params)
    dthetas = 0.1 * jax.random.normal(jax.random.PRNGKey(5), (4,) + theta0.shape, dtype=jnp.float64)
    y0 = apply_fn(params, x)
    traj = jnp.stack([f_lin(unravel(theta0 + d), x) - y0 for d in dthetas])  # (T, n)
    z = features.responses(f, y, traj)
    assert z.shape == (4, 30)
    np.testing.assert_allclose(np.asarray(z), np.asarray((dthetas @ f.V) * f.s), rtol=1e-8, atol=1e-8)


def test_labels():
    np.testing.assert_array_equal(np.asarray(features.as_pm1(np.array([0, 1, 1, 0]))), [-1, 1, 1, -1])
    np.testing.assert_array_equal(np.asarray(features.as_pm1(np.array([-1.0, 1.0]))), [-1, 1])
    np.testing.assert_array_equal(np.asarray(features.as_pm1(np.array([[1], [0]]))), [1, -1])
    for bad in (np.array([0, 1, 2]), np.array([-1, 0, 1]), np.array([0.5, 1.0]), np.array([1.0, np.nan])):
        with pytest.raises(GsJaxError, match="labels must be in"):
            features.as_pm1(bad)
    with pytest.raises(GsJaxError, match="shape"):
        features.as_pm1(np.ones((3, 2)))
    with pytest.raises(GsJaxError, match="length 3"):
        features.from_gram(np.eye(4), np.array([1, -1, 1]))
    with pytest.raises(GsJaxError, match="square"):
        features.from_gram(np.ones((3, 4)), np.array([1, -1, 1]))


def test_label_alignment_and_response_shapes(x64):
    apply_fn, params, x, y = _setup()
    K = np.asarray(ntk.empirical_ntk(apply_fn, params, x))
    f = features.from_gram(K, y)
    y_pm = np.asarray(features.as_pm1(y))
    a = features.label_alignment(f, y, k=3)
    # independent reference: numpy eigenvectors of K itself, projections of y on them
    lam, Uk = np.linalg.eigh(K)
    proj = (Uk[:, ::-1].T @ y_pm) ** 2 / len(y_pm)
    r = int(np.sum(lam[::-1] > 1e-6 * lam.max()))
    np.testing.assert_allclose(np.asarray(a.energy[:r]), proj[:r], atol=1e-8)
    np.testing.assert_allclose(float(a.cumulative[-1]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(float(a.top_k_share), proj[:3].sum(), atol=1e-8)
    np.testing.assert_allclose(np.asarray(a.spectrum), np.asarray(f.s) ** 2)
    kta = y_pm @ K @ y_pm / (len(y_pm) * np.linalg.norm(K))
    np.testing.assert_allclose(float(a.kernel_target_alignment), kta, rtol=1e-8)
    assert features.responses(f, y, np.zeros((30, 1))).shape == (30,)
    with pytest.raises(GsJaxError, match="yhat must have shape"):
        features.responses(f, y, np.zeros(29))
