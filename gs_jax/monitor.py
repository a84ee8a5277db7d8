"""The starvation monitor: Definition 1's features of any model at a reference point, and the responses z(t) to them
along training (Eq. 3-4), for a probe set of up to ~20,000 examples.

    mon = monitor.at_reference(apply_fn, params0, x_probe, y_probe, k=10)   # U, s of YΦ₀ (top k) and ŷ₀
    z_t = monitor.responses(mon, logits_t)                                 # z(t) = UᵀY(ŷ(t) − ŷ₀), shape (..., k)
    ev = monitor.evaluator(lambda state, data: f(state.params, x_probe), mon, every=50)   # a trainer evaluator
    corr = monitor.alignment(mon, attribute)                               # which feature is "colour"?

``apply_fn(params, x)`` returns one logit per example, ``(n,)`` or ``(n, 1)`` (binary tasks, labels in {0, 1} or
{−1, +1}), or ``(n, C)`` for C classes (below). Features come from :mod:`gs_jax.features`: the exact
eigendecomposition of the Gram Y K Y when its rows are at most ``dense_max`` (K by :func:`gs_jax.ntk.empirical_ntk`),
else the top k by Lanczos on NTK-vector products (K is never formed).

**Centred responses (the default).** Eq. 3-4 linearise the network around θ₀: ŷ(θ) ≈ ŷ₀ + Φ₀(θ − θ₀), so the part
of the output the features describe is ŷ − ŷ₀ = U S Vᵀ(θ − θ₀), and z(t) = UᵀY(ŷ(t) − ŷ₀) = S Vᵀ(θ(t) − θ₀) starts
at exactly 0. Uncentred responses UᵀYŷ(t) add the constant UᵀYŷ₀: the random initial function's projection onto
each feature (O(‖ŷ₀‖/√n) per feature for a standard init), which the learning dynamics of Section 3 do not produce
and which does not shrink with training; ``centred=False`` gives them (the authors' moons figure uses them).

**Any model.** ``apply_fn, params`` may be a Flax NNX or Equinox module with ``params=None`` (:mod:`gs_jax.adapters`).

**k classes.** A model with logits ``(n, C)`` and class labels y ∈ {0, …, C−1} takes ``form=`` (the two forms of
Definition 1 in :mod:`gs_jax.features`, with Y_ic = 2·1[y_i = c] − 1):

- ``"one_vs_rest"``: per class c, the features of Y_c Φ₀⁽ᶜ⁾ (Φ₀⁽ᶜ⁾ = ∂ŷ_c/∂θ) and z_c = U_cᵀY_c(ŷ_c − ŷ_c,₀): one binary
  monitor per output stacked along a leading class axis — U ``(C, n, k)``, s ``(C, k)``, y and ŷ₀ ``(C, n)``;
  responses ``(..., C, k)``; :func:`for_class` gives class c's binary monitor (for :func:`identify`).
- ``"joint"``: the features of YΦ₀ on all n·C rows (example-major, row i·C + c) and z = UᵀY vec(ŷ − ŷ₀): a binary
  monitor on the rows — U ``(n·C, k)``, y and ŷ₀ ``(n·C,)``; responses ``(..., k)`` from logits ``(..., n, C)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import adapters, features, trainer
from gs_jax.errors import check


class Monitor(NamedTuple):
    """Features at the reference point (a pytree; stack several along a leading axis with :func:`stack`).

    Binary (and joint, on the n·C rows): U ``(n, k)``, s ``(k,)``, y and yhat0 ``(n,)``. One-vs-rest: a leading
    class axis on every field, U ``(C, n, k)``, s ``(C, k)``, y and yhat0 ``(C, n)``.
    """

    U: jax.Array  # (n, k) feature weights, columns oriented so that 1ᵀu_j ≥ 0 (features module convention)
    s: jax.Array  # (k,) strengths, descending
    y: jax.Array  # (n,) labels in ±1
    yhat0: jax.Array  # (n,) logits at the reference point

    @property
    def k(self) -> int:
        return int(self.s.shape[-1])

    @property
    def one_vs_rest(self) -> bool:
        """Whether this holds one binary monitor per class (a class axis in front), from ``form="one_vs_rest"``."""
        return self.y.ndim == 2


def _flat_logits(out, n: int) -> jax.Array:
    out = jnp.asarray(out)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    check(
        out.shape == (n,),
        f"the monitor needs one logit per example, shape ({n},) or ({n}, 1); got {out.shape}",
    )
    return out


@dataclasses.dataclass(frozen=True)
class _Output:
    """The logit of output ``c`` alone, ``(n,)``: the model of class c's one-vs-rest task (hashable for caches).

    Picked by a product with the one-hot vector e_c, not by indexing: neural-tangents' structured derivatives
    have no rule for the ``slice`` that indexing lowers to."""

    apply_fn: Callable
    c: int

    def __call__(self, params, x):
        logits = self.apply_fn(params, x)
        return logits @ jax.nn.one_hot(self.c, logits.shape[-1], dtype=logits.dtype)


def _binary(apply_fn, params, x, y_pm, yhat0, k: int, method: str, dense_max: int) -> Monitor:
    rows = int(yhat0.shape[0])
    check(1 <= int(k) < rows, f"k must be in [1, {rows - 1}] (fewer than the {rows} probe rows), got {k}")
    if method == "auto":
        method = "dense" if rows <= dense_max else "lanczos"
    if method == "dense":
        from gs_jax import ntk

        f = features.from_gram(ntk.empirical_ntk(apply_fn, params, x), y_pm, top_k=int(k))
    else:
        f = features.top_k(apply_fn, params, x, y_pm, int(k), method=method)
    return Monitor(jnp.asarray(f.U), jnp.asarray(f.s), y_pm.astype(f.U.dtype), yhat0.astype(f.U.dtype))


def at_reference(
    apply_fn: Callable,
    params: Any,
    x: Any,
    y: Any,
    k: int,
    *,
    form: str | None = None,
    method: str = "auto",
    dense_max: int = 2048,
) -> Monitor:
    """The top ``k`` features of YΦ₀ at ``params`` (Definition 1) on the probe set ``(x, y)``, and ŷ₀.

    ``form``: for one logit per example ``None`` (or ``"binary"``); for C > 1 logits, class labels ``y`` in
    0..C−1 and ``"one_vs_rest"`` or ``"joint"`` (module docstring). ``method``: ``"dense"`` (exact: ``eigh`` of
    Y K Y, K formed; memory rows²), ``"lanczos"`` or ``"randomized"`` (matrix-free,
    :func:`gs_jax.features.top_k`), ``"auto"``: dense when the n·C rows of the full Gram (n for one logit) are
    at most ``dense_max``, else Lanczos. One-vs-rest dense forms that Gram once and slices it per class; its
    matrix-free path runs Lanczos on each output in turn.
    """
    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    check(method in ("auto", "dense", "lanczos", "randomized"),
          f"unknown method {method!r}; choose auto, dense, lanczos or randomized")  # fmt: skip
    yhat0 = jnp.asarray(apply_fn(params, x))
    n = int(yhat0.shape[0])
    classes = 1 if yhat0.ndim == 1 or (yhat0.ndim == 2 and yhat0.shape[1] == 1) else int(yhat0.shape[-1])
    if classes == 1:
        check(form in (None, "binary"), f"form={form!r} needs C > 1 logits per example; this model has one")
        return _binary(
            apply_fn, params, x, features.as_pm1(y, n), _flat_logits(yhat0, n), k, method, dense_max
        )
    check(
        yhat0.shape == (n, classes) and form in ("one_vs_rest", "joint"),
        f"the monitor needs one logit per example, or logits (n, C) with form='one_vs_rest' or form='joint'; "
        f"got logits of shape {yhat0.shape} and form={form!r}",
    )
    Y = features.class_labels(y, classes)
    if form == "joint":
        return _binary(apply_fn, params, x, Y.reshape(-1), yhat0.reshape(-1), k, method, dense_max)
    if method == "dense" or (method == "auto" and n * classes <= dense_max):
        # one Gram of all n·C rows (one compilation), sliced per class: K⁽ᶜᶜ⁾ = K[c::C, c::C]
        from gs_jax import ntk

        check(1 <= int(k) < n, f"k must be in [1, {n - 1}] (fewer than the {n} probe examples), got {k}")
        f = features.one_vs_rest_from_gram(ntk.empirical_ntk(apply_fn, params, x), y, top_k=int(k))
        return Monitor(f.U, f.s, Y.T.astype(f.U.dtype), yhat0.T.astype(f.U.dtype))
    method = "lanczos" if method == "auto" else method
    per = [
        _binary(_Output(apply_fn, c), params, x, Y[:, c], yhat0[:, c], k, method, dense_max)
        for c in range(classes)
    ]
    return stack(per)


def for_class(mon: Monitor, c: int) -> Monitor:
    """Class c's binary monitor out of a one-vs-rest one (U_c, s_c, Y_c, ŷ_c,₀)."""
    check(mon.one_vs_rest, "for_class needs a monitor made with form='one_vs_rest'")
    return jax.tree_util.tree_map(lambda a: a[c], mon)


def responses(mon: Monitor, logits: Any, *, centred: bool = True) -> jax.Array:
    """z = UᵀY(ŷ − ŷ₀) (``centred``, default) or UᵀYŷ.

    Binary: logits ``(..., n)`` give ``(..., k)``. Joint: logits ``(..., n, C)`` (or ``(..., n·C)``) give
    ``(..., k)``. One-vs-rest: logits ``(..., n, C)`` give ``(..., C, k)``, z_c = U_cᵀY_c(ŷ_c − ŷ_c,₀).
    """
    logits = jnp.asarray(logits)
    if mon.one_vs_rest:
        classes, n = int(mon.y.shape[0]), int(mon.y.shape[1])
        check(logits.shape[-2:] == (n, classes),
              f"logits must have shape (..., {n}, {classes}) (probe set, classes), got {logits.shape}")  # fmt: skip
        diff = logits - mon.yhat0.T if centred else logits
        return jnp.einsum("cnk,cn,...nc->...ck", mon.U, mon.y, diff)
    n = mon.U.shape[-2]
    if logits.ndim >= 2 and logits.shape[-1] == 1 and logits.shape[-2] == n:
        logits = logits[..., 0]
    elif logits.ndim >= 2 and logits.shape[-1] != n and logits.shape[-2] * logits.shape[-1] == n:
        logits = logits.reshape(*logits.shape[:-2], n)  # joint form: (..., n, C) -> the n·C rows
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

    ``logits_fn(state, data) -> (n,)`` (or ``(n, C)``) gives the probe set's logits for one restart; a
    one-vs-rest monitor records ``z{j}_c{c}`` (feature j of class c), scalars as the trainer expects. ``mon``: one Monitor shared by
    every restart, or None to read it from ``data[data_key]`` (a :class:`Monitor`, or its 4 arrays as a tuple, from
    :func:`stack` inside per-restart data, so that each restart has the features of its own initialisation).
    """

    def fn(state, data):
        m = mon if mon is not None else Monitor(*data[data_key])
        z = responses(m, logits_fn(state, data), centred=centred)
        if z.ndim == 2:  # one-vs-rest: (C, k)
            return {f"z{j}_c{c}": z[c, j] for c in range(z.shape[0]) for j in range(z.shape[1])}
        return {f"z{j}": z[j] for j in range(z.shape[-1])}

    return trainer.Evaluator(name, fn, every)


def trajectory(
    history: list[dict[str, Any]], k: int, name_prefix: str = "z", *, classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps (T,), z (R, T, k))`` from a trainer history holding the evaluator's ``z0 … z{k−1}``; with
    ``classes=C`` (a one-vs-rest monitor's ``z{j}_c{c}``) ``z`` is ``(R, T, C, k)``. The history of a one-key
    run (no restart axis) gives ``z`` without the R axis."""
    names = [[f"{name_prefix}{j}" for j in range(k)]]
    if classes is not None:
        names = [[f"{name_prefix}{j}_c{c}" for j in range(k)] for c in range(int(classes))]
    rows = [h for h in history if names[0][0] in h]
    check(
        rows, f"the history holds no '{names[0][0]}' records (was the monitor's evaluator passed to train?)"
    )
    steps = np.array([h["step"] for h in rows])
    single = np.ndim(rows[0][names[0][0]]) == 0
    z = np.stack(
        [np.stack([np.stack([np.asarray(h[nm]) for nm in per], -1) for per in names], -2) for h in rows],
        0 if single else 1,
    )
    return steps, (z if classes is not None else z[..., 0, :])


def alignment(mon: Monitor, attribute: Any, *, centred: bool = True) -> np.ndarray:
    """Pearson correlation (k,) between each feature's weights u_j (over the n probe examples) and a per-example
    ``attribute`` (e.g. colour-label agreement ±1, group membership); 0 for a constant attribute or column.

    A feature that "is" an attribute has |corr| near 1. Note u_j lives in Y-space (rows of YΦ₀): a feature that
    reads colour c has u_j ∝ y·c, so pass the agreement y·c, not c itself.

    ``centred=False``: the cosine of u_j and the attribute instead (no means removed). An attribute that always
    agrees with the label (the feature that defines the label, e.g. a dominoes' item: y·c = +1 for every example)
    is constant in Y-space, where a correlation is undefined; its feature is the one whose u_j points along the
    all-ones vector, which the cosine measures.

    Joint form: one value per row, ``(n·C,)`` or ``(n, C)``. One-vs-rest: ``(n,)`` (the same attribute for every
    class) or ``(n, C)`` (column c for class c); returns ``(C, k)``.
    """
    if mon.one_vs_rest:
        classes, n = int(mon.y.shape[0]), int(mon.y.shape[1])
        a = np.asarray(attribute, np.float64)
        check(a.shape in ((n,), (n, classes)),
              f"attribute must have shape ({n},) or ({n}, {classes}) for a one-vs-rest monitor, got {a.shape}")  # fmt: skip
        cols = a[:, None].repeat(classes, 1) if a.ndim == 1 else a
        return np.stack([alignment(for_class(mon, c), cols[:, c], centred=centred) for c in range(classes)])
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
    ``{name: {"index", "corr", "s"}}``. One-vs-rest: call it per class on :func:`for_class`."""
    check(not mon.one_vs_rest, "identify takes one class's monitor: identify(for_class(mon, c), attributes)")
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
