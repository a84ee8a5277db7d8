"""Figures for the theory part: the starvation curves of Theorem 2, its phase map, primal vs dual (Fig. 5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

EQ_STYLE = {"eq10": "-", "eq9": "--", "sd": ":"}
EQ_LABEL = {"eq10": "Eq. 10 (linearised)", "eq9": "Eq. 9 (exact dual)", "sd": "SD, Eq. 18"}
EQ_MARKER = {"eq10": "o", "eq9": "^", "sd": "s"}
EQ_SHORT = {"eq10": "Eq. 10", "eq9": "Eq. 9", "sd": "SD"}
FIG5_COLOURS = ("#3B75AF", "#EF8636", "#529D3E", "#C53932", "#85584E")  # SPEC §3: the authors' colours


def starvation_figure(rows: Sequence[Mapping]):
    """z₂* and dz₂*/ds₁² against s₁²: one colour per δ, line style per equation (SD dotted).

    Curves that coincide (SD at every δ; every equation at δ = 0, where dz₂*/ds₁² = 0) stay visible: each equation
    is drawn wider than the one over it (SD widest, at the back) and carries its own marker every few points,
    offset by δ; the zero line of the right panel is named in its legend.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    deltas = sorted({r["delta"] for r in rows})
    colours = plt.cm.viridis(np.linspace(0, 0.85, max(len(deltas), 1)))
    equations = [e for e in ("sd", "eq9", "eq10") if any(r["equation"] == e for r in rows)]  # back to front
    for depth, equation in enumerate(equations):
        for i, (delta, colour) in enumerate(zip(deltas, colours, strict=True)):
            sel = [r for r in rows if r["equation"] == equation and r["delta"] == delta]
            s1 = np.array([r["s1_sq"] for r in sel])
            every = max(len(s1) // 8, 1)
            kw = dict(
                ls=EQ_STYLE[equation],
                color=colour,
                lw=3.2 - 1.0 * depth,
                marker=EQ_MARKER[equation],
                ms=4,
                markevery=(i * every // max(len(deltas), 1), every),
                zorder=1 + depth,
            )
            label = f"{EQ_SHORT[equation]}, δ={delta:g}"
            axes[0].plot(s1, [r["z2"] for r in sel], label=label, **kw)
            axes[1].plot(s1, [r["dz2_ds1sq"] for r in sel], label=label, **kw)
    axes[0].set_ylabel("z₂*")
    axes[1].set_ylabel("dz₂*/ds₁² (implicit)")
    axes[1].axhline(0, color="grey", lw=0.6, label="0: no starvation")
    for ax in axes:
        ax.set_xlabel("s₁²")
        ax.grid(ls="--", alpha=0.5)
    axes[1].legend(fontsize=6, ncol=3)
    fig.suptitle(
        "Theorem 2: a stronger feature 1 starves feature 2 (solid Eq. 10, dashed Eq. 9, dotted SD (Eq. 18); "
        "colour = δ;\ncoinciding curves are drawn wide to narrow: SD at every δ, every equation at δ = 0)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _phase_panels(rows: Sequence[Mapping], field: str):
    """The (equation, λ) panel grid of the phase-map figures: ``fig, axes`` and, per panel, ``(ax, equation, lam,
    δ axis, s₁²/s₂² axis, the field's grid, z₂*'s grid)`` (grids indexed [ratio, δ])."""
    equations = sorted({r["equation"] for r in rows})
    lams = sorted({r["lam"] for r in rows})
    fig, axes = plt.subplots(
        len(equations), len(lams), figsize=(3.6 * len(lams), 3.0 * len(equations)), squeeze=False
    )
    panels = []
    for i, equation in enumerate(equations):
        for j, lam in enumerate(lams):
            sel = [r for r in rows if r["equation"] == equation and r["lam"] == lam]
            d = np.array(sorted({r["delta"] for r in sel}))
            q = np.array(sorted({r["ratio"] for r in sel}))
            grid = {(r["delta"], r["ratio"]): r for r in sel}
            values = np.array([[grid[(a, b)][field] for a in d] for b in q])
            z2 = np.array([[grid[(a, b)]["z2"] for a in d] for b in q])
            panels.append((axes[i, j], equation, lam, d, q, values, z2))
    return fig, axes, panels


def _finish_panel(ax, equation, lam, d, q, z2) -> None:
    if z2.min() < 0 < z2.max():
        ax.contour(d, q, z2, levels=[0.0], colors="k", linewidths=1.2)
    ax.set_title(f"{equation}, λ={lam:g}", fontsize=9)
    ax.set_xlabel("δ")
    ax.set_ylabel("s₁²/s₂²")


def phase_map_figure(rows: Sequence[Mapping], zero_atol: float = 1e-12):
    """Sign of dz₂*/ds₁² over (δ, s₁²/s₂²), one panel per (equation, λ); the z₂* = 0 contour in black."""
    fig, _, panels = _phase_panels(rows, "dz2_ds1sq")
    cmap = ListedColormap(["#3B75AF", "#BBBBBB", "#C53932"])
    for ax, equation, lam, d, q, dz, z2 in panels:
        # 0: dz₂*/ds₁² < 0, 1: = 0 to rounding (δ = 0, or s₁² = s₂²), 2: > 0
        zero = np.abs(dz) <= zero_atol
        cls = np.where(zero, 1.0, np.where(dz < 0, 0.0, 2.0))
        ax.pcolormesh(d, q, cls, cmap=cmap, vmin=0, vmax=2, shading="nearest")
        _finish_panel(ax, equation, lam, d, q, z2)
    fig.suptitle(
        "blue: dz₂*/ds₁² < 0 (starvation)   grey: = 0   red: > 0   black line: z₂* = 0 (δ = 1/√2)", fontsize=9
    )
    fig.tight_layout()
    return fig


def phase_magnitude_figure(rows: Sequence[Mapping], clip: float = 1.0):
    """How strong starvation is: d log|z₂*| / d log s₁² over (δ, s₁²/s₂²), one panel per (equation, λ); −1 means
    |z₂*| falls in proportion to 1/s₁², 0 no effect; clipped to ±``clip``; the z₂* = 0 contour in black."""
    fig, axes, panels = _phase_panels(rows, "elasticity")
    mesh = None
    for ax, equation, lam, d, q, el, z2 in panels:
        mesh = ax.pcolormesh(
            d, q, np.clip(el, -clip, clip), cmap="RdBu_r", vmin=-clip, vmax=clip, shading="nearest"
        )
        _finish_panel(ax, equation, lam, d, q, z2)
    fig.suptitle("d log|z₂*| / d log s₁² (blue: z₂* shrinks as s₁² grows)   black line: z₂* = 0", fontsize=9)
    fig.tight_layout()
    if mesh is not None:
        fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8)
    return fig


def primal_dual_figure(curves: Sequence[Mapping], xlim=(-0.5, 10.5), ylim=(-0.1, 1.75)):
    """Fig. 5: trajectories in the (|z₁|, |z₂|) plane.

    ``curves`` holds dicts with keys ``s1``, ``dual``, ``primal_l2``, ``primal_sd`` (arrays (T, 2) of z).
    Left panel: dual (dotted) vs primal with weight decay (solid); right: primal weight decay vs SD (dashed).
    """
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for c, colour in zip(curves, FIG5_COLOURS * 4, strict=False):
        lab = f"s₁={c['s1']:g}"
        axes[0].plot(*np.abs(c["dual"]).T, ":", color=colour, lw=2)
        axes[0].plot(*np.abs(c["primal_l2"]).T, "-", color=colour, lw=1, label=lab)
        axes[1].plot(*np.abs(c["primal_l2"]).T, "-", color=colour, lw=1, label=lab)
        axes[1].plot(*np.abs(c["primal_sd"]).T, "--", color=colour, lw=2)
    axes[0].set_title("dual (dotted) vs primal, weight decay (solid)", fontsize=9)
    axes[1].set_title("primal weight decay (solid) vs SD (dashed)", fontsize=9)
    for ax in axes:
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_xlabel("|z₁|")
        ax.set_ylabel("|z₂|")
        ax.set_facecolor("#EBEBEB")
        ax.grid(ls="--", color="white")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def flow_field_figure(z1_g, z2_g, dz1_g, dz2_g, fixed_points: Mapping[str, np.ndarray], ax=None):
    """Streamlines of a flow in the (z₁, z₂) plane with labelled fixed points (notebook)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4))
    ax.streamplot(z1_g, z2_g, dz1_g, dz2_g, color="#888888", density=1.0, linewidth=0.7)
    for (name, z), colour in zip(fixed_points.items(), FIG5_COLOURS, strict=False):
        ax.plot(z[0], z[1], "o", color=colour, label=name)
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.legend(fontsize=7)
    return fig if fig is not None else ax.figure
