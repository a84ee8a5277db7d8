"""Figures of the worst-group experiment: per-group test accuracy over training, and average vs worst-group bars."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

NAMES = {"erm": "ERM", "sd": "SD", "group_dro": "Group DRO", "jtt": "JTT", "dfr": "DFR"}


def group_curves(curves: dict[str, dict[str, np.ndarray]], group_names, data: str = ""):
    """One panel per method: test accuracy of each group (mean over seeds, band = ± std) after every epoch, with
    the worst group dashed."""
    methods = list(curves)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.4 * len(methods), 3.2), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], methods, strict=True):
        c = curves[m]
        epochs = np.arange(1, c["test_avg"].shape[0] + 1)
        for k, name in enumerate(group_names):
            acc = 100 * np.asarray(c[f"test_g{k}"])
            mu, sd = np.nanmean(acc, 1), np.nanstd(acc, 1)
            ax.plot(epochs, mu, marker="o", ms=2.5, label=f"g{k}: {name}")
            ax.fill_between(epochs, mu - sd, mu + sd, alpha=0.15)
        ax.plot(epochs, 100 * np.nanmean(c["test_worst"], 1), "k--", lw=1, label="worst group")
        ax.set_title(NAMES.get(m, m))
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test accuracy (%){' — ' + data if data else ''}")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def bars(methods: dict[str, dict[str, Any]], paper: dict[str, tuple], data: str = ""):
    """Average and worst-group test accuracy per method (mean ± std over seeds); the paper's CelebA Table 3 values
    as open markers where it reports the method."""
    names = list(methods)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 3.6))
    for off, key, label, color in ((-0.2, "avg_acc", "average", "tab:gray"), (0.2, "worst_group_acc",
                                                                              "worst group", "tab:red")):  # fmt: skip
        mu = [100 * methods[m][f"{key}_mean"] for m in names]
        sd = [100 * methods[m][f"{key}_std"] for m in names]
        ax.bar(x + off, mu, 0.4, yerr=sd, capsize=3, color=color, alpha=0.8, label=f"{label} ({data})")
    for i, m in enumerate(names):
        if m in paper:
            ax.plot([i - 0.2, i + 0.2], [paper[m][0], paper[m][2]], "ko", mfc="none", ms=6,
                    label="paper (CelebA)" if i == 0 else None)  # fmt: skip
    ax.set_xticks(x, [NAMES.get(m, m) for m in names])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    return fig
