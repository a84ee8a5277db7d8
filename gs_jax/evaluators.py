"""Evaluators built from config, each written once and usable by any benchmark (big_vision's evaluators are the
model): accuracy, per-group / worst-group accuracy, PGD accuracy, the starvation monitor's responses.

An evaluator is a :class:`gs_jax.trainer.Evaluator`: a pure function of one restart's train state and the data,
on its own schedule. They read the evaluation splits from the trainer's data by name — ``<split>_x``,
``<split>_y`` and, for group metrics, ``<split>_group`` — and evaluate the network in eval mode, in chunks of
``chunk`` examples (memory). A config block names them::

    cfg.evals.val = dict(type="group_accuracy", split="val", every_epochs=1)
    cfg.evals.pgd = dict(type="pgd_accuracy", split="val", eps=5/255, steps=10, step_frac=0.1, clip=(0.0, 1.0))
    evaluators.build(cfg.evals, model, steps_per_epoch=spe, n_groups=4, key=key)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gs_jax import attacks, metrics, models, monitor, trainer
from gs_jax.errors import check

TYPES = ("accuracy", "group_accuracy", "pgd_accuracy")


def variables_of(state) -> dict[str, Any]:
    """The network's variables in a train state: ``{"params", **model_state}``."""
    return {"params": state.params, **state.model_state}


def _chunked(x, chunk: int, *rest):
    """``x`` (and arrays ``rest``) reshaped to (m, chunk, ...), padded with copies of the first example, and the
    (m, chunk) weights that are 0 on the padding."""
    n = x.shape[0]
    c = max(1, min(chunk, n))
    pad = (-n) % c
    w = jnp.concatenate([jnp.ones(n, jnp.float32), jnp.zeros(pad, jnp.float32)]).reshape(-1, c)
    out = [jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad, *a.shape[1:]))]).reshape(-1, c, *a.shape[1:])
           for a in (x, *rest)]  # fmt: skip
    return (*out, w)


chunked = _chunked  # public: benchmarks that evaluate their own functions in the same chunks


def logits(model: models.Model, variables, x, chunk: int):
    """Eval-mode logits of ``x`` in chunks of ``chunk`` examples: (n,) or (n, k)."""
    xs, _ = _chunked(x, chunk)
    out = jax.lax.map(lambda a: model.logits(variables, a), xs)
    return out.reshape(-1, *out.shape[2:])[: x.shape[0]]


def features(model: models.Model, variables, x, chunk: int):
    """Penultimate features (n, d) in chunks (``models.Model.features``)."""
    xs, _ = _chunked(x, chunk)
    out = jax.lax.map(lambda a: model.features(variables, a), xs)
    return out.reshape(-1, out.shape[-1])[: x.shape[0]]


def correct(model: models.Model, variables, x, y, chunk: int):
    """Per-example correctness (n,) of the eval-mode network."""
    return metrics.correct(logits(model, variables, x, chunk), y)


def accuracy(
    model: models.Model, split: str, *, chunk: int = 256, every: int = 0, name: str = ""
) -> trainer.Evaluator:
    """``<split>_acc``: accuracy on the split."""

    def fn(state, data):
        return {f"{split}_acc": jnp.mean(correct(model, variables_of(state), data[f"{split}_x"], data[f"{split}_y"],
                                                  chunk))}  # fmt: skip

    return trainer.Evaluator(name or f"{split}_accuracy", fn, every)


def group_accuracy(model: models.Model, split: str, n_groups: int, *, chunk: int = 256, every: int = 0,
                   name: str = "") -> trainer.Evaluator:  # fmt: skip
    """``<split>_avg``, ``<split>_worst`` (over the non-empty groups), ``<split>_worst_class`` (the worst class
    accuracy, a selection rule that needs no group labels) and ``<split>_g0..`` (NaN for an empty group)."""

    def fn(state, data):
        y = data[f"{split}_y"]
        out = logits(model, variables_of(state), data[f"{split}_x"], chunk)
        acc_g = metrics.group_accuracies(out, y, data[f"{split}_group"], n_groups)
        k = model.num_outputs if model.num_outputs > 1 else 2
        acc_c = metrics.group_accuracies(out, y, y, k)
        return {f"{split}_avg": metrics.accuracy(out, y), f"{split}_worst": jnp.nanmin(acc_g),
                f"{split}_worst_class": jnp.nanmin(acc_c), **{f"{split}_g{g}": acc_g[g] for g in range(n_groups)}}  # fmt: skip

    return trainer.Evaluator(name or f"{split}_groups", fn, every)


def pgd_accuracy(
    model: models.Model, split: str, *, eps: float, steps: int, step_frac: float, clip, key, chunk: int = 256,
    every: int = 0, name: str = "",
) -> trainer.Evaluator:  # fmt: skip
    """``<split>_pgd``: accuracy on L∞ PGD examples (``attacks.pgd``: random start, α = step_frac·ε, ``steps``
    steps; ε in the network's input units), each chunk with its own start key ``fold_in(key, chunk index)``."""

    def fn(state, data):
        return {f"{split}_pgd": pgd_accuracy_of(model, variables_of(state), data[f"{split}_x"], data[f"{split}_y"],
                                                eps, key, steps=steps, step_frac=step_frac, clip=clip, chunk=chunk)}  # fmt: skip

    return trainer.Evaluator(name or f"{split}_pgd", fn, every)


def pgd_accuracy_of(model: models.Model, variables, x, y, eps, key, *, steps: int, step_frac: float, clip,
                    chunk: int):  # fmt: skip
    """Accuracy on L∞ PGD examples of ``x`` at ``eps`` (traced: every ε shares one program), in chunks."""
    xs, ys, ws = _chunked(x, chunk, y)
    clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def one(a):
        xc, yc, wc, i = a
        x_adv = attacks.pgd(model.logits, variables, xc, yc, eps=eps, step_size=step_frac * eps, steps=steps,
                            norm="linf", random_start=True, key=jax.random.fold_in(key, i), clip=clip)  # fmt: skip
        return jnp.sum(attacks.correct(model.logits(variables, x_adv), yc) * wc)

    return jnp.sum(jax.lax.map(one, (xs, ys, ws, jnp.arange(xs.shape[0])))) / x.shape[0]


def responses(probe_logits, mon: monitor.Monitor | None = None, *, every: int, name: str = "starvation",
              data_key: str = "monitor") -> trainer.Evaluator:  # fmt: skip
    """The starvation monitor's responses ``z0 … z{k−1}`` (``gs_jax.monitor.evaluator``);
    ``probe_logits(state, data)`` gives the probe set's logits of one restart."""
    return monitor.evaluator(probe_logits, mon, every=every, name=name, data_key=data_key)


def build(block: Mapping[str, Any], model: models.Model, *, steps_per_epoch: int = 1, n_groups: int = 0,
          key=None, chunk: int = 256) -> list[trainer.Evaluator]:  # fmt: skip
    """Evaluators from a config block ``{name: {type, split, every_epochs (0: after the last step), ...}}``."""
    out = []
    for name, c in dict(block).items():
        c = dict(c)
        kind = c.pop("type", None)
        check(kind in TYPES, f"evals.{name}.type must be one of {', '.join(TYPES)}, got {kind!r}")
        split = c.pop("split", "val")
        every_epochs = int(c.pop("every_epochs", 0))
        check(every_epochs >= 0, f"evals.{name}.every_epochs must be ≥ 0, got {every_epochs}")
        kw = dict(chunk=int(c.pop("chunk", chunk)), every=every_epochs * steps_per_epoch, name=name)
        if kind == "accuracy":
            ev = accuracy(model, split, **kw)
        elif kind == "group_accuracy":
            check(n_groups > 0, f"evals.{name}: group_accuracy needs a data set with group labels")
            ev = group_accuracy(model, split, n_groups, **kw)
        else:
            check(key is not None, f"evals.{name}: pgd_accuracy needs a PRNG key")
            ev = pgd_accuracy(model, split, eps=float(c.pop("eps")), steps=int(c.pop("steps", 10)),
                              step_frac=float(c.pop("step_frac", 0.1)), clip=tuple(c.pop("clip", (0.0, 1.0))),
                              key=key, **kw)  # fmt: skip
        check(not c, f"evals.{name}: unknown keys {sorted(c)}")
        out.append(ev)
    return out
