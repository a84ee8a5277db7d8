"""The Fig. 2 analogue with the authors' protocol (Section 4.2; SPEC §5.1, §5c; ``Figure_2/main.py``).

Two classes (Fashion-MNIST pullover vs coat, or CIFAR-2 airplane vs horse where the files exist), inputs
(x/255 − 0.5)/0.5, the Fig. 2 LeNet with 2 outputs, SGD (lr 1e-3, momentum 0.9, no weight decay) at batch 1 for 40
epochs reshuffled every epoch, loss CE + c·Σ_c ŷ_c² with c ∈ {0 (ERM), 0.1 (SD)} — the registry's ``sd`` (CE +
λ·mean_c ŷ_c², λ = k·c; λ = 0 is the registry's ``erm`` at l2 = 0, the same gradient, tested) as the authors' one
loss with ``sd_coef`` ∈ {0, 0.1}. Every (seed, c) is one restart of ONE ``supervised.make_task`` program; ERM and
SD of a seed share the initialisation and the sample order (the same key). Then the margin of every test point
(and of ``n_train_points`` training points) by foolbox 2's PGD search (``reference_attacks.foolbox_margin``):
misclassified points count 0, failed searches +inf (counted, not dropped). Training points are searched for the
first seed's ERM and SD (the authors' single run, seed 1), the first ``n_train_points`` of them.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import evaluators, models, optim, reference_attacks, supervised, trainer
from gs_jax.errors import check
from gs_jax.experiments.robustness_data import Raw, part_splits

METHODS = ("erm", "sd")
_MODEL = models.build("lenet", num_outputs=2)  # the Fig. 2 LeNet (SPEC §5.1), two outputs


class Fig2Run(NamedTuple):
    summary: dict[str, Any]  # JSON-able: the ``fig2`` block of summary.json
    margins: dict[
        str, dict[str, np.ndarray]
    ]  # split ("test", "train") → "erm_seed1", … → margins ([-1, 1] units)
    records: list[dict[str, Any]]  # metrics.jsonl lines


@functools.cache
def _evaluators(every: int) -> tuple[trainer.Evaluator, ...]:
    """Training and test accuracy (built once: their compiled programs are reused)."""
    out = tuple(evaluators.accuracy(_MODEL, split, chunk=500) for split in ("train", "test"))
    if every:
        out += tuple(evaluators.accuracy(_MODEL, split, chunk=500, every=every, name=f"{split}_curve")
                     for split in ("train", "test"))  # fmt: skip
    return out


def search_of(f) -> dict[str, Any]:
    """The foolbox 2 search settings of a ``fig2.search`` block (SPEC §5c)."""
    s = f.search
    return dict(eps0=float(s.eps0), growth=float(s.growth), grow_trials=int(s.grow_trials),
                halvings=int(s.halvings), stepsize=float(s.stepsize), steps=int(s.steps))  # fmt: skip


@functools.cache
def _margin_fn(model: models.Model, bounds: tuple, search: tuple):
    return jax.jit(
        functools.partial(reference_attacks.foolbox_margin, model.logits, bounds=bounds, **dict(search))
    )


def margins_of(model, variables, x, y, pixel_range, search: dict[str, Any], chunk: int = 1000,
               cache: Path | None = None, tag: str = "") -> np.ndarray:  # fmt: skip
    """Margins (R, n) of R networks (leading axis of ``variables``) in the [-1, 1] input scale (the authors'
    units), by ``reference_attacks.foolbox_margin`` on chunks of ``chunk`` points. With ``cache``, each network's
    result is kept in ``cache/<tag>_<r>.npy`` and read back by a resumed run (the search is deterministic)."""
    lo, hi = (float(v) for v in pixel_range)
    fn = _margin_fn(model, (lo, hi), tuple(sorted(search.items())))
    out = []
    for r in range(jax.tree_util.tree_leaves(variables)[0].shape[0]):
        path = None if cache is None else Path(cache) / f"{tag}_{r}.npy"
        if path is not None and path.is_file():
            out.append(np.load(path))
            continue
        v = jax.tree_util.tree_map(lambda a, r=r: jnp.asarray(a[r]), variables)
        m = np.concatenate([np.asarray(fn(v, jnp.asarray(x[i : i + chunk]), jnp.asarray(y[i : i + chunk])))
                            for i in range(0, len(y), chunk)]) * (2.0 / (hi - lo))  # fmt: skip
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, m)
        out.append(m)
    return np.stack(out)


def margin_stats(m: np.ndarray) -> dict[str, Any]:
    """Median and quartiles (inf where a quarter or half of the searches failed), zeros and failures."""
    m = np.asarray(m, np.float64).ravel()
    q = np.quantile(m, [0.25, 0.5, 0.75], method="lower") if m.size else [np.nan] * 3
    return {"margin_median": float(q[1]), "margin_quartiles": [float(v) for v in q],
            "misclassified": int(np.sum(m == 0)), "failed_attacks": int(np.sum(~np.isfinite(m))),
            "n_points": int(m.size)}  # fmt: skip


class Program(NamedTuple):
    """The Fig. 2 training program: every (seed, c) a restart of one task."""

    task: trainer.Task
    keys: jax.Array  # (R, 2): PRNGKey(seed), the same for ERM and SD of a seed
    algo_state: dict[str, Any]  # stacked restart states (the sd branch with λ = k·c)
    runs: list[tuple[int, str]]  # (seed, method) of each restart
    steps_per_epoch: int
    layout: trainer.Layout  # one chunk per epoch; restarts in blocks of ``fig2.restart_block``


def program(f, train_y, name: str = "") -> Program:
    """The program of a ``fig2`` config block on a training set with labels ``train_y`` (two classes)."""
    n, bs = len(train_y), int(f.batch_size)
    check(n >= bs, f"fig2.batch_size {bs} is larger than the training set ({n} images)")
    spe = n // bs
    seeds = tuple(int(s) for s in f.seeds)
    check(len(set(seeds)) == len(seeds) and seeds, f"fig2.seeds must be distinct, got {seeds}")
    info = supervised.data_info(train_y, n_outputs=2, name=name)
    spec = supervised.Spec(_MODEL, (("sd", ()),), optim.spec(name="sgd", lr=float(f.lr), momentum=float(f.momentum)),
                           info, sampler="epochs", batch_size=bs, steps_per_epoch=spe)  # fmt: skip
    coefs = {"erm": 0.0, "sd": float(f.sd_coef)}
    runs = [(s, m) for s in seeds for m in METHODS]
    states = supervised.stack([supervised.restart_state(spec, "sd", {"lam": coefs[m] * 2}) for _, m in runs])
    keys = jnp.stack(
        [jax.random.PRNGKey(s) for s, _ in runs]
    )  # ERM and SD of a seed: same init, same samples
    block = int(f.restart_block) if 0 < int(f.restart_block) < len(runs) else 0
    return Program(
        supervised.make_task(spec),
        keys,
        states,
        runs,
        spe,
        trainer.Layout(max_chunk=spe, restart_block=block),
    )


def run_fig2(
    cfg, raw: Raw, *, saveat: trainer.SaveAt = trainer.SaveAt(), progress=None, cache=None
) -> Fig2Run:
    """Every (seed, c) as one restart; training and test accuracy; margins of the test and training points."""
    f = cfg.fig2
    train, _, test, k = part_splits(raw, tuple(f.classes), tuple(f.pixel_range), 0)
    check(k == 2, f"fig2.classes must name two classes, got {tuple(f.classes)}")
    prog = program(f, train.y, raw.name)
    n, bs, spe, runs, seeds = len(train.y), int(f.batch_size), prog.steps_per_epoch, prog.runs, tuple(f.seeds)
    coefs = {"erm": 0.0, "sd": float(f.sd_coef)}
    x, y = jnp.asarray(train.x), jnp.asarray(train.y)
    data = {"x": x, "y": y, "train_x": x, "train_y": y, "test_x": test.x, "test_y": test.y}
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.train(
        prog.task, data, prog.keys, steps=int(f.epochs) * spe, data_per_restart=False,
        evaluators=_evaluators(int(f.eval_every_epochs) * spe), init=trainer.Init(algo_state=prog.algo_state), saveat=saveat,
        progress=trainer.Progress(progress, f"fig2 ({len(seeds)} seeds × ERM, SD; batch {bs})"), layout=prog.layout,
    )  # fmt: skip
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    trainer.report_failures("fig2", result.failed_at, [f"{m} seed {s}" for s, m in runs])
    variables = evaluators.variables_of(result.state)
    search = search_of(f)
    t1, c1 = time.perf_counter(), time.process_time()
    n_test = len(test.y) if int(f.n_points) <= 0 else min(int(f.n_points), len(test.y))
    n_tr = min(int(f.n_train_points), n) if int(f.n_train_points) >= 0 else n
    margins = {"test": margins_of(_MODEL, variables, test.x[:n_test], test.y[:n_test], f.pixel_range, search,
                                  int(f.margin_chunk), cache, "test")}  # fmt: skip
    first = [
        i for i, (s, _) in enumerate(runs) if s == seeds[0]
    ]  # training points: the first seed's ERM and SD
    if n_tr:
        v0 = jax.tree_util.tree_map(lambda a: np.asarray(a)[first], variables)
        margins["train"] = margins_of(_MODEL, v0, train.x[:n_tr], train.y[:n_tr], f.pixel_range, search,
                                      int(f.margin_chunk), cache, "train")  # fmt: skip
    margin_s, margin_cpu = time.perf_counter() - t1, time.process_time() - c1
    train_acc, test_acc = np.asarray(result.final["train_acc"]), np.asarray(result.final["test_acc"])
    methods = {}
    for name in METHODS:
        rows = [i for i, (_, m) in enumerate(runs) if m == name]
        block: dict[str, Any] = {
            "sd_coef": coefs[name], "train_acc": float(np.mean(train_acc[rows])), "train_acc_per_seed": train_acc[rows],
            "test_acc": float(np.mean(test_acc[rows])), "test_acc_per_seed": test_acc[rows],
            **margin_stats(margins["test"][rows]),
            "margin_median_per_seed": [float(np.median(margins["test"][i])) for i in rows],
            "failed_attacks_per_seed": [int(np.sum(~np.isfinite(margins["test"][i]))) for i in rows],
        }  # fmt: skip
        block["n_points"] = n_test  # per seed (the statistics pool all seeds' points)
        if "train" in margins:
            block["train_points"] = {"seed": seeds[0], **margin_stats(margins["train"][METHODS.index(name)])}
        methods[name] = block
    summary = {
        "protocol": {"batch_size": bs, "epochs": int(f.epochs), "lr": float(f.lr), "momentum": float(f.momentum),
                     "sd_coef": float(f.sd_coef), "classes": list(f.classes), "seeds": list(seeds), "n_train": n,
                     "n_test": len(test.y), "steps": int(f.epochs) * spe, "pixel_range": list(f.pixel_range),
                     "search": search},
        "methods": methods,
        "erm_fits_training_set": bool(np.all(train_acc[[i for i, (_, m) in enumerate(runs) if m == "erm"]] == 1.0)),
        "n_seeds": len(seeds), "train_s": round(train_s, 1), "margin_s": round(margin_s, 1),
        "train_cpu_s": round(train_cpu, 1), "margin_cpu_s": round(margin_cpu, 1),
    }  # fmt: skip
    records = [{"part": "fig2", "method": m, "seed": s, "train_acc": float(train_acc[i]), "test_acc": float(test_acc[i]),
                "test_margin_median": float(np.median(margins["test"][i]))} for i, (s, m) in enumerate(runs)]  # fmt: skip
    for h in result.history:
        if h["step"] > 0:
            records.append({"part": "fig2_curve", "step": int(h["step"]), "epoch": round(h["step"] / spe, 4),
                            **{f"{m}_seed{s}_{kk}": float(h[kk][i]) for kk in ("train_acc", "test_acc")
                               for i, (s, m) in enumerate(runs)}})  # fmt: skip
    split_margins = {"test": {f"{m}_seed{s}": margins["test"][i] for i, (s, m) in enumerate(runs)}}
    if "train" in margins:  # searched on the first seed's networks only
        split_margins["train"] = {
            f"{runs[i][1]}_seed{runs[i][0]}": margins["train"][j] for j, i in enumerate(first)
        }
    return Fig2Run(summary, split_margins, records)
