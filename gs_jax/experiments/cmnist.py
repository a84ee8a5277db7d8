"""Colored MNIST (Section 4.3, Table 2 and Fig. 3; SPEC §2): every row of ``methods.enabled`` on the shared
platform — the registry's method losses (``gs_jax.algorithms``), ``models.build("cmnist_mlp")``, torch Adam
(``gs_jax.optim``), ``supervised.make_task`` — its restarts (× hyper-parameter settings) as one vmapped program.

Data flow: ``configs/cmnist.py`` → :func:`run_cmnist` → ``gs_jax.data.colored_mnist`` (environments per restart) →
:func:`restart_data` (the two training environments flattened, with ``env`` and ``group = 2·y + colour`` labels) →
:func:`train_restarts` (full batch; JTT's weighted draws; the evaluators: train/test metrics every ``eval_every``
steps, the four environments of Fig. 3 after the last update) → summary, tables, figures. JTT's first stage and
DFR's refit are in :mod:`gs_jax.experiments.cmnist_methods`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from gs_jax import algorithms, config, runs
from gs_jax.data import colored_mnist, mnist
from gs_jax.experiments import cmnist_methods
from gs_jax.experiments.cmnist_core import (  # noqa: F401  (the public names of the Colored MNIST experiment)
    FIELDS,
    N_ENVS,
    N_GROUPS,
    SCHEDULE_KEYS,
    CmnistResult,
    Row,
    data_info,
    eval_steps,
    evaluators_of,
    model_of,
    restart_data,
    rows,
    spec_of,
    train_restarts,
)
from gs_jax.reporting import markdown_table, mean_std_str

# ---------------------------------------------------------------------------------------------------------------
# Summaries and the run
# ---------------------------------------------------------------------------------------------------------------


def summarize_method(result: CmnistResult, seeds: list[int], **about) -> dict[str, Any]:
    """Table 2 metrics (mean ± population std over the finite restarts) and the Fig. 3 four-env numbers.

    The four-env ``acc``/``entropy`` are those of the LAST restart, as the authors' code (SPEC §2.6); the means over
    all restarts are given beside them. ``about``: what the row ran (method, hyper-parameters, schedule).
    """
    ok = result.failed_at < 0
    final = {k: np.asarray(v)[ok] for k, v in result.final.items() if k != "step"}
    out = {**about, "restarts_ok": int(ok.sum()),
           "failed_restarts": {int(seeds[r] - seeds[0]): int(result.failed_at[r]) for r in np.flatnonzero(~ok)}}  # fmt: skip
    for key in ("train_acc", "test_acc", "train_nll", "test_nll"):
        if key not in final:
            continue
        out[f"{key}_mean"] = float(np.mean(final[key])) if ok.any() else None
        out[f"{key}_std"] = float(np.std(final[key])) if ok.any() else None
    out["train_acc_per_restart"] = [float(v) for v in np.asarray(result.final["train_acc"])]
    out["test_acc_per_restart"] = [float(v) for v in np.asarray(result.final["test_acc"])]
    out["four_env"] = {
        env: {"acc": float(v["acc"][-1]), "entropy": float(v["entropy"][-1]),
              "acc_mean_over_restarts": float(np.mean(v["acc"])),
              "entropy_mean_over_restarts": float(np.mean(v["entropy"]))}
        for env, v in result.four_env.items()
    }  # fmt: skip
    return out


def table2_rows(summary: dict[str, Any], paper: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of Table 2 (ours and the paper's, in %) from a run summary."""

    def pm(m, s):
        return mean_std_str(None if m is None else 100 * m, None if s is None else 100 * s, "{:.1f}")

    out = []
    for name, m in summary["methods"].items():
        p = paper.get(name)
        out.append({"method": name, "train": pm(m.get("train_acc_mean"), m.get("train_acc_std")),
                    "test": pm(m.get("test_acc_mean"), m.get("test_acc_std")),
                    "paper train": f"{p[0]:.1f} ± {p[1]:.1f}" if p else "—",
                    "paper test": f"{p[2]:.1f} ± {p[3]:.1f}" if p else "—",
                    "restarts": f"{m['restarts_ok']}/{summary['restarts']}", "steps": str(m["steps"])})  # fmt: skip
    return out


def run_cmnist(cfg, run_dir) -> dict[str, Any]:
    """``make train-cmnist``: train every row of ``cfg.methods.enabled``, print Table 2, write the summary, figures.

    Writes (rewritten after every row, so a partial run leaves valid files): ``summary.json``, ``table2.md``,
    ``table2.json``, ``metrics.jsonl`` (every evaluation of every restart), ``fig3_four_envs.{png,pdf}`` and
    ``learning_curves.{png,pdf}``. ``--resume`` continues every row from its checkpoints.
    """
    config.check_sizes(cfg, {"restarts": 1, "eval_every": 1, "max_steps": 0, "data.n_train_pool": 2})
    todo = rows(cfg)
    pool = mnist.load_pool(cfg.data.dataset, cfg.data.dir, cfg.data.n_train_pool, verify=cfg.data.verify)
    seeds = [cfg.seed + r for r in range(cfg.restarts)]
    data = restart_data([colored_mnist.build_restart(pool, s) for s in seeds])
    info = data_info(data, 0, pool.name)
    for row in todo:
        for hp in row.settings:
            algorithms.check_supported(row.method, hp, info)
        cmnist_methods.check_row(row)
    print(f"[gs-jax] cmnist: data {pool.name} ({pool.train_images.shape[0]} train-pool / {pool.test_images.shape[0]} "
          f"test images; {pool.source}), {cfg.restarts} restarts", file=sys.stderr)  # fmt: skip
    # The paper's numbers are for MNIST; no paper reports Colored Fashion-MNIST, so its table has no paper column.
    paper = {k: tuple(v) for k, v in cfg.paper.items()} if pool.name != "fashion-mnist" else {}
    summary = {"data": pool.name, "data_source": pool.source, "restarts": cfg.restarts, "seeds": seeds,
               "methods": {}, "histories": {}}  # fmt: skip
    histories = {}
    for row in todo:
        t0 = time.perf_counter()

        def log(record, label=row.name):
            for r in range(len(next(v for k, v in record.items() if k != "step"))):
                line = {k: (v if k == "step" else float(v[r])) for k, v in record.items()}
                run_dir.log_metrics({"method": label, "restart": r, **line})

        ckpt = run_dir.file("checkpoints") / row.name
        kw = dict(eval_every=cfg.eval_every, progress=runs.progress, on_eval=log, resume=run_dir.resumed,
                  checkpoint_every_s=float(cfg.checkpoint_every_s))  # fmt: skip
        results, extra = cmnist_methods.run_row(row, data, seeds, checkpoint_dir=ckpt, **kw)
        labels = [row.name] if len(results) == 1 else [algorithms.label(row.name, hp) for hp in row.settings]
        for label, hp, result in zip(labels, row.settings, results, strict=True):
            about = {
                "method": row.method,
                "steps": row.schedule["steps"],
                "hyper": hp,
                "schedule": row.schedule,
            }
            summary["methods"][label] = {**summarize_method(result, seeds, **about), **extra}
            summary["methods"][label]["wall_s"] = round(time.perf_counter() - t0, 1)
            histories[label] = result.history
            summary["histories"][label] = {k: [float(np.mean(h[k])) if k != "step" else h[k] for h in result.history]
                                           for k in result.history[0]}  # fmt: skip
        _write_cmnist_outputs(run_dir, summary, paper, histories)
    print(markdown_table(table2_rows(summary, paper),
                         f"Table 2 (Colored MNIST) — data: {pool.name}; {cfg.restarts} restarts"))  # fmt: skip
    four = _four_env_text(summary)
    if four:
        print(four)
    return summary


def _four_env_text(summary) -> str:
    rows_ = [{"method": name, **{env: f"{100 * v['acc']:.1f} % / {v['entropy']:.2f}" for env, v in m["four_env"].items()}}
             for name, m in summary["methods"].items() if m["four_env"]]  # fmt: skip
    if not rows_:
        return ""
    return markdown_table(rows_, "Fig. 3 four environments (last restart): accuracy / entropy (nats)")


def _write_cmnist_outputs(run_dir, summary, paper, histories) -> None:
    from gs_jax.plotting import cmnist as cmnist_plots

    table = table2_rows(summary, paper)
    title = f"Table 2 (Colored MNIST) — data: {summary['data']}; {summary['restarts']} restarts"
    run_dir.write_text("table2.md", markdown_table(table, title) + "\n" + _four_env_text(summary))
    run_dir.write_json(
        "table2.json", {"data": summary["data"], "restarts": summary["restarts"], "rows": table}
    )
    run_dir.write_summary(summary)
    four = {name: m["four_env"] for name, m in summary["methods"].items() if m["four_env"]}
    if four:
        run_dir.save_figure(cmnist_plots.four_env_figure(four, data_name=summary["data"]), "fig3_four_envs")
    run_dir.save_figure(cmnist_plots.learning_curves(histories, data_name=summary["data"]), "learning_curves")
