"""The robustness experiment (Table 1 / Fig. 2 analogues): SD loss, the fast LeNet, λ selection, augmentation,
config variants, and the entry point on the `:small` variants (tiny Fashion IDX files, generated CIFAR pickles)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import config, losses, models
from gs_jax.data import cifar
from gs_jax.data import mnist as mnist_data
from gs_jax.errors import GsJaxError
from gs_jax.experiments import robustness, robustness_core

REPO = Path(__file__).resolve().parents[1]
VARIANTS = [None, "small", "cifar2", "cifar10", "cifar100", "cifar2_small", "cifar10_small", "cifar100_small"]


def entry():
    spec = importlib.util.spec_from_file_location("train_robustness", REPO / "train" / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sd_mean_squared_logits_matches_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 5)) * 3
    y = rng.integers(0, 5, 7)
    # numpy transcription of the Table 1 code: F.cross_entropy(z, y) + SD * z.pow(2).mean()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ref = -np.mean(np.log(p[np.arange(7), y])) + 0.05 * np.mean(z**2)
    got = losses.sd_mean_squared_logits(jnp.asarray(z, jnp.float32), jnp.asarray(y), 0.05)
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)
    erm = losses.sd_mean_squared_logits(jnp.asarray(z, jnp.float32), jnp.asarray(y), 0.0)
    np.testing.assert_allclose(float(erm), ref - 0.05 * np.mean(z**2), rtol=1e-5)


@pytest.mark.parametrize("shape,k", [((3, 28, 28, 1), 10), ((2, 32, 32, 3), 2)])
def test_lenet_apply_is_the_flax_module(shape, k):
    x = jax.random.uniform(jax.random.PRNGKey(1), shape, minval=-1.0, maxval=1.0)
    module = models.LeNetFig2(num_classes=k)
    params = module.init(jax.random.PRNGKey(0), x)["params"]
    np.testing.assert_allclose(
        models.lenet_fig2_apply(params, x), module.apply({"params": params}, x), rtol=1e-4, atol=1e-5
    )


def test_select_lambda_rule():
    lams = (0.0, 0.01, 0.1, 1.0)
    # λ = 1 has the best PGD accuracy but loses 5 points of clean accuracy: the rule takes λ = 0.1
    j, _ = robustness.select_lambda(
        lams, [0.90, 0.90, 0.895, 0.85], [0.2, 0.3, 0.4, 0.6], "val_pgd_within_1pt", 0.01
    )
    assert j == 2
    j, why = robustness.select_lambda(
        lams, [0.9, 0.7, 0.7, 0.7], [0.2, 0.3, 0.4, 0.6], "val_pgd_within_1pt", 0.01
    )
    assert j == 1 and "smallest" in why
    assert robustness.select_lambda(lams, None, None, "fixed", 0.01)[0] == 1
    with pytest.raises(GsJaxError, match="unknown table.select"):
        robustness.select_lambda(lams, [0.9] * 4, [0.1] * 4, "nope", 0.01)


def test_augment_is_a_crop_of_the_padded_image_or_its_flip():
    x = jax.random.uniform(jax.random.PRNGKey(0), (6, 8, 8, 3))
    out = robustness_core.augment(x, jax.random.PRNGKey(3), pad=0)
    for i in range(6):
        a, b = np.asarray(out[i]), np.asarray(x[i])
        assert np.array_equal(a, b) or np.array_equal(a, b[:, ::-1])
    out4 = robustness_core.augment(x, jax.random.PRNGKey(3), pad=4)
    assert out4.shape == x.shape and float(jnp.min(out4)) >= 0.0


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_variants_load(variant):
    cfg = config.load_config(f"{REPO}/configs/robustness.py" + (f":{variant}" if variant else ""))
    assert cfg.table.enabled and len(cfg.table.lambdas) >= 1 and cfg.attack.eps == pytest.approx(5 / 255)
    if variant == "cifar10":
        assert (cfg.table.net.name, cfg.table.epochs, cfg.table.milestones) == ("vgg", 160, (80, 120))
        assert cfg.table.lambdas == (0.01,) and cfg.table.nesterov and cfg.table.augment
    if variant == "cifar100":
        assert (cfg.table.net.name, cfg.table.net.depth, cfg.table.lambdas) == ("preact", 110, (0.05,))
    if variant is None:
        assert cfg.data.dataset == "fashion-mnist" and cfg.table.restarts >= 5 and cfg.fig2.classes == (2, 4)


def test_unknown_variant():
    with pytest.raises(GsJaxError, match="choose from"):
        config.load_config(f"{REPO}/configs/robustness.py:nope")


def _tiny_fashion(root: Path, n_train: int = 300, n_test: int = 60) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, :4, :4] = labels[:, None, None] * 25  # a learnable corner
        mnist_data.write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        mnist_data.write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def _check_contract(run: Path, data: str):
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"] == data and summary["eps"] == pytest.approx(5 / 255)
    for name in ("erm", "sd"):
        m = summary["methods"][name]
        for key in ("clean_acc_mean", "clean_acc_std", "pgd_acc_mean", "pgd_acc_std"):
            assert 0.0 <= m[key] <= 1.0, (name, key, m[key])
        assert m["eps"] == pytest.approx(5 / 255) and "margin_median" in m
    assert summary["methods"]["erm"]["lam"] == 0.0 and summary["methods"]["sd"]["lam"] > 0
    for f in (
        "margin_cdf.png",
        "margin_cdf.pdf",
        "pgd_vs_eps.png",
        "table.md",
        "metrics.jsonl",
        "margins.npz",
    ):
        assert (run / f).is_file(), f


def test_main_small_fashion_writes_the_output_contract(in_tmp, capsys):
    data = _tiny_fashion(in_tmp / "fashion")
    # fig2 off: the margins come from the Table 1 nets (cifar2_small runs the Fig. 2 part)
    argv = ["--config", f"{REPO}/configs/robustness.py:small", f"--config.data.dir={data}",
            "--config.data.verify=false", "--runs-dir", "runs", "--name", "t",
            "--config.fig2.enabled=false"]  # fmt: skip
    assert entry().main(argv) == 0
    out = capsys.readouterr().out
    assert "Table 1 analogue — data: fashion-mnist" in out and "paper cifar10" in out
    _check_contract(in_tmp / "runs" / "robustness" / "latest", "fashion-mnist")


@pytest.mark.parametrize(
    "variant",
    [
        "cifar2_small",
        # VGG-16-BN and PreAct-ResNet take minutes to compile on 2 shared CPU cores: `make test-slow`
        pytest.param("cifar10_small", marks=pytest.mark.slow),
        pytest.param("cifar100_small", marks=pytest.mark.slow),
    ],
)
def test_main_small_cifar_writes_the_output_contract(variant, in_tmp):
    dataset = "cifar100" if variant.startswith("cifar100") else "cifar10"
    cifar.write_fake_cifar(in_tmp / "data", dataset, n_per_batch=40)
    argv = ["--config", f"{REPO}/configs/robustness.py:{variant}", f"--config.data.dir={in_tmp / 'data'}",
            "--config.data.verify=false", "--runs-dir", "runs", "--name", "t"]  # fmt: skip
    assert entry().main(argv) == 0
    _check_contract(in_tmp / "runs" / "robustness" / "latest", variant.removesuffix("_small"))


def test_bad_input_is_one_line(in_tmp, capsys, monkeypatch):
    monkeypatch.delenv("GS_DATA_DIR", raising=False)
    assert entry().main(["--config", f"{REPO}/configs/robustness.py:small", "--config.table.nope=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robustness: error:") and "nope" in err[0]
    assert (
        entry().main(["--config", f"{REPO}/configs/robustness.py:cifar10_small", "--runs-dir", "runs"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robustness: error:") and "make data-cifar" in err[-1]
    missing = in_tmp / "absent"
    argv = [
        "--config",
        f"{REPO}/configs/robustness.py:cifar2_small",
        f"--config.data.dir={missing}",
        "--runs-dir",
        "r",
    ]
    assert entry().main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
