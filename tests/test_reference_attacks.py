"""The authors' attack protocols (gs_jax.reference_attacks) against transcriptions of the reference code written
here one example at a time with plain loops (foolbox 2.x's ``_run_binary_search`` / ``_run_one``; torchattacks'
``PGD.forward``), and against closed forms on linear models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import attacks, reference_attacks


def _mlp(key, d=6, h=16, k=2, scale=1.0):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (d, h)) * scale / np.sqrt(d),
        "w2": jax.random.normal(k2, (h, k)) / np.sqrt(h),
    }


def _apply(p, x):
    return jnp.tanh(x @ p["w1"]) @ p["w2"]


def _foolbox_one(grad_sign, is_adv, x0, lo, hi, eps0=0.3, growth=1.5, k=20, stepsize=0.01, steps=40):
    """foolbox 2.x PGD (binary_search=True, no random start, return_early=True) on one example, as its source reads:
    the smallest L∞ distance of an adversarial iterate, 0 if x0 is adversarial, inf if the exponential search fails."""
    if is_adv(x0):
        return 0.0
    s = hi - lo
    best = [np.inf]
    factor = stepsize / eps0

    def run_one(eps):
        x = x0.copy()
        for _ in range(steps):
            x = x + factor * eps * s * grad_sign(x)  # GDOptimizer(−lr·(−s·sign ∇CE))
            x = x0 + np.clip(x - x0, -eps * s, eps * s)
            x = np.clip(x, lo, hi)
            if is_adv(x):
                best[0] = min(best[0], float(np.max(np.abs(x - x0))))
                return True
        return False

    eps = eps0
    for _ in range(k):
        if run_one(eps):
            break
        eps *= growth
    else:
        return best[0]
    bad, good = 0.0, eps
    for _ in range(k):
        eps = (good + bad) / 2
        if run_one(eps):
            good = eps
        else:
            bad = eps
    return best[0]


def test_foolbox_margin_equals_the_reference_loops(x64):
    key = jax.random.PRNGKey(0)
    p = _mlp(key, scale=3.0)
    x = jax.random.uniform(jax.random.PRNGKey(1), (12, 6), minval=-1.0, maxval=1.0)
    y = jnp.asarray((np.arange(12) % 2).astype(np.int32))
    got = np.asarray(reference_attacks.foolbox_margin(_apply, p, x, y, bounds=(-1.0, 1.0)))
    grad = jax.jit(jax.grad(lambda a, yi: jnp.sum(attacks.ascent_objective(_apply(p, a), yi))))
    wrong = jax.jit(lambda a, yi: ~attacks.correct(_apply(p, a), yi))
    ref = []
    for i in range(12):
        yi = y[i : i + 1]

        def grad_sign(a, yi=yi):
            return np.sign(np.asarray(grad(jnp.asarray(a[None]), yi))[0])

        def is_adv(a, yi=yi):
            return bool(wrong(jnp.asarray(a[None]), yi)[0])

        ref.append(_foolbox_one(grad_sign, is_adv, np.asarray(x[i]), -1.0, 1.0))
    ref = np.asarray(ref)
    assert np.any(ref == 0) and np.any(np.isfinite(ref) & (ref > 0)), (
        ref
    )  # both kinds of points are exercised
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_foolbox_margin_linear_closed_form_and_failures(x64):
    """A linear 2-logit model: PGD's sign steps are exact, so the margin is |f(x)|/‖w‖₁ to the search's resolution
    (≤ one halving of ε₀·s/2²⁰ above); a point that no perturbation inside the bounds can flip is a failure (inf)."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(5,)))
    b = 0.05

    def apply(p, x):
        f = x @ p + b
        return jnp.stack([-f / 2, f / 2], axis=1)

    x = jnp.asarray(rng.uniform(-0.5, 0.5, (20, 5)))
    y = jnp.asarray((np.asarray(x @ w + b) > 0).astype(np.int32))
    got = np.asarray(reference_attacks.foolbox_margin(apply, w, x, y, bounds=(-10.0, 10.0)))
    exact = np.abs(np.asarray(x @ w + b)) / np.sum(np.abs(np.asarray(w)))
    assert np.all(got >= exact - 1e-12) and np.all(got <= exact + 0.3 * 20 / 2**20 + 1e-12)
    # bounds (−1, 1) and a point pushed far from the boundary: no flip inside the box, at any ε
    far = jnp.asarray(np.sign(np.asarray(w))[None] * 0.9 + 0.0)
    wide = np.asarray(reference_attacks.foolbox_margin(apply, w * 0 + jnp.abs(w), jnp.abs(far), jnp.ones(1, jnp.int32),
                                                       bounds=(0.0, 1.0)))  # fmt: skip
    assert np.isinf(wide[0])


def _torchattacks_one_batch(apply, p, x, y, eps, alpha, steps, start):
    """torchattacks.PGD.forward as written: random start, clamp, then per step sign of the gradient of the mean CE."""
    adv = np.clip(x + start, 0.0, 1.0)
    zero = np.zeros(len(x), int)

    def mean_ce(a):
        z = apply(p, a)
        return -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(len(y)), y])

    for _ in range(steps):
        g = np.asarray(jax.grad(mean_ce)(jnp.asarray(adv)))
        zero += np.all(g.reshape(len(x), -1) == 0, axis=1)
        adv = adv + alpha * np.sign(g)
        adv = np.clip(x + np.clip(adv - x, -eps, eps), 0.0, 1.0)
    return adv, zero


def test_torchattacks_pgd_equals_the_reference_loop_and_counts_zero_gradients():
    p = _mlp(jax.random.PRNGKey(3), k=3)
    x = jax.random.uniform(jax.random.PRNGKey(4), (9, 6))
    y = jnp.asarray(np.arange(9) % 3, jnp.int32)
    key = jax.random.PRNGKey(5)
    eps, alpha = 8 / 255, 2 / 255
    got, zero = reference_attacks.torchattacks_pgd(_apply, p, x, y, eps=eps, alpha=alpha, steps=5, key=key)
    start = np.asarray(jax.random.uniform(key, x.shape, x.dtype, -eps, eps))
    ref, ref_zero = _torchattacks_one_batch(_apply, p, np.asarray(x), np.asarray(y), eps, alpha, 5, start)
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-6)
    assert np.array_equal(np.asarray(zero), ref_zero) and np.all(ref_zero == 0)
    # saturated logits (a linear net, weights × 500): the float32 softmax is exactly one-hot, the CE gradient exactly
    # 0 for those examples, which stay at their random start; the correct attack's objective keeps a direction
    w = jax.random.normal(jax.random.PRNGKey(6), (6, 3)) * 500.0

    def linear(v, a):
        return a @ v

    z = linear(w, x)
    y_top = jnp.argmax(z, axis=1).astype(jnp.int32)
    adv, zero = reference_attacks.torchattacks_pgd(
        linear, w, x, y_top, eps=eps, alpha=alpha, steps=5, key=key
    )
    zs = np.sort(np.asarray(z), axis=1)
    sat = zs[:, -1] - zs[:, -2] > 120  # every other class below exp's float32 range after the random start
    assert sat.any() and np.all(np.asarray(zero)[sat] == 5)
    start_pt = np.clip(np.asarray(x) + start, 0, 1)
    np.testing.assert_array_equal(np.asarray(adv)[sat], start_pt[sat])  # never moved past the random start
    g = jax.grad(lambda a: jnp.sum(attacks.ascent_objective(linear(w, a), y_top)))(x)
    assert np.all(np.abs(np.asarray(g)).reshape(9, -1).max(axis=1) > 0)


@pytest.mark.parametrize("n", [1, 5])
def test_foolbox_margin_jit_vmap_over_models(n):
    ps = jax.vmap(lambda k: _mlp(k, scale=3.0))(jax.random.split(jax.random.PRNGKey(7), 2))
    x = jax.random.uniform(jax.random.PRNGKey(8), (n, 6), minval=-1.0, maxval=1.0)
    y = jnp.zeros(n, jnp.int32)
    both = jax.vmap(lambda p: reference_attacks.foolbox_margin(_apply, p, x, y))(ps)
    one = reference_attacks.foolbox_margin(_apply, jax.tree_util.tree_map(lambda a: a[1], ps), x, y)
    np.testing.assert_allclose(np.asarray(both[1]), np.asarray(one), rtol=1e-6)
