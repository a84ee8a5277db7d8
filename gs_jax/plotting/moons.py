"""Two-moons figures: Fig. 1 (a)-(c) logit heatmaps, Fig. 1(d) z-curves, the Appendix B grid, linearised vs real.

Style follows the authors' scripts (SPEC §1.2, §1.4): contourf of the seed-averaged logit with 10 levels (RdBu,
alpha 0.8), 10 thin contour lines, a thick zero level (the decision boundary), the seed-0 points in '#C82506' /
'#0365C0', dashed axes at 0, no ticks. Functions return Figures and never write files.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

CLASS_COLOURS = ("#C82506", "#0365C0")  # class 0, class 1 (moon_fig_2.py)
Z_COLOURS = ("#2D7F58", "#FA7F05")  # Fig. 1(d): index 1 green, index 6 orange
CASE_STYLES = {"nonsep": ":", "sep": "--", "sep_sd": "-"}  # moon_fig_2.py line styles in (d)
#: what every heatmap panel draws besides the colours (the reference lines), for the figures' captions
HEATMAP_CAPTION = (
    "colour: seed-mean logit (red < 0 < blue); thick black line: decision boundary (logit 0); thin black lines: "
    "10 logit levels; dashed lines: the axes x₁ = 0 and x₂ = 0; points: seed-0 training data (red class 0, blue class 1)"
)


def _caption(fig: Figure, text: str = HEATMAP_CAPTION) -> None:
    """A one-line caption under the panels (room made by tight_layout's rect)."""
    fig.text(0.5, 0.01, text, ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))


def logit_heatmap(
    ax, axis_g: np.ndarray, logits_gg: np.ndarray, x_n2=None, y_n=None, title: str = ""
) -> None:
    """One panel: seed-averaged logits on the ('ij') grid ``(axis[i], axis[j])``, its zero level and the data."""
    a, b = np.meshgrid(axis_g, axis_g, indexing="ij")
    f = np.asarray(logits_gg, np.float64)
    lim = float(np.max(np.abs(f))) or 1.0
    ax.contourf(a, b, f, levels=np.linspace(-lim, lim, 11), cmap="RdBu", alpha=0.8)
    ax.contour(a, b, f, levels=10, colors="k", linewidths=0.2, alpha=0.5)
    if f.min() < 0 < f.max():
        ax.contour(a, b, f, levels=[0.0], colors="k", linewidths=2.0)
    if x_n2 is not None:
        x_n2, y_n = np.asarray(x_n2), np.asarray(y_n)
        for c in (0, 1):
            m = y_n == c
            ax.scatter(x_n2[m, 0], x_n2[m, 1], s=6, c=CLASS_COLOURS[c], edgecolors="none")
    ax.axhline(0, ls="--", c="k", lw=0.6)
    ax.axvline(0, ls="--", c="k", lw=0.6)
    ax.set_xlim(axis_g[0], axis_g[-1])
    ax.set_ylim(axis_g[0], axis_g[-1])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=9)


def z_curves(
    ax, curves: Mapping[str, Mapping[str, np.ndarray]], key: str = "authors", labels=("z₁", "z₂")
) -> None:
    """Fig. 1(d): seed-mean |z| along training, one colour per direction, one line style per case."""
    for name, d in curves.items():
        z = np.asarray(d[key]).mean(axis=0)  # (T, k), mean over seeds as the authors
        steps = np.asarray(d["steps"])
        for k in range(min(z.shape[1], len(Z_COLOURS))):
            ax.plot(
                steps + 1,
                z[:, k],
                CASE_STYLES.get(name, "-"),
                c=Z_COLOURS[k],
                lw=1.2,
                label=f"{labels[k]} {name}",
            )
    ax.set_xscale("log")
    ax.set_facecolor("#F9F9F9")
    ax.grid(True, ls="--", lw=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("|z|")
    ax.legend(fontsize=6, frameon=False)


def fig1(
    axis_g, heatmaps, data0, curves, titles: Mapping[str, str] | None = None, centred: bool = False
) -> Figure:
    """NeurIPS Fig. 1: (a)-(c) heatmaps of the cases in ``heatmaps`` and (d) z-curves, plus a panel with the
    z-curves of the directions most aligned with the labels (per seed). ``centred`` says which responses
    ``curves`` holds (raw ``UᵀYŷ``, the authors' form, or ``UᵀY(ŷ − ŷ₀)``); the (d) titles and axis label name it."""
    titles = titles or {}
    names = list(heatmaps)
    fig, axes = plt.subplots(1, len(names) + 2, figsize=(2.7 * (len(names) + 2), 3))
    for ax, name, letter in zip(axes, names, "abcdefgh", strict=False):
        logit_heatmap(ax, axis_g, heatmaps[name], *data0[name], title=f"({letter}) {titles.get(name, name)}")
    if curves:
        form = "|UᵀY(ŷ − ŷ₀)|" if centred else "|UᵀYŷ|"
        z_curves(axes[len(names)], curves, "authors", labels=("idx 1", "idx 6"))
        axes[len(names)].set_title(f"(d) {form}, NTK directions 1 and 6", fontsize=9)
        z_curves(axes[len(names) + 1], curves, "aligned", labels=("top-1 aligned", "top-2 aligned"))
        axes[len(names) + 1].set_title(f"(d') {form}, most label-aligned", fontsize=9)
        for ax in axes[len(names) :]:
            ax.set_ylabel(("centred " if centred else "raw ") + form)
    else:
        for ax in axes[len(names) :]:
            ax.set_axis_off()
    _caption(fig)
    return fig


def appendix_b_grid(
    axis_g, heatmaps, data0, titles: Mapping[str, str] | None = None, ncols: int = 5
) -> Figure:
    """The Appendix B regulariser grid: one heatmap per case (Δ = +0.1), ``ncols`` per row."""
    titles = titles or {}
    names = list(heatmaps)
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.set_axis_off()
    for ax, name in zip(axes.ravel(), names, strict=False):
        logit_heatmap(ax, axis_g, heatmaps[name], *data0[name], title=titles.get(name, name))
    _caption(fig)
    return fig


def linear_vs_real(curves, indices=(1, 6)) -> Figure:
    """Seed-mean |z| of the real (solid) and linearised (dashed) networks; one panel per (case, width).

    ``curves[(case, width)] = (steps_T, z_real_Tk, z_lin_Tk)``.
    """
    keys = list(curves)
    cases = sorted({k[0] for k in keys}, key=[k[0] for k in keys].index)
    widths = sorted({k[1] for k in keys})
    fig, axes = plt.subplots(
        len(cases), len(widths), figsize=(3 * len(widths), 2.5 * len(cases)), squeeze=False
    )
    for i, c in enumerate(cases):
        for j, w in enumerate(widths):
            ax = axes[i, j]
            if (c, w) not in curves:
                ax.set_axis_off()
                continue
            steps, zr, zl = curves[(c, w)]
            for k in range(min(zr.shape[1], len(Z_COLOURS))):
                ax.plot(steps + 1, zr[:, k], "-", c=Z_COLOURS[k], lw=1.2, label=f"real idx {indices[k]}")
                ax.plot(
                    steps + 1, zl[:, k], "--", c=Z_COLOURS[k], lw=1.2, label=f"linearised idx {indices[k]}"
                )
            ax.set_xscale("log")
            ax.set_title(f"{c}, width {w}", fontsize=9)
            ax.grid(True, ls="--", lw=0.5)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig
