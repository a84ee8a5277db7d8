"""The authors' two attack protocols, reproduced as they ran them (Section 4.2; SPEC §5.1, §5c).

- :func:`foolbox_margin` — Fig. 2's margin: foolbox 2.x ``PGD`` with the ``Linfinity`` distance and its defaults
  (``Figure_2/main.py``): an exponential search from ε₀ = 0.3 growing ε ×1.5 until an attack succeeds (at most 20
  tries), then 20 halvings of [0, ε]; each try is 40 sign-gradient steps of ``0.01/0.3 · ε`` from the clean point
  (no random start) that stop at the first misclassified iterate; ε and the step are relative to the input range
  (bounds (−1, 1): × 2). The margin is the smallest L∞ distance of any misclassified iterate met during the search.
- :func:`torchattacks_pgd` — Table 1's attack: ``torchattacks.PGD(eps, alpha, steps)`` (random start, sign of the
  gradient of the batch-mean cross-entropy in float32, clamping to [0, 1]) with that gradient's float32 underflow
  kept: at saturated logits it can be exactly 0 and sign(0) = 0 leaves the example where it is. The authors ran it
  on de-normalised images through a network that expects normalised ones (``table_1/main.py``); the caller chooses
  which function the attack differentiates.

Conventions as :mod:`gs_jax.attacks`: ``apply_fn(params, x)`` returns (n, k) logits (or (n,) for one binary logit),
examples independent (eval mode); pure jax, jit and vmap work.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gs_jax.attacks import ascent_objective, correct

# foolbox 2.x ``PGD.__call__`` defaults (binary_search=True → 20 exponential tries and 20 halvings)
FOOLBOX_PGD = dict(eps0=0.3, growth=1.5, grow_trials=20, halvings=20, stepsize=0.01, steps=40)


def _per_example_max_abs(a):
    return jnp.max(jnp.abs(a).reshape(a.shape[0], -1), axis=1)


@functools.partial(
    jax.jit,
    static_argnames=("apply_fn", "bounds", "eps0", "growth", "grow_trials", "halvings", "stepsize", "steps"),
)
def foolbox_margin(apply_fn, params, x, y, *, bounds=(-1.0, 1.0), eps0: float = 0.3, growth: float = 1.5,
                   grow_trials: int = 20, halvings: int = 20, stepsize: float = 0.01, steps: int = 40):  # fmt: skip
    """Per-example L∞ margin (input units) as foolbox 2's PGD search finds it, shape (n,).

    ``0`` for an example misclassified as it is (foolbox returns it unchanged); ``+inf`` where the exponential
    search fails (the authors' script silently dropped these); else the smallest ``max|x' − x|`` over every
    misclassified iterate x' of every try. All examples advance in lockstep, one gradient per loop turn, each
    through its own sequence of tries (a try ends at its first misclassified iterate or after ``steps`` steps, and
    the next starts from the clean point at once), so the cost is the longest example's total number of steps.
    The step direction is the sign of the gradient of :func:`gs_jax.attacks.ascent_objective`, the direction of
    the cross-entropy gradient without its float32 underflow at saturated logits.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    s = hi - lo
    factor = stepsize / eps0  # foolbox: the step stays this fraction of the try's ε
    n = x.shape[0]
    bshape = (n,) + (1,) * (x.ndim - 1)

    def logits_and_grad(xa):
        def obj(a):
            z = apply_fn(params, a)
            return jnp.sum(ascent_objective(z, y)), z

        g, z = jax.grad(obj, has_aux=True)(xa)
        return z, g

    wrong0 = ~correct(apply_fn(params, x), y)
    f32 = x.dtype
    init = dict(
        xa=x, it=jnp.zeros(n, jnp.int32), eps=jnp.full(n, eps0, f32), phase=jnp.where(wrong0, 2, 0).astype(jnp.int32),
        count=jnp.zeros(n, jnp.int32), good=jnp.zeros(n, f32), bad=jnp.zeros(n, f32),
        best=jnp.where(wrong0, 0.0, jnp.inf).astype(f32),
    )  # fmt: skip

    def body(c):
        z, g = logits_and_grad(c["xa"])
        active = c["phase"] < 2
        adv = active & (c["it"] >= 1) & ~correct(z, y)
        best = jnp.where(adv, jnp.minimum(c["best"], _per_example_max_abs(c["xa"] - x)), c["best"])
        end = active & (adv | (c["it"] >= steps))
        eps, phase, count = c["eps"], c["phase"], c["count"] + end.astype(jnp.int32)
        # the exponential search: success → halvings of [0, ε]; failure → ε × growth, at most grow_trials tries
        grow_ok, grow_fail = end & (phase == 0) & adv, end & (phase == 0) & ~adv
        good = jnp.where(grow_ok, eps, c["good"])
        bad = jnp.where(grow_ok, 0.0, c["bad"])
        # the halvings: success → good = ε, failure → bad = ε
        half = end & (phase == 1)
        good = jnp.where(half & adv, eps, good)
        bad = jnp.where(half & ~adv, eps, bad)
        count = jnp.where(grow_ok, 0, count)
        new_phase = jnp.where(grow_ok, 1, phase)
        new_phase = jnp.where(grow_fail & (count >= grow_trials), 2, new_phase)
        new_phase = jnp.where(half & (count >= halvings), 2, new_phase)
        new_eps = jnp.where(grow_fail, eps * growth, eps)
        new_eps = jnp.where(grow_ok | half, 0.5 * (good + bad), new_eps)
        # one step of the ongoing tries (foolbox: x + step·s·sign(∇), projected on the ε-ball, clipped to bounds)
        e = eps.reshape(bshape) * s
        stepped = c["xa"] + (factor * e) * jnp.sign(g)
        stepped = jnp.clip(x + jnp.clip(stepped - x, -e, e), lo, hi)
        xa = jnp.where(end.reshape(bshape), x, jnp.where(active.reshape(bshape), stepped, c["xa"]))
        it = jnp.where(end, 0, c["it"] + 1)
        return dict(xa=xa, it=it, eps=new_eps, phase=new_phase, count=count, good=good, bad=bad, best=best)

    out = jax.lax.while_loop(lambda c: jnp.any(c["phase"] < 2), body, init)
    return out["best"]


@functools.partial(jax.jit, static_argnames=("apply_fn", "steps", "clip"))
def torchattacks_pgd(apply_fn, params, x, y, *, eps, alpha, steps: int, key, clip=(0.0, 1.0)):
    """``torchattacks.PGD(model, eps, alpha, steps)`` (random start) as the authors ran it: returns ``(x_adv,
    zero_steps)`` with ``zero_steps`` (n,) the number of steps whose float32 gradient was exactly 0 for that example.

    Each step takes the sign of the gradient of the MEAN cross-entropy of the batch (``nn.CrossEntropyLoss()`` on
    ``apply_fn``'s logits, log-softmax in float32): an example whose softmax has saturated gets an exactly-zero
    gradient and sign(0) = 0 does not move it (:func:`gs_jax.attacks.ascent_objective` is the remedy the correct
    attack uses). Start: x + U(−ε, ε), clamped to ``clip``; step: x + α·sign(∇), δ clamped to [−ε, ε], x clamped.
    """
    lo, hi = float(clip[0]), float(clip[1])

    def mean_ce(a):
        z = apply_fn(params, a)
        if z.ndim == 1:  # one binary logit: BCE with logits, as torch's BCEWithLogitsLoss
            return jnp.mean(jnp.logaddexp(0.0, z) - y.astype(z.dtype) * z)
        return -jnp.mean(
            jnp.take_along_axis(jax.nn.log_softmax(z, axis=-1), y[:, None].astype(jnp.int32), axis=1)
        )

    adv = jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -eps, eps), lo, hi)

    def body(_, carry):
        a, zero = carry
        g = jax.grad(mean_ce)(a)
        zero = zero + (_per_example_max_abs(g) == 0).astype(jnp.int32)
        a = a + alpha * jnp.sign(g)
        a = jnp.clip(x + jnp.clip(a - x, -eps, eps), lo, hi)
        return a, zero

    adv, zero = jax.lax.fori_loop(0, steps, body, (adv, jnp.zeros(x.shape[0], jnp.int32)))
    return jax.lax.stop_gradient(adv), zero
