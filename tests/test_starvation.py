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
    yhat0 = st.sweep_model(0).logits({"params": p0}, x)
    batch = {"x": x, "y": y, "yhat0": yhat0}
    value, _ = task.loss(p0, {}, {"theta0": p0}, batch, 0, None)
    assert float(value) == pytest.approx(np.log(2.0), rel=1e-6)  # centred logits are 0 at θ₀
    p1 = jax.tree_util.tree_map(lambda a: a + 0.1, p0)
    value1, _ = task.loss(p1, {}, {"theta0": p0}, batch, 0, None)
    logits = st.sweep_model(0).logits({"params": p1}, x) - yhat0
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


def _entry():
    from importlib import util

    spec = util.spec_from_file_location("st_entry", "train/starvation.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SMALL = ["--config", "configs/starvation.py:small", "--config.checkpoint_every_s=0"]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("starvation_runs")
    assert _entry().main([*SMALL, "--runs-dir", str(root), "--name", "whole"]) == 0
    return root


@pytest.mark.slow  # the fast suite's 10 minutes on 2 cores; the small run with its controlled study compiles ≈ 75 s
def test_entry_point_writes_the_contract(whole_run):
    out = whole_run / "starvation" / "latest"
    s = json.loads((out / "summary.json").read_text())
    for m in ("erm", "sd"):
        assert np.isfinite(s["methods"][m]["z_colour_final"]) and np.isfinite(
            s["methods"][m]["z_shape_final"]
        )
    assert len(s["sweep"]) == 3
    for r in s["sweep"]:
        assert {"s_colour_sq", "z_shape_measured", "z_shape_predicted"} <= set(r)
        assert r["s_colour_sq"] > 0
    for f in ("table.md", "responses.png", "theorem2_network.png", "theorem2_controlled.png", "responses.npz",
              "metrics.jsonl"):  # fmt: skip
        assert (out / f).is_file(), f
    # (a) held to Eq. 17's fixed point: the prediction is the stored U's (1ᵀu_shape)/(1ᵀu_colour)
    for m in ("erm", "sd"):
        f = s["fixed_point_check"][m]
        assert np.isfinite(f["z_shape_over_z_colour_measured"]) and f["m_star_eq18"] == pytest.approx(
            0.2223, abs=1e-4
        )
    # (c) the output contract of the controlled study
    c = s["controlled"]
    keys = {"b", "s_colour_sq", "z_shape_measured_mean", "z_shape_measured_std", "z_shape_predicted", "slope",
            "slope_std", "grad_norm_final"}  # fmt: skip
    for case in ("linear_eq5", "real_eq5", "linear_eq17", "real_eq17"):
        assert keys <= set(c["cases"][case]), case
        assert c["cases"][case]["b"] == [0.5, 2.0]
    s2 = np.asarray(c["cases"]["linear_eq5"]["s_colour_sq_per_seed"])
    np.testing.assert_allclose(s2[:, 1] / s2[:, 0], 16.0, rtol=1e-12)  # only s_colour moves, as b²
    for case in ("real_eq5", "real_eq17"):  # two b values: the least-squares slope is the secant, per seed
        z = np.asarray(c["cases"][case]["z_shape_measured_per_seed"])
        secant = (z[:, 1] - z[:, 0]) / (s2[:, 1] - s2[:, 0])
        assert c["cases"][case]["slope"] == pytest.approx(secant.mean(), rel=1e-6)
        assert c["cases"][case]["slope_std"] == pytest.approx(secant.std(), rel=1e-6, abs=1e-12)
    # the harness test: on the linearised network the measured z_shape is Eq. 9's / Eq. 18's fixed point to the
    # solver's certified bound (strong convexity: s_shape‖∇L‖/λ for Eq. 5, ‖μv − σ(−v)‖/μ for Eq. 17)
    for case in ("linear_eq5", "linear_eq17"):
        assert c["cases"][case]["within_tolerance"], c["cases"][case]
        assert c["cases"][case]["abs_diff_measured_predicted_max"] < 1e-4
    assert {"z_shape_real_minus_linear", "nonlinearity_part", "kernel_change"} <= set(c["gap_eq5"])
    z = np.load(out / "responses.npz")
    np.testing.assert_allclose(z["erm_z_colour"][:, 0], 0.0, atol=1e-5)  # centred: 0 at initialisation
    assert jnp.asarray(z["erm_steps"])[0] == 0


def _strip_times(summary):
    if isinstance(summary, dict):
        return {
            k: _strip_times(v) for k, v in summary.items() if not (k.endswith("_s") or k.startswith("wall"))
        }
    if isinstance(summary, list):
        return [_strip_times(v) for v in summary]
    return summary


@pytest.mark.slow  # the fast suite's 10 minutes on 2 cores; three runs of the small variant (≈ 40 s beyond the contract test's)
def test_kill_and_resume_equals_the_uninterrupted_run(whole_run, monkeypatch, capsys):
    """A progress meter raising KeyboardInterrupt mid-training (as Ctrl-C does), then --resume: summary.json (wall
    times aside) and metrics.jsonl equal the uninterrupted run's."""
    from gs_jax import runs

    seen = []

    def dying_at(desc_part, nth):
        class Dying:
            def __init__(self, *a, desc="", **kw):
                self.desc = desc

            def update(self, n):
                seen.append(self.desc)
                if desc_part in self.desc and seen.count(self.desc) == nth:
                    raise KeyboardInterrupt

            def close(self):
                pass

        return Dying

    root = whole_run
    # killed in SD's training (after checkpointed chunks), then, resumed, killed again inside the controlled study
    # (after its first cases were saved); the second resume completes the run
    for where, nth in (("responses: sd", 2), ("controlled: linear eq17", 1)):
        monkeypatch.setattr(runs, "progress", dying_at(where, nth))
        args = ["--name", "killed"] if where.startswith("responses") else ["--resume", "killed"]
        assert _entry().main([*SMALL, "--runs-dir", str(root), *args]) == 130
        assert "continue with `--resume killed`" in capsys.readouterr().err
        monkeypatch.undo()
        assert (root / "starvation" / "latest").resolve().name == "whole"
    assert (root / "starvation" / "killed" / "checkpoints" / "controlled" / "real_eq5.npz").is_file()
    assert _entry().main([*SMALL, "--runs-dir", str(root), "--resume", "killed"]) == 0
    runs_dir = root / "starvation"
    a, b = (json.loads((runs_dir / n / "summary.json").read_text()) for n in ("whole", "killed"))
    assert _strip_times(a) == _strip_times(b)
    assert (runs_dir / "whole" / "metrics.jsonl").read_text() == (
        runs_dir / "killed" / "metrics.jsonl"
    ).read_text()


@pytest.mark.parametrize("override, key", [("responses.probe_per_env=-5", "responses.probe_per_env"),
                                           ("sweep.restarts=0", "sweep.restarts"),
                                           ("responses.restarts=0", "responses.restarts"),
                                           ("sweep.lam=0", "sweep.lam")])  # fmt: skip
def test_sizes_refused_up_front_naming_the_key(tmp_path, capsys, override, key):
    assert _entry().main([*SMALL, f"--config.{override}", "--runs-dir", str(tmp_path)]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[gs-jax]")]
    assert len(err) == 1 and err[0].startswith("starvation: error:") and key in err[0], err
    assert not (tmp_path / "starvation").exists() or not any((tmp_path / "starvation").iterdir())


@pytest.mark.slow  # the fast suite's 10 minutes on 2 cores; ≈ 11 s
def test_data_dir_reads_an_idx_directory(tmp_path):
    """--config.data.dir=DIR loads MNIST IDX files (a small generated directory)."""
    rng = np.random.default_rng(0)
    d = tmp_path / "idx"
    d.mkdir()
    mnist.write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (220, 28, 28)))
    mnist.write_idx(d / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 220))
    cfg = config.apply_overrides(config.load_config("configs/starvation.py:small"),
                                 [f"data.dir={d}", "data.verify=false", "data.n_train_pool=200"])  # fmt: skip
    pool = st.pool_of(cfg)
    assert pool.train_images.shape == (200, 28, 28) and pool.test_images.shape == (20, 28, 28)
    argv = [*SMALL, f"--config.data.dir={d}", "--config.data.verify=false", "--config.data.n_train_pool=200",
            "--config.responses.restarts=1", "--config.sweep.restarts=1", "--config.sweep.intensities=1.0",
            "--config.max_steps=5", "--config.controlled.enabled=false", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    assert _entry().main(argv) == 0
    s = json.loads((tmp_path / "runs" / "starvation" / "latest" / "summary.json").read_text())
    assert s["data"] == str(d) and len(s["sweep"]) == 1
