"""The controlled Theorem 2 study: the reparametrisation moves exactly one singular value (an independent NTK of the
reparametrised model); the harness test — the linearised network lands on Eq. 9 / Eq. 18's fixed points to its
solver's bound — runs through the entry point in tests/test_starvation.py (the small variant)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import ntk, precision
from gs_jax.data import mnist
from gs_jax.experiments import starvation_controlled as sc

HIDDEN, N = 8, 24


@pytest.fixture(scope="module")
def problem():
    pool = mnist.embedded_default()
    return [sc.setup(pool, 1234, n=N, hidden=HIDDEN, k=6)]


def test_reparametrisation_scales_only_the_colour_singular_value(problem):
    """YΦ₀P_b = U S_b Vᵀ: the NTK Gram of ϑ ↦ f(θ₀ + P_bϑ) at ϑ = 0, computed afresh (float64), equals U S_b² Uᵀ with
    the stored U — only s_colour² moved, by b²."""
    st, b = problem[0], 1.7
    model, unravel = sc.model_of(HIDDEN), sc._unravel(HIDDEN)
    with precision.x64(True):
        flat0, v = jnp.asarray(st.flat0, jnp.float64), jnp.asarray(st.v_c, jnp.float64)

        def g(th, x):
            theta = flat0 + th + (b - 1.0) * v * (v @ th)
            return model.logits(
                {"params": jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), unravel(theta))}, x
            )

        K = np.asarray(
            ntk.empirical_ntk(g, jnp.zeros_like(flat0), jnp.asarray(st.x, jnp.float64), backend="jax")
        )
    got = st.y[:, None] * K * st.y[None, :]
    want = (st.U * sc.strengths(st, b)) @ st.U.T
    # v_c is stored in float32 (‖v_c‖ = 1 to 1e-7): the only error beyond float64 rounding
    assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
    assert st.v_c_norm == pytest.approx(1.0, abs=1e-9)
    moved = np.abs(sc.strengths(st, b) - st.s_sq)
    assert np.count_nonzero(moved) == 1 and moved[st.colour["index"]] > 0
