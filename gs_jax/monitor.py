"""The starvation monitor: Definition 1's features of any model at a reference point, and the responses z(t) to them
along training (Eq. 3-4), for a probe set of up to ~20,000 examples.

    mon = monitor.at_reference(apply_fn, params0, x_probe, y_probe, k=10)   # U, s of YΦ₀ (top k) and ŷ₀
    z_t = monitor.responses(mon, logits_t)                                 # z(t) = UᵀY(ŷ(t) − ŷ₀), shape (..., k)
    ev = monitor.evaluator(lambda state, data: f(state.params, x_probe), mon, every=50)   # a trainer evaluator
    corr = monitor.alignment(mon, attribute)                               # which feature is "colour"?

``apply_fn(params, x)`` returns one logit per example, ``(n,)`` or ``(n, 1)`` (binary tasks, labels in {0, 1} or
{−1, +1}). Features come from :mod:`gs_jax.features`: the exact eigendecomposition of the Gram Y K Y when
``n ≤ dense_max`` (K by :func:`gs_jax.ntk.empirical_ntk`), else the top k by Lanczos on NTK-vector products (K is
never formed).

**Centred responses (the default).** Eq. 3-4 linearise the network around θ₀: ŷ(θ) ≈ ŷ₀ + Φ₀(θ − θ₀), so the part
of the output the features describe is ŷ − ŷ₀ = U S Vᵀ(θ − θ₀), and z(t) = UᵀY(ŷ(t) − ŷ₀) = S Vᵀ(θ(t) − θ₀) starts
at exactly 0. Uncentred responses UᵀYŷ(t) add the constant UᵀYŷ₀: the random initial function's projection onto
each feature (O(‖ŷ₀‖/√n) per feature for a standard init), which the learning dynamics of Section 3 do not produce
and which does not shrink with training; ``centred=False`` gives them (the authors' moons figure uses them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import features, trainer
from gs_jax.errors import check


class Monitor(NamedTuple):
    """Features at the reference point (a pytree; stack several along a leading axis with :func:`stack`)."""

    U: jax.Array  # (n, k) feature weights, columns oriented so that 1ᵀu_j ≥ 0 (features module convention)
    s: jax.Array  # (k,) strengths, descending
    y: jax.Array  # (n,) labels in ±1
    yhat0: jax.Array  # (n,) logits at the reference point

    @property
    def k(self) -> int:
        return int(self.s.shape[-1])


def _flat_logits(out, n: int) -> jax.Array:
    out = jnp.asarray(out)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    check(
        out.shape == (n,),
        f"the monitor needs one logit per example, shape ({n},) or ({n}, 1); got {out.shape}",
    )
    return out


def at_reference(
    apply_fn: Callable,
    params: Any,
    x: Any,
    y: Any,
    k: int,
    *,
    method: str = "auto",
    dense_max: int = 2048,
) -> Monitor:
    """The top ``k`` features of YΦ₀ at ``params`` (Definition 1) on the probe set ``(x, y)``, and ŷ₀.

    ``method``: ``"dense"`` (exact: ``eigh`` of Y K Y, K formed; memory n²), ``"lanczos"`` or ``"randomized"``
    (matrix-free, :func:`gs_jax.features.top_k`), ``"auto"``: dense when n ≤ ``dense_max``, else Lanczos.
    """
    yhat0 = jnp.asarray(apply_fn(params, x))
    n = int(yhat0.shape[0])
    yhat0 = _flat_logits(yhat0, n)
    y_pm = features.as_pm1(y, n)
    check(1 <= int(k) < n, f"k must be in [1, {n - 1}] (fewer than the {n} probe examples), got {k}")
    check(method in ("auto", "dense", "lanczos", "randomized"),
          f"unknown method {method!r}; choose auto, dense, lanczos or randomized")  # fmt: skip
    if method == "auto":
        method = "dense" if n <= dense_max else "lanczos"
    if method == "dense":
        from gs_jax import ntk

        f = features.from_gram(ntk.empirical_ntk(apply_fn, params, x), y_pm, top_k=int(k))
    else:
        f = features.top_k(apply_fn, params, x, y_pm, int(k), method=method)
    return Monitor(jnp.asarray(f.U), jnp.asarray(f.s), y_pm.astype(f.U.dtype), yhat0.astype(f.U.dtype))


def responses(mon: Monitor, logits: Any, *, centred: bool = True) -> jax.Array:
    """z = UᵀY(ŷ − ŷ₀) (``centred``, default) or UᵀYŷ for logits of shape ``(..., n)``; returns ``(..., k)``."""
    logits = jnp.asarray(logits)
    n = mon.U.shape[-2]
    if logits.ndim >= 2 and logits.shape[-1] == 1 and logits.shape[-2] == n:
        logits = logits[..., 0]
    check(logits.shape[-1] == n, f"logits must have shape (..., {n}) (the probe set), got {logits.shape}")
    diff = logits - mon.yhat0 if centred else logits
    return jnp.einsum("nk,...n->...k", mon.U, mon.y * diff)


def stack(monitors: list[Monitor]) -> Monitor:
    """Monitors of several restarts (same n, k) with a leading restart axis, to put in per-restart trainer data."""
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *monitors)


def evaluator(
    logits_fn: Callable,
    mon: Monitor | None = None,
    *,
    every: int,
    name: str = "starvation",
    data_key: str = "monitor",
    centred: bool = True,
) -> trainer.Evaluator:
    """A trainer evaluator recording ``z0 … z{k−1}`` (the responses, :func:`responses`) on the schedule ``every``.

    ``logits_fn(state, data) -> (n,)`` gives the probe set's logits for one restart. ``mon``: one Monitor shared by
    every restart, or None to read it from ``data[data_key]`` (a :class:`Monitor`, or its 4 arrays as a tuple, from
    :func:`stack` inside per-restart data, so that each restart has the features of its own initialisation).
    """

    def fn(state, data):
        m = mon if mon is not None else Monitor(*data[data_key])
        z = responses(m, logits_fn(state, data), centred=centred)
        return {f"z{j}": z[j] for j in range(z.shape[-1])}

    return trainer.Evaluator(name, fn, every)


def trajectory(
    history: list[dict[str, Any]], k: int, name_prefix: str = "z"
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps (T,), z (R, T, k))`` from a trainer history holding the evaluator's ``z0 … z{k−1}``."""
    rows = [h for h in history if f"{name_prefix}0" in h]
    check(
        rows, f"the history holds no '{name_prefix}0' records (was the monitor's evaluator passed to train?)"
    )
    steps = np.array([h["step"] for h in rows])
    z = np.stack([np.stack([np.asarray(h[f"{name_prefix}{j}"]) for j in range(k)], -1) for h in rows], 1)
    return steps, z


def alignment(mon: Monitor, attribute: Any, *, centred: bool = True) -> np.ndarray:
    """Pearson correlation (k,) between each feature's weights u_j (over the n probe examples) and a per-example
    ``attribute`` (e.g. colour-label agreement ±1, group membership); 0 for a constant attribute or column.

    A feature that "is" an attribute has |corr| near 1. Note u_j lives in Y-space (rows of YΦ₀): a feature that
    reads colour c has u_j ∝ y·c, so pass the agreement y·c, not c itself.

    ``centred=False``: the cosine of u_j and the attribute instead (no means removed). An attribute that always
    agrees with the label (the feature that defines the label, e.g. a dominoes' item: y·c = +1 for every example)
    is constant in Y-space, where a correlation is undefined; its feature is the one whose u_j points along the
    all-ones vector, which the cosine measures.
    """
    U = np.asarray(mon.U, np.float64)
    a = np.asarray(attribute, np.float64).reshape(-1)
    check(
        a.shape[0] == U.shape[0],
        f"attribute must have one value per probe example ({U.shape[0]}), got {a.shape}",
    )
    check(np.all(np.isfinite(a)), "attribute holds non-finite values")
    uc, ac = (U - U.mean(0), a - a.mean()) if centred else (U, a)
    den = np.sqrt((uc**2).sum(0) * (ac**2).sum())
    return np.where(den > 0, (uc * ac[:, None]).sum(0) / np.where(den > 0, den, 1.0), 0.0)


def identify(
    mon: Monitor, attributes: dict[str, Any], *, centred: bool = True
) -> dict[str, dict[str, float]]:
    """For each named attribute, the feature index with the largest |correlation| (:func:`alignment`; cosine with
    ``centred=False``), distinct features for distinct attributes (greedy, strongest match first):
    ``{name: {"index", "corr", "s"}}``."""
    corr = {name: alignment(mon, a, centred=centred) for name, a in attributes.items()}
    taken: set[int] = set()
    out: dict[str, dict[str, float]] = {}
    for name in sorted(corr, key=lambda nm: -np.max(np.abs(corr[nm]))):
        order = [j for j in np.argsort(-np.abs(corr[name])) if j not in taken]
        check(order, "more attributes than features: raise k")
        j = int(order[0])
        taken.add(j)
        out[name] = {"index": j, "corr": float(corr[name][j]), "s": float(np.asarray(mon.s)[j])}
    return {name: out[name] for name in attributes}
