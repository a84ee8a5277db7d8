"""gs_jax.monitor against brute force: explicit Jacobian, numpy SVD, UᵀY(ŷ − ŷ₀); the evaluator against logits
recomputed after training; the alignment helper on constructed features."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gs_jax import monitor, trainer
from gs_jax.errors import GsJaxError

N, D = 24, 5


class Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(jnp.tanh(nn.Dense(16)(x)))[:, 0]


def _problem(seed=0):
    kx, kp = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (N, D))
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(jnp.int32)
    params = Tiny().init(kp, x)["params"]
    return Tiny().apply, params, x, y


def _brute(apply, params, x, y, k):
    """Φ₀ by an explicit Jacobian, YΦ₀ = U S Vᵀ by numpy's SVD, oriented as gs_jax.features (1ᵀu_j ≥ 0)."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    phi = np.asarray(jax.jacrev(lambda p: apply({"params": unravel(p)}, x))(flat), np.float64)
    ypm = 2.0 * np.asarray(y) - 1.0
    U, s, _ = np.linalg.svd(ypm[:, None] * phi, full_matrices=False)
    U = U[:, :k] * np.where(U[:, :k].sum(0) < 0, -1.0, 1.0)
    return U, s[:k], ypm


@pytest.mark.parametrize("method", ["dense", "lanczos"])
def test_features_and_responses_match_brute_force(method):

    apply, params, x, y = _problem()
    k = 4
    f = lambda p, xx: apply({"params": p}, xx)  # noqa: E731
    mon = monitor.at_reference(f, params, x, y, k, method=method)
    U, s, ypm = _brute(apply, params, x, y, k)
    # float32 model: singular values to 1e-4 relative; feature columns to 1e-3 (well-separated spectrum checked)
    assert np.all(np.diff(s) < -1e-2 * s[0])
    np.testing.assert_allclose(np.asarray(mon.s), s, rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.asarray(mon.U)), np.abs(U), atol=1e-3)
    np.testing.assert_allclose(np.asarray(mon.U), U, atol=1e-3)
    # responses: UᵀY(ŷ − ŷ₀) for some other parameters
    p2 = jax.tree_util.tree_map(lambda a: a * 1.1 + 0.01, params)
    logits = np.asarray(apply({"params": p2}, x), np.float64)
    yhat0 = np.asarray(apply({"params": params}, x), np.float64)
    np.testing.assert_allclose(
        np.asarray(monitor.responses(mon, logits)), U.T @ (ypm * (logits - yhat0)), atol=2e-4
    )
    np.testing.assert_allclose(np.asarray(monitor.responses(mon, logits, centred=False)), U.T @ (ypm * logits),
                               atol=2e-4)  # fmt: skip
    np.testing.assert_allclose(np.asarray(monitor.responses(mon, yhat0)), 0.0, atol=1e-6)  # centred: 0 at θ₀


def test_evaluator_records_what_the_saved_logits_give():
    apply, params, x, y = _problem(1)
    k = 3
    f = lambda p, xx: apply({"params": p}, xx)  # noqa: E731
    data = {"x": x, "y": y.astype(jnp.float32)}
    task = trainer.Task(
        init=lambda key, d: (Tiny().init(key, d["x"])["params"], {}),
        loss=lambda p, ms, st, b, step, key: (optax.sigmoid_binary_cross_entropy(f(p, b["x"]), b["y"]).mean(),
                                              (ms, st, None)),
        optimizer=optax.adam(0.05),
    )  # fmt: skip
    keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
    p0 = [task.init(keys[r], data)[0] for r in range(2)]
    mons = [monitor.at_reference(f, p0[r], x, y, k, method="dense") for r in range(2)]
    # per-restart monitors in per-restart data (restart r has the features of its own initialisation)
    per = {"x": jnp.stack([x, x]), "y": jnp.stack([data["y"]] * 2), "monitor": tuple(monitor.stack(mons))}
    ev = monitor.evaluator(lambda st, d: f(st.params, d["x"]), every=5)
    last = trainer.Evaluator("end", ev.fn, every=0)
    res = trainer.train(task, per, keys, steps=20, evaluators=[ev, last])
    steps, z = monitor.trajectory(res.history, k)
    assert steps.tolist() == [0, 5, 10, 15, 19] and z.shape == (2, 5, k)
    np.testing.assert_allclose(z[:, 0], 0.0, atol=1e-5)  # centred at the initialisation
    for r in range(2):
        params_r = jax.tree_util.tree_map(lambda a, r=r: a[r], res.state.params)
        want = np.asarray(monitor.responses(mons[r], f(params_r, x)))
        got = np.array([res.final[f"z{j}"][r] for j in range(k)])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert np.abs(want).max() > 0.1  # training moved the responses


def test_alignment_and_identify_on_constructed_features():
    rng = np.random.default_rng(0)
    n = 200
    colour = rng.choice([-1.0, 1.0], n)
    shape = rng.choice([-1.0, 1.0], n)
    Q, _ = np.linalg.qr(np.stack([colour, shape, rng.normal(size=n), rng.normal(size=n)], 1))
    # column 2 is the shape attribute (normalised, up to the orientation), column 0 a noise direction
    U = np.stack([Q[:, 2], 0.8 * Q[:, 3] + 0.6 * Q[:, 2], shape / np.sqrt(n), -colour / np.sqrt(n)], 1)
    mon = monitor.Monitor(jnp.asarray(U), jnp.array([4.0, 3.0, 2.0, 1.0]), jnp.ones(n), jnp.zeros(n))
    corr = monitor.alignment(mon, shape)
    assert corr[2] == pytest.approx(1.0) and abs(corr[0]) < 0.3
    assert monitor.alignment(mon, colour)[3] == pytest.approx(-1.0)
    found = monitor.identify(mon, {"colour": colour, "shape": shape})
    assert found["shape"]["index"] == 2 and found["colour"]["index"] == 3 and found["shape"]["s"] == 2.0
    np.testing.assert_array_equal(monitor.alignment(mon, np.ones(n)), 0.0)
    # uncentred (cosine): an attribute constant in Y-space (it always agrees with the label) finds the feature along
    # the all-ones direction, which a correlation cannot see
    ones = np.ones(n) / np.sqrt(n)
    mon1 = monitor.Monitor(jnp.asarray(np.stack([ones, shape / np.sqrt(n), Q[:, 3]], 1)), jnp.array([3.0, 2.0, 1.0]),
                           jnp.ones(n), jnp.zeros(n))  # fmt: skip
    cos = monitor.alignment(mon1, np.ones(n), centred=False)
    assert (
        cos[0] == pytest.approx(1.0) and abs(cos[1]) < 0.2
    )  # shape ⟂ 1 up to sampling (mean of ±1 over 200)
    found = monitor.identify(mon1, {"item": np.ones(n), "shape": shape}, centred=False)
    assert (found["item"]["index"], found["shape"]["index"]) == (0, 1)
    with pytest.raises(GsJaxError, match="one value per probe"):
        monitor.alignment(mon, np.ones(3))


def test_bad_inputs_are_one_line():
    apply, params, x, y = _problem()
    f = lambda p, xx: apply({"params": p}, xx)  # noqa: E731
    with pytest.raises(GsJaxError, match="k must be"):
        monitor.at_reference(f, params, x, y, N)
    with pytest.raises(GsJaxError, match="unknown method"):
        monitor.at_reference(f, params, x, y, 2, method="svd")
    with pytest.raises(GsJaxError, match="one logit per example"):
        monitor.at_reference(lambda p, xx: jnp.stack([f(p, xx)] * 2, 1), params, x, y, 2)
