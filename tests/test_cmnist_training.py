"""Colored MNIST on the platform: restarts vmapped == one by one, determinism, Adam, divergence handling, the data's
environment and group labels, the two-stage rows (JTT, DFR)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gs_jax import models, trainer
from gs_jax.data import colored_mnist as cm
from gs_jax.data.mnist import Pool
from gs_jax.experiments import cmnist as cmnist_exp
from gs_jax.experiments import cmnist_methods

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
    return cmnist_exp.restart_data([cm.build_restart(pool, s) for s in SEEDS])


def select(data, r):
    return {k: v[r : r + 1] for k, v in data.items()}


def schedule(hidden=8, lr=1e-2, steps=7, grayscale=False):
    return {"hidden": hidden, "lr": lr, "steps": steps, "grayscale": grayscale}


def test_data_layout(data):
    """env0 then env1, flattened; env labels; group = 2·y + colour (the kept channel)."""
    n = data["x"].shape[1] // 2
    np.testing.assert_array_equal(data["env"][0], np.repeat([0, 1], n))
    x = data["x"].reshape(len(SEEDS), -1, 2, 196)
    colour = (x[..., 1, :].sum(-1) > 0).astype(np.int32)  # channel 1 holds the digit when the colour is 1
    np.testing.assert_array_equal(data["group"], 2 * data["y"].astype(np.int32) + colour)
    info = cmnist_exp.data_info(data, 0)
    assert (info.n_groups, info.n_envs, info.n_outputs, sum(info.group_counts)) == (4, 2, 1, 2 * n)


@pytest.mark.slow  # the fast suite's 10 minutes on 2 cores; ≈ 27 s; one restart's equality is test_trainer's
@pytest.mark.parametrize(
    "method, hp, sched",
    [
        ("sd_rescaled", {"coef": 2e-5, "anneal_iters": 6}, schedule(steps=13)),
        ("irm", {"l2": 1e-3, "anneal_iters": 4, "penalty_weight": 100.0}, schedule(steps=9)),
    ],
    ids=["sd", "irm"],
)
def test_vmapped_restarts_equal_one_by_one(data, method, hp, sched):
    together = cmnist_exp.train_restarts(method, data, SEEDS, settings=[hp], schedule=sched, eval_every=4)[0]
    for r, seed in enumerate(SEEDS):
        alone = cmnist_exp.train_restarts(method, select(data, r), [seed], settings=[hp], schedule=sched,
                                          eval_every=4)[0]  # fmt: skip
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
    a = cmnist_exp.train_restarts("erm", data, SEEDS, schedule=schedule(), eval_every=3)[0]
    b = cmnist_exp.train_restarts("erm", data, SEEDS, schedule=schedule(), eval_every=3)[0]
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.params, b.params)
    # the evaluation spacing does not change training
    c = cmnist_exp.train_restarts("erm", data, SEEDS, schedule=schedule(), eval_every=100)[0]
    jax.tree_util.tree_map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), a.params, c.params
    )


def test_matches_hand_written_adam_loop(data):
    """The scan/vmap machinery against a plain Python loop of optax Adam on restart 0 (ERM)."""
    sched = schedule(steps=5)
    result = cmnist_exp.train_restarts("erm", select(data, 0), [SEEDS[0]], schedule=sched, eval_every=100)[0]
    model = models.CmnistMLP(hidden=8)
    x = jnp.asarray(data["x"][0])
    y = jnp.asarray(data["y"][0])
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
    bad["x"][1, 0, 0] = np.nan
    result = cmnist_exp.train_restarts(
        "erm", bad, SEEDS, schedule=schedule(steps=6), eval_every=2, name="erm"
    )[0]
    assert list(result.failed_at) == [-1, 0, -1]
    err = capsys.readouterr().err
    assert "erm: restart 1 (seed 1235) stopped: non-finite loss at step 0" in err
    summary = cmnist_exp.summarize_method(result, SEEDS)
    assert summary["restarts_ok"] == 2 and summary["failed_restarts"] == {1: 0}
    assert np.isfinite(summary["test_acc_mean"])


def test_grid_settings_share_one_program(data):
    """Two SD settings × 3 seeds in one program equal each setting run on its own."""
    sched, hps = schedule(steps=6), [{"lam": 0.1}, {"lam": 1.0}]
    both = cmnist_exp.train_restarts("sd", data, SEEDS, settings=hps, schedule=sched, eval_every=3)
    for hp, res in zip(hps, both, strict=True):
        alone = cmnist_exp.train_restarts("sd", data, SEEDS, settings=[hp], schedule=sched, eval_every=3)[0]
        np.testing.assert_allclose(res.final["train_nll"], alone.final["train_nll"], rtol=1e-5)
    assert not np.allclose(both[0].final["penalty"], both[1].final["penalty"])


def test_two_stage_rows_jtt_and_dfr(data):
    sched = schedule(steps=4)
    jtt = cmnist_exp.Row("jtt", "jtt", [{"lambda_up": 5.0, "identify_epochs": 2}], sched)
    results, extra = cmnist_methods.run_row(jtt, data, SEEDS, checkpoint_dir=None, eval_every=2)
    ident = extra["jtt_identification"][0]
    assert ident["identify_steps"] == 2 and len(ident["error_set_size"]) == 3
    assert all(sum(g) == e for g, e in zip(ident["error_set_groups"], ident["error_set_size"], strict=True))
    assert results[0].final["train_acc"].shape == (3,)
    dfr = cmnist_exp.Row("dfr", "dfr", [{"penalty": "l1", "c": (1.0, 0.1), "n_refits": 2}], sched)
    results, extra = cmnist_methods.run_row(dfr, data, SEEDS, checkpoint_dir=None, eval_every=2)
    assert {h["c"] for h in extra["dfr"][0]["chosen"]} <= {1.0, 0.1}
    assert np.all((results[0].final["test_acc"] >= 0) & (results[0].final["test_acc"] <= 1))
    assert set(results[0].four_env) == set(cm.FOUR_ENVS)


def test_eval_steps():
    assert trainer.eval_steps(1001, 50)[-2:] == [950, 1000]
    assert trainer.eval_steps(101, 50) == [0, 50, 100]
    assert trainer.eval_steps(12, 5) == [0, 5, 10, 11]
