"""Figures of the starvation experiment: responses to the colour and shape features along training (ERM vs SD),
Theorem 2 on the network along the natural knob (measured vs predicted shape response against the colour feature's
strength), and the controlled study (one singular value moved, Eq. 5 and Eq. 17, linearised and real network)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"erm": "tab:red", "sd": "tab:blue"}
# distinguishable when two methods coincide (the small variant stops before SD's anneal step): ERM solid with
# circles, SD dashed with squares, drawn last and thinner so that ERM shows beneath it
STYLES = {
    "erm": dict(ls="-", marker="o", lw=2.2, zorder=2),
    "sd": dict(ls="--", marker="s", lw=1.3, zorder=3),
}


def responses(methods: dict[str, dict[str, Any]]):
    """z_colour(t) and z_shape(t) = UᵀY(ŷ(t) − ŷ₀) on the identified features, mean ± std over restarts (each
    method's band labelled; distinct line styles and markers, so coinciding curves stay visible)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((axes[0], "z_colour", "colour feature"), (axes[1], "z_shape", "shape feature")):
        for name, m in methods.items():
            z = np.asarray(m[key])
            mu, sd = z.mean(0), z.std(0)
            style = STYLES.get(name, {})
            every = max(1, len(m["steps"]) // 12)
            ax.plot(m["steps"], mu, color=COLORS.get(name), label=f"{name.upper()} (mean of {z.shape[0]})",
                    markevery=every, markersize=4, **style)  # fmt: skip
            ax.fill_between(m["steps"], mu - sd, mu + sd, color=COLORS.get(name), alpha=0.15,
                            hatch="//" if name == "sd" else None, label=f"{name.upper()} ± 1 std")  # fmt: skip
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"response to the {title}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("z(t) = uᵀY(ŷ(t) − ŷ₀)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def sweep(rows: list[dict[str, Any]], lam: float):
    """The natural knob (colour intensity; U rotates with it). Left: z_shape at the end of training against
    s_colour² (measured, mean ± std over restarts) beside Eq. 9's fixed point with the measured U, S², λ. Right:
    measured against predicted, every restart."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    s2 = np.array([r["s_colour_sq"] for r in rows])
    for key, label, style in (("z_shape_measured", "trained network", "o-"),
                              ("z_shape_predicted", f"Eq. 9 fixed point (λ = {lam:g})", "s--")):  # fmt: skip
        mu = np.array([r[key] for r in rows])
        sd = np.array([r[f"{key}_std"] for r in rows])
        axes[0].errorbar(s2, mu, yerr=sd, fmt=style, capsize=3, label=label)
    axes[0].set_xlabel("s²_colour (strength of the colour feature at initialisation)")
    axes[0].set_ylabel("z_shape at the end")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    meas = np.concatenate([r["z_shape_measured_per_restart"] for r in rows])
    pred = np.concatenate([r["z_shape_predicted_per_restart"] for r in rows])
    axes[1].plot(pred, meas, "o", alpha=0.7)
    lo, hi = min(pred.min(), meas.min()), max(pred.max(), meas.max())
    axes[1].plot([lo, hi], [lo, hi], "k--", lw=0.8, label="measured = predicted")
    axes[1].set_xlabel("predicted z_shape (Eq. 9)")
    axes[1].set_ylabel("measured z_shape")
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3)
    fig.tight_layout()
    return fig


TITLES = {"linear_eq5": "linearised network, Eq. 5 (ridge λ)", "real_eq5": "real network, Eq. 5 (ridge λ)",
          "linear_eq17": "linearised network, Eq. 17 (SD μ)", "real_eq17": "real network, Eq. 17 (SD μ)"}  # fmt: skip


def controlled(block: dict[str, Any]):
    """The controlled Theorem 2 study, four panels (linearised / real × Eq. 5 / Eq. 17): measured z_shape against b
    (the colour feature's singular value scaled by b, every other feature fixed), mean ± std over seeds with each
    seed's points, and the prediction (Eq. 9 or Eq. 18 at the stored U and S_b, mean over seeds) as a line."""
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 7), sharex=True)
    for ax, case in zip(axes.T.ravel(), ("linear_eq5", "real_eq5", "linear_eq17", "real_eq17"), strict=True):
        c = block["cases"][case]
        b = np.asarray(c["b"])
        per_seed = np.asarray(c["z_shape_measured_per_seed"])  # (S, B)
        pred = np.asarray(c["z_shape_predicted_per_seed"])
        ax.plot(
            b,
            pred.mean(0),
            "k-",
            lw=1.5,
            label=f"prediction ({'Eq. 9' if case.endswith('eq5') else 'Eq. 18'})",
        )
        if pred.shape[0] > 1:
            ax.fill_between(b, pred.min(0), pred.max(0), color="k", alpha=0.1, label="prediction, seed range")
        ax.errorbar(b, per_seed.mean(0), yerr=per_seed.std(0), fmt="o", color="tab:green", capsize=3,
                    label=f"measured, mean ± std ({per_seed.shape[0]} seeds)")  # fmt: skip
        for row in per_seed:
            ax.plot(b, row, ".", color="tab:green", alpha=0.4, ms=4)
        slope, sd = c["slope"], c["slope_std"]
        ax.set_title(f"{TITLES[case]}\nslope dz/ds²_c = {slope:.2e} ± {sd:.1e} (pred. {c['slope_predicted']:.2e})",
                     fontsize=8)  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("b  (s_colour → b·s_colour)")
    for ax in axes[:, 0]:
        ax.set_ylabel("z_shape at convergence")
    fig.tight_layout()
    return fig
