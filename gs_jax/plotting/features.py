"""Figures for the NTK features of Definition 1: spectra, feature directions in input space, width convergence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

FLOOR = 1e-16  # the log axis' floor for eigenvalues that are 0 to round-off


def spectra(spectra_by_label: Mapping[str, np.ndarray], *, top: int | None = None, title: str = "") -> Figure:
    """NTK eigenvalues s² (descending, log scale) for each labelled spectrum, e.g. empirical vs infinite width."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, s2 in spectra_by_label.items():
        s2 = np.sort(np.asarray(s2))[::-1][:top]
        if np.any(s2 < FLOOR):  # zero (or round-off negative) eigenvalues stay visible, and say so
            label = f"{label} ({int(np.sum(s2 < FLOOR))} values < {FLOOR:g} drawn at {FLOOR:g})"
        ax.semilogy(np.arange(1, len(s2) + 1), np.clip(s2, FLOOR, None), marker=".", ms=3, lw=1, label=label)
    ax.set_xlabel("index j")
    ax.set_ylabel("eigenvalue $s_j^2$")
    if title:
        ax.set_title(title)
    ax.grid(True, ls="--", alpha=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def feature_directions(
    x_n2: np.ndarray, U: np.ndarray, y: np.ndarray, *, indices: Sequence[int] = (0, 1, 2, 3)
) -> Figure:
    """Each feature u_j drawn in the 2-D input space: point i coloured by Y u_j (its NTK eigenvector entry).

    Circles are label +1, triangles label −1 (the legend); the colour scale is symmetric around 0 (a colour bar
    per panel).
    """
    x_n2, U, y = np.asarray(x_n2), np.asarray(U), np.asarray(y)
    fig, axes = plt.subplots(1, len(indices), figsize=(2.9 * len(indices), 2.8), squeeze=False)
    for ax, j in zip(axes[0], indices, strict=True):
        c = y * U[:, j]  # eigenvector of K: u_K = Y u
        lim = np.abs(c).max() or 1.0
        for lab, marker in ((1, "o"), (-1, "^")):
            sel = y == lab
            points = ax.scatter(
                x_n2[sel, 0], x_n2[sel, 1], c=c[sel], cmap="RdBu", vmin=-lim, vmax=lim, s=12, marker=marker
            )
        fig.colorbar(points, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
        ax.set_title(f"feature {j}: entries of Y u_{j}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    markers = [
        Line2D([], [], ls="", marker=m, color="grey", label=f"label {lab}")
        for lab, m in (("+1", "o"), ("−1", "^"))
    ]
    axes[0, 0].legend(handles=markers, fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def width_convergence(
    widths: Sequence[int], errors: Sequence[float], *, reference_slope: float = -0.5
) -> Figure:
    """Relative error ‖K_emp − Θ‖/‖Θ‖ against width (log-log) with a w^slope guide (Monte-Carlo rate −1/2)."""
    w, e = np.asarray(widths, float), np.asarray(errors, float)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.loglog(w, e, marker="o", label="empirical vs infinite width")
    ax.loglog(
        w, e[0] * (w / w[0]) ** reference_slope, ls="--", c="grey", label=f"$w^{{{reference_slope:g}}}$"
    )
    ax.set_xlabel("width w")
    ax.set_ylabel("relative Frobenius error")
    ax.grid(True, which="both", ls="--", alpha=0.4)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
