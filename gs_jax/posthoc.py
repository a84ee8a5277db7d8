"""The stages of the group-robustness methods that are not one training loss, as small drivers usable by any
benchmark whose data have groups (``gs_jax.data.groups``):

- :func:`jtt_identify`: JTT's first stage (Liu et al., ICML 2021, Algorithm 1): ERM for T epochs through the
  trainer (checkpointed, resumable), then the training examples it misclassifies — the error set its second stage
  up-samples (``algorithms.jtt``);
- :func:`dfr`: Deep Feature Reweighting (Kirichenko et al., ICLR 2023, ``DFR^Val_Tr``): a trained network's
  penultimate features, its last layer refit on group-balanced validation data;
- :func:`threshold_shift`: a shift of a trained binary logit's decision threshold tuned on validation — the control
  that isolates "a class shift" from "a change in features".

Each post-hoc fit is tuned per selection rule (``gs_jax.selection``): the rule's metric on held-out validation
data picks the hyper-parameter (the penalty, the threshold).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import evaluators, group_methods, metrics, models, selection, supervised, trainer
from gs_jax.errors import check

# ---------------------------------------------------------------------------------------------------------------
# Network outputs of several restarts
# ---------------------------------------------------------------------------------------------------------------


@functools.cache
def _restart_logits(model: models.Model, chunk: int, per_restart: bool = False):
    fn = lambda v, x: evaluators.logits(model, v, x, chunk)  # noqa: E731
    return jax.jit(jax.vmap(fn, in_axes=(0, 0 if per_restart else None)))


@functools.cache
def _features(model: models.Model, chunk: int):
    return jax.jit(lambda v, x: evaluators.features(model, v, x, chunk))


def restart_logits(
    model: models.Model, variables, x, chunk: int = 256, per_restart: bool = False
) -> np.ndarray:
    """Eval-mode logits ``(R, n[, k])`` of R restarts' variables (a leading restart axis) on ``x`` (shared, or one
    set per restart with ``per_restart``)."""
    return np.asarray(_restart_logits(model, int(chunk), bool(per_restart))(variables, x))


def features(model: models.Model, variables, x, chunk: int = 256) -> np.ndarray:
    """Penultimate features ``(n, d)`` of ONE restart's variables on ``x`` (eval mode)."""
    return np.asarray(_features(model, int(chunk))(variables, x))


def restart(tree, r: int):
    """Restart ``r`` of a pytree with a leading restart axis."""
    return jax.tree_util.tree_map(lambda a: a[r], tree)


# ---------------------------------------------------------------------------------------------------------------
# JTT, first stage
# ---------------------------------------------------------------------------------------------------------------


def jtt_identify(spec: supervised.Spec, data: dict[str, Any], keys, *, epochs: int, chunk: int = 256,
                 data_per_restart: bool = False, saveat: trainer.SaveAt = trainer.SaveAt(),
                 progress: trainer.Progress = trainer.Progress()) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """JTT's identification model (Liu et al. 2021, Algorithm 1, stage 1) for ANY supervised benchmark: ERM with the
    benchmark's own network, optimiser and sampler (``spec`` with its branches replaced by ``erm``) for ``epochs``
    epochs of ``spec.steps_per_epoch`` steps per key, then its error set on the training data ``data["x"],
    data["y"]`` (``group_methods.jtt_error_set`` of the eval-mode predictions, ``metrics.predictions``: ŷ > 0 for
    one logit, argmax for k). ``data_per_restart``: every array has a leading restart axis (Colored MNIST).

    Returns the error sets ``(R, n)`` (bool) and ``{"error_set_size", ["error_set_per_group"]}`` (per restart; the
    groups from ``data["group"]`` when the data have them)."""
    check(epochs >= 1, f"jtt identify_epochs must be ≥ 1, got {epochs}")
    erm = dataclasses.replace(spec, branches=(("erm", ()),))
    keys = jnp.asarray(keys)
    y = np.asarray(data["y"])
    n = int(y.shape[-1])
    algo = supervised.stack([supervised.restart_state(erm, "erm", {}, {"n": n})] * int(keys.shape[0]))
    res = trainer.train(supervised.make_task(erm), data, keys, steps=epochs * spec.steps_per_epoch,
                        data_per_restart=data_per_restart, init=trainer.Init(algo_state=algo), saveat=saveat,
                        progress=progress, layout=trainer.Layout(max_chunk=spec.steps_per_epoch))  # fmt: skip
    logits = restart_logits(
        spec.model, evaluators.variables_of(res.state), data["x"], chunk, data_per_restart
    )
    ys = y if data_per_restart else np.broadcast_to(y, (len(logits), n))
    errors = np.stack([group_methods.jtt_error_set(np.asarray(metrics.predictions(lg)), yy)
                       for lg, yy in zip(logits, ys, strict=True)])  # fmt: skip
    info: dict[str, Any] = {"error_set_size": errors.sum(axis=1).tolist()}
    if "group" in data:
        g = np.asarray(data["group"])
        gs = g if data_per_restart else np.broadcast_to(g, errors.shape)
        info["error_set_per_group"] = [np.bincount(gg[e], minlength=spec.info.n_groups).tolist()
                                       for gg, e in zip(gs, errors, strict=True)]  # fmt: skip
    return errors, info


# ---------------------------------------------------------------------------------------------------------------
# DFR
# ---------------------------------------------------------------------------------------------------------------


def _fit_l1(x, y, c: float, seed: int) -> tuple[np.ndarray, float]:
    """scikit-learn's L1 logistic regression with the liblinear solver, the DFR reference's fit
    (``penalty="l1"``, spelled ``l1_ratio=1`` since scikit-learn 1.8); ``random_state`` fixed (liblinear shuffles its
    coordinates)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=float(c), l1_ratio=1.0, solver="liblinear", random_state=int(seed))
    lr.fit(np.asarray(x, np.float64), np.asarray(y))
    return lr.coef_[0], float(lr.intercept_[0])


def _balanced(groups, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's balancing: each group's indices shuffled, the first ``min_g`` kept, concatenated by group."""
    idx = [np.flatnonzero(groups == g) for g in range(n_groups)]
    idx = [rng.permutation(i) for i in idx if len(i)]
    m = min(len(i) for i in idx)
    return np.concatenate([i[:m] for i in idx])


class Head(NamedTuple):
    """A refit last layer: ``logits = ((features − mean) / scale) @ w + b``."""

    w: np.ndarray
    b: float
    mean: np.ndarray
    scale: np.ndarray

    def __call__(self, features_nd) -> np.ndarray:
        return (((np.asarray(features_nd, np.float64) - self.mean) / self.scale) @ self.w + self.b).astype(
            np.float32
        )


def dfr_heads(feats: dict[str, np.ndarray], splits: dict[str, Any], hp: dict[str, Any], *, n_groups: int, key,
              rules=tuple(selection.RULES)) -> dict[str, dict[str, Any]]:  # fmt: skip
    """DFR's last layer on one network's features, tuned per selection rule: ``{rule: {"head" (:class:`Head`),
    "hyper", "tuning"}}``.

    ``feats``: ``{"train", "val"}`` penultimate features; ``splits["val"]``: an object with ``y`` and ``group`` of
    the refit set (DFR^Val_Tr refits on validation; a benchmark without a held-out split passes its training set
    there, DFR^Tr_Tr); ``hp``: the registry's ``dfr`` hyper-parameters; ``key``: a PRNG key (its bits seed the
    reference protocol's numpy generator).

    ``penalty = "l1"`` — the reference (``dfr_evaluate_spurious.py``): tune C ∈ ``hp["c"]`` by fitting on a
    group-balanced subsample of one random half of the refit set (scaler fit on that subsample) and scoring the
    other half; then ``n_refits`` fits on group-balanced subsamples of the whole refit set, scaler fit on the
    **training** features, coefficients averaged; scikit-learn's liblinear, the reference's own solver.
    ``penalty = "l2"`` — this project's first form: L2 logistic regression (``group_methods.fit_last_layer``,
    l2 ∈ ``hp["l2"]``), features standardised on the refit set, the same half-split tuning and averaged balanced
    refits with jax keys.
    """
    check(hp["penalty"] in ("l1", "l2"), f"dfr.penalty must be 'l1' or 'l2', got {hp['penalty']!r}")
    check(int(hp["n_refits"]) >= 1, f"dfr.n_refits must be ≥ 1, got {hp['n_refits']}")
    v = splits["val"]
    fv = np.asarray(feats["val"], np.float64)
    if hp["penalty"] == "l2":
        return _dfr_l2(fv, v, hp, n_groups, key, rules)
    seed = int(np.asarray(jax.random.randint(key, (), 0, 2**31 - 1)))
    rng = np.random.default_rng(seed)
    ftr = np.asarray(feats["train"], np.float64)
    idx = rng.permutation(len(v.y))
    half = len(idx) // 2
    held, fit = idx[:half], idx[half:]
    fit = fit[_balanced(v.group[fit], n_groups, rng)]
    mu, sd = fv[fit].mean(0), fv[fit].std(0)
    sd = np.where(sd > 0, sd, 1.0)  # StandardScaler leaves a constant feature unscaled
    tuning = {rule: [] for rule in rules}
    for c in hp["c"]:
        w, b = _fit_l1((fv[fit] - mu) / sd, v.y[fit], c, seed)
        s = selection.scores(((fv[held] - mu) / sd) @ w + b, v.y[held], v.group[held], n_groups)
        for rule in rules:
            tuning[rule].append(selection.score_of(s, rule))
    mu, sd = ftr.mean(0), ftr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    out, refit = {}, {}
    for rule in rules:
        c = float(hp["c"][selection.best(tuning[rule])])
        if c not in refit:
            ws, bs = [], []
            for _ in range(int(hp["n_refits"])):
                sub = _balanced(v.group, n_groups, rng)
                w, b = _fit_l1((fv[sub] - mu) / sd, v.y[sub], c, seed)
                ws.append(w)
                bs.append(b)
            refit[c] = Head(np.mean(ws, 0), float(np.mean(bs)), mu, sd)
        out[rule] = {"head": refit[c], "hyper": {"c": c}, "tuning": [round(x, 4) for x in tuning[rule]]}
    return out


def dfr(feats: dict[str, np.ndarray], splits: dict[str, Any], hp: dict[str, Any], *, n_groups: int, key,
        rules=tuple(selection.RULES)) -> dict[str, dict[str, Any]]:  # fmt: skip
    """DFR (:func:`dfr_heads`) scored on ``feats["test"]`` / ``splits["test"]``: ``{rule: {"scores" (test,
    ``selection.scores``), "hyper", "tuning"}}``."""
    te = splits["test"]
    out = {}
    for rule, h in dfr_heads(feats, splits, hp, n_groups=n_groups, key=key, rules=rules).items():
        out[rule] = {"scores": selection.scores(h["head"](feats["test"]), te.y, te.group, n_groups),
                     "hyper": h["hyper"], "tuning": h["tuning"]}  # fmt: skip
    return out


def _dfr_l2(fv, v, hp, n_groups, key, rules):
    mu, sd = fv.mean(0), fv.std(0) + 1e-6
    z = (fv - mu) / sd
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), len(v.y)))
    a, b = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    tuning = {rule: [] for rule in rules}
    for j, l2 in enumerate(hp["l2"]):
        sub = group_methods.group_balanced_indices(v.group[a], n_groups, jax.random.fold_in(key, 1 + j))
        w, c = group_methods.fit_last_layer(z[a[sub]], v.y[a[sub]], l2=float(l2))
        s = selection.scores(jnp.asarray(z[b]) @ w + c, v.y[b], v.group[b], n_groups)
        for rule in rules:
            tuning[rule].append(selection.score_of(s, rule))
    out, refit = {}, {}
    for rule in rules:
        l2 = float(hp["l2"][selection.best(tuning[rule])])
        if l2 not in refit:
            ws, cs = [], []
            for r in range(int(hp["n_refits"])):
                idx = group_methods.group_balanced_indices(
                    v.group, n_groups, jax.random.fold_in(key, 1000 + r)
                )
                w, c = group_methods.fit_last_layer(z[idx], v.y[idx], l2=l2)
                ws.append(np.asarray(w, np.float64))
                cs.append(float(c))
            refit[l2] = Head(np.mean(ws, 0), float(np.mean(cs)), mu, sd)
        out[rule] = {"head": refit[l2], "hyper": {"l2": l2}, "tuning": [round(x, 4) for x in tuning[rule]]}
    return out


# ---------------------------------------------------------------------------------------------------------------
# Threshold shift
# ---------------------------------------------------------------------------------------------------------------


def threshold_shift(val_logits, val_y, val_group, test_logits, test_y, test_group, *, n_groups: int,
                    rules=tuple(selection.RULES)) -> dict[str, dict[str, Any]]:  # fmt: skip
    """A trained binary logit with its decision threshold moved: predict 1 where ŷ > b, b tuned per rule on
    validation over every distinct cut (0 and the midpoints between consecutive sorted validation logits; among
    equally good cuts the one nearest 0, i.e. the smallest shift). ``{rule: {"scores" (test), "hyper": {"b"}}}``.

    b < 0 moves the boundary toward class 0 (more examples called 1): a pure class shift of the logit, no change in
    the features — what a method's gain must exceed to be more than a shift."""
    lv, yv, gv = np.asarray(val_logits, np.float64), np.asarray(val_y), np.asarray(val_group)
    z = np.unique(lv)
    cuts = np.concatenate([[0.0], (z[1:] + z[:-1]) / 2, [z[0] - 1.0, z[-1] + 1.0]])
    hit = ((lv[None, :] > cuts[:, None]) == (yv[None, :] == 1)).astype(np.float64)  # (cuts, n)

    def worst(ids, k):
        accs = [hit[:, ids == j].mean(1) for j in range(k) if np.any(ids == j)]
        return np.min(accs, axis=0)

    table = {"val_avg": hit.mean(1), "val_worst": worst(gv, n_groups), "val_worst_class": worst(yv, 2)}
    out = {}
    for rule in rules:
        vals = table[selection.check_rule(rule)]
        ok = np.flatnonzero(vals >= vals.max())
        b = float(cuts[ok[np.argmin(np.abs(cuts[ok]))]])
        s = selection.scores(np.asarray(test_logits, np.float64) - b, test_y, test_group, n_groups)
        out[rule] = {"scores": s, "hyper": {"b": round(b, 6)}, "val_score": float(vals.max())}
    return out
