"""The generic trainer: restarts as a vmap axis, ``lax.scan`` chunks between host evaluations, checkpoints.

It knows no dataset, model, method or figure. An experiment hands in a :class:`Task` — how to initialise
parameters, the loss, the optimiser, how a step draws its batch (``gs_jax.sampling``) — and its data; the trainer
runs every restart of it as one jit-compiled, vmapped program::

    task = Task(init=init, loss=loss, optimizer=optax.adam(1e-3), sampler=sampling.epochs(128, ("x", "y")))
    result = train(task, data, keys, steps=1001, evaluators=[Evaluator("train", metrics_fn, every=50)],
                   saveat=SaveAt(checkpoint_dir="ckpt", resume=True), progress=Progress(tqdm, "ERM"))

    # one restart, a loss returning a scalar (or (loss, aux)):
    task = Task.simple(init=lambda key, data: params, loss=lambda params, batch: ..., optimizer=optax.sgd(0.1))
    result = train(task, data, jax.random.PRNGKey(0), steps=100)      # outputs without a restart axis

Conventions
-----------
- ``data`` is a pytree of arrays. With ``data_per_restart=True`` every leaf has a leading restart axis (each restart
  its own data set: Colored MNIST environments, two-moons samples); otherwise all restarts share it.
- Restart ``r`` is initialised from ``keys[r]``; step ``t`` draws its randomness (dropout) from
  ``fold_in(fold_in(keys[r], 1), t)`` and its batch from the sampler with the stream key ``fold_in(keys[r], 1)``:
  nothing depends on how the steps are cut into chunks, so a run resumed from a checkpoint ends in the same
  state, bit for bit, as one that never stopped.
- Steps run in ``lax.scan`` chunks between evaluations, compiled once per chunk length and cached per Task
  object; hyper-parameters that differ between runs belong in the optimiser state (``optax.inject_hyperparams``)
  or the algorithm state, so that runs that differ only in them share one program.
- A restart whose loss turns non-finite freezes at that step (``failed_at``) and the others go on.
- The restart axis is laid out over all visible devices (a 1-D ``jax.sharding`` mesh) when it divides evenly.

Options come in four small records: :class:`Init` (per-restart initial values), :class:`SaveAt` (recorded
outputs, checkpoints, resume), :class:`Progress` (a progress meter counting finished steps, a callback per
evaluation), :class:`Layout` (devices, restarts per block, chunk length cap). Checkpoints are ``gs_jax.checkpoints``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gs_jax import checkpoints, sampling
from gs_jax.errors import GsJaxError, Interrupted, check


class TrainState(NamedTuple):
    """State of one restart (a leading restart axis under vmap)."""

    params: Any
    model_state: Any  # non-trained variables, e.g. {"batch_stats": ...}; {} when none
    opt_state: Any
    algo_state: Any  # the algorithm's own state (e.g. Group DRO weights, hyper-parameters); {} when none
    sampler_state: Any  # the sampler's (e.g. the current epoch's permutation); {} when none
    step: jax.Array  # int32: the next step to take
    failed_at: jax.Array  # int32: first step whose loss was not finite, −1 while all are finite


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """What an experiment hands the trainer (all pure functions of one restart; the trainer jits and vmaps).

    - ``init(key, data) -> (params, model_state)``: one restart's initial variables (``data`` is that restart's).
    - ``loss(params, model_state, algo_state, batch, step, key) -> (loss, (model_state, algo_state, out))``, or
      just the scalar loss: ``out`` is a pytree recorded every ``SaveAt.record_every`` steps when asked.
    - ``optimizer``: an optax transformation (its hyper-parameters may live in its state).
    - ``sampler``: how a step draws its batch (``gs_jax.sampling``; default: the full data set).
    - ``algo_state``: the algorithm's initial state (same for every restart unless :class:`Init` gives one per
      restart).

    Compiled programs are cached per Task object (identity): build a task once and reuse it for runs that differ
    only in data, keys or state-held hyper-parameters. :meth:`simple` builds one from a short loss.
    """

    init: Callable
    loss: Callable
    optimizer: optax.GradientTransformation
    sampler: sampling.Sampler | None = None
    algo_state: Any = dataclasses.field(default_factory=dict)

    @classmethod
    def simple(cls, init: Callable, loss: Callable, optimizer, *, sampler=None) -> Task:
        """A task from ``init(key, data) -> params`` and ``loss(params, batch[, key]) -> loss`` or ``(loss, aux)``
        (``aux`` becomes the recorded ``out``); no model state, no algorithm state."""
        check(callable(init) and callable(loss), "Task.simple needs an init function and a loss function")
        takes_key = len(inspect.signature(loss).parameters) >= 3

        def full_init(key, data):
            return init(key, data), {}

        def full_loss(params, model_state, algo_state, batch, step, key):
            out = loss(params, batch, key) if takes_key else loss(params, batch)
            value, aux = out if isinstance(out, tuple) else (out, None)
            return value, (model_state, algo_state, aux)

        return cls(full_init, full_loss, optimizer, sampler)


class Evaluator(NamedTuple):
    """A metric function on the schedule ``every`` (steps 0, every, 2·every, … and the last step, each BEFORE
    that step's update; ``last=False`` leaves out the last step, so that epoch-wise evaluations beside an ``every=0``
    one cut the run into equal chunks, one compiled program); ``every=0`` runs it once, after the last update.

    ``fn(state, data) -> {name: scalar}`` for one restart (the trainer vmaps and jits it).
    """

    name: str
    fn: Callable
    every: int = 0
    last: bool = True  # every > 0: also before the last step (False: only at steps 0, every, 2·every, …)


class Init(NamedTuple):
    """Per-restart initial values: ``algo_state`` (leading restart axis), overriding ``Task.algo_state``;
    ``opt_hyperparams``, values for hyper-parameters held in the optimiser state (``optax.inject_hyperparams``),
    scalars or one per restart."""

    algo_state: Any = None
    opt_hyperparams: dict[str, Any] | None = None


class SaveAt(NamedTuple):
    """What to keep: the loss's ``out`` of steps 0, r, 2r, … (``record_every = r``; 0 keeps nothing) and
    checkpoints under ``checkpoint_dir`` (at most every ``checkpoint_every_s`` seconds, after a chunk, and at the
    end); ``resume`` continues from the newest one there (history and records included)."""

    record_every: int = 0
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    checkpoint_every_s: float = 60.0


class Progress(NamedTuple):
    """``meter(total=..., desc=...)`` returning a bar with ``update(n)``/``close()`` (e.g. tqdm), advanced when a
    chunk has *finished* (not when it was dispatched); ``on_eval`` called with every evaluation record."""

    meter: Callable | None = None
    desc: str = ""
    on_eval: Callable[[dict[str, Any]], None] | None = None


class Layout(NamedTuple):
    """``devices``: lay the restart axis over these (default: all visible ones). ``restart_block``: run the
    vmapped restarts this many at a time inside the compiled chunk (0: all at once; same results to float32
    rounding, faster on a CPU when a block's activations fit the cache, :func:`_blocked`). ``max_chunk``: split
    chunks longer than this (0: no limit), bounding a chunk's recorded outputs and the progress granularity."""

    devices: Sequence[Any] | None = None
    restart_block: int = 0
    max_chunk: int = 0


class TrainResult(NamedTuple):
    """What :func:`train` returns (numpy; leading axis = restart, none when one key was passed)."""

    state: TrainState  # the final state
    params0: Any  # the initial parameters
    history: list[dict[str, Any]]  # one record per evaluation step: {"step": s, metric: (R,) array}
    final: dict[str, np.ndarray]  # metrics of the ``every=0`` evaluators (after the last update)
    records: Any  # ``out`` of the loss at steps 0, r, 2r, … (R, T, ...); None unless record_every
    record_steps: np.ndarray  # (T,)
    failed_at: np.ndarray  # (R,)


def eval_steps(steps: int, every: int) -> list[int]:
    """Steps at which metrics are computed (before that step's update): 0, k, 2k, … and the last step."""
    return sorted(set(range(0, steps, max(1, every))) | {steps - 1})


# ---------------------------------------------------------------------------------------------------------------
# The step and the chunk (pure, per restart)
# ---------------------------------------------------------------------------------------------------------------


def _full_loss(task: Task) -> Callable:
    """The task's loss in its full form (a bare scalar return gets the state passed through)."""

    def loss(params, model_state, algo_state, batch, step, key):
        out = task.loss(params, model_state, algo_state, batch, step, key)
        if not isinstance(out, tuple):
            return out, (model_state, algo_state, None)
        check(
            len(out) == 2 and isinstance(out[1], tuple) and len(out[1]) == 3,
            "Task.loss must return the loss or (loss, (model_state, algo_state, out)); for a loss of "
            "(params, batch) returning a scalar or (loss, aux), build the task with Task.simple",
        )
        return out

    return loss


def make_step(task: Task) -> Callable:
    """``step(state, data, key, t) -> (state, (loss, out))``: one optimiser step of one restart.

    ``key`` is the restart's stream key, ``t`` the step (unbatched); this step's randomness is ``fold_in(key, t)``.
    A non-finite loss freezes the whole state at that step (``failed_at`` records it) instead of spreading NaNs.
    """
    sampler = task.sampler or sampling.full_batch()
    loss_fn = _full_loss(task)

    def step(state: TrainState, data, key, t):
        batch, sampler_state = sampler.draw(data, state.sampler_state, t, key)
        (loss, (model_state, algo_state, out)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.model_state, state.algo_state, batch, t, jax.random.fold_in(key, t)
        )
        updates, opt_state = task.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & (state.failed_at < 0)
        keep = functools.partial(jnp.where, ok)  # a diverged restart stops: its state freezes
        failed_at = jnp.where((state.failed_at < 0) & ~jnp.isfinite(loss), t, state.failed_at)
        new = TrainState(
            jax.tree_util.tree_map(keep, params, state.params),
            jax.tree_util.tree_map(keep, model_state, state.model_state),
            jax.tree_util.tree_map(keep, opt_state, state.opt_state),
            jax.tree_util.tree_map(keep, algo_state, state.algo_state),
            sampler_state,
            state.step + 1,
            failed_at,
        )
        return new, (loss, out)

    return step


def make_chunk(task: Task) -> Callable:
    """``chunk(state, data, key, t0, length, record_every) -> (state, records)``: ``length`` steps in
    ``lax.scan`` from step ``t0`` (an unbatched scalar carried through the scan, so per-epoch sampler work stays a
    real ``cond`` under vmap).

    With ``record_every = r > 0`` (the chunk must then start at a multiple of r) the loss's ``out`` of the steps at
    offsets 0, r, 2r, … < ``length`` is stacked and returned; with 0 nothing is kept.
    """
    step = make_step(task)

    def chunk(state, data, key, t0, length: int, record_every: int = 0):
        def plain(carry, _):
            s, t = carry
            return (step(s, data, key, t)[0], t + 1), None

        carry = (state, jnp.asarray(t0, jnp.int32))
        if not record_every:
            return jax.lax.scan(plain, carry, None, length=length)[0][0], None

        def group(size):
            def body(c, _):
                s, t = c
                s, (_, out) = step(s, data, key, t)
                c = (s, t + 1)
                if size > 1:
                    c, _ = jax.lax.scan(plain, c, None, length=size - 1)
                return c, out

            return body

        full, rest = divmod(length, record_every)
        outs = []
        if full:
            carry, out = jax.lax.scan(group(record_every), carry, None, length=full)
            outs.append(out)
        if rest:
            carry, out = jax.lax.scan(group(rest), carry, None, length=1)
            outs.append(out)
        return carry[0], jax.tree_util.tree_map(lambda *o: jnp.concatenate(o), *outs)

    return chunk


def init_state(task: Task, key, data, algo_state=None) -> TrainState:
    """One restart's initial :class:`TrainState` (vmap it over restarts); ``algo_state`` overrides the task's."""
    params, model_state = task.init(key, data)
    algo_state = task.algo_state if algo_state is None else algo_state
    sampler = task.sampler or sampling.full_batch()
    sampler_state = sampler.init(data, algo_state, jax.random.fold_in(key, 1))
    return TrainState(params, model_state, task.optimizer.init(params), algo_state, sampler_state,
                      jnp.int32(0), jnp.int32(-1))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------------------------------


def restart_sharding(n_restarts: int, devices: Sequence[Any] | None = None) -> NamedSharding | None:
    """A sharding of the leading (restart) axis over all devices, or None on one device or when the restarts
    do not divide evenly among the devices (then everything stays on the default device)."""
    devices = list(devices or jax.devices())
    if len(devices) < 2 or n_restarts % len(devices):
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("restart",)), PartitionSpec("restart"))


def _place(tree, sharding):
    return tree if sharding is None else jax.device_put(tree, sharding)


# ---------------------------------------------------------------------------------------------------------------
# The host loop
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _compiled(task: Task, data_axis: int | None, restart_block: int = 0, per_restart_algo: bool = False):
    chunk = make_chunk(task)
    init = jax.jit(
        jax.vmap(functools.partial(init_state, task), in_axes=(0, data_axis, 0 if per_restart_algo else None))
    )
    chunks: dict[tuple[int, int], Callable] = {}

    def run(state, data, keys, t0, length: int, record_every: int):
        if (length, record_every) not in chunks:
            one = functools.partial(chunk, length=length, record_every=record_every)
            if restart_block:
                fn = functools.partial(_blocked, one, data_axis, restart_block)
            else:
                fn = jax.vmap(one, in_axes=(0, data_axis, 0, None))
            chunks[(length, record_every)] = jax.jit(fn, donate_argnums=0)
        return chunks[(length, record_every)](state, data, keys, jnp.int32(t0))

    return init, run, chunks


def _blocked(one: Callable, data_axis: int | None, block: int, state, data, keys, t0):
    """``vmap(one)`` over the restarts, evaluated ``block`` restarts at a time (``lax.map(..., batch_size=block)``).

    Same results to float32 rounding (a matmul batched over fewer restarts may sum in another order; bit for bit
    on Colored MNIST): every restart's arithmetic is unchanged, only the order in which the restarts' steps run.
    On a CPU it keeps a block's activations in cache and its matmuls at a size the GEMM kernel runs near peak:
    10 vmapped Colored MNIST restarts make one (10, 4000, 392) × (10, 392, 300) batched matmul per layer, whose
    63 MB operand does not fit the 32 MB L3 cache: 210 GFLOP/s, 0.45 of the float32 matmul peak measured in the
    same run, where one restart's matmul alone ran at 0.83 (2 CPU cores).
    """
    if data_axis is None:
        return jax.lax.map(lambda a: one(a[0], data, a[1], t0), (state, keys), batch_size=block)
    return jax.lax.map(lambda a: one(a[0], a[1], a[2], t0), (state, data, keys), batch_size=block)


@functools.lru_cache(maxsize=64)
def _compiled_evaluator(fn: Callable, data_axis: int | None) -> Callable:
    """``jit(vmap(fn))`` over restarts, cached per function so repeated runs do not recompile it."""
    return jax.jit(jax.vmap(fn, in_axes=(0, data_axis)))


def auto_restart_block(activation_bytes_per_restart: int) -> int:
    """A :class:`Layout` ``restart_block`` from one restart's hidden activations per step (bytes): 2 on a CPU when
    they exceed 1 MiB, else 0 (all restarts at once; always 0 on an accelerator).

    Measured on 2 CPU cores (jax 0.9.2), 10 restarts, blocks of 2 against all at once, identical results: Colored
    MNIST (4,000 × 2 × 300 floats, 9.6 MB) 1.13×, the 5,000-wide two-moons net (300 × 5,000, 6 MB) 1.9×, the
    5-layer one (300 × 4 × 500, 2.4 MB) 1.17×, but the 2-500-1 net (0.6 MB, dispatch-bound) 0.8×.
    """
    if jax.default_backend() != "cpu" or activation_bytes_per_restart <= 2**20:
        return 0
    return 2


def compiled_chunks(task: Task, data_per_restart: bool = True, restart_block: int = 0) -> int:
    """How many chunk programs have been compiled for ``task`` (the chunk cache at work; used by the tests)."""
    return sum(
        len(_compiled(task, 0 if data_per_restart else None, restart_block, p)[2]) for p in (False, True)
    )


def _as_restarts(keys) -> tuple[jax.Array, bool]:
    """``(keys with a restart axis, whether one key was passed)``."""
    keys = jnp.asarray(keys)
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    single = keys.ndim == (0 if typed else 1)
    check(
        keys.ndim == (1 if typed else 2) or single,
        f"keys must be one PRNG key or a stack of them (R, 2), one per restart; got shape {keys.shape}",
    )
    return (keys[None] if single else keys), single


def train(
    task: Task,
    data: Any,
    keys: jax.Array,
    *,
    steps: int,
    data_per_restart: bool = True,
    evaluators: Sequence[Evaluator] = (),
    init: Init = Init(),
    saveat: SaveAt = SaveAt(),
    progress: Progress = Progress(),
    layout: Layout = Layout(),
) -> TrainResult:
    """Train ``len(keys)`` restarts of ``task`` for ``steps`` steps, as one vmapped program.

    Args:
      task: init, loss, optimiser, sampler of one method (or of several dispatched per restart).
      data: a pytree of arrays; leading restart axis when ``data_per_restart``.
      keys: ``(R, 2)`` PRNG keys, one per restart (restart r is initialised from ``keys[r]``), or ONE key: one
        restart, and the result without a restart axis.
      steps: optimiser steps per restart.
      evaluators: metrics on their own schedules (see :class:`Evaluator`).
      init, saveat, progress, layout: option records (see each).

    Ctrl-C raises :class:`gs_jax.errors.Interrupted` carrying the step of the newest checkpoint.
    """
    check(steps >= 1, f"steps must be ≥ 1, got {steps}")
    check(saveat.record_every >= 0, f"record_every must be ≥ 0, got {saveat.record_every}")
    check(
        layout.restart_block >= 0,
        f"restart_block must be ≥ 0 (0: all restarts at once), got {layout.restart_block}",
    )
    keys, single = _as_restarts(keys)
    if single and data_per_restart:
        data = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], data)
    n_restarts = int(keys.shape[0])
    data_axis = 0 if data_per_restart else None
    sharding = restart_sharding(n_restarts, layout.devices)
    block = layout.restart_block if sharding is None and 0 < layout.restart_block < n_restarts else 0
    algo = init.algo_state
    if single and algo is not None:
        algo = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], algo)
    init_v, run, _ = _compiled(task, data_axis, block, algo is not None)
    data = jax.tree_util.tree_map(jnp.asarray, data)
    if data_per_restart:
        sizes = {int(np.shape(a)[0]) if np.ndim(a) else 0 for a in jax.tree_util.tree_leaves(data)}
        check(
            sizes == {n_restarts},
            f"data_per_restart: every data array needs a leading restart axis of size {n_restarts} (one per key), "
            f"got sizes {sorted(sizes)}; pass data_per_restart=False for data shared by all restarts",
        )
    data = _place(data, sharding if data_per_restart else None)
    keys = _place(keys, sharding)
    state = init_v(keys, data, None if algo is None else jax.tree_util.tree_map(jnp.asarray, algo))
    step_keys = _place(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys), sharding)
    if init.opt_hyperparams:
        state = state._replace(opt_state=_set_hyperparams(state.opt_state, init.opt_hyperparams, n_restarts))
    params0 = jax.device_get(state.params)
    state = _place(state, sharding)

    schedule: dict[int, list[Evaluator]] = {}
    for ev in evaluators:
        if ev.every > 0:
            for s in eval_steps(steps, ev.every) if ev.last else range(0, steps, ev.every):
                schedule.setdefault(s, []).append(ev)
    evaluate = {ev.name: _compiled_evaluator(ev.fn, data_axis) for ev in evaluators}
    record_every, ckpt_dir = saveat.record_every, saveat.checkpoint_dir

    history: list[dict[str, Any]] = []
    records: list[Any] = []
    t = 0
    if (
        saveat.resume
        and ckpt_dir is not None
        and (ckpt := checkpoints.latest_checkpoint(ckpt_dir)) is not None
    ):
        structure = _out_structure(task, state, data, data_axis, step_keys) if record_every else None
        restored, t, history, params0, recs = checkpoints.restore_run(
            ckpt, jax.device_get(state), params0, structure
        )
        state = _place(jax.tree_util.tree_map(jnp.asarray, restored), sharding)
        records = [recs] if recs is not None else []
    saved_t, last_save = t, time.monotonic()

    bar = progress.meter(total=steps, desc=progress.desc) if progress.meter else None
    if bar is not None and t:
        bar.update(t)

    def checkpoint(state, force=False):
        nonlocal saved_t, last_save
        if ckpt_dir is None or t == saved_t and not force:
            return
        if force or time.monotonic() - last_save >= saveat.checkpoint_every_s:
            recs = _concat_records(records) if record_every and records else None
            checkpoints.save_run(ckpt_dir, state, t=t, history=history, params0=params0, records=recs)
            saved_t, last_save = t, time.monotonic()

    def advance(state, target):
        nonlocal t
        while t < target:
            length = target - t if not layout.max_chunk else min(target - t, layout.max_chunk)
            record = record_every
            if record_every and t % record_every:  # finish the current record group without recording
                length, record = min(record_every - t % record_every, target - t), 0
            elif record_every and length > record_every and length % record_every and target - t > length:
                length -= length % record_every  # keep later chunks aligned with the record groups
            state, rec = run(state, data, step_keys, t, length, record)
            jax.block_until_ready(state.step)  # the bar counts finished work, not dispatched work
            if record:
                records.append(jax.device_get(rec))
            t += length
            if bar is not None:
                bar.update(length)
            checkpoint(state)
        return state

    try:
        for s in sorted(schedule):
            if s < t or (s == t and history and history[-1]["step"] == s):
                continue  # already done before a resume
            state = advance(state, s)
            record: dict[str, Any] = {"step": s}
            for ev in schedule[s]:
                record.update({k: np.asarray(v) for k, v in evaluate[ev.name](state, data).items()})
            history.append(record)
            if progress.on_eval is not None:
                progress.on_eval(_unbatch(record) if single else record)
        state = advance(state, steps)
        checkpoint(state, force=True)
    except KeyboardInterrupt:
        raise Interrupted(saved_t, progress.desc) from None
    finally:
        if bar is not None:
            bar.close()
    final: dict[str, np.ndarray] = {}
    for ev in evaluators:
        if ev.every <= 0:
            final.update({k: np.asarray(v) for k, v in evaluate[ev.name](state, data).items()})
    recs = _concat_records(records) if record_every else None
    record_steps = np.arange(0, steps, record_every) if record_every else np.zeros(0, int)
    state = jax.device_get(state)
    result = TrainResult(state, params0, history, final, recs, record_steps, np.asarray(state.failed_at))
    return _unbatch_result(result) if single else result


def _unbatch(tree):
    return jax.tree_util.tree_map(lambda a: a[0] if np.ndim(a) else a, tree)


def _unbatch_result(r: TrainResult) -> TrainResult:
    history = [
        {"step": h["step"], **_unbatch({k: v for k, v in h.items() if k != "step"})} for h in r.history
    ]
    return r._replace(state=_unbatch(r.state), params0=_unbatch(r.params0), history=history,
                      final=_unbatch(r.final), records=None if r.records is None else _unbatch(r.records),
                      failed_at=r.failed_at[0])  # fmt: skip


def _set_hyperparams(opt_state, values: dict[str, Any], n_restarts: int):
    """Overwrite hyper-parameters in an ``optax.inject_hyperparams`` state (leading restart axis)."""
    check(
        hasattr(opt_state, "hyperparams"),
        "opt_hyperparams needs an optimiser built with optax.inject_hyperparams",
    )
    unknown = set(values) - set(opt_state.hyperparams)
    check(
        not unknown,
        f"unknown optimiser hyper-parameters {sorted(unknown)}; have {sorted(opt_state.hyperparams)}",
    )
    new = dict(opt_state.hyperparams)
    for k, v in values.items():
        old = opt_state.hyperparams[k]
        new[k] = jnp.broadcast_to(jnp.asarray(v, old.dtype), (n_restarts,))
    return opt_state._replace(hyperparams=new)


def _concat_records(records: list[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *a: np.concatenate([np.asarray(x) for x in a], axis=1), *records)


def _out_structure(task: Task, state: TrainState, data, data_axis, step_keys):
    """The pytree structure of the loss's recorded ``out`` (traced abstractly on restart 0)."""
    first = functools.partial(jax.tree_util.tree_map, lambda a: a[0])
    d0 = data if data_axis is None else first(data)
    s0 = first(state)
    sampler = task.sampler or sampling.full_batch()
    t = jnp.int32(0)
    batch = jax.eval_shape(lambda: sampler.draw(d0, s0.sampler_state, t, step_keys[0])[0])
    out = jax.eval_shape(_full_loss(task), s0.params, s0.model_state, s0.algo_state, batch, t, step_keys[0])
    return jax.tree_util.tree_structure(out[1][2])


def report_failures(name: str, failed_at: np.ndarray, seeds: Sequence[Any]) -> None:
    """One stderr line per restart whose loss turned non-finite (its state froze there)."""
    for r in np.flatnonzero(np.atleast_1d(np.asarray(failed_at)) >= 0):
        print(
            f"[gs-jax] {name}: restart {r} ({seeds[r]}) stopped: non-finite loss at step "
            f"{int(np.atleast_1d(failed_at)[r])}; its parameters are frozen there and it is excluded from the table",
            file=sys.stderr,
        )


__all__ = [
    "TrainState", "Task", "Evaluator", "Init", "SaveAt", "Progress", "Layout", "TrainResult", "train",
    "eval_steps", "make_step", "make_chunk", "init_state", "auto_restart_block", "compiled_chunks",
    "restart_sharding", "report_failures", "GsJaxError",
]  # fmt: skip
