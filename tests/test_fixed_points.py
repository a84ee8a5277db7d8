"""Lambert W, closed forms Eq. 12/13, Lemma 1, exact roots and their implicit derivatives, Eq. 10 vs Eq. 9 regime."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

from gs_jax import dynamics
from gs_jax import fixed_points as fp
from gs_jax.errors import GsJaxError
from gs_jax.experiments import theorem2

pytestmark = pytest.mark.usefixtures("x64")


# ---------------------------------------------------------------------------------------------------- Lambert W
def test_lambertw_matches_scipy():
    # [−1/e + 1e-8, 1e6]: W is well conditioned there; both implementations are exact to rounding.
    x = np.concatenate(
        [
            -1 / np.e + np.logspace(-8, np.log10(1 / np.e), 300),
            np.linspace(0, 10, 301),
            np.logspace(1, 6, 300),
        ]
    )
    w = np.asarray(jax.jit(fp.lambertw)(x))
    ref = scipy.special.lambertw(x).real
    np.testing.assert_allclose(w, ref, rtol=1e-12, atol=1e-12)


def test_lambertw_near_branch_point():
    # Within 1e-8 of −1/e, W has a square-root singularity: an input rounding of 1e-17 moves W by ~1e-9, and scipy
    # itself is off by up to ~4e-9 there. Reference: one Newton correction in extended precision (long double, eps
    # 1e-19, divided by W'(x)⁻¹ ~ 1e-7 at the closest points, so the reference resolves ~1e-12), which must vanish
    # to 1e-11; agreement with scipy is then checked within scipy's own error (1e-8).
    x = -1 / np.e + np.logspace(-16, -8, 30)
    w = np.asarray(fp.lambertw(x))
    wl, xl = w.astype(np.longdouble), x.astype(np.longdouble)
    correction = (wl * np.exp(wl) - xl) / (np.exp(wl) * (wl + 1))
    assert np.max(np.abs(correction.astype(float))) < 1e-11
    np.testing.assert_allclose(w, scipy.special.lambertw(x).real, atol=1e-8)
    assert float(fp.lambertw(-1 / np.e)) == pytest.approx(-1.0, abs=1e-7)
    assert np.isnan(float(fp.lambertw(-0.5)))


def test_lambertw_gradient():
    x = jnp.array([-0.3, 0.5, 2.0, 1e3])
    g = jax.vmap(jax.grad(fp.lambertw))(x)
    w = scipy.special.lambertw(np.asarray(x)).real
    np.testing.assert_allclose(g, w / (np.asarray(x) * (1 + w)), rtol=1e-12)
    h = 1e-6 * np.abs(np.asarray(x))
    fd = (scipy.special.lambertw(np.asarray(x) + h).real - scipy.special.lambertw(np.asarray(x) - h).real) / (
        2 * h
    )
    np.testing.assert_allclose(g, fd, rtol=1e-7)


# ---------------------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("s_sq,lam", [(0.3, 1.0), (2.0, 1.0), (50.0, 0.1), (4.0, 10.0)])
def test_eq12_isotropic_matches_newton(s_sq, lam):
    U = jnp.asarray(scipy.stats.special_ortho_group.rvs(3, random_state=0))
    s = jnp.full((3,), s_sq)
    alpha_cf, z_cf = fp.closed_form_isotropic(U, s_sq, lam)
    alpha = fp.fixed_point("eq10", U, s, lam)
    np.testing.assert_allclose(alpha, alpha_cf, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dynamics.dual_to_z("eq10", alpha, U, s, lam), z_cf, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_eq13_permutation_matches_newton(lam):
    perm = np.array([2, 0, 3, 1])
    U = jnp.eye(4)[perm]
    s = jnp.array([9.0, 4.0, 1.0, 0.25])
    alpha_cf, z_cf = fp.closed_form_permutation(U, s, lam)
    alpha = fp.fixed_point("eq10", U, s, lam)
    np.testing.assert_allclose(alpha, alpha_cf, rtol=1e-10, atol=1e-10)
    # zⱼ* = sⱼ² W(λ⁻¹sⱼ² + 1)/(sⱼ² + λ), independent of the permutation
    w = scipy.special.lambertw(np.asarray(s) / lam + 1).real
    np.testing.assert_allclose(z_cf, np.asarray(s) * w / (np.asarray(s) + lam), rtol=1e-12)
    np.testing.assert_allclose(dynamics.dual_to_z("eq10", alpha, U, s, lam), z_cf, rtol=1e-10)


def test_lemma1_is_a_newton_step_with_quadratic_error():
    s = jnp.array([12.0, 2.0])
    errs = []
    for delta in (0.08, 0.04, 0.02):
        U = dynamics.coupling_matrix(delta)
        exact = fp.fixed_point("eq10", U, s, 1.0)
        approx = fp.lemma1(U, s, 1.0)[0]
        errs.append(float(jnp.max(jnp.abs(approx - exact))))
    # Newton from a point O(δ) away: error O(δ²); halving δ divides it by ~4 (3 to 5 allowed for higher orders).
    assert 3.0 < errs[0] / errs[1] < 5.0 and 3.0 < errs[1] / errs[2] < 5.0
    # at δ = 0 it is exact
    U0 = dynamics.coupling_matrix(0.0)
    np.testing.assert_allclose(fp.lemma1(U0, s, 1.0)[0], fp.fixed_point("eq10", U0, s, 1.0), rtol=1e-13)


# -------------------------------------------------------------------------------------------- exact roots
@pytest.mark.parametrize("equation", ["eq9", "eq10", "sd"])
def test_fixed_point_zeroes_the_vector_field(equation):
    U = jnp.asarray(scipy.stats.special_ortho_group.rvs(4, random_state=1))
    s = jnp.array([30.0, 5.0, 1.0, 0.1])
    alpha = fp.fixed_point(equation, U, s, 0.5)
    field = dynamics.dual_field(equation, alpha, U, s, 0.5)
    assert np.all((alpha > 0) & (alpha < 1))
    np.testing.assert_allclose(field, 0.0, atol=1e-12)


def test_implicit_derivatives_match_fd_on_default_sweep():
    s1 = np.linspace(2.0, 60.0, 200)  # the default sweep of configs/theorem2.py
    rows = theorem2.theorem2_sweep(("eq10", "eq9"), (0.0, 0.1, 0.25, 0.5), s1, 2.0, 1.0)
    coupled = [r for r in rows if r["s1_sq"] > 2.0 and r["delta"] > 0]
    dz = np.array([r["dz2_ds1sq"] for r in coupled])
    fd = np.array([r["dz2_ds1sq_fd"] for r in coupled])
    np.testing.assert_allclose(dz, fd, rtol=1e-6)
    # δ = 0: U = I, feature 2 does not see s₁² at all (exactly 0; FD is rounding noise only)
    decoupled = [r for r in rows if r["delta"] == 0.0]
    assert max(abs(r["dz2_ds1sq"]) for r in decoupled) <= 1e-12
    assert max(abs(r["dz2_ds1sq_fd"]) for r in decoupled) <= 1e-12


def test_reverse_mode_through_the_root():
    # grad of z₂* w.r.t. (λ, δ) by reverse mode vs central differences
    def z2(params):
        lam, delta = params
        return fp.fixed_point_z("eq9", dynamics.coupling_matrix(delta), jnp.array([10.0, 2.0]), lam)[1]

    p = jnp.array([0.7, 0.3])
    g = jax.grad(z2)(p)
    h = 1e-6
    fd = [(z2(p + h * e) - z2(p - h * e)) / (2 * h) for e in jnp.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def _sd_margin(lam):
    """Root of σ(−m) = λm (one example of Eq. 17 on its own), by bisection in scipy — independent of the root code."""
    return scipy.optimize.brentq(
        lambda m: scipy.special.expit(-m) - lam * m, 0.0, 1.0 / lam + 1.0, xtol=1e-15
    )


@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_sd_fixed_point_is_the_closed_form_and_ignores_the_strengths(lam):
    # SD with a square U: every margin yᵢŷᵢ* solves σ(−ŷ*) = λŷ* on its own, so z* = ŷ*·Uᵀ1, whatever s₁², s₂².
    # Catches: S² leaking into the SD root or into dual_to_z("sd") (Eq. 11's S² instead of its cancellation), a
    # wrong λ scaling, a field that is not Eq. 18; the Eq. 9 row checks that the s₁² grid does move a coupled root.
    m = _sd_margin(lam)
    deltas, s1 = (0.1, 0.5, 0.9), np.linspace(2.0, 60.0, 9)
    rows = theorem2.theorem2_sweep(("sd", "eq9"), deltas, s1, 2.0, lam)  # one vmapped solve per equation
    for delta in deltas:
        colsum = np.asarray(dynamics.coupling_matrix(delta)).sum(axis=0)  # Uᵀ1
        sd = [r for r in rows if r["equation"] == "sd" and r["delta"] == delta]
        np.testing.assert_allclose([(r["alpha1"], r["alpha2"]) for r in sd], lam * m, rtol=1e-12)  # α* = λŷ*
        np.testing.assert_allclose(
            [(r["z1"], r["z2"]) for r in sd], np.tile(m * colsum, (len(sd), 1)), rtol=1e-12
        )
        assert max(abs(r["dz2_ds1sq"]) for r in sd) <= 1e-12  # the implicit derivative agrees (0)
        z9 = np.array([r["z2"] for r in rows if r["equation"] == "eq9" and r["delta"] == delta])
        assert np.ptp(z9) > 1e-2 * np.abs(z9).max()  # Eq. 9's z₂* does depend on s₁² (starvation)


def _thin_problem(seed=0, n=4, m=2):
    """YΦ₀ with more rows than columns: U is n × m (thin), UUᵀ a rank-m projector, not I."""
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(n, m))
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    U, S, _ = np.linalg.svd(y[:, None] * Phi, full_matrices=False)
    return jnp.asarray(Phi), jnp.asarray(y), jnp.asarray(U), jnp.asarray(S**2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sd_dual_with_thin_U_matches_the_primal_optimum(seed):
    # n = 4 > m = 2: the dual of Eq. 17 is H(α) − (2λ)⁻¹αᵀUUᵀα. The root, the ODE end point and the primal optimum
    # (damped Newton on θ, no dual code) must agree; Eq. 18's decoupled form (UUᵀ := I) is visibly off here.
    # Catches: the SD field / root / dual_to_z assuming UUᵀ = I for a thin U (the silent wrong answer).
    lam = 0.3
    Phi, y, U, s_sq = _thin_problem(seed)
    z_primal = dynamics.primal_to_z(fp.primal_optimum("sd", Phi, y, lam), Phi, y, U)
    alpha = fp.fixed_point("sd", U, s_sq, lam)
    np.testing.assert_allclose(fp.fixed_point_z("sd", U, s_sq, lam), z_primal, rtol=1e-10, atol=1e-12)
    assert float(fp.fixed_point_residual("sd", U, s_sq, lam, alpha)) < 1e-13
    np.testing.assert_allclose(dynamics.dual_field("sd", alpha, U, s_sq, lam), 0.0, atol=1e-12)
    traj = dynamics.integrate_dual("sd", jnp.full(4, 1e-3), U, s_sq, lam, jnp.array([0.0, 200.0]))
    np.testing.assert_allclose(dynamics.dual_to_z("sd", traj.states[-1], U, s_sq, lam), z_primal, rtol=1e-8)
    # the decoupled Eq. 18 answer, ŷ*·Uᵀ1, is wrong for a thin U (this data set exercises the difference)
    decoupled = _sd_margin(lam) * np.asarray(U).sum(axis=0)
    assert np.max(np.abs(decoupled - np.asarray(z_primal))) > 1e-3
    if seed == 0:  # the example: primal optimum (1.32819, −0.58006), Eq. 18 gave (1.32607, −0.59476)
        np.testing.assert_allclose(z_primal, [1.32819, -0.58006], atol=1e-5)
        np.testing.assert_allclose(decoupled, [1.32607, -0.59476], atol=1e-5)


def test_sd_dual_with_square_U_is_eq18():
    # U square and orthogonal: UUᵀ = I and the general SD field is Eq. 18 exactly (decoupled per example).
    U = jnp.asarray(scipy.stats.special_ortho_group.rvs(5, random_state=3))
    alpha = jnp.linspace(0.05, 0.6, 5)
    ref = np.log1p(-np.asarray(alpha)) - np.log(np.asarray(alpha)) - np.asarray(alpha) / 0.4
    np.testing.assert_allclose(dynamics.dual_field("sd", alpha, U, jnp.ones(5), 0.4), ref, rtol=1e-12)


def test_eq10_approximates_eq9_only_when_lambda_much_smaller_than_s_sq():
    # Gap between the fixed points of Eq. 10 and Eq. 9 as λ/s² → 0: monotone decrease towards 0.
    U = dynamics.coupling_matrix(0.25)
    s = jnp.array([8.0, 2.0])
    lams = np.logspace(2, -4, 25)  # λ from ≫ s² to ≪ s²
    solve = jax.jit(jax.vmap(fp.fixed_point, in_axes=(None, None, None, 0)), static_argnums=0)
    a9, a10 = solve("eq9", U, s, lams), solve("eq10", U, s, lams)
    gaps = np.max(np.abs(a10 - a9) / a9, axis=1)
    assert np.all(np.diff(gaps) < 0)
    assert gaps[0] > 0.1 and gaps[-1] < 1e-2  # O(1) off for λ ≫ s²; close for λ ≪ s²


def test_unknown_equation_and_non_convergence_raise():
    with pytest.raises(GsJaxError, match="unknown dual equation"):
        fp.fixed_point("eq11", jnp.eye(2), jnp.ones(2), 1.0)
    with pytest.raises(GsJaxError, match="did not converge"):
        fp.check_converged(np.array([1e-16, np.nan]), "test")
