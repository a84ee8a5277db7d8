"""The optimisers the experiments need, written once on optax: PyTorch's SGD and Adam with their coupled weight decay
and ``MultiStepLR`` milestones.

torch conventions (SPEC, conventions): ``SGD(lr, momentum=μ)`` keeps buf = μ·buf + g with buf = g at the first
step, which equals ``optax.sgd(lr, momentum=μ)``; torch ``Adam`` is ``optax.adam(lr, 0.9, 0.999, 1e-8)``; torch's
``weight_decay=wd`` adds wd·θ to the gradient BEFORE the update rule, on every parameter (biases included), i.e.
``optax.add_decayed_weights(wd)`` first in the chain. ``MultiStepLR(milestones, γ)`` multiplies the learning rate
by γ at the given epochs.

A config block (every experiment's ``train`` or per-method ``optim`` block) maps onto :class:`OptimSpec`::

    spec = optim.spec(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, milestones=(80, 120))
    tx = optim.build(spec, steps_per_epoch=390)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import optax

from gs_jax.errors import check

NAMES = ("sgd", "adam")


class OptimSpec(NamedTuple):
    """A torch-style optimiser (hashable: part of a task's static structure)."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only; 0 = plain SGD
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # torch-coupled L2 (added to the gradient before the update)
    milestones: tuple = ()  # epochs at which the learning rate is multiplied by ``gamma``
    gamma: float = 0.1
    b1: float = 0.9  # adam only (torch defaults)
    b2: float = 0.999
    eps: float = 1e-8


def spec(**values: Any) -> OptimSpec:
    """An :class:`OptimSpec` from config values (unknown keys and names are one-line errors)."""
    unknown = set(values) - set(OptimSpec._fields)
    check(not unknown, f"unknown optimiser keys {sorted(unknown)}; valid: {', '.join(OptimSpec._fields)}")
    s = OptimSpec(**values)
    check(s.name in NAMES, f"unknown optimiser {s.name!r}; choose from {', '.join(NAMES)}")
    check(s.lr > 0, f"the learning rate must be > 0, got {s.lr}")
    check(s.weight_decay >= 0, f"weight_decay must be ≥ 0, got {s.weight_decay}")
    return s._replace(milestones=tuple(int(m) for m in s.milestones))


def schedule(s: OptimSpec, steps_per_epoch: int = 1):
    """The learning rate: constant, or × ``gamma`` at each milestone epoch (torch ``MultiStepLR``)."""
    if not s.milestones:
        return s.lr
    check(steps_per_epoch >= 1, f"steps_per_epoch must be ≥ 1, got {steps_per_epoch}")
    return optax.piecewise_constant_schedule(s.lr, {int(m) * steps_per_epoch: s.gamma for m in s.milestones})


def build(s: OptimSpec, steps_per_epoch: int = 1) -> optax.GradientTransformation:
    """The optax chain equal to torch's optimiser ``s`` (``steps_per_epoch`` places the milestones).

    Without weight decay the chain is the bare update rule (``optax.adam`` / ``optax.sgd``), so its state has the
    same structure as those transformations'.
    """
    lr = schedule(s, steps_per_epoch)
    if s.name == "adam":
        base = optax.adam(lr, s.b1, s.b2, s.eps)
    else:
        base = optax.sgd(lr, momentum=s.momentum or None, nesterov=s.nesterov)
    return optax.chain(optax.add_decayed_weights(s.weight_decay), base) if s.weight_decay else base


def injected(name: str, lr: float = 0.0, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """torch SGD (momentum 0.9) or Adam with learning rate and weight decay held in the optimiser state
    (``optax.inject_hyperparams``), so runs that differ only in them share one compiled program (the two-moons
    grid). The weight decay is always in the chain here (its value may be 0)."""
    check(name in NAMES, f"unknown optimiser {name!r}; choose from {', '.join(NAMES)}")

    def make(lr, weight_decay):
        base = optax.sgd(lr, momentum=0.9) if name == "sgd" else optax.adam(lr, 0.9, 0.999, 1e-8)
        return optax.chain(optax.add_decayed_weights(weight_decay), base)

    return optax.inject_hyperparams(make)(lr=lr, weight_decay=weight_decay)
