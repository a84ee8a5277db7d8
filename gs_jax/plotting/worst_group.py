"""Figures of the worst-group experiment: per-group test accuracy over training, per-group bars of every row under
every selection rule (the paper's CelebA numbers in their own panel), ERM against the shortcut's strength ρ, and
the monitor's responses to the digit and item features."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

NAMES = {"erm": "ERM", "sd": "SD (spw3)", "sd_paper": "SD (paper form)", "logit_adjust": "logit adj.",
         "erm_threshold": "ERM + threshold", "group_dro": "Group DRO", "group_dro_uniform": "Group DRO (uniform)",
         "jtt": "JTT", "dfr": "DFR", "dfr_l2": "DFR (L2)"}  # fmt: skip
GROUP_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")
ZERO = 0.8  # height (percentage points) of the stub that keeps a bar of 0 visible


def _name(m: str) -> str:
    return NAMES.get(m, m)


def group_curves(curves: dict[str, dict[str, np.ndarray]], group_names, data: str = ""):
    """One panel per row: test accuracy of each group (mean over seeds, band = ± 1 std over seeds) after every
    epoch, with the worst group (mean over seeds) dashed."""
    methods = list(curves)
    cols = min(5, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), sharey=True, squeeze=False)
    for ax, m in zip(axes.flat, methods, strict=False):
        c = curves[m]
        epochs = np.arange(1, c["test_avg"].shape[0] + 1)
        for k, name in enumerate(group_names):
            acc = 100 * np.asarray(c[f"test_g{k}"])
            mu, sd = np.nanmean(acc, 1), np.nanstd(acc, 1)
            ax.plot(epochs, mu, marker="o", ms=2.5, color=GROUP_COLORS[k % 4], label=f"g{k}: {name}")
            ax.fill_between(epochs, mu - sd, mu + sd, color=GROUP_COLORS[k % 4], alpha=0.15,
                            label="± 1 std over seeds" if k == 0 else None)  # fmt: skip
        ax.plot(epochs, 100 * np.nanmean(c["test_worst"], 1), "k--", lw=1, label="worst group (mean)")
        ax.set_title(_name(m))
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(methods) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"test accuracy (%){' — ' + data if data else ''}")
    axes.flat[0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def _bar(ax, x, h, width, color, label=None, err=None, hatch=None):
    """A bar that stays visible at 0: an outlined stub of height ZERO where the value rounds to 0."""
    shown = np.where(np.asarray(h) < ZERO, ZERO, h)
    ax.bar(x, shown, width, yerr=err, capsize=2, color=color, edgecolor="black", linewidth=0.5, label=label,
           hatch=hatch, error_kw={"lw": 0.8})  # fmt: skip
    for xi, hi in zip(np.atleast_1d(x), np.atleast_1d(h), strict=True):
        if hi < ZERO:
            ax.text(xi, ZERO + 1, "0", ha="center", va="bottom", fontsize=6)


def bars(by_rule: dict[str, dict[str, dict[str, Any]]], group_names, paper: dict[str, tuple], data: str = ""):
    """Per rule (one panel each): every row's test accuracy per group (mean over seeds, error bar ± 1 std over
    seeds), the worst group marked by a black bar outline and its mean as a black tick; a last panel with the
    paper's CelebA Table 3 average and worst-group accuracy (another data set: not on this axis)."""
    rules = list(by_rule)
    fig, axes = plt.subplots(len(rules) + 1, 1, figsize=(max(8.0, 1.0 * len(by_rule[rules[0]]) + 2), 2.6 * len(rules) + 2.2),
                             squeeze=False, gridspec_kw={"height_ratios": [3] * len(rules) + [2]})  # fmt: skip
    G = len(group_names)
    w = 0.8 / (G + 1)
    for ax, rule in zip(axes[:-1, 0], rules, strict=True):
        methods = by_rule[rule]
        names = list(methods)
        x = np.arange(len(names))
        for k in range(G):
            mu = [100 * methods[m]["per_group"][k] for m in names]
            sd = [100 * methods[m]["per_group_std"][k] for m in names]
            _bar(ax, x + (k - G / 2) * w, mu, w, GROUP_COLORS[k % 4], f"g{k}: {group_names[k]}", sd)
        avg = [100 * methods[m]["avg_acc_mean"] for m in names]
        _bar(
            ax,
            x + (G / 2) * w,
            avg,
            w,
            "lightgray",
            "average",
            [100 * methods[m]["avg_acc_std"] for m in names],
        )
        worst = [100 * methods[m]["worst_group_acc_mean"] for m in names]
        ax.hlines(worst, x - 0.45, x + 0.45, colors="black", lw=1.2, label="worst group (mean over seeds)")
        ax.set_xticks(x, [_name(m) for m in names], fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{data}: rows chosen by {rule} (error bars: ± 1 std over seeds)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=len(labels), loc="upper center", frameon=False)
    ax = axes[-1, 0]
    names = list(paper)
    x = np.arange(len(names))
    _bar(
        ax,
        x - 0.1,
        [paper[m][0] for m in names],
        0.2,
        "lightgray",
        "average (± std)",
        [paper[m][1] for m in names],
    )
    _bar(ax, x + 0.1, [paper[m][2] for m in names], 0.2, "white", "worst group (± std)",
         [paper[m][3] for m in names], hatch="//")  # fmt: skip
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xticks(x, [_name(m).split(" (")[0] for m in names], fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        "the paper's Table 3 — CelebA, ResNet-50 (another data set; for orientation only)", fontsize=9
    )
    ax.legend(fontsize=6, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def rho_calibration(rows: list[dict[str, Any]], regime=(40.0, 55.0), celeba_erm: float = 40.35):
    """ERM's test accuracy per group against ρ (the symmetric dominoes), worst group in black (error bars ± 1 std
    over seeds where measured), the paper's regime as a labelled band, the CelebA ERM worst group as a labelled
    line; the celeba-layout dominoes as separate markers at the right."""
    sym = [r for r in rows if r["layout"] == "symmetric"]
    other = [r for r in rows if r["layout"] != "symmetric"]
    x = np.arange(len(sym))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.axhspan(
        *regime,
        color="gold",
        alpha=0.25,
        label=f"paper's regime: ERM worst group {regime[0]:g}–{regime[1]:g} %",
    )
    ax.axhline(
        celeba_erm, color="gray", ls=":", lw=1, label=f"paper, CelebA ERM worst group ({celeba_erm} %)"
    )
    G = len(sym[0]["per_group"]) if sym else 4
    for k in range(G):
        ax.plot(
            x,
            [100 * r["per_group"][k] for r in sym],
            marker="o",
            ms=3,
            color=GROUP_COLORS[k % 4],
            label=f"g{k}",
        )
    std = [100 * r.get("erm_worst_group_acc_std", 0.0) for r in sym]
    ax.errorbar(x, [100 * r["erm_worst_group_acc_mean"] for r in sym], yerr=std, color="black", marker="s", ms=4,
                capsize=3, label="worst group (mean ± 1 std over seeds)")  # fmt: skip
    ticks = [f"{r['rho']:g}" for r in sym]
    for j, r in enumerate(other):
        xo = len(sym) + j + 0.5
        for k in range(G):
            ax.plot(xo, 100 * r["per_group"][k], marker="D", ms=4, color=GROUP_COLORS[k % 4])
        ax.errorbar(xo, 100 * r["erm_worst_group_acc_mean"], yerr=100 * r.get("erm_worst_group_acc_std", 0.0),
                    color="black", marker="D", ms=5, capsize=3)  # fmt: skip
        ticks.append(f"{r['layout']}\nlayout")
    ax.set_xticks([*x, *(len(sym) + j + 0.5 for j in range(len(other)))], ticks, fontsize=7)
    ax.set_xlabel("ρ = P(digit = label) in training (symmetric dominoes)")
    ax.set_ylabel("ERM test accuracy (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def responses(resp: dict[str, Any]):
    """Each row's response to the digit feature and to the item feature (mean over seeds, error bar ± 1 std)."""
    rows = resp["rows"]
    names = list(rows)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.0 * len(names) + 3, 3.2))
    for off, key, color, label in ((-0.2, "digit", "tab:purple", "digit feature (shortcut)"),
                                   (0.2, "item", "tab:olive", "item feature (label)")):  # fmt: skip
        ax.bar(x + off, [rows[m][f"z_{key}_mean"] for m in names], 0.4, yerr=[rows[m][f"z_{key}_std"] for m in names],
               capsize=3, color=color, edgecolor="black", linewidth=0.5, label=label)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [_name(m) for m in names], fontsize=7)
    ax.set_ylabel("response z = uᵀY(ŷ − ŷ₀) (end of training)")
    ax.set_title(
        f"the monitor's responses on {resp['probe']['n']} probe images (± 1 std over seeds)", fontsize=9
    )
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
