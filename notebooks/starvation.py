# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The starvation monitor on your own model
#
# Definition 1 splits what a network can learn at initialisation into features: YΦ₀ = U S Vᵀ, with Φ₀ the
# network's Jacobian (its neural tangent features) on a probe set. Along training, the responses
# z(t) = UᵀY(ŷ(t) − ŷ₀) say how much of each feature the network has used. Gradient starvation is a strong feature's
# response growing while a weaker one's stays near zero.
#
# `gs_jax.monitor` needs only `apply_fn(params, x) -> one logit per example`. Below: a toy where the label is
# carried by two input directions — a weak "core" coordinate that is always right and a strong "shortcut"
# coordinate that is right 90 % of the time — and any Flax MLP.

# %%
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from gs_jax import monitor, trainer

SMALL = bool(os.environ.get("GS_SMALL"))
rng = np.random.default_rng(0)
n = 256 if SMALL else 1024
y = rng.integers(0, 2, n)
s = 2.0 * y - 1.0
shortcut = np.where(rng.random(n) < 0.9, s, -s)  # agrees with the label 90 % of the time
x = np.stack([0.3 * s + 0.3 * rng.normal(size=n),  # core: weak, always informative
              3.0 * shortcut + 0.3 * rng.normal(size=n),  # shortcut: strong, sometimes wrong
              rng.normal(size=n)], 1).astype(np.float32)  # fmt: skip


class MyModel(nn.Module):  # any Flax model with one logit per example
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(128)(x))
        return nn.Dense(1)(nn.relu(nn.Dense(128)(h)))[:, 0]


model = MyModel()
params0 = model.init(jax.random.PRNGKey(0), x[:1])["params"]


def apply_fn(p, xx):
    return model.apply({"params": p}, xx)


# %% [markdown]
# ## Features at initialisation, and which is which
# `identify` names each feature by its correlation with a per-example attribute. The features live in Y-space
# (rows of YΦ₀), so a feature that reads an input coordinate c has u ∝ y·c: pass agreements y·c.

# %%
mon = monitor.at_reference(apply_fn, params0, jnp.asarray(x), y, k=8)
found = monitor.identify(mon, {"core": s * x[:, 0], "shortcut": s * x[:, 1]})
for name, f in found.items():
    print(f"{name}: feature {f['index']}, correlation {f['corr']:.2f}, strength s² = {f['s'] ** 2:.1f}")

# %% [markdown]
# ## Train with the monitor as a trainer evaluator, and watch the responses

# %%
STEPS = 200 if SMALL else 1000
task = trainer.Task(
    init=lambda key, d: (model.init(key, d["x"][:1])["params"], {}),
    loss=lambda p, ms, st, b, step, key: (optax.sigmoid_binary_cross_entropy(apply_fn(p, b["x"]), b["y"]).mean(),
                                          (ms, st, None)),
    optimizer=optax.adam(1e-3),
)  # fmt: skip
ev = monitor.evaluator(lambda state, d: apply_fn(state.params, d["x"]), mon, every=10)
result = trainer.train(task, {"x": x, "y": y.astype(np.float32)}, jax.random.PRNGKey(0)[None], steps=STEPS,
                       data_per_restart=False, evaluators=[ev])  # fmt: skip
steps, z = monitor.trajectory(result.history, mon.k)
for name, f in found.items():
    zz = np.sign(f["corr"]) * z[0, :, f["index"]]
    print(f"{name}: response at the end z = {zz[-1]:.3f} (largest along training {np.abs(zz).max():.3f})")
fig, ax = plt.subplots(figsize=(5, 3.2))
for name, f in found.items():
    ax.plot(steps, np.sign(f["corr"]) * z[0, :, f["index"]], label=f"{name} (feature {f['index']})")
ax.set_xlabel("step")
ax.set_ylabel("z(t) = uᵀY(ŷ(t) − ŷ₀)")
ax.legend()
plt.show()

# %% [markdown]
# The same monitor on the paper's Colored MNIST (colour vs shape, ERM vs SD) and Theorem 2 measured on a trained
# network against Eq. 9's prediction: `make starvation`. `make starvation-controlled` adds the controlled version of
# Theorem 2: the network is reparametrised as θ = θ₀ + P_b ϑ with P_b = I + (b − 1)v_c v_cᵀ (v_c the colour feature's
# right singular vector), so that only the colour feature's strength moves (s_c → b·s_c) and every other feature is
# the same vector at every b; linearised and real networks are trained under Eq. 5 (ridge) and Eq. 17 (SD) and their
# shape response compared with Eq. 9 / Eq. 18's fixed points (`gs_jax.experiments.starvation_controlled`).
