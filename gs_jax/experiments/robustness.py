"""Robustness (Section 4.2; SPEC §5, §5.1): Table 1 (clean and PGD accuracy, ERM vs SD) and Fig. 2 (margin CDF).

Data flow: ``configs/robustness.py`` → :func:`run_robustness` → :func:`load_data` (Fashion-MNIST IDX files or
CIFAR pickles) → :func:`make_task` (net, CE + λ·mean ŷ² from ``losses.sd_mean_squared_logits`` with λ in the
algorithm state, torch-style SGD, device-side minibatches and augmentation) → ``gs_jax.trainer.train`` (every
(λ, seed) pair is one restart of ONE vmapped program; validation clean/PGD accuracy and training accuracy are
trainer evaluators) → λ selection on the validation split → test clean/PGD accuracy of the chosen restarts
(``correct_fn``, ``pgd_accuracy_fn``) → Fig. 2 part: ERM and SD as two restarts of one program, margins
by ``attacks.minimal_margin`` → summary, table, figures (``gs_jax.plotting.robustness``).
Data, nets, the task and the evaluation functions live in ``gs_jax.experiments.robustness_core``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import trainer
from gs_jax.errors import check
from gs_jax.experiments.robustness_core import (
    Arch,
    Opt,
    _take,
    arch_of,
    clean_accuracy,
    correct_fn,
    load_raw,
    make_task,
    margin_fn,
    part_splits,
    pgd_accuracy,
    pgd_accuracy_fn,
    variables_of,
)
from gs_jax.metrics import format_mean_std, mean_std
from gs_jax.plotting import robustness as plots
from gs_jax.reporting import markdown_table

# ---------------------------------------------------------------------------------------------------------------
# The two parts
# ---------------------------------------------------------------------------------------------------------------

# Table 1 of the paper (SPEC §5; train / clean test / PGD test, %, 10 runs), printed beside ours as a reference
PAPER_TABLE1 = {
    "cifar2": {"erm": (100.0, 95.2, 42.3), "sd": (100.0, 95.3, 69.7)},
    "cifar10": {"erm": (99.9, 92.8, 30.1), "sd": (99.9, 92.9, 67.7)},
    "cifar100": {"erm": (99.7, 69.2, 14.3), "sd": (99.7, 70.5, 24.9)},
}


def _span(pixel_range) -> float:
    return float(pixel_range[1]) - float(pixel_range[0])


def select_lambda(lams, val_acc, val_pgd, rule: str, tolerance: float) -> tuple[int, str]:
    """Index (into ``lams``, where lams[0] = 0 is ERM) of the chosen SD coefficient and the reason.

    ``val_pgd_within_1pt``: the λ > 0 with the highest mean validation PGD accuracy among those whose mean clean
    validation accuracy is at least ERM's minus ``tolerance``; if none qualifies, the smallest λ. ``fixed``: the
    first λ > 0 (the paper's protocol: one λ per data set, no validation).
    """
    check(len(lams) >= 2, "table.lambdas must hold at least one SD coefficient")
    if rule == "fixed" or val_acc is None:
        return 1, f"fixed λ = {lams[1]:g} (no selection)"
    check(rule == "val_pgd_within_1pt", f"unknown table.select {rule!r}; choose val_pgd_within_1pt or fixed")
    ok = [j for j in range(1, len(lams)) if val_acc[j] >= val_acc[0] - tolerance]
    if not ok:
        return 1, f"no λ kept clean validation accuracy within {tolerance:.3f} of ERM; smallest λ"
    best = max(ok, key=lambda j: val_pgd[j])
    return best, (
        f"highest validation PGD accuracy ({val_pgd[best]:.4f}) among λ with clean validation accuracy ≥ ERM's "
        f"{val_acc[0]:.4f} − {tolerance:g}"
    )


def run_table(cfg, raw, progress=None, on_eval=None) -> dict[str, Any]:
    """Part (a): every (λ, seed) as one restart of one vmapped program; selection; test clean/PGD accuracies."""
    t, a = cfg.table, cfg.attack
    train, val, test, k = part_splits(raw, tuple(t.classes), tuple(t.pixel_range), int(t.n_val))
    arch = arch_of(t.net, k, cfg.data.dataset)
    span, clip = _span(t.pixel_range), (float(t.pixel_range[0]), float(t.pixel_range[1]))
    spe = len(train.y) // int(t.batch_size)
    check(
        spe >= 1, f"table.batch_size {t.batch_size} is larger than the training set ({len(train.y)} images)"
    )
    opt = Opt(float(t.lr), float(t.momentum), bool(t.nesterov), float(t.weight_decay), int(t.batch_size), spe,
              tuple(t.milestones), bool(t.augment))  # fmt: skip
    lams = (0.0, *(float(v) for v in t.lambdas))
    seeds = list(range(int(t.restarts)))
    root = jax.random.PRNGKey(int(cfg.seed))
    keys = jnp.stack(
        [jax.random.fold_in(root, s) for _ in lams for s in seeds]
    )  # same init per seed for all λ
    lam_r = np.repeat(np.asarray(lams, np.float32), len(seeds))
    chunk = int(t.eval_chunk)
    check_x = val if val is not None else train
    data = {
        "x": train.x, "y": train.y,
        "tr_x": train.x[: int(t.n_train_eval)], "tr_y": train.y[: int(t.n_train_eval)],
        "ev_x": check_x.x, "ev_y": check_x.y,
        "vp_x": check_x.x[: int(t.n_val_pgd)], "vp_y": check_x.y[: int(t.n_val_pgd)],
    }  # fmt: skip
    eps_net = float(a.eps) * span
    attack_key = jax.random.fold_in(root, 2**30)
    pgd_kw = dict(steps=int(a.steps), step_frac=float(a.step_frac), clip=clip, chunk=chunk)

    def per_epoch(state, d):
        return {"eval_acc": clean_accuracy(arch, variables_of(state), d["ev_x"], d["ev_y"], chunk)}

    def final(state, d):
        v = variables_of(state)
        out = {"train_acc": clean_accuracy(arch, v, d["tr_x"], d["tr_y"], chunk)}
        if val is not None:
            out["val_acc"] = clean_accuracy(arch, v, d["ev_x"], d["ev_y"], chunk)
            out["val_pgd"] = pgd_accuracy(arch, v, d["vp_x"], d["vp_y"], eps_net, attack_key, **pgd_kw)
        return out

    steps = int(t.epochs) * spe
    evaluators = [trainer.Evaluator("final", final, every=0)]
    if int(t.eval_every_epochs) > 0:  # (costs two more compiled chunk lengths: spe − 1 and 1)
        evaluators.append(trainer.Evaluator("epoch", per_epoch, every=int(t.eval_every_epochs) * spe))
    t0 = time.perf_counter()
    result = trainer.train(
        make_task(arch, opt), data, keys, steps=steps, data_per_restart=False, evaluators=evaluators,
        algo_state={"lam": lam_r}, progress=progress, desc="table (all λ × seeds)", on_eval=on_eval,
        max_chunk=spe,  # one compiled chunk (an epoch), a progress update per epoch
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    trainer.report_failures("robustness table", result.failed_at, [f"λ={lv:g}" for lv in lam_r])
    fin = {kk: np.asarray(v).reshape(len(lams), len(seeds)) for kk, v in result.final.items()}
    val_acc = fin["val_acc"].mean(axis=1) if "val_acc" in fin else None
    val_pgd = fin["val_pgd"].mean(axis=1) if "val_pgd" in fin else None
    j, reason = select_lambda(lams, val_acc, val_pgd, str(t.select), float(t.select_tolerance))

    # test metrics of ERM and the chosen λ only (the other candidates' test PGD would cost as much and is unused)
    idx = np.concatenate([np.arange(len(seeds)), j * len(seeds) + np.arange(len(seeds))])
    v = _take(variables_of(result.state), idx)
    t1 = time.perf_counter()
    hits = np.asarray(correct_fn(arch, chunk)(v, test.x, test.y), np.float64)
    n_pgd = int(t.n_test_pgd) if int(t.n_test_pgd) > 0 else len(test.y)
    xp, yp = test.x[:n_pgd], test.y[:n_pgd]
    eps_list = sorted({float(a.eps), float(a.eps_text), *(float(e) for e in a.curve)})
    pgd_fn = pgd_accuracy_fn(arch, pgd_kw["steps"], pgd_kw["step_frac"], clip, chunk)
    clean = hits.mean(axis=1)
    curve = {0.0: hits[:, :n_pgd].mean(axis=1)}
    for e in eps_list:
        curve[e] = np.asarray(pgd_fn(v, xp, yp, e * span, attack_key))
    attack_s = time.perf_counter() - t1
    methods = {}
    for name, rows in (("erm", slice(0, len(seeds))), ("sd", slice(len(seeds), 2 * len(seeds)))):
        jj = 0 if name == "erm" else j
        m: dict[str, Any] = {"lam": lams[jj], "restarts": len(seeds)}
        for key, values in (
            ("train_acc", fin["train_acc"][jj]),
            ("clean_acc", clean[rows]),
            ("pgd_acc", curve[float(a.eps)][rows]),
            ("pgd_text_acc", curve[float(a.eps_text)][rows]),
        ):
            m[f"{key}_mean"], m[f"{key}_std"] = mean_std(values)
            m[f"{key}_per_seed"] = values
        m["eps"], m["eps_text"] = float(a.eps), float(a.eps_text)
        m["curve_eps"] = sorted(curve)
        m["curve_acc_mean"] = [float(np.mean(curve[e][rows])) for e in sorted(curve)]
        m["curve_acc_std"] = [float(np.std(curve[e][rows])) for e in sorted(curve)]
        methods[name] = m
    sweep = {
        f"{lv:g}": {
            "train_acc_mean": float(fin["train_acc"][i].mean()),
            **({"val_acc_mean": float(val_acc[i]), "val_pgd_mean": float(val_pgd[i])} if val_acc is not None else {}),
        }
        for i, lv in enumerate(lams)
    }  # fmt: skip
    return {
        "arch": dataclasses.asdict(arch),
        "n_train": len(train.y), "n_val": 0 if val is None else len(val.y), "n_test": len(test.y),
        "n_test_pgd": n_pgd, "classes": k, "steps": steps, "epochs": int(t.epochs),
        "selection": {"rule": str(t.select), "lambda": lams[j], "reason": reason},
        "sweep": sweep, "methods": methods, "train_s": round(train_s, 1), "attack_s": round(attack_s, 1),
        "_state": result.state, "_idx": idx, "_arch": arch, "_test": test,
        "_records": [{"part": "table", "lam": lv, "seed": s, **{kk: float(fin[kk][i, s]) for kk in fin}}
                     for i, lv in enumerate(lams) for s in seeds],
    }  # fmt: skip


def run_fig2(cfg, raw, progress=None) -> dict[str, Any]:
    """Part (b): ERM and SD (same initialisation and batch order) as two restarts; margins of the test images."""
    f = cfg.fig2
    train, _, test, k = part_splits(raw, tuple(f.classes), tuple(f.pixel_range), 0)
    check(k == 2, f"fig2.classes must name two classes, got {tuple(f.classes)}")
    arch = Arch("lenet", 2)
    spe = len(train.y) // int(f.batch_size)
    check(spe >= 1, f"fig2.batch_size {f.batch_size} is larger than the training set ({len(train.y)} images)")
    opt = Opt(float(f.lr), float(f.momentum), False, 0.0, int(f.batch_size), spe)
    key = jax.random.PRNGKey(int(f.seed))
    lam = np.asarray([0.0, float(f.sd_coef) * k], np.float32)  # Σ_c ŷ_c² = k · mean_c ŷ_c²

    def final(state, d):
        v = variables_of(state)
        return {
            "train_acc": clean_accuracy(arch, v, d["x"], d["y"], 500),
            "test_acc": clean_accuracy(arch, v, d["sx"], d["sy"], 500),
        }

    t0 = time.perf_counter()
    result = trainer.train(
        make_task(arch, opt), {"x": train.x, "y": train.y, "sx": test.x, "sy": test.y}, jnp.stack([key, key]),
        steps=int(f.epochs) * spe, data_per_restart=False, evaluators=[trainer.Evaluator("final", final, every=0)],
        algo_state={"lam": lam}, progress=progress, desc="fig2 (ERM, SD)", max_chunk=spe,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    n = min(int(f.n_points), len(test.y))
    span = _span(f.pixel_range)
    t1 = time.perf_counter()
    margins = np.asarray(
        margin_fn(arch, float(f.eps_max) * span / 2, float(f.tol) * span / 2, int(f.steps),
                  (float(f.pixel_range[0]), float(f.pixel_range[1])))(
            variables_of(result.state), test.x[:n], test.y[:n]
        )
    ) * (2.0 / span)  # fmt: skip
    return {
        "classes": list(f.classes), "n_train": len(train.y), "n_test": len(test.y), "n_points": n,
        "steps": int(f.epochs) * spe, "batch_size": int(f.batch_size), "sd_coef_sum": float(f.sd_coef),
        "train_acc": np.asarray(result.final["train_acc"]), "test_acc": np.asarray(result.final["test_acc"]),
        "margins": margins, "train_s": round(train_s, 1), "margin_s": round(time.perf_counter() - t1, 1),
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


def table_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """Table 1 layout: train / clean test / PGD test (both ε), mean ± std in %, and the paper's CIFAR rows."""
    rows = []
    for name in ("erm", "sd"):
        m = summary["methods"][name]
        rows.append({
            "data": summary["data"], "method": f"{name.upper()} (λ={m['lam']:g})",
            "train": format_mean_std(m["train_acc_mean"], m["train_acc_std"]),
            "clean test": format_mean_std(m["clean_acc_mean"], m["clean_acc_std"]),
            f"PGD ε={m['eps'] * 255:g}/255": format_mean_std(m["pgd_acc_mean"], m["pgd_acc_std"]),
            f"PGD ε={m['eps_text']:g}": format_mean_std(m["pgd_text_acc_mean"], m["pgd_text_acc_std"]),
            "median margin": f"{m['margin_median']:.4f}",
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
    raw = load_raw(cfg)
    check(cfg.table.enabled, "table.enabled=false: the output contract needs the Table 1 part")
    summary: dict[str, Any] = {
        "data": raw[0], "eps": float(cfg.attack.eps), "eps_units": "[0, 1] pixels (× 2 on [-1, 1] inputs)",
        "attack": {"norm": "linf", "eps": float(cfg.attack.eps), "eps_text": float(cfg.attack.eps_text),
                   "step": f"{cfg.attack.step_frac:g}·ε", "steps": int(cfg.attack.steps), "random_start": True},
        "margin_units": "L∞ in the [-1, 1] input scale (the authors' Fig. 2 units; 2 × pixel units)",
    }  # fmt: skip

    def log(record):
        run_dir.log_metrics({"part": "table", "step": record["step"],
                             **{k: float(np.mean(v)) for k, v in record.items() if k != "step"}})  # fmt: skip

    tab = run_table(cfg, raw, progress=progress, on_eval=log)
    state, idx, arch, test, records = (tab.pop(k) for k in ("_state", "_idx", "_arch", "_test", "_records"))
    for record in records:
        run_dir.log_metrics(record)
    summary["table"] = {k: v for k, v in tab.items() if k != "methods"}
    summary["methods"] = tab["methods"]
    f = cfg.fig2
    if f.enabled:
        fig = run_fig2(cfg, raw, progress=progress)
        margins = {"erm": fig["margins"][0], "sd": fig["margins"][1]}
        summary["fig2"] = {k: v for k, v in fig.items() if k != "margins"}
        summary["fig2"]["source"] = "fig2 part (two-class LeNet, ERM vs SD)"
        for i, name in enumerate(("erm", "sd")):
            run_dir.log_metrics({"part": "fig2", "method": name, "train_acc": float(fig["train_acc"][i]),
                                 "test_acc": float(fig["test_acc"][i])})  # fmt: skip
    else:  # margins of the Table 1 nets (first restart of ERM and of the chosen λ)
        n = min(int(f.n_points), len(test.y))
        span = _span(cfg.table.pixel_range)
        lo_hi = (float(cfg.table.pixel_range[0]), float(cfg.table.pixel_range[1]))
        v = _take(variables_of(state), idx[[0, cfg.table.restarts]])
        m = np.asarray(margin_fn(arch, float(f.eps_max) * span / 2, float(f.tol) * span / 2, int(f.steps), lo_hi)(
            v, test.x[:n], test.y[:n])) * (2.0 / span)  # fmt: skip
        margins = {"erm": m[0], "sd": m[1]}
        summary["fig2"] = {"source": "Table 1 nets, first restart", "n_points": n}
    for name in ("erm", "sd"):
        summary["methods"][name].update(margin_summary(margins[name]))
    np.savez(run_dir.file("margins.npz"), **margins)
    summary["wall_s_total"] = round(time.perf_counter() - t_start, 1)
    run_dir.write_summary(summary)

    table = markdown_table(table_rows(summary), f"Table 1 analogue — data: {summary['data']} (mean ± std, %)")
    sel = summary["table"]["selection"]
    text = table + f"\nλ selection ({sel['rule']}): λ = {sel['lambda']:g}; {sel['reason']}\n"
    text += "sweep: " + ", ".join(f"λ={k}: {v}" for k, v in summary["table"]["sweep"].items()) + "\n"
    text += (f"median margin ([-1, 1] units): ERM {summary['methods']['erm']['margin_median']:.4f}, "
             f"SD {summary['methods']['sd']['margin_median']:.4f}\n")  # fmt: skip
    print(text)
    run_dir.write_text("table.md", text)
    run_dir.save_figure(plots.margin_cdf(margins, summary["data"]), "margin_cdf")
    run_dir.save_figure(plots.pgd_curves(summary["methods"], summary["data"]), "pgd_vs_eps")
    print(f"[gs-jax] robustness: {summary['wall_s_total']:.1f} s -> {run_dir.path}", file=sys.stderr)
    return summary
