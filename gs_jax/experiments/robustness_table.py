"""The Table 1 analogue (Section 4.2; SPEC §5, §5.1): clean and PGD test accuracy of the methods of
``methods.enabled``, every (method, hyper-parameter, seed) one restart of ONE ``supervised.make_task`` program.

Per restart after training (trainer evaluators): training accuracy, validation clean and PGD accuracy. A method
with a grid (SD's λ) is reduced to one setting by ``table.select`` on the validation split; a setting that two rows
share (the paper's fixed λ and the same λ in the validated grid) is trained once. The chosen settings are attacked
on the test set twice: the correct attack (``gs_jax.attacks.pgd`` through the whole network, normalisation
included) and the authors' (``table_1/main.py``: torchattacks' PGD with its float32 cross-entropy gradient, run on
the de-normalised images through the network WITHOUT its input normalisation, then scored on the re-normalised
result; SPEC §5.1, §5c); ``attack.input_scale`` picks which one the PGD columns and the curve use. The networks are ``models.build``, the
optimiser ``optim`` (torch SGD, Nesterov, milestones), the sampler ``sampling.epochs`` (+ crop/flip), the methods
the registry's (``sd`` is the Table 1 code's CE + λ·mean ŷ², ``erm`` plain CE), evaluation ``gs_jax.evaluators``.
"""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import (
    algorithms,
    attacks,
    evaluators,
    models,
    optim,
    posthoc,
    reference_attacks,
    supervised,
    trainer,
)
from gs_jax.errors import check
from gs_jax.experiments.robustness_data import Raw, Split, part_splits
from gs_jax.metrics import mean_std

RULES = ("val_pgd_within_1pt", "fixed")
INPUT_SCALES = ("correct", "authors")


class Setting(NamedTuple):
    """One (method, hyper-parameter) candidate of the table: its row in ``methods.enabled`` and registry name."""

    row: str
    name: str
    hp: dict
    label: str


class Nets(NamedTuple):
    """Trained networks kept for later attacks: ``variables`` with a leading restart axis, ``rows[row]`` the
    indices (into that axis) of the row's chosen setting, one per seed."""

    model: models.Model
    variables: Any
    rows: dict[str, np.ndarray]


class TableRun(NamedTuple):
    summary: dict[str, Any]  # JSON-able: the ``table`` block and ``methods`` of summary.json
    records: list[dict[str, Any]]  # metrics.jsonl lines, one per restart
    nets: Nets
    test: Split


# ---------------------------------------------------------------------------------------------------------------
# Building blocks from the config
# ---------------------------------------------------------------------------------------------------------------


def model_of(net, num_outputs: int) -> models.Model:
    """``models.build`` of a ``table.net`` block (only the keywords the architecture takes)."""
    kw = {"lenet": {}, "vgg": {"width": float(net.width)},
          "preact": {"depth": int(net.depth), "base_channels": int(net.base_channels)}}  # fmt: skip
    check(net.name in kw, f"unknown net {net.name!r}; choose {', '.join(kw)}")
    return models.build(net.name, input_norm=str(net.input_norm), num_outputs=num_outputs, **kw[net.name])


def settings(cfg, info: algorithms.DataInfo) -> list[Setting]:
    """Every (row, method, hyper-parameters) of ``methods.enabled`` (grids expanded), refusing in one line what
    this data set cannot run. Rows may repeat a setting (see :func:`distinct`)."""
    out = []
    for row, name, block in supervised.method_rows(cfg.methods, info=info):
        for hp in algorithms.grid(name, block):
            algorithms.check_supported(name, hp, info)
            out.append(Setting(row, name, hp, algorithms.label(name, hp)))
    check(any(s.name == "erm" and s.row == "erm" for s in out),
          "methods.enabled must hold 'erm': the reference row of the table and of the λ selection")  # fmt: skip
    return out


def distinct(cands: list[Setting]) -> tuple[list[Setting], list[int]]:
    """The distinct (method, hyper-parameters) of ``cands`` (each trained once) and, per candidate, its index."""
    uniq: list[Setting] = []
    where = []
    for c in cands:
        key = (c.name, c.label)
        j = next((i for i, u in enumerate(uniq) if (u.name, u.label) == key), None)
        if j is None:
            uniq.append(c)
            j = len(uniq) - 1
        where.append(j)
    return uniq, where


def optimiser_of(t) -> optim.OptimSpec:
    return optim.spec(name="sgd", lr=float(t.lr), momentum=float(t.momentum), nesterov=bool(t.nesterov),
                      weight_decay=float(t.weight_decay), milestones=tuple(t.milestones))  # fmt: skip


def select(ref_acc, val_acc, val_pgd, rule: str, tolerance: float) -> tuple[int, str]:
    """Index of the chosen candidate of one method's grid and the reason.

    ``val_pgd_within_1pt``: the candidate with the highest mean validation PGD accuracy among those whose mean
    clean validation accuracy is at least ERM's (``ref_acc``) minus ``tolerance``; if none qualifies, the first.
    ``fixed`` (or no validation split): the first candidate (the paper's protocol: one λ per data set).
    """
    check(rule in RULES, f"unknown table.select {rule!r}; choose {' or '.join(RULES)}")
    if rule == "fixed" or val_acc is None:
        return 0, "fixed (the grid's first setting, no selection)"
    if len(val_acc) == 1:
        return 0, "one setting"
    ok = [j for j in range(len(val_acc)) if val_acc[j] >= ref_acc - tolerance]
    if not ok:
        return 0, f"no setting kept clean validation accuracy within {tolerance:g} of ERM's; the first"
    best = max(ok, key=lambda j: val_pgd[j])
    return best, (f"highest validation PGD accuracy ({val_pgd[best]:.4f}) among settings with clean validation "
                  f"accuracy ≥ ERM's {ref_acc:.4f} − {tolerance:g}")  # fmt: skip


def keys_of(seed: int, seeds) -> jax.Array:
    """Seed s of every setting starts from ``fold_in(PRNGKey(seed), s)`` (same initialisation and batch order)."""
    root = jax.random.PRNGKey(int(seed))
    return jnp.stack([jax.random.fold_in(root, s) for s in seeds])


def attack_key(seed: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(int(seed)), 2**30)


@functools.cache
def correct_fn(model: models.Model, chunk: int):
    """``f(variables_r, x, y) -> (R, n)`` per-example correctness of R restarts (jitted, vmapped)."""
    return jax.jit(
        jax.vmap(functools.partial(evaluators.correct, model, chunk=chunk), in_axes=(0, None, None))
    )


@functools.cache
def pgd_fn(model: models.Model, steps: int, step_frac: float, clip: tuple, chunk: int):
    """``f(variables_r, x, y, eps, key) -> (R,)`` PGD accuracies of R restarts (jitted, vmapped; ε traced)."""

    def one(v, x, y, eps, key):
        return evaluators.pgd_accuracy_of(model, v, x, y, eps, key, steps=steps, step_frac=step_frac, clip=clip,
                                          chunk=chunk)  # fmt: skip

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))


@functools.cache
def authors_pgd_fn(model: models.Model, steps: int, step_frac: float, clip: tuple, chunk: int):
    """``f(variables_r, x, y, eps, key) -> (acc (R,), unattacked (R,), some_zero (R,))``: the authors' Table 1 attack
    (``reference_attacks.torchattacks_pgd``) on ``model`` WITHOUT its input normalisation (the de-normalised images
    through the net that expects normalised ones), scored by the whole ``model``; ``unattacked`` counts the examples
    whose gradient was exactly 0 at every step, ``some_zero`` those where it was at some step."""
    raw = models.build(model.name, input_norm="", **model.kwargs)

    def one(v, x, y, eps, key):
        xs, ys, ws = evaluators.chunked(x, chunk, y)

        def body(a):
            xc, yc, wc, i = a
            adv, zero = reference_attacks.torchattacks_pgd(raw.logits, v, xc, yc, eps=eps, alpha=step_frac * eps,
                                                           steps=steps, key=jax.random.fold_in(key, i), clip=clip)  # fmt: skip
            hit = attacks.correct(model.logits(v, adv), yc)
            return jnp.stack([jnp.sum(hit * wc), jnp.sum((zero == steps) * wc), jnp.sum((zero > 0) * wc)])

        out = jnp.sum(jax.lax.map(body, (xs, ys, ws, jnp.arange(xs.shape[0]))), axis=0)
        return out[0] / x.shape[0], out[1], out[2]

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))


@functools.cache
def _evaluators(model, chunk: int, has_val: bool, every: int, pgd: tuple) -> tuple[trainer.Evaluator, ...]:
    """The table program's evaluators, built once per structure so that their compiled programs are reused."""
    eps, steps, step_frac, clip, seed = pgd
    out = [evaluators.accuracy(model, "train_eval", chunk=chunk)]
    if has_val:
        out += [evaluators.accuracy(model, "val", chunk=chunk),
                evaluators.pgd_accuracy(model, "val_attack", eps=eps, steps=steps, step_frac=step_frac, clip=clip,
                                        key=attack_key(seed), chunk=chunk)]  # fmt: skip
    if every:
        out.append(evaluators.accuracy(model, "val" if has_val else "train_eval", chunk=chunk, every=every,
                                       name="per_epoch"))  # fmt: skip
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------------
# The part
# ---------------------------------------------------------------------------------------------------------------


def run_table(
    cfg, raw: Raw, *, saveat: trainer.SaveAt = trainer.SaveAt(), progress=None, on_eval=None
) -> TableRun:
    """Train every distinct setting × seed as one program; select per method; test clean/PGD accuracy of the
    chosen settings under the correct attack and the authors'."""
    t, a = cfg.table, cfg.attack
    check(str(a.input_scale) in INPUT_SCALES,
          f"unknown attack.input_scale {a.input_scale!r}; choose {' or '.join(INPUT_SCALES)}")  # fmt: skip
    train, val, test, k = part_splits(raw, tuple(t.classes), tuple(t.pixel_range), int(t.n_val))
    if int(t.n_train) > 0:
        check(int(t.n_train) <= len(train.y),
              f"table.n_train {t.n_train} exceeds the {len(train.y)} training images left after validation")  # fmt: skip
        train = Split(train.x[: int(t.n_train)], train.y[: int(t.n_train)])
    n, bs = len(train.y), int(t.batch_size)
    check(n >= bs, f"table.batch_size {bs} is larger than the training set ({n} images)")
    spe = n // bs
    info = supervised.data_info(train.y, n_outputs=k, name=raw.name)
    model = model_of(t.net, k)
    rows_of = settings(cfg, info)
    cands, where = distinct(rows_of)
    seeds = list(range(int(t.restarts)))
    lo, hi = (float(v) for v in t.pixel_range)
    span, clip = hi - lo, (lo, hi)
    spec = supervised.Spec(model, supervised.branches_of([(c.name, c.hp) for c in cands]), optimiser_of(t), info,
                           sampler="epochs", batch_size=bs, steps_per_epoch=spe, augment=bool(t.augment))  # fmt: skip
    chunk = int(t.eval_chunk)
    xs = {"x": jnp.asarray(train.x), "y": jnp.asarray(train.y)}
    data = {
        **xs,
        "train_eval_x": xs["x"][: int(t.n_train_eval)],
        "train_eval_y": xs["y"][: int(t.n_train_eval)],
    }
    if val is not None:
        data.update(val_x=val.x, val_y=val.y, val_attack_x=val.x[: int(t.n_val_pgd)],
                    val_attack_y=val.y[: int(t.n_val_pgd)])  # fmt: skip
    keys = keys_of(cfg.seed, seeds)
    t0, c0 = time.perf_counter(), time.process_time()
    errors = {}
    for c in cands:  # JTT's first stage (Algorithm.driver), once per identification length
        if c.name == "jtt" and int(c.hp["identify_epochs"]) not in errors:
            e = int(c.hp["identify_epochs"])
            errors[e], _ = posthoc.jtt_identify(
                spec, xs, keys, epochs=e, chunk=chunk, progress=trainer.Progress(progress, f"JTT identification ({e} ep)"),
                saveat=saveat._replace(checkpoint_dir=None if saveat.checkpoint_dir is None
                                       else f"{saveat.checkpoint_dir}_jtt{e}"),
            )  # fmt: skip
    states = [supervised.restart_state(spec, c.name, c.hp,
                                       {"n": n, **({"error_set": errors[int(c.hp["identify_epochs"])][i]}
                                                   if c.name == "jtt" else {})})
              for c in cands for i in range(len(seeds))]  # fmt: skip
    every = int(t.eval_every_epochs) * spe
    evs = _evaluators(model, chunk, val is not None, every,
                      (float(a.eps) * span, int(a.steps), float(a.step_frac), clip, int(cfg.seed)))  # fmt: skip
    result = trainer.train(
        supervised.make_task(spec), data, jnp.concatenate([keys] * len(cands)), steps=int(t.epochs) * spe,
        data_per_restart=False, evaluators=evs, init=trainer.Init(algo_state=supervised.stack(states)),
        saveat=saveat, progress=trainer.Progress(progress, f"table ({len(cands)} settings × {len(seeds)} seeds)", on_eval),
        layout=trainer.Layout(max_chunk=spe),  # one compiled chunk (an epoch), a progress update per epoch
    )  # fmt: skip
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    trainer.report_failures(
        "robustness table", result.failed_at, [f"{c.label} seed {s}" for c in cands for s in seeds]
    )
    fin = {"train_acc": result.final["train_eval_acc"]}
    if val is not None:
        fin.update(val_acc=result.final["val_acc"], val_pgd=result.final["val_attack_pgd"])
    fin = {kk: np.asarray(v).reshape(len(cands), len(seeds)) for kk, v in fin.items()}
    val_acc = fin["val_acc"].mean(axis=1) if val is not None else None
    val_pgd = fin["val_pgd"].mean(axis=1) if val is not None else None

    # per method row: the chosen setting of its grid (indices into the distinct settings)
    members: dict[str, list[int]] = {}
    for c, j in zip(rows_of, where, strict=True):
        members.setdefault(c.row, []).append(j)
    ref = val_acc[members["erm"][0]] if val_acc is not None else None
    chosen, selection = {}, {}
    for row, js in members.items():
        i, reason = select(ref, None if val_acc is None else val_acc[js],
                           None if val_pgd is None else val_pgd[js], str(t.select), float(t.select_tolerance))  # fmt: skip
        chosen[row] = js[i]
        selection[row] = {"setting": cands[js[i]].label, "reason": reason}

    # test metrics of the chosen settings only (the other candidates' test PGD would cost as much and is unused)
    attacked = sorted(set(chosen.values()))
    idx = np.concatenate([j * len(seeds) + np.arange(len(seeds)) for j in attacked])
    v = jax.tree_util.tree_map(lambda x: np.asarray(x)[idx], evaluators.variables_of(result.state))
    t1, c1 = time.perf_counter(), time.process_time()
    hits = np.asarray(correct_fn(model, chunk)(v, test.x, test.y), np.float64)
    n_pgd = int(t.n_test_pgd) if int(t.n_test_pgd) > 0 else len(test.y)
    xp, yp = test.x[:n_pgd], test.y[:n_pgd]
    eps_list = sorted({float(a.eps), float(a.eps_text), *(float(e) for e in a.curve)})
    correct_attack = pgd_fn(model, int(a.steps), float(a.step_frac), clip, chunk)
    authors_attack = authors_pgd_fn(model, int(a.steps), float(a.step_frac), clip, chunk)
    main_authors = str(a.input_scale) == "authors"
    curve = {0.0: hits[:, :n_pgd].mean(axis=1)}
    for e in eps_list:
        if main_authors:
            curve[e] = np.asarray(authors_attack(v, xp, yp, e * span, attack_key(cfg.seed))[0])
        else:
            curve[e] = np.asarray(correct_attack(v, xp, yp, e * span, attack_key(cfg.seed)))
    side = {"correct": np.asarray(correct_attack(v, xp, yp, float(a.eps) * span, attack_key(cfg.seed)))}
    acc_a, unattacked, some_zero = (np.asarray(o) for o in
                                    authors_attack(v, xp, yp, float(a.eps) * span, attack_key(cfg.seed)))  # fmt: skip
    side["authors"] = acc_a
    attack_s, attack_cpu = time.perf_counter() - t1, time.process_time() - c1
    methods = {}
    for row, j in chosen.items():
        c, r = cands[j], attacked.index(j)
        sl = slice(r * len(seeds), (r + 1) * len(seeds))
        m: dict[str, Any] = {"method": c.name, "setting": c.label, "hp": algorithms.numeric(c.hp),
                             "restarts": len(seeds)}  # fmt: skip
        if c.name in ("erm", "sd"):
            m["lam"] = float(c.hp["lam"]) if c.name == "sd" else 0.0
        for key, values in (("train_acc", fin["train_acc"][j]), ("clean_acc", hits[sl].mean(axis=1)),
                            ("pgd_acc", curve[float(a.eps)][sl]), ("pgd_text_acc", curve[float(a.eps_text)][sl]),
                            ("pgd_acc_correct_attack", side["correct"][sl]),
                            ("pgd_acc_authors_attack", side["authors"][sl])):  # fmt: skip
            m[f"{key}_mean"], m[f"{key}_std"] = mean_std(values)
            m[f"{key}_per_seed"] = values
        m["authors_attack_unattacked_per_seed"] = unattacked[sl].astype(int)
        m["authors_attack_some_zero_gradient_per_seed"] = some_zero[sl].astype(int)
        m["eps"], m["eps_text"] = float(a.eps), float(a.eps_text)
        m["curve_eps"] = sorted(curve)
        m["curve_acc_mean"] = [float(np.mean(curve[e][sl])) for e in sorted(curve)]
        m["curve_acc_std"] = [float(np.std(curve[e][sl])) for e in sorted(curve)]
        m["selection"] = selection[row]
        methods[row] = m
    sweep = {c.label: {"train_acc_mean": float(fin["train_acc"][i].mean()),
                       **({"val_acc_mean": float(val_acc[i]), "val_pgd_mean": float(val_pgd[i])}
                          if val_acc is not None else {})}
             for i, c in enumerate(cands)}  # fmt: skip
    erm_train = float(methods["erm"]["train_acc_mean"])
    summary = {
        "model": {"name": model.name, "options": dict(model.options), "input_norm": model.input_norm},
        "n_train": n, "n_val": 0 if val is None else len(val.y), "n_test": len(test.y), "n_test_pgd": n_pgd,
        "classes": k, "steps": int(t.epochs) * spe, "epochs": int(t.epochs), "batch_size": bs,
        "milestones": list(t.milestones), "lr": float(t.lr), "input_scale": str(a.input_scale),
        "erm_train_acc": erm_train, "erm_saturated": erm_train >= float(t.saturation),
        "selection": {"rule": str(t.select), "rows": selection}, "sweep": sweep, "methods": methods,
        "train_s": round(train_s, 1), "attack_s": round(attack_s, 1), "train_cpu_s": round(train_cpu, 1),
        "attack_cpu_s": round(attack_cpu, 1),
    }  # fmt: skip
    records = [{"part": "table", "setting": c.label, "seed": s, **{kk: float(fin[kk][i, s]) for kk in fin}}
               for i, c in enumerate(cands) for s in seeds]  # fmt: skip
    rows = {row: np.arange(r * len(seeds), (r + 1) * len(seeds)) for r, row in
            ((attacked.index(j), row) for row, j in chosen.items())}  # fmt: skip
    return TableRun(summary, records, Nets(model, v, rows), test)
