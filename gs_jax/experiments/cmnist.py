"""Colored MNIST (Section 4.3, Table 2 and Fig. 3; SPEC §2): every method's restarts as one vmapped program on the
generic trainer, the Table 2 summary and its tables, the Fig. 3 four-environment numbers.

Data flow: ``configs/cmnist.py`` → :func:`run_cmnist` → ``gs_jax.data.colored_mnist`` (environments per restart) →
:func:`make_task` (model, algorithm record, torch-default Adam) → ``gs_jax.trainer.train`` (evaluators: the train
and test metrics every ``eval_every`` steps, the four environments after the last update) → summary, tables, figures.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gs_jax import algorithms, losses, models, runs, trainer
from gs_jax.data import colored_mnist, mnist
from gs_jax.errors import check
from gs_jax.reporting import markdown_table, mean_std_str

eval_steps = trainer.eval_steps


class CmnistResult(NamedTuple):
    """What :func:`train_restarts` returns (numpy arrays, leading axis = restart)."""

    history: list[dict[str, Any]]  # one record per evaluation: {"step": s, metric: (R,) array}
    final: dict[str, np.ndarray]  # the record at step steps−1 (forward pass before that step's update)
    four_env: dict[str, dict[str, np.ndarray]]  # env -> {"acc": (R,), "entropy": (R,)} after the last update
    failed_at: np.ndarray  # (R,) first non-finite step or −1
    params: Any  # final parameters (R, ...)


def _model(hp: algorithms.Hyper) -> models.CmnistMLP:
    return models.CmnistMLP(hidden=hp.hidden, grayscale=hp.grayscale)


def _logits(model, params, x_end):
    """Logits of the stacked training environments: (E, n, d) -> (E, n)."""
    e, n, d = x_end.shape
    return model.apply({"params": params}, x_end.reshape(e * n, d)).reshape(e, n)


@functools.cache
def make_task(hp: algorithms.Hyper) -> trainer.Task:
    """The trainer's :class:`~gs_jax.trainer.Task` for one method: the authors' MLP, the method's loss on the
    stacked training environments, full-batch torch-default Adam (SPEC conventions). Cached per ``hp``, so the
    compiled chunk programs are reused by every call with the same hyper-parameters."""
    model = _model(hp)
    algorithm = algorithms.get(hp.algorithm)

    def init(key, data):
        return model.init(key, data["train_x"][0][:1])["params"], {}

    def loss(params, model_state, algo_state, batch, step, key):
        value, aux, algo_state = algorithm.loss(
            hp, algo_state, step, _logits(model, params, batch["train_x"]), batch["train_y"], params
        )
        return value, (model_state, algo_state, None)

    optimizer = optax.adam(hp.lr, b1=0.9, b2=0.999, eps=1e-8)  # torch Adam defaults
    return trainer.Task(init=init, loss=loss, optimizer=optimizer, algo_state=algorithm.init_state(hp))


@functools.cache
def evaluators(hp: algorithms.Hyper, eval_every: int) -> tuple[trainer.Evaluator, ...]:
    """Train/test metrics every ``eval_every`` steps (before that step's update) and the four environments of
    Fig. 3 after the last update (when the data holds them)."""
    model = _model(hp)
    algorithm = algorithms.get(hp.algorithm)

    def metrics(state, data):
        logits_en = _logits(model, state.params, data["train_x"])
        ty = data["train_y"]
        loss, aux, _ = algorithm.loss(hp, state.algo_state, state.step, logits_en, ty, state.params)
        test_logits = model.apply({"params": state.params}, data["test_x"])
        out = {
            "loss": loss,
            "train_nll": losses.mean_nll(logits_en, ty),
            "train_acc": losses.mean_accuracy(logits_en, ty),
            "test_nll": losses.mean_nll(test_logits, data["test_y"]),
            "test_acc": losses.mean_accuracy(test_logits, data["test_y"]),
            "mean_abs_logit": jnp.mean(jnp.abs(logits_en)),
        }
        if "penalty" in aux:
            out["penalty"] = aux["penalty"]
        return out

    def four(state, data):
        logits = jax.vmap(lambda x: model.apply({"params": state.params}, x))(data["four_x"])
        return {
            "four_acc": jax.vmap(losses.mean_accuracy)(logits, data["four_y"]),
            "four_entropy": jax.vmap(losses.binary_entropy_from_logits)(logits),
        }

    return (
        trainer.Evaluator("metrics", metrics, every=eval_every),
        trainer.Evaluator("four_env", four, every=0),
    )


def train_restarts(
    hp: algorithms.Hyper,
    data: dict[str, np.ndarray],
    seeds: list[int],
    *,
    eval_every: int = 50,
    name: str = "",
    progress: Callable | None = None,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    restart_block: int | None = None,
) -> CmnistResult:
    """Train ``len(seeds)`` restarts of one method with full-batch Adam, vmapped over restarts.

    ``data`` holds arrays with a leading restart axis (:func:`gs_jax.data.colored_mnist.stack_restarts`); restart r is
    initialised from ``jax.random.PRNGKey(seeds[r])``. A restart whose loss turns non-finite freezes and is reported
    on stderr (method, restart, step). ``restart_block`` (default ``trainer.auto_restart_block`` of the hidden
    activations) only changes the speed.
    """
    evs = evaluators(hp, eval_every)
    if "four_x" not in data:
        evs = evs[:1]
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    result = trainer.train(
        make_task(hp),
        data,
        keys,
        steps=hp.steps,
        evaluators=evs,
        progress=progress,
        desc=name or hp.algorithm,
        on_eval=on_eval,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        restart_block=_restart_block(hp, data) if restart_block is None else restart_block,
    )
    trainer.report_failures(name or hp.algorithm, result.failed_at, seeds)
    four_env = {}
    if "four_acc" in result.final:
        four_env = {
            env: {"acc": result.final["four_acc"][:, i], "entropy": result.final["four_entropy"][:, i]}
            for i, env in enumerate(colored_mnist.FOUR_ENVS)
        }
    return CmnistResult(result.history, result.history[-1], four_env, result.failed_at, result.state.params)


def _restart_block(hp: algorithms.Hyper, data) -> int:
    e, n = data["train_x"].shape[1:3]  # (R, E, n, d)
    return trainer.auto_restart_block(e * n * 2 * hp.hidden * 4)


def _hyper(block, max_steps: int = 0) -> algorithms.Hyper:
    hp = algorithms.Hyper(**{k: block[k] for k in algorithms.Hyper._fields if k in block})
    return hp._replace(steps=min(hp.steps, max_steps)) if max_steps > 0 else hp


def summarize_method(result: CmnistResult, hp: algorithms.Hyper, seeds: list[int]) -> dict[str, Any]:
    """Table 2 metrics (mean ± population std over the finite restarts) and the Fig. 3 four-env numbers.

    The four-env ``acc``/``entropy`` are those of the LAST restart, as the authors' code (SPEC §2.6); the means over
    all restarts are given beside them.
    """
    ok = result.failed_at < 0
    final = {k: np.asarray(v)[ok] for k, v in result.final.items() if k != "step"}
    out = {
        "steps": hp.steps,
        "hyper": hp._asdict(),
        "restarts_ok": int(ok.sum()),
        "failed_restarts": {int(seeds[r] - seeds[0]): int(result.failed_at[r]) for r in np.flatnonzero(~ok)},
    }
    for key in ("train_acc", "test_acc", "train_nll", "test_nll"):
        vals = final[key] if ok.any() else np.array([np.nan])
        out[f"{key}_mean"] = float(np.mean(vals)) if ok.any() else None
        out[f"{key}_std"] = float(np.std(vals)) if ok.any() else None
    out["train_acc_per_restart"] = [float(v) for v in np.asarray(result.final["train_acc"])]
    out["test_acc_per_restart"] = [float(v) for v in np.asarray(result.final["test_acc"])]
    out["four_env"] = {
        env: {
            "acc": float(v["acc"][-1]),
            "entropy": float(v["entropy"][-1]),
            "acc_mean_over_restarts": float(np.mean(v["acc"])),
            "entropy_mean_over_restarts": float(np.mean(v["entropy"])),
        }
        for env, v in result.four_env.items()
    }
    return out


def table2_rows(summary: dict[str, Any], paper: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of Table 2 (ours and the paper's, in %) from a run summary."""

    def pm(m, s):
        return mean_std_str(None if m is None else 100 * m, None if s is None else 100 * s, "{:.1f}")

    rows = []
    for name, m in summary["methods"].items():
        p = paper.get(name)
        rows.append(
            {
                "method": name,
                "train": pm(m["train_acc_mean"], m["train_acc_std"]),
                "test": pm(m["test_acc_mean"], m["test_acc_std"]),
                "paper train": f"{p[0]:.1f} ± {p[1]:.1f}" if p else "—",
                "paper test": f"{p[2]:.1f} ± {p[3]:.1f}" if p else "—",
                "restarts": f"{m['restarts_ok']}/{summary['restarts']}",
                "steps": str(m["steps"]),
            }
        )
    return rows


def run_cmnist(cfg, run_dir) -> dict[str, Any]:
    """``make train-cmnist``: train every method of ``cfg.methods``, print Table 2, write the summary and figures.

    Writes (rewritten after every method, so a partial run leaves valid files): ``summary.json``, ``table2.md``,
    ``table2.json``, ``metrics.jsonl`` (every evaluation of every restart), ``fig3_four_envs.{png,pdf}`` and
    ``learning_curves.{png,pdf}``.
    """
    check(cfg.restarts >= 1, f"restarts must be ≥ 1, got {cfg.restarts}")
    for name in cfg.methods:
        check(name in cfg.hp, f"unknown method {name!r} in methods; choose from {', '.join(cfg.hp.keys())}")
    pool = mnist.load_pool(cfg.data.dataset, cfg.data.dir, cfg.data.n_train_pool, verify=cfg.data.verify)
    seeds = [cfg.seed + r for r in range(cfg.restarts)]
    data = colored_mnist.stack_restarts([colored_mnist.build_restart(pool, s) for s in seeds])
    print(
        f"[gs-jax] cmnist: data {pool.name} ({pool.train_images.shape[0]} train-pool / {pool.test_images.shape[0]} "
        f"test images; {pool.source}), {cfg.restarts} restarts",
        file=sys.stderr,
    )
    # The paper's numbers are for MNIST; no paper reports Colored Fashion-MNIST, so its table has no paper column.
    paper = {k: tuple(v) for k, v in cfg.paper.items()} if pool.name != "fashion-mnist" else {}
    summary = {
        "data": pool.name,
        "data_source": pool.source,
        "restarts": cfg.restarts,
        "seeds": seeds,
        "methods": {},
        "histories": {},
    }
    histories = {}
    for name in cfg.methods:
        hp = _hyper(cfg.hp[name], cfg.max_steps)
        t0 = time.perf_counter()

        def log(record, name=name):
            for r in range(cfg.restarts):
                row = {k: (v if k == "step" else float(v[r])) for k, v in record.items()}
                run_dir.log_metrics({"method": name, "restart": r, **row})

        result = train_restarts(
            hp,
            data,
            seeds,
            eval_every=cfg.eval_every,
            name=name,
            progress=runs.progress,
            on_eval=log,
            checkpoint_dir=run_dir.file("checkpoints") / name,
            resume=run_dir.resumed,
        )
        summary["methods"][name] = summarize_method(result, hp, seeds)
        summary["methods"][name]["wall_s"] = round(time.perf_counter() - t0, 1)
        histories[name] = result.history
        summary["histories"][name] = {
            k: [float(np.mean(h[k])) if k != "step" else h[k] for h in result.history]
            for k in result.history[0]
        }
        _write_cmnist_outputs(run_dir, summary, paper, histories)
    rows = table2_rows(summary, paper)
    print(markdown_table(rows, f"Table 2 (Colored MNIST) — data: {pool.name}; {cfg.restarts} restarts"))
    four = _four_env_text(summary)
    if four:
        print(four)
    return summary


def _four_env_text(summary) -> str:
    rows = [
        {
            "method": name,
            **{env: f"{100 * v['acc']:.1f} % / {v['entropy']:.2f}" for env, v in m["four_env"].items()},
        }
        for name, m in summary["methods"].items()
        if m["four_env"]
    ]
    if not rows:
        return ""
    return markdown_table(rows, "Fig. 3 four environments (last restart): accuracy / entropy (nats)")


def _write_cmnist_outputs(run_dir, summary, paper, histories) -> None:
    from gs_jax.plotting import cmnist as cmnist_plots

    rows = table2_rows(summary, paper)
    title = f"Table 2 (Colored MNIST) — data: {summary['data']}; {summary['restarts']} restarts"
    run_dir.write_text("table2.md", markdown_table(rows, title) + "\n" + _four_env_text(summary))
    run_dir.write_json(
        "table2.json", {"data": summary["data"], "restarts": summary["restarts"], "rows": rows}
    )
    run_dir.write_summary(summary)
    four = {name: m["four_env"] for name, m in summary["methods"].items() if m["four_env"]}
    if four:
        fig = cmnist_plots.four_env_figure(four, data_name=summary["data"])
        run_dir.save_figure(fig, "fig3_four_envs")
    fig = cmnist_plots.learning_curves(histories, data_name=summary["data"])
    run_dir.save_figure(fig, "learning_curves")
