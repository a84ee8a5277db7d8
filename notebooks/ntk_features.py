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
# # The NTK features of the Fig. 1 network (Definition 1)
#
# Near initialisation a network is ŷ ≈ Φ₀θ with the neural tangent random features Φ₀ = ∂ŷ/∂θ (Eq. 2–3).
# Definition 1 takes the SVD `YΦ₀ = U S Vᵀ` (Y = diag(y)): the columns of U are the *features*, the sᵢ their
# *strengths*, and z = UᵀYŷ the network's *responses* to them (Eq. 4). Gradient starvation is about what a
# strong feature does to the responses to the weaker ones.
#
# This notebook computes them exactly for the two-moons network of Fig. 1 (2 → 500 → 1, torch init, 2,001
# parameters): the NTK spectrum, the share of the labels each feature carries, the leading features drawn in input
# space, and the empirical spectrum of an NTK-parameterised two-layer ReLU against its infinite-width limit as the
# width grows.

# %%
import os

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import features, models, ntk, precision, runs
from gs_jax.data import moons
from gs_jax.plotting import features as feature_plots

precision.enable_x64()  # theory code runs in float64
SMALL = bool(os.environ.get("GS_SMALL"))
N = 120 if SMALL else 300  # Fig. 1 uses 300 points
WIDTHS = [64, 512] if SMALL else [64, 256, 1024, 4096]
SEEDS = range(2 if SMALL else 5)
run = runs.create("ntk_features", {"n": N, "widths": WIDTHS}, root=os.environ.get("GS_RUNS_DIR", "runs"))

# %% [markdown]
# ## Data and network at initialisation
# Two moons with margin Δ = +0.1 (Fig. 1 b), the authors' network and init, cast to float64.

# %%
x, y01 = moons.two_moons(seed=0, margin=0.1, n_samples=N)
model = models.MoonsMLP()
params = model.init(jax.random.PRNGKey(0), jnp.asarray(x))
params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
y = features.as_pm1(y01)  # {0, 1} -> {-1, +1}
print(f"n = {N}, m = {ntk.num_params(params)} parameters")

# %% [markdown]
# ## The NTK Gram and its features
# `empirical_ntk` (neural-tangents' structured derivatives) gives K = Φ₀Φ₀ᵀ; `from_gram` diagonalises Y K Y.
# With m = 2,001 we can also form Φ₀ and take the SVD of YΦ₀ directly: both paths agree.

# %%
K = ntk.empirical_ntk(model.apply, params, jnp.asarray(x))
feats = features.from_gram(K, y)
feats_svd = features.from_ntrf(ntk.ntrf(model.apply, params, jnp.asarray(x)), y)
r = 20
print("top strengths s:", np.round(np.asarray(feats.s[:8]), 3))
print(
    "SVD vs eigh, max rel. diff of the top-20 s:", float(jnp.max(jnp.abs(feats.s[:r] / feats_svd.s[:r] - 1)))
)
align = features.label_alignment(feats, y, k=10)
print(f"share of the labels on the top-10 features: {float(align.top_k_share):.3f}")
print(f"kernel-target alignment: {float(align.kernel_target_alignment):.3f}")
fig = feature_plots.spectra(
    {"Fig. 1 net, empirical NTK": np.asarray(align.spectrum)}, title="NTK spectrum at init"
)
run.save_figure(fig, "spectrum")

# %% [markdown]
# ## The leading features in input space
# Each panel colours the training points by the NTK eigenvector Y uⱼ (circles: label +1, triangles: −1).
# Feature 0 has one sign everywhere (a shift of all logits) and carries little of the labels; feature 1 separates
# the two moons along the horizontal axis and carries most of the label energy; higher features oscillate along
# the moons. Fig. 1(d) of the paper plots the responses to features 1 and 6.

# %%
fig = feature_plots.feature_directions(x, np.asarray(feats.U), np.asarray(y), indices=(0, 1, 2, 6))
run.save_figure(fig, "feature_directions")
print("label energy on features 0..7:", np.round(np.asarray(align.energy[:8]), 3))

# %% [markdown]
# ## Empirical vs infinite-width NTK
# The paper's Eq. 1 uses the NTK parameterisation, in which the empirical NTK converges to a deterministic kernel Θ
# as the width grows (Jacot et al., 2018). `relu_mlp_stax` builds the same two-layer ReLU in `neural_tangents.stax`
# at any width, with its analytic Θ; the relative error should shrink like w^(−1/2).

# %%
errors, spectra = [], {}
x_j = jnp.asarray(x)
for w in WIDTHS:
    init_fn, apply_fn, kernel_fn = ntk.relu_mlp_stax(w)
    theta = ntk.infinite_width_ntk(kernel_fn, x_j)
    errs = []
    for seed in SEEDS:
        _, p = init_fn(jax.random.PRNGKey(seed), x_j.shape)
        K_w = ntk.empirical_ntk(apply_fn, p, x_j)
        errs.append(float(jnp.linalg.norm(K_w - theta) / jnp.linalg.norm(theta)))
    errors.append(float(np.mean(errs)))
    spectra[f"width {w}"] = np.asarray(features.from_gram(K_w, y).s ** 2)
    print(f"width {w:5d}: relative error {errors[-1]:.4f}")
spectra["infinite width"] = np.asarray(features.from_gram(theta, y).s ** 2)
run.save_figure(
    feature_plots.spectra(spectra, top=40, title="two-layer ReLU, NTK parameterisation"), "width_spectra"
)
run.save_figure(feature_plots.width_convergence(WIDTHS, errors), "width_convergence")
run.write_summary({"n": N, "top_s": np.asarray(feats.s[:10]), "widths": WIDTHS, "relative_errors": errors})
run.complete()
