"""Colored MNIST's building blocks on the shared platform (``gs_jax.experiments.cmnist`` runs them): the rows of
``methods.enabled``, the data with environment and group labels, the supervised task of a row and its evaluators,
and :func:`train_restarts` — every (setting, seed) of a method as one vmapped program.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import algorithms, evaluators, losses, metrics, models, optim, supervised, trainer
from gs_jax.data import colored_mnist
from gs_jax.errors import check

eval_steps = trainer.eval_steps
SCHEDULE_KEYS = (
    "hidden",
    "lr",
    "steps",
    "grayscale",
)  # a row's schedule: what the config, not the registry, owns
FIELDS = ("x", "y", "group", "env")
N_GROUPS, N_ENVS = 4, 2  # group = 2·y + colour; the two training environments


class Row(NamedTuple):
    """One row of ``methods.enabled``: its name, the registry method, its settings (one, or a grid) and schedule."""

    name: str
    method: str
    settings: list  # [hp dict, ...] (``algorithms.grid`` of the row's block)
    schedule: dict  # {"hidden", "lr", "steps", "grayscale"}


class CmnistResult(NamedTuple):
    """What :func:`train_restarts` returns per setting (numpy arrays, leading axis = restart)."""

    history: list[dict[str, Any]]  # one record per evaluation: {"step": s, metric: (R,) array}
    final: dict[str, np.ndarray]  # the record at step steps−1 (forward pass before that step's update)
    four_env: dict[str, dict[str, np.ndarray]]  # env -> {"acc": (R,), "entropy": (R,)} after the last update
    failed_at: np.ndarray  # (R,) first non-finite step or −1
    params: Any  # final parameters (R, ...)


def rows(cfg) -> list[Row]:
    """The rows of ``cfg.methods`` (``supervised.method_rows``) with their settings and schedules; ``max_steps``
    caps every schedule."""
    out = []
    provides = algorithms.DataInfo(1, n_groups=N_GROUPS, n_envs=N_ENVS, name="colored mnist")
    for name, method, block in supervised.method_rows(cfg.methods, overrides=SCHEDULE_KEYS, posthoc=("dfr",),
                                                      info=provides):  # fmt: skip
        schedule = {k: block.get(k, cfg.train[k]) for k in SCHEDULE_KEYS}
        schedule = {"hidden": int(schedule["hidden"]), "lr": float(schedule["lr"]), "steps": int(schedule["steps"]),
                    "grayscale": bool(schedule["grayscale"])}  # fmt: skip
        if int(cfg.max_steps) > 0:
            schedule["steps"] = min(schedule["steps"], int(cfg.max_steps))
        check(schedule["hidden"] >= 1 and schedule["steps"] >= 1 and schedule["lr"] > 0,
              f"methods.{name}: hidden and steps must be ≥ 1 and lr > 0, got {schedule}")  # fmt: skip
        out.append(Row(name, method, algorithms.grid(method, block), schedule))
    return out


def model_of(schedule: dict) -> models.Model:
    return models.build("cmnist_mlp", hidden=int(schedule["hidden"]), grayscale=bool(schedule["grayscale"]))


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def restart_data(restarts: list[colored_mnist.RestartData]) -> dict[str, np.ndarray]:
    """The trainer's data (leading restart axis): the two training environments concatenated (env0 then env1) as
    ``x`` (R, n, 392), ``y``, ``env`` and ``group = 2·y + colour``; ``test_x``/``test_y`` (e = 0.9); the four
    Fig. 3 environments ``four_x`` (R, 4, n_test, 392), ``four_y`` when built."""
    st = colored_mnist.stack_restarts(restarts)
    r, e, n, d = st["train_x"].shape
    colour = np.stack([np.concatenate([env.color for env in rs.train]) for rs in restarts]).astype(np.int32)
    y = st["train_y"].reshape(r, e * n)
    out = {
        "x": st["train_x"].reshape(r, e * n, d),
        "y": y,
        "env": np.broadcast_to(np.repeat(np.arange(e, dtype=np.int32), n), (r, e * n)).copy(),
        "group": (2 * y.astype(np.int32) + colour).astype(np.int32),
        "test_x": st["test_x"],
        "test_y": st["test_y"],
    }
    if "four_x" in st:
        out["four_x"], out["four_y"] = st["four_x"], st["four_y"]
    return out


def data_info(data: dict[str, np.ndarray], r: int, name: str = "") -> algorithms.DataInfo:
    """What restart ``r``'s training set provides (labels, 4 groups, 2 environments)."""
    return supervised.data_info(data["y"][r], n_outputs=1, group=data["group"][r], n_groups=N_GROUPS,
                                env=data["env"][r], n_envs=N_ENVS, name=name)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The task and its evaluators
# ---------------------------------------------------------------------------------------------------------------


def spec_of(
    method: str, settings: list, schedule: dict, info: algorithms.DataInfo, n_train: int
) -> supervised.Spec:
    """The supervised task of one row: the MLP, the row's branches, torch Adam, full batch — or, for a method that
    samples by weight (JTT), draws of ``n_train`` examples per step (one step = one epoch)."""
    branches = supervised.branches_of([(method, hp) for hp in settings])
    weighted = algorithms.get(method).sampling is not None
    return supervised.Spec(
        model=model_of(schedule), branches=branches, optimizer=optim.spec(name="adam", lr=float(schedule["lr"])),
        info=info, sampler="epochs" if weighted else "full", batch_size=n_train if weighted else 0,
        fields=FIELDS,
    )  # fmt: skip


@functools.cache
def evaluators_of(spec: supervised.Spec, eval_every: int, chunk: int = 2048) -> tuple[trainer.Evaluator, ...]:
    """Train/test metrics every ``eval_every`` steps (before that step's update) and the four environments of
    Fig. 3 after the last update (when the data holds them). The test logits come in chunks
    (``evaluators.logits``)."""
    model = spec.model

    def train_test(state, data):
        variables = evaluators.variables_of(state)
        logits = model.logits(variables, data["x"])
        batch = {k: data[k] for k in FIELDS}
        loss, aux, _ = supervised.dispatch(spec, state.algo_state, state.step, logits, batch, state.params)
        test_logits = evaluators.logits(model, variables, data["test_x"], chunk)
        return {
            "loss": loss,
            "train_nll": losses.mean_nll(logits, data["y"]),
            "train_acc": losses.mean_accuracy(logits, data["y"]),
            "test_nll": losses.mean_nll(test_logits, data["test_y"]),
            "test_acc": losses.mean_accuracy(test_logits, data["test_y"]),
            "mean_abs_logit": jnp.mean(jnp.abs(logits)),
            "penalty": aux["penalty"],
        }

    def four(state, data):
        variables = evaluators.variables_of(state)
        logits = jax.vmap(lambda x: evaluators.logits(model, variables, x, chunk))(data["four_x"])
        return {
            "four_acc": jax.vmap(losses.mean_accuracy)(logits, data["four_y"]),
            "four_entropy": jnp.mean(metrics.binary_entropy_from_logits(logits), axis=-1),
        }

    return (
        trainer.Evaluator("metrics", train_test, every=eval_every),
        trainer.Evaluator("four_env", four, every=0),
    )


def _restart_block(schedule: dict, n_train: int) -> int:
    return trainer.auto_restart_block(n_train * 2 * int(schedule["hidden"]) * 4)


def train_restarts(
    method: str,
    data: dict[str, np.ndarray],
    seeds: list[int],
    *,
    settings: list | None = None,
    schedule: dict,
    eval_every: int = 50,
    name: str = "",
    progress: Callable | None = None,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 60.0,
    restart_block: int | None = None,
    error_sets: np.ndarray | None = None,
    extra_evaluators: tuple = (),
) -> list[CmnistResult]:
    """Train every (setting, seed) of ``method`` as one vmapped program; one :class:`CmnistResult` per setting.

    ``data`` holds arrays with a leading seed axis (:func:`restart_data`); restart (setting s, seed r) is
    initialised from ``PRNGKey(seeds[r])``. ``settings``: the method's hyper-parameters (``[{}]``, the registry
    defaults, when None). ``error_sets`` (R, n): JTT's first-stage errors per seed. A restart whose loss turns
    non-finite freezes and is reported on stderr. ``extra_evaluators`` run beside the metrics (the starvation
    monitor). ``restart_block`` (default ``trainer.auto_restart_block`` of the
    hidden activations) only changes the speed.
    """
    settings = [algorithms.hyper(method, hp) for hp in (settings or [{}])]
    n_seeds, n_train = len(seeds), int(data["x"].shape[1])
    check(int(data["x"].shape[0]) == n_seeds, f"data hold {data['x'].shape[0]} restarts for {n_seeds} seeds")
    info = data_info(data, 0, name)
    spec = spec_of(method, settings, schedule, info, n_train)
    states = []
    for hp in settings:
        for r in range(n_seeds):
            inputs = {"group": data["group"][r], "n": n_train}
            if error_sets is not None:
                inputs["error_set"] = error_sets[r]
            rspec = dataclasses.replace(spec, info=data_info(data, r, name))  # this restart's group counts
            states.append(supervised.restart_state(rspec, method, hp, inputs))
    if len(settings) > 1:
        data = jax.tree_util.tree_map(lambda a: np.concatenate([a] * len(settings)), data)
    evs = evaluators_of(spec, int(eval_every))
    if "four_x" not in data:
        evs = evs[:1]
    evs = (*evs, *extra_evaluators)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds] * len(settings))
    label = name or method
    block = _restart_block(schedule, n_train) if restart_block is None else restart_block
    result = trainer.train(
        supervised.make_task(spec), data, keys, steps=int(schedule["steps"]), evaluators=evs,
        init=trainer.Init(algo_state=supervised.stack(states)),
        saveat=trainer.SaveAt(checkpoint_dir=checkpoint_dir, resume=resume, checkpoint_every_s=checkpoint_every_s),
        progress=trainer.Progress(progress, label, on_eval), layout=trainer.Layout(restart_block=block),
    )  # fmt: skip
    trainer.report_failures(label, result.failed_at, [f"seed {s}" for s in seeds] * len(settings))
    out = []
    for s in range(len(settings)):
        sl = slice(s * n_seeds, (s + 1) * n_seeds)
        hist = [
            {"step": h["step"], **{k: v[sl] for k, v in h.items() if k != "step"}} for h in result.history
        ]
        four_env = {}
        if "four_acc" in result.final:
            four_env = {env: {"acc": result.final["four_acc"][sl, i], "entropy": result.final["four_entropy"][sl, i]}
                        for i, env in enumerate(colored_mnist.FOUR_ENVS)}  # fmt: skip
        params = jax.tree_util.tree_map(lambda a, sl=sl: a[sl], result.state.params)
        out.append(CmnistResult(hist, hist[-1], four_env, result.failed_at[sl], params))
    return out
