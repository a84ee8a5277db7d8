"""Figures say what they draw: every shaded band and reference line is named in a legend or caption, coinciding curves
stay distinguishable, zero eigenvalues stay on a log axis (plotting.cmnist, theory, moons, features; synthetic
inputs, no training)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from gs_jax.plotting import cmnist, features, moons, theory  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _legend_texts(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def _all_text(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_cmnist_learning_curves_name_the_band_and_the_75_line():
    hist = [
        {"step": s, "train_acc": np.array([0.5, 0.7]) + s / 100, "test_acc": np.array([0.3, 0.4])}
        for s in (0, 10)
    ]
    fig = cmnist.learning_curves({"erm": hist, "sd": hist}, data_name="toy")
    for ax in fig.axes:
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        texts = _legend_texts(ax)
        assert len(bands) == 2 and all(b.get_label() in texts for b in bands)  # every band in the legend
        (line75,) = [ln for ln in ax.lines if np.allclose(ln.get_ydata(), 75.0)]
        assert line75.get_label() in texts and "shape alone" in line75.get_label()


def test_theorem2_curves_that_coincide_stay_distinguishable():
    rows = [
        {
            "equation": eq,
            "delta": d,
            "s1_sq": s,
            "z2": 1.0,
            "dz2_ds1sq": 0.0,
        }  # every curve on top of every other
        for eq in ("eq10", "eq9", "sd")
        for d in (0.0, 0.5)
        for s in np.linspace(2, 60, 40)
    ]
    fig = theory.starvation_figure(rows)
    ax = fig.axes[1]
    curves = [ln for ln in ax.lines if len(ln.get_xdata()) == 40]
    # each equation a distinct width, marker and line style; each δ its own marker positions
    styles = {(ln.get_linewidth(), ln.get_marker(), ln.get_linestyle()) for ln in curves}
    assert len(curves) == 6 and len(styles) == 3
    by_eq = {}
    for ln in curves:
        by_eq.setdefault(ln.get_marker(), []).append(ln.get_markevery())
    assert all(len(set(map(str, marks))) == 2 for marks in by_eq.values())
    (zero,) = [ln for ln in ax.lines if len(ln.get_xdata()) == 2]  # axhline
    assert zero.get_label() in _legend_texts(ax)


def test_moons_heatmaps_have_a_caption_for_their_lines():
    axis = np.linspace(-1, 1, 9)
    heat = {"sep": np.outer(axis, np.ones(9))}
    data0 = {"sep": (np.zeros((4, 2)), np.array([0, 1, 0, 1]))}
    for fig in (moons.fig1(axis, heat, data0, curves={}), moons.appendix_b_grid(axis, heat, data0)):
        text = _all_text(fig)
        assert "decision boundary" in text and "dashed lines: the axes" in text


def test_feature_figures_name_markers_colours_and_zero_eigenvalues():
    rng = np.random.default_rng(0)
    fig = features.feature_directions(
        rng.normal(size=(10, 2)), rng.normal(size=(10, 4)), np.repeat([1, -1], 5)
    )
    assert {"label +1", "label −1"} <= set(_legend_texts(fig.axes[0]))
    assert len(fig.axes) == 8  # four panels, four colour bars
    fig = features.spectra({"K": np.array([3.0, 1.0, 0.0, 0.0])})
    (line,) = fig.axes[0].lines
    assert np.all(np.isfinite(np.log(line.get_ydata())))  # zeros drawn at the floor, not lost
    assert "2 values < 1e-16 drawn at 1e-16" in _legend_texts(fig.axes[0])[0]
