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


# ----------------------------------------------------------------------------------------------------------------
# Two-moons (Section 2, Fig. 1, Appendix B; SPEC §1.2-1.5): full-batch SGD-momentum / Adam, seeds as a vmap axis,
# lax.scan over steps. Hyper-parameters (lr, weight decay, SD coefficient) are traced arguments, so every case with
# the same architecture and optimiser family runs the SAME compiled program.
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MoonsArch:
    """Static structure of a two-moons run (one compiled program per distinct value)."""

    hidden: int = 500
    n_hidden: int = 1
    dropout: float = 0.0
    batchnorm: bool = False
    optimizer: str = (
        "sgd"  # "sgd": torch SGD, momentum 0.9 (= optax.sgd(lr, 0.9)); "adam": torch Adam defaults
    )
    linearized: bool = (
        False  # train ŷ_lin(θ) = ŷ(θ₀) + Φ₀(θ − θ₀) instead of the network (neural_tangents.linearize)
    )


class MoonsHyper(NamedTuple):
    """Traced hyper-parameters (float32 scalars)."""

    lr: Any
    weight_decay: Any  # torch coupled L2: g += wd·θ before the optimiser, on ALL parameters (biases included)
    sd_coef: Any  # loss = mean CE + sd_coef · mean(ŷ²) (the authors' form of Eq. 17)


class MoonsState(NamedTuple):
    params: Any
    batch_stats: Any  # {} unless batchnorm
    opt_state: Any
    step: jax.Array


def moons_optimizer(name: str, lr, weight_decay) -> optax.GradientTransformation:
    """torch ``SGD(lr, momentum=0.9, weight_decay=wd)`` or ``Adam(lr, weight_decay=wd)`` as an optax chain.

    torch's momentum buffer starts at the first gradient (buf = g), which equals optax's zero-initialised trace
    after one step; torch's coupled weight decay is ``add_decayed_weights`` BEFORE the update rule (SPEC, conventions).
    """
    check_name = {
        "sgd": lambda: optax.sgd(lr, momentum=0.9),
        "adam": lambda: optax.adam(lr, 0.9, 0.999, 1e-8),
    }
    if name not in check_name:
        from gs_jax.errors import GsJaxError

        raise GsJaxError(f"unknown optimizer {name!r}; choose from sgd, adam")
    return optax.chain(optax.add_decayed_weights(weight_decay), check_name[name]())


@functools.cache
def make_moons_trainer(arch: MoonsArch):
    """Pure per-seed functions for one architecture: ``init``, ``run``, ``apply_eval``, ``apply_fn``.

    - ``init(key, x_n2) -> (MoonsState, params0)``;
    - ``run(state, params0, x_n2, y_n, hyper, key, n_outer, inner) -> (state, (logits_tn, loss_t))`` takes
      ``n_outer * inner`` full-batch steps (nested ``lax.scan``) and records the training logits and loss of the
      forward pass of every ``inner``-th step, BEFORE that step's update (as the authors' Fig. 1(d) code);
    - ``apply_eval(params, batch_stats, params0, x) -> logits`` in eval mode (no dropout, running BN statistics);
    - ``apply_fn(params, x)``: the plain network in eval mode (for the NTK; no batch statistics).
    None is jitted or vmapped here; :func:`train_moons` does both.
    """
    model = models.MoonsMLP(
        hidden=arch.hidden, n_hidden=arch.n_hidden, dropout=arch.dropout, batchnorm=arch.batchnorm
    )
    if arch.linearized and (arch.dropout > 0 or arch.batchnorm):
        from gs_jax.errors import GsJaxError

        raise GsJaxError("the linearised trainer supports plain MLPs only (dropout=0, batchnorm=False)")

    def apply_fn(params, x):
        return model.apply({"params": params}, x)

    def forward(params, batch_stats, params0, x, train, key):
        if arch.linearized:
            from gs_jax import ntk

            return ntk.linearize(apply_fn, params0)(params, x), batch_stats
        variables = {"params": params, **({"batch_stats": batch_stats} if arch.batchnorm else {})}
        rngs = {"dropout": key} if (train and arch.dropout > 0) else {}
        if arch.batchnorm and train:
            out, new = model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
            return out, new["batch_stats"]
        return model.apply(variables, x, train=train, rngs=rngs), batch_stats

    def init(key, x_n2):
        variables = model.init(key, x_n2[:1])
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        opt_state = moons_optimizer(arch.optimizer, 0.0, 0.0).init(params)
        return MoonsState(params, batch_stats, opt_state, jnp.int32(0)), params

    def loss_fn(params, batch_stats, params0, x_n2, y_n, hyper, key):
        logits, new_stats = forward(params, batch_stats, params0, x_n2, True, key)
        loss = losses.mean_nll(logits, y_n) + hyper.sd_coef * losses.sd_penalty(logits)
        return loss, (logits, new_stats)

    def one_step(state: MoonsState, params0, x_n2, y_n, hyper, key):
        opt = moons_optimizer(arch.optimizer, hyper.lr, hyper.weight_decay)
        step_key = jax.random.fold_in(key, state.step)
        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, params0, x_n2, y_n, hyper, step_key
        )
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return MoonsState(params, stats, opt_state, state.step + 1), (logits, loss)

    def run(state, params0, x_n2, y_n, hyper, key, n_outer: int, inner: int):
        def inner_body(s, _):
            s, _ = one_step(s, params0, x_n2, y_n, hyper, key)
            return s, None

        def outer_body(s, _):
            s, rec = one_step(s, params0, x_n2, y_n, hyper, key)
            if inner > 1:
                s, _ = jax.lax.scan(inner_body, s, None, length=inner - 1)
            return s, rec

        return jax.lax.scan(outer_body, state, None, length=n_outer)

    def apply_eval(params, batch_stats, params0, x):
        return forward(params, batch_stats, params0, x, False, None)[0]

    return init, run, apply_eval, apply_fn


@functools.cache
def _moons_jitted(arch: MoonsArch, n_outer: int, inner: int):
    init, run, apply_eval, _ = make_moons_trainer(arch)
    run_v = jax.vmap(functools.partial(run, n_outer=n_outer, inner=inner), in_axes=(0, 0, 0, 0, None, 0))
    return jax.jit(jax.vmap(init)), jax.jit(run_v, donate_argnums=0)


@dataclasses.dataclass(frozen=True)
class MoonsResult:
    """One case trained over S seeds (numpy, leading axis = seed)."""

    state: MoonsState  # final state (params, batch_stats, ...)
    params0: Any  # initial parameters
    logits_stn: (
        np.ndarray
    )  # recorded training logits, (S, T, n) at ``record_steps`` (pre-update forward passes)
    loss_st: np.ndarray  # (S, T) training loss at ``record_steps``
    record_steps: np.ndarray  # (T,)


def train_moons(
    arch: MoonsArch,
    hyper: MoonsHyper,
    x_sn2: np.ndarray,
    y_sn: np.ndarray,
    keys_s: jax.Array,
    steps: int,
    *,
    record_every: int = 10,
    chunk_steps: int = 10_000,
    progress: Callable | None = None,
    desc: str = "",
) -> MoonsResult:
    """Train one case for ``steps`` full-batch steps on every seed at once (``vmap`` over seeds, ``lax.scan``).

    Steps run in compiled chunks of ``chunk_steps`` (the 100,000-step "longer" case reuses the 10,000-step
    program). ``record_every`` steps the pre-update training logits are kept (for the z-curves of Fig. 1(d)).
    """
    from gs_jax.errors import check

    check(
        steps >= 1 and record_every >= 1, f"steps and record_every must be ≥ 1, got {steps}, {record_every}"
    )
    chunk = min(chunk_steps, steps)
    check(
        steps % chunk == 0 and chunk % record_every == 0,
        f"steps ({steps}) must be a multiple of chunk_steps ({chunk}), itself a multiple of record_every "
        f"({record_every})",
    )
    init_v, run_v = _moons_jitted(arch, chunk // record_every, record_every)
    x, y = jnp.asarray(x_sn2, jnp.float32), jnp.asarray(y_sn, jnp.float32)
    hyper = MoonsHyper(*(jnp.float32(v) for v in hyper))
    state, params0 = init_v(keys_s, x)
    drop_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys_s)
    logits, loss = [], []
    bar = progress(total=steps, desc=desc) if progress else None
    for _ in range(steps // chunk):
        state, (lg, ls) = run_v(state, params0, x, y, hyper, drop_keys)
        logits.append(np.asarray(lg))
        loss.append(np.asarray(ls))
        if bar is not None:
            bar.update(chunk)
    if bar is not None:
        bar.close()
    return MoonsResult(
        state=jax.device_get(state),
        params0=jax.device_get(params0),
        logits_stn=np.concatenate(logits, axis=1),
        loss_st=np.concatenate(loss, axis=1),
        record_steps=np.arange(0, steps, record_every),
    )


def moons_case(block) -> tuple[MoonsArch, MoonsHyper]:
    """The static architecture and traced hyper-parameters of one config case block (configs/moons.py)."""
    arch = MoonsArch(
        hidden=int(block.hidden),
        n_hidden=int(block.n_hidden),
        dropout=float(block.dropout),
        batchnorm=bool(block.batchnorm),
        optimizer=str(block.optimizer),
    )
    return arch, MoonsHyper(float(block.lr), float(block.weight_decay), float(block.sd_coef))


def moons_keys(root_seed: int, case: str, seeds) -> jax.Array:
    """One PRNG key per (case, seed): ``fold_in(fold_in(PRNGKey(root), crc32(case)), seed)`` (SPEC §1.2: the torch
    streams cannot be matched; every experiment of every seed gets its own initialisation)."""
    import zlib

    base = jax.random.fold_in(jax.random.PRNGKey(root_seed), zlib.crc32(case.encode()) & 0x7FFFFFFF)
    return jnp.stack([jax.random.fold_in(base, int(s)) for s in seeds])


def _moons_chunk(arch: MoonsArch, n_seeds: int) -> int:
    """Grid points per evaluation chunk: about 2²² hidden activations (16 MiB) per chunk over all seeds."""
    return max(256, 2**22 // max(arch.hidden, 1) // max(n_seeds, 1))


@functools.cache
def moons_eval_fn(arch: MoonsArch, points_per_chunk: int = 4096):
    """``f(state, params0, x_sn2) -> logits (S, N)`` in eval mode, jitted, over any number of points per seed
    (evaluated in chunks with ``lax.map`` so a 5,000-wide net on a fine grid fits in memory)."""
    _, _, apply_eval, _ = make_moons_trainer(arch)

    def one(params, stats, params0, x_n2):
        n = x_n2.shape[0]
        c = min(points_per_chunk, n)
        pad = (-n) % c
        xp = jnp.concatenate([x_n2, jnp.zeros((pad, 2), x_n2.dtype)]).reshape(-1, c, 2)
        out = jax.lax.map(lambda xc: apply_eval(params, stats, params0, xc), xp)
        return out.reshape(-1)[:n]

    f = jax.jit(jax.vmap(one))
    return lambda state, params0, x: f(state.params, state.batch_stats, params0, jnp.asarray(x, jnp.float32))


@functools.cache
def moons_input_grad_fn(arch: MoonsArch):
    """``g(state, params0, x_sn2) -> ∂ŷ_i/∂x_i (S, n, 2)`` in eval mode (each logit depends on its own input only)."""
    _, _, apply_eval, _ = make_moons_trainer(arch)

    def one(params, stats, params0, x_n2):
        return jax.grad(lambda x: jnp.sum(apply_eval(params, stats, params0, x)))(x_n2)

    f = jax.jit(jax.vmap(one))
    return lambda state, params0, x: f(state.params, state.batch_stats, params0, jnp.asarray(x, jnp.float32))


def boundary_points(f_gg: np.ndarray, axis_g: np.ndarray) -> np.ndarray:
    """Zero crossings of a logit field sampled on the grid ``(axis[i], axis[j])``, by linear interpolation along
    every grid edge whose end values differ in sign (or hit 0). Returns ``(m, 2)`` points on ŷ = 0."""
    f = np.asarray(f_gg, np.float64)
    a = np.asarray(axis_g, np.float64)
    out = []
    for axis in (0, 1):
        lo = f[:-1, :] if axis == 0 else f[:, :-1]
        hi = f[1:, :] if axis == 0 else f[:, 1:]
        i, j = np.nonzero((lo * hi < 0) | ((lo == 0) & (hi != 0)))
        t = lo[i, j] / (lo[i, j] - hi[i, j])
        if axis == 0:
            out.append(np.stack([a[i] + t * (a[i + 1] - a[i]), a[j]], axis=1))
        else:
            out.append(np.stack([a[i], a[j] + t * (a[j + 1] - a[j])], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2))


def signed_boundary_distances(points_m2: np.ndarray, x_n2: np.ndarray, correct_n: np.ndarray) -> np.ndarray:
    """Distance from every training point to the nearest boundary point, negative where misclassified."""
    if points_m2.shape[0] == 0:
        return np.full(x_n2.shape[0], np.inf)
    d = np.full(x_n2.shape[0], np.inf)
    for start in range(0, points_m2.shape[0], 4096):
        p = points_m2[start : start + 4096]
        d = np.minimum(d, np.sqrt(((x_n2[:, None, :] - p[None, :, :]) ** 2).sum(-1)).min(axis=1))
    return np.where(correct_n, d, -d)


def moons_quantities(arch: MoonsArch, result: MoonsResult, x_sn2, y_sn, *, margin_n: int, margin_lim: float):
    """Per-seed quantities of a trained case (numpy arrays of shape (S,)), all in eval mode.

    - ``margin``: input-space margin, min over training points of the signed distance to the decision boundary
      ŷ = 0 (negative if a point is misclassified), the boundary found on a ``margin_n``² grid over
      [−lim, lim]² with linear interpolation of the zero crossings along grid edges (error ≲ the grid step);
    - ``vertical_dependence`` / ``horizontal_dependence``: mean over the data of |∂ŷ/∂x₂| / |∂ŷ/∂x₁| (x₂ = the
      vertical axis, the moon coordinate; x₁ = the horizontal, linearly separating one), ``vertical_share`` =
      V / (H + V) (scale-free);
    - ``acc_x2_mean``: training accuracy when x₂ is replaced by its mean over the data;
    - ``train_loss`` (mean CE, without penalties) and ``train_acc``.
    """
    evaluate = moons_eval_fn(arch, _moons_chunk(arch, x_sn2.shape[0]))
    grad = moons_input_grad_fn(arch)
    state, p0 = result.state, result.params0
    x = np.asarray(x_sn2, np.float32)
    y = np.asarray(y_sn, np.float32)
    logits = np.asarray(evaluate(state, p0, x), np.float64)
    correct = (logits > 0) == (y > 0.5)
    x_flat = x.copy()
    x_flat[:, :, 1] = x[:, :, 1].mean(axis=1, keepdims=True)
    logits_flat = np.asarray(evaluate(state, p0, x_flat))
    g = np.abs(np.asarray(grad(state, p0, x), np.float64))
    axis = np.linspace(-margin_lim, margin_lim, margin_n, dtype=np.float32)
    ga, gb = np.meshgrid(axis, axis, indexing="ij")
    grid = np.stack([ga.ravel(), gb.ravel()], 1)
    f_grid = np.asarray(evaluate(state, p0, np.broadcast_to(grid, (x.shape[0], *grid.shape))))
    margins = np.array(
        [
            signed_boundary_distances(
                boundary_points(f_grid[s].reshape(margin_n, margin_n), axis),
                x[s].astype(np.float64),
                correct[s],
            ).min()
            for s in range(x.shape[0])
        ]
    )
    v, h = g[:, :, 1].mean(axis=1), g[:, :, 0].mean(axis=1)
    ce = np.mean(np.logaddexp(0.0, logits) - y * logits, axis=1)
    return {
        "margin": margins,
        "vertical_dependence": v,
        "horizontal_dependence": h,
        "vertical_share": v / (v + h),
        "acc_x2_mean": np.mean((logits_flat > 0) == (y > 0.5), axis=1),
        "train_loss": ce,
        "train_acc": correct.mean(axis=1),
    }


def moons_init_features(arch: MoonsArch, params0, x_sn2, y_sn) -> list:
    """Definition 1 at initialisation for every seed: ``gs_jax.features.from_ntrf(gs_jax.ntk.ntrf(...), y)``."""
    from gs_jax import features, ntk

    _, _, _, apply_fn = make_moons_trainer(dataclasses.replace(arch, linearized=False))
    out = []
    for s in range(np.asarray(x_sn2).shape[0]):
        p = jax.tree_util.tree_map(lambda a, s=s: jnp.asarray(a[s]), params0)
        phi = ntk.ntrf(apply_fn, p, jnp.asarray(x_sn2[s]))
        out.append(features.from_ntrf(phi, np.asarray(y_sn[s])))
    return out


def moons_responses(feats: list, y_sn, logits_stn, *, indices=(1, 6), top_aligned: int = 2) -> dict[str, Any]:
    """Fig. 1(d): |z| = |UᵀYŷ| (Eq. 4) along training for the initial network's NTK features, per seed.

    ``authors``: the directions with 0-based indices ``indices`` (the authors' choice, SPEC §1.4);
    ``aligned``: per seed, the ``top_aligned`` directions carrying the largest share (1ᵀu_k)²/n of the labels
    (first = most aligned). Returns ``{"authors": (S, T, len(indices)), "aligned": (S, T, top_aligned),
    "aligned_index": (S, top_aligned), "strength_authors": (S, k), "strength_aligned": (S, k)}``.
    """
    from gs_jax import features

    auth, ali, ali_idx, s_auth, s_ali = [], [], [], [], []
    for s, f in enumerate(feats):
        z = np.abs(np.asarray(features.responses(f, np.asarray(y_sn[s]), jnp.asarray(logits_stn[s]))))
        share = np.asarray(features.label_alignment(f).energy)
        order = np.argsort(-share)[:top_aligned]
        auth.append(z[:, list(indices)])
        ali.append(z[:, order])
        ali_idx.append(order)
        sv = np.asarray(f.s)
        s_auth.append(sv[list(indices)])
        s_ali.append(sv[order])
    return {
        "authors": np.stack(auth),
        "aligned": np.stack(ali),
        "aligned_index": np.stack(ali_idx),
        "strength_authors": np.stack(s_auth),
        "strength_aligned": np.stack(s_ali),
    }


def _mean_std(v) -> tuple[float | None, float | None]:
    v = np.asarray(v, np.float64)
    v = v[np.isfinite(v)]
    return (float(np.mean(v)), float(np.std(v))) if v.size else (None, None)


def train_moons_case(
    cfg,
    name: str,
    *,
    seeds=None,
    hidden: int | None = None,
    linearized: bool = False,
    max_steps: int = 0,
    progress: Callable | None = None,
):
    """Data + training of one config case over its seeds: ``(arch, x_sn2, y_sn, MoonsResult, steps)``."""
    from gs_jax.data import moons as moons_data
    from gs_jax.errors import check

    check(name in cfg.cases, f"unknown moons case {name!r}; choose from {', '.join(cfg.cases.keys())}")
    block = cfg.cases[name]
    arch, hyper = moons_case(block)
    arch = dataclasses.replace(arch, hidden=hidden or arch.hidden, linearized=linearized)
    if seeds is None:
        n_seeds = int(block.get("seeds", 0)) or cfg.seeds  # a case may use fewer seeds (costly variants)
        seeds = list(range(cfg.first_seed, cfg.first_seed + n_seeds))
    x, y = moons_data.stack_seeds(seeds, block.delta, block.rotation)
    cap = max_steps or cfg.max_steps
    steps = min(int(block.steps), cap) if cap > 0 else int(block.steps)
    result = train_moons(
        arch,
        hyper,
        x,
        y,
        moons_keys(cfg.key_seed, name, seeds),
        steps,
        record_every=cfg.record_every,
        chunk_steps=cfg.chunk_steps,
        progress=progress,
        desc=name + (" (linearised)" if linearized else ""),
    )
    return arch, x, y, result, steps


MOONS_TABLE_COLUMNS = (
    "case",
    "margin",
    "vertical |∂ŷ/∂x₂|",
    "vertical share",
    "acc (x₂ := mean)",
    "train loss",
    "train acc",
    "steps",
    "seeds",
    "wall s",
)


def moons_table_row(name: str, c: dict[str, Any]) -> dict[str, str]:
    def pm(key, fmt="{:.3f}"):
        m, s = c.get(f"{key}_mean"), c.get(f"{key}_std")
        return "—" if m is None else f"{fmt.format(m)} ± {fmt.format(s)}"

    return {
        "case": name,
        "margin": pm("margin"),
        "vertical |∂ŷ/∂x₂|": pm("vertical_dependence"),
        "vertical share": pm("vertical_share", "{:.2f}"),
        "acc (x₂ := mean)": pm("acc_x2_mean", "{:.3f}"),
        "train loss": pm("train_loss", "{:.4f}"),
        "train acc": pm("train_acc"),
        "steps": str(c["steps"]),
        "seeds": str(c.get("n_seeds", "")),
        "wall s": f"{c['wall_s']:.1f}",
    }


def run_moons(cfg, run_dir) -> dict[str, Any]:
    """``make moons``: train every case of ``cfg.run`` (seeds vmapped), measure it, draw Fig. 1 and the App. B grid.

    Writes ``summary.json`` (``cases.<name>``: ``margin_mean/std``, ``vertical_dependence_mean/std``,
    ``train_acc_mean/std``, ... and per-seed lists; ``fig1d``: final |z| per case), ``table.md``,
    ``metrics.jsonl`` (one record per case and seed), ``fig1.{png,pdf}`` (a-d), ``appendix_b.{png,pdf}``,
    ``fig1d_z.npz`` (the z-curves) and, with ``linear.enabled``, the linearised-vs-real study
    (``linear.md``, ``linear_vs_real.{png,pdf}``, ``summary.json: linear``).
    """
    import time

    import matplotlib.pyplot as plt

    from gs_jax import runs
    from gs_jax.data import moons as moons_data
    from gs_jax.errors import check
    from gs_jax.plotting import moons as moons_plots

    check(cfg.seeds >= 1, f"seeds must be ≥ 1, got {cfg.seeds}")
    for name in cfg.run:
        check(name in cfg.cases, f"unknown case {name!r} in run; choose from {', '.join(cfg.cases.keys())}")
    t_start = time.perf_counter()
    seeds = list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))
    axis, grid = moons_data.eval_grid(cfg.grid_n, cfg.grid_lim)
    summary: dict[str, Any] = {
        "seeds": seeds,
        "cases": {},
        "fig1d": {},
        "margin_method": (
            f"min over training points of the signed distance (negative if misclassified) to the zero level of ŷ, "
            f"located on a {cfg.margin_grid_n}² grid over [−{cfg.margin_grid_lim}, {cfg.margin_grid_lim}]² by linear "
            f"interpolation along grid edges (step {2 * cfg.margin_grid_lim / (cfg.margin_grid_n - 1):.4f})"
        ),
    }
    heat, data0, z_curves = {}, {}, {}
    for name in cfg.run:
        t0 = time.perf_counter()
        arch, x, y, result, steps = train_moons_case(cfg, name, progress=runs.progress)
        case_seeds = seeds[: x.shape[0]]
        q = moons_quantities(arch, result, x, y, margin_n=cfg.margin_grid_n, margin_lim=cfg.margin_grid_lim)
        f_grid = moons_eval_fn(arch, _moons_chunk(arch, len(case_seeds)))(
            result.state, result.params0, np.broadcast_to(grid, (len(case_seeds), *grid.shape))
        )
        heat[name] = (
            np.asarray(f_grid).mean(axis=0).reshape(cfg.grid_n, cfg.grid_n)
        )  # logits averaged (SPEC §1.2)
        data0[name] = (x[0], y[0])
        block = cfg.cases[name]
        case = {k: block[k] for k in block.keys()}
        case["steps"] = steps
        case["n_seeds"] = len(case_seeds)
        for key, v in q.items():
            case[f"{key}_mean"], case[f"{key}_std"] = _mean_std(v)
            case[f"{key}_per_seed"] = [float(a) for a in v]
        case["final_loss_with_penalty_mean"] = float(np.mean(result.loss_st[:, -1]))
        case["finite_seeds"] = int(np.sum(np.isfinite(result.loss_st[:, -1])))
        if name in cfg.fig1 and arch.n_hidden == 1 and not arch.batchnorm:
            feats = moons_init_features(arch, result.params0, x, y)
            z = moons_responses(
                feats, y, result.logits_stn, indices=tuple(cfg.z_indices), top_aligned=cfg.top_aligned
            )
            z_curves[name] = {"steps": result.record_steps, **z}
            summary["fig1d"][name] = {
                "indices": list(cfg.z_indices),
                "z_authors_final_mean": z["authors"][:, -1].mean(axis=0),
                "z_authors_max_mean": z["authors"].max(axis=1).mean(axis=0),
                "strength_authors_mean": z["strength_authors"].mean(axis=0),
                "z_aligned_final_mean": z["aligned"][:, -1].mean(axis=0),
                "z_aligned_max_mean": z["aligned"].max(axis=1).mean(axis=0),
                "aligned_index_per_seed": z["aligned_index"],
                "strength_aligned_mean": z["strength_aligned"].mean(axis=0),
            }
        case["wall_s"] = round(time.perf_counter() - t0, 2)
        summary["cases"][name] = case
        np.savez(run_dir.file("heatmaps.npz"), axis=axis, **heat)
        for s, seed in enumerate(case_seeds):
            run_dir.log_metrics({"case": name, "seed": seed, **{k: float(v[s]) for k, v in q.items()}})
        run_dir.write_summary(summary)
    if cfg.run:
        rows = [moons_table_row(n, summary["cases"][n]) for n in cfg.run]
        table = markdown_table(rows, "Two-moons, mean ± std over seeds (eval mode)")
        print(table)
        run_dir.write_text("table.md", table)
        if z_curves:
            np.savez(
                run_dir.file("fig1d_z.npz"),
                **{f"{n}__{k}": v for n, d in z_curves.items() for k, v in d.items()},
            )
        fig1 = [n for n in cfg.fig1 if n in heat]
        if fig1:
            titles = {n: cfg.cases[n].title for n in fig1}
            fig = moons_plots.fig1(
                axis, {n: heat[n] for n in fig1}, {n: data0[n] for n in fig1}, z_curves, titles
            )
            run_dir.save_figure(fig, "fig1")
            plt.close(fig)
        grid_cases = [n for n in cfg.appendix_b if n in heat]
        if grid_cases:
            titles = {n: cfg.cases[n].title for n in grid_cases}
            fig = moons_plots.appendix_b_grid(
                axis, {n: heat[n] for n in grid_cases}, {n: data0[n] for n in grid_cases}, titles
            )
            run_dir.save_figure(fig, "appendix_b")
            plt.close(fig)
    if cfg.linear.enabled:
        summary["linear"] = run_moons_linear(cfg, run_dir)
    summary["wall_s_total"] = round(time.perf_counter() - t_start, 1)
    run_dir.write_summary(summary)
    ran = [f"{len(cfg.run)} cases"] if cfg.run else []
    ran += ["the linearised-vs-real study"] if cfg.linear.enabled else []
    print(
        f"[gs-jax] moons: {' and '.join(ran) or 'nothing (empty run list)'} in {summary['wall_s_total']:.1f} s "
        f"-> {run_dir.path}",
        file=sys.stderr,
    )
    return summary


def run_moons_linear(cfg, run_dir) -> dict[str, Any]:
    """Linearised vs real (issue item 5): for each Fig. 1 case and width, train the network and its linearisation
    ŷ_lin(θ) = ŷ(θ₀) + Φ₀(θ − θ₀) (``neural_tangents.linearize``) from the SAME θ₀ with the same optimiser, and
    compare their z-trajectories (authors' directions, and all n directions: ‖Δz‖ = ‖Δŷ‖ since U is orthogonal)
    and their input-space margins."""
    import matplotlib.pyplot as plt

    from gs_jax import runs
    from gs_jax.plotting import moons as moons_plots

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
    plt.close(fig)
    return out
