"""Fixed points of the dual dynamics: Lambert W closed forms, Lemma 1, exact roots with implicit derivatives.

All functions are pure jax, float64-ready, jit-able and vmappable; exact roots carry exact derivatives through
the implicit function theorem (``jax.lax.custom_root``), so ``jax.jvp`` / ``jax.grad`` of z* with respect to s²,
λ or δ costs one extra linear solve, not a finite difference.

Closed forms (Section 3.3).  With a decoupled Eq. 10, example i obeys ``−log αᵢ = aᵢ αᵢ`` with
``aᵢ = (kᵢ + λ)/λ`` and ``kᵢ = (U S² Uᵀ)ᵢᵢ``.  Writing ``w = aᵢαᵢ`` gives ``w eʷ = aᵢ``, so ``αᵢ = W(aᵢ)/aᵢ``:

* Eq. 12 (S² = s² I, U orthogonal): A = λ⁻¹(s² + λ) I, ``αᵢ* = λW(λ⁻¹s² + 1)/(s² + λ)`` for every i and
  ``zⱼ* = s² W(λ⁻¹s² + 1)/(s² + λ) · Σᵢ uᵢⱼ``;
* Eq. 13 (U a permutation): ``zⱼ* = sⱼ² W(λ⁻¹sⱼ² + 1)/(sⱼ² + λ)``.

Lemma 1 (Eq. 14), derived.  The fixed point of Eq. 10 solves ``F(α) = −log α − Aα = 0`` with
``A = λ⁻¹U(S² + λI)Uᵀ``.  Its Jacobian is ``F'(α) = −diag(α)⁻¹ − A``.  One Newton step from the decoupled fixed
point α₀* (the δ = 0 solution, Eq. 13 with U = I) gives

    α* ≈ α₀ − F'(α₀)⁻¹F(α₀) = (A + D)⁻¹[(A + D)α₀ − log α₀ − Aα₀] = (A + D)⁻¹(Dα₀ − log α₀),  D = diag(α₀)⁻¹,

and since ``Dα₀ = 1`` this is **α* ≈ (A + diag(α₀*)⁻¹)⁻¹ (1 − log α₀*)** — Eq. 14 with its brackets restored.
The error is quadratic in the perturbation of A, i.e. O(δ²) in the coupling of Eq. 15.

Theorem 2 and where its sign statement stops (what ``make theorem2``'s phase map finds).  With U from Eq. 15,
``z₂* = λ⁻¹s₂²(√(1−δ²)α₂* − δα₁*)``.  Two exact facts explain the map:
* at s₁² = s₂², K = s²I and the response to a change of s₁² is dα ∝ −u₁ (first column of U), orthogonal to u₂,
  so dz₂*/ds₁² = 0 there; the theorem's strict inequality needs s₁² > s₂²;
* at δ = 1/√2, K = ½[[s₁²+s₂², s₁²−s₂²], [s₁²−s₂², s₁²+s₂²]] is symmetric under swapping the two examples, so the
  (unique) fixed point has α₁* = α₂* and z₂* = 0 for every s₁², λ (Eq. 9 and Eq. 10 alike).
Numerically (λ ∈ {0.1, 1, 10}, s₁²/s₂² ∈ (1, 30]): dz₂*/ds₁² < 0 for every 0 < δ < 1/√2; for δ > 1/√2, z₂* < 0 and
dz₂*/ds₁² > 0 — the sign statement fails — but |z₂*| still decreases, i.e. feature 2 is still starved in magnitude.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import dynamics
from gs_jax.dynamics import kernel, linearised_matrix
from gs_jax.errors import GsJaxError

# ----------------------------------------------------------------------------------------------------------------
# Lambert W (principal branch)
# ----------------------------------------------------------------------------------------------------------------
_INV_E_HI = 0.36787944117144233  # float64(1/e)
_INV_E_LO = -1.2428753672788363e-17  # 1/e − float64(1/e)


def _lambertw_impl(x, iterations):
    x = jnp.asarray(x)
    # Distance to the branch point, e·x + 1, computed without cancellation: x + 1/e with 1/e split in two.
    q = jnp.maximum(2.0 * np.e * ((x + _INV_E_HI) + _INV_E_LO), 0.0)
    p = jnp.sqrt(q)
    # Branch-point series W = −1 + p − p²/3 + 11/72 p³ − 43/540 p⁴ + 769/17280 p⁵ − 221/8505 p⁶ (p → 0).
    series = -1.0 + p * (
        1.0 + p * (-1.0 / 3 + p * (11.0 / 72 + p * (-43.0 / 540 + p * (769.0 / 17280 - p * 221.0 / 8505))))
    )
    xs = jnp.maximum(x, 1e-300)
    lx = jnp.log(xs)
    asym = lx - jnp.log(jnp.maximum(lx, 1e-300))  # W ≈ log x − log log x (x → ∞)
    w = jnp.where(x < 0.25, series, jnp.where(x < 3.0, jnp.log1p(xs) * 0.75, asym))
    near_branch = p < 1e-3  # the 7-term series is exact to ~1e-21 there; Halley would divide by w + 1 ≈ 0

    def halley(_, w):
        ew = jnp.exp(w)
        f = w * ew - x
        wp1 = w + 1.0
        safe = jnp.where(near_branch, 1.0, wp1)
        step = f / (ew * safe - (safe + 1.0) * f / (2.0 * safe))
        return jnp.where(near_branch, w, w - step)

    return jax.lax.fori_loop(0, iterations, halley, w)


@jax.custom_jvp
def lambertw(x):
    """Principal branch W₀ of the Lambert W function, ``W(x) e^{W(x)} = x`` for x ≥ −1/e.

    Halley iterations from a branch-point series (x near −1/e), ``0.75·log1p(x)`` (moderate x) or
    ``log x − log log x`` (large x); a fixed count of 8 iterations, so it is jit- and vmap-friendly. Its
    derivative ``W'(x) = 1 / (e^W (1 + W))`` is attached as a custom JVP. Returns NaN for x < −1/e.
    """
    x = jnp.asarray(x)
    w = _lambertw_impl(x, 8)
    return jnp.where(x < -_INV_E_HI - 1e-15, jnp.nan, w)


@lambertw.defjvp
def _lambertw_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    w = lambertw(x)
    return w, dx / (jnp.exp(w) * (1.0 + w))


# ----------------------------------------------------------------------------------------------------------------
# Closed forms (Eq. 12, Eq. 13) and Lemma 1 (Eq. 14)
# ----------------------------------------------------------------------------------------------------------------
def decoupled_alpha(a):
    """Root of ``−log α = a α`` (a > 0): ``α = W(a)/a``."""
    return lambertw(a) / a


def closed_form_isotropic(U_nr, s_sq, lam):
    """Eq. 12 (S² = s² I, U orthogonal): returns ``(α*, z*)`` of Eq. 10."""
    n, r = U_nr.shape
    w = lambertw(s_sq / lam + 1.0)
    alpha = jnp.full((n,), lam * w / (s_sq + lam))
    z = s_sq * w / (s_sq + lam) * jnp.sum(U_nr, axis=0)
    return alpha, z


def closed_form_permutation(U_nr, s_sq_r, lam):
    """Eq. 13 (U a permutation matrix, n = r): ``αᵢ* = λW(λ⁻¹kᵢ + 1)/(kᵢ + λ)`` with ``kᵢ = (US²Uᵀ)ᵢᵢ``.

    Returns ``(α*, z*)``; ``zⱼ* = sⱼ²W(λ⁻¹sⱼ² + 1)/(sⱼ² + λ)``.
    """
    k = jnp.diag(kernel(U_nr, s_sq_r))
    alpha = lam * lambertw(k / lam + 1.0) / (k + lam)
    return alpha, dynamics.dual_to_z("eq10", alpha, U_nr, s_sq_r, lam)


def lemma1(U_nr, s_sq_r, lam):
    """Lemma 1, Eq. 14: one Newton step of Eq. 10 from the decoupled (U = I) fixed point α₀*.

    ``α* ≈ (A + diag(α₀*)⁻¹)⁻¹ (1 − log α₀*)``, ``A = λ⁻¹U(S² + λI)Uᵀ``; valid for U a perturbed identity
    (n = r). Returns ``(α*, z*)``.
    """
    alpha0 = lam * lambertw(s_sq_r / lam + 1.0) / (s_sq_r + lam)
    A = linearised_matrix(U_nr, s_sq_r, lam)
    alpha = jnp.linalg.solve(A + jnp.diag(1.0 / alpha0), 1.0 - jnp.log(alpha0))
    return alpha, dynamics.dual_to_z("eq10", alpha, U_nr, s_sq_r, lam)


# ----------------------------------------------------------------------------------------------------------------
# Exact fixed points: damped Newton in unconstrained coordinates + implicit differentiation
# ----------------------------------------------------------------------------------------------------------------
_MAX_NEWTON = 100
_MAX_STEP = 2.0  # largest Newton step in u (log / logit) per iteration, for robustness far from the root


def _residual(equation, U_nr, s_sq_r, lam):
    """``r(u) = 0`` at the fixed point, in u = log α (Eq. 10) or u = logit α (Eq. 9, Eq. 18).

    Eq. 10: ``u + A e^u``;  Eq. 9: ``u + λ⁻¹K σ(u)``;  SD: ``u + λ⁻¹UUᵀσ(u)`` (Eq. 18's ``u + λ⁻¹σ(u)`` when U is
    square; each is −α̇/η in u-form).
    """
    if equation == "eq10":
        A = linearised_matrix(U_nr, s_sq_r, lam)
        return lambda u: u + A @ jnp.exp(u)
    if equation == "eq9":
        K = kernel(U_nr, s_sq_r)
        return lambda u: u + K @ jax.nn.sigmoid(u) / lam
    if equation == "sd":
        P = dynamics.sd_projector(U_nr)
        return lambda u: u + P @ jax.nn.sigmoid(u) / lam
    raise GsJaxError(f"unknown dual equation {equation!r}; choose from {dynamics.DUAL_EQUATIONS}")


def _newton(f, u0):
    def cond(state):
        k, _, step = state
        return (k < _MAX_NEWTON) & (step > 1e-15)

    def body(state):
        k, u, _ = state
        du = jnp.linalg.solve(jax.jacfwd(f)(u), f(u))
        size = jnp.max(jnp.abs(du))
        du = du * jnp.minimum(1.0, _MAX_STEP / jnp.maximum(size, 1e-300))
        u_new = u - du
        return k + 1, u_new, jnp.max(jnp.abs(du) / (1.0 + jnp.abs(u_new)))

    _, u, _ = jax.lax.while_loop(cond, body, (0, u0, jnp.asarray(jnp.inf, u0.dtype)))
    return u


def _dense_tangent_solve(g, y):
    return jnp.linalg.solve(jax.jacfwd(g)(y), y)


def _initial_u(equation, U_nr, s_sq_r, lam):
    """Decoupled guess: each example on its own with its diagonal kernel entry (exact when U is a permutation)."""
    if equation == "sd":
        a = jnp.diag(dynamics.sd_projector(U_nr)) / lam + 1.0  # 1/λ + 1 for every example when U is square
    else:
        a = jnp.diag(linearised_matrix(U_nr, s_sq_r, lam))
    alpha = decoupled_alpha(a)
    if equation == "eq10":
        return jnp.log(alpha)
    alpha = jnp.minimum(alpha, 0.5)
    return jnp.log(alpha) - jnp.log1p(-alpha)


def fixed_point_u(equation, U_nr, s_sq_r, lam):
    """Exact fixed point in unconstrained coordinates, differentiable via the implicit function theorem."""
    f = _residual(equation, U_nr, s_sq_r, lam)
    u0 = jax.lax.stop_gradient(_initial_u(equation, U_nr, s_sq_r, lam))
    return jax.lax.custom_root(f, u0, _newton, _dense_tangent_solve)


def fixed_point(equation, U_nr, s_sq_r, lam):
    """Exact fixed point α* of Eq. 9, Eq. 10 or SD (``equation`` ∈ {"eq9", "eq10", "sd"}; SD is Eq. 18 for a
    square U and the general dual of Eq. 17, with ``UUᵀ``, for a thin one).

    Newton iterations on the residual of :func:`_residual` in log/logit coordinates (steps capped at 2 per
    coordinate), then ``jax.lax.custom_root``: derivatives of α* with respect to anything U, S² or λ depend on are
    exact (implicit function theorem, one linear solve), not finite differences. Eq. 9 and Eq. 18 are gradient
    ascents of strictly concave duals and Eq. 10's fixed point is the minimiser of the strictly convex
    ``Σ(α log α − α) + ½αᵀAα``, so each root is unique.
    """
    u = fixed_point_u(equation, U_nr, s_sq_r, lam)
    return jnp.exp(u) if equation == "eq10" else jax.nn.sigmoid(u)


def fixed_point_residual(equation, U_nr, s_sq_r, lam, alpha_n):
    """max |r(u*)| of the root equation at ``alpha_n``; use it to check convergence (≈ 1e-15 when converged)."""
    u = jnp.log(alpha_n) if equation == "eq10" else jnp.log(alpha_n) - jnp.log1p(-alpha_n)
    return jnp.max(jnp.abs(_residual(equation, U_nr, s_sq_r, lam)(u)))


def fixed_point_z(equation, U_nr, s_sq_r, lam):
    """Feature responses z* at the exact fixed point (Eq. 11; ``λ⁻¹Uᵀα*`` for SD)."""
    return dynamics.dual_to_z(equation, fixed_point(equation, U_nr, s_sq_r, lam), U_nr, s_sq_r, lam)


def fixed_point_and_residual(equation, U_nr, s_sq_r, lam):
    """``(α*, max |residual|)``; jit/vmap-friendly (no Python-side checks)."""
    alpha = fixed_point(equation, U_nr, s_sq_r, lam)
    return alpha, fixed_point_residual(equation, U_nr, s_sq_r, lam, alpha)


# ----------------------------------------------------------------------------------------------------------------
# Primal optimum (Eq. 5 / Eq. 17) for the duality checks
# ----------------------------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("reg", "iterations"))
def primal_optimum(reg, Phi_nm, y_n, lam, iterations=60):
    """Minimiser θ* of Eq. 5 (``reg="l2"``) or Eq. 17 (``reg="sd"``) by damped Newton on θ from 0.

    The objective is convex (strictly for the ridge term; for SD only up to the null space of Φ₀, where the
    minimum-norm Newton step leaves θ untouched, so z* is still unique). Independent of the
    dual code, so comparing its z* with the dual fixed point checks the duality numerically.
    """
    loss = functools.partial(dynamics.primal_loss, Phi_nm=Phi_nm, y_n=y_n, lam=lam, reg=reg)

    def body(_, theta):
        g = jax.grad(loss)(theta)
        # least squares: the minimum-norm Newton step when the Hessian is singular (SD with m > n)
        step = jnp.linalg.lstsq(jax.hessian(loss)(theta), g)[0]
        size = jnp.max(jnp.abs(step))
        return theta - step * jnp.minimum(1.0, 5.0 / jnp.maximum(size, 1e-300))

    return jax.lax.fori_loop(0, iterations, body, jnp.zeros(Phi_nm.shape[1], Phi_nm.dtype))


def check_converged(residual, what: str, tol: float = 1e-9) -> None:
    """Raise GsJaxError unless every residual is finite and below ``tol``."""
    residual = np.asarray(residual)
    bad = ~np.isfinite(residual) | (residual > tol)
    if bad.any():
        raise GsJaxError(
            f"{what}: {int(bad.sum())} of {bad.size} fixed-point solves did not converge "
            f"(max residual {np.nanmax(np.where(np.isfinite(residual), residual, np.inf)):.3g}); "
            "check that lambda > 0 and the strengths are finite"
        )


# ----------------------------------------------------------------------------------------------------------------
# Theorem 2's two-feature problem (Eq. 15, S = diag(s₁, s₂)): z*, dz₂*/ds₁² and its checks, on arrays.
# The sweep over grids, the verdicts and the phase map that use them are in gs_jax.experiments.theorem2.
# ----------------------------------------------------------------------------------------------------------------
def _z_two_feature(equation, delta, s1_sq, s2_sq, lam):
    U = dynamics.coupling_matrix(delta)
    s_sq = jnp.stack([s1_sq, jnp.broadcast_to(s2_sq, jnp.shape(s1_sq))])
    alpha, res = fixed_point_and_residual(equation, U, s_sq, lam)
    return dynamics.dual_to_z(equation, alpha, U, s_sq, lam), (alpha, res)


def _z2_lemma1(delta, s1_sq, s2_sq, lam):
    U = dynamics.coupling_matrix(delta)
    return lemma1(U, jnp.stack([s1_sq, s2_sq]), lam)[1][1]


@functools.partial(jax.jit, static_argnames=("equation",))
@functools.partial(jax.vmap, in_axes=(None, 0, 0, 0, 0, None))
def theorem2_points(equation, delta, s1_sq, s2_sq, lam, fd_rel=1e-3):
    """Per point: α*, z*, dz₂*/ds₁² (implicit, forward mode), a 5-point central difference, Lemma 1, residual.

    Vectorised over the leading axis of ``delta, s1_sq, s2_sq, lam`` (all shape (P,)).
    """

    def z_of(s1):
        return _z_two_feature(equation, delta, s1, s2_sq, lam)

    (z, (alpha, res)), (dz, _) = jax.jvp(z_of, (s1_sq,), (jnp.ones_like(s1_sq),))
    h = fd_rel * s1_sq
    z2 = [z_of(s1_sq + k * h)[0][1] for k in (-2.0, -1.0, 1.0, 2.0)]
    fd = (z2[0] - 8.0 * z2[1] + 8.0 * z2[2] - z2[3]) / (12.0 * h)
    z2_l1, dz2_l1 = jax.jvp(lambda s1: _z2_lemma1(delta, s1, s2_sq, lam), (s1_sq,), (jnp.ones_like(s1_sq),))
    return dict(alpha=alpha, z=z, dz2=dz[1], dz2_fd=fd, z2_lemma1=z2_l1, dz2_lemma1=dz2_l1, residual=res)


@functools.partial(jax.jit, static_argnames=("equation",))
@functools.partial(jax.vmap, in_axes=(None, 0, 0, 0, 0))
def z2_and_slope(equation, delta, s1_sq, s2_sq, lam):
    """Vectorised over all arguments but ``equation``: ``(z₂*, dz₂*/ds₁² (implicit), residual)`` for Eq. 15."""

    def z_of(s1):
        return _z_two_feature(equation, delta, s1, s2_sq, lam)

    (z, (_, res)), (dz, _) = jax.jvp(z_of, (s1_sq,), (jnp.ones_like(s1_sq),))
    return z[1], dz[1], res


__all__ = [
    "lambertw",
    "decoupled_alpha",
    "closed_form_isotropic",
    "closed_form_permutation",
    "lemma1",
    "fixed_point",
    "fixed_point_u",
    "fixed_point_z",
    "fixed_point_residual",
    "fixed_point_and_residual",
    "primal_optimum",
    "check_converged",
    "theorem2_points",
    "z2_and_slope",
]
