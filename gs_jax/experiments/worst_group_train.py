"""Training for the worst-group benchmark (``gs_jax.experiments.worst_group``): the method rows, JTT's first
stage, the one program per schedule, the post-hoc rows and model selection. No files but checkpoints, no figures.

Data flow: ``configs/worst_group.py`` → :func:`run_worst_group` → ``groups.load`` (MNIST–Fashion dominoes by
default, CelebA where its files exist) → the method rows of ``methods.enabled`` (``supervised.method_rows``: each
row a registry method, its hyper-parameter grid ``algorithms.grid`` and its schedule) → JTT's first stage where
enabled (``posthoc.jtt_identify``, one per distinct schedule) → every (row, hyper-parameter, seed) of the trained
methods as one restart of ONE ``supervised.make_task`` program per distinct optimiser / epoch count (the method is
a branch chosen per restart), per-group validation and test accuracy after every epoch
(``evaluators.group_accuracy``) → the post-hoc rows on the final networks of their ``source`` row (DFR,
``posthoc.dfr``; the threshold shift, ``posthoc.threshold_shift``) → model selection under each rule of
``gs_jax.selection`` → summary, table, figures (``gs_jax.plotting.worst_group``).

Training programs and JTT's first stage checkpoint through the trainer under ``<run>/checkpoints/<program>``;
``--resume NAME`` continues an interrupted run and ends with the same summary (timings aside) and metrics.jsonl.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import algorithms, evaluators, models, optim, posthoc, selection, supervised, trainer
from gs_jax.config import check_sizes
from gs_jax.data import groups
from gs_jax.errors import check
from gs_jax.metrics import mean_std

SCHEDULE_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "epochs")
OVERRIDES = (
    *SCHEDULE_KEYS,
    "source",
)  # row keys this experiment reads itself (``source``: a post-hoc row's net)
RULES = tuple(selection.RULES)
# paper Table 3 (CelebA, test, %, ten runs): average, worst-group (SPEC §4.5); LfF omitted (no code)
PAPER_TABLE3 = {"erm": (94.61, 0.67, 40.35, 1.68), "sd": (91.64, 0.61, 83.24, 2.01),
                "group_dro": (91.76, 0.28, 87.78, 0.96)}  # fmt: skip


@dataclasses.dataclass
class Candidate:
    """One (row, hyper-parameter setting) of ``methods.enabled``; ``curves`` (metric → (E, S)) once trained."""

    row: str
    method: str
    hp: dict[str, Any]
    label: str
    schedule: tuple = ()  # (OptimSpec, epochs) for a trained row; () for a post-hoc one
    source: str = ""  # post-hoc rows: the row whose final networks they use
    curves: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    failed: int = 0

    @property
    def hyper(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.hp.items() if not k.startswith("_")
        }


# ---------------------------------------------------------------------------------------------------------------
# Config → candidates
# ---------------------------------------------------------------------------------------------------------------


def validate(cfg) -> None:
    """Sizes checked up front, each error naming its config key."""
    check_sizes(cfg, {"seeds": 1, "train.batch_size": 1, "train.epochs": 1, "eval.chunk": 1,
                      "data.max_train": 0, "data.max_eval": 0})  # fmt: skip
    for row in cfg.methods.enabled:
        block = cfg.methods.get(row) or {}
        if block.get("epochs") is not None:
            check_sizes(cfg, {f"methods.{row}.epochs": 1})
        if "identify_epochs" in block:
            check_sizes(cfg, {f"methods.{row}.identify_epochs": 1})


def schedule_of(cfg, block) -> tuple[optim.OptimSpec, int]:
    """A row's optimiser and epoch count: the row's schedule keys where set, else ``cfg.train``."""

    def get(key):
        return block[key] if block.get(key) is not None else cfg.train[key]

    opt = optim.spec(name=str(get("optimizer")), lr=float(get("lr")), momentum=float(get("momentum")),
                     weight_decay=float(get("weight_decay")))  # fmt: skip
    return opt, int(get("epochs"))


def _label(row: str, method: str, hp, block) -> str:
    """``row[method k=v …]`` with the hyper-parameters the row's block sets (its grid axes and fixed values)."""
    parts = [method] if row != method else []
    for k in (k for k in hp if k in block):
        v = hp[k]
        parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return f"{row}[{' '.join(parts)}]" if parts else row


def candidates(cfg, info: algorithms.DataInfo) -> list[Candidate]:
    """Every (row, setting) of ``methods.enabled``, in config order; methods the data set cannot run are refused
    here, in one line, before anything is trained."""
    out = []
    rows = supervised.method_rows(cfg.methods, overrides=OVERRIDES, posthoc=("dfr", "threshold"), info=info)
    trained = [r for r, m, _ in rows if not algorithms.get(m).posthoc]
    for row, method, block in rows:
        alg = algorithms.get(method)
        for hp in algorithms.grid(method, block):
            algorithms.check_supported(method, hp, info)
            if alg.posthoc:
                src = str(block.get("source") or "erm")
                check(src in trained, f"methods.{row}.source: {src!r} is not a trained row of methods.enabled "
                      f"({', '.join(trained) or 'none'})")  # fmt: skip
                out.append(Candidate(row, method, hp, _label(row, method, hp, block), source=src))
            else:
                out.append(
                    Candidate(
                        row, method, hp, _label(row, method, hp, block), schedule=schedule_of(cfg, block)
                    )
                )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


def build_model(cfg) -> models.Model:
    if cfg.net.name == "lenet":
        return models.build("lenet", num_outputs=1)
    return models.build(cfg.net.name, num_outputs=1, stage_sizes=tuple(cfg.net.stage_sizes), width=int(cfg.net.width),
                        input_norm="imagenet" if cfg.data.dataset == "celeba" else "")  # fmt: skip


def seed_keys(cfg, n_seeds: int) -> jax.Array:
    """Seed s: ``fold_in(PRNGKey(cfg.seed), s)`` (the same initialisation and batches for every method)."""
    root = jax.random.PRNGKey(int(cfg.seed))
    return jnp.stack([jax.random.fold_in(root, s) for s in range(n_seeds)])


@dataclasses.dataclass(frozen=True)
class Context:
    """What every program of a run shares."""

    cfg: Any
    model: models.Model
    data: groups.GroupData
    tdata: dict[str, np.ndarray]
    info: algorithms.DataInfo
    keys: jax.Array
    run_dir: Any
    progress: Any

    @property
    def spe(self) -> int:
        return len(self.data.train.y) // int(self.cfg.train.batch_size)

    def spec(self, branches, opt: optim.OptimSpec) -> supervised.Spec:
        return supervised.Spec(self.model, branches, opt, self.info, sampler=str(self.cfg.train.sampler),
                               batch_size=int(self.cfg.train.batch_size), steps_per_epoch=self.spe,
                               fields=("x", "y", "group"), pretrained=str(self.cfg.net.pretrained))  # fmt: skip

    def saveat(self, name: str) -> trainer.SaveAt:
        rd = self.run_dir
        return trainer.SaveAt(checkpoint_dir=rd.file("checkpoints") / name, resume=rd.resumed,
                              checkpoint_every_s=float(self.cfg.checkpoint_every_s))  # fmt: skip


@functools.cache
def _group_evaluator(model, split: str, n_groups: int, chunk: int, every: int) -> trainer.Evaluator:
    """``evaluators.group_accuracy`` once per setting, so that its compiled program serves every run of a process."""
    ev = evaluators.group_accuracy(model, split, n_groups, chunk=chunk, every=every, name=f"{split}_epoch")
    return ev._replace(last=False)


def jtt_stage_one(ctx: Context, cands: list[Candidate]) -> tuple[dict, dict[str, Any]]:
    """The error sets of every distinct (schedule, identify_epochs) among the JTT candidates: ``{(schedule, T):
    (S, n) bool}`` and their sizes for the summary."""
    out, info = {}, {}
    for c in cands:
        if algorithms.get(c.method).driver != "jtt_identify":
            continue
        key = (c.schedule[0], int(c.hp["identify_epochs"]))
        if key in out:
            continue
        name = f"jtt_identify_{len(out)}"
        t0 = time.perf_counter()
        errors, sizes = posthoc.jtt_identify(
            ctx.spec((("erm", ()),), key[0]), ctx.tdata, ctx.keys, epochs=key[1], chunk=int(ctx.cfg.eval.chunk),
            saveat=ctx.saveat(name), progress=trainer.Progress(ctx.progress, "JTT identification"),
        )  # fmt: skip
        out[key] = errors
        info[name] = {"identify_epochs": key[1], **sizes, "wall_s": round(time.perf_counter() - t0, 1)}
    return out, info


def train_programs(
    ctx: Context, cands: list[Candidate], errors: dict, prefix: str = "train"
) -> tuple[list, Any]:
    """Train every trained candidate × seed: one program per distinct schedule (checkpoints under
    ``<prefix>_<k>``). Fills ``curves`` and ``failed``; returns the final variables per candidate index (restart
    axis = seeds) and the initial parameters of the seeds (θ₀, the same for every method of a seed)."""
    n, S = len(ctx.data.train.y), len(ctx.keys)
    by_schedule: dict[tuple, list[int]] = {}
    for i, c in enumerate(cands):
        if c.schedule:
            by_schedule.setdefault(c.schedule, []).append(i)
    variables: list[Any] = [None] * len(cands)
    params0 = None
    inputs = {"group": ctx.data.train.group, "n": n}
    for p, ((opt, epochs), members) in enumerate(by_schedule.items()):
        spec = ctx.spec(supervised.branches_of([(cands[i].method, cands[i].hp) for i in members]), opt)
        states = []
        for i in members:
            c = cands[i]
            err = errors.get((opt, int(c.hp.get("identify_epochs", 0))))
            for s in range(S):
                extra = {"error_set": err[s]} if algorithms.get(c.method).driver == "jtt_identify" else {}
                states.append(supervised.restart_state(spec, c.method, c.hp, {**inputs, **extra}))
        labels = [cands[i].label for i in members]
        name, spe = f"{prefix}_{p}", spec.steps_per_epoch
        # after every epoch (before the updates of steps spe, 2·spe, …) and after the last update; one function per
        # split (one compiled program), equal chunks of one epoch (one compiled training chunk)
        evs = [
            _group_evaluator(ctx.model, s, ctx.data.n_groups, int(ctx.cfg.eval.chunk), spe)
            for s in ("val", "test")
        ]
        evs += [e._replace(name=e.name.replace("_epoch", "_final"), every=0) for e in evs]

        def log(record, name=name, labels=labels):
            for j, lab in enumerate(labels):
                sl = slice(j * S, (j + 1) * S)
                ctx.run_dir.log_metrics({"program": name, "step": record["step"], "candidate": lab,
                                         **{k: float(np.nanmean(np.asarray(v)[sl])) for k, v in sorted(record.items())
                                            if k != "step"}})  # fmt: skip

        desc = f"{'+'.join(dict.fromkeys(cands[i].row for i in members))} ({len(states)} restarts)"
        res = trainer.train(supervised.make_task(spec), ctx.tdata, jnp.concatenate([ctx.keys] * len(members)),
                            steps=epochs * spe, data_per_restart=False,
                            init=trainer.Init(algo_state=supervised.stack(states)), evaluators=evs,
                            saveat=ctx.saveat(name), progress=trainer.Progress(ctx.progress, desc, log),
                            layout=trainer.Layout(max_chunk=spe))  # fmt: skip
        log({"step": epochs * spe, **res.final})
        trainer.report_failures("worst-group", res.failed_at, [lab for lab in labels for _ in range(S)])
        recs = [*(h for h in res.history if h["step"] > 0), res.final]
        check(len(recs) == epochs, f"expected {epochs} evaluations, got {len(recs)}")
        final_vars = evaluators.variables_of(res.state)
        if params0 is None:
            params0 = jax.tree_util.tree_map(lambda a: np.asarray(a)[:S], res.params0)
        for j, i in enumerate(members):
            sl = slice(j * S, (j + 1) * S)
            cands[i].curves = {k: np.stack([np.asarray(r[k])[sl] for r in recs]) for k in res.final}
            cands[i].failed = int(np.sum(res.failed_at[sl] >= 0))
            variables[i] = jax.tree_util.tree_map(lambda a, sl=sl: np.asarray(a)[sl], final_vars)
    return variables, params0


# ---------------------------------------------------------------------------------------------------------------
# Post-hoc rows and selection
# ---------------------------------------------------------------------------------------------------------------


def method_summary(test_avg, test_worst, test_groups, **extra) -> dict[str, Any]:
    am, asd = mean_std(np.asarray(test_avg, float))
    wm, wsd = mean_std(np.asarray(test_worst, float))
    g = np.asarray(test_groups, float)
    return {"avg_acc_mean": am, "avg_acc_std": asd, "worst_group_acc_mean": wm, "worst_group_acc_std": wsd,
            "per_group": np.nanmean(g, 0).tolist(), "per_group_std": np.nanstd(g, 0).tolist(),
            "avg_acc": np.asarray(test_avg, float).tolist(), "worst_group_acc": np.asarray(test_worst, float).tolist(),
            **extra}  # fmt: skip


def posthoc_rows(ctx: Context, cands: list[Candidate], variables: list[Any]) -> dict[str, dict[str, Any]]:
    """Every post-hoc candidate, fitted on the final networks of its source row: ``{label: {rule: per-seed
    results}}``."""
    out: dict[str, dict[str, Any]] = {}
    d, G, chunk = ctx.data, ctx.data.n_groups, int(ctx.cfg.eval.chunk)
    feats: dict[tuple, dict] = {}
    for c in cands:
        if c.schedule:
            continue
        src = next(i for i, cc in enumerate(cands) if cc.row == c.source)
        per_seed = []
        if c.method == "threshold":
            z = {
                sp: posthoc.restart_logits(ctx.model, variables[src], d.split(sp).x, chunk)
                for sp in ("val", "test")
            }
            for s in range(len(ctx.keys)):
                v, t = d.val, d.test
                per_seed.append(posthoc.threshold_shift(z["val"][s], v.y, v.group, z["test"][s], t.y, t.group,
                                                        n_groups=G))  # fmt: skip
        for s in range(len(ctx.keys) if c.method == "dfr" else 0):
            v = posthoc.restart(variables[src], s)
            if c.method == "dfr":
                key = (src, s, c.hp["penalty"] == "l1")
                if key not in feats:
                    splits = ("train", "val", "test") if key[2] else ("val", "test")
                    feats[key] = {sp: posthoc.features(ctx.model, v, d.split(sp).x, chunk) for sp in splits}
                dkey = jax.random.fold_in(jax.random.PRNGKey(int(ctx.cfg.seed) + 7919), s)
                splits = {sp: d.split(sp) for sp in ("val", "test")}
                per_seed.append(posthoc.dfr(feats[key], splits, c.hp, n_groups=G, key=dkey))
        out[c.label] = {rule: {"test_avg": [r[rule]["scores"]["avg"] for r in per_seed],
                               "test_worst": [r[rule]["scores"]["worst"] for r in per_seed],
                               "test_groups": [r[rule]["scores"]["groups"] for r in per_seed],
                               "hyper": [r[rule]["hyper"] for r in per_seed],
                               "tuning": [r[rule].get("tuning") for r in per_seed]} for rule in RULES}  # fmt: skip
    return out


def _posthoc_listing(c: Candidate, r: dict[str, Any]) -> list[dict[str, Any]]:
    """A post-hoc row's tried values and their mean held-out validation score (DFR's penalty grid), or the values
    chosen per seed (the threshold, searched over every cut)."""
    if c.method == "dfr":
        key = "c" if c.hp["penalty"] == "l1" else "l2"
        scores = np.mean(np.asarray(r["tuning"], float), axis=0)
        return [
            {key: float(v), "val_score": round(float(sc), 4)} for v, sc in zip(c.hp[key], scores, strict=True)
        ]
    return [{**h, "seed": s} for s, h in enumerate(r["hyper"])]


def summarise(cands: list[Candidate], post: dict[str, dict[str, Any]], n_groups: int) -> dict[str, Any]:
    """``{rule: {row: summary}}``: per row the candidate with the best mean validation score under the rule (per
    seed the epoch the rule picks), its test numbers, and every candidate it was chosen from."""
    by_rule: dict[str, dict[str, Any]] = {}
    for rule in RULES:
        block = {}
        for row in dict.fromkeys(c.row for c in cands):
            mine = [c for c in cands if c.row == row]
            if not mine[0].schedule:
                c = mine[0]
                r = post[c.label][rule]
                block[row] = method_summary(r["test_avg"], r["test_worst"], r["test_groups"], method=c.method,
                                            hyper={**c.hyper, "chosen": r["hyper"]}, label=c.label, rule=rule,
                                            source=c.source, candidates=_posthoc_listing(c, r))  # fmt: skip
                continue
            ev = [selection.at_selected(c.curves, rule, n_groups) for c in mine]
            k = selection.best([e["val_score"] for e in ev])
            e, c = ev[k], mine[k]
            listing = [{"label": cc.label, "hyper": cc.hyper, "val_score": round(ee["val_score"], 4),
                        "test_avg_mean": float(np.mean(ee["test_avg"])),
                        "test_worst_mean": float(np.mean(ee["test_worst"]))} for cc, ee in zip(mine, ev, strict=True)]  # fmt: skip
            block[row] = method_summary(e["test_avg"], e["test_worst"], e["test_groups"], method=c.method,
                                        hyper=c.hyper, label=c.label, rule=rule, epochs_selected=e["epochs"],
                                        val_score=e["val_score"], candidates=listing, failed=c.failed)  # fmt: skip
        by_rule[rule] = block
    return by_rule
