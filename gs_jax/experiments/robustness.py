"""Robustness (Section 4.2; SPEC §5, §5.1): Table 1 (clean and PGD accuracy, ERM vs SD) and Fig. 2 (margin CDF).

Data flow: ``configs/robustness.py`` → :func:`run_robustness` → ``robustness_data.load_raw`` (Fashion-MNIST IDX
files or CIFAR pickles) → ``robustness_table.run_table`` (every (method, hyper-parameter, seed) of
``methods.enabled`` one restart of ONE ``supervised.make_task`` program; selection of each method's grid on the
validation split; test clean/PGD accuracy through ``gs_jax.evaluators``) → ``robustness_fig2.run_fig2`` (ERM and SD
as two restarts of one program; margins by ``attacks.minimal_margin``) → summary, table, figures
(``gs_jax.plotting.robustness``). Both training programs write checkpoints through the trainer under the run
folder, so ``--resume NAME`` continues an interrupted run and ends with the same summary and metrics.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import jax
import numpy as np

from gs_jax import config, trainer
from gs_jax.errors import check
from gs_jax.experiments.robustness_data import load_raw
from gs_jax.experiments.robustness_fig2 import margins_of, run_fig2
from gs_jax.experiments.robustness_table import run_table
from gs_jax.metrics import format_mean_std
from gs_jax.plotting import robustness as plots
from gs_jax.reporting import markdown_table

# Table 1 of the paper (SPEC §5; train / clean test / PGD test, %, 10 runs), printed beside ours as a reference
PAPER_TABLE1 = {
    "cifar2": {"erm": (100.0, 95.2, 42.3), "sd": (100.0, 95.3, 69.7)},
    "cifar10": {"erm": (99.9, 92.8, 30.1), "sd": (99.9, 92.9, 67.7)},
    "cifar100": {"erm": (99.7, 69.2, 14.3), "sd": (99.7, 70.5, 24.9)},
}
# sizes validated up front, naming the key (config.check_sizes)
MINIMUMS = {
    "table.restarts": 1, "table.epochs": 1, "table.batch_size": 1, "table.n_val": 0, "table.n_train_eval": 1,
    "table.n_val_pgd": 1, "table.n_test_pgd": 0, "table.eval_chunk": 1, "table.eval_every_epochs": 0,
    "table.lr": 1e-12, "table.momentum": 0, "table.weight_decay": 0, "table.select_tolerance": 0,
    "attack.eps": 0, "attack.eps_text": 0, "attack.steps": 0, "attack.step_frac": 0, "attack.curve": 0,
    "fig2.epochs": 1, "fig2.batch_size": 1, "fig2.n_points": 1, "fig2.lr": 1e-12, "fig2.momentum": 0,
    "fig2.sd_coef": 0, "fig2.eps_max": 1e-12, "fig2.tol": 1e-12, "fig2.steps": 1, "checkpoint_every_s": 0,
    "data.max_train": 0, "data.max_test": 0,
}  # fmt: skip


def margin_summary(margins_n: np.ndarray) -> dict[str, float]:
    """Median (inf when over half the points resist eps_max), fraction at 0 (misclassified) and at inf."""
    m = np.asarray(margins_n, np.float64)
    return {
        "margin_median": float(np.median(m)),
        "margin_mean_finite": float(np.mean(m[np.isfinite(m)])) if np.isfinite(m).any() else float("nan"),
        "margin_frac_zero": float(np.mean(m == 0)),
        "margin_frac_unflipped": float(np.mean(~np.isfinite(m))),
    }


def _method_name(row: str, m: dict[str, Any]) -> str:
    return f"{row.upper()} (λ={m['lam']:g})" if "lam" in m else m["setting"]


def table_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """Table 1 layout: train / clean test / PGD test (both ε), mean ± std in %, and the paper's CIFAR rows."""
    rows = []
    for row, m in summary["methods"].items():
        rows.append({
            "data": summary["data"], "method": _method_name(row, m),
            "train": format_mean_std(m["train_acc_mean"], m["train_acc_std"]),
            "clean test": format_mean_std(m["clean_acc_mean"], m["clean_acc_std"]),
            f"PGD ε={m['eps'] * 255:g}/255": format_mean_std(m["pgd_acc_mean"], m["pgd_acc_std"]),
            f"PGD ε={m['eps_text']:g}": format_mean_std(m["pgd_text_acc_mean"], m["pgd_text_acc_std"]),
            "median margin": f"{m['margin_median']:.4f}" if "margin_median" in m else "-",
        })  # fmt: skip
    for data, block in PAPER_TABLE1.items():
        for name in ("erm", "sd"):
            tr, cl, pg = block[name]
            rows.append({
                "data": f"paper {data}", "method": name.upper(), "train": f"{tr:.1f}", "clean test": f"{cl:.1f}",
                list(rows[0])[4]: f"{pg:.1f} (code ε)", list(rows[0])[5]: "-", "median margin": "-",
            })  # fmt: skip
    return rows


def run_robustness(cfg, run_dir, progress=None) -> dict[str, Any]:
    """The whole experiment (``make robustness``): part (a), part (b), summary.json, table, figures."""
    t_start = time.perf_counter()
    config.check_sizes(cfg, MINIMUMS)
    check(cfg.table.enabled, "table.enabled=false: the output contract needs the Table 1 part")
    raw = load_raw(cfg.data)
    summary: dict[str, Any] = {
        "data": raw.name, "eps": float(cfg.attack.eps), "eps_units": "[0, 1] pixels (× 2 on [-1, 1] inputs)",
        "attack": {"norm": "linf", "eps": float(cfg.attack.eps), "eps_text": float(cfg.attack.eps_text),
                   "step": f"{cfg.attack.step_frac:g}·ε", "steps": int(cfg.attack.steps), "random_start": True},
        "margin_units": "L∞ in the [-1, 1] input scale (the authors' Fig. 2 units; 2 × pixel units)",
    }  # fmt: skip

    def saveat(part: str) -> trainer.SaveAt:
        return trainer.SaveAt(checkpoint_dir=run_dir.file(f"checkpoints/{part}"), resume=run_dir.resumed,
                              checkpoint_every_s=float(cfg.checkpoint_every_s))  # fmt: skip

    def log(record):
        run_dir.log_metrics({"part": "table", "step": record["step"],
                             **{k: float(np.mean(v)) for k, v in record.items() if k != "step"}})  # fmt: skip

    tab = run_table(cfg, raw, saveat=saveat("table"), progress=progress, on_eval=log)
    for record in tab.records:
        run_dir.log_metrics(record)
    summary["table"] = {k: v for k, v in tab.summary.items() if k != "methods"}
    summary["methods"] = tab.summary["methods"]
    f = cfg.fig2
    if f.enabled:
        fig = run_fig2(cfg, raw, saveat=saveat("fig2"), progress=progress)
        margins = fig.margins
        summary["fig2"] = {**fig.summary, "source": "fig2 part (two-class LeNet, ERM vs SD)"}
        for record in fig.records:
            run_dir.log_metrics(record)
    else:  # margins of the Table 1 nets (the first seed of each method's chosen setting)
        nets, test = tab.nets, tab.test
        n = min(int(f.n_points), len(test.y))
        first = np.asarray([r[0] for r in nets.rows.values()])
        v = jax.tree_util.tree_map(lambda a: np.asarray(a)[first], nets.variables)
        m = margins_of(nets.model, v, test.x[:n], test.y[:n], f, cfg.table.pixel_range)
        margins = {row: m[i] for i, row in enumerate(nets.rows)}
        summary["fig2"] = {"source": "Table 1 nets, first seed", "n_points": n}
    for name in summary["methods"]:
        if name in margins:
            summary["methods"][name].update(margin_summary(margins[name]))
    np.savez(run_dir.file("margins.npz"), **margins)
    summary["wall_s_total"] = round(time.perf_counter() - t_start, 1)
    run_dir.write_summary(summary)

    table = markdown_table(table_rows(summary), f"Table 1 analogue — data: {summary['data']} (mean ± std, %)")
    sel = summary["table"]["selection"]
    text = table + "\n" + "".join(f"selection of {row} ({sel['rule']}): {v['setting']}; {v['reason']}\n"
                                  for row, v in sel["rows"].items())  # fmt: skip
    text += "sweep: " + ", ".join(f"{k}: {v}" for k, v in summary["table"]["sweep"].items()) + "\n"
    text += (
        "median margin ([-1, 1] units): "
        + ", ".join(
            f"{row.upper()} {m['margin_median']:.4f}"
            for row, m in summary["methods"].items()
            if "margin_median" in m
        )
        + "\n"
    )
    print(text)
    run_dir.write_text("table.md", text)
    run_dir.save_figure(plots.margin_cdf(margins, summary["data"]), "margin_cdf")
    run_dir.save_figure(plots.pgd_curves(summary["methods"], summary["data"]), "pgd_vs_eps")
    print(f"[gs-jax] robustness: {summary['wall_s_total']:.1f} s -> {run_dir.path}", file=sys.stderr)
    return summary
