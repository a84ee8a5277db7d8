"""Evaluation metrics for the worst-group benchmarks (paper Table 3, SPEC §4.5): pure functions, no IO.

Conventions shared by every function here:

- **Binary logits** have shape ``(n,)`` and labels ``y`` in {0, 1}; the prediction is ``ŷ > 0``, so a logit of
  exactly 0 predicts class 0 (as :func:`gs_jax.losses.mean_accuracy`). The authors' CelebA code compares
  ``sign(ŷ)`` with ``2y − 1`` and so counts a logit of exactly 0 as wrong for *both* classes (SPEC §4.3); the two
  differ only on that measure-zero event.
- **k-class logits** have shape ``(n, k)`` and integer labels in ``0..k-1``; the prediction is the argmax.
- **Groups** are integers in ``0..n_groups-1`` (CelebA: ``group = 2·y + male``; dominoes: ``2·y + digit``).
  ``n_groups`` must be a Python int (static under :func:`jax.jit`: bind it with ``functools.partial`` or
  ``static_argnames``). Out-of-range group ids are dropped silently by the segment sums, so check them upstream.
- An **empty group** has accuracy NaN; worst-group and group-weighted averages skip empty groups.

The array functions are jit-compatible; :func:`mean_std` and :func:`format_mean_std` are host-side reporting
helpers on Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax.errors import GsJaxError, check


def predictions(logits: jax.Array) -> jax.Array:
    """Predicted class per example: ``ŷ > 0`` for binary logits ``(n,)``, argmax for ``(n, k)`` logits.

    Returns an int32 array of shape ``(n,)``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim == 1:
        return (logits > 0).astype(jnp.int32)
    if logits.ndim == 2:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    raise GsJaxError(f"logits must have shape (n,) or (n, k), got {logits.shape}")


def correct(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example correctness, float32 ``(n,)`` of 0/1, for binary ``(n,)`` or k-class ``(n, k)`` logits."""
    return (predictions(logits) == jnp.asarray(y).astype(jnp.int32)).astype(jnp.float32)


def accuracy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of correctly classified examples (a scalar in [0, 1]).

    Args:
      logits: ``(n,)`` binary logits (prediction ``ŷ > 0``) or ``(n, k)`` class scores (prediction argmax).
      y: ``(n,)`` labels, {0, 1} for binary logits, ``0..k-1`` otherwise.
    """
    return jnp.mean(correct(logits, y))


def group_counts(groups: jax.Array, n_groups: int) -> jax.Array:
    """Number of examples in each group, float32 ``(n_groups,)``."""
    groups = jnp.asarray(groups).astype(jnp.int32)
    return jax.ops.segment_sum(jnp.ones(groups.shape, jnp.float32), groups, num_segments=n_groups)


def group_accuracies(logits: jax.Array, y: jax.Array, groups: jax.Array, n_groups: int) -> jax.Array:
    """Accuracy within each group, float32 ``(n_groups,)``; NaN for a group with no example.

    ``acc_g = #{i : g_i = g, pred_i = y_i} / #{i : g_i = g}``.
    """
    groups = jnp.asarray(groups).astype(jnp.int32)
    hits = jax.ops.segment_sum(correct(logits, y), groups, num_segments=n_groups)
    counts = group_counts(groups, n_groups)
    return jnp.where(counts > 0, hits / jnp.maximum(counts, 1.0), jnp.nan)


def worst_group_accuracy(logits: jax.Array, y: jax.Array, groups: jax.Array, n_groups: int) -> jax.Array:
    """Minimum over the non-empty groups of the group accuracy (Sagawa et al. 2020; paper Table 3).

    NaN only when every group is empty.
    """
    return jnp.nanmin(group_accuracies(logits, y, groups, n_groups))


def average_accuracy(
    logits: jax.Array,
    y: jax.Array,
    groups: jax.Array | None = None,
    n_groups: int | None = None,
    group_weights: jax.Array | None = None,
) -> jax.Array:
    """The "average accuracy" column of Table 3.

    Without ``group_weights`` it is the plain accuracy over all examples (what Sagawa et al. 2020 and the paper
    report for CelebA). With ``group_weights`` ``(n_groups,)`` (e.g. the training-set group fractions, the
    "mean accuracy" DFR reports for Waterbirds) it is ``Σ_g w_g·acc_g / Σ_g w_g`` over the non-empty groups.
    """
    if group_weights is None:
        return accuracy(logits, y)
    check(
        groups is not None and n_groups is not None,
        "average_accuracy: group_weights needs groups and n_groups",
    )
    acc = group_accuracies(logits, y, groups, n_groups)
    w = jnp.where(jnp.isnan(acc), 0.0, jnp.asarray(group_weights, jnp.float32))
    return jnp.sum(w * jnp.nan_to_num(acc)) / jnp.sum(w)


def binary_entropy_from_logits(logits: jax.Array) -> jax.Array:
    """Entropy in nats of the Bernoulli(σ(ŷ)) prediction, elementwise (same shape as ``logits``).

    ``H(σ(z)) = softplus(z) − z·σ(z)``: finite for every logit, ln 2 at z = 0 and → 0 as |z| → ∞. The authors'
    formula ``−(p ln p + (1−p) ln(1−p+1e-8))`` gives NaN once σ underflows to 0 (SPEC §7.7).
    Colored MNIST reports its mean over an environment.
    """
    logits = jnp.asarray(logits)
    return jax.nn.softplus(logits) - logits * jax.nn.sigmoid(logits)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and **population** standard deviation (ddof = 0, as the authors' ``np.std``; SPEC §7.16).

    Non-finite entries (a failed or diverged run) are ignored; with no finite entry the result is (nan, nan).
    """
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std())


def format_mean_std(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """``"74.9 ± 1.2"``: mean and std multiplied by ``scale`` (100 turns fractions into percent).

    A non-finite mean prints as ``"N/A"`` (as Table 3 does for a missing entry); a non-finite std as ``"nan"``.
    """
    if not math.isfinite(mean):
        return "N/A"
    std_text = f"{std * scale:.{digits}f}" if math.isfinite(std) else "nan"
    return f"{mean * scale:.{digits}f} ± {std_text}"


# Input-space margins of a 2-D classifier (two-moons): the decision boundary located on a grid


def boundary_points(f_gg: np.ndarray, axis_g: np.ndarray) -> np.ndarray:
    """Zero crossings of a logit field sampled on the grid ``(axis[i], axis[j])``, by linear interpolation along
    every grid edge whose end values differ in sign (or hit 0). Returns ``(m, 2)`` points on ŷ = 0."""
    f = np.asarray(f_gg, np.float64)
    a = np.asarray(axis_g, np.float64)
    out = []
    for axis in (0, 1):
        lo = f[:-1, :] if axis == 0 else f[:, :-1]
        hi = f[1:, :] if axis == 0 else f[:, 1:]
        i, j = np.nonzero((lo * hi < 0) | ((lo == 0) & (hi != 0)))
        t = lo[i, j] / (lo[i, j] - hi[i, j])
        if axis == 0:
            out.append(np.stack([a[i] + t * (a[i + 1] - a[i]), a[j]], axis=1))
        else:
            out.append(np.stack([a[i], a[j] + t * (a[j + 1] - a[j])], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2))


def signed_boundary_distances(points_m2: np.ndarray, x_n2: np.ndarray, correct_n: np.ndarray) -> np.ndarray:
    """Distance from every training point to the nearest boundary point, negative where misclassified."""
    if points_m2.shape[0] == 0:
        return np.full(x_n2.shape[0], np.inf)
    d = np.full(x_n2.shape[0], np.inf)
    for start in range(0, points_m2.shape[0], 4096):
        p = points_m2[start : start + 4096]
        d = np.minimum(d, np.sqrt(((x_n2[:, None, :] - p[None, :, :]) ** 2).sum(-1)).min(axis=1))
    return np.where(correct_n, d, -d)


def best_margin_bound(x_n2: np.ndarray, y_n: np.ndarray) -> float:
    """Half the smallest distance between two training points of different classes: no classifier that gets every
    training point right has an input-space margin larger than this (the boundary crosses every such segment)."""
    x = np.asarray(x_n2, np.float64)
    pos = np.asarray(y_n) > 0.5
    check(pos.any() and (~pos).any(), "best_margin_bound needs examples of both classes")
    d2 = ((x[pos][:, None, :] - x[~pos][None, :, :]) ** 2).sum(-1)
    return float(0.5 * np.sqrt(d2.min()))


def linear_svm_margin(x_n2: np.ndarray, y_n: np.ndarray) -> float:
    """Geometric margin ``1/‖w‖`` of the hard-margin linear SVM (with bias) on 2-D data; negative if the classes are
    not linearly separable (then: the largest achievable min signed distance to a line, which is < 0).

    For a unit direction w the best bias gives ``g(w) = (min_{y=1} w·x − max_{y=0} w·x)/2``, and the SVM margin is
    ``max_w g(w)``. ``g`` is a minimum of functions linear in w, so on the unit circle its maximum is either a smooth
    point, where one point per class is active and ``w ∥ x₊ − x₋``, or a kink, where two points of one class tie
    and w is normal to the segment between them. Evaluating g at every such candidate (both signs) is exact; the
    candidates are taken on the convex hull of each class (where the active points must lie), so the cost is small.
    """
    from scipy.spatial import ConvexHull  # scipy is a dependency of the stack, imported here only

    x = np.asarray(x_n2, np.float64)
    check(x.ndim == 2 and x.shape[1] == 2, f"linear_svm_margin is for 2-D inputs, got shape {x.shape}")
    pos = np.asarray(y_n) > 0.5
    check(pos.any() and (~pos).any(), "linear_svm_margin needs examples of both classes")

    def hull(p):
        if p.shape[0] < 3:
            return p
        try:
            return p[ConvexHull(p).vertices]
        except Exception:  # collinear points: every point is a candidate
            return p

    hp, hn = hull(x[pos]), hull(x[~pos])
    dirs = [(hp[:, None, :] - hn[None, :, :]).reshape(-1, 2)]
    for h in (hp, hn):
        e = (h[:, None, :] - h[None, :, :]).reshape(-1, 2)
        dirs += [np.stack([-e[:, 1], e[:, 0]], 1)]
    w = np.concatenate(dirs)
    norm = np.linalg.norm(w, axis=1)
    w = w[norm > 0] / norm[norm > 0, None]
    w = np.concatenate([w, -w])
    g = 0.5 * ((x[pos] @ w.T).min(axis=0) - (x[~pos] @ w.T).max(axis=0))
    return float(g.max())
