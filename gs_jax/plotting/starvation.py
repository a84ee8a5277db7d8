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
    (the colour feature's singular value scaled by b, every other feature fixed). Each seed has its own features,
    so each seed is drawn in its own colour — measured points and its prediction (Eq. 9 or Eq. 18 at its stored U and
    S_b) as a line —, with the mean ± std over seeds in black beside them."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
    seeds = block["design"]["seeds"]
    colours = plt.get_cmap("tab10")
    for ax, case in zip(axes.T.ravel(), ("linear_eq5", "real_eq5", "linear_eq17", "real_eq17"), strict=True):
        if case not in block["cases"]:
            ax.set_visible(False)
            continue
        c = block["cases"][case]
        b = np.asarray(c["b"])
        meas = np.asarray(c["z_shape_measured_per_seed"])  # (S, B)
        pred = np.asarray(c["z_shape_predicted_per_seed"])
        eq = "Eq. 9" if case.endswith("eq5") else "Eq. 18"
        for i, seed in enumerate(seeds):
            ax.plot(
                b,
                pred[i],
                "-",
                color=colours(i),
                lw=1.2,
                label=f"seed {seed}: {eq}" if i == 0 else f"seed {seed}",
            )
            ax.plot(b, meas[i], "o", color=colours(i), ms=5, mfc="none")
        ax.errorbar(b * 1.015, meas.mean(0), yerr=meas.std(0), fmt="s", color="k", ms=3, capsize=2, lw=0.8,
                    label=f"measured (o), mean ± std over {len(seeds)} seeds")  # fmt: skip
        slope, sd = c["slope"], c["slope_std"]
        ax.set_title(f"{TITLES[case]}\nslope dz/ds²_c = {slope:.2e} ± {sd:.1e} (predicted {c['slope_predicted']:.2e})",
                     fontsize=8)  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5)
    for ax in axes[1]:
        ax.set_xlabel("b  (s_colour → b·s_colour; u_shape, s_shape, V fixed)")
    for ax in axes[:, 0]:
        ax.set_ylabel("z_shape at the end of training")
    fig.tight_layout()
    return fig
