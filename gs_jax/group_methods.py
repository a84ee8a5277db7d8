"""The maths of the worst-group methods of paper Table 3 and SPEC §5b, as pure functions (no training loop).

- **Group DRO** (Sagawa et al., ICLR 2020, Algorithm 1 and Eq. 5; reference code ``kohpangwei/group_DRO``,
  ``loss.py``): :func:`group_dro_init`, :func:`group_mean_losses`, :func:`group_dro_update`,
  :func:`group_dro_loss`, and :func:`group_dro_step` which chains them in the reference order.
- **JTT** (Liu et al., ICML 2021; reference code ``anniesch/jtt``): :func:`jtt_error_set`, :func:`jtt_weights`,
  :func:`jtt_upsample_indices`.
- **DFR** (Kirichenko et al., ICLR 2023; reference code ``PolinaKirichenko/deep_feature_reweighting``):
  :func:`group_balanced_indices` and :func:`fit_last_layer`.

Groups are integers in ``0..n_groups-1`` with ``n_groups`` a Python int (static under jit). The per-class SD forms
live in ``gs_jax.losses`` and every method's loss in ``gs_jax.algorithms``; this module holds the maths those
records and the post-hoc drivers call.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import losses
from gs_jax.errors import check

# ----------------------------------------------------------------------------------------------------------------
# Group DRO (Sagawa et al. 2020)
# ----------------------------------------------------------------------------------------------------------------


def group_dro_init(n_groups: int) -> jax.Array:
    """Initial adversarial group weights q, uniform: float32 ``(n_groups,)`` of ``1/n_groups``."""
    check(n_groups >= 1, f"group DRO needs n_groups >= 1, got {n_groups}")
    return jnp.full((n_groups,), 1.0 / n_groups, jnp.float32)


def group_mean_losses(
    per_example_loss_n: jax.Array, groups_n: jax.Array, n_groups: int
) -> tuple[jax.Array, jax.Array]:
    """Mean loss of each group in the batch and the batch counts, both ``(n_groups,)``.

    A group absent from the batch gets mean loss **0**, as the reference ``compute_group_avg`` (it divides by
    ``count + (count == 0)``); ``losses.segment_means``.
    """
    return losses.segment_means(per_example_loss_n, jnp.asarray(groups_n), n_groups)


def group_dro_update(
    q_g: jax.Array,
    group_losses_g: jax.Array,
    group_counts_g: jax.Array | None,
    eta: float,
    adj=None,
) -> jax.Array:
    """One online exponentiated-gradient step on the group weights (Sagawa et al. 2020, Algorithm 1):

        q_g ← q_g · exp(η · (L_g + C_g / √n_g)),   then q ← q / Σ_g q_g.

    Args:
      q_g: ``(G,)`` current weights (on the simplex).
      group_losses_g: ``(G,)`` mean loss of each group in the batch (:func:`group_mean_losses`); no gradient flows
        through the update (the reference uses ``.data``).
      group_counts_g: ``(G,)`` group sizes n_g of the **training set** (the reference's
        ``dataset.group_counts()``, not the batch counts); only read when ``adj`` is given, may be None otherwise.
      eta: step size η_q (reference ``--robust_step_size``, 0.01).
      adj: the generalisation adjustment C (scalar or ``(G,)``; reference ``--generalization_adjustment``,
        default 0). None means 0. A group with n_g = 0 gets no adjustment.

    Returns: ``(G,)`` new weights. Computed in log space (``log q + η·L − logsumexp``), which equals the
    normalised product but cannot overflow.

    Groups absent from the batch, as in the reference: their mean loss is 0, so their factor is ``exp(0) = 1``
    (or ``exp(η·C_g/√n_g)`` with an adjustment): their *unnormalised* weight is kept and they lose share only
    through the renormalisation by the other groups' growth. Reference quirk not copied: ``loss.py`` adds the
    adjustment only when *every* entry of C is > 0 (a vector C mixing zeros and positive values is ignored
    entirely there); here zero entries simply add nothing.
    """
    loss_g = jax.lax.stop_gradient(jnp.asarray(group_losses_g))
    if adj is not None:
        check(group_counts_g is not None, "group_dro_update: adj needs the training-set group_counts")
        counts = jnp.asarray(group_counts_g, loss_g.dtype)
        loss_g = loss_g + jnp.where(counts > 0, jnp.asarray(adj, loss_g.dtype) / jnp.sqrt(counts), 0.0)
    logits = jnp.log(q_g) + eta * loss_g
    return jax.nn.softmax(logits)


def group_dro_loss(
    per_example_loss_n: jax.Array, groups_n: jax.Array, q_g: jax.Array, n_groups: int
) -> tuple[jax.Array, jax.Array]:
    """Robust loss ``Σ_g q_g · L_g`` and the per-group mean losses ``L_g`` ``(n_groups,)``.

    ``q_g`` is treated as a constant (``stop_gradient``), so the gradient is the q-weighted sum of the group-mean
    gradients. The reference computes its robust loss from the *adjusted* losses (an in-place ``+=`` aliases
    ``group_loss``); the adjustment is constant, so only the logged value differs, not the gradient.
    """
    group_losses, _ = group_mean_losses(per_example_loss_n, groups_n, n_groups)
    return jnp.dot(jax.lax.stop_gradient(q_g), group_losses), group_losses


def group_dro_step(
    q_g: jax.Array,
    per_example_loss_n: jax.Array,
    groups_n: jax.Array,
    n_groups: int,
    eta: float,
    group_counts_g: jax.Array | None = None,
    adj=None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One Group DRO step in the reference order: group means, update q, then the loss with the **new** q.

    Returns ``(loss, q_new, group_losses)``; differentiate ``loss`` with respect to the model parameters.
    """
    group_losses, _ = group_mean_losses(per_example_loss_n, groups_n, n_groups)
    q_new = group_dro_update(q_g, group_losses, group_counts_g, eta, adj)
    return jnp.dot(q_new, group_losses), q_new, group_losses


# ----------------------------------------------------------------------------------------------------------------
# JTT (Liu et al. 2021)
# ----------------------------------------------------------------------------------------------------------------


def jtt_error_set(pred_n, y_n) -> np.ndarray:
    """The JTT error set: a bool mask ``(n,)`` of the training examples the identification model gets wrong.

    ``pred_n`` are predicted labels (e.g. :func:`gs_jax.metrics.predictions` of the logits after T epochs of
    ERM); the reference marks ``y_pred != y_true`` (``process_training.py``, column ``wrong_1_times``).
    """
    pred_n, y_n = np.asarray(pred_n), np.asarray(y_n)
    check(pred_n.shape == y_n.shape, f"jtt_error_set: pred {pred_n.shape} and y {y_n.shape} differ in shape")
    return pred_n != y_n


def jtt_weights(error_mask_n, lambda_up: float) -> np.ndarray:
    """Per-example loss weights of the JTT second stage, float32 ``(n,)``: λ_up in the error set, 1 elsewhere.

    This is the paper's D_up ("the error set λ_up times and all other examples once", Algorithm 1) as a weighted
    loss. The reference code's upsampled list (:func:`jtt_upsample_indices`) holds each error example
    λ_up + 1 times, i.e. it equals ``jtt_weights(mask, lambda_up + 1)``.
    """
    check(lambda_up >= 0, f"JTT lambda_up must be >= 0, got {lambda_up}")
    return np.where(np.asarray(error_mask_n, bool), np.float32(lambda_up), np.float32(1.0))


def jtt_upsample_indices(error_mask_n, lambda_up: int) -> np.ndarray:
    """The upsampled training index list as the JTT reference builds it (``run_expt.py``):

        ConcatDataset([train_data, Subset(train_data, list(aug_indices) * up_weight)])

    i.e. ``[0, 1, …, n−1]`` followed by the error-set indices repeated ``lambda_up`` times, in that order.
    Every error example therefore appears ``lambda_up + 1`` times (one more than the paper's λ_up). int64.
    The reference's ``--up_weight -1`` (automatic balancing) is not supported.
    """
    check(
        int(lambda_up) == lambda_up and lambda_up >= 0,
        f"JTT lambda_up must be a non-negative integer, got {lambda_up}",
    )
    mask = np.asarray(error_mask_n, bool)
    aug = np.flatnonzero(mask)
    return np.concatenate(
        [np.arange(mask.size, dtype=np.int64), np.tile(aug, int(lambda_up)).astype(np.int64)]
    )


# ----------------------------------------------------------------------------------------------------------------
# DFR (Kirichenko et al. 2023)
# ----------------------------------------------------------------------------------------------------------------


def group_balanced_indices(groups_n, n_groups: int, key: jax.Array) -> np.ndarray:
    """A group-balanced subsample: m random examples of every non-empty group, m = the smallest non-empty count.

    As the DFR reference (shuffle each group's indices, keep the first ``min_g``), except that empty groups are
    skipped instead of making m = 0. Sampling is without replacement, one key per group from ``key``. Returns
    int64 indices ``(m · #non-empty groups,)``, concatenated group by group.
    """
    groups_n = np.asarray(groups_n)
    check(groups_n.ndim == 1, f"groups must be 1-d, got shape {groups_n.shape}")
    check(
        groups_n.size == 0 or (groups_n.min() >= 0 and groups_n.max() < n_groups),
        f"group ids must lie in 0..{n_groups - 1}",
    )
    members = [np.flatnonzero(groups_n == g) for g in range(n_groups)]
    sizes = [len(m) for m in members if len(m) > 0]
    check(len(sizes) > 0, "group_balanced_indices: every group is empty")
    m = min(sizes)
    keys = jax.random.split(key, n_groups)
    out = []
    for g, idx in enumerate(members):
        if len(idx) == 0:
            continue
        perm = np.asarray(jax.random.permutation(keys[g], len(idx)))
        out.append(idx[perm[:m]])
    return np.concatenate(out).astype(np.int64)


def _objective(theta, x_na, y_n, s_n, l2):
    z = x_na @ theta
    nll = jnp.sum(s_n * (jax.nn.softplus(z) - y_n * z)) / jnp.sum(s_n)
    return nll + 0.5 * l2 * jnp.sum(theta[:-1] ** 2)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _newton(x_na, y_n, s_n, l2, tol, max_iter: int):
    d1 = x_na.shape[1]
    reg = jnp.ones(d1, x_na.dtype).at[-1].set(0.0)  # no penalty on the bias
    s_norm = s_n / jnp.sum(s_n)
    f = functools.partial(_objective, x_na=x_na, y_n=y_n, s_n=s_n, l2=l2)

    def grad_hess(theta):
        z = x_na @ theta
        p = jax.nn.sigmoid(z)
        g = x_na.T @ (s_norm * (p - y_n)) + l2 * reg * theta
        h = (x_na.T * (s_norm * p * (1.0 - p))[None, :]) @ x_na + jnp.diag(l2 * reg)
        jitter = 1e-10 * (
            jnp.trace(h) / d1 + 1.0
        )  # keeps the bias direction invertible when every p saturates
        return g, h + jitter * jnp.eye(d1, dtype=x_na.dtype)

    def cond(state):
        _, it, gnorm, ok = state
        return (it < max_iter) & (gnorm > tol) & ok

    def body(state):
        theta, it, _, _ = state
        g, h = grad_hess(theta)
        step = -jnp.linalg.solve(h, g)
        f0, slope = f(theta), jnp.dot(g, step)

        def ls_cond(ls):
            t, _ = ls
            return (f(theta + t * step) > f0 + 1e-4 * t * slope) & (t > 2.0**-30)

        t, _ = jax.lax.while_loop(ls_cond, lambda ls: (0.5 * ls[0], ls[1]), (jnp.asarray(1.0, x_na.dtype), 0))
        ok = t > 2.0**-30  # a failed line search means the objective is flat to rounding: stop
        theta = jnp.where(ok, theta + t * step, theta)
        g_new, _ = grad_hess(theta)
        return theta, it + 1, jnp.max(jnp.abs(g_new)), ok

    theta0 = jnp.zeros(d1, x_na.dtype)
    g0, _ = grad_hess(theta0)
    state = (theta0, 0, jnp.max(jnp.abs(g0)), jnp.asarray(True))
    theta, it, gnorm, _ = jax.lax.while_loop(cond, body, state)
    return theta, it, gnorm


def fit_last_layer(
    features_nd,
    y_n,
    *,
    l2: float,
    sample_weight=None,
    max_iter: int = 100,
    tol: float | None = None,
    with_info: bool = False,
):
    """L2-regularised logistic regression on fixed features (the DFR last-layer refit), by damped Newton in jax.

    Minimises (bias b unpenalised)

        J(w, b) = Σ_i s_i · [softplus(z_i) − y_i z_i] / Σ_i s_i + (l2/2) ‖w‖²,   z_i = x_iᵀw + b,

    which is scikit-learn's ``LogisticRegression(penalty="l2", C)`` with ``l2 = 1 / (C · Σ_i s_i)``. Each step
    solves the (d+1)×(d+1) Newton system and backtracks (Armijo) from the full step; J is strictly convex for
    l2 > 0, so this converges quadratically in a few dozen steps (d = 2048 ResNet-50 features are fine). The DFR
    reference instead uses an L1 penalty (liblinear) on standardised features and averages the coefficients of
    several balanced refits; standardising and averaging are left to the caller.

    Args:
      features_nd: ``(n, d)`` features (float32, or float64 under x64). y_n: ``(n,)`` labels in {0, 1}.
      l2: penalty strength, > 0. sample_weight: optional ``(n,)`` non-negative weights s_i (default all 1).
      max_iter: Newton steps at most. tol: stop when ``max |∇J| <= tol``; default 1e-5 in float32 (about the
        rounding floor of the gradient of a mean over examples) and 1e-9 in float64.
      with_info: also return ``{"n_iter", "grad_max", "converged"}``.
    Returns: ``(w (d,), b scalar)`` (plus the info dict when asked).
    """
    x = jnp.asarray(features_nd)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    check(x.ndim == 2, f"fit_last_layer: features must be (n, d), got shape {x.shape}")
    n = x.shape[0]
    y = jnp.asarray(y_n, x.dtype)
    check(y.shape == (n,), f"fit_last_layer: y must have shape ({n},), got {y.shape}")
    check(l2 > 0, f"fit_last_layer: l2 must be > 0 (the unregularised fit may not exist), got {l2}")
    s = jnp.ones(n, x.dtype) if sample_weight is None else jnp.asarray(sample_weight, x.dtype)
    check(s.shape == (n,), f"fit_last_layer: sample_weight must have shape ({n},), got {s.shape}")
    check(
        bool(jnp.all(s >= 0)) and float(jnp.sum(s)) > 0,
        "fit_last_layer: sample_weight must be >= 0, not all 0",
    )
    if tol is None:
        tol = 1e-9 if x.dtype == jnp.float64 else 1e-5
    x_na = jnp.concatenate([x, jnp.ones((n, 1), x.dtype)], axis=1)
    theta, it, gmax = _newton(x_na, y, s, jnp.asarray(l2, x.dtype), jnp.asarray(tol, x.dtype), max_iter)
    w, b = theta[:-1], theta[-1]
    if with_info:
        return w, b, {"n_iter": int(it), "grad_max": float(gmax), "converged": bool(gmax <= tol)}
    return w, b
