"""Figures of the starvation experiment: responses to the colour and shape features along training (ERM vs SD), and
Theorem 2 on the network (measured vs predicted shape response against the colour feature's strength)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"erm": "tab:red", "sd": "tab:blue"}


def responses(methods: dict[str, dict[str, Any]]):
    """z_colour(t) and z_shape(t) = UᵀY(ŷ(t) − ŷ₀) on the identified features, mean ± std over restarts."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((axes[0], "z_colour", "colour feature"), (axes[1], "z_shape", "shape feature")):
        for name, m in methods.items():
            z = np.asarray(m[key])
            mu, sd = z.mean(0), z.std(0)
            ax.plot(m["steps"], mu, color=COLORS.get(name), label=name.upper())
            ax.fill_between(m["steps"], mu - sd, mu + sd, color=COLORS.get(name), alpha=0.2)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"response to the {title}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("z(t) = uᵀY(ŷ(t) − ŷ₀)")
    axes[1].legend()
    fig.tight_layout()
    return fig


def sweep(rows: list[dict[str, Any]], lam: float):
    """Left: z_shape at the end of training against s_colour² (measured, mean ± std over restarts) beside Eq. 9's
    fixed point with the measured U, S², λ. Right: measured against predicted, every restart."""
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
