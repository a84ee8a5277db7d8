"""Colored MNIST on the trainer core: restarts vmapped == one by one, determinism, Adam, divergence handling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gs_jax import algorithms, models, trainer
from gs_jax.data import colored_mnist as cm
from gs_jax.data.mnist import Pool
from gs_jax.experiments import cmnist as cmnist_exp

SEEDS = [1234, 1235, 1236]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    pool = Pool(
        "tiny",
        rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 64).astype(np.uint8),
        rng.integers(0, 256, (32, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 32).astype(np.uint8),
        "",
    )
    return cm.stack_restarts([cm.build_restart(pool, s) for s in SEEDS])


def select(data, r):
    return {k: v[r : r + 1] for k, v in data.items()}


@pytest.mark.parametrize(
    "hp",
    [
        algorithms.Hyper("sd", hidden=8, lr=1e-2, steps=13, anneal_iters=6, sd_coef=2e-5),
        algorithms.Hyper("irm", hidden=8, lr=1e-2, steps=9, l2=1e-3, anneal_iters=4, penalty_weight=100.0),
    ],
    ids=["sd", "irm"],
)
def test_vmapped_restarts_equal_one_by_one(data, hp):
    together = cmnist_exp.train_restarts(hp, data, SEEDS, eval_every=4)
    for r, seed in enumerate(SEEDS):
        alone = cmnist_exp.train_restarts(hp, select(data, r), [seed], eval_every=4)
        for a, b in zip(together.history, alone.history, strict=True):
            assert a["step"] == b["step"]
            np.testing.assert_allclose(a["loss"][r], b["loss"][0], rtol=2e-5, atol=1e-7)
            np.testing.assert_allclose(a["train_acc"][r], b["train_acc"][0], atol=1e-6)
        for env in cm.FOUR_ENVS:
            np.testing.assert_allclose(
                together.four_env[env]["entropy"][r], alone.four_env[env]["entropy"][0], 1e-4
            )
        jax.tree_util.tree_map(
            lambda x, y, r=r: np.testing.assert_allclose(x[r], y[0], rtol=1e-4, atol=1e-6),
            together.params,
            alone.params,
        )


def test_bit_identical_for_same_seed(data):
    hp = algorithms.Hyper("erm", hidden=8, lr=1e-2, steps=7)
    a = cmnist_exp.train_restarts(hp, data, SEEDS, eval_every=3)
    b = cmnist_exp.train_restarts(hp, data, SEEDS, eval_every=3)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.params, b.params)
    # the evaluation spacing does not change training
    c = cmnist_exp.train_restarts(hp, data, SEEDS, eval_every=100)
    jax.tree_util.tree_map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), a.params, c.params
    )


def test_matches_hand_written_adam_loop(data):
    """The scan/vmap machinery against a plain Python loop of optax Adam on restart 0 (ERM)."""
    hp = algorithms.Hyper("erm", hidden=8, lr=1e-2, steps=5)
    result = cmnist_exp.train_restarts(hp, select(data, 0), [SEEDS[0]], eval_every=100)
    model = models.CmnistMLP(hidden=8)
    x = jnp.asarray(data["train_x"][0]).reshape(-1, 392)
    y = jnp.asarray(data["train_y"][0]).reshape(-1)
    params = model.init(jax.random.PRNGKey(SEEDS[0]), x[:1])["params"]
    opt = optax.adam(1e-2)
    state = opt.init(params)

    def loss(p):
        z = model.apply({"params": p}, x)
        return jnp.mean(jax.nn.softplus(z) - y * z)

    for _ in range(5):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a[0], b, rtol=1e-5, atol=1e-7), result.params, params
    )


def test_model_init_matches_authors():
    params = models.CmnistMLP(hidden=300).init(jax.random.PRNGKey(0), jnp.zeros((1, 392)))["params"]
    w = np.asarray(params["Dense_0"]["kernel"])
    bound = np.sqrt(6 / (392 + 300))  # xavier_uniform
    assert w.shape == (392, 300) and np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert all(np.all(np.asarray(params[k]["bias"]) == 0) for k in params)
    oracle = models.CmnistMLP(hidden=5, grayscale=True)
    p = oracle.init(jax.random.PRNGKey(0), jnp.zeros((1, 392)))["params"]
    assert p["Dense_0"]["kernel"].shape == (196, 5)
    x = jnp.asarray(np.random.default_rng(0).random((4, 392)), jnp.float32)
    swapped = jnp.concatenate([x[:, 196:], x[:, :196]], axis=1)  # colour swap: same grayscale image
    np.testing.assert_allclose(
        oracle.apply({"params": p}, x), oracle.apply({"params": p}, swapped), rtol=1e-6
    )


def test_non_finite_loss_freezes_that_restart(data, capsys):
    bad = {k: v.copy() for k, v in data.items()}
    bad["train_x"][1, 0, 0, 0] = np.nan
    hp = algorithms.Hyper("erm", hidden=8, lr=1e-2, steps=6)
    result = cmnist_exp.train_restarts(hp, bad, SEEDS, eval_every=2, name="erm")
    assert list(result.failed_at) == [-1, 0, -1]
    err = capsys.readouterr().err
    assert "erm: restart 1 (seed 1235) stopped: non-finite loss at step 0" in err
    summary = cmnist_exp.summarize_method(result, hp, SEEDS)
    assert summary["restarts_ok"] == 2 and summary["failed_restarts"] == {1: 0}
    assert np.isfinite(summary["test_acc_mean"])


def test_eval_steps():
    assert trainer.eval_steps(1001, 50)[-2:] == [950, 1000]
    assert trainer.eval_steps(101, 50) == [0, 50, 100]
    assert trainer.eval_steps(12, 5) == [0, 5, 10, 11]
