"""Explicit registry of training methods: name → :class:`Algorithm`, a record of pure functions with its own state.

An algorithm's ``loss(hp, state, step, logits_en, y_en, params) -> (loss, aux, state)`` sees the training
environments' logits and {0,1} labels stacked as (E, n) (equal-size environments, so the mean over the concatenation
equals the mean of the environment means), the (traced) optimisation step, a :class:`Hyper` record and its own
state (``init_state(hp)``; ``{}`` for the stateless methods); ``aux`` is a dict of scalars to log. All schedules follow
the authors' code exactly (SPEC §2.4), including the loss rescaling after the anneal step.

ERM, SD, IRM and V-REx are stateless. Methods with state fit the same record: Group DRO keeps its group weights q in
``state`` and updates them inside ``loss`` (exponentiated gradient); JTT and DFR are drivers that call the trainer
twice (an identification run, then a re-weighted run or a last-layer refit) and live with their experiment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gs_jax import losses


class Hyper(NamedTuple):
    """Hyper-parameters of one method (the per-method block of ``configs/cmnist.py``)."""

    algorithm: str  # key of ALGORITHMS
    hidden: int = 300
    lr: float = 1e-4
    steps: int = 1001
    l2: float = 0.0  # weight of Σ‖p‖² (IRM, V-REx, oracle)
    anneal_iters: int = 0  # step at which the penalty weight switches on
    penalty_weight: float = 0.0  # IRM / V-REx penalty weight after the anneal step
    sd_coef: float = 0.0  # SD coefficient
    sd_form: str = (
        "authors"  # "authors": c·(sd + nll) after the anneal step; "plain": nll + sd_lambda·sd after it
    )
    sd_lambda: float = 1.0  # plain SD: the SD weight after the anneal step (unscaled loss)
    grayscale: bool = False  # oracle: sum the two colour channels
    sd_lam_c: tuple = (0.0, 0.0)  # per-class SD: λ_c for labels (0, 1)
    sd_gamma_c: tuple = (0.0, 0.0)  # per-class SD: γ_c for labels (0, 1)


Objective = Callable[[Hyper, jax.Array, jax.Array, jax.Array, object], tuple[jax.Array, dict]]


class Algorithm(NamedTuple):
    """A training method: ``loss(hp, state, step, logits_en, y_en, params) -> (loss, aux, state)`` and
    ``init_state(hp) -> state`` (the per-restart state the trainer carries; ``{}`` when stateless)."""

    name: str
    loss: Callable
    init_state: Callable[[Hyper], Any]


def stateless(name: str, objective: Objective) -> Algorithm:
    """An :class:`Algorithm` from an objective ``(hp, step, logits_en, y_en, params) -> (loss, aux)``."""

    def loss(hp, state, step, logits_en, y_en, params):
        value, aux = objective(hp, step, logits_en, y_en, params)
        return value, aux, state

    return Algorithm(name, loss, lambda hp: {})


def erm(hp: Hyper, step, logits_en, y_en, params):
    """ERM: mean BCE over all training examples, plus l2·Σ‖p‖² when l2 > 0 (the oracle's IRM-code recipe)."""
    nll = losses.mean_nll(logits_en, y_en)
    loss = nll + hp.l2 * losses.weight_norm(params) if hp.l2 else nll
    return loss, {"nll": nll}


def sd(hp: Hyper, step, logits_en, y_en, params):
    """Spectral Decoupling (Eq. 17 with a mean over examples).

    ``sd_form="authors"`` (cmnist.py): loss = nll + c·sd for step < anneal, then c·(sd + nll): the relative SD
    weight jumps from c to 1 and the whole loss is scaled by c, with the same Adam state carried across (SPEC §2.4:
    not scale-neutral under Adam). ``sd_form="plain"``: loss = nll + c·sd for step < anneal, then the unscaled
    nll + sd_lambda·sd (with anneal_iters = 0: nll + sd_lambda·sd from the start). With sd_lambda = 1 the two forms
    have the same minimisers after the anneal step and differ only by the constant factor c, which Adam would
    ignore if it had no memory of the earlier gradients.
    """
    nll = losses.mean_nll(logits_en, y_en)
    pen = losses.sd_penalty(logits_en)
    if hp.sd_form == "authors":
        loss = jnp.where(
            step < hp.anneal_iters, losses.sd_regularised(nll, pen, hp.sd_coef), hp.sd_coef * (pen + nll)
        )
    elif hp.sd_form == "plain":
        loss = losses.sd_regularised(nll, pen, jnp.where(step < hp.anneal_iters, hp.sd_coef, hp.sd_lambda))
    else:
        raise ValueError(f"unknown sd_form {hp.sd_form!r}; choose from authors, plain")
    return loss, {"nll": nll, "penalty": pen}


def sd_per_class(hp: Hyper, step, logits_en, y_en, params):
    """Per-class Spectral Decoupling (Section 4.4: λ and γ tuned per class): mean BCE + Σ_c λ_c/2 · mean over the
    examples of class c of (ŷ − γ_c)² (``losses.sd_penalty_per_class``, the one home of the per-class term; the
    authors' CelebA form without the ½ is ``gs_jax.group_methods.sd_per_class_loss``, i.e. λ_c doubled)."""
    nll = losses.mean_nll(logits_en, y_en)
    pen = losses.sd_penalty_per_class(logits_en.reshape(-1), y_en.reshape(-1), hp.sd_lam_c, hp.sd_gamma_c)
    return nll + pen, {"nll": nll, "penalty": pen}


def _annealed(hp: Hyper, step, base, penalty):
    """The IRM/V-REx schedule: pw = 1 before the anneal step, the penalty weight after; loss /= pw when pw > 1."""
    pw = jnp.where(step >= hp.anneal_iters, hp.penalty_weight, 1.0)
    loss = base + pw * penalty
    return jnp.where(pw > 1.0, loss / pw, loss)


def irm(hp: Hyper, step, logits_en, y_en, params):
    """IRMv1 (Arjovsky et al.; the authors' copy): mean env nll + l2·Σ‖p‖² + pw·mean env penalty, annealed."""
    nll_e = jax.vmap(losses.mean_nll)(logits_en, y_en)
    pen_e = jax.vmap(losses.irm_penalty)(logits_en, y_en)
    nll, pen = jnp.mean(nll_e), jnp.mean(pen_e)
    loss = _annealed(hp, step, nll + hp.l2 * losses.weight_norm(params), pen)
    return loss, {"nll": nll, "penalty": pen}


def vrex(hp: Hyper, step, logits_en, y_en, params):
    """V-REx (REx reference code): Σ env nll + l2·Σ‖p‖² + pw·(nll₀ − nll₁)², annealed as IRM."""
    nll_e = jax.vmap(losses.mean_nll)(logits_en, y_en)
    pen = losses.vrex_penalty_reference(nll_e[0], nll_e[1])
    loss = _annealed(hp, step, jnp.sum(nll_e) + hp.l2 * losses.weight_norm(params), pen)
    return loss, {"nll": jnp.mean(nll_e), "penalty": pen}


ALGORITHMS: dict[str, Algorithm] = {
    name: stateless(name, fn)
    for name, fn in (("erm", erm), ("sd", sd), ("sd_per_class", sd_per_class), ("irm", irm), ("vrex", vrex))
}
# Group DRO goes here as Algorithm("group_dro", loss updating q in state, init_state = uniform q) once the
# worst-group benchmark lands; JTT and DFR are two-stage drivers, not records.


def get(name: str) -> Algorithm:
    """The algorithm registered under ``name``."""
    if name not in ALGORITHMS:
        from gs_jax.errors import GsJaxError

        raise GsJaxError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
