"""Worst-group accuracy (Section 4.3, Table 3; SPEC §4, §5b, §5c): ERM, SD (per-class λ_c, γ_c), Group DRO, JTT,
logit adjustment, DFR and a threshold shift, on any group data set of ``gs_jax.data.groups``. The entry point:
:func:`run_worst_group` composes the training (``worst_group_train``), the ρ calibration and the monitor's
responses (``worst_group_analysis``), and writes the summary, table and figures.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from gs_jax import selection
from gs_jax.data import groups
from gs_jax.errors import check
from gs_jax.experiments import worst_group_analysis as analysis
from gs_jax.experiments.worst_group_train import (
    PAPER_TABLE3,
    RULES,
    Candidate,
    Context,
    build_model,
    candidates,
    jtt_stage_one,
    posthoc_rows,
    seed_keys,
    summarise,
    train_programs,
    validate,
)
from gs_jax.metrics import format_mean_std
from gs_jax.plotting import worst_group as plots
from gs_jax.reporting import markdown_table

# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------


def table_rows(summary: dict[str, Any], rule: str) -> list[dict[str, str]]:
    rows = []
    names = summary["group_names"]
    for m, r in summary["by_rule"][rule].items():
        paper = PAPER_TABLE3.get(m)
        rows.append({
            "method": r["label"], "chosen by": rule,
            "average": format_mean_std(r["avg_acc_mean"], r["avg_acc_std"]),
            "worst group": format_mean_std(r["worst_group_acc_mean"], r["worst_group_acc_std"]),
            **{f"g{k}: {names[k]}": f"{100 * v:.1f}" for k, v in enumerate(r["per_group"])},
            "paper avg / worst (CelebA)": f"{paper[0]:.2f} / {paper[2]:.2f}" if paper else "-",
        })  # fmt: skip
    return rows


def _calibration(cfg, run_dir, progress) -> tuple[list[dict[str, Any]], str]:
    """The ρ calibration: trained in this run (``calibration.run``) or the table recorded in the config."""
    if cfg.calibration.run:
        return analysis.calibrate(cfg, run_dir, progress), f"this run ({run_dir.path.name})"
    keys = ("rho", "erm_worst_group_acc_mean", "erm_avg_acc_mean")
    rows = [{**dict(zip(keys, r[:3], strict=True)), "layout": "symmetric" if r[0] is not None else "celeba",
             "per_group": list(r[3:])} for r in cfg.calibration.measured]  # fmt: skip
    return rows, f"recorded in configs/worst_group.py from {cfg.calibration.measured_in or '-'}"


def run_worst_group(cfg, run_dir, progress=None) -> dict[str, Any]:
    """The whole experiment (``make worst-group``): the ρ calibration (trained or recorded), training, post-hoc
    rows, selection, the monitor's responses, summary.json, table, figures."""
    t_start = time.perf_counter()
    validate(cfg)
    cands = candidates(cfg, groups.static_info(cfg.data))  # refusals before the data are loaded
    symmetric = cfg.data.dataset == "dominoes" and cfg.data.layout == "symmetric"
    summary: dict[str, Any] = {"variant": cfg.variant, "rho": float(cfg.data.rho) if symmetric else None,
                               "layout": cfg.data.layout if cfg.data.dataset == "dominoes" else None}  # fmt: skip
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    calib, summary["rho_calibration_source"] = _calibration(cfg, run_dir, progress)
    summary["rho_calibration"] = calib
    wall["calibration"] = round(time.perf_counter() - t0, 1)
    if cfg.calibration.only:
        if calib:
            run_dir.save_figure(plots.rho_calibration(calib), "rho_calibration")
        summary["in_regime"] = analysis.in_regime(calib)
        run_dir.write_text("table.md", calibration_table(calib))
        print(calibration_table(calib))
        summary["wall_s"] = {**wall, "total": round(time.perf_counter() - t_start, 1)}
        run_dir.write_summary(summary)
        return summary
    data = groups.load(cfg.data, progress=progress)
    check(len(data.train.y) >= int(cfg.train.batch_size),
          f"train.batch_size {cfg.train.batch_size} is larger than the training set ({len(data.train.y)})")  # fmt: skip
    if calib:  # after the last check on the input, so that a refused run leaves no folder behind
        run_dir.save_figure(plots.rho_calibration(calib), "rho_calibration")
    ctx = Context(cfg, build_model(cfg), data, data.trainer_data(), data.info(), seed_keys(cfg, int(cfg.seeds)),
                  run_dir, progress)  # fmt: skip
    summary.update({
        "data": data.name, "description": data.description, "group_names": list(data.group_names),
        "group_counts": data.group_counts(), "seeds": list(range(int(cfg.seeds))), "net": cfg.net.name,
        "selection": f"{RULES[0]} (primary, in 'methods'); every rule in by_rule: "
                     + "; ".join(f"{k}: {v}" for k, v in selection.RULES.items()),
    })  # fmt: skip
    errors, summary["jtt_identification"] = jtt_stage_one(ctx, cands)
    for name, v in summary["jtt_identification"].items():
        wall[name] = v.pop("wall_s")
    t0 = time.perf_counter()
    variables, params0 = train_programs(ctx, cands, errors)
    wall["train"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    post = posthoc_rows(ctx, cands, variables)
    wall["posthoc"] = round(time.perf_counter() - t0, 1)
    summary["by_rule"] = summarise(cands, post, data.n_groups)
    summary["methods"] = summary["by_rule"][RULES[0]]
    if cfg.responses.enabled and cfg.net.name == "lenet" and params0 is not None:
        t0 = time.perf_counter()
        summary["responses"] = analysis.responses(ctx, cands, variables, params0, summary["by_rule"])
        wall["responses"] = round(time.perf_counter() - t0, 1)
    np.savez(run_dir.file("curves.npz"), **{f"{c.label}|{k}": v for c in cands for k, v in c.curves.items()})
    report(summary, cands, data, run_dir, int(cfg.seeds))
    wall["total"] = round(time.perf_counter() - t_start, 1)
    summary["wall_s"] = wall
    run_dir.write_summary(summary)
    print(f"[gs-jax] worst-group: {wall['total']:.1f} s -> {run_dir.path}", file=sys.stderr)
    return summary


def calibration_table(rows: list[dict[str, Any]]) -> str:
    out = [{"layout": r["layout"], "ρ": "-" if r["rho"] is None else f"{r['rho']:g}",
            "ERM worst group": f"{100 * r['erm_worst_group_acc_mean']:.1f}"
                               + (f" ± {100 * r['erm_worst_group_acc_std']:.1f}" if "erm_worst_group_acc_std" in r else ""),
            "ERM average": f"{100 * r['erm_avg_acc_mean']:.1f}",
            "per group g0..g3": " / ".join(f"{100 * v:.1f}" for v in r["per_group"]),
            "train groups": str(r.get("train_group_counts", "-"))} for r in rows]  # fmt: skip
    return markdown_table(out, "ERM against the shortcut's strength ρ (test %, epochs chosen by val_worst)")


def report(summary: dict[str, Any], cands: list[Candidate], data, run_dir, seeds: int) -> None:
    """table.md (every rule, the candidates, the responses) and the figures."""
    text = ""
    for rule in RULES:
        title = (f"Table 3 analogue — {data.name}, test accuracy (mean ± std over {seeds} seeds, %), "
                 f"chosen by {rule}: {selection.RULES[rule]}")  # fmt: skip
        text += markdown_table(table_rows(summary, rule), title) + "\n"
    text += candidates_table(summary) + "\n"
    if "responses" in summary:
        text += responses_table(summary["responses"]) + "\n"
    if summary.get("rho_calibration"):
        text += calibration_table(summary["rho_calibration"]) + f"({summary['rho_calibration_source']})\n\n"
    text += f"data: {data.description}\ngroup counts: {summary['group_counts']}\n"
    print(text)
    run_dir.write_text("table.md", text)
    chosen = {m: next(c for c in cands if c.label == r["label"]).curves for m, r in summary["methods"].items()
              if "epochs_selected" in r}  # fmt: skip
    run_dir.save_figure(plots.group_curves(chosen, data.group_names, data.name), "group_curves")
    run_dir.save_figure(plots.bars(summary["by_rule"], data.group_names, PAPER_TABLE3, data.name),
                        "worst_group_bars")  # fmt: skip
    if "responses" in summary:
        run_dir.save_figure(plots.responses(summary["responses"]), "responses")


def candidates_table(summary: dict[str, Any]) -> str:
    """Every candidate of every trained row under every rule: its mean validation score and test numbers."""
    rows = []
    for rule, block in summary["by_rule"].items():
        for m, r in block.items():
            for c in r.get("candidates", []):
                if "label" not in c:
                    continue
                rows.append({"rule": rule, "row": m, "candidate": c["label"], "val score": f"{100 * c['val_score']:.1f}",
                             "test avg": f"{100 * c['test_avg_mean']:.1f}",
                             "test worst": f"{100 * c['test_worst_mean']:.1f}",
                             "chosen": "✓" if c["label"] == r["label"] else ""})  # fmt: skip
    return markdown_table(rows, "Every trained candidate (mean over seeds, %; the rule's epoch per seed)")


def responses_table(resp: dict[str, Any]) -> str:
    feats = resp["features"]
    rows = [{"row": m, "candidate": r["label"], "z digit": f"{r['z_digit_mean']:.2f} ± {r['z_digit_std']:.2f}",
             "z item": f"{r['z_item_mean']:.2f} ± {r['z_item_std']:.2f}",
             "item share": f"{r['item_share_mean']:.2f}"} for m, r in resp["rows"].items()]  # fmt: skip
    desc = "; ".join(f"seed {s}: digit = feature {f['digit']['index']} (cos {f['digit']['corr']:.2f}), item = "
                     f"feature {f['item']['index']} (cos {f['item']['corr']:.2f})" for s, f in enumerate(feats))  # fmt: skip
    return markdown_table(rows, "The monitor's responses z = UᵀY(ŷ − ŷ₀) of the final networks (val_worst rows) to "
                                f"the digit and the item features ({resp['probe']}); {desc}")  # fmt: skip
