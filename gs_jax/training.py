"""Functional training: explicit train state pytrees, pure jitted steps, restarts/seeds as a vmap axis."""

from __future__ import annotations

# ----------------------------------------------------------------------------------------------------------------
# Colored MNIST: full-batch Adam over all restarts of one method as ONE jit-compiled, vmapped program (SPEC §2.4)
# ----------------------------------------------------------------------------------------------------------------
import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gs_jax import algorithms, losses, models


class TrainState(NamedTuple):
    """State of one restart (a leading restart axis under vmap)."""

    params: Any
    opt_state: Any
    step: jax.Array  # int32: the next step to take
    failed_at: jax.Array  # int32: first step whose loss was not finite, −1 while all are finite


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train_restarts` returns (numpy arrays, leading axis = restart)."""

    history: list[dict[str, Any]]  # one record per evaluation: {"step": s, metric: (R,) array}
    final: dict[str, np.ndarray]  # the record at step steps−1 (forward pass before that step's update)
    four_env: dict[str, dict[str, np.ndarray]]  # env -> {"acc": (R,), "entropy": (R,)} after the last update
    failed_at: np.ndarray  # (R,) first non-finite step or −1
    params: Any  # final parameters (R, ...)


def eval_steps(steps: int, every: int) -> list[int]:
    """Steps at which metrics are computed (before that step's update): 0, k, 2k, … and the last step."""
    return sorted(set(range(0, steps, max(1, every))) | {steps - 1})


def make_cmnist_trainer(hp: algorithms.Hyper):
    """Pure functions for one method: ``init(key, x)``, ``chunk(state, tx, ty, length)``, ``evaluate``, ``four``.

    None is jitted or vmapped here; :func:`train_restarts` does both at the boundary.
    """
    model = models.CmnistMLP(hidden=hp.hidden, grayscale=hp.grayscale)
    objective = algorithms.get(hp.algorithm)
    optimizer = optax.adam(hp.lr, b1=0.9, b2=0.999, eps=1e-8)  # torch Adam defaults (SPEC conventions)

    def apply(params, x_nd):
        return model.apply({"params": params}, x_nd)

    def logits_of(params, tx_end):
        e, n, d = tx_end.shape
        return apply(params, tx_end.reshape(e * n, d)).reshape(e, n)

    def init(key, x_nd):
        params = model.init(key, x_nd[:1])["params"]
        return TrainState(params, optimizer.init(params), jnp.int32(0), jnp.int32(-1))

    def loss_fn(params, step, tx_end, ty_en):
        return objective(hp, step, logits_of(params, tx_end), ty_en, params)

    def one_step(state: TrainState, tx_end, ty_en):
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.step, tx_end, ty_en)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & (state.failed_at < 0)
        keep = functools.partial(jnp.where, ok)  # a diverged restart stops: its state freezes
        failed_at = jnp.where((state.failed_at < 0) & ~jnp.isfinite(loss), state.step, state.failed_at)
        new = TrainState(
            jax.tree_util.tree_map(keep, params, state.params),
            jax.tree_util.tree_map(keep, opt_state, state.opt_state),
            state.step + 1,
            failed_at,
        )
        return new, loss

    def chunk(state, tx_end, ty_en, length: int):
        def body(s, _):
            return one_step(s, tx_end, ty_en)

        return jax.lax.scan(body, state, None, length=length)

    def evaluate(state: TrainState, tx_end, ty_en, test_x, test_y):
        logits_en = logits_of(state.params, tx_end)
        loss, aux = objective(hp, state.step, logits_en, ty_en, state.params)
        test_logits = apply(state.params, test_x)
        out = {
            "loss": loss,
            "train_nll": losses.mean_nll(logits_en, ty_en),
            "train_acc": losses.mean_accuracy(logits_en, ty_en),
            "test_nll": losses.mean_nll(test_logits, test_y),
            "test_acc": losses.mean_accuracy(test_logits, test_y),
            "mean_abs_logit": jnp.mean(jnp.abs(logits_en)),
        }
        if "penalty" in aux:
            out["penalty"] = aux["penalty"]
        return out

    def four(state: TrainState, four_x, four_y):
        logits = jax.vmap(apply, in_axes=(None, 0))(state.params, four_x)
        return {
            "acc": jax.vmap(losses.mean_accuracy)(logits, four_y),
            "entropy": jax.vmap(losses.binary_entropy_from_logits)(logits),
        }

    return init, chunk, evaluate, four


def train_restarts(
    hp: algorithms.Hyper,
    data: dict[str, np.ndarray],
    seeds: list[int],
    *,
    eval_every: int = 50,
    name: str = "",
    progress: Callable | None = None,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``len(seeds)`` restarts of one method with full-batch Adam, vmapped over restarts.

    ``data`` holds arrays with a leading restart axis (:func:`gs_jax.data.colored_mnist.stack_restarts`); restart r is
    initialised from ``jax.random.PRNGKey(seeds[r])``. Steps run in ``lax.scan`` chunks between evaluations; a
    restart whose loss turns non-finite freezes and is reported on stderr (method, restart, step).
    """
    init, chunk, evaluate, four = make_cmnist_trainer(hp)
    tx, ty = jnp.asarray(data["train_x"]), jnp.asarray(data["train_y"])
    test_x, test_y = jnp.asarray(data["test_x"]), jnp.asarray(data["test_y"])
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    state = jax.jit(jax.vmap(init))(keys, tx[:, 0])
    chunks = {}

    def run(state, length):
        if length not in chunks:
            fn = jax.vmap(functools.partial(chunk, length=length))
            chunks[length] = jax.jit(fn, donate_argnums=0)
        return chunks[length](state, tx, ty)

    evaluate_v = jax.jit(jax.vmap(evaluate))
    bar = progress(total=hp.steps, desc=name or hp.algorithm) if progress else None
    history, t = [], 0
    for s in eval_steps(hp.steps, eval_every):
        if s > t:
            state, _ = run(state, s - t)
            if bar is not None:
                bar.update(s - t)
            t = s
        record = {
            "step": s,
            **{k: np.asarray(v) for k, v in evaluate_v(state, tx, ty, test_x, test_y).items()},
        }
        history.append(record)
        if on_eval is not None:
            on_eval(record)
    state, _ = run(state, hp.steps - t)  # the update of the last step (reported metrics come from before it)
    if bar is not None:
        bar.update(hp.steps - t)
        bar.close()
    failed_at = np.asarray(state.failed_at)
    for r in np.flatnonzero(failed_at >= 0):
        print(
            f"[gs-jax] {name or hp.algorithm}: restart {r} (seed {seeds[r]}) stopped: non-finite loss at step "
            f"{failed_at[r]}; its parameters are frozen there and it is excluded from the table",
            file=sys.stderr,
        )
    four_env = {}
    if "four_x" in data:
        from gs_jax.data.colored_mnist import FOUR_ENVS

        out = jax.jit(jax.vmap(four))(state, jnp.asarray(data["four_x"]), jnp.asarray(data["four_y"]))
        four_env = {env: {k: np.asarray(v[:, i]) for k, v in out.items()} for i, env in enumerate(FOUR_ENVS)}
    return TrainResult(history, history[-1], four_env, failed_at, jax.device_get(state.params))


def _hyper(block, max_steps: int = 0) -> algorithms.Hyper:
    hp = algorithms.Hyper(**{k: block[k] for k in algorithms.Hyper._fields})
    return hp._replace(steps=min(hp.steps, max_steps)) if max_steps > 0 else hp


def summarize_method(result: TrainResult, hp: algorithms.Hyper, seeds: list[int]) -> dict[str, Any]:
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
        return "—" if m is None else f"{100 * m:.1f} ± {100 * s:.1f}"

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


def markdown_table(rows: list[dict[str, str]], title: str = "") -> str:
    """A GitHub markdown table (also readable as plain text)."""
    cols = list(rows[0].keys())
    lines = [f"{title}\n"] if title else []
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def run_cmnist(cfg, run_dir) -> dict[str, Any]:
    """``make train-cmnist``: train every method of ``cfg.methods``, print Table 2, write the summary and figures.

    Writes (rewritten after every method, so a partial run leaves valid files): ``summary.json``, ``table2.md``,
    ``table2.json``, ``metrics.jsonl`` (every evaluation of every restart), ``fig3_four_envs.{png,pdf}`` and
    ``learning_curves.{png,pdf}``.
    """
    import time

    from gs_jax import runs
    from gs_jax.data import colored_mnist, mnist
    from gs_jax.errors import check

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
    paper = {k: tuple(v) for k, v in cfg.paper.items()}
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
            hp, data, seeds, eval_every=cfg.eval_every, name=name, progress=runs.progress, on_eval=log
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
    import matplotlib.pyplot as plt

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
        plt.close(fig)
    fig = cmnist_plots.learning_curves(histories, data_name=summary["data"])
    run_dir.save_figure(fig, "learning_curves")
    plt.close(fig)
