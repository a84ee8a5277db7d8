"""Theorem 2 verified numerically (``make theorem2``): the two-feature sweep, its verdicts, the phase map.

The problem is Eq. 15's two coupled features, ``U = [[√(1−δ²), −δ], [δ, √(1−δ²)]]``, ``S = diag(s₁, s₂)``. The
maths on arrays — the exact fixed point z*, its implicit derivative dz₂*/ds₁², a 5-point finite difference and
Lemma 1 — is :func:`gs_jax.fixed_points.theorem2_points` / :func:`gs_jax.fixed_points.z2_and_slope`; this module
runs them over grids, checks every solve, turns the results into rows, verdicts and tables, and writes the run
(``results.csv``, ``phase_map.csv``, ``verdicts.txt``, ``summary.json``, the figures). Why the sign statement
holds for 0 < δ < 1/√2 and fails beyond is derived in :mod:`gs_jax.fixed_points`.
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np

from gs_jax import dynamics, precision
from gs_jax import fixed_points as fp
from gs_jax.errors import check
from gs_jax.plotting import theory as plots
from gs_jax.reporting import Column, text_table

THEOREM2_COLUMNS = (
    "equation",
    "delta",
    "lam",
    "s1_sq",
    "s2_sq",
    "alpha1",
    "alpha2",
    "z1",
    "z2",
    "dz2_ds1sq",
    "dz2_ds1sq_fd",
    "z2_lemma1",
    "dz2_ds1sq_lemma1",
    "residual",
)
PHASE_MAP_COLUMNS = ("equation", "delta", "ratio", "lam", "s2_sq", "z2", "dz2_ds1sq", "elasticity")

# The printed tables: header, its layout, and the cell template over the fields of a verdict / summary row.
VERDICT_TABLE = (
    Column("equation", "8", "{equation:8}"),
    Column("delta", ">6", "{delta:6.2f}"),
    Column("dz2*/ds1^2", ">11", "{sign:>11}"),
    Column("max dz2", ">11", "{max_dz2:11.3e}"),
    Column("min dz2", ">11", "{min_dz2:11.3e}"),
    Column("FD rel err", ">10", "{fd_max_rel_err:10.1e}"),
    Column("FD abs err", ">10", "{fd_max_abs_err:10.1e}"),
    Column("Lemma1 z2 err", ">13", "{lemma1_max_rel_err_z2:13.2e}"),
    Column("L1 sign", ">7", "{lemma1_sign:>7}"),
)
PHASE_TABLE = (
    Column("equation", "8", "{equation:8}"),
    Column("lam", ">6", "{lam:6.2g}"),
    Column("points", ">7", "{points:7d}"),
    Column("dz2<0 frac", ">10", "{starvation_fraction:10.3f}"),
    Column("fails", ">6", "{fails:6d}"),
    Column("min delta fail", ">14", "{min_delta_failing:14.3f}"),
    Column("z2<0", ">6", "{z2_negative:6d}"),
    Column("min delta z2<0", ">14", "{min_delta_z2_negative:14.3f}"),
    Column("fail&z2>0", ">9", "{fails_where_z2_positive:9d}"),
    Column("d|z2|>=0", ">8", "{abs_fails:8d}"),
)


def theorem2_sweep(equations, deltas, s1_sq, s2_sq, lam, fd_rel=1e-3) -> list[dict]:
    """Rows of ``THEOREM2_COLUMNS`` for every (equation, δ, s₁²); checks convergence of every solve."""
    s1_sq = np.asarray(s1_sq, dtype=np.float64)
    rows = []
    for equation in equations:
        check(
            equation in dynamics.DUAL_EQUATIONS, f"unknown equation {equation!r}; choose from eq9, eq10, sd"
        )
        d = np.repeat(np.asarray(deltas, np.float64), s1_sq.size)
        s1 = np.tile(s1_sq, len(deltas))
        out = fp.theorem2_points(equation, d, s1, np.full_like(s1, s2_sq), np.full_like(s1, lam), fd_rel)
        out = {k: np.asarray(v) for k, v in out.items()}
        fp.check_converged(out["residual"], f"theorem2 {equation}")
        for name in ("z", "dz2", "dz2_fd"):
            check(np.isfinite(out[name]).all(), f"theorem2 {equation}: non-finite {name}; check the config")
        for i in range(s1.size):
            rows.append(
                dict(
                    equation=equation,
                    delta=float(d[i]),
                    lam=float(lam),
                    s1_sq=float(s1[i]),
                    s2_sq=float(s2_sq),
                    alpha1=float(out["alpha"][i, 0]),
                    alpha2=float(out["alpha"][i, 1]),
                    z1=float(out["z"][i, 0]),
                    z2=float(out["z"][i, 1]),
                    dz2_ds1sq=float(out["dz2"][i]),
                    dz2_ds1sq_fd=float(out["dz2_fd"][i]),
                    # Lemma 1 is a statement about Eq. 10's fixed point; empty elsewhere.
                    z2_lemma1=float(out["z2_lemma1"][i]) if equation == "eq10" else None,
                    dz2_ds1sq_lemma1=float(out["dz2_lemma1"][i]) if equation == "eq10" else None,
                    residual=float(out["residual"][i]),
                )
            )
    return rows


def _sign_word(values, atol):
    if np.all(np.abs(values) <= atol):
        return "= 0"
    if np.all(values < 0):
        return "< 0"
    if np.all(values > 0):
        return "> 0"
    return "mixed"


def theorem2_verdicts(rows, atol=1e-12) -> list[dict]:
    """One verdict per (equation, δ) over s₁² > s₂²: sign of dz₂*/ds₁², its largest value, FD and Lemma 1 checks."""
    verdicts = []
    keys = sorted({(r["equation"], r["delta"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for equation, delta in keys:
        sel = [
            r for r in rows if r["equation"] == equation and r["delta"] == delta and r["s1_sq"] > r["s2_sq"]
        ]
        dz = np.array([r["dz2_ds1sq"] for r in sel])
        fd = np.array([r["dz2_ds1sq_fd"] for r in sel])
        # Relative error where the derivative is not zero; where it is (δ = 0, SD) the FD is rounding noise,
        # reported separately as an absolute error.
        nonzero = np.abs(dz) > 1e-9
        fd_err = float(np.max(np.abs(dz - fd)[nonzero] / np.abs(dz[nonzero]))) if nonzero.any() else None
        v = dict(
            equation=equation,
            delta=delta,
            sign=_sign_word(dz, atol),
            max_dz2=float(dz.max()),
            min_dz2=float(dz.min()),
            fd_max_rel_err=fd_err,
            fd_max_abs_err=float(np.max(np.abs(dz - fd))),
            z2_range=(float(min(r["z2"] for r in sel)), float(max(r["z2"] for r in sel))),
        )
        if equation == "eq10":
            z2 = np.array([r["z2"] for r in sel])
            zl = np.array([r["z2_lemma1"] for r in sel])
            dl = np.array([r["dz2_ds1sq_lemma1"] for r in sel])
            v["lemma1_max_rel_err_z2"] = float(np.max(np.abs(z2 - zl) / np.maximum(np.abs(z2), 1e-12)))
            v["lemma1_sign_agrees"] = bool(
                np.all(
                    np.sign(np.where(np.abs(dl) <= atol, 0, dl))
                    == np.sign(np.where(np.abs(dz) <= atol, 0, dz))
                )
            )
        verdicts.append(v)
    return verdicts


def format_verdicts(verdicts) -> str:
    """The printed verdict table (plain text, fixed width); ``-`` where a check does not apply."""
    rows = [dict(v, lemma1_sign=_yes_no(v.get("lemma1_sign_agrees"))) for v in verdicts]
    return text_table(rows, VERDICT_TABLE)


def _yes_no(flag):
    return None if flag is None else ("yes" if flag else "NO")


def phase_map(equations, deltas, ratios, lams, s2_sq) -> list[dict]:
    """z₂* and dz₂*/ds₁² on the grid δ × (s₁²/s₂²) × λ, one row per point and equation."""
    D, R, L = np.meshgrid(
        np.asarray(deltas, float), np.asarray(ratios, float), np.asarray(lams, float), indexing="ij"
    )
    D, R, L = D.ravel(), R.ravel(), L.ravel()
    rows = []
    for equation in equations:
        z2, dz2, res = (
            np.asarray(a) for a in fp.z2_and_slope(equation, D, R * s2_sq, np.full_like(D, s2_sq), L)
        )
        fp.check_converged(res, f"phase map {equation}")
        check(np.isfinite(z2).all() and np.isfinite(dz2).all(), f"phase map {equation}: non-finite values")
        # the size of the effect: d log|z₂*| / d log s₁² = (s₁² / z₂*) · dz₂*/ds₁² (NaN where z₂* = 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            el = np.where(z2 != 0, R * s2_sq * dz2 / z2, np.nan)
        rows += [
            dict(equation=equation, delta=D[i], ratio=R[i], lam=L[i], s2_sq=s2_sq, z2=z2[i], dz2_ds1sq=dz2[i],
                 elasticity=el[i])
            for i in range(D.size)
        ]  # fmt: skip
    return rows


def summarise_magnitude(rows) -> list[dict]:
    """Per (equation, λ): the median and the most negative elasticity d log|z₂*| / d log s₁² over δ > 0 where
    z₂* > 0 (the starving side of the map), and where the strongest effect sits."""
    out = []
    for equation in sorted({r["equation"] for r in rows}):
        for lam in sorted({r["lam"] for r in rows}):
            sel = [r for r in rows if r["equation"] == equation and r["lam"] == lam and r["delta"] > 0
                   and r["z2"] > 0 and np.isfinite(r["elasticity"])]  # fmt: skip
            if not sel:
                continue
            el = np.array([r["elasticity"] for r in sel])
            i = int(np.argmin(el))
            out.append(dict(equation=equation, lam=float(lam), median=float(np.median(el)), min=float(el[i]),
                            delta_at_min=float(sel[i]["delta"]), ratio_at_min=float(sel[i]["ratio"])))  # fmt: skip
    return out


def summarise_phase_map(rows, atol=1e-12) -> list[dict]:
    """Per (equation, λ): where dz₂*/ds₁² < 0 holds (ratio > 1, δ > 0), where it fails, where z₂* < 0."""
    out = []
    for equation in sorted({r["equation"] for r in rows}):
        for lam in sorted({r["lam"] for r in rows}):
            sel = [
                r
                for r in rows
                if r["equation"] == equation and r["lam"] == lam and r["ratio"] > 1 and r["delta"] > 0
            ]
            dz = np.array([r["dz2_ds1sq"] for r in sel])
            z2 = np.array([r["z2"] for r in sel])
            d = np.array([r["delta"] for r in sel])
            fails = dz >= -atol
            # |z₂*| shrinking as s₁² grows is starvation in magnitude, whatever the sign of z₂*.
            abs_fails = np.sign(z2) * dz >= -atol
            out.append(
                dict(
                    equation=equation,
                    lam=lam,
                    points=len(sel),
                    starvation_fraction=float(np.mean(~fails)),
                    fails=int(fails.sum()),
                    min_delta_failing=float(d[fails].min()) if fails.any() else None,
                    z2_negative=int((z2 < 0).sum()),
                    min_delta_z2_negative=float(d[z2 < 0].min()) if (z2 < 0).any() else None,
                    max_dz2=float(dz.max()),
                    abs_fails=int(abs_fails.sum()),
                    fails_where_z2_positive=int((fails & (z2 > 0)).sum()),
                )
            )
    return out


def format_phase_summary(summary) -> str:
    """The printed phase-map table, one line per (equation, λ) of :func:`summarise_phase_map`."""
    return text_table(summary, PHASE_TABLE)


def run_theorem2(cfg, run_dir):
    """``make theorem2``: the default sweep, its verdict table, the phase map; writes results.csv, summary.json,
    phase_map.csv and figures to ``run_dir`` and prints the tables. Returns the summary dict."""
    precision.enable_x64()
    check(cfg.s2_sq > 0 and cfg.lam > 0, "s2_sq and lam must be > 0")
    check(cfg.ratio_max > 1 and cfg.n_points >= 2, "need ratio_max > 1 and n_points >= 2")
    check(all(0 <= d < 1 for d in cfg.deltas), "every delta must lie in [0, 1) (Eq. 15)")
    t0 = time.perf_counter()
    s1_sq = np.linspace(cfg.s2_sq, cfg.ratio_max * cfg.s2_sq, cfg.n_points)
    rows = theorem2_sweep(tuple(cfg.equations), tuple(cfg.deltas), s1_sq, cfg.s2_sq, cfg.lam, cfg.fd_rel)
    t_sweep = time.perf_counter() - t0
    verdicts = theorem2_verdicts(rows)
    run_dir.write_csv("results.csv", rows, THEOREM2_COLUMNS)
    table = format_verdicts(verdicts)
    print(
        f"Theorem 2 verdicts (s2^2={cfg.s2_sq:g}, lambda={cfg.lam:g}, s1^2 in ({cfg.s2_sq:g}, "
        f"{cfg.ratio_max * cfg.s2_sq:g}], {cfg.n_points} points)"
    )
    print(table)
    fig = plots.starvation_figure(rows)
    run_dir.save_figure(fig, "starvation")
    summary = dict(verdicts=verdicts, sweep_seconds=t_sweep, n_rows=len(rows))
    text = table
    if cfg.phase.enabled:
        t1 = time.perf_counter()
        deltas = np.linspace(0.0, cfg.phase.delta_max, cfg.phase.n_delta)
        ratios = np.linspace(1.0, cfg.ratio_max, cfg.phase.n_ratio)
        pm = phase_map(tuple(cfg.phase.equations), deltas, ratios, tuple(cfg.phase.lams), cfg.s2_sq)
        summary["phase_seconds"] = time.perf_counter() - t1
        run_dir.write_csv("phase_map.csv", pm, PHASE_MAP_COLUMNS)
        phase = summarise_phase_map(pm)
        summary["phase_map"] = phase
        ptable = format_phase_summary(phase)
        print("\nPhase map (delta > 0, s1^2/s2^2 > 1): where dz2*/ds1^2 < 0 holds / fails, where z2* < 0")
        print(ptable)
        text += "\n\n" + ptable
        run_dir.save_figure(plots.phase_map_figure(pm), "phase_map")
        run_dir.save_figure(plots.phase_magnitude_figure(pm), "phase_magnitude")
        summary["phase_magnitude"] = summarise_magnitude(pm)
        mtable = "\n".join(
            f"{m['equation']:5s} λ={m['lam']:<6g} d log|z2*|/d log s1^2: median {m['median']:+.3f}, "
            f"strongest {m['min']:+.3f} at δ={m['delta_at_min']:.2f}, s1^2/s2^2={m['ratio_at_min']:.1f}"
            for m in summary["phase_magnitude"]
        )
        print("\nStrength of starvation (elasticity of |z2*| in s1^2, delta > 0, z2* > 0):")
        print(mtable)
        text += "\n\n" + mtable
    run_dir.write_text("verdicts.txt", text + "\n")
    run_dir.write_summary(summary)
    plt.close("all")
    return summary


__all__ = [
    "THEOREM2_COLUMNS",
    "PHASE_MAP_COLUMNS",
    "theorem2_sweep",
    "theorem2_verdicts",
    "format_verdicts",
    "phase_map",
    "summarise_phase_map",
    "summarise_magnitude",
    "format_phase_summary",
    "run_theorem2",
]
