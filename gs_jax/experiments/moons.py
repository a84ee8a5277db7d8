"""Two-moons (Section 2, Fig. 1 (a-d), Appendix B; SPEC §1): every seed of a case as one vmapped program on the
generic trainer, the per-seed quantities (margin, reliance on each axis), the NTK-feature responses of Fig. 1(d),
the table and the figures.

Data flow: ``configs/moons.py`` → :func:`run_moons` → ``gs_jax.data.moons`` (one data set per seed) →
:func:`make_task` (network, SD-regularised CE, torch SGD/Adam with injected lr and weight decay) →
``gs_jax.trainer.train`` (recording the pre-update training logits) → :func:`moons_quantities`,
:func:`moons_responses` → summary, table, figures. The linearised-vs-real study is ``gs_jax.experiments.moons_linear``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import algorithms, features, metrics, models, ntk, optim, runs, trainer
from gs_jax.data import moons as moons_data
from gs_jax.errors import check
from gs_jax.metrics import best_margin_bound, boundary_points, linear_svm_margin, signed_boundary_distances
from gs_jax.plotting import moons as moons_plots
from gs_jax.reporting import markdown_table, mean_std_str


@dataclasses.dataclass(frozen=True)
class MoonsArch:
    """Static structure of a two-moons run (one compiled program per distinct value)."""

    hidden: int = 500
    n_hidden: int = 1
    dropout: float = 0.0
    batchnorm: bool = False
    optimizer: str = (
        "sgd"  # "sgd": torch SGD, momentum 0.9 (= optax.sgd(lr, 0.9)); "adam": torch Adam defaults
    )
    linearized: bool = (
        False  # train ŷ_lin(θ) = ŷ(θ₀) + Φ₀(θ − θ₀) instead of the network (gs_jax.ntk.linearize)
    )


class MoonsHyper(NamedTuple):
    """Traced hyper-parameters (float32 scalars)."""

    lr: Any
    weight_decay: Any  # torch coupled L2: g += wd·θ before the optimiser, on ALL parameters (biases included)
    sd_coef: Any  # loss = mean CE + sd_coef · mean(ŷ²) (the authors' form of Eq. 17)


@functools.cache
def make_task(arch: MoonsArch) -> trainer.Task:
    """The trainer's task for one architecture (cached: every case with the same ``arch`` shares one compiled
    program; the learning rate and weight decay live in the optimiser state, the SD coefficient in the
    algorithm state).

    Loss: mean CE + sd_coef · mean(ŷ²) (the registry's ``sd``, the authors' form of Eq. 17); the recorded
    ``out`` of a step is its training logits and loss, from the forward pass BEFORE that step's update (as the
    authors' Fig. 1(d) code).
    """
    model = models.MoonsMLP(
        hidden=arch.hidden, n_hidden=arch.n_hidden, dropout=arch.dropout, batchnorm=arch.batchnorm
    )
    check(
        not arch.linearized or (arch.dropout == 0 and not arch.batchnorm),
        "the linearised trainer supports plain MLPs only (dropout=0, batchnorm=False)",
    )

    def init(key, data):
        variables = model.init(key, data["x"][:1])
        params = variables["params"]
        model_state = {"batch_stats": variables["batch_stats"]} if arch.batchnorm else {}
        if arch.linearized:
            model_state["params0"] = params  # ŷ_lin is taken around θ₀
        return params, model_state

    sd = algorithms.get("sd")

    def loss(params, model_state, algo_state, batch, step, key):
        logits, model_state = _forward(model, arch, params, model_state, batch["x"], True, key)
        hp = {"lam": algo_state["sd_coef"], "lam_warmup": algo_state["sd_coef"], "anneal_iters": 0}
        value, _, _ = sd.loss(hp, {}, step, logits, batch, params)
        return value, (model_state, algo_state, (logits, value))

    optimizer = optim.injected(arch.optimizer)
    return trainer.Task(init=init, loss=loss, optimizer=optimizer, algo_state={"sd_coef": jnp.float32(0.0)})


def _forward(model, arch: MoonsArch, params, model_state, x, train: bool, key):
    """Logits (and the updated model state) of the network, or of its linearisation around θ₀."""
    if arch.linearized:
        f_lin = ntk.linearize(lambda p, xx: model.apply({"params": p}, xx), model_state["params0"])
        return f_lin(params, x), model_state
    variables = {"params": params}
    if arch.batchnorm:
        variables["batch_stats"] = model_state["batch_stats"]
    rngs = {"dropout": key} if (train and arch.dropout > 0) else {}
    if arch.batchnorm and train:
        out, new = model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
        return out, {**model_state, "batch_stats": new["batch_stats"]}
    return model.apply(variables, x, train=train, rngs=rngs), model_state


def apply_functions(arch: MoonsArch):
    """``(apply_eval, apply_fn)``: ``apply_eval(params, model_state, x)`` in eval mode (no dropout, running BN
    statistics; the linearised model when ``arch.linearized``) and ``apply_fn(params, x)``, the plain network
    (for the NTK)."""
    model = models.MoonsMLP(
        hidden=arch.hidden, n_hidden=arch.n_hidden, dropout=arch.dropout, batchnorm=arch.batchnorm
    )

    def apply_eval(params, model_state, x):
        return _forward(model, arch, params, model_state, x, False, None)[0]

    def apply_fn(params, x):
        return model.apply({"params": params}, x)

    return apply_eval, apply_fn


@dataclasses.dataclass(frozen=True)
class MoonsResult:
    """One case trained over S seeds (numpy, leading axis = seed)."""

    state: trainer.TrainState  # final state (params, model_state = batch statistics / θ₀, ...)
    params0: Any  # initial parameters
    logits_stn: (
        np.ndarray
    )  # recorded training logits, (S, T, n) at ``record_steps`` (pre-update forward passes)
    loss_st: np.ndarray  # (S, T) training loss at ``record_steps``
    record_steps: np.ndarray  # (T,)


def train_moons(
    arch: MoonsArch,
    hyper: MoonsHyper,
    x_sn2: np.ndarray,
    y_sn: np.ndarray,
    keys_s: jax.Array,
    steps: int,
    *,
    record_every: int = 10,
    chunk_steps: int = 10_000,
    progress: Callable | None = None,
    desc: str = "",
    checkpoint_dir=None,
    resume: bool = False,
) -> MoonsResult:
    """Train one case for ``steps`` full-batch steps on every seed at once (``vmap`` over seeds, ``lax.scan``).

    Steps run in compiled chunks of ``chunk_steps`` (the 100,000-step "longer" case reuses the 10,000-step
    program). ``record_every`` steps the pre-update training logits are kept (for the z-curves of Fig. 1(d)).
    ``checkpoint_dir``/``resume``: the trainer's checkpoints (``--resume`` continues a case where it stopped).
    """
    check(
        steps >= 1 and record_every >= 1, f"steps and record_every must be ≥ 1, got {steps}, {record_every}"
    )
    chunk = min(chunk_steps, steps)
    check(
        steps % chunk == 0 and chunk % record_every == 0,
        f"steps ({steps}) must be a multiple of chunk_steps ({chunk}), itself a multiple of record_every "
        f"({record_every})",
    )
    n_seeds = int(np.shape(x_sn2)[0])
    data = {"x": np.asarray(x_sn2, np.float32), "y": np.asarray(y_sn, np.float32)}
    result = trainer.train(
        make_task(arch),
        data,
        keys_s,
        steps=steps,
        init=trainer.Init(
            algo_state={"sd_coef": np.full(n_seeds, hyper.sd_coef, np.float32)},
            opt_hyperparams={"lr": hyper.lr, "weight_decay": hyper.weight_decay},
        ),
        saveat=trainer.SaveAt(record_every=record_every, checkpoint_dir=checkpoint_dir, resume=resume),
        progress=trainer.Progress(progress, desc),
        layout=trainer.Layout(
            restart_block=trainer.auto_restart_block(np.shape(x_sn2)[1] * arch.hidden * arch.n_hidden * 4),
            max_chunk=chunk,
        ),
    )
    logits, loss = result.records
    return MoonsResult(result.state, result.params0, logits, loss, result.record_steps)


def moons_case(block) -> tuple[MoonsArch, MoonsHyper]:
    """The static architecture and traced hyper-parameters of one config case block (configs/moons.py)."""
    arch = MoonsArch(
        hidden=int(block.hidden),
        n_hidden=int(block.n_hidden),
        dropout=float(block.dropout),
        batchnorm=bool(block.batchnorm),
        optimizer=str(block.optimizer),
    )
    return arch, MoonsHyper(float(block.lr), float(block.weight_decay), float(block.sd_coef))


def moons_keys(root_seed: int, case: str, seeds) -> jax.Array:
    """One PRNG key per (case, seed): ``fold_in(fold_in(PRNGKey(root), crc32(case)), seed)`` (SPEC §1.2: the torch
    streams cannot be matched; every experiment of every seed gets its own initialisation)."""
    base = jax.random.fold_in(jax.random.PRNGKey(root_seed), zlib.crc32(case.encode()) & 0x7FFFFFFF)
    return jnp.stack([jax.random.fold_in(base, int(s)) for s in seeds])


def _moons_chunk(arch: MoonsArch, n_seeds: int) -> int:
    """Grid points per evaluation chunk: about 2²² hidden activations (16 MiB) per chunk over all seeds."""
    return max(256, 2**22 // max(arch.hidden, 1) // max(n_seeds, 1))


@functools.cache
def moons_eval_fn(arch: MoonsArch, points_per_chunk: int = 4096):
    """``f(state, params0, x_sn2) -> logits (S, N)`` in eval mode, jitted, over any number of points per seed
    (evaluated in chunks with ``lax.map`` so a 5,000-wide net on a fine grid fits in memory)."""
    apply_eval, _ = apply_functions(arch)

    def one(params, model_state, x_n2):
        n = x_n2.shape[0]
        c = min(points_per_chunk, n)
        pad = (-n) % c
        xp = jnp.concatenate([x_n2, jnp.zeros((pad, 2), x_n2.dtype)]).reshape(-1, c, 2)
        out = jax.lax.map(lambda xc: apply_eval(params, model_state, xc), xp)
        return out.reshape(-1)[:n]

    f = jax.jit(jax.vmap(one))
    return lambda state, params0, x: f(state.params, state.model_state, jnp.asarray(x, jnp.float32))


@functools.cache
def moons_input_grad_fn(arch: MoonsArch):
    """``g(state, params0, x_sn2) -> ∂ŷ_i/∂x_i (S, n, 2)`` in eval mode (each logit depends on its own input only)."""
    apply_eval, _ = apply_functions(arch)

    def one(params, model_state, x_n2):
        return jax.grad(lambda x: jnp.sum(apply_eval(params, model_state, x)))(x_n2)

    f = jax.jit(jax.vmap(one))
    return lambda state, params0, x: f(state.params, state.model_state, jnp.asarray(x, jnp.float32))


def moons_quantities(arch: MoonsArch, result: MoonsResult, x_sn2, y_sn, *, margin_n: int, margin_lim: float):
    """Per-seed quantities of a trained case (numpy arrays of shape (S,)), all in eval mode.

    - ``margin``: input-space margin, min over training points of the signed distance to the decision boundary
      ŷ = 0 (negative if a point is misclassified), the boundary found on a ``margin_n``² grid over
      [−lim, lim]² with linear interpolation of the zero crossings along grid edges (error ≲ the grid step);
    - ``vertical_dependence`` / ``horizontal_dependence``: mean over the data of |∂ŷ/∂x₂| / |∂ŷ/∂x₁| (x₂ = the
      vertical axis, the moon coordinate; x₁ = the horizontal, linearly separating one), ``vertical_share`` =
      V / (H + V) (scale-free);
    - ``acc_x2_mean``: training accuracy when x₂ is replaced by its mean over the data;
    - ``train_loss`` (mean CE, without penalties) and ``train_acc``;
    - ``margin_bound``: the best achievable margin on that seed's data, half the smallest distance between two
      training points of different classes (:func:`gs_jax.metrics.best_margin_bound`; no classifier that is right
      on every training point does better), and ``margin_rel`` = ``margin`` / ``margin_bound`` (≤ 1);
    - ``svm_margin``: the geometric margin of the hard-margin linear SVM on the same data
      (:func:`gs_jax.metrics.linear_svm_margin`; negative when the data are not linearly separable).
      A network whose margin is close to the linear one leans on the linear (horizontal) direction only — the
      starvation signature of Fig. 1(b).
    """
    evaluate = moons_eval_fn(arch, _moons_chunk(arch, x_sn2.shape[0]))
    grad = moons_input_grad_fn(arch)
    state, p0 = result.state, result.params0
    x = np.asarray(x_sn2, np.float32)
    y = np.asarray(y_sn, np.float32)
    logits = np.asarray(evaluate(state, p0, x), np.float64)
    correct = (logits > 0) == (y > 0.5)
    x_flat = x.copy()
    x_flat[:, :, 1] = x[:, :, 1].mean(axis=1, keepdims=True)
    logits_flat = np.asarray(evaluate(state, p0, x_flat))
    g = np.abs(np.asarray(grad(state, p0, x), np.float64))
    axis = np.linspace(-margin_lim, margin_lim, margin_n, dtype=np.float32)
    ga, gb = np.meshgrid(axis, axis, indexing="ij")
    grid = np.stack([ga.ravel(), gb.ravel()], 1)
    f_grid = np.asarray(evaluate(state, p0, np.broadcast_to(grid, (x.shape[0], *grid.shape))))
    margins = np.array(
        [
            signed_boundary_distances(
                boundary_points(f_grid[s].reshape(margin_n, margin_n), axis),
                x[s].astype(np.float64),
                correct[s],
            ).min()
            for s in range(x.shape[0])
        ]
    )
    v, h = g[:, :, 1].mean(axis=1), g[:, :, 0].mean(axis=1)
    ce = np.mean(np.logaddexp(0.0, logits) - y * logits, axis=1)
    x64 = np.asarray(x_sn2, np.float64)
    bound = np.array([best_margin_bound(x64[s], y[s]) for s in range(x.shape[0])])
    svm = np.array([linear_svm_margin(x64[s], y[s]) for s in range(x.shape[0])])
    return {
        "margin": margins,
        "margin_bound": bound,
        "margin_rel": margins / bound,
        "svm_margin": svm,
        "vertical_dependence": v,
        "horizontal_dependence": h,
        "vertical_share": v / (v + h),
        "acc_x2_mean": np.mean((logits_flat > 0) == (y > 0.5), axis=1),
        "train_loss": ce,
        "train_acc": correct.mean(axis=1),
    }


def moons_init_features(arch: MoonsArch, params0, x_sn2, y_sn) -> list:
    """Definition 1 at initialisation for every seed: ``gs_jax.features.from_ntrf(gs_jax.ntk.ntrf(...), y)``."""
    _, apply_fn = apply_functions(dataclasses.replace(arch, linearized=False))
    out = []
    for s in range(np.asarray(x_sn2).shape[0]):
        p = jax.tree_util.tree_map(lambda a, s=s: jnp.asarray(a[s]), params0)
        phi = ntk.ntrf(apply_fn, p, jnp.asarray(x_sn2[s]))
        out.append(features.from_ntrf(phi, np.asarray(y_sn[s])))
    return out


Z_FORMS = {
    "raw": "|UᵀYŷ| (raw logits, as the authors' moon_fig_2.py)",
    "centred": "|UᵀY(ŷ − ŷ₀)| (centred at initialisation, Eq. 3-4)",
}


def moons_responses(
    feats: list, y_sn, logits_stn, *, indices=(1, 6), top_aligned: int = 2, centred: bool = False
) -> dict[str, Any]:
    """Fig. 1(d): |z| = |UᵀYŷ| (Eq. 4) along training for the initial network's NTK features, per seed.

    ``centred=False`` (the default, the authors' form) uses the raw logits ŷ; ``centred=True`` uses ŷ − ŷ₀, the
    change since initialisation, which is what Eq. 3-4 describe (the network is linearised around θ₀, so
    ``z = UᵀY(ŷ − ŷ₀) = SVᵀ(θ − θ₀)``); ŷ₀ is the first record, the pre-update forward pass at step 0
    (``logits_stn[:, 0]``), so with ``centred=True`` every curve starts at exactly 0. :data:`Z_FORMS` labels both.

    ``authors``: the directions with 0-based indices ``indices`` (the authors' choice, SPEC §1.4);
    ``aligned``: per seed, the ``top_aligned`` directions carrying the largest share (1ᵀu_k)²/n of the labels
    (first = most aligned). Returns ``{"authors": (S, T, len(indices)), "aligned": (S, T, top_aligned),
    "aligned_index": (S, top_aligned), "strength_authors": (S, k), "strength_aligned": (S, k)}``.
    """
    auth, ali, ali_idx, s_auth, s_ali = [], [], [], [], []
    logits_stn = np.asarray(logits_stn)
    if centred:
        logits_stn = logits_stn - logits_stn[:, :1]
    for s, f in enumerate(feats):
        z = np.abs(np.asarray(features.responses(f, np.asarray(y_sn[s]), jnp.asarray(logits_stn[s]))))
        share = np.asarray(features.label_alignment(f).energy)
        order = np.argsort(-share)[:top_aligned]
        auth.append(z[:, list(indices)])
        ali.append(z[:, order])
        ali_idx.append(order)
        sv = np.asarray(f.s)
        s_auth.append(sv[list(indices)])
        s_ali.append(sv[order])
    return {
        "authors": np.stack(auth),
        "aligned": np.stack(ali),
        "aligned_index": np.stack(ali_idx),
        "strength_authors": np.stack(s_auth),
        "strength_aligned": np.stack(s_ali),
    }


def _mean_std(v) -> tuple[float | None, float | None]:
    """``metrics.mean_std`` (finite values, population std) with None instead of NaN when nothing is finite."""
    m, s = metrics.mean_std(v)
    return (None, None) if np.isnan(m) else (m, s)


def train_moons_case(
    cfg,
    name: str,
    *,
    seeds=None,
    hidden: int | None = None,
    linearized: bool = False,
    max_steps: int = 0,
    progress: Callable | None = None,
    run_dir=None,
):
    """Data + training of one config case over its seeds: ``(arch, x_sn2, y_sn, MoonsResult, steps)``; with
    ``run_dir``, checkpoints under ``checkpoints/<case>[_h<width>][_lin]`` (continued when the run was resumed)."""
    check(name in cfg.cases, f"unknown moons case {name!r}; choose from {', '.join(cfg.cases.keys())}")
    block = cfg.cases[name]
    arch, hyper = moons_case(block)
    arch = dataclasses.replace(arch, hidden=hidden or arch.hidden, linearized=linearized)
    if seeds is None:
        n_seeds = int(block.get("seeds", 0)) or cfg.seeds  # a case may use fewer seeds (costly variants)
        seeds = list(range(cfg.first_seed, cfg.first_seed + n_seeds))
    x, y = moons_data.stack_seeds(seeds, block.delta, block.rotation)
    tag = name + (f"_h{hidden}" if hidden else "") + ("_lin" if linearized else "")
    cap = max_steps or cfg.max_steps
    steps = min(int(block.steps), cap) if cap > 0 else int(block.steps)
    result = train_moons(
        arch,
        hyper,
        x,
        y,
        moons_keys(cfg.key_seed, name, seeds),
        steps,
        record_every=cfg.record_every,
        chunk_steps=cfg.chunk_steps,
        progress=progress,
        desc=name + (" (linearised)" if linearized else ""),
        checkpoint_dir=None if run_dir is None else run_dir.file("checkpoints") / tag,
        resume=run_dir is not None and run_dir.resumed,
    )
    return arch, x, y, result, steps


MOONS_TABLE_COLUMNS = (
    "case",
    "margin",
    "margin / bound",
    "bound",
    "linear SVM margin",
    "vertical |∂ŷ/∂x₂|",
    "vertical share",
    "acc (x₂ := mean)",
    "train loss",
    "train acc",
    "steps",
    "seeds",
    "wall s",
)


def moons_table_row(name: str, c: dict[str, Any]) -> dict[str, str]:
    def pm(key, fmt="{:.3f}"):
        return mean_std_str(c.get(f"{key}_mean"), c.get(f"{key}_std"), fmt)

    return {
        "case": name,
        "margin": pm("margin"),
        "margin / bound": pm("margin_rel", "{:.2f}"),
        "bound": pm("margin_bound"),
        "linear SVM margin": pm("svm_margin"),
        "vertical |∂ŷ/∂x₂|": pm("vertical_dependence"),
        "vertical share": pm("vertical_share", "{:.2f}"),
        "acc (x₂ := mean)": pm("acc_x2_mean", "{:.3f}"),
        "train loss": pm("train_loss", "{:.4f}"),
        "train acc": pm("train_acc"),
        "steps": str(c["steps"]),
        "seeds": str(c.get("n_seeds", "")),
        "wall s": f"{c['wall_s']:.1f}",
    }


def run_moons(cfg, run_dir, *, linear_study: Callable | None = None) -> dict[str, Any]:
    """``make moons``: train every case of ``cfg.run`` (seeds vmapped), measure it, draw Fig. 1 and the App. B grid.

    Writes ``summary.json`` (``cases.<name>``: ``margin_mean/std``, ``margin_rel_mean/std`` (margin / best
    achievable), ``margin_bound_mean/std`` (that bound), ``svm_margin_mean/std`` (linear hard-margin SVM),
    ``vertical_dependence_mean/std``, ``train_acc_mean/std``, ... and per-seed lists; ``fig1d``: final |z| per
    case; ``fig1d_responses``: which z the figure shows, raw or centred), ``table.md``,
    ``metrics.jsonl`` (one record per case and seed), ``fig1.{png,pdf}`` (a-d), ``appendix_b.{png,pdf}``,
    ``fig1d_z.npz`` (the z-curves) and, with ``linear.enabled``, the linearised-vs-real study
    (``linear.md``, ``linear_vs_real.{png,pdf}``, ``summary.json: linear``).
    """
    check(cfg.seeds >= 1, f"seeds must be ≥ 1, got {cfg.seeds}")
    for name in cfg.run:
        check(name in cfg.cases, f"unknown case {name!r} in run; choose from {', '.join(cfg.cases.keys())}")
    t_start = time.perf_counter()
    seeds = list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))
    axis, grid = moons_data.eval_grid(cfg.grid_n, cfg.grid_lim)
    summary: dict[str, Any] = {
        "seeds": seeds,
        "cases": {},
        "fig1d": {},
        "margin_method": (
            f"min over training points of the signed distance (negative if misclassified) to the zero level of ŷ, "
            f"located on a {cfg.margin_grid_n}² grid over [−{cfg.margin_grid_lim}, {cfg.margin_grid_lim}]² by linear "
            f"interpolation along grid edges (step {2 * cfg.margin_grid_lim / (cfg.margin_grid_n - 1):.4f}); "
            "margin_rel = margin / margin_bound, margin_bound = half the smallest inter-class distance of that "
            "seed's data (the best any classifier right on every training point can do); svm_margin = the "
            "hard-margin linear SVM's margin on the same data (negative: not linearly separable)"
        ),
        "fig1d_responses": Z_FORMS["centred" if cfg.get("z_centred", False) else "raw"],
    }
    heat, data0, z_curves = {}, {}, {}
    for name in cfg.run:
        t0 = time.perf_counter()
        arch, x, y, result, steps = train_moons_case(cfg, name, progress=runs.progress, run_dir=run_dir)
        case_seeds = seeds[: x.shape[0]]
        q = moons_quantities(arch, result, x, y, margin_n=cfg.margin_grid_n, margin_lim=cfg.margin_grid_lim)
        f_grid = moons_eval_fn(arch, _moons_chunk(arch, len(case_seeds)))(
            result.state, result.params0, np.broadcast_to(grid, (len(case_seeds), *grid.shape))
        )
        heat[name] = (
            np.asarray(f_grid).mean(axis=0).reshape(cfg.grid_n, cfg.grid_n)
        )  # logits averaged (SPEC §1.2)
        data0[name] = (x[0], y[0])
        block = cfg.cases[name]
        case = {k: block[k] for k in block.keys()}
        case["steps"] = steps
        case["n_seeds"] = len(case_seeds)
        for key, v in q.items():
            case[f"{key}_mean"], case[f"{key}_std"] = _mean_std(v)
            case[f"{key}_per_seed"] = [float(a) for a in v]
        case["final_loss_with_penalty_mean"] = float(np.mean(result.loss_st[:, -1]))
        case["finite_seeds"] = int(np.sum(np.isfinite(result.loss_st[:, -1])))
        if name in cfg.fig1 and arch.n_hidden == 1 and not arch.batchnorm:
            feats = moons_init_features(arch, result.params0, x, y)
            z = moons_responses(
                feats,
                y,
                result.logits_stn,
                indices=tuple(cfg.z_indices),
                top_aligned=cfg.top_aligned,
                centred=bool(cfg.get("z_centred", False)),
            )
            z_curves[name] = {"steps": result.record_steps, **z}
            summary["fig1d"][name] = {
                "indices": list(cfg.z_indices),
                "z_authors_final_mean": z["authors"][:, -1].mean(axis=0),
                "z_authors_max_mean": z["authors"].max(axis=1).mean(axis=0),
                "strength_authors_mean": z["strength_authors"].mean(axis=0),
                "z_aligned_final_mean": z["aligned"][:, -1].mean(axis=0),
                "z_aligned_max_mean": z["aligned"].max(axis=1).mean(axis=0),
                "aligned_index_per_seed": z["aligned_index"],
                "strength_aligned_mean": z["strength_aligned"].mean(axis=0),
            }
        case["wall_s"] = round(time.perf_counter() - t0, 2)
        summary["cases"][name] = case
        np.savez(run_dir.file("heatmaps.npz"), axis=axis, **heat)
        for s, seed in enumerate(case_seeds):
            run_dir.log_metrics({"case": name, "seed": seed, **{k: float(v[s]) for k, v in q.items()}})
        run_dir.write_summary(summary)
    if cfg.run:
        rows = [moons_table_row(n, summary["cases"][n]) for n in cfg.run]
        table = markdown_table(rows, "Two-moons, mean ± std over seeds (eval mode)")
        print(table)
        run_dir.write_text("table.md", table)
        if z_curves:
            np.savez(
                run_dir.file("fig1d_z.npz"),
                **{f"{n}__{k}": v for n, d in z_curves.items() for k, v in d.items()},
            )
        fig1 = [n for n in cfg.fig1 if n in heat]
        if fig1:
            titles = {n: cfg.cases[n].title for n in fig1}
            fig = moons_plots.fig1(
                axis,
                {n: heat[n] for n in fig1},
                {n: data0[n] for n in fig1},
                z_curves,
                titles,
                centred=bool(cfg.get("z_centred", False)),
            )
            run_dir.save_figure(fig, "fig1")
        grid_cases = [n for n in cfg.appendix_b if n in heat]
        if grid_cases:
            titles = {n: cfg.cases[n].title for n in grid_cases}
            fig = moons_plots.appendix_b_grid(
                axis, {n: heat[n] for n in grid_cases}, {n: data0[n] for n in grid_cases}, titles
            )
            run_dir.save_figure(fig, "appendix_b")
    if cfg.linear.enabled:
        check(
            linear_study is not None, "linear.enabled needs the linearised study (train/moons.py passes it)"
        )
        summary["linear"] = linear_study(cfg, run_dir)
    summary["wall_s_total"] = round(time.perf_counter() - t_start, 1)
    run_dir.write_summary(summary)
    ran = [f"{len(cfg.run)} cases"] if cfg.run else []
    ran += ["the linearised-vs-real study"] if cfg.linear.enabled else []
    print(
        f"[gs-jax] moons: {' and '.join(ran) or 'nothing (empty run list)'} in {summary['wall_s_total']:.1f} s "
        f"-> {run_dir.path}",
        file=sys.stderr,
    )
    return summary
