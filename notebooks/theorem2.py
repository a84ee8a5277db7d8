# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Theorem 2: gradient starvation in the dual dynamics (Sections 3.2–3.4)
#
# A linearised network trained with cross-entropy and weight decay has the dual dynamics of Eq. 9,
# `α̇ = η[log((1−α)/α) − λ⁻¹ U S² Uᵀ α]`, and feature responses `z* = λ⁻¹ S² Uᵀ α*` (Eq. 11). With two features
# coupled as in Eq. 15 (coupling δ) and strengths `S = diag(s₁, s₂)`, Theorem 2 says that making feature 1 stronger
# lowers the response to feature 2: `dz₂*/ds₁² < 0`. Spectral Decoupling (Eq. 18) removes U and S from the
# dynamics, so z₂* no longer depends on s₁².
#
# The sliders redraw, for the chosen δ, λ, s₁², s₂²: the flow of Eq. 9 in the (z₁, z₂) plane with the fixed points
# of Eq. 9, Eq. 10, Lemma 1 and SD, and the starvation curve z₂*(s₁²) with its implicit derivative.
# `make theorem2` runs the full sweep and the phase map.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gs_jax import dynamics, precision
from gs_jax import fixed_points as fp
from gs_jax.experiments import theorem2
from gs_jax.plotting import theory as plots

precision.enable_x64()
SMALL = bool(os.environ.get("GS_SMALL"))
GRID = 15 if SMALL else 40  # flow-field resolution
CURVE = 30 if SMALL else 200  # points on the starvation curve

# %%
solve = jax.jit(fp.fixed_point, static_argnums=0)


def fixed_points_z(delta, lam, s1_sq, s2_sq):
    U, s = dynamics.coupling_matrix(delta), jnp.array([s1_sq, s2_sq])
    out = {eq: dynamics.dual_to_z(eq, solve(eq, U, s, lam), U, s, lam) for eq in ("eq9", "eq10", "sd")}
    out["lemma1"] = fp.lemma1(U, s, lam)[1]
    return {k: np.asarray(v) for k, v in out.items()}


def flow_in_z(delta, lam, s1_sq, s2_sq, z_fixed):
    """Eq. 9 pushed to z: α = λ U S⁻² z (U orthogonal), ż = λ⁻¹ S² Uᵀ α̇; points with α ∉ (0, 1) are masked."""
    U, s = dynamics.coupling_matrix(delta), jnp.array([s1_sq, s2_sq])
    z1 = np.linspace(0.0, 1.6 * max(z_fixed[0], 1e-3), GRID)
    z2 = np.linspace(min(0.0, 1.6 * z_fixed[1]), max(1.6 * z_fixed[1], 1e-3), GRID)
    Z = jnp.stack(np.meshgrid(z1, z2), -1).reshape(-1, 2)
    alpha = lam * (U @ (Z / s).T).T
    inside = jnp.all((alpha > 1e-9) & (alpha < 1 - 1e-9), axis=1)
    a = jnp.clip(alpha, 1e-9, 1 - 1e-9)
    dz = jax.vmap(lambda a: s * (U.T @ dynamics.eq9_field(a, U, s, lam)) / lam)(a)
    dz = np.where(inside[:, None], np.asarray(dz), np.nan).reshape(GRID, GRID, 2)
    return z1, z2, dz[..., 0], dz[..., 1]


def starvation_curve(delta, lam, s2_sq, equation="eq9"):
    s1 = np.linspace(s2_sq, 30 * s2_sq, CURVE)
    z2, dz2, _ = fp.z2_and_slope(
        equation, np.full_like(s1, delta), s1, np.full_like(s1, s2_sq), np.full_like(s1, lam)
    )
    return s1, np.asarray(z2), np.asarray(dz2)


def draw(delta=0.5, lam=1.0, s1_sq=10.0, s2_sq=2.0):
    zf = fixed_points_z(delta, lam, s1_sq, s2_sq)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    plots.flow_field_figure(*flow_in_z(delta, lam, s1_sq, s2_sq, zf["eq9"]), zf, ax=axes[0])
    axes[0].set_title(f"Eq. 9 flow in z, δ={delta:g}, λ={lam:g}", fontsize=9)
    for equation, style in (("eq9", "-"), ("eq10", "--")):
        s1, z2, dz2 = starvation_curve(delta, lam, s2_sq, equation)
        axes[1].plot(s1, z2, style, label=equation)
        axes[2].plot(s1, dz2, style, label=equation)
    axes[1].axhline(zf["sd"][1], color="k", ls=":", label="SD (flat)")
    axes[1].axvline(s1_sq, color="grey", lw=0.6)
    axes[1].set(xlabel="s₁²", ylabel="z₂*", title="starvation curve")
    axes[2].axhline(0, color="grey", lw=0.6)
    axes[2].set(xlabel="s₁²", ylabel="dz₂*/ds₁² (implicit)")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.show()
    return zf


# %%
zf = draw()
for name, z in zf.items():
    print(f"{name:7s} z* = ({z[0]:.6f}, {z[1]:.6f})")

# %% [markdown]
# ## Sliders
# Move δ past 1/√2 ≈ 0.707 to see where the sign statement of Theorem 2 stops holding: z₂* itself becomes negative
# there, and it is |z₂*| that keeps shrinking as s₁² grows.

# %%
try:
    from ipywidgets import FloatLogSlider, FloatSlider, interact

    interact(
        draw,
        delta=FloatSlider(value=0.5, min=0.0, max=0.99, step=0.01),
        lam=FloatLogSlider(value=1.0, base=10, min=-2, max=2, step=0.1),
        s1_sq=FloatSlider(value=10.0, min=0.5, max=60.0, step=0.5),
        s2_sq=FloatSlider(value=2.0, min=0.5, max=20.0, step=0.5),
    )
except ImportError:
    print("ipywidgets is not installed; call draw(delta, lam, s1_sq, s2_sq) by hand")

# %% [markdown]
# ## A small version of `make theorem2`

# %%
rows = theorem2.theorem2_sweep(
    ("eq10", "eq9", "sd"), (0.0, 0.1, 0.5), np.linspace(2.0, 60.0, CURVE), 2.0, 1.0
)
print(theorem2.format_verdicts(theorem2.theorem2_verdicts(rows)))
fig = plots.starvation_figure(rows)
plt.show()
