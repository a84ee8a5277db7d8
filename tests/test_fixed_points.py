"""Lambert W, closed forms Eq. 12/13, Lemma 1, exact roots and their implicit derivatives, Eq. 10 vs Eq. 9 regime."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


def test_sd_derivatives_vanish():
    s1 = np.linspace(2.0, 60.0, 25)
    rows = theorem2.theorem2_sweep(("sd",), (0.0, 0.1, 0.25, 0.5, 0.9), s1, 2.0, 1.0)
    assert max(abs(r["dz2_ds1sq"]) for r in rows) <= 1e-12
    # independent check: the finite difference sees no dependence on s₁² either
    assert max(abs(r["dz2_ds1sq_fd"]) for r in rows) <= 1e-12


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
