"""Adversarial robustness: PGD attacks (L∞, L2) and minimal-perturbation margins.

Paper context (Section 4.2, Table 1 and Fig. 2). Gradient Starvation predicts that cross-entropy training stops
learning features once a few have fit the data, which leaves small margins in input space; Spectral Decoupling
(SD) should enlarge them. The paper measures this two ways (SPEC §5, §5.1):

- **Table 1, "Test OOD (PGD = 0.05)"**: accuracy on PGD-perturbed test images. The paper text says "PGD = 0.05";
  the authors' code runs ``torchattacks.PGD(eps=5/255, alpha=0.5/255, steps=10)``: L∞, ε = 5/255 ≈ 0.0196 on
  [0, 1] pixels, step 0.5/255, 10 steps, random start (:data:`TABLE1_PGD`). The two do not match; the code is
  what produced the numbers.
- **Fig. 2**: on CIFAR-2, the fraction of test points whose minimal L∞ perturbation (found by PGD with a binary
  search over ε, 40 iterations, no random start, inputs in [-1, 1]) is below each ε: the CDF of
  :func:`minimal_margin`.

Conventions. ``apply_fn(params, x)`` returns either k ≥ 2 logits of shape (n, k) with integer labels y in
0..k−1, or a single binary logit of shape (n,) with labels in {0, 1} (prediction: logit > 0, so a logit of
exactly 0 predicts class 0, as in :func:`gs_jax.losses.mean_accuracy`). ``apply_fn`` must treat examples
independently (BatchNorm in eval mode, no dropout): the attack uses the gradient of a batch sum as per-example
gradients. Everything here is pure jax: ``jit`` (with ``steps``, ``norm``, ``clip``, ``eps_max``, ``tol`` static,
e.g. bound with ``functools.partial``) and ``vmap`` (over keys, parameters or batches) work. Inputs are checked
when they are concrete; inside ``jit``/``vmap`` only the shape checks run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax.errors import GsJaxError, check

ApplyFn = Callable[[Any, jax.Array], jax.Array]

NORMS = ("linf", "l2")

# The authors' Table 1 attack (SPEC §5.1): torchattacks.PGD(eps=5/255, alpha=0.5/255, steps=10), random start,
# on [0, 1] pixels (their model saw un-normalised images during the attack).
TABLE1_PGD = dict(norm="linf", eps=5 / 255, step_size=0.5 / 255, steps=10, random_start=True, clip=(0.0, 1.0))

# The authors' Fig. 2 margin search (SPEC §5.1): L∞ PGD, 40 iterations, no random start, inputs in [-1, 1]; the
# histogram bins are 1e-3 wide on [0, 1] (the step size of their PGD is not recorded; ours is 2.5·ε/steps).
FIG2_MARGIN = dict(norm="linf", eps_max=1.0, tol=1e-3, steps=40, random_start=False, clip=(-1.0, 1.0))


# ----------------------------------------------------------------------------------------------------------------
# checks and helpers
# ----------------------------------------------------------------------------------------------------------------


def _traced(a) -> bool:
    """Whether ``a`` is an abstract value inside a transformation (then value checks are skipped)."""
    return isinstance(a, jax.core.Tracer)


def _check_common(apply_fn, params, x, y, norm, clip) -> int:
    """Validate shapes (always) and values (when concrete); return k (0 for a single binary logit)."""
    check(norm in NORMS, f"unknown norm {norm!r}; choose 'linf' or 'l2'")
    check(jnp.ndim(x) >= 1, f"x must have a leading batch axis, got shape {jnp.shape(x)}")
    check(
        jnp.issubdtype(jnp.result_type(x), jnp.floating),
        f"x must be floating point, got {jnp.result_type(x)}; convert images to float first",
    )
    n = jnp.shape(x)[0]
    check(
        jnp.shape(y) == (n,),
        f"labels y have shape {jnp.shape(y)} but x holds {n} examples; expected integer labels of shape ({n},)",
    )
    check(
        jnp.issubdtype(jnp.result_type(y), jnp.integer), f"labels must be integers, got {jnp.result_type(y)}"
    )
    out = jax.eval_shape(apply_fn, params, x)
    check(
        out.shape == (n,) or (len(out.shape) == 2 and out.shape[0] == n and out.shape[1] >= 2),
        f"apply_fn returned logits of shape {out.shape}; expected (n,) for a binary logit or (n, k≥2) with n={n}",
    )
    k = 0 if len(out.shape) == 1 else out.shape[1]
    if clip is not None:
        check(
            len(clip) == 2 and float(clip[0]) < float(clip[1]),
            f"clip must be (low, high) with low < high or None, got {clip!r}",
        )
    if not _traced(y):
        y_np = np.asarray(y)
        top = 1 if k == 0 else k - 1
        check(
            y_np.size == 0 or (y_np.min() >= 0 and y_np.max() <= top),
            f"labels must lie in 0..{top} for {'a binary logit' if k == 0 else f'{k} logits'}, "
            f"got range [{y_np.min()}, {y_np.max()}]",
        )
    if clip is not None and not _traced(x) and jnp.size(x):
        lo, hi = float(jnp.min(x)), float(jnp.max(x))
        check(
            lo >= clip[0] and hi <= clip[1],
            f"x spans [{lo:.4g}, {hi:.4g}], outside the pixel range clip={tuple(clip)}; "
            "pass the clip range of the input scale (e.g. (-1.0, 1.0)) or clip=None",
        )
    return k


def _per_example(v, name: str, n: int, ndim: int, dtype) -> jax.Array:
    """A scalar or (n,) array → shape (n, 1, …, 1) broadcastable against x; checked to be ≥ 0 when concrete."""
    check(
        jnp.ndim(v) == 0 or jnp.shape(v) == (n,),
        f"{name} must be a scalar or have shape ({n},), got shape {jnp.shape(v)}",
    )
    if not _traced(v):
        v_np = np.asarray(v, dtype=np.float64)
        check(np.all(np.isfinite(v_np)) and np.all(v_np >= 0), f"{name} must be finite and ≥ 0, got {v!r}")
    v = jnp.broadcast_to(jnp.asarray(v, dtype), (n,))
    return v.reshape((n,) + (1,) * (ndim - 1))


def _l2_per_example(a: jax.Array) -> jax.Array:
    """‖a_i‖₂ over all non-batch axes, kept as shape (n, 1, …, 1)."""
    return jnp.sqrt(jnp.sum(a * a, axis=tuple(range(1, a.ndim)), keepdims=True))


def correct(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Boolean (n,): prediction == label; argmax of (n, k) logits, or ``logit > 0`` for (n,) binary logits."""
    if logits.ndim == 1:
        return (logits > 0) == (y == 1)
    return jnp.argmax(logits, axis=-1) == y


def ascent_objective(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example objective whose gradient has the direction of the cross-entropy gradient, shape (n,).

    Cross-entropy is CE = log(1 + exp(L)) with L = logsumexp_{c≠y}(z_c − z_y) for k logits, and L = −(2y − 1)·ŷ
    for a binary logit ŷ. Since dCE/dL = sigmoid(L) > 0, ∇ₓ CE_i = sigmoid(L_i) ∇ₓ L_i: the same direction for
    each example. Sign steps (L∞) and normalised steps (L2) therefore see identical updates, but ∇L does not
    underflow for confidently classified inputs, where float32 rounds the softmax of the true class to exactly 1
    and the CE gradient loses its −∇z_y part.
    """
    if logits.ndim == 1:
        return -(2 * y - 1).astype(logits.dtype) * logits
    k = logits.shape[1]
    z_y = jnp.take_along_axis(logits, y[:, None], axis=1)
    others = jnp.where(jnp.arange(k)[None, :] == y[:, None], -jnp.inf, logits - z_y)
    return jax.nn.logsumexp(others, axis=1)


# ----------------------------------------------------------------------------------------------------------------
# PGD
# ----------------------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("apply_fn", "steps", "norm", "random_start", "clip"))
def _pgd(apply_fn, params, x, y, eps_b, step_b, key, *, steps, norm, random_start, clip):
    """The PGD loop; returns (x_adv, fooled) with ``fooled`` (n,) = some iterate (start included) misclassified."""

    def project(x_adv):
        delta = x_adv - x
        if norm == "linf":
            delta = jnp.clip(delta, -eps_b, eps_b)
        else:
            d_norm = _l2_per_example(delta)
            delta = delta * jnp.minimum(1.0, eps_b / jnp.maximum(d_norm, jnp.finfo(x.dtype).tiny))
        x_adv = x + delta
        return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])

    def objective(x_adv):
        logits = apply_fn(params, x_adv)
        return jnp.sum(ascent_objective(logits, y)), logits

    grad_fn = jax.grad(objective, has_aux=True)

    x_adv = x
    if random_start:
        if norm == "linf":
            noise = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps_b
        else:  # torchattacks.PGDL2: a uniformly random direction times a U(0, 1) fraction of ε
            k_dir, k_rad = jax.random.split(key)
            direction = jax.random.normal(k_dir, x.shape, x.dtype)
            direction = direction / jnp.maximum(_l2_per_example(direction), jnp.finfo(x.dtype).tiny)
            radius = jax.random.uniform(k_rad, eps_b.shape, x.dtype)
            noise = direction * radius * eps_b
        x_adv = project(x + noise)

    def body(_, carry):
        x_adv, fooled = carry
        g, logits = grad_fn(x_adv)
        fooled = fooled | ~correct(logits, y)
        if norm == "linf":
            x_adv = x_adv + step_b * jnp.sign(g)
        else:
            x_adv = x_adv + step_b * g / jnp.maximum(_l2_per_example(g), jnp.finfo(x.dtype).tiny)
        return project(x_adv), fooled

    fooled = jnp.zeros(x.shape[0], dtype=bool)
    x_adv, fooled = jax.lax.fori_loop(0, steps, body, (x_adv, fooled))
    fooled = fooled | ~correct(apply_fn(params, x_adv), y)
    return jax.lax.stop_gradient(x_adv), fooled


def _check_attack(apply_fn, steps, random_start, key):
    try:
        hash(apply_fn)
    except TypeError:
        raise GsJaxError(
            f"apply_fn must be hashable (a function or bound method; it is a static jit argument), got {type(apply_fn)}"
        ) from None
    check(
        isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 0,
        f"steps must be a Python int ≥ 0 (static under jit), got {steps!r}",
    )
    check(
        not random_start or key is not None,
        "random_start=True needs an explicit PRNG key (key=jax.random.key(seed)); or pass random_start=False",
    )


def pgd(
    apply_fn: ApplyFn,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    eps,
    step_size,
    steps: int,
    norm: str = "linf",
    random_start: bool = True,
    key: jax.Array | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """Untargeted projected gradient ascent on the cross-entropy of the model's logits (Madry et al., 2018).

    Starting from x (plus a random point of the ε-ball when ``random_start``), repeat ``steps`` times::

        x ← Π(x + α · sign(∇ₓ CE))            (norm="linf")
        x ← Π(x + α · ∇ₓ CE / ‖∇ₓ CE‖₂)       (norm="l2", the gradient normalised per example)

    where Π projects onto the ε-ball around the clean input (clip of δ to [−ε, ε], or rescaling δ to norm ε)
    and then clips to the pixel range ``clip`` (``None``: no clipping). Clipping a point of the ball to a box
    that holds the clean input keeps it in the ball, so every returned x_adv satisfies ‖x_adv − x‖ ≤ ε (up to
    one rounding of x + δ) and lies in the pixel range. This is ``torchattacks.PGD`` / ``PGDL2``; the authors'
    Table 1 attack is :data:`TABLE1_PGD` (L∞, ε = 5/255, α = 0.5/255, 10 steps, random start; the paper text's
    "PGD = 0.05" does not match it). Gradient directions come from :func:`ascent_objective` (the same per-example
    direction as the CE gradient, without its float32 underflow).

    Args:
      apply_fn: ``apply_fn(params, x) → logits`` of shape (n, k) or (n,), per-example (eval mode).
      params: the model's variables (anything ``apply_fn`` takes).
      x: clean inputs, shape (n, ...), floating point, inside ``clip``.
      y: integer labels, shape (n,): 0..k−1, or {0, 1} for a binary logit.
      eps: radius ε ≥ 0, a scalar or per-example (n,) array.
      step_size: α ≥ 0, a scalar or (n,).
      steps: number of iterations (a Python int; static under ``jit``).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start from a uniform point of the L∞ ball, or (L2) a random direction at a U(0, 1)·ε radius.
      key: PRNG key; required when ``random_start``.
      clip: (low, high) pixel range, or ``None``.

    Returns:
      x_adv with the shape and dtype of x (a constant for autodiff). ``eps=0`` returns x itself.
    """
    _check_common(apply_fn, params, x, y, norm, clip)
    _check_attack(apply_fn, steps, random_start, key)
    clip = None if clip is None else (float(clip[0]), float(clip[1]))
    n, ndim = x.shape[0], x.ndim
    eps_b = _per_example(eps, "eps", n, ndim, x.dtype)
    step_b = _per_example(step_size, "step_size", n, ndim, x.dtype)
    x_adv, _ = _pgd(
        apply_fn,
        params,
        x,
        y,
        eps_b,
        step_b,
        key,
        steps=int(steps),
        norm=norm,
        random_start=bool(random_start),
        clip=clip,
    )
    return x_adv


def robust_accuracy(
    apply_fn: ApplyFn,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    eps,
    step_size,
    steps: int,
    norm: str = "linf",
    random_start: bool = True,
    key: jax.Array | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """Accuracy (a scalar in [0, 1]) on ``pgd(x)``: Table 1's "Test OOD" column. Arguments as :func:`pgd`.

    As in the authors' code, the final PGD iterate is scored (not the worst iterate seen along the way).
    """
    x_adv = pgd(
        apply_fn,
        params,
        x,
        y,
        eps=eps,
        step_size=step_size,
        steps=steps,
        norm=norm,
        random_start=random_start,
        key=key,
        clip=clip,
    )
    return jnp.mean(correct(apply_fn(params, x_adv), y).astype(jnp.float32))


# ----------------------------------------------------------------------------------------------------------------
# minimal perturbation (Fig. 2)
# ----------------------------------------------------------------------------------------------------------------


def bisection_steps(eps_max: float, tol: float) -> int:
    """Number of halvings of [0, eps_max] that :func:`minimal_margin` runs: ⌈log₂(eps_max / tol)⌉ (≥ 0)."""
    return max(0, math.ceil(math.log2(eps_max / tol)))


def minimal_margin(
    apply_fn: ApplyFn,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    eps_max: float,
    tol: float,
    norm: str = "linf",
    steps: int = 40,
    step_size_frac: float = 2.5 / 40,
    random_start: bool = False,
    key: jax.Array | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """Per-example size of the smallest perturbation that flips the prediction, by bisection over ε (Fig. 2).

    For each example the search keeps an interval [lo, hi] with PGD failing at lo and succeeding at hi, starting
    from [0, eps_max], and halves it :func:`bisection_steps` times, all examples in lockstep (per-example ε
    arrays; one batched PGD per halving). An attack at ε "succeeds" when some PGD iterate (random start
    included) is misclassified; every iterate lies in the ε-ball, so each success is a certified perturbation of
    norm ≤ ε. PGD runs ``steps`` iterations of step ``step_size_frac · ε`` (keep ``steps · step_size_frac ≥ 2``
    so that the iterates can cross the ball).

    Returns, per example (shape (n,), dtype of x):

    - ``0`` if the clean input is already misclassified;
    - ``+inf`` if PGD never flipped it up to ``eps_max`` (no margin found in the searched range);
    - otherwise ``hi``: an **upper bound** on the minimal perturbation norm (PGD found a flip at ε = hi) that is
      within ``tol`` of the smallest ε at which PGD succeeds (hi − lo ≤ tol with PGD failing at lo). PGD success
      need not be monotone in ε and PGD can miss flips, so this is the margin *as seen by PGD*; for a linear
      model PGD is exact and the result is within ``tol`` above |f(x)| / ‖w‖_* (‖·‖₁ for L∞, ‖·‖₂ for L2).

    The authors' Fig. 2 search is :data:`FIG2_MARGIN` (L∞, 40 iterations, no random start, inputs in [-1, 1],
    bins of 1e-3 on [0, 1]); they silently dropped failed attacks, which here are the +inf entries.

    Args:
      apply_fn, params, x, y, norm, random_start, key, clip: as in :func:`pgd` (``key`` is folded with the
        bisection step, so every halving draws a fresh random start).
      eps_max: upper end of the search (a Python float > 0; static).
      tol: width of the final interval (a Python float > 0; static).
      steps: PGD iterations per trial ε.
      step_size_frac: PGD step as a fraction of the trial ε.
    """
    _check_common(apply_fn, params, x, y, norm, clip)
    _check_attack(apply_fn, steps, random_start, key)
    for name, v in (("eps_max", eps_max), ("tol", tol), ("step_size_frac", step_size_frac)):
        check(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
            f"{name} must be a Python number > 0, got {v!r}",
        )
    clip = None if clip is None else (float(clip[0]), float(clip[1]))
    return _minimal_margin(
        apply_fn,
        params,
        x,
        y,
        key,
        eps_max=float(eps_max),
        tol=float(tol),
        norm=norm,
        steps=int(steps),
        step_size_frac=float(step_size_frac),
        random_start=bool(random_start),
        clip=clip,
    )


@functools.partial(
    jax.jit,
    static_argnames=("apply_fn", "eps_max", "tol", "norm", "steps", "step_size_frac", "random_start", "clip"),
)
def _minimal_margin(
    apply_fn, params, x, y, key, *, eps_max, tol, norm, steps, step_size_frac, random_start, clip
):
    n, ndim, dtype = x.shape[0], x.ndim, x.dtype
    static = dict(steps=steps, norm=norm, random_start=random_start, clip=clip)

    def attack(eps_n, k):
        eps_b = eps_n.reshape((n,) + (1,) * (ndim - 1))
        _, fooled = _pgd(apply_fn, params, x, y, eps_b, step_size_frac * eps_b, k, **static)
        return fooled

    k_max = k_bisect = None
    if key is not None:
        k_max, k_bisect = jax.random.split(key)
    clean_wrong = ~correct(apply_fn(params, x), y)
    hi = jnp.full((n,), eps_max, dtype)
    fooled_at_max = attack(hi, k_max)

    def body(i, carry):
        lo, hi = carry
        mid = 0.5 * (lo + hi)
        fooled = attack(mid, None if k_bisect is None else jax.random.fold_in(k_bisect, i))
        return jnp.where(fooled, lo, mid), jnp.where(fooled, mid, hi)

    _, hi = jax.lax.fori_loop(0, bisection_steps(eps_max, tol), body, (jnp.zeros((n,), dtype), hi))
    return jnp.where(
        clean_wrong, jnp.zeros_like(hi), jnp.where(fooled_at_max, hi, jnp.full_like(hi, jnp.inf))
    )
