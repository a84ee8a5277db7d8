"""Worst-group accuracy (Section 4.3, Table 3; SPEC §4, §5b): ERM, SD (per-class λ_c, γ_c), Group DRO, JTT and DFR.

Data flow: ``configs/worst_group.py`` → :func:`run_worst_group` → ``worst_group_core.load_data`` (MNIST–Fashion
dominoes by default, CelebA where its files exist) → JTT stage 1 (ERM for T epochs; its training errors give the
up-weighted set) → every (method, hyper-parameter, seed) of ERM, SD, Group DRO and JTT stage 2 as one restart of
ONE vmapped ``trainer.train`` call per distinct optimiser/schedule (the method lives in the algorithm state,
``worst_group_core.make_task``), per-group validation and test accuracy after every epoch (a trainer evaluator) →
DFR on the final ERM nets (last layer refit on group-balanced validation data, ``group_methods.fit_last_layer``) →
model selection → summary, table, figures (``gs_jax.plotting.worst_group``).

Model selection (both reported): ``val_worst`` — per restart the epoch with the best validation worst-group
accuracy, per method the hyper-parameters with the best mean of it over seeds (needs group labels on validation,
as the authors' ``analysis_utils`` and Group DRO's protocol); ``val_avg`` — the same with the validation average
accuracy (no group labels anywhere except DFR's and Group DRO's own training).
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import group_methods, trainer
from gs_jax.errors import check
from gs_jax.experiments import worst_group_core as core
from gs_jax.metrics import format_mean_std, mean_std
from gs_jax.reporting import markdown_table

METHODS = ("erm", "sd", "group_dro", "jtt", "dfr")
RULES = ("val_worst", "val_avg")
# paper Table 3 (CelebA, test, %, ten runs): average, worst-group (SPEC §4.5); LfF omitted (no code)
PAPER_TABLE3 = {"erm": (94.61, 0.67, 40.35, 1.68), "sd": (91.64, 0.61, 83.24, 2.01),
                "group_dro": (91.76, 0.28, 87.78, 0.96)}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Candidates: (method, hyper-parameters) → algorithm state
# ---------------------------------------------------------------------------------------------------------------


def schedule_of(cfg, method: str) -> tuple[core.Opt, int]:
    """The optimiser and epoch count of ``method``: ``cfg.methods.<m>.<key>`` where set, else ``cfg.train``."""
    m, t = cfg.methods[method], cfg.train

    def get(key):
        return m[key] if key in m and m[key] is not None else t[key]

    opt = core.Opt(str(get("optimizer")), float(get("lr")), float(get("momentum")), float(get("weight_decay")),
                   int(t.batch_size))  # fmt: skip
    epochs = int(get("epochs"))
    check(epochs >= 1, f"{method}: epochs must be >= 1, got {epochs}")
    return opt, epochs


def candidates(cfg, n_train: int, jtt_errors: np.ndarray | None) -> list[dict[str, Any]]:
    """Every (method, hyper-parameter) candidate of the trained methods: ``{"method", "label", "hyper",
    "state"}``, or ``"state_per_seed"`` for JTT (its error set depends on the seed's identification model)."""
    out = [{"method": "erm", "label": "ERM", "hyper": {}, "state": core.method_state(n_train)}]
    sd = cfg.methods.sd
    for lam, gamma in itertools.product(sd.lam, sd.gamma):
        hyper = {"lam": [float(v) for v in lam], "gamma": [float(v) for v in gamma]}
        out.append({"method": "sd", "label": f"SD λ={tuple(hyper['lam'])} γ={tuple(hyper['gamma'])}",
                    "hyper": hyper, "state": core.method_state(n_train, lam=lam, gamma=gamma)})  # fmt: skip
    dro = cfg.methods.group_dro
    for eta in dro.eta:
        hyper = {"eta": float(eta), "adj": float(dro.adj)}
        out.append({"method": "group_dro", "label": f"Group DRO η={eta:g} C={dro.adj:g}", "hyper": hyper,
                    "state": core.method_state(n_train, dro=True, eta=eta, adj=dro.adj)})  # fmt: skip
    if jtt_errors is not None:
        for up in cfg.methods.jtt.lambda_up:
            per_seed = [core.method_state(n_train, weights=group_methods.jtt_weights(e, float(up)))
                        for e in jtt_errors]  # fmt: skip
            out.append({"method": "jtt", "label": f"JTT T={cfg.methods.jtt.identify_epochs} λ_up={up:g}",
                        "hyper": {"identify_epochs": int(cfg.methods.jtt.identify_epochs), "lambda_up": float(up)},
                        "state_per_seed": per_seed})  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


def _keys(cfg, seeds) -> jax.Array:
    root = jax.random.PRNGKey(int(cfg.seed))
    return jnp.stack([jax.random.fold_in(root, s) for s in seeds])


def jtt_identify(cfg, arch, data, tdata, seeds, progress=None) -> tuple[np.ndarray, dict[str, Any]]:
    """JTT stage 1: ERM (the JTT schedule's optimiser) for ``identify_epochs`` epochs per seed; returns the error
    sets (S, n) — training examples the identification model misclassifies — and their sizes per group."""
    opt, _ = schedule_of(cfg, "jtt")
    n = len(data.train.y)
    spe = n // opt.batch_size
    steps = int(cfg.methods.jtt.identify_epochs) * spe
    states = core.stack_states([core.method_state(n)] * len(seeds))
    res = trainer.train(core.make_task(arch, opt, n), tdata, _keys(cfg, seeds), steps=steps, data_per_restart=False,
                        algo_state=states, progress=progress, desc="JTT identification", max_chunk=spe)  # fmt: skip
    logits = np.asarray(core.logits_fn(arch, int(cfg.eval.chunk))(core.variables_of(res.state), data.train.x))
    errors = np.stack([group_methods.jtt_error_set((lg > 0).astype(np.int32), data.train.y) for lg in logits])
    per_group = [np.bincount(data.train.g[e], minlength=core.N_GROUPS).tolist() for e in errors]
    return errors, {"error_set_size": errors.sum(axis=1).tolist(), "error_set_per_group": per_group}


def train_candidates(
    cfg, arch, data, tdata, cands, seeds, progress=None, on_eval=None
) -> list[dict[str, Any]]:
    """Train every candidate × seed; one ``trainer.train`` call per (optimiser, epochs). Adds ``curves`` (metric →
    (E, S) array, epochs 1..E) to each candidate."""
    n = len(data.train.y)
    by_schedule: dict[tuple, list[int]] = {}
    for i, c in enumerate(cands):
        by_schedule.setdefault(schedule_of(cfg, c["method"]), []).append(i)
    for (opt, epochs), members in by_schedule.items():
        spe = n // opt.batch_size
        check(spe >= 1, f"train.batch_size {opt.batch_size} is larger than the training set ({n})")
        states = [cands[i].get("state_per_seed", [cands[i].get("state")] * len(seeds))[s]
                  for i in members for s in range(len(seeds))]  # fmt: skip
        keys = jnp.concatenate([_keys(cfg, seeds)] * len(members))
        ev = core.group_evaluator(arch, int(cfg.eval.chunk), spe)
        final = trainer.Evaluator("final", ev.fn, every=0)
        methods = sorted({cands[i]["method"] for i in members})
        res = trainer.train(
            core.make_task(arch, opt, n), tdata, keys, steps=epochs * spe, data_per_restart=False,
            evaluators=[ev, final], algo_state=core.stack_states(states), progress=progress,
            desc=f"{'+'.join(methods)} ({len(keys)} restarts)", on_eval=on_eval, max_chunk=spe,
        )  # fmt: skip
        trainer.report_failures(
            "worst-group", res.failed_at, [cands[i]["label"] for i in members for _ in seeds]
        )
        recs = [h for h in res.history if h["step"] > 0 and h["step"] % spe == 0] + [res.final]
        check(len(recs) == epochs, f"expected {epochs} evaluations, got {len(recs)}")
        for j, i in enumerate(members):
            sl = slice(j * len(seeds), (j + 1) * len(seeds))
            cands[i]["curves"] = {k: np.stack([np.asarray(r[k])[sl] for r in recs]) for k in res.final}
            cands[i]["failed"] = int(np.sum(res.failed_at[sl] >= 0))
            if cands[i]["method"] == "erm":
                cands[i]["variables"] = jax.tree_util.tree_map(lambda a, sl=sl: np.asarray(a)[sl],
                                                               core.variables_of(res.state))  # fmt: skip
    return cands


# ---------------------------------------------------------------------------------------------------------------
# Selection and DFR
# ---------------------------------------------------------------------------------------------------------------


def select_epochs(curves: dict[str, np.ndarray], rule: str) -> np.ndarray:
    """Per seed, the epoch index (0-based into the curves) maximising the rule's validation metric."""
    check(rule in RULES, f"unknown selection rule {rule!r}; choose {', '.join(RULES)}")
    key = "val_worst" if rule == "val_worst" else "val_avg"
    return np.argmax(np.nan_to_num(curves[key], nan=-1.0), axis=0)


def evaluate_candidate(cand: dict[str, Any], rule: str) -> dict[str, Any]:
    """Per-seed test metrics at the selected epochs, and the validation score that ranks candidates."""
    c = cand["curves"]
    ep = select_epochs(c, rule)
    s = np.arange(ep.size)
    pick = {k: c[k][ep, s] for k in c}
    score = pick["val_worst" if rule == "val_worst" else "val_avg"]
    return {"epochs": (ep + 1).tolist(), "val_score": float(np.mean(score)),
            "test_avg": pick["test_avg"], "test_worst": pick["test_worst"],
            "test_groups": np.stack([pick[f"test_g{k}"] for k in range(core.N_GROUPS)], 1)}  # fmt: skip


def _standardise(train_nd, *others):
    mu, sd = train_nd.mean(0), train_nd.std(0) + 1e-6
    return [(a - mu) / sd for a in (train_nd, *others)]


def dfr(cfg, arch, data, erm_variables, seeds) -> dict[str, dict[str, Any]]:
    """DFR (Kirichenko et al. 2023, the ``DFR^Tr_Val`` protocol with an L2 penalty), for both selection rules at
    once: per ERM seed, the penultimate features of validation and test; l2 tuned by fitting on a group-balanced
    subsample of one half of validation and scoring the other half (worst-group accuracy for ``val_worst``, average
    for ``val_avg``); then ``n_refits`` balanced subsamples of the whole validation set are fitted with the chosen l2
    and their weights averaged; test per-group accuracy of that last layer. Returns ``{rule: results}``."""
    d = cfg.methods.dfr
    feat = core.features_fn(arch, int(cfg.eval.chunk))
    v, te = data.val, data.test
    out = {rule: {"test_avg": [], "test_worst": [], "test_groups": [], "l2": []} for rule in RULES}
    for s in range(len(seeds)):
        variables = core.restart(erm_variables, s)
        fv, ft = np.asarray(feat(variables, v.x)), np.asarray(feat(variables, te.x))
        fv, ft = _standardise(fv, ft)
        key = jax.random.fold_in(jax.random.PRNGKey(int(cfg.seed) + 7919), s)
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), len(v.y)))
        a, b = perm[: len(perm) // 2], perm[len(perm) // 2 :]
        scores = {rule: [] for rule in RULES}
        for j, l2 in enumerate(d.l2):
            sub = group_methods.group_balanced_indices(v.g[a], core.N_GROUPS, jax.random.fold_in(key, 1 + j))
            w, c = group_methods.fit_last_layer(fv[a[sub]], v.y[a[sub]], l2=float(l2))
            _, avg, worst = core.group_accuracy(jnp.asarray(fv[b]) @ w + c, v.y[b], v.g[b])
            scores["val_worst"].append(float(worst))
            scores["val_avg"].append(float(avg))
        refit: dict[float, tuple] = {}  # chosen l2 → test metrics (both rules often choose the same)
        for rule in RULES:
            l2 = float(d.l2[int(np.argmax(scores[rule]))])
            if l2 not in refit:
                ws, cs = [], []
                for r in range(int(d.n_refits)):
                    idx = group_methods.group_balanced_indices(
                        v.g, core.N_GROUPS, jax.random.fold_in(key, 1000 + r)
                    )
                    w, c = group_methods.fit_last_layer(fv[idx], v.y[idx], l2=l2)
                    ws.append(np.asarray(w))
                    cs.append(float(c))
                refit[l2] = core.group_accuracy(jnp.asarray(ft) @ np.mean(ws, 0) + np.mean(cs), te.y, te.g)
            acc_g, avg, worst = refit[l2]
            o = out[rule]
            o["test_avg"].append(float(avg))
            o["test_worst"].append(float(worst))
            o["test_groups"].append(np.asarray(acc_g))
            o["l2"].append(l2)
    return {rule: {k: np.asarray(val) for k, val in o.items()} for rule, o in out.items()}


def method_summary(test_avg, test_worst, test_groups, **extra) -> dict[str, Any]:
    am, asd = mean_std(np.asarray(test_avg, float))
    wm, wsd = mean_std(np.asarray(test_worst, float))
    g = np.asarray(test_groups, float)
    return {"avg_acc_mean": am, "avg_acc_std": asd, "worst_group_acc_mean": wm, "worst_group_acc_std": wsd,
            "per_group": np.nanmean(g, 0).tolist(), "per_group_std": np.nanstd(g, 0).tolist(),
            "avg_acc": np.asarray(test_avg, float).tolist(), "worst_group_acc": np.asarray(test_worst, float).tolist(),
            **extra}  # fmt: skip


def summarise(cfg, arch, data, cands, seeds, with_dfr: bool = True) -> dict[str, Any]:
    """``methods`` (primary rule) and ``by_rule`` (both rules), plus every candidate's validation scores."""
    by_rule: dict[str, dict[str, Any]] = {}
    dfr_results = None
    if with_dfr and cfg.methods.dfr.enabled:
        erm = next(c for c in cands if c["method"] == "erm")
        dfr_results = dfr(cfg, arch, data, erm["variables"], seeds)
    for rule in RULES:
        block = {}
        for m in METHODS[:-1]:
            mine = [c for c in cands if c["method"] == m]
            if not mine:
                continue
            ev = [evaluate_candidate(c, rule) for c in mine]
            best = int(np.argmax([e["val_score"] for e in ev]))
            e, c = ev[best], mine[best]
            scores = {cc["label"]: round(ee["val_score"], 4) for cc, ee in zip(mine, ev, strict=True)}
            block[m] = method_summary(e["test_avg"], e["test_worst"], e["test_groups"], hyper=c["hyper"],
                                      label=c["label"], epochs_selected=e["epochs"], val_score=e["val_score"],
                                      candidates=scores)  # fmt: skip
        if dfr_results is not None:
            r = dfr_results[rule]
            block["dfr"] = method_summary(r["test_avg"], r["test_worst"], r["test_groups"],
                                          hyper={"l2": r["l2"].tolist(), "n_refits": int(cfg.methods.dfr.n_refits)},
                                          label="DFR (ERM features, last layer on balanced validation)")  # fmt: skip
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
            "method": r["label"],
            "average": format_mean_std(r["avg_acc_mean"], r["avg_acc_std"]),
            "worst group": format_mean_std(r["worst_group_acc_mean"], r["worst_group_acc_std"]),
            **{f"g{k}: {names[k]}": f"{100 * v:.1f}" for k, v in enumerate(r["per_group"])},
            "paper avg / worst (CelebA)": f"{paper[0]:.2f} / {paper[2]:.2f}" if paper else "-",
        })  # fmt: skip
    return rows


def run_worst_group(cfg, run_dir, progress=None) -> dict[str, Any]:
    """The whole experiment (``make worst-group``): training, selection, DFR, summary.json, table, figures."""
    from gs_jax.plotting import worst_group as plots

    t_start = time.perf_counter()
    unknown = set(cfg.methods.enabled) - set(METHODS)
    check(
        not unknown, f"unknown methods {sorted(unknown)} in methods.enabled; choose from {', '.join(METHODS)}"
    )
    data = core.load_data(cfg, progress=progress)
    arch = core.Arch(cfg.net.name, tuple(cfg.net.stage_sizes), int(cfg.net.width), cfg.data.dataset == "celeba",
                     str(cfg.net.pretrained))  # fmt: skip
    seeds = list(range(int(cfg.seeds)))
    check(seeds, "seeds must be >= 1")
    tdata = core.task_data(data)
    enabled = set(cfg.methods.enabled)
    check("erm" in enabled, "methods.enabled must include erm (the baseline, and DFR's feature extractor)")
    summary: dict[str, Any] = {
        "data": data.name, "description": data.description, "group_names": list(data.group_names),
        "group_counts": {s: getattr(data, s).group_counts.tolist() for s in ("train", "val", "test")},
        "seeds": seeds, "selection": "val_worst (primary); val_avg in by_rule", "net": cfg.net.name,
    }  # fmt: skip
    jtt_errors = None
    if "jtt" in enabled:
        t0 = time.perf_counter()
        jtt_errors, summary["jtt_identification"] = jtt_identify(cfg, arch, data, tdata, seeds, progress)
        summary["jtt_identification"]["wall_s"] = round(time.perf_counter() - t0, 1)
    cands = [c for c in candidates(cfg, len(data.train.y), jtt_errors) if c["method"] in enabled]

    def log(record):
        run_dir.log_metrics({"step": record["step"], **{k: float(np.nanmean(v)) for k, v in record.items()
                                                        if k != "step"}})  # fmt: skip

    t0 = time.perf_counter()
    cands = train_candidates(cfg, arch, data, tdata, cands, seeds, progress=progress, on_eval=log)
    summary["train_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    summary["by_rule"] = summarise(cfg, arch, data, cands, seeds, with_dfr="dfr" in enabled)
    summary["dfr_s"] = round(time.perf_counter() - t0, 1)
    summary["methods"] = summary["by_rule"]["val_worst"]
    np.savez(
        run_dir.file("curves.npz"), **{f"{c['label']}|{k}": v for c in cands for k, v in c["curves"].items()}
    )
    summary["wall_s_total"] = round(time.perf_counter() - t_start, 1)
    run_dir.write_summary(summary)

    text = ""
    for rule in RULES:
        title = (f"Table 3 analogue — {data.name}, test accuracy (mean ± std over {len(seeds)} seeds, %), "
                 f"selection {rule}")  # fmt: skip
        text += markdown_table(table_rows(summary, rule), title) + "\n"
    text += f"data: {data.description}\ngroup counts: {summary['group_counts']}\n"
    print(text)
    run_dir.write_text("table.md", text)
    chosen = {m: next(c for c in cands if c["label"] == r["label"]) for m, r in summary["methods"].items()
              if m != "dfr"}  # fmt: skip
    run_dir.save_figure(plots.group_curves({m: c["curves"] for m, c in chosen.items()}, data.group_names,
                                           data.name), "group_curves")  # fmt: skip
    run_dir.save_figure(plots.bars(summary["methods"], PAPER_TABLE3, data.name), "worst_group_bars")
    print(f"[gs-jax] worst-group: {summary['wall_s_total']:.1f} s -> {run_dir.path}", file=sys.stderr)
    return summary
