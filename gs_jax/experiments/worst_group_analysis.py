"""Two analyses beside the worst-group table (``gs_jax.experiments.worst_group``): how starved the dominoes are
as the shortcut's strength ρ grows (the calibration that picks the benchmark's regime), and what SD does to the
features (the starvation monitor of Section 3 on the trained networks).

- :func:`calibrate`: ERM alone on the symmetric dominoes at every ρ of ``calibration.rhos`` (P(digit = label) in
  training), the benchmark's seeds, schedule and selection; per ρ the test average, worst-group and per-group
  accuracy (``make worst-group-calibrate``). The paper's regime is ERM's worst group at 40–55 % (CelebA: 40.35 %).
- :func:`responses`: the top-k features of YΦ₀ (Definition 1) at each seed's initialisation θ₀ on a group-balanced
  probe of training images (``monitor.at_reference``), the digit feature named by its alignment with the
  digit-label agreement y·d and the item feature by its alignment with the item-label agreement, which is +1 for
  every example (the item defines the label), i.e. with the all-ones direction (``monitor.identify(...,
  centred=False)``); then every row's final networks' responses z = UᵀY(ŷ − ŷ₀) to both (Eq. 3-4). Starvation
  (Section 3): a network that fits the training set through the digit leaves the item's response small.
"""

from __future__ import annotations

import copy
from typing import Any

import jax.numpy as jnp
import numpy as np

from gs_jax import algorithms, monitor, posthoc, selection
from gs_jax.data import groups
from gs_jax.errors import check
from gs_jax.experiments import worst_group_train as wg

# ---------------------------------------------------------------------------------------------------------------
# ρ calibration
# ---------------------------------------------------------------------------------------------------------------


def calibrate(cfg, run_dir, progress=None) -> list[dict[str, Any]]:
    """ERM at every ρ of ``cfg.calibration.rhos`` on the symmetric dominoes (and once on the ``celeba`` layout
    when ``calibration.celeba_layout``): one row per setting with the test accuracies at the epochs the primary rule
    selects (``*_mean``, ``*_std``, ``per_group``) and after the last epoch (``final_*``)."""
    check(cfg.data.dataset == "dominoes", "the ρ calibration runs on data.dataset=dominoes")
    rows = []
    erm_block = dict(cfg.methods.get("erm") or {})
    settings = [("symmetric", float(rho)) for rho in cfg.calibration.rhos]
    settings += [("celeba", None)] if cfg.calibration.celeba_layout else []
    for k, (layout, rho) in enumerate(settings):
        dcfg = copy.deepcopy(cfg.data)
        dcfg.layout = layout
        if rho is not None:
            dcfg.rho = rho
        data = groups.load(dcfg, progress=progress)
        ctx = wg.Context(cfg, wg.build_model(cfg), data, data.trainer_data(), data.info(),
                         wg.seed_keys(cfg, int(cfg.seeds)), run_dir, progress)  # fmt: skip
        cand = wg.Candidate("erm", "erm", algorithms.hyper("erm"), f"erm {layout} rho={rho}",
                            schedule=wg.schedule_of(cfg, erm_block))  # fmt: skip
        wg.train_programs(ctx, [cand], {}, prefix=f"calibrate_{k}")
        e = selection.at_selected(cand.curves, wg.RULES[0], data.n_groups)
        final = {key: v[-1] for key, v in cand.curves.items()}
        groups_final = np.stack([final[f"test_g{g}"] for g in range(data.n_groups)], 1)
        s = wg.method_summary(e["test_avg"], e["test_worst"], e["test_groups"])
        rows.append({
            "rho": rho, "layout": layout, "rule": wg.RULES[0], "train_group_counts": data.group_counts()["train"],
            "erm_worst_group_acc_mean": s["worst_group_acc_mean"], "erm_worst_group_acc_std": s["worst_group_acc_std"],
            "erm_avg_acc_mean": s["avg_acc_mean"], "erm_avg_acc_std": s["avg_acc_std"], "per_group": s["per_group"],
            "final_worst_group_acc_mean": float(np.mean(final["test_worst"])),
            "final_avg_acc_mean": float(np.mean(final["test_avg"])),
            "final_per_group": np.nanmean(groups_final, 0).tolist(),
        })  # fmt: skip
    return rows


def in_regime(rows: list[dict[str, Any]], low: float = 0.40, high: float = 0.55) -> list[float]:
    """The calibrated ρ whose ERM worst-group accuracy lies in [low, high] (the paper's regime)."""
    return [
        r["rho"] for r in rows if r["layout"] == "symmetric" and low <= r["erm_worst_group_acc_mean"] <= high
    ]


# ---------------------------------------------------------------------------------------------------------------
# What SD does: the monitor's responses
# ---------------------------------------------------------------------------------------------------------------


def probe_indices(split: groups.Split, n_groups: int, per_group: int, seed: int = 0) -> np.ndarray:
    """A group-balanced probe: ``min(per_group, smallest non-empty group)`` examples of every non-empty group
    (the first ones of a seeded permutation)."""
    rng = np.random.default_rng(seed)
    members = [rng.permutation(np.flatnonzero(split.group == g)) for g in range(n_groups)]
    m = min(per_group, *(len(i) for i in members if len(i)))
    return np.sort(np.concatenate([i[:m] for i in members if len(i)]))


def responses(
    ctx: wg.Context, cands: list[wg.Candidate], variables: list[Any], params0, by_rule
) -> dict[str, Any]:
    """The digit and item features at each seed's θ₀ and every selected trained row's final responses to them.

    The probe: ``responses.per_group`` training images of each group (validation images where a training group is
    empty). Signs: the digit feature is oriented so that its weights correlate positively with the digit-label
    agreement, so z_digit > 0 means the outputs moved toward "the digit gives the label"; the item feature points
    along +1 in Y-space, so z_item > 0 means they moved toward the labels through the item.
    """
    r = ctx.cfg.responses
    d = ctx.data
    counts = d.train.counts(d.n_groups)
    split = d.train if np.all(counts > 0) else d.val
    idx = probe_indices(split, d.n_groups, int(r.per_group), int(ctx.cfg.seed))
    x, y, g = split.x[idx], split.y[idx], split.group[idx]
    y_pm = 2.0 * y - 1.0
    digit_agree = y_pm * (2.0 * (g % 2) - 1.0)  # y·d in ±1 (group = 2·y + d)
    model = ctx.model

    def apply(
        params, xx
    ):  # the module's lax.conv form (the banded-matmul form equals it to float32 rounding,
        # and neural-tangents' structured derivatives need the convolutions)
        return model.module.apply({"params": params}, model.prepare(xx))[:, 0]

    rows = {row: next(c for c in cands if c.label == s["label"]) for row, s in by_rule[wg.RULES[0]].items()
            if "epochs_selected" in s}  # fmt: skip
    out: dict[str, Any] = {"probe": {"split": "train" if split is d.train else "val", "n": int(len(idx)),
                                     "group_counts": np.bincount(g, minlength=d.n_groups).tolist()},
                           "k": int(r.k), "features": [], "rows": {}}  # fmt: skip
    z = {row: {"digit": [], "item": []} for row in rows}
    for s in range(len(ctx.keys)):
        p0 = posthoc.restart(params0, s)
        mon = monitor.at_reference(apply, p0, jnp.asarray(x), y, int(r.k))
        found = monitor.identify(mon, {"digit": digit_agree, "item": np.ones_like(y_pm)}, centred=False)
        sign = {k: float(np.sign(v["corr"]) or 1.0) for k, v in found.items()}
        out["features"].append({k: {**v, "s2": float(v["s"]) ** 2} for k, v in found.items()})
        for row, c in rows.items():
            logits = apply(posthoc.restart(variables[cands.index(c)], s)["params"], jnp.asarray(x))
            zz = np.asarray(monitor.responses(mon, logits))
            for k in ("digit", "item"):
                z[row][k].append(sign[k] * float(zz[found[k]["index"]]))
    for row, v in z.items():
        dz, iz = np.asarray(v["digit"]), np.asarray(v["item"])
        out["rows"][row] = {"label": rows[row].label, "z_digit": dz.tolist(), "z_item": iz.tolist(),
                            "z_digit_mean": float(dz.mean()), "z_digit_std": float(dz.std()),
                            "z_item_mean": float(iz.mean()), "z_item_std": float(iz.std()),
                            "item_share_mean": float(np.mean(iz / (np.abs(iz) + np.abs(dz))))}  # fmt: skip
    return out


__all__ = ["calibrate", "in_regime", "probe_indices", "responses"]
