"""Colored MNIST figures: Fig. 3 (accuracy and entropy on the four diagnostic environments) and learning curves."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

ROWS = ("digit", "blank")
COLS = ("grayscale", "colored")
GRID = {
    "grayscale_digits": (0, 0),
    "colored_digits": (0, 1),
    "grayscale_blank": (1, 0),
    "colored_blank": (1, 1),
}


def four_env_figure(four: dict[str, dict[str, dict[str, float]]], data_name: str = "") -> plt.Figure:
    """Fig. 3: per method, a 2×2 accuracy heatmap (top, RdBu, 0-100 %) and entropy heatmap (bottom, YlGn_r, 0-ln 2).

    ``four[method][env] = {"acc": fraction, "entropy": nats}`` for env in grayscale/colored × digits/blank.
    """
    methods = list(four)
    fig, axes = plt.subplots(2, len(methods), figsize=(2.6 * len(methods) + 0.6, 5.2), squeeze=False)
    for j, name in enumerate(methods):
        acc, ent = np.full((2, 2), np.nan), np.full((2, 2), np.nan)
        for env, (r, c) in GRID.items():
            if env in four[name]:
                acc[r, c] = 100 * four[name][env]["acc"]
                ent[r, c] = four[name][env]["entropy"]
        for i, (vals, cmap, vmax, fmt) in enumerate(
            ((acc, "RdBu", 100.0, "{:.1f} %"), (ent, "YlGn_r", 0.69, "{:.2f}"))
        ):
            ax = axes[i, j]
            im = ax.imshow(vals, cmap=cmap, vmin=0.0, vmax=vmax)
            for (r, c), v in np.ndenumerate(vals):
                ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=9)
            ax.set_xticks([0, 1], COLS)
            ax.set_yticks([0, 1], ROWS if j == 0 else ["", ""])
            ax.xaxis.tick_top()
            if i == 0:
                ax.set_title(name.upper(), pad=22)
            if j == len(methods) - 1:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="accuracy %" if i == 0 else "entropy")
    fig.suptitle(f"Colored MNIST four test environments (last restart; data: {data_name})", fontsize=10)
    fig.tight_layout()
    return fig


#: every Colored MNIST environment flips 25 % of the labels, so the shape (digit) alone is right 75 % of the time
SHAPE_ONLY_ACC = 75.0


def learning_curves(histories: dict[str, list[dict[str, Any]]], data_name: str = "") -> plt.Figure:
    """Train and test accuracy vs step per method: the mean over restarts, a band from the restarts' minimum to
    their maximum, and a dotted line at 75 %, what the shape alone achieves under the 25 % label noise; each named
    in the legend of both panels."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for k, (ax, key) in enumerate(zip(axes, ("train_acc", "test_acc"), strict=True)):
        for name, hist in histories.items():
            steps = [h["step"] for h in hist]
            vals = np.stack([np.asarray(h[key]) for h in hist])  # (evals, R)
            (line,) = ax.plot(steps, 100 * vals.mean(1), label=f"{name} (mean of {vals.shape[1]} restarts)")
            ax.fill_between(
                steps,
                100 * vals.min(1),
                100 * vals.max(1),
                color=line.get_color(),
                alpha=0.2,
                label=f"{name} min–max",
            )
        ax.axhline(SHAPE_ONLY_ACC, color="grey", lw=0.8, ls=":", label="75 %: shape alone (25 % label noise)")
        ax.set_xlabel("step")
        ax.set_title(("train" if k == 0 else "test (e = 0.9)") + f" accuracy — {data_name}", fontsize=10)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy %")
    fig.tight_layout()
    return fig
