# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Two moons: gradient starvation in one picture (Section 2, Fig. 1)
#
# The two moons are folded so that the horizontal axis separates the classes with a gap of 2Δ. With Δ = −0.1 the
# classes overlap on that axis and a two-layer ReLU net must also use the vertical (moon) axis: its boundary curves
# around the moons. With Δ = +0.1 the horizontal axis alone suffices; it is learnt first, the loss falls, and the
# gradient that would have taught the vertical feature *starves*: the boundary is almost a straight line that passes
# close to the data. Spectral Decoupling (SD, + λ·mean ŷ²) keeps the logits small, so the easy feature cannot
# absorb the whole loss, and the curved, large-margin boundary comes back.
#
# Change `DELTA` and `SD_COEF` below, retrain in seconds (seeds vmapped, steps in one `lax.scan`), and look at the
# boundary and at the responses |z| of the initial network's NTK features (Eq. 4). `make moons` runs the full
# protocol (10 seeds, 10,000 steps, the Appendix B grid).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from gs_jax.config import load_config
from gs_jax.data import moons as moons_data
from gs_jax.experiments import moons as moons_exp
from gs_jax.plotting import moons as moons_plots

SMALL = bool(os.environ.get("GS_SMALL"))
SEEDS = [0] if SMALL else [0, 1, 2]
STEPS = 40 if SMALL else 4000  # the paper uses 10,000 (configs/moons.py)
HIDDEN = 64 if SMALL else 500
cfg = load_config("configs/moons.py:small" if SMALL else "configs/moons.py")
cfg.record_every = 10
cfg.chunk_steps = STEPS
cfg.margin_grid_n = 101 if SMALL else 301
axis, grid = moons_data.eval_grid(40 if SMALL else 100, 2.0)


def experiment(delta: float, sd_coef: float, weight_decay: float = 2e-4):
    """Train the Fig. 1 net on Δ = ``delta`` with SD coefficient ``sd_coef``; return heatmap, data, z, numbers."""
    cfg.cases.sep.delta, cfg.cases.sep.sd_coef, cfg.cases.sep.weight_decay = delta, sd_coef, weight_decay
    arch, x, y, res, _ = moons_exp.train_moons_case(cfg, "sep", seeds=SEEDS, hidden=HIDDEN, max_steps=STEPS)
    q = moons_exp.moons_quantities(arch, res, x, y, margin_n=cfg.margin_grid_n, margin_lim=2.5)
    f = moons_exp.moons_eval_fn(arch)(
        res.state, res.params0, np.broadcast_to(grid, (len(SEEDS), *grid.shape))
    )
    heat = np.asarray(f).mean(axis=0).reshape(len(axis), len(axis))
    z = moons_exp.moons_responses(moons_exp.moons_init_features(arch, res.params0, x, y), y, res.logits_stn)
    return heat, (x[0], y[0]), {"steps": res.record_steps, **z}, q


# %% [markdown]
# ## Fig. 1 (a)-(d): Δ = −0.1, Δ = +0.1, and Δ = +0.1 with SD

# %%
settings = {"nonsep": (-0.1, 0.0), "sep": (0.1, 0.0), "sep_sd": (0.1, 0.003)}
out = {name: experiment(*s) for name, s in settings.items()}
titles = {"nonsep": "Δ = −0.1", "sep": "Δ = +0.1", "sep_sd": "Δ = +0.1 with SD"}
fig = moons_plots.fig1(
    axis,
    {n: o[0] for n, o in out.items()},
    {n: o[1] for n, o in out.items()},
    {n: o[2] for n, o in out.items()},
    titles,
)
plt.show()
for name, (_, _, _, q) in out.items():
    print(
        f"{name:7s} margin {np.mean(q['margin']):+.3f}   |∂ŷ/∂x₂| {np.mean(q['vertical_dependence']):.3f}   "
        f"vertical share {np.mean(q['vertical_share']):.2f}   acc with x₂ := mean {np.mean(q['acc_x2_mean']):.3f}"
    )

# %% [markdown]
# ## Your turn: change Δ and the SD coefficient
#
# A larger `SD_COEF` keeps the logits smaller and the boundary further from the data; `DELTA` < 0 makes the
# vertical feature necessary again.

# %%
DELTA, SD_COEF = 0.1, 0.01
heat, data0, z, q = experiment(DELTA, SD_COEF)
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
moons_plots.logit_heatmap(axes[0], axis, heat, *data0, title=f"Δ = {DELTA:+}, SD {SD_COEF}")
moons_plots.z_curves(axes[1], {"custom": z}, "aligned", labels=("top-1 aligned", "top-2 aligned"))
fig.tight_layout()
plt.show()
print(f"margin {np.mean(q['margin']):+.3f}, vertical share {np.mean(q['vertical_share']):.2f}")
