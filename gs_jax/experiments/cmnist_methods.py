"""Colored MNIST rows that are more than one training run: JTT (its first stage, then the up-weighted second) and
DFR (an ERM network, then its last layer refit on group-balanced features), and the dispatch of every row.

Colored MNIST trains full batch, so JTT's "epoch" is one step: its first stage is ERM for ``identify_epochs``
full-batch steps of the row's schedule (as cheap as that many steps), its error set the training examples that
network gets wrong; the second stage draws ``n`` examples per step with replacement, the error set ``lambda_up``
times as likely (the registry's sampling weights; Liu et al. 2021, Algorithm 1).

DFR (Kirichenko et al. 2023) refits the last layer on group-balanced *held-out* data; the Colored MNIST protocol
(SPEC §2.1) has none (the e = 0.9 environment is the test set), so this is the paper's ``DFR^Tr_Tr`` variant: the
shared driver ``posthoc.dfr_heads`` with the training set as the refit set (the penalty tuned by the worst-group
accuracy on one half of it of a fit on a group-balanced subsample of the other half, then ``n_refits``
group-balanced refits on all of it, averaged), on the ERM row's network. JTT's first stage is the shared
``posthoc.jtt_identify``.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import losses, metrics, posthoc, trainer
from gs_jax.errors import check
from gs_jax.experiments import cmnist_core as cmnist


def check_row(row: cmnist.Row) -> None:
    """Refuse, in one line, a two-stage row the schedule cannot run."""
    for hp in row.settings:
        if row.method == "jtt":
            t = int(hp["identify_epochs"])
            check(
                1 <= t, f"methods.{row.name}.identify_epochs must be ≥ 1 (full-batch steps of ERM), got {t}"
            )
        if row.method == "dfr":
            check(
                hp["penalty"] in ("l1", "l2"),
                f"methods.{row.name}.penalty must be 'l1' or 'l2', got {hp['penalty']!r}",
            )
            check(int(hp["n_refits"]) >= 1, f"methods.{row.name}.n_refits must be ≥ 1, got {hp['n_refits']}")
            check(all(float(c) > 0 for c in np.atleast_1d(hp["c"])), f"methods.{row.name}.c must be > 0")


def run_row(row: cmnist.Row, data, seeds, *, checkpoint_dir, **kw) -> tuple[list[cmnist.CmnistResult], dict]:
    """Train one row: ``(results per setting, extra summary entries)``."""
    if row.method == "jtt":
        return _jtt(row, data, seeds, checkpoint_dir=checkpoint_dir, **kw)
    if row.method == "dfr":
        return _dfr(row, data, seeds, checkpoint_dir=checkpoint_dir, **kw)
    results = cmnist.train_restarts(row.method, data, seeds, settings=row.settings, schedule=row.schedule,
                                    name=row.name, checkpoint_dir=checkpoint_dir, **kw)  # fmt: skip
    return results, {}


# ---------------------------------------------------------------------------------------------------------------
# JTT
# ---------------------------------------------------------------------------------------------------------------


def _jtt(row, data, seeds, *, checkpoint_dir, **kw):
    results, extra = [], {"jtt_identification": []}
    n_train = int(data["x"].shape[1])
    for hp in row.settings:
        t = int(hp["identify_epochs"])
        spec = cmnist.spec_of("erm", [{}], row.schedule, cmnist.data_info(data, 0, row.name), n_train)
        where = None if checkpoint_dir is None else checkpoint_dir.with_name(f"{row.name}_identify_T{t}")
        errors, info = posthoc.jtt_identify(
            spec, data, jnp.stack([jax.random.PRNGKey(s) for s in seeds]), epochs=t, data_per_restart=True,
            saveat=trainer.SaveAt(checkpoint_dir=where, resume=bool(kw.get("resume"))),
            progress=trainer.Progress(kw.get("progress"), f"{row.name}: identification"),
        )  # fmt: skip
        extra["jtt_identification"].append({"identify_steps": t, "error_set_size": info["error_set_size"],
                                            "error_set_groups": info["error_set_per_group"]})  # fmt: skip
        results += cmnist.train_restarts("jtt", data, seeds, settings=[hp], schedule=row.schedule, name=row.name,
                                         checkpoint_dir=checkpoint_dir, error_sets=errors, **kw)  # fmt: skip
    return results, extra


# ---------------------------------------------------------------------------------------------------------------
# DFR
# ---------------------------------------------------------------------------------------------------------------


def _dfr(row, data, seeds, *, checkpoint_dir, **kw):
    base = cmnist.train_restarts("erm", data, seeds, schedule=row.schedule, name=f"{row.name}: ERM network",
                                 checkpoint_dir=checkpoint_dir, **kw)[0]  # fmt: skip
    model = cmnist.model_of(row.schedule)
    feats = jax.jit(jax.vmap(lambda p, x: model.features({"params": p}, x)))
    results, extra = [], {"dfr": []}
    for hp in row.settings:
        chosen, finals = [], {k: [] for k in ("train_acc", "test_acc", "train_nll", "test_nll")}
        four = {env: {"acc": [], "entropy": []} for env in base.four_env}
        for r, seed in enumerate(seeds):
            p = jax.tree_util.tree_map(lambda a, r=r: a[r : r + 1], base.params)
            ftr = np.asarray(feats(p, data["x"][r : r + 1]))[0]
            y, g = data["y"][r], data["group"][r]
            key = jax.random.fold_in(
                jax.random.PRNGKey(int(seed) + 7919), 0
            )  # the worst-group DFR's seed offset
            split = SimpleNamespace(y=y.astype(np.int32), group=g)
            fit = posthoc.dfr_heads({"train": ftr, "val": ftr}, {"val": split}, hp, n_groups=cmnist.N_GROUPS,
                                    key=key, rules=("val_worst",))["val_worst"]  # fmt: skip
            chosen.append(fit["hyper"])

            def logits(x, p=p, head=fit["head"]):
                return jnp.asarray(head(np.asarray(feats(p, x[None]))[0]))

            for name, x_, y_ in (("train", data["x"][r], y), ("test", data["test_x"][r], data["test_y"][r])):
                lg = logits(x_)
                finals[f"{name}_acc"].append(float(losses.mean_accuracy(lg, jnp.asarray(y_))))
                finals[f"{name}_nll"].append(float(losses.mean_nll(lg, jnp.asarray(y_))))
            for i, env in enumerate(four):
                lg = logits(data["four_x"][r, i])
                four[env]["acc"].append(float(losses.mean_accuracy(lg, jnp.asarray(data["four_y"][r, i]))))
                four[env]["entropy"].append(float(jnp.mean(metrics.binary_entropy_from_logits(lg))))
        final = {"step": base.final["step"], **{k: np.asarray(v) for k, v in finals.items()}}
        four_env = {env: {k: np.asarray(v) for k, v in d.items()} for env, d in four.items()}
        results.append(base._replace(final=final, four_env=four_env))
        extra["dfr"].append({"protocol": "DFR^Tr_Tr (no validation split): the penalty by worst-group accuracy on "
                                         "half of the training set", "chosen": chosen,
                             "erm_network_test_acc": [float(v) for v in base.final["test_acc"]]})  # fmt: skip
    return results, extra


__all__ = ["check_row", "run_row"]
