"""The method registry every benchmark uses: name → :class:`Algorithm`, a record of pure functions with its own state.

A method sees a **batch**, never a benchmark::

    loss, aux, state = algorithm.loss(hp, state, step, logits, batch, params)

- ``logits``: ``(n,)`` for a binary task (one logit), ``(n, k)`` for k classes (see ``gs_jax.losses``);
- ``batch``: a dict with ``y`` and, where the data set has them, ``group`` (ints ``0..G−1``; for a binary task with
  a spurious attribute a, ``group = 2·y + a``) and ``env`` (ints ``0..E−1``), plus ``idx`` (the training-set
  indices of the batch);
- ``hp``: the method's hyper-parameters (a dict: numbers may be traced — runs that differ only in them share one
  compiled program —, strings are static); ``step``: the optimisation step; ``params``: the trained parameters
  (for weight norms); ``state``: the method's own state (``init_state(hp, info)``; ``{}`` when stateless);
- ``aux``: ``{"nll", "penalty"}`` scalars to log.

``hp`` also carries the data set's static sizes ``_n_groups`` and ``_n_envs`` (:func:`bind`), which the segment
means need as Python ints.

Model, optimiser and schedule belong to the experiment's config, not here. A method that needs what a data set
lacks (IRM without environments, Group DRO without groups) is refused up front by :func:`check_supported`.
Post-hoc methods (DFR, the threshold shift) have no loss: a benchmark runs them on a trained network's features or
logits (``gs_jax.posthoc``); JTT's first stage
(``driver = "jtt_identify"``) is run by the benchmark before its second, whose up-weighted error set reaches the
sampler through :attr:`Algorithm.sampling`.

Adding a method = its record here, its config entry, its test (README, "Add a method").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import group_methods, losses
from gs_jax.errors import GsJaxError, check

NEEDS = ("group", "env", "binary")


class DataInfo(NamedTuple):
    """What a training set provides, as the registry sees it (static under jit)."""

    n_outputs: int  # 1: binary task with one logit; k: k-class softmax
    n_groups: int = 0  # 0: no group labels
    n_envs: int = 0  # 0: no environment labels
    class_counts: tuple = ()  # training examples per class (2 entries for a binary task)
    group_counts: tuple = ()  # training examples per group
    name: str = ""  # the data set's name, for messages

    @property
    def n_classes(self) -> int:
        return 2 if self.n_outputs == 1 else self.n_outputs

    def provides(self) -> set[str]:
        return {k for k, ok in (("group", self.n_groups), ("env", self.n_envs), ("binary", self.n_outputs == 1))
                if ok}  # fmt: skip


class Algorithm(NamedTuple):
    """A training method: pure functions and the defaults of its hyper-parameters."""

    name: str
    defaults: Mapping[
        str, Any
    ]  # every hyper-parameter; numbers (or tuples of numbers) are traced, strings static
    loss: Callable | None = (
        None  # (hp, state, step, logits, batch, params) -> (loss, aux, state); None: post-hoc
    )
    init_state: Callable = lambda hp, info: {}  # (hp, info) -> the method's state
    needs: Callable = lambda hp: ()  # (hp) -> what the data must provide, a subset of NEEDS
    sampling: Callable | None = (
        None  # (hp, info, inputs) -> per-example sampling weights (n,), or None (uniform)
    )
    driver: str = ""  # a first stage the benchmark runs before training ("jtt_identify")
    posthoc: bool = False  # fitted after training on a trained net's features (DFR); no loss
    summary: str = ""


def _aux(nll, penalty=0.0) -> dict[str, jax.Array]:
    return {"nll": nll, "penalty": jnp.asarray(penalty, jnp.result_type(nll))}


def _annealed(hp, step, base, penalty):
    """The IRM/V-REx schedule: pw = 1 before the anneal step, the penalty weight after; loss /= pw when pw > 1."""
    pw = jnp.where(step >= hp["anneal_iters"], hp["penalty_weight"], 1.0)
    loss = base + pw * penalty
    return jnp.where(pw > 1.0, loss / pw, loss)


# --------------------------------------------------------------------------------------------------------------
# The records
# --------------------------------------------------------------------------------------------------------------


def erm_loss(hp, state, step, logits, batch, params):
    """ERM: mean cross-entropy, plus l2·Σ‖p‖² (the IRM code's grayscale oracle recipe; 0 by default)."""
    nll = losses.mean_nll(logits, batch["y"])
    return nll + hp["l2"] * losses.weight_norm(params), _aux(nll), state


def sd_loss(hp, state, step, logits, batch, params):
    """Spectral Decoupling, Eq. 17 in the authors' mean form: CE + λ·mean(ŷ²) (over examples and classes).

    λ = ``lam_warmup`` before step ``anneal_iters`` and ``lam`` from it (anneal 0: λ throughout). The Table 1 code
    (``SD · logits.pow(2).mean()``), the two-moons code (``sd_coef · mean(ŷ²)``) and DomainBed's SD are this form;
    the Fig. 2 code's per-example ``c·Σ_c ŷ_c²`` is λ = k·c.
    """
    nll = losses.mean_nll(logits, batch["y"])
    pen = losses.sd_penalty(logits)
    lam = jnp.where(step < hp["anneal_iters"], hp["lam_warmup"], hp["lam"])
    return losses.sd_regularised(nll, pen, lam), _aux(nll, pen), state


def sd_rescaled_loss(hp, state, step, logits, batch, params):
    """SD as the authors' Colored MNIST code runs it (``cmnist.py``, SPEC §2.4): ``nll + c·mean(ŷ²)`` before step
    ``anneal_iters``, then ``c·(mean(ŷ²) + nll)``: the relative SD weight jumps from c to 1 and the whole loss is
    scaled by c, with the same Adam state carried across — not scale-neutral under Adam (SPEC §2.4, §2.8)."""
    nll = losses.mean_nll(logits, batch["y"])
    pen = losses.sd_penalty(logits)
    c = hp["coef"]
    loss = jnp.where(step < hp["anneal_iters"], losses.sd_regularised(nll, pen, c), c * (pen + nll))
    return loss, _aux(nll, pen), state


def sd_class_loss(hp, state, step, logits, batch, params):
    """Per-class SD as the paper writes it (§4.4, Eq. 17 per class, with the ½; ``losses.sd_class_penalty``):
    mean CE + (1/n) Σ_c λ_c/2 ‖ŷ_c − γ_c‖². One logit; ``lam``, ``gamma`` indexed by the label."""
    nll = losses.mean_nll(logits, batch["y"])
    pen = losses.sd_class_penalty(logits, batch["y"], hp["lam"], hp["gamma"])
    return nll + pen, _aux(nll, pen), state


def sd_spw3_loss(hp, state, step, logits, batch, params):
    """Per-class SD as the authors' CelebA code runs it (``--mode spw3``, no ½, per-class means;
    ``losses.sd_spw3_penalty``): mean CE + Σ_c λ_c · mean_{y=c}(ŷ − γ_c)². One logit."""
    nll = losses.mean_nll(logits, batch["y"])
    pen = losses.sd_spw3_penalty(logits, batch["y"], hp["lam"], hp["gamma"])
    return nll + pen, _aux(nll, pen), state


def irm_loss(hp, state, step, logits, batch, params):
    """IRMv1 (Arjovsky et al.; the authors' copy of the reference code): mean over environments of the env risk,
    + l2·Σ‖p‖² + pw·mean env penalty, annealed (pw = 1 before ``anneal_iters``; loss /= pw once pw > 1)."""
    n_envs = hp["_n_envs"]
    risks, _ = losses.segment_means(losses.per_example_nll(logits, batch["y"]), batch["env"], n_envs)
    pens = losses.irm_penalty(logits, batch["y"], batch["env"], n_envs)
    nll, pen = jnp.mean(risks), jnp.mean(pens)
    loss = _annealed(hp, step, nll + hp["l2"] * losses.weight_norm(params), pen)
    return loss, _aux(nll, pen), state


def vrex_loss(hp, state, step, logits, batch, params):
    """V-REx (the REx reference code, SPEC §9): Σ_e R_e + l2·Σ‖p‖² + pw·(R₀ − R₁)², annealed as IRM
    (``losses.vrex_penalty_reference``; E > 2 environments: 2·Σ_e (R_e − R̄)²)."""
    risks, _ = losses.segment_means(losses.per_example_nll(logits, batch["y"]), batch["env"], hp["_n_envs"])
    pen = losses.vrex_penalty_reference(risks)
    loss = _annealed(hp, step, jnp.sum(risks) + hp["l2"] * losses.weight_norm(params), pen)
    return loss, _aux(jnp.mean(risks), pen), state


def group_dro_loss(hp, state, step, logits, batch, params):
    """Group DRO (Sagawa et al. 2020, Algorithm 1; ``group_methods.group_dro_step``): q ← q·exp(η·(L_g + C/√n_g)),
    normalised, then the loss Σ_g q_g L_g with the new q. ``state = {"q", "counts"}`` (training group sizes)."""
    per_example = losses.per_example_nll(logits, batch["y"])
    robust, q, group_losses = group_methods.group_dro_step(
        state["q"], per_example, batch["group"], hp["_n_groups"], hp["eta"], state["counts"], hp["adj"]
    )
    return robust, _aux(jnp.mean(per_example)), {**state, "q": q}


def _group_dro_state(hp, info: DataInfo):
    g = info.n_groups
    return {"q": np.full(g, 1.0 / g, np.float32), "counts": np.asarray(info.group_counts, np.float32)}


def _group_dro_sampling(hp, info: DataInfo, inputs):
    """The reference runs (``--reweight_groups``): every group equally likely, weight 1/n_g per example."""
    if not hp["reweight"]:
        return None
    counts = np.asarray(info.group_counts, np.float64)
    return (1.0 / np.maximum(counts, 1.0))[np.asarray(inputs["group"])]


def jtt_loss(hp, state, step, logits, batch, params):
    """JTT's second stage trains plain ERM; the up-weighting is in the sampling (:func:`_jtt_sampling`)."""
    nll = losses.mean_nll(logits, batch["y"])
    return nll, _aux(nll), state


def _jtt_sampling(hp, info: DataInfo, inputs):
    """JTT's second stage (Liu et al. 2021): the identification model's error set sampled λ_up times as often as
    the rest (``group_methods.jtt_weights``; the reference's upsampled list D_up sampled uniformly)."""
    check(
        "error_set" in inputs, "jtt needs its first stage's error set (the benchmark runs jtt_identify first)"
    )
    return group_methods.jtt_weights(inputs["error_set"], float(hp["lambda_up"]))


def logit_adjust_loss(hp, state, step, logits, batch, params):
    """Logit adjustment (Menon et al., ICLR 2021): cross-entropy of ŷ + τ·log π, with π the training prior of the
    classes (``prior = "class"``) or of the classes within the example's spurious attribute (``"group"``:
    π(y | a) with a = group mod A, groups laid out as g = y·A + a). At test time the plain ŷ is used, so the
    adjustment moves the decision boundary toward the rare classes (groups). One logit: the adjustment is
    τ·(log π₁ − log π₀)."""
    table = state["log_prior"]  # (A, k): row a = log π(· | a); A = 1 for the class prior
    row = table[0] if table.shape[0] == 1 else table[batch["group"] % table.shape[0]]
    adj = row[..., 1] - row[..., 0] if logits.ndim == 1 else row
    nll = losses.mean_nll(logits + hp["tau"] * adj, batch["y"])
    return nll, _aux(nll), state


def _logit_adjust_state(hp, info: DataInfo):
    k = info.n_classes
    if hp["prior"] == "class":
        counts = np.asarray(info.class_counts, np.float64).reshape(1, k)
    else:
        check(
            info.n_groups % k == 0, f"group prior: {info.n_groups} groups are not a multiple of {k} classes"
        )
        counts = np.asarray(info.group_counts, np.float64).reshape(k, info.n_groups // k).T  # (A, k)
    prior = np.maximum(counts, 0.5) / np.maximum(counts, 0.5).sum(axis=1, keepdims=True)
    return {"log_prior": np.log(prior).astype(np.float32)}


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("erm", {"l2": 0.0}, erm_loss, summary="empirical risk minimisation (mean cross-entropy)"),
        Algorithm("sd", {"lam": 0.1, "lam_warmup": 0.0, "anneal_iters": 0}, sd_loss,
                  summary="Spectral Decoupling, Eq. 17 in mean form: CE + λ·mean(ŷ²)"),
        Algorithm("sd_rescaled", {"coef": 2e-5, "anneal_iters": 450}, sd_rescaled_loss,
                  summary="SD as the authors' Colored MNIST code: c·(CE + mean ŷ²) after the anneal step"),
        Algorithm("sd_class", {"lam": (0.1, 0.1), "gamma": (0.0, 0.0)}, sd_class_loss,
                  needs=lambda hp: ("binary",), summary="per-class SD as the paper: Σ_c λ_c/2‖ŷ_c − γ_c‖² / n"),
        Algorithm("sd_spw3", {"lam": (0.1, 0.1), "gamma": (0.44, 2.5)}, sd_spw3_loss,
                  needs=lambda hp: ("binary",),
                  summary="per-class SD as the authors' CelebA code: Σ_c λ_c mean_{y=c}(ŷ − γ_c)², no ½"),
        Algorithm("irm", {"l2": 0.00110794568, "anneal_iters": 190, "penalty_weight": 91257.18613115903},
                  irm_loss, needs=lambda hp: ("env",), summary="IRMv1 (reference schedule)"),
        Algorithm("vrex", {"l2": 1e-3, "anneal_iters": 100, "penalty_weight": 1e4}, vrex_loss,
                  needs=lambda hp: ("env",), summary="V-REx (reference schedule)"),
        Algorithm("group_dro", {"eta": 0.01, "adj": 0.0, "reweight": 1.0}, group_dro_loss, _group_dro_state,
                  needs=lambda hp: ("group",), sampling=_group_dro_sampling,
                  summary="Group DRO, online q; group-balanced sampling with reweight = 1 (the reference runs)"),
        Algorithm("jtt", {"lambda_up": 20.0, "identify_epochs": 1}, jtt_loss, sampling=_jtt_sampling, driver="jtt_identify",
                  summary="Just Train Twice: ERM, then its training errors up-sampled λ_up×"),
        Algorithm("logit_adjust", {"tau": 1.0, "prior": "class"}, logit_adjust_loss, _logit_adjust_state,
                  needs=lambda hp: ("group",) if hp["prior"] == "group" else (),
                  summary="logit adjustment: CE of ŷ + τ·log π (class or group prior)"),
        # penalty "l1": the reference protocol (liblinear, C tuned over ``c``); "l2": this project's Newton fit,
        # l2 tuned over ``l2`` (posthoc.dfr)
        Algorithm("dfr", {"penalty": "l1", "c": (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01), "n_refits": 20,
                          "l2": (1e-3, 1e-2, 1e-1, 1.0)},
                  needs=lambda hp: ("group",), posthoc=True,
                  summary="Deep Feature Reweighting: last layer refit on group-balanced held-out features"),
        Algorithm("threshold", {}, needs=lambda hp: ("binary",), posthoc=True,
                  summary="a trained logit's decision threshold moved, tuned on validation (posthoc.threshold_shift)"),
    )
}  # fmt: skip


def get(name: str) -> Algorithm:
    """The algorithm registered under ``name`` (a one-line error naming the registered ones otherwise)."""
    if name not in ALGORITHMS:
        raise GsJaxError(f"unknown method {name!r}; registered: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


# --------------------------------------------------------------------------------------------------------------
# Hyper-parameters, grids and refusals
# --------------------------------------------------------------------------------------------------------------


def _depth(v) -> int:
    return (
        1 + _depth(v[0])
        if isinstance(v, (tuple, list)) and len(v)
        else (1 if isinstance(v, (tuple, list)) else 0)
    )


def hyper(name: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full hyper-parameters of ``name``: its defaults overridden by ``values`` (one setting, no grids).
    Unknown keys and values of the wrong kind are one-line errors."""
    alg = get(name)
    values = dict(values or {})
    unknown = set(values) - set(alg.defaults)
    check(
        not unknown, f"{name}: unknown hyper-parameters {sorted(unknown)}; it has {', '.join(alg.defaults)}"
    )
    hp = dict(alg.defaults)
    for k, v in values.items():
        d = alg.defaults[k]
        if isinstance(d, str):
            check(isinstance(v, str), f"{name}.{k} must be a string, got {v!r}")
        else:
            check(
                _depth(v) == _depth(d),
                f"{name}.{k} must be {'a pair' if _depth(d) else 'a number'}, got {v!r}",
            )
            check(np.all(np.isfinite(np.asarray(v, np.float64))), f"{name}.{k} must be finite, got {v!r}")
        hp[k] = tuple(v) if isinstance(v, list) else v
    return hp


def grid(name: str, block: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every setting of ``name`` in a config block: a key whose value nests one level deeper than its default (a
    tuple of numbers for a number, a tuple of pairs for a pair, a tuple of strings for a string) is a grid axis;
    the settings are the product of the axes, in config order. Keys that are not hyper-parameters of ``name``
    (schedule overrides an experiment reads itself) are ignored here; :func:`hyper` refuses them."""
    alg = get(name)
    block = {k: v for k, v in dict(block or {}).items() if k in alg.defaults}
    axes = []
    for k, v in block.items():
        d = alg.defaults[k]
        is_axis = (isinstance(d, str) and isinstance(v, (tuple, list))) or (
            not isinstance(d, str) and _depth(v) == _depth(d) + 1)  # fmt: skip
        axes.append([(k, x) for x in v] if is_axis else [(k, v)])
        check(len(axes[-1]) > 0, f"{name}.{k}: an empty grid")
    return [hyper(name, dict(combo)) for combo in itertools.product(*axes)] if axes else [hyper(name)]


def check_supported(name: str, hp: Mapping[str, Any], info: DataInfo) -> None:
    """Refuse, in one line naming what is missing, a method the data set cannot run."""
    missing = [n for n in get(name).needs(hp) if n not in info.provides()]
    what = {"group": "group labels", "env": "environment labels", "binary": "a binary task with one logit"}
    check(
        not missing,
        f"method {name!r} needs {' and '.join(what[m] for m in missing)}; the data set "
        f"{info.name or ''!r} has none — drop it from methods.enabled",
    )


def bind(hp: Mapping[str, Any], info: DataInfo) -> dict[str, Any]:
    """``hp`` with the data set's static sizes added (``_n_groups``, ``_n_envs``), as the losses read them."""
    return {**hp, "_n_groups": int(info.n_groups), "_n_envs": int(info.n_envs)}


def numeric(hp: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The traced part of ``hp``: every number (or tuple of numbers) as float32."""
    return {
        k: np.asarray(v, np.float32)
        for k, v in hp.items()
        if not isinstance(v, str) and not k.startswith("_")
    }


def static(hp: Mapping[str, Any]) -> tuple:
    """The static part of ``hp`` (strings), hashable: runs that differ in it are different programs."""
    return tuple(sorted((k, v) for k, v in hp.items() if isinstance(v, str)))


def label(name: str, hp: Mapping[str, Any]) -> str:
    """A readable name of one setting, e.g. ``sd_spw3 lam=(0.1, 0.1) gamma=(0.44, 2.5)``."""
    defaults = get(name).defaults
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items()
             if not k.startswith("_") and (v != defaults.get(k) or k in ("lam", "tau", "eta", "lambda_up"))]  # fmt: skip
    return " ".join([name, *parts])
