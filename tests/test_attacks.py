"""PGD and minimal margins against closed forms (linear models) and a NumPy transcription of torchattacks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import attacks
from gs_jax.errors import GsJaxError

# ----------------------------------------------------------------------------------------------------------------
# fixtures: linear models with known margins
# ----------------------------------------------------------------------------------------------------------------


def binary_linear(p, x):
    """f(x) = w·x + b on flattened inputs, shape (n,)."""
    return x.reshape(x.shape[0], -1) @ p["w"] + p["b"]


def softmax_linear(p, x):
    """Logits x W + b, shape (n, k)."""
    return x.reshape(x.shape[0], -1) @ p["W"] + p["b"]


def mlp(p, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ p["W1"] + p["b1"][None, :])
    return h @ p["W2"] + p["b2"][None, :]


def linear_problem(seed=0, n=24, shape=(4, 5), k=None):
    """Random linear model, inputs, labels = the model's own predictions (all correct)."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    x = rng.normal(size=(n, *shape))
    if k is None:
        params = {"w": rng.normal(size=d), "b": np.array(0.3)}
        f = binary_linear(params, x)
        y = (f > 0).astype(np.int32)
        w_dir = params["w"]
    else:
        params = {"W": rng.normal(size=(d, k)), "b": rng.normal(size=k)}
        logits = softmax_linear(params, x)
        y = np.argmax(logits, axis=1).astype(np.int32)
        f = logits[:, 1] - logits[:, 0]  # k = 2: the decision function
        w_dir = params["W"][:, 1] - params["W"][:, 0]
    return params, x, y, np.abs(f), w_dir


def rbg_key(seed):
    """A key whose random bits compile much faster on a CPU than threefry's unrolled rounds."""
    return jax.random.key(seed, impl="rbg")


def mlp_problem(seed=0, n=32, d=12, k=3):
    rng = np.random.default_rng(seed)
    params = {
        "W1": jnp.asarray(rng.normal(size=(d, 16)) / np.sqrt(d), jnp.float32),
        "b1": jnp.zeros(16, jnp.float32),
        "W2": jnp.asarray(rng.normal(size=(16, k)) * 3, jnp.float32),
        "b2": jnp.zeros(k, jnp.float32),
    }
    x = jnp.asarray(rng.uniform(0, 1, size=(n, d)), jnp.float32)
    y = jnp.asarray(rng.integers(0, k, size=n), jnp.int32)
    return params, x, y


DUAL = {"linf": 1, "l2": 2}  # the norm of w that divides |f| for an attack in this norm (dual norm)


# ----------------------------------------------------------------------------------------------------------------
# minimal margin = |f(x)| / ‖w‖_dual for linear models
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("k", [None, 2])
def test_minimal_margin_linear_closed_form(x64, norm, k):
    params, x, y, abs_f, w_dir = linear_problem(seed=1, k=k)
    truth = abs_f / np.linalg.norm(w_dir, ord=DUAL[norm])
    y = y.copy()
    y[:3] = 1 - y[:3]  # misclassified on clean inputs → 0
    eps_max, tol = float(np.sort(truth)[-2]) * 1.01, 1e-4  # the largest margin lies beyond eps_max → +inf
    apply_fn = binary_linear if k is None else softmax_linear
    got = np.asarray(
        attacks.minimal_margin(apply_fn, params, x, y, norm=norm, eps_max=eps_max, tol=tol, clip=None)
    )
    assert np.all(got[:3] == 0)
    far = np.argmax(truth)
    assert far >= 3 and got[far] == np.inf
    rest = np.setdiff1d(np.arange(3, len(y)), [far])
    # an upper bound within the bisection tolerance: truth ≤ got ≤ truth + tol (rounding: 1e-12)
    assert np.all(got[rest] >= truth[rest] - 1e-12)
    assert np.all(got[rest] <= truth[rest] + tol + 1e-12)


def test_minimal_margin_linf_random_start_still_exact(x64):
    # sign steps of 2.5ε/40 cross the whole L∞ ball from any start, so the random start changes nothing here
    params, x, y, abs_f, w = linear_problem(seed=2)
    truth = abs_f / np.abs(w).sum()
    got = attacks.minimal_margin(
        binary_linear, params, x, y, eps_max=float(truth.max()) * 1.1, tol=1e-4, clip=None,
        random_start=True, key=rbg_key(0),
    )  # fmt: skip
    np.testing.assert_array_less(truth - 1e-12, got)
    np.testing.assert_array_less(got, truth + 1e-4 + 1e-12)


def test_minimal_margin_float32_and_jit():
    params, x, y, abs_f, w = linear_problem(seed=3, k=2)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    x = jnp.asarray(x, jnp.float32)
    truth = abs_f / np.abs(w).sum()
    fn = functools.partial(attacks.minimal_margin, softmax_linear, eps_max=2.0, tol=1e-3, clip=None)
    got = np.asarray(jax.jit(fn)(params, x, jnp.asarray(y)))
    assert got.dtype == np.float32
    assert np.all(got >= truth - 1e-4) and np.all(got <= truth + 1e-3 + 1e-4)
    np.testing.assert_array_equal(got, np.asarray(fn(params, x, jnp.asarray(y))))


def test_minimal_margin_vmap_over_models(x64):
    problems = [linear_problem(seed=s, n=10) for s in (4, 5)]
    x = problems[0][1]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[p[0] for p in problems])
    y = np.stack([(binary_linear(p[0], x) > 0).astype(np.int32) for p in problems])
    fn = functools.partial(attacks.minimal_margin, binary_linear, eps_max=5.0, tol=1e-3, clip=None)
    got = jax.vmap(fn, in_axes=(0, None, 0))(stacked, jnp.asarray(x), jnp.asarray(y))
    for i, (p, *_rest) in enumerate(problems):
        np.testing.assert_allclose(got[i], fn(p, x, y[i]), rtol=0, atol=1e-12)


def test_bisection_steps():
    assert attacks.bisection_steps(1.0, 1e-3) == 10  # 2^-10 < 1e-3 ≤ 2^-9
    assert attacks.bisection_steps(1.0, 2.0) == 0


# ----------------------------------------------------------------------------------------------------------------
# PGD against an independent transcription of torchattacks.PGD / PGDL2 (no random start)
# ----------------------------------------------------------------------------------------------------------------


def torchattacks_reference(W, b, x, y, eps, alpha, steps, norm):
    """NumPy transcription of torchattacks PGD (L∞) and PGDL2 on logits x W + b, CE gradient in closed form."""
    x0 = x.copy()
    adv = x.copy()
    for _ in range(steps):
        z = adv @ W + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - np.eye(W.shape[1])[y]) @ W.T  # ∂CE/∂x per example
        if norm == "linf":
            adv = adv + alpha * np.sign(grad)
            delta = np.clip(adv - x0, -eps, eps)
        else:
            adv = adv + alpha * grad / (np.linalg.norm(grad, axis=1, keepdims=True) + 1e-10)
            delta = adv - x0
            delta = delta * np.minimum(eps / np.linalg.norm(delta, axis=1, keepdims=True), 1.0)
        adv = np.clip(x0 + delta, 0.0, 1.0)
    return adv


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.1)])
def test_pgd_matches_torchattacks_transcription(x64, norm, eps, alpha):
    rng = np.random.default_rng(6)
    W, b = rng.normal(size=(20, 3)), rng.normal(size=3)
    x = rng.uniform(0, 1, size=(16, 20))
    y = rng.integers(0, 3, size=16)
    want = torchattacks_reference(W, b, x, y, eps, alpha, 7, norm)
    got = attacks.pgd(
        softmax_linear,
        {"W": W, "b": b},
        x,
        y,
        eps=eps,
        step_size=alpha,
        steps=7,
        norm=norm,
        random_start=False,
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_ascent_direction_is_the_ce_direction_and_survives_float32():
    rng = np.random.default_rng(7)
    W = jnp.asarray(rng.normal(size=(10, 2)), jnp.float32)
    b = jnp.zeros(2, jnp.float32)
    x = jnp.asarray(rng.normal(size=(6, 10)), jnp.float32)
    y = jnp.argmax(x @ W, axis=1)

    def ce(xx, scale):
        return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(scale * (xx @ W + b)), y[:, None], 1))

    def ours(xx, scale):
        return jnp.sum(attacks.ascent_objective(scale * (xx @ W + b), y))

    unit = lambda g: g / jnp.linalg.norm(g, axis=1, keepdims=True)
    ours, ce = jax.jit(jax.grad(ours)), jax.jit(jax.grad(ce))
    # moderate logits: the same direction per example
    np.testing.assert_allclose(unit(ours(x, 1.0)), unit(ce(x, 1.0)), atol=1e-5)
    # confident logits (margins ≫ 17): float32 CE gradient loses −∇z_y; ours keeps ±(w_1 − w_0)
    exact = unit(jnp.broadcast_to(W[:, 0] - W[:, 1], x.shape) * jnp.where(y == 1, 1.0, -1.0)[:, None])
    np.testing.assert_allclose(unit(ours(x, 100.0)), exact, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# invariants: ε = 0, robust ≤ clean, ball and pixel range, jit and vmap
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_eps_zero_is_clean(norm):
    params, x, y = mlp_problem()
    kw = dict(eps=0.0, step_size=0.1, steps=5, norm=norm, key=rbg_key(1))
    np.testing.assert_array_equal(attacks.pgd(mlp, params, x, y, **kw), x)
    clean = jnp.mean(attacks.correct(mlp(params, x), y))
    assert attacks.robust_accuracy(mlp, params, x, y, **kw) == clean


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.4)])
def test_perturbation_in_ball_and_pixel_range(norm, eps):
    params, x, y = mlp_problem(seed=8)
    kw = dict(eps=eps, step_size=eps / 4, steps=10, norm=norm, key=rbg_key(2))
    x_adv = attacks.pgd(mlp, params, x, y, **kw)
    delta = np.asarray(x_adv - x, np.float64)
    size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert np.all(size <= eps * (1 + 1e-6) + 1e-7)
    assert np.all(size > 0)  # it moved
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    robust = attacks.robust_accuracy(mlp, params, x, y, **kw)
    clean = jnp.mean(attacks.correct(mlp(params, x), y))
    assert robust <= clean and robust < 1.0
    # per-example radii
    eps_n = jnp.linspace(0.0, eps, x.shape[0])
    delta = np.asarray(attacks.pgd(mlp, params, x, y, **{**kw, "eps": eps_n}) - x, np.float64)
    size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert np.all(size <= np.asarray(eps_n) * (1 + 1e-6) + 1e-7) and size[0] == 0


def test_large_eps_fools_a_linear_model_everywhere(x64):
    params, x, y, abs_f, w = linear_problem(seed=9)
    eps = float((abs_f / np.abs(w).sum()).max()) * 1.01
    acc = attacks.robust_accuracy(
        binary_linear, params, x, y, eps=eps, step_size=eps / 4, steps=8, random_start=False, clip=None
    )
    assert acc == 0.0


def test_jit_vmap_and_rank_promotion():
    params, x, y = mlp_problem(seed=10)
    fn = functools.partial(attacks.pgd, mlp, eps=0.03, step_size=0.01, steps=4)
    keys = jax.random.split(jax.random.key(3), 3)  # threefry: vmap gives the same bits as a loop
    with jax.numpy_rank_promotion("raise"):
        eager = fn(params, x, y, key=keys[1])
        jitted = jax.jit(fn)(params, x, y, key=keys[1])
        batched = jax.vmap(lambda k: fn(params, x, y, key=k))(keys)
    np.testing.assert_allclose(jitted, eager, atol=1e-6)
    assert batched.shape == (3, *x.shape)
    np.testing.assert_allclose(batched[1], eager, atol=1e-6)
    assert not np.allclose(batched[0], batched[1])  # different random starts


# ----------------------------------------------------------------------------------------------------------------
# one-line errors
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(norm="l1"), "unknown norm"),
        (dict(eps=-0.1), "eps must be finite and ≥ 0"),
        (dict(step_size=np.ones(3)), "step_size must be a scalar or have shape"),
        (dict(y=np.zeros(5, np.int32)), "labels y have shape"),
        (dict(y=np.full(32, 3, np.int32)), r"labels must lie in 0\.\.2"),
        (dict(y=np.zeros(32, np.float32)), "labels must be integers"),
        (dict(x_shift=2.0), "outside the pixel range"),
        (dict(key=None), "needs an explicit PRNG key"),
        (dict(steps=2.5), "steps must be a Python int"),
        (dict(apply_fn=lambda p, x: mlp(p, x)[:, :1]), "apply_fn returned logits of shape"),
    ],
)
def test_bad_input_is_one_line(change, match):
    params, x, y = mlp_problem()
    apply_fn = change.pop("apply_fn", mlp)
    x = x + change.pop("x_shift", 0.0)
    y = change.pop("y", y)
    kw = dict(eps=0.1, step_size=0.01, steps=3, key=rbg_key(0)) | change
    with pytest.raises(GsJaxError, match=match) as err:
        attacks.pgd(apply_fn, params, x, y, **kw)
    assert "\n" not in str(err.value)


def test_minimal_margin_bad_input_is_one_line():
    params, x, y = mlp_problem()
    for kw, match in [
        (dict(eps_max=-1.0, tol=1e-3), "eps_max must be a Python number > 0"),
        (dict(eps_max=1.0, tol=0.0), "tol must be"),
        (dict(eps_max=1.0, tol=1e-3, norm="linf2"), "unknown norm"),
    ]:
        with pytest.raises(GsJaxError, match=match) as err:
            attacks.minimal_margin(mlp, params, x, y, **kw)
        assert "\n" not in str(err.value)
