"""A supervised benchmark's trainer task, composed from the shared blocks: a network (``models.build``), the
methods of the registry (``algorithms``), a torch-style optimiser (``optim``) and a sampler (``sampling``).

Several methods run as ONE vmapped program: each restart carries the index of its method (a *branch*), every
branch's numeric hyper-parameters and state; the loss evaluates the network once and dispatches on the branch
(``lax.switch``, a select under vmap: the methods' losses are cheap functions of the logits, the network's
forward and backward passes are shared). So every (method, hyper-parameter, seed) of a benchmark is one row of
one compiled program, and runs that differ only in numbers share it::

    spec = supervised.Spec(model, branches=(("erm", ()), ("sd", ())), optimizer=optim.spec(name="sgd", lr=0.1),
                           info=info, sampler="epochs", batch_size=128, steps_per_epoch=len(y) // 128)
    task = supervised.make_task(spec)                       # cached per spec
    algo = supervised.stack([supervised.restart_state(spec, "sd", {"lam": 0.1}), ...])
    trainer.train(task, data, keys, steps=..., data_per_restart=False, init=trainer.Init(algo_state=algo))

``data`` holds the training arrays ``x``, ``y`` and, where the data set has them, ``group`` and ``env`` (the
sampler draws these); other arrays (evaluation splits) ride along for the evaluators.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from gs_jax import algorithms, models, optim, sampling, trainer
from gs_jax.errors import check

SAMPLERS = ("full", "epochs", "with_replacement")
TRAIN_FIELDS = ("x", "y", "group", "env")


@dataclasses.dataclass(frozen=True)
class Spec:
    """The static structure of a supervised task (hashable: one compiled program per value)."""

    model: models.Model
    branches: tuple  # ((method name, static hyper-parameters), ...): the methods one program dispatches on
    optimizer: optim.OptSpec
    info: algorithms.DataInfo
    sampler: str = "full"  # "full" (every step sees all data), "epochs", "with_replacement"
    batch_size: int = 0
    steps_per_epoch: int = 1  # places the optimiser's milestones
    augment: bool = False  # random crop (pad 4) + horizontal flip of ``x`` (NHWC images)
    fields: tuple = ("x", "y")  # the training arrays the sampler draws (subset of TRAIN_FIELDS)
    pretrained: str = ""  # .npz of a torchvision state dict loaded at init (models.read_state_dict)

    @property
    def weighted(self) -> bool:
        """Whether some branch may sample by per-example weights (then the sampler reads ``logw``)."""
        return any(algorithms.get(name).sampling is not None for name, _ in self.branches)


def branch(name: str, hp) -> tuple:
    """The branch of a setting: the method's name and the static part of its hyper-parameters."""
    return (name, algorithms.static(hp))


def branches_of(settings) -> tuple:
    """The distinct branches of ``[(name, hp), ...]``, in first-seen order."""
    out: list = []
    for name, hp in settings:
        b = branch(name, hp)
        if b not in out:
            out.append(b)
    return tuple(out)


def _sampler(spec: Spec) -> sampling.Sampler:
    check(spec.sampler in SAMPLERS, f"unknown sampler {spec.sampler!r}; choose from {', '.join(SAMPLERS)}")
    if spec.sampler == "full":
        return sampling.full_batch()
    if spec.sampler == "epochs":
        s = sampling.epochs(spec.batch_size, spec.fields, weighted=spec.weighted)
    else:
        s = sampling.with_replacement(spec.batch_size, spec.fields)
    return sampling.transformed(s, sampling.crop_flip(("x",))) if spec.augment else s


@functools.cache
def make_task(spec: Spec) -> trainer.Task:
    """The trainer task of ``spec`` (cached: every run with the same spec shares the compiled programs).

    Loss of a restart on a batch: the network's logits in train mode (batch statistics updated), then its branch's
    method loss (``algorithms.<name>.loss``) with that branch's hyper-parameters and state.
    """
    model = spec.model
    check(spec.branches, "a supervised task needs at least one method")
    check(
        all(algorithms.get(n).loss is not None for n, _ in spec.branches),
        "a post-hoc method has no training loss",
    )

    def init(key, data):
        variables = model.init(key, data["x"][:1])
        if spec.pretrained:
            state_dict = models.read_state_dict(spec.pretrained)
            variables = dict(models.load_torchvision_resnet(variables, state_dict))
        params = variables.pop("params")
        return params, variables

    def loss(params, model_state, st, batch, step, key):
        logits, updates = model.apply({"params": params, **model_state}, batch["x"], train=True, rng=key)
        value, _, states = dispatch(spec, st, step, logits, batch, params)
        return value, ({**model_state, **updates}, {**st, "state": states}, None)

    return trainer.Task(init=init, loss=loss, optimizer=optim.build(spec.optimizer, spec.steps_per_epoch),
                        sampler=_sampler(spec))  # fmt: skip


def dispatch(spec: Spec, st, step, logits, batch, params):
    """``(loss, aux, states)`` of a restart's method: its branch's loss (``algorithms.<name>.loss``) with that
    branch's hyper-parameters and state (``lax.switch`` on ``st["branch"]`` when the task has several branches)."""
    methods = [(algorithms.get(name), dict(stat)) for name, stat in spec.branches]

    def run(i):
        alg, stat = methods[i]
        hp = algorithms.bind({**st["hp"][i], **stat}, spec.info)
        value, aux, new = alg.loss(hp, st["state"][i], step, logits, batch, params)
        states = list(st["state"])
        states[i] = new
        return value, aux, tuple(states)

    if len(methods) == 1:
        return run(0)
    return jax.lax.switch(st["branch"], [functools.partial(run, i) for i in range(len(methods))])


def restart_state(spec: Spec, name: str, hp=None, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One restart's algorithm state: its branch index, every branch's numeric hyper-parameters (its own setting's
    for its branch, the defaults elsewhere) and state, and its sampling weights ``logw`` (log, (n,)) when some
    branch samples by weight. ``inputs`` holds what ``Algorithm.sampling`` reads (``group`` of the training set,
    JTT's ``error_set``)."""
    hp = algorithms.hyper(name, hp)
    algorithms.check_supported(name, hp, spec.info)
    b = branch(name, hp)
    check(b in spec.branches, f"{name} with {dict(b[1])} is not among the task's branches {spec.branches}")
    i = spec.branches.index(b)
    hps, states = [], []
    for j, (other, stat) in enumerate(spec.branches):
        h = hp if j == i else algorithms.hyper(other, dict(stat))
        hps.append(algorithms.numeric(h))
        states.append(jax.tree_util.tree_map(np.asarray, algorithms.get(other).init_state(h, spec.info)))
    out: dict[str, Any] = {"branch": np.int32(i), "hp": tuple(hps), "state": tuple(states)}
    if spec.weighted:
        alg = algorithms.get(name)
        w = alg.sampling(hp, spec.info, inputs or {}) if alg.sampling is not None else None
        n = len((inputs or {}).get("group", ())) or int((inputs or {}).get("n", 0))
        if w is None:
            check(
                n > 0,
                "restart_state: pass inputs={'n': n_train} (or the training groups) for the sampling weights",
            )
            w = np.ones(n)
        w = np.asarray(w, np.float64)
        check(w.ndim == 1 and np.all(w > 0), "sampling weights must be positive, one per training example")
        out["logw"] = np.log(w / w.max()).astype(np.float32)
    return out


def stack(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Restart states with a leading restart axis (for ``trainer.Init(algo_state=...)``)."""
    return jax.tree_util.tree_map(lambda *a: np.stack(a), *states)


def data_info(y, *, n_outputs: int, group=None, n_groups: int = 0, env=None, n_envs: int = 0, name: str = ""):
    """The :class:`~gs_jax.algorithms.DataInfo` of a training set (labels, and groups / environments if any)."""
    y = np.asarray(y)
    k = 2 if n_outputs == 1 else n_outputs
    check(y.size > 0, "the training set is empty")
    check(y.min() >= 0 and y.max() < k, f"labels must lie in 0..{k - 1}, got {y.min()}..{y.max()}")
    counts = tuple(int(c) for c in np.bincount(y.astype(np.int64), minlength=k))
    gcounts = ()
    if group is not None:
        g = np.asarray(group)
        check(g.min() >= 0 and g.max() < n_groups, f"group ids must lie in 0..{n_groups - 1}")
        gcounts = tuple(int(c) for c in np.bincount(g.astype(np.int64), minlength=n_groups))
    return algorithms.DataInfo(n_outputs, n_groups if group is not None else 0, n_envs if env is not None else 0,
                               counts, gcounts, name)  # fmt: skip


def method_rows(methods_cfg, *, overrides=(), posthoc=(), info: algorithms.DataInfo | None = None
                ) -> list[tuple[str, str, dict[str, Any]]]:  # fmt: skip
    """``(row, registry name, block)`` for each entry of ``methods.enabled`` — the one way a benchmark reads its
    method list.

    A row is a registry name (its block ``methods.<name>``, if any, holds hyper-parameter values or grids), or a
    name whose block ``methods.<row>`` sets ``method: <registry name>`` (a named variant: Colored MNIST's ``sd`` row
    runs ``sd_rescaled``, its ``oracle`` row ``erm``). Block keys other than ``method``, the method's
    hyper-parameters and the experiment's ``overrides`` (schedule keys it reads itself) are refused in one line.
    With ``info`` (what the data set provides), a method the data cannot run is refused up front, naming what is
    missing (``algorithms.check_supported``); a post-hoc method (``Algorithm.posthoc``) the benchmark does not run
    — it lists the ones it runs in ``posthoc`` — is refused too, before anything is trained.
    """
    enabled = methods_cfg["enabled"]
    enabled = (enabled,) if isinstance(enabled, str) else tuple(enabled)
    check(enabled, "methods.enabled is empty; name at least one method")
    check(len(set(enabled)) == len(enabled), f"methods.enabled repeats a name: {enabled}")
    out = []
    for row in enabled:
        block = dict(methods_cfg[row]) if row in methods_cfg else {}
        name = block.pop("method", row)
        if name not in algorithms.ALGORITHMS:
            raise algorithms.GsJaxError(
                f"methods.enabled: {row!r} is neither a registered method ({', '.join(algorithms.ALGORITHMS)}) nor a "
                "row with a 'method' key"
            )
        alg = algorithms.get(name)
        unknown = set(block) - set(alg.defaults) - set(overrides)
        check(not unknown, f"methods.{row}: unknown keys {sorted(unknown)}; {name} takes {', '.join(alg.defaults)}"
              + (f" and the schedule keys {', '.join(overrides)}" if overrides else ""))  # fmt: skip
        if info is not None:
            for hp in algorithms.grid(name, block):
                algorithms.check_supported(name, hp, info)
        check(not alg.posthoc or name in posthoc,
              f"methods.enabled: {row!r} ({name}) is a post-hoc method this benchmark does not run"
              f" (it runs: {', '.join(posthoc) or 'none'}) — drop it")  # fmt: skip
        out.append((row, name, block))
    return out
