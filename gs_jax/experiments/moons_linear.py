"""Linearised vs real two-moons networks (``make moons ARGS="--config configs/moons.py:linear"``): train the network
and its linearisation ŷ_lin(θ) = ŷ(θ₀) + Φ₀(θ − θ₀) (Eq. 3) from the same θ₀ and compare their feature responses
and margins. Writes ``linear.md``, ``linear.json`` and ``linear_vs_real.{png,pdf}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gs_jax import runs
from gs_jax.experiments.moons import (
    _mean_std,
    moons_init_features,
    moons_quantities,
    moons_responses,
    train_moons_case,
)
from gs_jax.plotting import moons as moons_plots
from gs_jax.reporting import markdown_table


def run_moons_linear(cfg, run_dir) -> dict[str, Any]:
    """Linearised vs real (issue item 5): for each Fig. 1 case and width, train the network and its linearisation
    ŷ_lin(θ) = ŷ(θ₀) + Φ₀(θ − θ₀) (``gs_jax.ntk.linearize``) from the SAME θ₀ with the same optimiser, and
    compare their z-trajectories (authors' directions, and all n directions: ‖Δz‖ = ‖Δŷ‖ since U is orthogonal)
    and their input-space margins."""
    seeds = list(range(cfg.first_seed, cfg.first_seed + cfg.linear.seeds))
    out, rows, curves = {}, [], {}
    for name in cfg.linear.cases:
        for width in cfg.linear.widths:
            got = {}
            for lin in (False, True):
                arch, x, y, result, steps = train_moons_case(
                    cfg,
                    name,
                    seeds=seeds,
                    hidden=int(width),
                    linearized=lin,
                    max_steps=cfg.linear.max_steps,
                    progress=runs.progress,
                    run_dir=run_dir,
                )
                q = moons_quantities(
                    arch, result, x, y, margin_n=cfg.margin_grid_n, margin_lim=cfg.margin_grid_lim
                )
                got[lin] = (arch, result, q)
            arch, real, q_real = got[False]
            _, lin_res, q_lin = got[True]
            feats = moons_init_features(arch, real.params0, x, y)
            z_real = moons_responses(feats, y, real.logits_stn, indices=tuple(cfg.z_indices))["authors"]
            z_lin = moons_responses(feats, y, lin_res.logits_stn, indices=tuple(cfg.z_indices))["authors"]
            dz = np.linalg.norm(z_lin - z_real, axis=(1, 2)) / np.linalg.norm(z_real, axis=(1, 2))
            dy = np.linalg.norm(lin_res.logits_stn - real.logits_stn, axis=(1, 2)) / np.linalg.norm(
                real.logits_stn, axis=(1, 2)
            )
            dy_end = np.linalg.norm(
                lin_res.logits_stn[:, -1] - real.logits_stn[:, -1], axis=1
            ) / np.linalg.norm(real.logits_stn[:, -1], axis=1)
            rec = {
                "steps": steps,
                "z_rel_diff_authors": _mean_std(dz),
                "yhat_rel_diff_trajectory": _mean_std(dy),
                "yhat_rel_diff_final": _mean_std(dy_end),
                "margin_real": _mean_std(q_real["margin"]),
                "margin_linear": _mean_std(q_lin["margin"]),
                "margin_abs_diff": _mean_std(np.abs(q_real["margin"] - q_lin["margin"])),
                "train_acc_real": _mean_std(q_real["train_acc"]),
                "train_acc_linear": _mean_std(q_lin["train_acc"]),
            }
            out.setdefault(name, {})[str(width)] = rec
            curves[(name, int(width))] = (real.record_steps, z_real.mean(axis=0), z_lin.mean(axis=0))

            def f(p):
                return "—" if p[0] is None else f"{p[0]:.3f} ± {p[1]:.3f}"

            rows.append(
                {
                    "case": name,
                    "width": str(width),
                    "steps": str(steps),
                    "rel ‖Δ|z|‖ (idx " + ",".join(map(str, cfg.z_indices)) + ")": f(
                        rec["z_rel_diff_authors"]
                    ),
                    "rel ‖Δŷ‖ over training": f(rec["yhat_rel_diff_trajectory"]),
                    "margin real": f(rec["margin_real"]),
                    "margin linearised": f(rec["margin_linear"]),
                    "|Δ margin|": f(rec["margin_abs_diff"]),
                }
            )
            run_dir.write_json("linear.json", out)
    table = markdown_table(rows, f"Linearised vs real, mean ± std over {len(seeds)} seeds")
    print(table)
    run_dir.write_text("linear.md", table)
    fig = moons_plots.linear_vs_real(curves, tuple(cfg.z_indices))
    run_dir.save_figure(fig, "linear_vs_real")
    return out
