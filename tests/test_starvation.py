"""The starvation experiment: the colour-intensity knob, the sweep's objective, its prediction against a trained
linear model (where Eq. 5 is exact), and the entry point's output contract at tiny size."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import config, losses
from gs_jax.data import colored_mnist as cm
from gs_jax.data import mnist
from gs_jax.experiments import starvation as st


@pytest.fixture(scope="module")
def env():
    pool = mnist.embedded_default()
    return cm.build_restart(pool, 1234, four_envs=False).train[0]


def test_colour_intensity_keeps_the_digit_and_scales_the_colour(env):
    np.testing.assert_array_equal(st.with_intensity(env, 1.0), env.x)  # a = 1: the paper's inputs
    for a in (0.0, 0.4):
        x = st.with_intensity(env, a).reshape(-1, 2, 196)
        ref = env.x.reshape(-1, 2, 196)
        np.testing.assert_allclose(x.sum(1), ref.sum(1), rtol=1e-6, atol=1e-7)  # the grey digit is unchanged
        c = env.color.astype(int)
        rows = np.arange(len(c))
        # the colour signal (kept minus other channel) is a × the image
        np.testing.assert_allclose(x[rows, c] - x[rows, 1 - c], a * ref.sum(1), rtol=1e-6, atol=1e-7)
    with pytest.raises(Exception, match="intensity"):
        st.with_intensity(env, 1.5)


def test_sweep_objective_at_theta0_and_its_penalty():
    n, lam = 8, 3.0
    task = st.sweep_task(0, 1e-2, lam, n)
    x = np.random.default_rng(0).normal(size=(n, 392)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.float32)
    p0, _ = task.init(jax.random.PRNGKey(0), {"x": x})
    yhat0 = st.sweep_model(0).apply({"params": p0}, x)
    batch = {"x": x, "y": y, "yhat0": yhat0}
    value, _ = task.loss(p0, {}, {"theta0": p0}, batch, 0, None)
    assert float(value) == pytest.approx(np.log(2.0), rel=1e-6)  # centred logits are 0 at θ₀
    p1 = jax.tree_util.tree_map(lambda a: a + 0.1, p0)
    value1, _ = task.loss(p1, {}, {"theta0": p0}, batch, 0, None)
    logits = st.sweep_model(0).apply({"params": p1}, x) - yhat0
    drift = 0.01 * (392 + 1)  # every entry moved by 0.1
    assert float(value1) == pytest.approx(float(losses.mean_nll(logits, y)) + lam / (2 * n) * drift, rel=1e-5)


def _small(tmp_path, **over):
    cfg = config.load_config("configs/starvation.py:small")
    for k, v in over.items():
        cfg.sweep[k] = v
    return cfg


def test_prediction_matches_a_trained_linear_model():
    # with hidden = 0 the network is linear (Φ₀ = [x, 1]) and the centred, λ-penalised problem IS Eq. 5: trained to
    # convergence, its shape response must equal Eq. 9's fixed point (tolerance: Adam's residual after 3,000 steps,
    # relative 2 %; the MLP's gap is what the experiment measures)
    cfg = _small(None, hidden=0, lr=1e-2, steps=3000, intensities=(0.5, 1.0), restarts=1, n=64, lam=1.0)
    rows = st.run_sweep(cfg)
    for r in rows:
        assert r["z_shape_predicted"] == pytest.approx(r["z_shape_measured"], rel=0.02, abs=2e-3)
        assert r["z_colour_predicted"] == pytest.approx(r["z_colour_measured"], rel=0.02, abs=2e-3)
    assert rows[1]["s_colour_sq"] > rows[0]["s_colour_sq"]  # more colour intensity, a stronger colour feature


def test_entry_point_writes_the_contract(tmp_path):
    from importlib import util

    spec = util.spec_from_file_location("st_entry", "train/starvation.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--config", "configs/starvation.py:small", "--runs-dir", str(tmp_path)]) == 0
    out = tmp_path / "starvation" / "latest"
    s = json.loads((out / "summary.json").read_text())
    for m in ("erm", "sd"):
        assert np.isfinite(s["methods"][m]["z_colour_final"]) and np.isfinite(
            s["methods"][m]["z_shape_final"]
        )
    assert len(s["sweep"]) == 3
    for r in s["sweep"]:
        assert {"s_colour_sq", "z_shape_measured", "z_shape_predicted"} <= set(r)
        assert r["s_colour_sq"] > 0
    for f in ("table.md", "responses.png", "theorem2_network.png", "responses.npz"):
        assert (out / f).is_file(), f
    z = np.load(out / "responses.npz")
    np.testing.assert_allclose(z["erm_z_colour"][:, 0], 0.0, atol=1e-5)  # centred: 0 at initialisation
    assert jnp.asarray(z["erm_steps"])[0] == 0
