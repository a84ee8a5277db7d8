"""gs_jax.ntk against brute force: Φ₀ and K vs per-example gradients (float64) on both backends (neural-tangents
and gs-jax's own jax-only implementations), batching, K·v, linearisation, infinite width (closed form and
convergence), and the one-line errors. Tests that need neural-tangents skip where it cannot be imported (the
newest-jax environment of `make test-latest`)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gs_jax import ntk
from gs_jax.errors import GsJaxError

RTOL = 1e-10  # float64 throughout; the paths differ only in the order of the sums (≈ 1e-15 relative)

needs_nt = pytest.mark.skipif(not ntk.nt_available(), reason="neural-tangents not importable on this jax")
#: (backend, implementation) pairs: every method of both backends.
METHODS = [
    pytest.param("nt", "structured", marks=needs_nt),
    pytest.param("nt", "jacobian", marks=needs_nt),
    pytest.param("nt", "ntvp", marks=needs_nt),
    ("jax", "jacobian"),
    ("jax", "ntvp"),
]


class DeepMLP(nn.Module):
    """Several layers, biases, mixed nonlinearities; k outputs (k = 1 returns (n,))."""

    k: int = 1

    @nn.compact
    def __call__(self, x):
        h = nn.tanh(nn.Dense(7)(x))
        h = nn.relu(nn.Dense(6)(h))
        h = nn.softplus(nn.Dense(5)(h))
        out = nn.Dense(self.k)(h)
        return out[:, 0] if self.k == 1 else out


class SmallCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(3, (3, 3))(x))
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = nn.tanh(nn.Conv(2, (2, 2), padding="VALID")(h))
        return nn.Dense(1)(h.reshape(h.shape[0], -1))[:, 0]


def _setup(model, x_shape, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed), x_shape, dtype=jnp.float64)
    params = model.init(jax.random.PRNGKey(seed + 1), x)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    return model.apply, params, x


def _brute_force_phi(apply_fn, params, x):
    """Φ₀ row by row: the gradient of each scalar output on one example at a time (no jacobian transform)."""
    out = apply_fn(params, x)
    k = 1 if out.ndim == 1 else out.shape[1]

    @jax.jit
    def grad_row(p, xi, c):
        return ravel_pytree(jax.grad(lambda q: apply_fn(q, xi[None]).reshape(-1)[c])(p))[0]

    return np.stack([np.asarray(grad_row(params, x[i], c)) for i in range(x.shape[0]) for c in range(k)])


MODELS = {
    "mlp": (DeepMLP(1), (8, 4)),
    "mlp_k3": (DeepMLP(3), (5, 4)),
    "cnn": (SmallCNN(), (5, 6, 6, 1)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ntrf_matches_brute_force(name, x64):
    model, shape = MODELS[name]
    apply_fn, params, x = _setup(model, shape)
    phi_ref = _brute_force_phi(apply_fn, params, x)
    phi = np.asarray(ntk.ntrf(apply_fn, params, x))
    assert phi.dtype == np.float64 and phi.shape == phi_ref.shape == (
        phi_ref.shape[0],
        ntk.num_params(params),
    )
    np.testing.assert_allclose(phi, phi_ref, rtol=RTOL, atol=RTOL * np.abs(phi_ref).max())


@pytest.mark.parametrize("backend,impl", METHODS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_gram_matches_brute_force(name, backend, impl, x64):
    """K = Φ₀Φ₀ᵀ of every method, with examples independent (vmap_axes=0) and as one batch (vmap_axes=None)."""
    model, shape = MODELS[name]
    apply_fn, params, x = _setup(model, shape)
    phi_ref = _brute_force_phi(apply_fn, params, x)
    K_ref = phi_ref @ phi_ref.T
    for vmap_axes in (0, None):
        K = np.asarray(
            ntk.empirical_ntk(apply_fn, params, x, implementation=impl, backend=backend, vmap_axes=vmap_axes)
        )
        assert K.dtype == np.float64 and K.shape == K_ref.shape
        np.testing.assert_allclose(
            K, K_ref, rtol=RTOL, atol=RTOL * np.abs(K_ref).max(), err_msg=str(vmap_axes)
        )


@pytest.mark.parametrize("backend,impl", METHODS)
@pytest.mark.parametrize("name", ["mlp", "mlp_k3"])
def test_batched_equals_unbatched_and_cross_kernel(name, backend, impl, x64):
    model, shape = MODELS[name]
    apply_fn, params, x = _setup(model, shape)
    x2 = jax.random.normal(jax.random.PRNGKey(7), (7,) + shape[1:], dtype=jnp.float64)
    kw = dict(implementation=impl, backend=backend)
    full = np.asarray(ntk.empirical_ntk(apply_fn, params, x, **kw))
    batched = np.asarray(ntk.empirical_ntk(apply_fn, params, x, batch_size=3, **kw))  # n not a multiple of 3
    np.testing.assert_allclose(batched, full, rtol=RTOL, atol=RTOL * np.abs(full).max())
    np.testing.assert_allclose(batched, batched.T, rtol=0, atol=1e-14 * np.abs(full).max())
    cross = np.asarray(ntk.empirical_ntk(apply_fn, params, x, x2, batch_size=2, **kw))
    cross_ref = _brute_force_phi(apply_fn, params, x) @ _brute_force_phi(apply_fn, params, x2).T
    np.testing.assert_allclose(cross, cross_ref, rtol=RTOL, atol=RTOL * np.abs(cross_ref).max())


def test_backend_selection(x64):
    """'auto' is neural-tangents exactly where it can be imported; the jax backend refuses structured derivatives
    in one line; an unknown backend is named."""
    assert ntk.resolve_backend("auto") == ("nt" if ntk.nt_available() else "jax")
    assert ntk.resolve_backend("jax") == "jax"
    if jax.default_backend() == "cpu":  # "auto" blocks large Grams on CPU (faster there, bounded memory)
        assert ntk.auto_batch_size(1024, 1024) == 512 and ntk.auto_batch_size(768, 100) is None
    apply_fn, params, x = _setup(DeepMLP(1), (4, 4))
    with pytest.raises(GsJaxError, match="not available on the jax backend.*structured derivatives"):
        ntk.empirical_ntk(apply_fn, params, x, implementation="structured", backend="jax")
    with pytest.raises(GsJaxError, match="unknown NTK backend 'torch'"):
        ntk.empirical_ntk(apply_fn, params, x, backend="torch")


def test_blocked_gram_reports_progress(x64):
    apply_fn, params, x = _setup(DeepMLP(1), (8, 4))
    seen = []

    def progress(it, total, desc):
        seen.append((total, desc))
        return it

    ntk.empirical_ntk(apply_fn, params, x, batch_size=3, backend="jax", progress=progress)
    assert seen == [(6, "NTK blocks")]  # 3 row blocks, upper triangle: 3 + 2 + 1


@pytest.mark.parametrize("name", ["mlp", "mlp_k3"])
def test_ntk_vp_and_transpose_products(name, x64):
    model, shape = MODELS[name]
    apply_fn, params, x = _setup(model, shape)
    phi = _brute_force_phi(apply_fn, params, x)
    K = phi @ phi.T
    rng = np.random.default_rng(0)
    v = rng.normal(size=K.shape[0])
    V = rng.normal(size=(K.shape[0], 3))
    kv = ntk.ntk_vp(apply_fn, params, x)
    np.testing.assert_allclose(np.asarray(kv(v)), K @ v, rtol=RTOL, atol=RTOL * np.abs(K @ v).max())
    np.testing.assert_allclose(np.asarray(kv(V)), K @ V, rtol=RTOL, atol=RTOL * np.abs(K @ V).max())
    tvp = ntk.ntrf_tvp(apply_fn, params, x)
    np.testing.assert_allclose(np.asarray(tvp(V)), phi.T @ V, rtol=RTOL, atol=RTOL * np.abs(phi.T @ V).max())


def test_linearize_is_first_order_taylor(x64):
    apply_fn, params, x = _setup(DeepMLP(1), (8, 4))
    f_lin = ntk.linearize(apply_fn, params)
    theta0, unravel = ravel_pytree(params)
    dtheta = 0.3 * jax.random.normal(jax.random.PRNGKey(3), theta0.shape, dtype=jnp.float64)
    phi = _brute_force_phi(apply_fn, params, x)
    np.testing.assert_allclose(np.asarray(f_lin(params, x)), np.asarray(apply_fn(params, x)), rtol=1e-14)
    expected = np.asarray(apply_fn(params, x)) + phi @ np.asarray(dtheta)
    np.testing.assert_allclose(
        np.asarray(f_lin(unravel(theta0 + dtheta), x)), expected, rtol=1e-10, atol=1e-12
    )


def _relu_ntk_closed_form(x1, x2, W_std, b_std):
    """Two-layer ReLU NTK (NTK parameterisation, d → ∞ → 1) from the arc-cosine kernels of Cho & Saul (2009)."""
    d = x1.shape[1]
    s1 = W_std**2 * x1 @ x2.T / d + b_std**2
    q1 = W_std**2 * np.sum(x1**2, 1) / d + b_std**2
    q2 = W_std**2 * np.sum(x2**2, 1) / d + b_std**2
    norm = np.sqrt(np.outer(q1, q2))
    theta = np.arccos(np.clip(s1 / norm, -1, 1))
    relu = norm * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)  # E[relu(u) relu(v)]
    relu_dot = (np.pi - theta) / (2 * np.pi)  # E[relu'(u) relu'(v)]
    nngp2 = W_std**2 * relu + b_std**2
    return nngp2 + W_std**2 * relu_dot * s1  # Θ₂ = Σ₂ + σ_w² Σ̇₁ Θ₁ with Θ₁ = Σ₁


@needs_nt
def test_infinite_width_ntk_matches_closed_form(x64):
    x1 = np.random.default_rng(0).normal(size=(6, 3))
    x2 = np.random.default_rng(1).normal(size=(4, 3))
    _, _, kernel_fn = ntk.relu_mlp_stax(64, W_std=1.5, b_std=0.2)
    theta = np.asarray(ntk.infinite_width_ntk(kernel_fn, x1, x2))
    np.testing.assert_allclose(theta, _relu_ntk_closed_form(x1, x2, 1.5, 0.2), rtol=1e-10)


def width_sweep_errors(widths, seeds, n=12):
    """Relative Frobenius error ‖K_emp − Θ‖ / ‖Θ‖ of a two-layer ReLU (2 → w → 1), averaged over seeds."""
    x = jax.random.normal(jax.random.PRNGKey(100), (n, 2), dtype=jnp.float64)
    errs = []
    for w in widths:
        init_fn, apply_fn, kernel_fn = ntk.relu_mlp_stax(w)
        theta = np.asarray(ntk.infinite_width_ntk(kernel_fn, x))
        e = []
        for seed in seeds:
            _, params = init_fn(jax.random.PRNGKey(seed), x.shape)
            K = np.asarray(ntk.empirical_ntk(apply_fn, params, x))
            e.append(np.linalg.norm(K - theta) / np.linalg.norm(theta))
        errs.append(float(np.mean(e)))
    return errs


@needs_nt
def test_empirical_ntk_approaches_infinite_width(x64):
    widths = [64, 256, 1024, 4096]
    errs = width_sweep_errors(widths, seeds=range(5))
    print("width -> mean relative error:", dict(zip(widths, errs, strict=True)))
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False)), errs
    # Monte-Carlo error ~ 1/√w: 64× the width should shrink it ≈ 8×; ask for a conservative 3×.
    assert errs[-1] < errs[0] / 3


def test_errors_are_one_line(x64):
    apply_fn, params, x = _setup(DeepMLP(1), (8, 4))
    with pytest.raises(GsJaxError, match="failed for x of shape") as info:
        ntk.empirical_ntk(apply_fn, params, x[:, :3])  # wrong input width
    assert "\n" not in str(info.value)
    with pytest.raises(GsJaxError, match="examples along axis 0"):
        ntk.ntrf(apply_fn, params, jnp.float64(1.0))
    with pytest.raises(GsJaxError, match=r"logits of shape \(n,\) or \(n, k\)"):
        ntk.empirical_ntk(lambda p, xx: apply_fn(p, xx)[None], params, x)
    with pytest.raises(GsJaxError, match="dense NTK Gram.*top_k.*batch_size"):
        ntk.empirical_ntk(apply_fn, params, x, max_bytes=100)
    with pytest.raises(GsJaxError, match="batch_size"):
        ntk.empirical_ntk(apply_fn, params, x, implementation="jacobian", max_bytes=8 * 8 * 8 + 1000)
    with pytest.raises(GsJaxError, match="Φ₀ of shape"):
        ntk.ntrf(apply_fn, params, x, max_bytes=100)
    for backend in ("jax", "nt") if ntk.nt_available() else ("jax",):
        with pytest.raises(GsJaxError, match="unknown NTK implementation"):
            ntk.empirical_ntk(apply_fn, params, x, implementation="magic", backend=backend)
    with pytest.raises(GsJaxError, match="ntk_vp: v must have shape"):
        ntk.ntk_vp(apply_fn, params, x)(jnp.ones(3))


def test_output_shape_is_cached_per_shape_and_never_caches_errors(x64):
    apply_fn, params, x = _setup(DeepMLP(3), (8, 4))
    assert ntk.output_shape(apply_fn, params, x) == (8, 3)
    assert ntk.output_shape(apply_fn, params, x[:5]) == (5, 3)  # same model, new n: not the cached (8, 3)
    assert ntk.output_shape(apply_fn, params, x.astype(jnp.float32)[:2]) == (2, 3)
    for _ in range(2):  # a failing shape raises every time, not only on the first call
        with pytest.raises(GsJaxError, match="failed for x of shape"):
            ntk.output_shape(apply_fn, params, x[:, :3])

    class Unhashable:  # an apply_fn that cannot key a cache is evaluated afresh
        __hash__ = None

        def __call__(self, p, xx):
            return apply_fn(p, xx)

    assert ntk.output_shape(Unhashable(), params, x) == (8, 3)


def test_ntk_vp_float32_moderate_n():
    """Regression: products at n in the hundreds, float32 (a closed-over linearisation gave wrong K·v here)."""
    from gs_jax.models import CmnistMLP

    model = CmnistMLP(hidden=32)
    x = jax.random.normal(jax.random.PRNGKey(0), (1000, 392), dtype=jnp.float32)
    params = model.init(jax.random.PRNGKey(1), x[:2])
    K = np.asarray(ntk.empirical_ntk(model.apply, params, x, backend="auto"), dtype=np.float64)
    v = np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32)
    got = np.asarray(ntk.ntk_vp(model.apply, params, x)(v), dtype=np.float64)
    np.testing.assert_allclose(got, K @ v, atol=1e-5 * np.abs(K @ v).max())  # float32 sums over m ≈ 14k terms
