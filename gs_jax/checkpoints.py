"""Checkpoints of a training run: a plain, versioned format (one ``.npz`` of the state's leaves, the evaluation
history, the initial parameters and the recorded outputs, with a JSON header), written atomically; the newest two
are kept. Every training experiment resumes through these (``gs_jax.trainer.train(..., saveat=SaveAt(...))``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gs_jax.errors import GsJaxError

CHECKPOINT_VERSION = 2  # 2: the train state holds the sampler's state (epoch permutations)


def save_checkpoint(
    directory: str | Path, state: Any, extra: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
) -> Path:
    """Write ``ckpt_<step>.npz`` (all restarts) atomically and keep the newest two.

    The state's leaves are stored with their dtypes; ``extra`` (JSON-able bookkeeping, with ``"t"`` the step) and
    ``arrays`` (named numpy arrays, e.g. the evaluation history) go beside them.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    leaves, treedef = jax.tree_util.tree_flatten(jax.device_get(state))
    step = int(extra["t"])
    arrays = dict(arrays or {})
    meta = {"version": CHECKPOINT_VERSION, "step": step, "treedef": str(treedef), "n_leaves": len(leaves),
            "arrays": sorted(arrays), "extra": extra}  # fmt: skip
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


def load_checkpoint(path: str | Path, like: Any) -> tuple[Any, dict[str, Any], dict[str, np.ndarray]]:
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
            f"checkpoint {path} has format version {meta.get('version')}, expected {CHECKPOINT_VERSION}: "
            "delete it to start over"
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


def save_run(directory, state, *, t: int, history: list[dict[str, Any]], params0, records=None) -> Path:
    """A training run's checkpoint: the state at step ``t``, the evaluation history so far, the initial
    parameters and the recorded outputs (a pytree with a leading restart axis, or None)."""
    arrays = {f"p0_{i:05d}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(params0))}
    for i, h in enumerate(history):
        arrays.update({f"h{i:06d}_{k}": v for k, v in h.items() if k != "step"})
    extra: dict[str, Any] = {
        "t": int(t),
        "history_keys": [[h["step"], [k for k in h if k != "step"]] for h in history],
    }
    if records is not None:
        leaves = jax.tree_util.tree_leaves(records)
        arrays.update({f"records_{i}": np.asarray(a) for i, a in enumerate(leaves)})
        extra["n_record_leaves"] = len(leaves)
    return save_checkpoint(directory, state, extra, arrays)


def restore_run(path, like_state, params0_like, records_structure=None):
    """The inverse of :func:`save_run`: ``(state, t, history, params0, records or None)``."""
    state, extra, arrays = load_checkpoint(path, like_state)
    history = [
        {"step": int(step), **{k: arrays[f"h{i:06d}_{k}"] for k in keys}}
        for i, (step, keys) in enumerate(extra["history_keys"])
    ]
    p0_def = jax.tree_util.tree_structure(params0_like)
    params0 = jax.tree_util.tree_unflatten(p0_def, [arrays[f"p0_{i:05d}"] for i in range(p0_def.num_leaves)])
    records = None
    n_rec = int(extra.get("n_record_leaves", 0))
    if n_rec and records_structure is not None:
        records = jax.tree_util.tree_unflatten(
            records_structure, [arrays[f"records_{i}"] for i in range(n_rec)]
        )
    return state, int(extra["t"]), history, params0, records
