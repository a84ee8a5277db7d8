"""The generic trainer: restarts as a vmap axis, ``lax.scan`` chunks between host evaluations, checkpoints.

It knows no dataset, model, method or figure. An experiment hands in a :class:`Task` — how to initialise
parameters, the loss, the optimiser — and its data; the trainer runs every restart of it as one jit-compiled,
vmapped program::

    task = Task(init=init, loss=loss, optimizer=optax.adam(1e-3))
    result = train(task, data, keys, steps=1001, evaluators=[Evaluator("train", metrics_fn, every=50)])

Conventions
-----------
- ``data`` is a pytree of arrays. With ``data_per_restart=True`` every leaf has a leading restart axis (each restart
  its own data set: Colored MNIST environments, two-moons samples); otherwise all restarts share it.
- Restart ``r`` is initialised from ``keys[r]``; its step ``t`` draws randomness (dropout, minibatches, augmentation)
  from ``fold_in(fold_in(keys[r], 1), t)``: nothing depends on how the steps are cut into chunks, so a run resumed
  from a checkpoint ends in the same state, bit for bit, as one that never stopped.
- Steps run in ``lax.scan`` chunks between evaluations. The chunk program is compiled once per chunk length and
  cached; hyper-parameters that differ between runs belong in the optimiser state (``optax.inject_hyperparams``)
  or the algorithm state, so that runs that differ only in them share one compiled program.
- A restart whose loss turns non-finite freezes at that step (``failed_at``) and the others go on.
- The restart axis is laid out over all visible devices (a 1-D ``jax.sharding`` mesh) when it divides evenly.

Evaluators are configured, not coded into the loop: an :class:`Evaluator` has a name, a pure function of
``(state, data)`` returning scalars per restart, and its own schedule. Progress bars are injected by the caller.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gs_jax.errors import GsJaxError, check

CHECKPOINT_VERSION = 1
_BATCH_STREAM = 2**31 - 1  # fold_in index of the minibatch-permutation stream (steps use 0, 1, 2, ...)


class TrainState(NamedTuple):
    """State of one restart (a leading restart axis under vmap)."""

    params: Any
    model_state: Any  # non-trained variables, e.g. {"batch_stats": ...}; {} when none
    opt_state: Any
    algo_state: Any  # the algorithm's own state (e.g. an SD coefficient, Group DRO weights); {} when none
    step: jax.Array  # int32: the next step to take
    failed_at: jax.Array  # int32: first step whose loss was not finite, −1 while all are finite


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """What an experiment hands the trainer (all pure functions; none is jitted or vmapped by the caller).

    - ``init(key, data) -> (params, model_state)``: one restart's initial variables (``data`` is that restart's).
    - ``loss(params, model_state, algo_state, batch, step, key) -> (loss, (model_state, algo_state, out))``:
      the scalar to minimise; ``out`` is a pytree recorded every ``record_every`` steps (e.g. the training
      logits of that step's forward pass) when :func:`train` is asked to record.
    - ``optimizer``: an optax transformation (its hyper-parameters may live in its state).
    - ``batch(data, step, key) -> batch``: the batch of a step (default: the full data set); ``key`` is the
      restart's stream key (the same at every step: derive per-epoch keys from it, see :func:`minibatches`).
    - ``algo_state``: the algorithm's initial state (same for every restart unless :func:`train` gets one per
      restart); the loss's ``out`` must be one array (or None) when recorded.

    Compiled programs are cached per Task object (identity): build a task once and reuse it for runs that differ
    only in data, keys or state-held hyper-parameters.
    """

    init: Callable
    loss: Callable
    optimizer: optax.GradientTransformation
    batch: Callable | None = None
    algo_state: Any = dataclasses.field(default_factory=dict)


class Evaluator(NamedTuple):
    """A metric function on the schedule ``every`` (steps 0, every, 2·every, … and the last step, each BEFORE
    that step's update); ``every=0`` runs it once, after the last update.

    ``fn(state, data) -> {name: scalar}`` for one restart (the trainer vmaps and jits it).
    """

    name: str
    fn: Callable
    every: int = 0


class TrainResult(NamedTuple):
    """What :func:`train` returns (numpy, leading axis = restart)."""

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


def full_batch(data, step, key):
    """The default batch function: every step sees all the data."""
    return data


def minibatches(batch_size: int, *, axis_size: Callable[[Any], int] | None = None) -> Callable:
    """A batch function drawing epochs of shuffled minibatches on the device (without replacement).

    Step ``t`` belongs to epoch ``t // b`` (b = ⌊n / batch_size⌋ batches per epoch; the remainder of each
    permutation is dropped, as a ``drop_last`` loader); the permutation of an epoch is drawn from
    ``fold_in(fold_in(key, 2³¹ − 1), epoch)`` of the restart's stream key (a stream apart from the per-step keys
    ``fold_in(key, t)``), so it is the same whichever chunk the step falls in.
    """

    def batch(data, step, key):
        n = axis_size(data) if axis_size else jax.tree_util.tree_leaves(data)[0].shape[0]
        per_epoch = n // batch_size
        check(per_epoch >= 1, f"batch_size {batch_size} is larger than the data set ({n} examples)")
        epoch, i = step // per_epoch, step % per_epoch
        perm = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, _BATCH_STREAM), epoch), n)
        idx = jax.lax.dynamic_slice(perm, (i * batch_size,), (batch_size,))
        return jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), data)

    return batch


# ---------------------------------------------------------------------------------------------------------------
# The step and the chunk (pure, per restart)
# ---------------------------------------------------------------------------------------------------------------


def make_step(task: Task) -> Callable:
    """``step(state, data, key) -> (state, (loss, out))``: one optimiser step of one restart.

    ``key`` is the restart's step key; this step's randomness is ``fold_in(key, state.step)``. A non-finite loss
    freezes the whole state at that step (``failed_at`` records it) instead of spreading NaNs.
    """
    batch_fn = task.batch or full_batch

    def step(state: TrainState, data, key):
        step_key = jax.random.fold_in(key, state.step)
        batch = batch_fn(data, state.step, key)
        (loss, (model_state, algo_state, out)), grads = jax.value_and_grad(task.loss, has_aux=True)(
            state.params, state.model_state, state.algo_state, batch, state.step, step_key
        )
        updates, opt_state = task.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & (state.failed_at < 0)
        keep = functools.partial(jnp.where, ok)  # a diverged restart stops: its state freezes
        failed_at = jnp.where((state.failed_at < 0) & ~jnp.isfinite(loss), state.step, state.failed_at)
        new = TrainState(
            jax.tree_util.tree_map(keep, params, state.params),
            jax.tree_util.tree_map(keep, model_state, state.model_state),
            jax.tree_util.tree_map(keep, opt_state, state.opt_state),
            jax.tree_util.tree_map(keep, algo_state, state.algo_state),
            state.step + 1,
            failed_at,
        )
        return new, (loss, out)

    return step


def make_chunk(task: Task) -> Callable:
    """``chunk(state, data, key, length, record_every) -> (state, records)``: ``length`` steps in ``lax.scan``.

    With ``record_every = r > 0`` (the chunk must then start at a multiple of r) the loss's ``out`` of the steps at
    offsets 0, r, 2r, … < ``length`` is stacked and returned; with 0 nothing is kept.
    """
    step = make_step(task)

    def chunk(state, data, key, length: int, record_every: int = 0):
        def plain(s, _):
            return step(s, data, key)[0], None

        if not record_every:
            return jax.lax.scan(plain, state, None, length=length)[0], None

        def group(size):
            def body(s, _):
                s, (_, out) = step(s, data, key)
                if size > 1:
                    s, _ = jax.lax.scan(plain, s, None, length=size - 1)
                return s, out

            return body

        full, rest = divmod(length, record_every)
        outs = []
        if full:
            state, out = jax.lax.scan(group(record_every), state, None, length=full)
            outs.append(out)
        if rest:
            state, out = jax.lax.scan(group(rest), state, None, length=1)
            outs.append(out)
        return state, jax.tree_util.tree_map(lambda *o: jnp.concatenate(o), *outs)

    return chunk


def init_state(task: Task, key, data) -> TrainState:
    """One restart's initial :class:`TrainState` (vmap it over restarts)."""
    params, model_state = task.init(key, data)
    return TrainState(
        params, model_state, task.optimizer.init(params), task.algo_state, jnp.int32(0), jnp.int32(-1)
    )


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
# Checkpoints: a plain, versioned format (npz of the state's leaves + JSON of the host-side bookkeeping)
# ---------------------------------------------------------------------------------------------------------------


def save_checkpoint(
    directory: str | Path,
    state: TrainState,
    extra: dict[str, Any],
    arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``ckpt_<step>.npz`` (all restarts) atomically and keep the newest two.

    The state's leaves are stored with their dtypes; ``extra`` (JSON-able bookkeeping) and ``arrays`` (named numpy
    arrays, e.g. the evaluation history) go beside them.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    leaves, treedef = jax.tree_util.tree_flatten(jax.device_get(state))
    step = int(np.max(np.asarray(state.step)))
    arrays = dict(arrays or {})
    meta = {
        "version": CHECKPOINT_VERSION,
        "step": step,
        "treedef": str(treedef),
        "n_leaves": len(leaves),
        "arrays": sorted(arrays),
        "extra": extra,
    }
    target = directory / f"ckpt_{step:09d}.npz"
    tmp = directory / f".ckpt_{step:09d}.tmp.npz"
    np.savez(
        tmp,
        __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        **{f"leaf_{i:05d}": np.asarray(a) for i, a in enumerate(leaves)},
        **{f"array_{k}": np.asarray(v) for k, v in arrays.items()},
    )
    tmp.replace(target)
    for old in sorted(directory.glob("ckpt_*.npz"))[:-2]:
        old.unlink()
    return target


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest ``ckpt_*.npz`` under ``directory`` (None if there is none)."""
    found = sorted(Path(directory).glob("ckpt_*.npz")) if Path(directory).is_dir() else []
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path, like: TrainState
) -> tuple[TrainState, dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint into the structure of ``like`` (a freshly initialised state): ``(state, extra, arrays)``.

    One-line errors when the file is corrupt or was written for another model, optimiser or number of restarts.
    """
    path = Path(path)
    try:
        with np.load(path) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            leaves = [z[f"leaf_{i:05d}"] for i in range(meta["n_leaves"])]
            arrays = {k: z[f"array_{k}"] for k in meta["arrays"]}
    except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError, EOFError ...
        raise GsJaxError(
            f"checkpoint {path} is unreadable ({type(e).__name__}): delete it to start over"
        ) from e
    if meta.get("version") != CHECKPOINT_VERSION:
        raise GsJaxError(
            f"checkpoint {path} has format version {meta.get('version')}, expected {CHECKPOINT_VERSION}"
        )
    ref_leaves, treedef = jax.tree_util.tree_flatten(like)
    fits = str(treedef) == meta["treedef"] and len(ref_leaves) == len(leaves)
    fits = fits and all(
        np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
        for a, b in zip(ref_leaves, leaves, strict=False)
    )
    if not fits:
        raise GsJaxError(
            f"checkpoint {path} does not fit this run (another model, optimiser or number of restarts): "
            "resume with the configuration it was written with, or delete it to start over"
        )
    return jax.tree_util.tree_unflatten(treedef, leaves), meta["extra"], arrays


# ---------------------------------------------------------------------------------------------------------------
# The host loop
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _compiled(task: Task, data_axis: int | None, restart_block: int = 0):
    chunk = make_chunk(task)
    init = jax.jit(jax.vmap(functools.partial(init_state, task), in_axes=(0, data_axis)))
    chunks: dict[tuple[int, int], Callable] = {}

    def run(state, data, keys, length: int, record_every: int):
        if (length, record_every) not in chunks:
            one = functools.partial(chunk, length=length, record_every=record_every)
            if restart_block:
                fn = functools.partial(_blocked, one, data_axis, restart_block)
            else:
                fn = jax.vmap(one, in_axes=(0, data_axis, 0))
            chunks[(length, record_every)] = jax.jit(fn, donate_argnums=0)
        return chunks[(length, record_every)](state, data, keys)

    return init, run, chunks


def _blocked(one: Callable, data_axis: int | None, block: int, state, data, keys):
    """``vmap(one)`` over the restarts, evaluated ``block`` restarts at a time (``lax.map(..., batch_size=block)``).

    Same results to float32 rounding (a matmul batched over fewer restarts may sum in another order; bit for bit
    on Colored MNIST): every restart's arithmetic is unchanged, only the order in which the restarts' steps run.
    On a CPU it keeps a block's activations in cache and its matmuls at a size the GEMM kernel runs near peak:
    10 vmapped Colored MNIST restarts make one (10, 4000, 392) × (10, 392, 300) batched matmul per layer, whose
    63 MB operand does not fit the 32 MB L3 cache: 210 GFLOP/s, 0.45 of the float32 matmul peak measured in the
    same run, where one restart's matmul alone ran at 0.83 (2 CPU cores).
    """
    if data_axis is None:
        return jax.lax.map(lambda a: one(a[0], data, a[1]), (state, keys), batch_size=block)
    return jax.lax.map(lambda a: one(*a), (state, data, keys), batch_size=block)


@functools.lru_cache(maxsize=64)
def _compiled_evaluator(fn: Callable, data_axis: int | None) -> Callable:
    """``jit(vmap(fn))`` over restarts, cached per function so repeated runs do not recompile it."""
    return jax.jit(jax.vmap(fn, in_axes=(0, data_axis)))


def auto_restart_block(activation_bytes_per_restart: int) -> int:
    """A ``restart_block`` for :func:`train` from one restart's hidden activations per step (bytes): 2 on a CPU when
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
    return len(_compiled(task, 0 if data_per_restart else None, restart_block)[2])


def train(
    task: Task,
    data: Any,
    keys: jax.Array,
    *,
    steps: int,
    data_per_restart: bool = True,
    evaluators: Sequence[Evaluator] = (),
    record_every: int = 0,
    algo_state: Any = None,
    opt_hyperparams: dict[str, Any] | None = None,
    progress: Callable | None = None,
    desc: str = "",
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    max_chunk: int = 0,
    devices: Sequence[Any] | None = None,
    restart_block: int = 0,
) -> TrainResult:
    """Train ``len(keys)`` restarts of ``task`` for ``steps`` steps, as one vmapped program.

    Args:
      task: init, loss, optimiser (and batch function) of one method.
      data: a pytree of arrays; leading restart axis when ``data_per_restart``.
      keys: ``(R, 2)`` PRNG keys, one per restart (restart r is initialised from ``keys[r]``).
      steps: optimiser steps per restart.
      evaluators: metrics on their own schedules (see :class:`Evaluator`).
      record_every: keep the loss's ``out`` of steps 0, r, 2r, … (``records`` has ⌈steps / r⌉ entries per
        restart); 0 keeps nothing.
      algo_state: per-restart algorithm state (leading restart axis), overriding ``task.algo_state``.
      opt_hyperparams: values for hyper-parameters held in the optimiser state (``optax.inject_hyperparams``),
        scalars or one per restart; the compiled program is the same whatever they are.
      progress: ``progress(total=..., desc=...)`` returning a bar with ``update(n)``/``close()`` (e.g. tqdm).
      on_eval: called with every evaluation record (e.g. to append it to metrics.jsonl).
      checkpoint_dir: write the state every ``checkpoint_every`` evaluations (and at the end) under it.
      resume: continue from the newest checkpoint in ``checkpoint_dir`` (history and records included).
      max_chunk: split chunks longer than this (0: no limit), bounding a chunk's recorded outputs.
      devices: lay the restart axis over these devices (default: all visible ones).
      restart_block: run the vmapped restarts this many at a time inside the compiled chunk (0: all at once).
        The results are the same (to float32 rounding); on a CPU, blocks whose activations fit the cache are faster (see
        :func:`_blocked`). Ignored when the restarts are laid over several devices.
    """
    check(steps >= 1, f"steps must be ≥ 1, got {steps}")
    check(record_every >= 0, f"record_every must be ≥ 0, got {record_every}")
    check(restart_block >= 0, f"restart_block must be ≥ 0 (0: all restarts at once), got {restart_block}")
    keys = jnp.asarray(keys)
    n_restarts = int(keys.shape[0])
    data_axis = 0 if data_per_restart else None
    sharding = restart_sharding(n_restarts, devices)
    block = restart_block if sharding is None and 0 < restart_block < n_restarts else 0
    init_v, run, _ = _compiled(task, data_axis, block)
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
    step_keys = _place(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys), sharding)
    state = init_v(keys, data)
    if algo_state is not None:
        state = state._replace(algo_state=jax.tree_util.tree_map(jnp.asarray, algo_state))
    if opt_hyperparams:
        state = state._replace(opt_state=_set_hyperparams(state.opt_state, opt_hyperparams, n_restarts))
    params0 = jax.device_get(state.params)
    state = _place(state, sharding)

    schedule: dict[int, list[Evaluator]] = {}
    for ev in evaluators:
        if ev.every > 0:
            for s in eval_steps(steps, ev.every):
                schedule.setdefault(s, []).append(ev)
    stops = sorted(schedule)
    evaluate = {ev.name: _compiled_evaluator(ev.fn, data_axis) for ev in evaluators}

    history: list[dict[str, Any]] = []
    records: list[Any] = []
    t, n_evals = 0, 0
    if resume and checkpoint_dir is not None and (ckpt := latest_checkpoint(checkpoint_dir)) is not None:
        state, extra, arrays = load_checkpoint(ckpt, jax.device_get(state))
        state = _place(jax.tree_util.tree_map(jnp.asarray, state), sharding)
        t = int(extra["t"])
        history = _history_from_arrays(extra["history_keys"], arrays)
        p0_def = jax.tree_util.tree_structure(params0)
        params0 = jax.tree_util.tree_unflatten(
            p0_def, [arrays[f"p0_{i:05d}"] for i in range(p0_def.num_leaves)]
        )
        n_rec = int(extra.get("n_record_leaves", 0))
        if n_rec:
            records = [
                jax.tree_util.tree_unflatten(
                    _out_structure(task, state, data, data_axis, step_keys),
                    [arrays[f"records_{i}"] for i in range(n_rec)],
                )
            ]

    bar = progress(total=steps, desc=desc) if progress else None
    if bar is not None and t:
        bar.update(t)

    def advance(state, target):
        nonlocal t
        while t < target:
            length = target - t if not max_chunk else min(target - t, max_chunk)
            record = record_every
            if record_every and t % record_every:  # finish the current record group without recording
                length, record = min(record_every - t % record_every, target - t), 0
            elif record_every and length > record_every and length % record_every and target - t > length:
                length -= length % record_every  # keep later chunks aligned with the record groups
            state, rec = run(state, data, step_keys, length, record)
            if record:
                records.append(jax.device_get(rec))
            if bar is not None:
                bar.update(length)
            t += length
        return state

    def checkpoint(state, force=False):
        if checkpoint_dir is None or (not force and n_evals % max(checkpoint_every, 1)):
            return
        arrays = {f"p0_{i:05d}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(params0))}
        keys_per_record = [[k for k in h if k != "step"] for h in history]
        for i, h in enumerate(history):
            arrays.update({f"h{i:06d}_{k}": v for k, v in h.items() if k != "step"})
        extra = {
            "t": t,
            "history_keys": [[h["step"], ks] for h, ks in zip(history, keys_per_record, strict=True)],
        }
        if record_every and records:
            leaves = jax.tree_util.tree_leaves(_concat_records(records))
            arrays.update({f"records_{i}": a for i, a in enumerate(leaves)})
            extra["n_record_leaves"] = len(leaves)
        save_checkpoint(checkpoint_dir, state, extra, arrays)

    for s in stops:
        if s < t or (s == t and history and history[-1]["step"] == s):
            continue  # already done before a resume
        state = advance(state, s)
        record: dict[str, Any] = {"step": s}
        for ev in schedule[s]:
            record.update({k: np.asarray(v) for k, v in evaluate[ev.name](state, data).items()})
        history.append(record)
        n_evals += 1
        if on_eval is not None:
            on_eval(record)
        checkpoint(state)
    state = advance(state, steps)
    if bar is not None:
        bar.close()
    checkpoint(state, force=True)
    final: dict[str, np.ndarray] = {}
    for ev in evaluators:
        if ev.every <= 0:
            final.update({k: np.asarray(v) for k, v in evaluate[ev.name](state, data).items()})
    recs = _concat_records(records) if record_every else None
    record_steps = np.arange(0, steps, record_every) if record_every else np.zeros(0, int)
    state = jax.device_get(state)
    return TrainResult(state, params0, history, final, recs, record_steps, np.asarray(state.failed_at))


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
    batch = (task.batch or full_batch)(d0, s0.step, step_keys[0])
    out = jax.eval_shape(task.loss, s0.params, s0.model_state, s0.algo_state, batch, s0.step, step_keys[0])
    return jax.tree_util.tree_structure(out[1][2])


def _history_from_arrays(history_keys, arrays) -> list[dict[str, Any]]:
    return [
        {"step": int(step), **{k: arrays[f"h{i:06d}_{k}"] for k in keys}}
        for i, (step, keys) in enumerate(history_keys)
    ]


def report_failures(name: str, failed_at: np.ndarray, seeds: Sequence[int]) -> None:
    """One stderr line per restart whose loss turned non-finite (its state froze there)."""
    for r in np.flatnonzero(np.asarray(failed_at) >= 0):
        print(
            f"[gs-jax] {name}: restart {r} (seed {seeds[r]}) stopped: non-finite loss at step "
            f"{int(failed_at[r])}; its parameters are frozen there and it is excluded from the table",
            file=sys.stderr,
        )
