"""The Fig. 2 analogue (Section 4.2; SPEC §5.1): two classes, the Fig. 2 LeNet with two outputs, ERM and SD
(CE + c·Σ_c ŷ_c², the registry's ``sd`` with λ = k·c) from the same initialisation and sample order as two
restarts of one ``supervised.make_task`` program; then the minimal L∞ perturbation that flips each test point."""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import attacks, evaluators, models, optim, supervised, trainer
from gs_jax.errors import check
from gs_jax.experiments.robustness_data import Raw, part_splits

METHODS = ("erm", "sd")
_MODEL = models.build("lenet", num_outputs=2)  # the Fig. 2 LeNet (SPEC §5.1), two outputs


class Fig2Run(NamedTuple):
    summary: dict[str, Any]  # JSON-able: the ``fig2`` block of summary.json
    margins: dict[str, np.ndarray]  # method → (n_points,) margins in the [-1, 1] input scale
    records: list[dict[str, Any]]  # metrics.jsonl lines


@functools.cache
def margin_fn(model: models.Model, eps_max: float, tol: float, steps: int, clip: tuple):
    """``f(variables_r, x, y) -> (R, n)`` minimal L∞ perturbations (``attacks.minimal_margin``: no random start,
    bisection on [0, eps_max] to ``tol``; inf where even eps_max does not flip; 0 if misclassified)."""

    def one(v, x, y):
        return attacks.minimal_margin(model.logits, v, x, y, eps_max=eps_max, tol=tol, norm="linf", steps=steps,
                                      random_start=False, clip=clip)  # fmt: skip

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


@functools.cache
def _evaluators() -> tuple[trainer.Evaluator, ...]:
    """Training and test accuracy after the last step (built once: their compiled programs are reused)."""
    return tuple(evaluators.accuracy(_MODEL, split, chunk=500) for split in ("train", "test"))


def margins_of(model, variables, x, y, f, pixel_range) -> np.ndarray:
    """Margins (R, n) in the [-1, 1] input scale (the authors' units) of ``x`` in ``pixel_range``."""
    lo, hi = (float(v) for v in pixel_range)
    span = hi - lo
    fn = margin_fn(model, float(f.eps_max) * span / 2, float(f.tol) * span / 2, int(f.steps), (lo, hi))
    return np.asarray(fn(variables, x, y)) * (2.0 / span)


def run_fig2(cfg, raw: Raw, *, saveat: trainer.SaveAt = trainer.SaveAt(), progress=None) -> Fig2Run:
    """ERM and SD as two restarts (same key: same initialisation and batches); margins of the first test points."""
    f = cfg.fig2
    train, _, test, k = part_splits(raw, tuple(f.classes), tuple(f.pixel_range), 0)
    check(k == 2, f"fig2.classes must name two classes, got {tuple(f.classes)}")
    n, bs = len(train.y), int(f.batch_size)
    check(n >= bs, f"fig2.batch_size {bs} is larger than the training set ({n} images)")
    spe = n // bs
    info = supervised.data_info(train.y, n_outputs=2, name=raw.name)
    hps = {"erm": {}, "sd": {"lam": float(f.sd_coef) * k}}  # Σ_c ŷ_c² = k · mean_c ŷ_c²
    opt = optim.spec(name="sgd", lr=float(f.lr), momentum=float(f.momentum))
    spec = supervised.Spec(_MODEL, supervised.branches_of(list(hps.items())), opt, info, sampler="epochs",
                           batch_size=bs, steps_per_epoch=spe)  # fmt: skip
    states = supervised.stack([supervised.restart_state(spec, m, hp) for m, hp in hps.items()])
    key = jax.random.PRNGKey(int(f.seed))
    x, y = jnp.asarray(train.x), jnp.asarray(train.y)
    data = {"x": x, "y": y, "train_x": x, "train_y": y, "test_x": test.x, "test_y": test.y}
    t0 = time.perf_counter()
    result = trainer.train(
        supervised.make_task(spec), data, jnp.stack([key] * len(hps)), steps=int(f.epochs) * spe,
        data_per_restart=False, evaluators=_evaluators(), init=trainer.Init(algo_state=states), saveat=saveat,
        progress=trainer.Progress(progress, "fig2 (ERM, SD)"), layout=trainer.Layout(max_chunk=spe),
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    n_pts = min(int(f.n_points), len(test.y))
    t1 = time.perf_counter()
    m = margins_of(
        _MODEL, evaluators.variables_of(result.state), test.x[:n_pts], test.y[:n_pts], f, f.pixel_range
    )
    train_acc, test_acc = np.asarray(result.final["train_acc"]), np.asarray(result.final["test_acc"])
    summary = {
        "classes": list(f.classes), "n_train": n, "n_test": len(test.y), "n_points": n_pts,
        "steps": int(f.epochs) * spe, "batch_size": bs, "sd_coef_sum": float(f.sd_coef),
        "train_acc": train_acc, "test_acc": test_acc, "train_s": round(train_s, 1),
        "margin_s": round(time.perf_counter() - t1, 1),
    }  # fmt: skip
    records = [{"part": "fig2", "method": name, "train_acc": float(train_acc[i]), "test_acc": float(test_acc[i])}
               for i, name in enumerate(hps)]  # fmt: skip
    return Fig2Run(summary, {name: m[i] for i, name in enumerate(hps)}, records)
