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
# # Starvation with ten classes: the monitor on the Fig. 2 LeNet, Fashion-MNIST
#
# Definition 1 is stated for one output. With k outputs and labels y ∈ {0, …, k−1}, take the one-vs-rest labels
# Y_ic = 2·1[y_i = c] − 1 and either
#
# - **one-vs-rest**, per class c: Y_c Φ₀⁽ᶜ⁾ = U_c S_c V_cᵀ with Φ₀⁽ᶜ⁾ = ∂ŷ_c/∂θ (the Jacobian rows of output c) and
#   responses z_c = U_cᵀ Y_c (ŷ_c − ŷ_c,₀) — Eq. 4 for the binary task "c against the rest" read on logit c;
# - **joint**: YΦ₀ = U S Vᵀ on all n·k Jacobian rows (row i·k + c), z = Uᵀ Y vec(ŷ − ŷ₀); its features may mix outputs.
#
# Below, the authors' Fig. 2 CNN with ten outputs (`gs_jax.models.LeNetFig2(num_classes=10)`) at initialisation,
# on a class-balanced probe set of Fashion-MNIST: the features of each form, named by what they align with, then
# the responses to them along a short training run with plain optax. Needs the Fashion-MNIST IDX files
# (`make data-fashion`; or set `GS_FASHION_DIR`).

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from gs_jax import models, monitor
from gs_jax.data import mnist

SMALL = bool(os.environ.get("GS_SMALL"))
CLASSES = mnist.FASHION_CLASSES
C = len(CLASSES)
PER_CLASS = 5 if SMALL else 20  # probe examples per class: n = 10·PER_CLASS, the joint form has 10·n rows
N_TRAIN, STEPS, EVERY = (2000, 60, 5) if SMALL else (20000, 600, 25)
K = 6  # features per class (one-vs-rest)

images, labels = mnist.load_idx_split(
    os.environ.get("GS_FASHION_DIR", mnist.FASHION_DEBIAN_DIR), "train", "fashion-mnist"
)
x_all = (images.astype(np.float32) / 255.0 * 2.0 - 1.0)[..., None]  # (n, 28, 28, 1) in [-1, 1]
rng = np.random.default_rng(0)
probe = np.concatenate([rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False) for c in range(C)])
rest = np.setdiff1d(np.arange(len(labels)), probe)
train = rng.choice(rest, N_TRAIN, replace=False)
test = rng.choice(np.setdiff1d(rest, train), 1000, replace=False)
x_probe, y_probe = jnp.asarray(x_all[probe]), labels[probe].astype(np.int64)
print(f"probe n = {len(probe)} ({PER_CLASS} per class), training images {N_TRAIN}, test images {len(test)}")

net = models.LeNetFig2(num_classes=C)
params0 = net.init(jax.random.PRNGKey(0), x_probe[:1])["params"]


def apply_fn(p, x):
    return net.apply({"params": p}, x)


# %% [markdown]
# ## One-vs-rest features, named
# A feature is a direction in Y-space (a column u_j of U_c); in function space it is w_j = Y_c u_j, an eigenvector of
# output c's NTK Gram with eigenvalue s_j², and its response z_c,j = w_jᵀ(ŷ_c − ŷ_c,₀) is how far the logits have
# moved along it. Each w_j is named by the candidate it is closest to (largest |cosine|), every candidate a unit
# vector over the probe set: the *constant* (the same logit for every image: the class prior "not c"), each class
# indicator 1[y = c′] and two groups, *footwear* (sandal, sneaker, ankle boot) and *tops* (T-shirt, pullover, coat,
# shirt), these centred (their constant part belongs to the first candidate). The label share (1ᵀu_j)²/n is the
# part of class c's one-vs-rest labels the feature carries.

# %%
ovr = monitor.at_reference(apply_fn, params0, x_probe, y_probe, K, form="one_vs_rest")
onehot = (y_probe[:, None] == np.arange(C)).astype(np.float64)
n = len(y_probe)
attributes = {
    "constant": np.ones(n),
    **{CLASSES[c]: onehot[:, c] for c in range(C)},
    "footwear": onehot[:, [5, 7, 9]].sum(1),
    "tops": onehot[:, [0, 2, 4, 6]].sum(1),
}
candidates = np.stack([a - (a.mean() if name != "constant" else 0.0) for name, a in attributes.items()], 1)
candidates /= np.linalg.norm(candidates, axis=0)  # (n, candidates), unit columns


def name_features(mon_c):
    """(names (k,), cosines (k,)): per feature w_j = Y_c u_j, the candidate of largest |cosine|."""
    w = np.asarray(mon_c.y)[:, None] * np.asarray(mon_c.U)  # (n, k), unit columns
    cos = candidates.T @ w  # (candidates, k)
    best = np.argmax(np.abs(cos), 0)
    return [list(attributes)[b] for b in best], cos[best, np.arange(w.shape[1])]


names = {}
for c in range(C):
    mon_c = monitor.for_class(ovr, c)
    names[c], cos = name_features(mon_c)
    share = np.asarray(mon_c.U.sum(0)) ** 2 / n
    row = ", ".join(
        f"{j}: {names[c][j]} (cos {cos[j]:+.2f}, s² = {float(mon_c.s[j]) ** 2:.1f}, label share {share[j]:.2f})"
        for j in range(3)
    )
    print(f"{CLASSES[c]:>11} | {row}")

# %% [markdown]
# ## Joint features
# On all n·k rows the features are shared between outputs. The k per-output constants (a class prior on each
# logit, Y·1[row of output o] in Y-space) are k candidate directions; how much of each the top k joint features
# span says whether the strongest joint features are the class priors again.

# %%
joint = monitor.at_reference(apply_fn, params0, x_probe, y_probe, 2 * C, form="joint")
s2 = np.asarray(joint.s) ** 2
Y_rows = 2.0 * onehot - 1.0
priors = np.stack([(Y_rows * (np.arange(C) == o)).reshape(-1) for o in range(C)], 1)  # (n·k, k) in Y-space
priors /= np.linalg.norm(priors, axis=0)
captured = (
    np.linalg.norm(np.asarray(joint.U)[:, :C].T @ priors, axis=0) ** 2
)  # share of each prior in the span
print(f"joint s²: top {C} {np.round(s2[:C], 1)}, next {np.round(s2[C : C + 3], 1)}")
print(
    f"joint: the top {C} features span {100 * captured.min():.1f} to {100 * captured.max():.1f} % of each output's class prior"
)
print(f"joint: gap s²_{C} / s²_{C + 1} = {s2[C - 1] / s2[C]:.1f}")
# Y_cK⁽ᶜᶜ⁾Y_c is a principal block of YKY, so (Cauchy interlacing) no class's strongest feature beats the joint one
print(f"largest strength: joint {s2[0]:.1f} >= one-vs-rest {float(np.max(np.asarray(ovr.s[:, 0]) ** 2)):.1f}")

# %% [markdown]
# ## Responses along training
# Adam on the training images, the responses of every class's named features recorded on the probe set.

# %%
opt = optax.adam(1e-3)
x_train, y_train = jnp.asarray(x_all[train]), jnp.asarray(labels[train].astype(np.int32))


def loss(p, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, xb), yb).mean()


@jax.jit
def step(p, s, key):
    idx = jax.random.choice(key, N_TRAIN, (128,), replace=False)
    g = jax.grad(loss)(p, x_train[idx], y_train[idx])
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s


p, state, steps, z_ovr, z_joint = params0, opt.init(params0), [], [], []
for t in range(STEPS + 1):
    if t % EVERY == 0:
        logits = apply_fn(p, x_probe)
        steps.append(t)
        z_ovr.append(np.asarray(monitor.responses(ovr, logits)))  # (C, K)
        z_joint.append(np.asarray(monitor.responses(joint, logits)))  # (2C,)
    if t < STEPS:
        p, state = step(p, state, jax.random.fold_in(jax.random.PRNGKey(1), t))
z_ovr, z_joint = np.stack(z_ovr), np.stack(z_joint)  # (T, C, K), (T, 2C)
acc = float((apply_fn(p, jnp.asarray(x_all[test])).argmax(1) == labels[test]).mean())
print(f"after {STEPS} steps: test accuracy {100 * acc:.1f} % (chance 10 %)")
print(f"responses at step 0: max |z| = {np.abs(z_ovr[0]).max():.2e} (centred at θ₀)")
for c in (0, 1, 6):  # T-shirt/top, Trouser, Shirt
    z_end = z_ovr[-1, c]
    print(
        f"{CLASSES[c]}: response at the end z = "
        + ", ".join(f"{names[c][j]} {z_end[j]:+.2f}" for j in range(3))
    )

fig, axes = plt.subplots(2, 5, figsize=(15, 5.6), sharex=True)
for c, ax in enumerate(axes.ravel()):
    for j in range(4):
        ax.plot(steps, z_ovr[:, c, j], label=f"u{j}: {names[c][j]}", lw=1.6 if j == 0 else 1.0)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(f"class {c}: {CLASSES[c]}", fontsize=9)
    ax.legend(fontsize=6)
for ax in axes[1]:
    ax.set_xlabel("step")
for ax in axes[:, 0]:
    ax.set_ylabel("z_c,j = u_jᵀY_c(ŷ_c − ŷ_c,₀)")
fig.suptitle(
    "one-vs-rest responses of each class's top 4 features (named by alignment; grey: 0)", fontsize=10
)
fig.tight_layout()
plt.show()

fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(steps, np.linalg.norm(z_joint[:, :C], axis=1), label=f"features 0-{C - 1} (the class priors)")
ax.plot(steps, np.linalg.norm(z_joint[:, C:], axis=1), label=f"features {C}-{2 * C - 1} (the next {C})")
ax.set_xlabel("step")
ax.set_ylabel("‖z‖ over the group (joint form)")
ax.set_title("joint responses, strong vs the next features", fontsize=9)
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to read off (the same picture at the small size the tests run and at the full size): each class's strongest
# one-vs-rest feature is the constant function, the class prior, carrying about 0.64 of the one-vs-rest labels
# ((1 − 2/10)² on a balanced probe); the next ones group classes (tops, footwear, trousers) before any single class
# stands alone; jointly, the k strongest features span the k per-output priors and are about ten times stronger
# than what follows. Along training the class-grouping features' responses rise within the first tens of steps and
# then level off, while the prior's response does not follow its strength: what drives it at θ₀ is the cross-entropy
# gradient projected on the constant, Σ_i (1[y_i = c] − p_ic)/√n, which is zero for balanced classes and a uniform
# softmax. The strongest feature is not necessarily the one a loss uses first; the monitor makes that measurable.

# %% [markdown]
# The same monitor on a binary task, with the trainer's evaluator: `notebooks/starvation.py`; the README's "Your own
# model" for NNX and Equinox models.
