"""gs-jax: Gradient Starvation (Pezeshki et al., NeurIPS 2021) made executable in JAX.

Modules, one idea each (see the README's layout):

- ``ntk``          Φ₀, the NTK Gram K = Φ₀Φ₀ᵀ, K·v, linearisation, infinite-width NTK (Eq. 1–3); the only module
                   that calls neural-tangents.
- ``adapters``     models from any library at the boundary of ntk/features/monitor: linen apply functions, Flax
                   NNX and Equinox modules.
- ``features``     Definition 1: YΦ₀ = U S Vᵀ, responses z = Uᵀ Y ŷ (Eq. 4), label alignment; k classes one-vs-rest
                   and joint.
- ``monitor``      the starvation monitor: features at θ₀, responses z(t) along training, naming features.
- ``dynamics``     dual (Eq. 9, 10, 18) and primal (Eq. 5, 17) learning dynamics, integrated with diffrax.
- ``fixed_points`` Lambert W, closed forms (Eq. 12, 13), Lemma 1 (Eq. 14), exact fixed points with implicit
                   derivatives (Theorem 2).
- ``losses``       cross-entropy, SD (Eq. 17 and its per-class forms), IRM, V-REx — one home per equation.
- ``algorithms``   THE method registry (ERM, SD forms, IRM, V-REx, Group DRO, JTT, logit adjustment, DFR).
- ``models``       Flax modules and ``models.build``, one forward convention; ``optim`` torch-style optimisers.
- ``trainer``      the generic trainer: restarts as a vmap axis, scan chunks, evaluators, devices;
                   ``sampling`` (how a step draws its batch), ``checkpoints`` (save / resume).
- ``supervised``   a benchmark's task from a model, registry methods, an optimiser, a sampler;
                   ``evaluators`` accuracy, group / worst-group, PGD accuracy, monitor responses from config.
- ``metrics``      accuracy, per-group and worst-group accuracy, entropy, input-space margins, mean ± std.
- ``data``         two-moons, MNIST IDX files, Colored MNIST environments.
- ``experiments``  one driver per experiment (``experiments.theorem2``, ``experiments.primal_dual``, ...): sweeps,
                   summaries, tables and run outputs, so that the maths modules neither write files nor draw.
- ``config``, ``runs``, ``precision``  configs as data, run directories, float64 switch.
- ``commands``     the ``gs-jax`` command (``python -m gs_jax``): experiment name → run function and config.
- ``reporting``, ``plotting``  text/markdown tables; matplotlib figures.

Submodules load on first attribute access, so ``import gs_jax`` stays cheap and code that never touches the NTK
never imports neural-tangents.
"""

import importlib

from gs_jax.errors import GsJaxError

__version__ = "0.1.0"

_SUBMODULES = (
    "adapters",
    "algorithms",
    "attacks",
    "checkpoints",
    "config",
    "data",
    "dynamics",
    "evaluators",
    "experiments",
    "features",
    "fixed_points",
    "group_methods",
    "losses",
    "metrics",
    "models",
    "monitor",
    "ntk",
    "optim",
    "plotting",
    "precision",
    "reporting",
    "runs",
    "sampling",
    "supervised",
    "trainer",
)

__all__ = ["GsJaxError", "__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"gs_jax.{name}")
    raise AttributeError(f"module 'gs_jax' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
