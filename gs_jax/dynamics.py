"""Dual and primal learning dynamics of the linearised network (Sections 3.2 and 3.4 of the paper).

Notation (Definition 1).  The model is linear in its parameters, ``ŷ = Φ₀ θ`` (Eq. 3), with ``Φ₀`` of shape
(n, m) and labels ``y ∈ {±1}ⁿ``, ``Y = diag(y)``.  The SVD ``YΦ₀ = U S Vᵀ`` gives the feature weights ``U``
(n × r), the feature strengths ``s_j = S_jj`` and the features ``Vᵀ`` (r × m).  Everything below takes the
*squared* strengths ``s_sq = diag(S²)`` (shape (r,)), because Theorem 2 differentiates with respect to s₁².
The kernel that drives the dual dynamics is ``K = YΦ₀Φ₀ᵀY = U S² Uᵀ`` (n × n).

Derivation of the dual (Eq. 6 → Eq. 9).  For a margin ``m = yŷ``, ``log(1 + e^{-m}) = max_{α∈(0,1)} H(α) − α m``
(Eq. 6), the maximiser being ``α = σ(−m)``.  Substituting into Eq. 5 and minimising over θ first (the problem is
convex-concave) gives ``θ* = λ⁻¹ (YΦ₀)ᵀ α``, hence ``Yŷ = λ⁻¹ K α`` and the dual objective (Eq. 8)

    D(α) = 1·H(α) − (2λ)⁻¹ αᵀ K α .

Gradient ascent at rate η is Eq. 9:  ``α̇ = η[log((1−α)/α) − λ⁻¹ U S² Uᵀ α]`` (``H'(α) = log((1−α)/α)``).
At the optimum the responses are (Eq. 4 and Eq. 11) ``z* = UᵀYŷ = λ⁻¹ Uᵀ K α* = λ⁻¹ S² Uᵀ α*``.

Linearisation (Eq. 10).  Expanding ``log(1−α) = −α + O(α²)`` around the origin:
``α̇ ≈ η[−log α − (λ⁻¹ K + I) α]``.  For an orthogonal n × n ``U`` (``UUᵀ = I``) the matrix equals
``λ⁻¹ U (S² + λI) Uᵀ``, the paper's form; for a thin ``U`` (r < n) we keep ``λ⁻¹K + I``, which is the actual
first-order expansion.  The expansion is accurate when the fixed point sits near the origin, i.e. in the regime
**λ ≪ s²** (strong features relative to the weight decay): there α* ≈ λ log(s²/λ)/s² → 0 and the neglected
``α²/2`` term vanishes.  For λ ≳ s² the dual variables approach 1/2 (Eq. 9) and Eq. 10 is off by O(1);
``tests/test_fixed_points.py`` checks that the gap shrinks monotonically as λ/s² → 0.

Spectral Decoupling (Eq. 17 → Eq. 18).  With the penalty ``(λ/2)‖ŷ‖²`` instead of ``(λ/2)‖θ‖²``, write
``v = Yŷ = YΦ₀θ``, which ranges over the column space of U, and ``‖ŷ‖² = ‖v‖²``. The inner minimisation of
``−αᵀv + (λ/2)‖v‖²`` over that space gives ``v = λ⁻¹UUᵀα`` (the projection of α/λ onto range(U)), hence the dual

    D_SD(α) = 1·H(α) − (2λ)⁻¹ αᵀ U Uᵀ α ,

with gradient flow ``α̇ = η[log((1−α)/α) − λ⁻¹ U Uᵀ α]`` and responses ``z* = UᵀYŷ = λ⁻¹ Uᵀ α*`` (``UᵀU = I``;
the S² of Eq. 11 cancels, so z* does not depend on the strengths). When YΦ₀ has full row rank (n ≤ m, U square
and orthogonal) ``UUᵀ = I`` and this is the paper's Eq. 18, ``α̇ = η[log((1−α)/α) − λ⁻¹ α]``: every αᵢ evolves
on its own. When YΦ₀ has more rows than columns (n > r, U thin) ``UUᵀ`` is a rank-r projector, not I, and the
dual variables stay coupled through it; the code always uses ``UUᵀ``, so both cases are exact (checked against
the primal optimum of Eq. 17 in ``tests/test_fixed_points.py``).

Integration.  The log barriers make the flows stiff near α = 0 and α = 1, so the dual flows are integrated in
unconstrained coordinates (``α = e^u`` for Eq. 10, ``α = sigmoid(u)`` for Eq. 9/18) with diffrax's implicit
Kvaerno5 solver and an adaptive PID step-size controller; the solver status is returned alongside the
trajectory and checked by the Python wrappers (which raise :class:`GsJaxError` on failure, also under vmap).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp

from gs_jax.errors import GsJaxError, check

DUAL_EQUATIONS = ("eq9", "eq10", "sd")
PRIMAL_REGULARISERS = ("l2", "sd")


# ----------------------------------------------------------------------------------------------------------------
# Problem construction
# ----------------------------------------------------------------------------------------------------------------
def coupling_matrix(delta):
    """Eq. 15: ``U = [[√(1−δ²), −δ], [δ, √(1−δ²)]]``, two features with inter-block coupling δ ∈ [0, 1)."""
    delta = jnp.asarray(delta)
    c = jnp.sqrt(1.0 - delta**2)
    return jnp.stack([jnp.stack([c, -delta]), jnp.stack([delta, c])])


def kernel(U_nr, s_sq_r):
    """``K = U S² Uᵀ`` (n × n), the Gram matrix ``YΦ₀Φ₀ᵀY`` written in features (Definition 1)."""
    return (U_nr * s_sq_r) @ U_nr.T


def ntrf(U_nr, s_sq_r, V_mr=None):
    """A feature matrix with ``YΦ₀ = U S Vᵀ`` (labels all +1, so ``Y = I``); ``V = I`` by default (m = r).

    The primal problem depends on V only through a rotation of θ, which gradient descent from θ = 0 with an
    isotropic penalty does not see, so ``V = I`` loses nothing (SPEC §3).
    """
    S_r = jnp.sqrt(s_sq_r)
    if V_mr is None:
        V_mr = jnp.eye(U_nr.shape[1], dtype=U_nr.dtype)
    return (U_nr * S_r) @ V_mr.T


def check_problem(U_nr, s_sq_r, lam) -> None:
    """Validate shapes and values of a (U, S², λ) triple; raises GsJaxError with the fix."""
    U_nr, s_sq_r = jnp.asarray(U_nr), jnp.asarray(s_sq_r)
    check(U_nr.ndim == 2, f"U must be a matrix (n, r), got shape {U_nr.shape}")
    check(
        s_sq_r.shape == (U_nr.shape[1],),
        f"s_sq must have shape ({U_nr.shape[1]},) to match U {U_nr.shape}, got {s_sq_r.shape}",
    )
    check(
        bool(jnp.all(jnp.isfinite(U_nr))) and bool(jnp.all(jnp.isfinite(s_sq_r))), "U and s_sq must be finite"
    )
    check(bool(jnp.all(s_sq_r >= 0)), "squared feature strengths s_sq must be >= 0")
    check(float(lam) > 0, f"lambda must be > 0, got {lam}")


# ----------------------------------------------------------------------------------------------------------------
# Vector fields (α-space), Eq. 9 / 10 / 18
# ----------------------------------------------------------------------------------------------------------------
def eq9_field(alpha_n, U_nr, s_sq_r, lam, eta=1.0):
    """Eq. 9, the exact dual of Eq. 5: ``α̇ = η[log((1−α)/α) − λ⁻¹ U S² Uᵀ α]``."""
    K = kernel(U_nr, s_sq_r)
    return eta * (jnp.log1p(-alpha_n) - jnp.log(alpha_n) - K @ alpha_n / lam)


def linearised_matrix(U_nr, s_sq_r, lam):
    """``A = λ⁻¹K + I``; equals Eq. 10's ``λ⁻¹ U (S² + λI) Uᵀ`` when U is orthogonal (n × n)."""
    n = U_nr.shape[0]
    return kernel(U_nr, s_sq_r) / lam + jnp.eye(n, dtype=jnp.result_type(U_nr, s_sq_r))


def eq10_field(alpha_n, U_nr, s_sq_r, lam, eta=1.0):
    """Eq. 10, Eq. 9 linearised around α = 0: ``α̇ = η[−log α − λ⁻¹ U (S² + λI) Uᵀ α]``."""
    return eta * (-jnp.log(alpha_n) - linearised_matrix(U_nr, s_sq_r, lam) @ alpha_n)


def sd_projector(U_nr):
    """``UUᵀ`` (n × n): the identity when U is square (orthogonal), a rank-r projector when U is thin (n > r)."""
    return U_nr @ U_nr.T


def sd_field(alpha_n, U_nr, lam, eta=1.0):
    """Spectral Decoupling, the dual of Eq. 17: ``α̇ = η[log((1−α)/α) − λ⁻¹ UUᵀ α]``.

    For a square (orthogonal) U, ``UUᵀ = I`` and this is Eq. 18 (no U, no S: fully decoupled); for a thin U
    (YΦ₀ with more rows than columns) the projector couples the examples. S never enters.
    """
    return eta * (jnp.log1p(-alpha_n) - jnp.log(alpha_n) - sd_projector(U_nr) @ alpha_n / lam)


def dual_field(equation, alpha_n, U_nr, s_sq_r, lam, eta=1.0):
    """Dispatch on ``equation`` ∈ {"eq9", "eq10", "sd"}."""
    if equation == "eq9":
        return eq9_field(alpha_n, U_nr, s_sq_r, lam, eta)
    if equation == "eq10":
        return eq10_field(alpha_n, U_nr, s_sq_r, lam, eta)
    if equation == "sd":
        return sd_field(alpha_n, U_nr, lam, eta)
    raise GsJaxError(f"unknown dual equation {equation!r}; choose from {DUAL_EQUATIONS}")


def dual_to_z(equation, alpha_n, U_nr, s_sq_r, lam):
    """Feature responses from dual variables: Eq. 11 ``z = λ⁻¹ S² Uᵀ α`` (Eq. 9/10); ``z = λ⁻¹ Uᵀ α`` for SD.

    The SD form holds for square and thin U alike: ``z = UᵀYŷ = λ⁻¹UᵀUUᵀα = λ⁻¹Uᵀα`` since ``UᵀU = I``.
    """
    if equation == "sd":
        return U_nr.T @ alpha_n / lam
    return s_sq_r * (U_nr.T @ alpha_n) / lam


# ----------------------------------------------------------------------------------------------------------------
# Primal (Eq. 5 / Eq. 17) for the linear model ŷ = Φ₀θ
# ----------------------------------------------------------------------------------------------------------------
def primal_loss(theta_m, Phi_nm, y_n, lam, reg="l2"):
    """Eq. 5 (``reg="l2"``: CE + (λ/2)‖θ‖²) or Eq. 17 (``reg="sd"``: CE + (λ/2)‖ŷ‖²); CE summed over examples."""
    yhat = Phi_nm @ theta_m
    ce = jnp.sum(jax.nn.softplus(-y_n * yhat))
    if reg == "l2":
        return ce + 0.5 * lam * theta_m @ theta_m
    if reg == "sd":
        return ce + 0.5 * lam * yhat @ yhat
    raise GsJaxError(f"unknown primal regulariser {reg!r}; choose from {PRIMAL_REGULARISERS}")


def primal_field(theta_m, Phi_nm, y_n, lam, reg="l2", eta=1.0):
    """Primal gradient flow ``θ̇ = −η ∇L(θ)`` of Eq. 5 / Eq. 17."""
    return -eta * jax.grad(primal_loss)(theta_m, Phi_nm, y_n, lam, reg)


def primal_to_z(theta_m, Phi_nm, y_n, U_nr):
    """Eq. 4: ``z = Uᵀ Y ŷ`` with ``ŷ = Φ₀θ``."""
    return U_nr.T @ (y_n * (Phi_nm @ theta_m))


# ----------------------------------------------------------------------------------------------------------------
# Integration (diffrax)
# ----------------------------------------------------------------------------------------------------------------
class Trajectory(NamedTuple):
    ts: jax.Array  # (T,)
    states: jax.Array  # (T, n): α for dual flows, θ for primal flows
    ok: jax.Array  # () bool: diffrax returned RESULTS.successful


def _to_alpha(equation, u):
    return jnp.exp(u) if equation == "eq10" else jax.nn.sigmoid(u)


def _to_u(equation, alpha):
    return jnp.log(alpha) if equation == "eq10" else jnp.log(alpha) - jnp.log1p(-alpha)


def _dual_u_field(equation):
    """The dual flow in unconstrained coordinates: ``u̇ = α̇ / (dα/du)``."""

    def field(t, u, args):
        U_nr, s_sq_r, lam, eta = args
        if equation == "eq10":
            # α = e^u: log α = u exactly, no cancellation.
            alpha = jnp.exp(u)
            return eta * (-u - linearised_matrix(U_nr, s_sq_r, lam) @ alpha) / alpha
        # α = σ(u): log((1−α)/α) = −u exactly; dα/du = α(1−α).
        alpha = jax.nn.sigmoid(u)
        coupling = sd_projector(U_nr) if equation == "sd" else kernel(U_nr, s_sq_r)
        drive = coupling @ alpha / lam
        return eta * (-u - drive) / (alpha * jax.nn.sigmoid(-u))

    return field


def _solve(field, y0, args, ts, rtol, atol, max_steps):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Kvaerno5(),
        t0=0.0,
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
    )
    return sol.ys, sol.result == diffrax.RESULTS.successful


@functools.partial(jax.jit, static_argnames=("equation", "max_steps"))
def integrate_dual_raw(
    equation, alpha0_n, U_nr, s_sq_r, lam, ts, eta=1.0, rtol=1e-10, atol=1e-12, max_steps=100_000
):
    """Jitted, vmappable core of :func:`integrate_dual`: returns ``Trajectory`` without raising."""
    ts = jnp.asarray(ts)
    u0 = _to_u(equation, alpha0_n)
    us, ok = _solve(_dual_u_field(equation), u0, (U_nr, s_sq_r, lam, eta), ts, rtol, atol, max_steps)
    return Trajectory(ts, _to_alpha(equation, us), ok)


def integrate_dual(equation, alpha0_n, U_nr, s_sq_r, lam, ts, eta=1.0, **kw) -> Trajectory:
    """Integrate Eq. 9 / 10 / 18 from ``alpha0`` and return α at times ``ts`` (which must start > 0 or at 0).

    Raises GsJaxError if the solver fails or the trajectory is not finite.
    """
    check(equation in DUAL_EQUATIONS, f"unknown dual equation {equation!r}; choose from {DUAL_EQUATIONS}")
    alpha0_n = jnp.asarray(alpha0_n)
    check_problem(U_nr, s_sq_r, lam)
    check(
        alpha0_n.shape == (jnp.shape(U_nr)[0],),
        f"alpha0 must have shape ({jnp.shape(U_nr)[0]},), got {alpha0_n.shape}",
    )
    check(bool(jnp.all((alpha0_n > 0) & (alpha0_n < 1))), "initial dual variables must lie in (0, 1)")
    traj = integrate_dual_raw(equation, alpha0_n, jnp.asarray(U_nr), jnp.asarray(s_sq_r), lam, ts, eta, **kw)
    _check_trajectory(traj, f"dual {equation}")
    return traj


@functools.partial(jax.jit, static_argnames=("reg", "max_steps"))
def integrate_primal_raw(
    reg, theta0_m, Phi_nm, y_n, lam, ts, eta=1.0, rtol=1e-10, atol=1e-12, max_steps=100_000
):
    """Jitted, vmappable core of :func:`integrate_primal`."""

    def field(t, theta, args):
        return primal_field(theta, Phi_nm, y_n, lam, reg, eta)

    ts = jnp.asarray(ts)
    thetas, ok = _solve(field, theta0_m, None, ts, rtol, atol, max_steps)
    return Trajectory(ts, thetas, ok)


def integrate_primal(reg, theta0_m, Phi_nm, y_n, lam, ts, eta=1.0, **kw) -> Trajectory:
    """Gradient flow on Eq. 5 (``reg="l2"``) or Eq. 17 (``reg="sd"``) from ``theta0``; θ at times ``ts``."""
    check(
        reg in PRIMAL_REGULARISERS, f"unknown primal regulariser {reg!r}; choose from {PRIMAL_REGULARISERS}"
    )
    traj = integrate_primal_raw(
        reg, jnp.asarray(theta0_m), jnp.asarray(Phi_nm), jnp.asarray(y_n), lam, ts, eta, **kw
    )
    _check_trajectory(traj, f"primal {reg}")
    return traj


def _check_trajectory(traj: Trajectory, what: str) -> None:
    if not bool(jnp.all(traj.ok)):
        raise GsJaxError(
            f"{what}: the ODE solver did not finish (diffrax result not successful); "
            "raise max_steps or loosen rtol/atol"
        )
    if not bool(jnp.all(jnp.isfinite(traj.states))):
        raise GsJaxError(f"{what}: the trajectory has non-finite values; check lambda > 0 and finite U, s_sq")
