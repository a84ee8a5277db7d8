"""Robustness (Section 4.2; SPEC §5, §5.1): Table 1 (clean and PGD accuracy, ERM vs SD) and Fig. 2 (margin CDF).

Data flow: ``configs/robustness.py`` → :func:`run_robustness` → ``robustness_data.load_raw`` (Fashion-MNIST IDX
files or CIFAR pickles) → ``robustness_table.run_table`` (every (method, hyper-parameter, seed) of
``methods.enabled`` one restart of ONE ``supervised.make_task`` program; selection of each method's grid on the
validation split; test clean/PGD accuracy through ``gs_jax.evaluators``) → ``robustness_fig2.run_fig2`` (seeds × {ERM, SD}
as restarts of one batch-1 program, the authors' protocol; margins by foolbox 2's PGD search,
``reference_attacks.foolbox_margin``) → summary, table, figures (``gs_jax.plotting.robustness``). Both training programs write checkpoints through the trainer under the run
folder, so ``--resume NAME`` continues an interrupted run and ends with the same summary and metrics.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from gs_jax import config, trainer
from gs_jax.errors import check
from gs_jax.experiments.robustness_data import load_raw
from gs_jax.experiments.robustness_fig2 import run_fig2
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
    "table.restarts": 1, "table.epochs": 1, "table.batch_size": 1, "table.n_val": 0, "table.n_train": 0,
    "table.n_train_eval": 1, "table.n_val_pgd": 1, "table.n_test_pgd": 0, "table.eval_chunk": 1,
    "table.eval_every_epochs": 0, "table.lr": 1e-12, "table.momentum": 0, "table.weight_decay": 0,
    "table.select_tolerance": 0, "table.milestones": 1, "attack.eps": 0, "attack.eps_text": 0, "attack.steps": 0,
    "attack.step_frac": 0, "attack.curve": 0, "fig2.epochs": 1, "fig2.batch_size": 1, "fig2.n_points": 0,
    "fig2.n_train_points": 0, "fig2.margin_chunk": 1, "fig2.restart_block": 0, "fig2.eval_every_epochs": 0, "fig2.lr": 1e-12,
    "fig2.momentum": 0, "fig2.sd_coef": 0, "fig2.seeds": 0, "fig2.search.eps0": 1e-12, "fig2.search.growth": 1,
    "fig2.search.grow_trials": 1, "fig2.search.halvings": 0, "fig2.search.stepsize": 1e-12, "fig2.search.steps": 1,
    "checkpoint_every_s": 0, "data.max_train": 0, "data.max_test": 0,
}  # fmt: skip
ROW_KEYS = (
    "train_acc",
    "clean_acc",
    "pgd_acc",
    "pgd_acc_correct_attack",
    "pgd_acc_authors_attack",
    "pgd_text_acc",
)


def _method_name(row: str, m: dict[str, Any]) -> str:
    name = {"sd_val": "SD, λ by validation"}.get(row, row.upper())
    return f"{name} (λ={m['lam']:g})" if "lam" in m else f"{name} ({m['setting']})"


def table_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """Table 1 layout: train / clean test / PGD test (both ε), mean ± std in %; the paper's CIFAR rows, marked."""
    rows = []
    eps_col = None
    for row, m in summary["methods"].items():
        eps_col = f"PGD ε={m['eps'] * 255:g}/255"
        rows.append({
            "data": summary["data"], "method": _method_name(row, m),
            "train": format_mean_std(m["train_acc_mean"], m["train_acc_std"]),
            "clean test": format_mean_std(m["clean_acc_mean"], m["clean_acc_std"]),
            eps_col: format_mean_std(m["pgd_acc_mean"], m["pgd_acc_std"]),
            f"PGD ε={m['eps_text']:g}": format_mean_std(m["pgd_text_acc_mean"], m["pgd_text_acc_std"]),
            "median margin (Fig. 2)": f"{m['margin_median']:.4f}" if "margin_median" in m else "-",
        })  # fmt: skip
    for data, block in PAPER_TABLE1.items():
        for name in ("erm", "sd"):
            tr, cl, pg = block[name]
            rows.append({
                "data": f"paper {data} (another data set)", "method": name.upper(), "train": f"{tr:.1f}",
                "clean test": f"{cl:.1f}", eps_col: f"{pg:.1f} (code ε)", list(rows[0])[5]: "-",
                "median margin (Fig. 2)": "-",
            })  # fmt: skip
    return rows


def attack_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """PGD ε = 5/255 accuracy under the correct attack and the authors' (de-normalised input, float32 CE)."""
    out = []
    for row, m in summary["methods"].items():
        out.append({
            "method": _method_name(row, m),
            "correct attack": format_mean_std(m["pgd_acc_correct_attack_mean"], m["pgd_acc_correct_attack_std"]),
            "authors' attack": format_mean_std(m["pgd_acc_authors_attack_mean"], m["pgd_acc_authors_attack_std"]),
            "unattacked (zero gradient at every step), per seed": str([int(v) for v in m["authors_attack_unattacked_per_seed"]]),
            "zero gradient at some step, per seed": str([int(v) for v in m["authors_attack_some_zero_gradient_per_seed"]]),
        })  # fmt: skip
    return out


def fig2_rows(fig: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for name, m in fig["methods"].items():
        q = m["margin_quartiles"]
        row = {"method": f"{name.upper()} (c = {m['sd_coef']:g})", "train acc": f"{100 * m['train_acc']:.2f}",
               "test acc": f"{100 * m['test_acc']:.2f}", "median margin": f"{m['margin_median']:.4f}",
               "quartiles": f"{q[0]:.4f} / {q[2]:.4f}", "misclassified (0)": str(m["misclassified"]),
               "failed searches (inf)": str(m["failed_attacks"]), "points": f"{fig['n_seeds']} × {m['n_points']}"}  # fmt: skip
        if "train_points" in m:
            row["median margin, training points"] = f"{m['train_points']['margin_median']:.4f}"
        out.append(row)
    return out


def run_robustness(cfg, run_dir, progress=None) -> dict[str, Any]:
    """The whole experiment (``make robustness``): part (a), part (b), summary.json, tables, figures."""
    t_start = time.perf_counter()
    config.check_sizes(cfg, MINIMUMS)
    check(
        cfg.table.enabled or cfg.fig2.enabled, "table.enabled and fig2.enabled are both false: nothing to run"
    )
    raw = load_raw(cfg.data)
    summary: dict[str, Any] = {
        "data": raw.name, "eps": float(cfg.attack.eps), "eps_units": "[0, 1] pixels (× 2 on [-1, 1] inputs)",
        "attack": {"norm": "linf", "eps": float(cfg.attack.eps), "eps_text": float(cfg.attack.eps_text),
                   "step": f"{cfg.attack.step_frac:g}·ε", "steps": int(cfg.attack.steps), "random_start": True,
                   "input_scale": str(cfg.attack.input_scale)},
        "margin_units": "L∞ in the [-1, 1] input scale (the authors' Fig. 2 units; 2 × pixel units)",
    }  # fmt: skip

    def saveat(part: str) -> trainer.SaveAt:
        return trainer.SaveAt(checkpoint_dir=run_dir.file(f"checkpoints/{part}"), resume=run_dir.resumed,
                              checkpoint_every_s=float(cfg.checkpoint_every_s))  # fmt: skip

    def log(record):
        run_dir.log_metrics({"part": "table", "step": record["step"],
                             **{k: float(np.mean(v)) for k, v in record.items() if k != "step"}})  # fmt: skip

    text = ""
    if cfg.table.enabled:
        tab = run_table(cfg, raw, saveat=saveat("table"), progress=progress, on_eval=log)
        for record in tab.records:
            run_dir.log_metrics(record)
        summary["table"] = {k: v for k, v in tab.summary.items() if k != "methods"}
        summary["methods"] = tab.summary["methods"]
        summary["table"]["rows"] = [
            {"method": row, "lam": m.get("lam"), "setting": m["setting"], "selected_by": m["selection"]["reason"],
             **{f"{k}_{s}": m[f"{k}_{s}"] for k in ROW_KEYS for s in ("mean", "std")},
             "authors_attack_unattacked_per_seed": m["authors_attack_unattacked_per_seed"]}
            for row, m in summary["methods"].items()
        ]  # fmt: skip
    if cfg.fig2.enabled:
        fig = run_fig2(
            cfg, raw, saveat=saveat("fig2"), progress=progress, cache=run_dir.file("checkpoints/margins")
        )
        summary["fig2"] = fig.summary
        for record in fig.records:
            run_dir.log_metrics(record)
        for name, m in fig.summary["methods"].items():
            if name in summary.get("methods", {}):
                summary["methods"][name].update({k: m[k] for k in ("margin_median", "margin_quartiles")})
        np.savez(run_dir.file("margins.npz"), **{f"{split}_{k}": v for split, d in fig.margins.items()
                                                 for k, v in d.items()})  # fmt: skip
    summary["wall_s_total"] = round(time.perf_counter() - t_start, 1)
    run_dir.write_summary(summary)

    if cfg.table.enabled:
        t = summary["table"]
        text += markdown_table(
            table_rows(summary), f"Table 1 analogue — data: {summary['data']} (mean ± std, %)"
        )
        text += "\n" + "".join(f"selection of {row} ({t['selection']['rule']}): {v['setting']}; {v['reason']}\n"
                                for row, v in t["selection"]["rows"].items())  # fmt: skip
        text += (f"ERM training accuracy {100 * t['erm_train_acc']:.2f} % on {t['n_train']} training images after "
                 f"{t['epochs']} epoch(s): {'saturated (≥ ' if t['erm_saturated'] else 'NOT saturated (< '}"
                 f"{100 * cfg.table.saturation:g} %)\n\n")  # fmt: skip
        text += markdown_table(attack_rows(summary), f"PGD ε = {cfg.attack.eps * 255:g}/255, the correct attack and "
                               "the authors' (mean ± std over seeds, %)") + "\n"  # fmt: skip
    if cfg.fig2.enabled:
        p = summary["fig2"]["protocol"]
        text += markdown_table(fig2_rows(summary["fig2"]), f"Fig. 2 analogue — {summary['data']} classes "
                               f"{p['classes']}, batch {p['batch_size']} × {p['epochs']} epochs, seeds {p['seeds']} "
                               "(margins: test points, [-1, 1] units, foolbox-2 PGD search)") + "\n"  # fmt: skip
    print(text)
    run_dir.write_text("table.md", text)
    if cfg.fig2.enabled:
        run_dir.save_figure(
            plots.margin_cdf(fig.margins, summary["data"], summary["fig2"]["protocol"]), "margin_cdf"
        )
    if cfg.table.enabled:
        run_dir.save_figure(
            plots.pgd_curves(summary["methods"], summary["data"], PAPER_TABLE1["cifar10"]), "pgd_vs_eps"
        )
    print(f"[gs-jax] robustness: {summary['wall_s_total']:.1f} s -> {run_dir.path}", file=sys.stderr)
    return summary
