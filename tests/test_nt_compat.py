"""The private neural-tangents compat module: neural-tangents 0.6.5 imported on the locked jax without TensorFlow,
each of its empirical implementations against a brute-force NTK (per-example ``jax.jacrev``), its ``stax`` kernel
against the arc-cosine closed form, ``linearize`` and ``batch``; and one-line refusals on an untested jax."""

from __future__ import annotations

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gs_jax import _nt_compat
from gs_jax.errors import GsJaxError

pytestmark = pytest.mark.skipif(
    not _nt_compat.supported(), reason="neural-tangents not importable on this jax"
)

RTOL = 1e-10  # float64; implementations differ from brute force only in the order of sums (≈ 1e-15 relative)


class MLP(nn.Module):
    k: int = 1

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(9)(x))
        h = nn.tanh(nn.Dense(7)(h))
        return nn.Dense(self.k)(h)


class ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(3, (3, 3))(x))
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
        h = nn.gelu(nn.Conv(4, (2, 2), padding="VALID")(h))
        return nn.Dense(2)(h.reshape(h.shape[0], -1))


CASES = {"mlp": (MLP(1), (6, 5)), "mlp_multi_output": (MLP(4), (5, 3)), "conv": (ConvNet(), (4, 6, 6, 2))}


def _brute_force_ntk(apply_fn, params, x):
    """(n, n, k, k) from per-example Jacobians: jax.jacrev of one example's k logits w.r.t. the flat parameters."""
    theta, unravel = ravel_pytree(params)
    row = jax.jit(jax.jacrev(lambda t, xi: apply_fn(unravel(t), xi[None])[0]))  # one example's (k, m)
    jac = np.stack([np.asarray(row(theta, xi)) for xi in x])  # (n, k, m), one example at a time
    return np.einsum("ikm,jlm->ijkl", jac, jac)


_REFERENCES: dict = {}


def _case(name):
    """x, params and the brute-force NTK of a case (float64), computed once per test session."""
    if name not in _REFERENCES:
        model, shape = CASES[name]
        x = jax.random.normal(jax.random.PRNGKey(0), shape, dtype=jnp.float64)
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), model.init(jax.random.PRNGKey(1), x))
        _REFERENCES[name] = (x, params, _brute_force_ntk(model.apply, params, x))
    return _REFERENCES[name]


@pytest.mark.parametrize("implementation", [1, 2, 3])  # Jacobian contraction, NTK-vector products, structured
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_implementation_matches_brute_force(case, implementation, x64):
    nt = _nt_compat.load()
    model, _ = CASES[case]
    x, params, ref = _case(case)
    kernel_fn = nt.empirical_ntk_fn(model.apply, trace_axes=(), vmap_axes=0, implementation=implementation)
    got = np.asarray(kernel_fn(x, None, params))
    assert got.shape == ref.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


def test_stax_kernel_matches_arc_cosine_closed_form_and_batch(x64):
    """Two-layer ReLU, NTK parameterisation: Θ = Σ₂ + σ_w² Σ̇₁ Σ₁ (Cho & Saul's arc-cosine kernels)."""
    nt = _nt_compat.load()
    W_std, b_std = 1.3, 0.3
    _, _, kernel_fn = nt.stax.serial(
        nt.stax.Dense(32, W_std=W_std, b_std=b_std),
        nt.stax.Relu(),
        nt.stax.Dense(1, W_std=W_std, b_std=b_std),
    )
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    d = x1.shape[1]
    s12 = W_std**2 * x1 @ x2.T / d + b_std**2
    q1 = W_std**2 * np.sum(x1**2, 1) / d + b_std**2
    q2 = W_std**2 * np.sum(x2**2, 1) / d + b_std**2
    norm = np.sqrt(np.outer(q1, q2))
    t = np.arccos(np.clip(s12 / norm, -1, 1))
    closed = W_std**2 * norm * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi) + b_std**2
    closed += W_std**2 * (np.pi - t) / (2 * np.pi) * s12
    np.testing.assert_allclose(np.asarray(kernel_fn(x1, x2, "ntk")), closed, rtol=1e-10)
    batched = nt.batch(kernel_fn, batch_size=3)(x1, x2, "ntk")
    np.testing.assert_allclose(np.asarray(batched), closed, rtol=1e-10)


def test_linearize_is_first_order_taylor(x64):
    nt = _nt_compat.load()
    model, shape = CASES["mlp_multi_output"]
    x = jax.random.normal(jax.random.PRNGKey(2), shape, dtype=jnp.float64)
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), model.init(jax.random.PRNGKey(3), x))
    theta, unravel = ravel_pytree(params)
    dtheta = 1e-3 * jax.random.normal(jax.random.PRNGKey(4), theta.shape, dtype=jnp.float64)
    f_lin = nt.linearize(model.apply, params)
    jac = jax.jacrev(lambda t: model.apply(unravel(t), x))(theta)  # (n, k, m)
    expected = model.apply(params, x) + jnp.einsum("nkm,m->nk", jac, dtheta)
    np.testing.assert_allclose(
        np.asarray(f_lin(unravel(theta + dtheta), x)), np.asarray(expected), rtol=1e-12
    )


def test_no_tensorflow_is_imported_and_experimental_refuses_in_one_line():
    _nt_compat.load()
    assert not any(m == "tensorflow" or m.startswith(("tensorflow.", "tf2jax")) for m in sys.modules)
    import neural_tangents

    with pytest.raises(GsJaxError, match="needs TensorFlow and tf2jax") as info:
        neural_tangents.experimental.convert  # noqa: B018
    assert "\n" not in str(info.value)


def test_untested_jax_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(jax, "__version__", "0.10.2")
    _nt_compat.load.cache_clear()
    try:
        assert not _nt_compat.supported()
        with pytest.raises(
            GsJaxError, match="jax 0.9.2 only .found jax 0.10.2.: use .* backend='jax'"
        ) as info:
            _nt_compat.load()
        assert "\n" not in str(info.value)
    finally:
        _nt_compat.load.cache_clear()
