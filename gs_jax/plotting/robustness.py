"""Figures of the robustness experiment: the margin CDF (Fig. 2, cumulative counts in 1e-3 bins as the authors
plot it) and PGD accuracy against ε (Table 1's column), with every line and band named in the legend and the
paper's CIFAR numbers on a panel of their own."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"erm": "tab:red", "sd": "tab:blue", "sd_val": "tab:cyan"}
BINS = np.arange(0.0, 1.0, 1e-3)  # Figure_2/main.py: np.histogram(..., bins=np.arange(0, 1.0, 1e-3))


def _color(name: str, i: int) -> str:
    return COLORS.get(name, f"C{i + 2}")


def cumulative_counts(margins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left bin edges, cumulative counts) of the authors' plot: histogram in 1e-3 bins on [0, 1), then cumsum.
    Margins of 0 (misclassified) fall in the first bin; failed searches (inf) and margins ≥ 0.999 in none."""
    values, base = np.histogram(np.asarray(margins, np.float64), bins=BINS)
    return base[:-1], np.cumsum(values)


def margin_cdf(
    margins: dict[str, dict[str, np.ndarray]], data: str = "", protocol: dict[str, Any] | None = None
):
    """Fig. 2: per split (test, train) the number of points misclassified under an L∞ perturbation below ε, ERM
    vs SD, one line per seed (the first seed bold); dotted verticals at the medians of all seeds' points, a dashed
    horizontal at the first seed's total count (the authors' ``axhline``: points flipped by some ε < 1)."""
    splits = list(margins)
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        by_method: dict[str, list[tuple[str, np.ndarray]]] = {}
        for key, m in margins[split].items():
            by_method.setdefault(key.split("_seed")[0], []).append((key, np.asarray(m)))
        for i, (name, runs) in enumerate(by_method.items()):
            color = _color(name, i)
            pooled = np.concatenate([m for _, m in runs])
            med = float(np.median(pooled))
            failed = int(np.sum(~np.isfinite(pooled)))
            for j, (key, m) in enumerate(runs):
                base, cum = cumulative_counts(m)
                label = (f"{name.upper()}: {len(runs)} seed{'s' * (len(runs) > 1)} × {m.size} points "
                         f"(bold: {key.split('_seed')[1] and 'seed ' + key.split('_seed')[1]}); failed searches {failed}"
                         if j == 0 else None)  # fmt: skip
                ax.plot(
                    base,
                    cum,
                    color=color,
                    lw=1.8 if j == 0 else 0.7,
                    alpha=1.0 if j == 0 else 0.6,
                    label=label,
                )
                if j == 0:
                    ax.axhline(cum[-1], color=color, ls="--", lw=0.8,
                               label=f"{name.upper()} seed {key.split('_seed')[1]}: {cum[-1]} points flipped below ε = 1")  # fmt: skip
            ax.axvline(
                med, color=color, ls=":", lw=1.0, label=f"{name.upper()} median margin {med:.4f} (all seeds)"
            )
        ax.set_xlabel("ℓ∞ norm of the disturbance (input scale [-1, 1])")
        ax.set_ylabel("points misclassified (count)")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(f"{split} points")
        ax.legend(loc="lower right", fontsize=6.5)
    p = protocol or {}
    fig.suptitle(f"Margin CDF (Fig. 2 analogue), {data}: batch {p.get('batch_size', '?')} × {p.get('epochs', '?')} "
                 f"epochs, SD c = {p.get('sd_coef', '?')}; foolbox-2 PGD search", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def pgd_curves(methods: dict[str, dict[str, Any]], data: str = "", paper: dict[str, tuple] | None = None):
    """PGD test accuracy against ε (mean over seeds, error bars ± 1 std) for each table row; the authors' attack at
    ε = 5/255 as open markers; reference verticals at the code's ε = 5/255 and the text's 0.05. Right panel: the
    paper's own numbers (another data set, CIFAR-10), only when given."""
    ncols = 2 if paper else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.4 * ncols, 3.8), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1.3][:ncols]})  # fmt: skip
    ax = axes[0][0]
    for i, (name, m) in enumerate(methods.items()):
        color = _color(name, i)
        eps = np.asarray(m["curve_eps"]) * 255
        mean, std = np.asarray(m["curve_acc_mean"]) * 100, np.asarray(m["curve_acc_std"]) * 100
        label = f"{name.upper()} ({m['setting']}), mean ± 1 std over {m['restarts']} seeds"
        ax.errorbar(eps, mean, yerr=std, marker="o", ms=3, capsize=2, color=color, label=label)
        if "pgd_acc_authors_attack_mean" in m:
            ax.errorbar([m["eps"] * 255], [m["pgd_acc_authors_attack_mean"] * 100],
                        yerr=[m["pgd_acc_authors_attack_std"] * 100], marker="s", mfc="none", ms=6, capsize=2,
                        color=color, ls="none", label=f"{name.upper()}: the authors' attack (de-normalised, float32 CE)")  # fmt: skip
    ax.axvline(
        methods["erm"]["eps"] * 255, color="gray", ls=":", lw=0.8, label="ε = 5/255 (the authors' code)"
    )
    ax.axvline(
        methods["erm"]["eps_text"] * 255, color="gray", ls="--", lw=0.8, label="ε = 0.05 (the paper's text)"
    )
    ax.set_xlabel("ε (L∞, × 1/255 of the pixel range)")
    ax.set_ylabel("PGD test accuracy (%)")
    ax.set_title(f"Ours: {data}" if data else "Ours")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5)
    if paper:
        pax = axes[0][1]
        names = list(paper)
        pax.bar(
            np.arange(len(names)),
            [paper[n][2] for n in names],
            color=[_color(n, i) for i, n in enumerate(names)],
        )
        for i, n in enumerate(names):
            pax.text(i, paper[n][2] + 1, f"{paper[n][2]:.1f}", ha="center", fontsize=8)
        pax.set_xticks(np.arange(len(names)), [n.upper() for n in names])
        pax.set_ylim(0, 100)
        same = data == "cifar10"
        pax.set_title("Paper, CIFAR-10 (VGG-16):\n" + ("the same data set" if same else "another data set, not comparable"),
                      fontsize=8)  # fmt: skip
        pax.set_ylabel("PGD ε = 5/255 test accuracy (%)")
    fig.tight_layout()
    return fig
