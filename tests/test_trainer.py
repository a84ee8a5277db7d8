"""The generic trainer core on a small logistic-regression task: vmapped restarts == one by one, evaluators on
their own schedules, minibatches, hyper-parameters in optimiser state, kill-and-resume == uninterrupted (bit for bit),
4 forced host devices == 1 device (in a subprocess), and the chunk cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gs_jax import checkpoints, losses, sampling, trainer
from gs_jax.errors import GsJaxError, Interrupted

N, D, R = 48, 5, 4


def _data(per_restart=True, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(R if per_restart else 1, D))
    x = rng.normal(size=(R if per_restart else 1, N, D)).astype(np.float32)
    y = (np.einsum("rnd,rd->rn", x, w) + 0.3 * rng.normal(size=x.shape[:2]) > 0).astype(np.float32)
    return {"x": x, "y": y} if per_restart else {"x": x[0], "y": y[0]}


def _task(optimizer=None, sampler=None, dropout=0.0):
    """Logistic regression with an optional random input mask (to exercise the per-step keys)."""

    def init(key, data):
        return {"w": 0.1 * jax.random.normal(key, (D,)), "b": jnp.zeros(())}, {}

    def loss(params, model_state, algo_state, batch_, step, key):
        x = batch_["x"]
        if dropout:
            x = x * jax.random.bernoulli(key, 1 - dropout, x.shape) / (1 - dropout)
        logits = x @ params["w"] + params["b"]
        value = losses.mean_nll(logits, batch_["y"]) + algo_state["c"] * jnp.mean(logits**2)
        return value, (model_state, algo_state, logits)

    opt = optimizer or optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
    return trainer.Task(
        init=init, loss=loss, optimizer=opt, sampler=sampler, algo_state={"c": jnp.float32(0.01)}
    )


def _metrics(state, data):
    logits = data["x"] @ state.params["w"] + state.params["b"]
    return {"acc": losses.mean_accuracy(logits, data["y"]), "w_norm": jnp.linalg.norm(state.params["w"])}


KEYS = jnp.stack([jax.random.PRNGKey(s) for s in range(R)])


def _assert_trees_equal(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_vmapped_restarts_equal_one_by_one_and_records():
    task, data = _task(dropout=0.3), _data()
    ev = [trainer.Evaluator("m", _metrics, every=5)]
    together = trainer.train(task, data, KEYS, steps=20, evaluators=ev, saveat=trainer.SaveAt(record_every=5))
    assert together.records.shape == (R, 4, N) and list(together.record_steps) == [0, 5, 10, 15]
    assert [h["step"] for h in together.history] == [0, 5, 10, 15, 19]
    for r in range(R):
        alone = trainer.train(
            task,
            jax.tree_util.tree_map(lambda a, r=r: a[r : r + 1], data),
            KEYS[r : r + 1],
            steps=20,
            evaluators=ev,
        )
        for a, b in zip(
            jax.tree_util.tree_leaves(together.state.params),
            jax.tree_util.tree_leaves(alone.state.params),
            strict=True,
        ):
            np.testing.assert_allclose(a[r], b[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(together.history[-1]["acc"][r], alone.history[-1]["acc"][0])


def test_restart_blocks_give_the_all_at_once_result():
    """restart_block only reorders work: blocks of 3 over R = 4 (the last one short) must reproduce the fully vmapped
    run to float32 rounding (a matmul batched over another number of restarts may sum in another order; ~1e-9 seen
    here) — a bug that mixed up restarts, keys or data between blocks would move them by O(0.1). Per-restart data
    with records and metrics, then data shared by all restarts."""
    task = _task(dropout=0.3)
    ev = [trainer.Evaluator("m", _metrics, every=4)]
    for per_restart, kw in ((True, dict(evaluators=ev, saveat=trainer.SaveAt(record_every=4))), (False, {})):
        data = _data(per_restart)
        kw = dict(steps=8, data_per_restart=per_restart, **kw)
        together = trainer.train(task, data, KEYS, **kw)
        blocked = trainer.train(task, data, KEYS, layout=trainer.Layout(restart_block=3), **kw)
        assert trainer.compiled_chunks(task, per_restart, restart_block=3) >= 1
        pick = (together.state, together.records, [h.get("acc") for h in together.history])
        for a, b in zip(jax.tree_util.tree_leaves(pick),
                        jax.tree_util.tree_leaves((blocked.state, blocked.records, [h.get("acc") for h in blocked.history])),
                        strict=True):  # fmt: skip
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
        w = together.state.params["w"]
        assert not np.allclose(w[0], w[1])  # the restarts differ, so a mix-up would show
    with pytest.raises(GsJaxError, match="restart_block must be ≥ 0"):
        trainer.train(task, _data(), KEYS, steps=2, layout=trainer.Layout(restart_block=-1))


def test_first_record_is_the_pre_update_forward_pass_and_matches_a_python_loop():
    task, data = _task(), _data()
    res = trainer.train(task, data, KEYS, steps=6, saveat=trainer.SaveAt(record_every=1))
    params = {"w": 0.1 * jax.random.normal(KEYS[2], (D,)), "b": jnp.zeros(())}
    opt = optax.sgd(0.1, momentum=0.9)
    s = opt.init(params)
    x, y = data["x"][2], data["y"][2]

    def loss(p):
        z = x @ p["w"] + p["b"]
        return losses.mean_nll(z, y) + 0.01 * jnp.mean(z**2)

    for t in range(6):
        np.testing.assert_allclose(res.records[2, t], x @ params["w"] + params["b"], rtol=1e-6, atol=1e-7)
        u, s = opt.update(jax.grad(loss)(params), s, params)
        params = optax.apply_updates(params, u)
    np.testing.assert_allclose(res.state.params["w"][2], params["w"], rtol=1e-5, atol=1e-7)


def test_hyper_parameters_in_state_share_one_program_and_equal_a_rebuilt_optimiser():
    task, data = _task(), _data()
    a = trainer.train(task, data, KEYS, steps=10, init=trainer.Init(opt_hyperparams={"learning_rate": 0.03}))
    n = trainer.compiled_chunks(task)
    b = trainer.train(
        task,
        data,
        KEYS,
        steps=10,
        init=trainer.Init(opt_hyperparams={"learning_rate": [0.03, 0.3, 0.03, 0.3]}),
    )
    assert trainer.compiled_chunks(task) == n == 1  # other learning rates, no new compilation
    fixed = _task(optimizer=optax.sgd(0.03, momentum=0.9))
    c = trainer.train(fixed, data, KEYS, steps=10)
    _assert_trees_equal(a.state.params, c.state.params)
    np.testing.assert_array_equal(a.state.params["w"][0], b.state.params["w"][0])
    assert not np.allclose(a.state.params["w"][1], b.state.params["w"][1])
    with pytest.raises(GsJaxError, match="unknown optimiser hyper-parameters"):
        trainer.train(task, data, KEYS, steps=2, init=trainer.Init(opt_hyperparams={"lr": 0.1}))


def _draws(sampler, data, key, steps, algo_state=None):
    state = sampler.init(data, algo_state or {}, key)
    out = []
    for t in range(steps):
        batch, state = jax.jit(sampler.draw)(data, state, jnp.int32(t), key)
        out.append(np.asarray(batch["i"]))
    return out


def test_epochs_are_permutations_drawn_once_per_epoch_and_equal_the_per_step_formula():
    """One permutation per epoch, kept in the sampler state: the batches equal slicing
    permutation(fold_in(fold_in(key, 2³¹−1), epoch)) at every step (the batches of the earlier per-step form,
    so results do not move)."""
    data = {"i": jnp.arange(N)}
    key = jax.random.PRNGKey(3)
    per_epoch = N // 8
    draws = _draws(sampling.epochs(8, ("i",)), data, key, 2 * per_epoch + 1)
    for t, got in enumerate(draws):
        epoch, i = divmod(t, per_epoch)
        perm = np.asarray(sampling.epoch_permutation(key, epoch, N))
        np.testing.assert_array_equal(got, perm[i * 8 : (i + 1) * 8])
    seen, nxt = np.concatenate(draws[:per_epoch]), np.concatenate(draws[per_epoch : 2 * per_epoch])
    assert sorted(seen.tolist()) == list(range(N)) and sorted(nxt.tolist()) == list(range(N))
    assert not np.array_equal(seen, nxt)
    task = _task(sampler=sampling.epochs(12, ("x", "y")))
    res = trainer.train(task, _data(per_restart=False), KEYS, steps=12, data_per_restart=False,
                        evaluators=[trainer.Evaluator("m", _metrics, every=0)])  # fmt: skip
    assert res.final["acc"].shape == (R,) and np.all(res.final["acc"] > 0.5)
    with pytest.raises(GsJaxError, match="larger than the training set"):
        trainer.train(_task(sampler=sampling.epochs(N + 1, ("x", "y"))), _data(per_restart=False), KEYS,
                      steps=2, data_per_restart=False)  # fmt: skip


def test_weighted_draws_follow_the_weights_and_mix_with_epochs():
    """With replacement, probability ∝ exp(logw): an example of weight 9 among weight-1 ones is drawn ≈ 9/(9+n−1)
    of the time; under ``epochs(weighted=True)`` a restart with constant logw keeps its permutations."""
    n = 20
    data = {"i": jnp.arange(n)}
    logw = np.zeros(n, np.float32)
    logw[3] = np.log(9.0)
    key = jax.random.PRNGKey(0)
    draws = np.concatenate(
        _draws(sampling.with_replacement(50, ("i",)), data, key, 200, {"logw": jnp.asarray(logw)})
    )
    freq = np.mean(draws == 3)
    assert abs(freq - 9 / 28) < 0.02  # 10,000 draws: 3 standard errors ≈ 0.014
    mixed = sampling.epochs(5, ("i",), weighted=True)
    uniform = _draws(mixed, data, key, 4, {"logw": jnp.zeros(n)})
    np.testing.assert_array_equal(np.concatenate(uniform), np.asarray(sampling.epoch_permutation(key, 0, n)))
    weighted = np.concatenate(_draws(mixed, data, key, 40, {"logw": jnp.asarray(logw)}))
    assert np.mean(weighted == 3) > 0.2


def test_evaluators_keep_their_own_schedules():
    seen = []
    evs = [trainer.Evaluator("often", _metrics, every=3), trainer.Evaluator("end", _metrics, every=0)]
    res = trainer.train(_task(), _data(), KEYS, steps=10, evaluators=evs,
                        progress=trainer.Progress(on_eval=lambda rec: seen.append(rec["step"])))  # fmt: skip
    assert seen == [0, 3, 6, 9] and set(res.final) == {"acc", "w_norm"}


def test_kill_and_resume_ends_in_the_identical_state(tmp_path):
    task, data = _task(dropout=0.2), _data()
    ev = [trainer.Evaluator("m", _metrics, every=4)]
    kw = dict(steps=23, evaluators=ev)
    whole = trainer.train(task, data, KEYS, saveat=trainer.SaveAt(record_every=1), **kw)
    ckpt = tmp_path / "ckpt"
    save = trainer.SaveAt(record_every=1, checkpoint_dir=ckpt, checkpoint_every_s=0.0)

    class Killed(Exception):
        pass

    def kill_at_12(record):
        if record["step"] == 12:
            raise Killed

    with pytest.raises(Killed):
        trainer.train(task, data, KEYS, saveat=save, progress=trainer.Progress(on_eval=kill_at_12), **kw)
    assert checkpoints.latest_checkpoint(ckpt).name == "ckpt_000000012.npz"  # the last chunk before the kill
    resumed = trainer.train(task, data, KEYS, saveat=save._replace(resume=True), **kw)
    _assert_trees_equal(whole.state, resumed.state)
    _assert_trees_equal(whole.params0, resumed.params0)
    np.testing.assert_array_equal(whole.records, resumed.records)
    assert [h["step"] for h in whole.history] == [h["step"] for h in resumed.history]
    for a, b in zip(whole.history, resumed.history, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    # a checkpoint of another run is refused in one line
    other = _task(optimizer=optax.adam(1e-2))
    with pytest.raises(GsJaxError, match="does not fit this run"):
        trainer.train(other, data, KEYS, steps=23, saveat=save._replace(resume=True))
    with pytest.raises(GsJaxError, match="leading restart axis of size 2"):
        trainer.train(task, data, KEYS[:2], steps=23)
    (ckpt / "ckpt_000000023.npz").write_bytes(b"not a zip")
    with pytest.raises(GsJaxError, match="unreadable"):
        trainer.train(task, data, KEYS, saveat=save._replace(resume=True), **kw)


def test_ctrl_c_raises_interrupted_at_the_newest_checkpoint_and_the_bar_counts_finished_steps(tmp_path):
    counted = []

    class Bar:
        def __init__(self, total, desc):
            self.total = total

        def update(self, n):
            counted.append(n)
            if sum(counted) >= 8:
                raise KeyboardInterrupt

        def close(self):
            pass

    save = trainer.SaveAt(checkpoint_dir=tmp_path, checkpoint_every_s=0.0)
    with pytest.raises(Interrupted) as info:
        trainer.train(_task(), _data(), KEYS, steps=20, saveat=save, progress=trainer.Progress(Bar, "toy"),
                      layout=trainer.Layout(max_chunk=4))  # fmt: skip
    assert info.value.step == 4 and info.value.what == "toy" and counted == [4, 4]


def test_one_key_and_a_short_loss():
    """One key = one restart without a restart axis; Task.simple takes (params, batch) -> loss or (loss, aux)."""
    data = _data(per_restart=False)

    def loss(params, batch):
        z = batch["x"] @ params["w"]
        return losses.mean_nll(z, batch["y"]), z

    task = trainer.Task.simple(lambda key, d: {"w": jnp.zeros(D)}, loss, optax.sgd(0.5))
    res = trainer.train(task, data, jax.random.PRNGKey(0), steps=30, saveat=trainer.SaveAt(record_every=10),
                        evaluators=[trainer.Evaluator("m", lambda s, d: {"n": jnp.linalg.norm(s.params["w"])}, 10)])  # fmt: skip
    assert res.state.params["w"].shape == (D,) and res.records.shape == (3, N) and res.failed_at == -1
    assert np.ndim(res.history[-1]["n"]) == 0
    w = jnp.zeros(D)
    for _ in range(30):
        w = w - 0.5 * jax.grad(lambda v: losses.mean_nll(data["x"] @ v, data["y"]))(w)
    np.testing.assert_allclose(res.state.params["w"], w, rtol=1e-5, atol=1e-6)
    scalar = trainer.Task(lambda key, d: ({"w": jnp.zeros(D)}, {}),
                          lambda p, ms, a, b, st, k: losses.mean_nll(b["x"] @ p["w"], b["y"]), optax.sgd(0.5))  # fmt: skip
    np.testing.assert_allclose(trainer.train(scalar, data, jax.random.PRNGKey(0), steps=30).state.params["w"], w,
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    bad = trainer.Task(lambda key, d: ({"w": jnp.zeros(D)}, {}), lambda *a: (1.0, 2.0), optax.sgd(0.5))
    with pytest.raises(GsJaxError, match="Task.simple"):
        trainer.train(bad, data, jax.random.PRNGKey(0), steps=1)
    with pytest.raises(GsJaxError, match="one PRNG key or a stack"):
        trainer.train(task, data, jnp.zeros((2, 2, 2), jnp.uint32), steps=1)


def test_non_finite_loss_freezes_only_that_restart():
    data = _data()
    data["x"][1, 0, 0] = np.nan
    res = trainer.train(_task(), data, KEYS, steps=5)
    assert list(res.failed_at) == [-1, 0, -1, -1]
    assert np.all(np.isfinite(res.state.params["w"]))


FOUR_DEVICES = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    import test_trainer as t
    from gs_jax import ntk, trainer, models
    res = t.trainer.train(t._task(dropout=0.2), t._data(), t.KEYS, steps=15, saveat=t.trainer.SaveAt(record_every=5),
                          evaluators=[t.trainer.Evaluator("m", t._metrics, every=5)])
    model = models.MoonsMLP(hidden=16)
    x = jax.random.normal(jax.random.PRNGKey(0), (10, 2))
    p = model.init(jax.random.PRNGKey(1), x[:1])
    K = ntk.empirical_ntk(model.apply, p, x, batch_size=3, backend="jax")
    print(json.dumps({{"devices": len(jax.devices()),
                       "sharded": trainer.restart_sharding(len(t.KEYS)) is not None,
                       "uneven_sharded": trainer.restart_sharding(3) is not None,
                       "w": np.asarray(res.state.params["w"]).tolist(),
                       "records": np.asarray(res.records).tolist(),
                       "acc": np.asarray(res.history[-1]["acc"]).tolist(),
                       "K": np.asarray(K).tolist()}}))
    """
)


def _run_devices(n: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
    code = FOUR_DEVICES.format(tests=os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_four_devices_equal_one():
    """Restarts laid over 4 forced host devices (and NTK blocks spread over them) give one device's results.

    Not bit for bit: on one device XLA runs the 4 restarts' matrix products as one batched product, on four each
    device runs one, and the two reduce in a different order (seen: 1 float32 ulp, ≤ 1.2e-7 relative, after 15
    steps). The tolerance is a few ulps grown over the steps."""
    one, four = _run_devices(1), _run_devices(4)
    assert one["devices"] == 1 and four["devices"] == 4 and four["sharded"] and not one["sharded"]
    assert not four["uneven_sharded"]  # 3 restarts do not divide over 4 devices: they stay on one
    for k in ("w", "records"):
        np.testing.assert_allclose(np.asarray(four[k]), np.asarray(one[k]), rtol=1e-6, atol=1e-6, err_msg=k)
    np.testing.assert_array_equal(np.asarray(four["acc"]), np.asarray(one["acc"]))
    np.testing.assert_allclose(np.asarray(four["K"]), np.asarray(one["K"]), rtol=1e-6, atol=1e-6)
