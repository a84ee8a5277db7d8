"""Model selection for group benchmarks, with and without group labels, as the suites do it (SubpopBench, Yang et
al. 2023; DomainBed, Gulrajani & Lopez-Paz 2021): a rule names the validation metric that picks, per seed, the
epoch (early stopping) and, per method, the hyper-parameters (the best mean over seeds).

- ``val_worst``: validation worst-group accuracy — needs group labels on validation (the authors' CelebA
  ``analysis_utils``, Group DRO's and JTT's protocols);
- ``val_worst_class``: validation worst-class accuracy — no group labels;
- ``val_avg``: validation average accuracy — no group labels (the authors' ``save_best``).

Curves are ``{metric: (E, S) array}`` of the ``gs_jax.evaluators.group_accuracy`` keys (``val_avg``, ``val_worst``,
``val_worst_class``, ``test_avg``, ``test_worst``, ``test_g0…``) after epochs 1..E for S seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gs_jax.errors import check

RULES: dict[str, str] = {
    "val_worst": "validation worst-group accuracy (uses validation group labels)",
    "val_worst_class": "validation worst-class accuracy (no group labels)",
    "val_avg": "validation average accuracy (no group labels)",
}


def check_rule(rule: str) -> str:
    check(rule in RULES, f"unknown selection rule {rule!r}; choose from {', '.join(RULES)}")
    return rule


def select_epochs(curves: dict[str, np.ndarray], rule: str) -> np.ndarray:
    """Per seed, the epoch index (0-based into the curves) maximising the rule's validation metric (the first on
    ties; NaN counts as −1)."""
    return np.argmax(np.nan_to_num(curves[check_rule(rule)], nan=-1.0), axis=0)


def at_selected(curves: dict[str, np.ndarray], rule: str, n_groups: int) -> dict[str, Any]:
    """Per-seed test metrics at the selected epochs and the validation score that ranks candidates (its mean over
    seeds): ``{"epochs" (1-based), "val_score", "test_avg", "test_worst", "test_groups" (S, G)}``."""
    ep = select_epochs(curves, rule)
    s = np.arange(ep.size)
    pick = {k: np.asarray(v)[ep, s] for k, v in curves.items()}
    return {"epochs": (ep + 1).tolist(), "val_score": float(np.mean(pick[rule])), "test_avg": pick["test_avg"],
            "test_worst": pick["test_worst"],
            "test_groups": np.stack([pick[f"test_g{k}"] for k in range(n_groups)], 1)}  # fmt: skip


def best(scores) -> int:
    """The index of the best validation score (the first on ties: the config's order decides)."""
    return int(np.argmax(np.asarray(scores, np.float64)))


def scores(logits, y, group, n_groups: int) -> dict[str, Any]:
    """Every rule's metric of one set of binary logits (prediction ŷ > 0), plus the per-group accuracies (NaN for
    an empty group): ``{"avg", "worst", "worst_class", "groups"}``. In numpy, with the float32 arithmetic of the
    trainer's group evaluator (``gs_jax.metrics``: exact integer counts; a group's accuracy one float32 division,
    the average the count times the float32 reciprocal of n, as XLA computes ``jnp.mean``), so the two agree bit for
    bit (tested)."""
    z, y, g = np.asarray(logits), np.asarray(y).astype(np.int64), np.asarray(group).astype(np.int64)
    hit = ((z > 0).astype(np.int64) == y).astype(np.int64)

    def within(ids, k):
        counts = np.bincount(ids, minlength=k)
        hits = np.bincount(ids, weights=hit, minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, np.float32(hits) / np.float32(counts), np.float32(np.nan)).astype(
                np.float32
            )

    acc_g = within(g, n_groups)
    avg = np.float32(hit.sum()) * (np.float32(1.0) / np.float32(hit.size))  # jnp.mean: × the reciprocal of n
    return {"avg": float(avg), "worst": float(np.nanmin(acc_g)),
            "worst_class": float(np.nanmin(within(y, 2))), "groups": acc_g}  # fmt: skip


def score_of(s: dict[str, Any], rule: str) -> float:
    """The value of ``rule`` in a :func:`scores` dict."""
    return {"val_worst": s["worst"], "val_worst_class": s["worst_class"], "val_avg": s["avg"]}[
        check_rule(rule)
    ]
