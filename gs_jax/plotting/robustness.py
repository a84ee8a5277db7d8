"""Figures of the robustness experiment: the margin CDF (Fig. 2) and PGD accuracy against ε (Table 1's column)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"erm": "tab:red", "sd": "tab:blue"}


def margin_cdf(margins: dict[str, np.ndarray], data: str = ""):
    """Fig. 2: fraction of test points misclassified at a perturbation of L∞ size ≤ ε (the empirical CDF of the
    minimal perturbation), ERM vs SD; the medians dashed. Points no ε ≤ eps_max flips stay off the curve."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, m in margins.items():
        m = np.sort(np.asarray(m, np.float64))
        n = m.size
        finite = m[np.isfinite(m)]
        ax.step(np.concatenate([[0.0], finite]), np.arange(finite.size + 1) / n, where="post",
                color=COLORS.get(name), label=f"{name.upper()} (median {np.median(m):.3f})")  # fmt: skip
        ax.axvline(np.median(m), color=COLORS.get(name), ls="--", lw=0.8)
    ax.set_xlabel("L∞ perturbation (input scale [-1, 1])")
    ax.set_ylabel("fraction of test points misclassified")
    ax.set_ylim(0, 1)
    ax.set_xlim(left=0)
    ax.set_title(f"Margin CDF ({data})" if data else "Margin CDF")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def pgd_curves(methods: dict[str, dict[str, Any]], data: str = ""):
    """PGD test accuracy (mean ± std over restarts) against ε in [0, 1] pixel units, ERM vs SD."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, m in methods.items():
        eps = np.asarray(m["curve_eps"]) * 255
        mean, std = np.asarray(m["curve_acc_mean"]) * 100, np.asarray(m["curve_acc_std"]) * 100
        ax.errorbar(eps, mean, yerr=std, marker="o", ms=3, capsize=2, color=COLORS.get(name),
                    label=f"{name.upper()} (λ={m['lam']:g})" if "lam" in m else m.get("setting", name))  # fmt: skip
    ax.axvline(methods["erm"]["eps"] * 255, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("ε (L∞, × 1/255 pixel units)")
    ax.set_ylabel("PGD test accuracy (%)")
    ax.set_title(f"PGD accuracy vs ε ({data})" if data else "PGD accuracy vs ε")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
