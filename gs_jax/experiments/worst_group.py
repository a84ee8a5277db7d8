"""Worst-group accuracy (Section 4.3, Table 3; SPEC §4, §5b, §5c): ERM, SD (per-class λ_c, γ_c), Group DRO, JTT,
logit adjustment, DFR and a threshold shift, on any group data set of ``gs_jax.data.groups``.

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
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import algorithms, evaluators, models, optim, posthoc, selection, supervised, trainer
from gs_jax.config import check_sizes
from gs_jax.data import groups
from gs_jax.errors import check
from gs_jax.metrics import format_mean_std, mean_std
from gs_jax.reporting import markdown_table

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


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------


def table_rows(summary: dict[str, Any], rule: str) -> list[dict[str, str]]:
    rows = []
    names = summary["group_names"]
    for m, r in summary["by_rule"][rule].items():
        paper = PAPER_TABLE3.get(m)
        rows.append({
            "method": r["label"], "chosen by": rule,
            "average": format_mean_std(r["avg_acc_mean"], r["avg_acc_std"]),
            "worst group": format_mean_std(r["worst_group_acc_mean"], r["worst_group_acc_std"]),
            **{f"g{k}: {names[k]}": f"{100 * v:.1f}" for k, v in enumerate(r["per_group"])},
            "paper avg / worst (CelebA)": f"{paper[0]:.2f} / {paper[2]:.2f}" if paper else "-",
        })  # fmt: skip
    return rows


def _calibration(cfg, run_dir, progress) -> tuple[list[dict[str, Any]], str]:
    """The ρ calibration: trained in this run (``calibration.run``) or the table recorded in the config."""
    from gs_jax.experiments import worst_group_analysis as analysis

    if cfg.calibration.run:
        return analysis.calibrate(cfg, run_dir, progress), f"this run ({run_dir.path.name})"
    keys = ("rho", "erm_worst_group_acc_mean", "erm_avg_acc_mean")
    rows = [{**dict(zip(keys, r[:3], strict=True)), "layout": "symmetric" if r[0] is not None else "celeba",
             "per_group": list(r[3:])} for r in cfg.calibration.measured]  # fmt: skip
    return rows, f"recorded in configs/worst_group.py from {cfg.calibration.measured_in or '-'}"


def run_worst_group(cfg, run_dir, progress=None) -> dict[str, Any]:
    """The whole experiment (``make worst-group``): the ρ calibration (trained or recorded), training, post-hoc
    rows, selection, the monitor's responses, summary.json, table, figures."""
    from gs_jax.experiments import worst_group_analysis as analysis
    from gs_jax.plotting import worst_group as plots

    t_start = time.perf_counter()
    validate(cfg)
    cands = candidates(cfg, groups.static_info(cfg.data))  # refusals before the data are loaded
    symmetric = cfg.data.dataset == "dominoes" and cfg.data.layout == "symmetric"
    summary: dict[str, Any] = {"variant": cfg.variant, "rho": float(cfg.data.rho) if symmetric else None,
                               "layout": cfg.data.layout if cfg.data.dataset == "dominoes" else None}  # fmt: skip
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    calib, summary["rho_calibration_source"] = _calibration(cfg, run_dir, progress)
    summary["rho_calibration"] = calib
    wall["calibration"] = round(time.perf_counter() - t0, 1)
    if calib:
        run_dir.save_figure(plots.rho_calibration(calib), "rho_calibration")
    if cfg.calibration.only:
        summary["in_regime"] = analysis.in_regime(calib)
        run_dir.write_text("table.md", calibration_table(calib))
        print(calibration_table(calib))
        summary["wall_s"] = {**wall, "total": round(time.perf_counter() - t_start, 1)}
        run_dir.write_summary(summary)
        return summary
    data = groups.load(cfg.data, progress=progress)
    check(len(data.train.y) >= int(cfg.train.batch_size),
          f"train.batch_size {cfg.train.batch_size} is larger than the training set ({len(data.train.y)})")  # fmt: skip
    ctx = Context(cfg, build_model(cfg), data, data.trainer_data(), data.info(), seed_keys(cfg, int(cfg.seeds)),
                  run_dir, progress)  # fmt: skip
    summary.update({
        "data": data.name, "description": data.description, "group_names": list(data.group_names),
        "group_counts": data.group_counts(), "seeds": list(range(int(cfg.seeds))), "net": cfg.net.name,
        "selection": f"{RULES[0]} (primary, in 'methods'); every rule in by_rule: "
                     + "; ".join(f"{k}: {v}" for k, v in selection.RULES.items()),
    })  # fmt: skip
    errors, summary["jtt_identification"] = jtt_stage_one(ctx, cands)
    for name, v in summary["jtt_identification"].items():
        wall[name] = v.pop("wall_s")
    t0 = time.perf_counter()
    variables, params0 = train_programs(ctx, cands, errors)
    wall["train"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    post = posthoc_rows(ctx, cands, variables)
    wall["posthoc"] = round(time.perf_counter() - t0, 1)
    summary["by_rule"] = summarise(cands, post, data.n_groups)
    summary["methods"] = summary["by_rule"][RULES[0]]
    if cfg.responses.enabled and cfg.net.name == "lenet" and params0 is not None:
        t0 = time.perf_counter()
        summary["responses"] = analysis.responses(ctx, cands, variables, params0, summary["by_rule"])
        wall["responses"] = round(time.perf_counter() - t0, 1)
    np.savez(run_dir.file("curves.npz"), **{f"{c.label}|{k}": v for c in cands for k, v in c.curves.items()})
    report(summary, cands, data, run_dir, int(cfg.seeds))
    wall["total"] = round(time.perf_counter() - t_start, 1)
    summary["wall_s"] = wall
    run_dir.write_summary(summary)
    print(f"[gs-jax] worst-group: {wall['total']:.1f} s -> {run_dir.path}", file=sys.stderr)
    return summary


def calibration_table(rows: list[dict[str, Any]]) -> str:
    out = [{"layout": r["layout"], "ρ": "-" if r["rho"] is None else f"{r['rho']:g}",
            "ERM worst group": f"{100 * r['erm_worst_group_acc_mean']:.1f}"
                               + (f" ± {100 * r['erm_worst_group_acc_std']:.1f}" if "erm_worst_group_acc_std" in r else ""),
            "ERM average": f"{100 * r['erm_avg_acc_mean']:.1f}",
            "per group g0..g3": " / ".join(f"{100 * v:.1f}" for v in r["per_group"]),
            "train groups": str(r.get("train_group_counts", "-"))} for r in rows]  # fmt: skip
    return markdown_table(out, "ERM against the shortcut's strength ρ (test %, epochs chosen by val_worst)")


def report(summary: dict[str, Any], cands: list[Candidate], data, run_dir, seeds: int) -> None:
    """table.md (every rule, the candidates, the responses) and the figures."""
    from gs_jax.plotting import worst_group as plots

    text = ""
    for rule in RULES:
        title = (f"Table 3 analogue — {data.name}, test accuracy (mean ± std over {seeds} seeds, %), "
                 f"chosen by {rule}: {selection.RULES[rule]}")  # fmt: skip
        text += markdown_table(table_rows(summary, rule), title) + "\n"
    text += candidates_table(summary) + "\n"
    if "responses" in summary:
        text += responses_table(summary["responses"]) + "\n"
    if summary.get("rho_calibration"):
        text += calibration_table(summary["rho_calibration"]) + f"({summary['rho_calibration_source']})\n\n"
    text += f"data: {data.description}\ngroup counts: {summary['group_counts']}\n"
    print(text)
    run_dir.write_text("table.md", text)
    chosen = {m: next(c for c in cands if c.label == r["label"]).curves for m, r in summary["methods"].items()
              if "epochs_selected" in r}  # fmt: skip
    run_dir.save_figure(plots.group_curves(chosen, data.group_names, data.name), "group_curves")
    run_dir.save_figure(plots.bars(summary["by_rule"], data.group_names, PAPER_TABLE3, data.name),
                        "worst_group_bars")  # fmt: skip
    if "responses" in summary:
        run_dir.save_figure(plots.responses(summary["responses"]), "responses")


def candidates_table(summary: dict[str, Any]) -> str:
    """Every candidate of every trained row under every rule: its mean validation score and test numbers."""
    rows = []
    for rule, block in summary["by_rule"].items():
        for m, r in block.items():
            for c in r.get("candidates", []):
                if "label" not in c:
                    continue
                rows.append({"rule": rule, "row": m, "candidate": c["label"], "val score": f"{100 * c['val_score']:.1f}",
                             "test avg": f"{100 * c['test_avg_mean']:.1f}",
                             "test worst": f"{100 * c['test_worst_mean']:.1f}",
                             "chosen": "✓" if c["label"] == r["label"] else ""})  # fmt: skip
    return markdown_table(rows, "Every trained candidate (mean over seeds, %; the rule's epoch per seed)")


def responses_table(resp: dict[str, Any]) -> str:
    feats = resp["features"]
    rows = [{"row": m, "candidate": r["label"], "z digit": f"{r['z_digit_mean']:.2f} ± {r['z_digit_std']:.2f}",
             "z item": f"{r['z_item_mean']:.2f} ± {r['z_item_std']:.2f}",
             "item share": f"{r['item_share_mean']:.2f}"} for m, r in resp["rows"].items()]  # fmt: skip
    desc = "; ".join(f"seed {s}: digit = feature {f['digit']['index']} (cos {f['digit']['corr']:.2f}), item = "
                     f"feature {f['item']['index']} (cos {f['item']['corr']:.2f})" for s, f in enumerate(feats))  # fmt: skip
    return markdown_table(rows, "The monitor's responses z = UᵀY(ŷ − ŷ₀) of the final networks (val_worst rows) to "
                                f"the digit and the item features ({resp['probe']}); {desc}")  # fmt: skip
