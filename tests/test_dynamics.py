"""Vector fields of Eq. 9/10/18 and the primal flows: gradients of their objectives, long-time limits, duality."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from gs_jax import dynamics
from gs_jax import fixed_points as fp
from gs_jax.errors import GsJaxError

pytestmark = pytest.mark.usefixtures("x64")


def _entropy(a):
    return -jnp.sum(a * jnp.log(a) + (1 - a) * jnp.log1p(-a))


def _problem(n=3, m=5, seed=0):
    """A random linear model with mixed labels: Φ₀ (n, m), y, and the SVD YΦ₀ = U S Vᵀ (Definition 1)."""
    rng = np.random.default_rng(seed)
    Phi = jnp.asarray(rng.normal(size=(n, m)))
    y = jnp.asarray(np.array([1.0, -1.0, 1.0, -1.0][:n]))
    U, S, _ = jnp.linalg.svd(y[:, None] * Phi, full_matrices=False)
    return Phi, y, U, S**2


def test_fields_are_gradients_of_the_duals():
    U = jnp.asarray(scipy.stats.special_ortho_group.rvs(3, random_state=2))
    s = jnp.array([9.0, 3.0, 0.5])
    lam = 0.7
    K = U @ jnp.diag(s) @ U.T
    a = jnp.array([0.1, 0.4, 0.8])
    dual8 = lambda a: _entropy(a) - a @ K @ a / (2 * lam)  # Eq. 8
    dual_sd = lambda a: _entropy(a) - a @ a / (2 * lam)  # SD dual (Eq. 17 → Eq. 18)
    np.testing.assert_allclose(
        dynamics.eq9_field(a, U, s, lam, eta=2.0), 2.0 * jax.grad(dual8)(a), rtol=1e-13
    )
    np.testing.assert_allclose(dynamics.sd_field(a, U, lam), jax.grad(dual_sd)(a), rtol=1e-13)
    # thin U (YΦ₀ with n = 4 > m = 2): the SD dual is H(α) − (2λ)⁻¹αᵀUUᵀα
    _, _, U4, _ = _problem(n=4, m=2)
    a4 = jnp.array([0.1, 0.4, 0.8, 0.3])
    dual_sd_thin = lambda a: _entropy(a) - a @ U4 @ U4.T @ a / (2 * lam)  # noqa: E731
    np.testing.assert_allclose(dynamics.sd_field(a4, U4, lam), jax.grad(dual_sd_thin)(a4), rtol=1e-13)
    # Eq. 10 = Eq. 9 with log(1 − α) replaced by −α
    lin = dynamics.eq9_field(a, U, s, lam) - jnp.log1p(-a) - a
    np.testing.assert_allclose(dynamics.eq10_field(a, U, s, lam), lin, rtol=1e-13)
    # and the paper's A = λ⁻¹U(S² + λI)Uᵀ for orthogonal U
    np.testing.assert_allclose(
        dynamics.linearised_matrix(U, s, lam), U @ jnp.diag(s + lam) @ U.T / lam, rtol=1e-13, atol=1e-14
    )


def test_eq15_is_orthogonal():
    for d in (0.0, 0.3, 0.99):
        U = dynamics.coupling_matrix(d)
        np.testing.assert_allclose(U @ U.T, np.eye(2), atol=1e-15)


@pytest.mark.parametrize("equation", ["eq9", "eq10", "sd"])
def test_long_time_ode_equals_root(equation):
    U = dynamics.coupling_matrix(0.5)
    s = jnp.array([20.0, 2.0])
    lam = 0.5
    traj = dynamics.integrate_dual(equation, jnp.array([1e-6, 0.9]), U, s, lam, jnp.array([0.0, 1.0, 60.0]))
    root = fp.fixed_point(equation, U, s, lam)
    np.testing.assert_allclose(traj.states[-1], root, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(traj.states[0], [1e-6, 0.9], rtol=1e-12)


def test_dual_integration_vmaps_over_a_grid():
    deltas = jnp.linspace(0.0, 0.9, 4)
    s = jnp.array([20.0, 2.0])
    ts = jnp.array([0.0, 60.0])
    run = jax.vmap(
        lambda d: dynamics.integrate_dual_raw(
            "eq9", jnp.full(2, 0.5), dynamics.coupling_matrix(d), s, 1.0, ts
        )
    )
    traj = run(deltas)
    assert bool(jnp.all(traj.ok)) and traj.states.shape == (4, 2, 2)
    roots = jax.vmap(lambda d: fp.fixed_point("eq9", dynamics.coupling_matrix(d), s, 1.0))(deltas)
    np.testing.assert_allclose(traj.states[:, -1], roots, rtol=1e-8)


def test_primal_eq5_matches_dual_eq9():
    # general Φ₀ (n = 3 < m = 5), mixed labels: z from minimising Eq. 5 equals λ⁻¹S²Uᵀα* at the Eq. 9 root
    Phi, y, U, s = _problem()
    for lam in (0.05, 1.0):
        theta = fp.primal_optimum("l2", Phi, y, lam)
        z_primal = dynamics.primal_to_z(theta, Phi, y, U)
        z_dual = dynamics.dual_to_z("eq9", fp.fixed_point("eq9", U, s, lam), U, s, lam)
        np.testing.assert_allclose(z_primal, z_dual, rtol=1e-6, atol=1e-9)
        # θ* = λ⁻¹(YΦ₀)ᵀα* (Section 3.2)
        alpha = fp.fixed_point("eq9", U, s, lam)
        np.testing.assert_allclose(theta, (y[:, None] * Phi).T @ alpha / lam, rtol=1e-6, atol=1e-9)


def test_thin_u_primal_matches_dual_and_ode():
    # n = 4 examples, m = 2 parameters: U is 4 × 2 (n × r), K = US²Uᵀ has rank 2
    Phi, y, U, s = _problem(n=4, m=2, seed=5)
    assert U.shape == (4, 2)
    lam = 0.3
    alpha = fp.fixed_point("eq9", U, s, lam)
    z_primal = dynamics.primal_to_z(fp.primal_optimum("l2", Phi, y, lam), Phi, y, U)
    np.testing.assert_allclose(z_primal, dynamics.dual_to_z("eq9", alpha, U, s, lam), rtol=1e-6, atol=1e-9)
    for equation in ("eq9", "eq10"):
        traj = dynamics.integrate_dual(equation, jnp.full(4, 0.5), U, s, lam, jnp.array([0.0, 60.0]))
        np.testing.assert_allclose(traj.states[-1], fp.fixed_point(equation, U, s, lam), rtol=1e-8)


def test_primal_eq17_matches_sd_eq18():
    Phi, y, U, s = _problem(n=3, m=5, seed=3)
    lam = 0.02
    theta = fp.primal_optimum("sd", Phi, y, lam)
    z_primal = dynamics.primal_to_z(theta, Phi, y, U)
    z_sd = dynamics.dual_to_z("sd", fp.fixed_point("sd", U, s, lam), U, s, lam)
    np.testing.assert_allclose(z_primal, z_sd, rtol=1e-6, atol=1e-9)


def test_primal_flow_reaches_the_optimum():
    U = dynamics.coupling_matrix(0.5)
    s = jnp.array([16.0, 4.0])
    Phi, y = dynamics.ntrf(U, s), jnp.ones(2)
    for reg, lam in (("l2", 0.01), ("sd", 0.002)):
        traj = dynamics.integrate_primal(reg, jnp.zeros(2), Phi, y, lam, jnp.array([0.0, 1e4]))
        np.testing.assert_allclose(traj.states[-1], fp.primal_optimum(reg, Phi, y, lam), rtol=1e-8)


def test_sd_fixed_point_matches_spec_reference():
    # SPEC §3: with λ_SD = 0.002 every ŷᵢ → ŷ* with σ(−ŷ*) = 0.002ŷ* ≈ 4.665, z = ŷ*·Uᵀ1 ≈ (6.3726, 1.7075)
    U = dynamics.coupling_matrix(0.5)
    z = fp.fixed_point_z("sd", U, jnp.array([36.0, 4.0]), 0.002)
    np.testing.assert_allclose(z, [6.3726, 1.7075], atol=2e-4)


def test_solver_failure_and_bad_input_raise():
    U, s = dynamics.coupling_matrix(0.5), jnp.array([20.0, 2.0])
    with pytest.raises(GsJaxError, match="did not finish"):
        dynamics.integrate_dual("eq9", jnp.full(2, 0.5), U, s, 1.0, jnp.array([0.0, 100.0]), max_steps=3)
    with pytest.raises(GsJaxError, match=r"\(0, 1\)"):
        dynamics.integrate_dual("eq9", jnp.array([0.0, 0.5]), U, s, 1.0, jnp.array([0.0, 1.0]))
    with pytest.raises(GsJaxError, match="unknown"):
        dynamics.integrate_dual("eq8", jnp.full(2, 0.5), U, s, 1.0, jnp.array([0.0, 1.0]))
    with pytest.raises(GsJaxError, match="unknown primal"):
        dynamics.primal_loss(jnp.zeros(2), jnp.eye(2), jnp.ones(2), 1.0, reg="l1")
    with pytest.raises(GsJaxError, match="s_sq must have shape"):
        dynamics.check_problem(U, jnp.ones(3), 1.0)
    with pytest.raises(GsJaxError, match="lambda"):
        dynamics.check_problem(U, s, 0.0)
