"""The robustness experiment (Table 1 / Fig. 2 analogues): the registry's SD in the Table 1 code's form, the fast
LeNet, the selection rule, augmentation, config variants, and the entry point on the `:small` variants (tiny
Fashion IDX files, generated CIFAR pickles): output contract, kill-and-resume, other registry methods, bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import algorithms, config, models, sampling
from gs_jax.data import cifar
from gs_jax.data import mnist as mnist_data
from gs_jax.errors import GsJaxError
from gs_jax.experiments import robustness_table

REPO = Path(__file__).resolve().parents[1]
VARIANTS = [None, "small", "cifar2", "cifar10", "cifar100", "cifar2_small", "cifar10_small", "cifar100_small"]
WALL_TIMES = {
    "train_s",
    "attack_s",
    "margin_s",
    "wall_s_total",
    "train_cpu_s",
    "attack_cpu_s",
    "margin_cpu_s",
}


def entry():
    spec = importlib.util.spec_from_file_location("train_robustness", REPO / "train" / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registry_sd_is_the_table1_code_form():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 5)) * 3
    y = rng.integers(0, 5, 7)
    # numpy transcription of the Table 1 code: F.cross_entropy(z, y) + SD * z.pow(2).mean()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ce = -np.mean(np.log(p[np.arange(7), y]))
    batch = {"y": jnp.asarray(y)}
    zj = jnp.asarray(z, jnp.float32)
    sd, _, _ = algorithms.sd_loss(algorithms.hyper("sd", {"lam": 0.05}), {}, 0, zj, batch, {})
    np.testing.assert_allclose(float(sd), ce + 0.05 * np.mean(z**2), rtol=1e-5)
    erm, _, _ = algorithms.erm_loss(algorithms.hyper("erm"), {}, 0, zj, batch, {"w": jnp.ones(3)})
    np.testing.assert_allclose(float(erm), ce, rtol=1e-5)


@pytest.mark.parametrize("shape,k", [((2, 32, 32, 3), 2)])  # (28×28×1: test_robust_models, banded conv)
def test_lenet_apply_is_the_flax_module(shape, k):
    x = jax.random.uniform(jax.random.PRNGKey(1), shape, minval=-1.0, maxval=1.0)
    module = models.LeNetFig2(num_classes=k)
    params = module.init(jax.random.PRNGKey(0), x)["params"]
    np.testing.assert_allclose(
        models.lenet_fig2_apply(params, x), module.apply({"params": params}, x), rtol=1e-4, atol=1e-5
    )


def test_fig2_erm_is_sd_at_zero_and_the_authors_attack_sees_raw_pixels():
    """Fig. 2 runs ERM as the authors do, the SD loss with c = 0: the registry's erm at l2 = 0 adds 0·Σp², so both
    train to the same parameters (a small linear net here, bit for bit); the authors' Table 1 attack differentiates
    the net without its input normalisation, i.e. the normalised net at de-normalised inputs."""
    from gs_jax import optim, supervised, trainer

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 8)).astype(np.float32)
    y = (np.arange(40) % 2).astype(np.int32)
    model = models.build("linear", num_outputs=2)
    out = []
    for name, hp in (("erm", {}), ("sd", {"lam": 0.0})):
        spec = supervised.Spec(model, ((name, ()),), optim.spec(name="sgd", lr=0.1, momentum=0.9),
                               supervised.data_info(y, n_outputs=2), sampler="epochs", batch_size=1,
                               steps_per_epoch=40)  # fmt: skip
        st = supervised.stack([supervised.restart_state(spec, name, hp)])
        res = trainer.train(supervised.make_task(spec), {"x": x, "y": y}, jax.random.PRNGKey(1)[None], steps=30,
                            data_per_restart=False, init=trainer.Init(algo_state=st))  # fmt: skip
        out.append(jax.tree_util.tree_leaves(res.state.params))
    assert all(np.array_equal(a, b) for a, b in zip(*out, strict=True))
    assert not np.array_equal(out[0][0], 0 * out[0][0])
    rng = np.random.default_rng(1)
    normed = models.build("lenet", input_norm="fashion-mnist", num_outputs=10)
    raw = models.build("lenet", input_norm="", num_outputs=10)
    xs = jnp.asarray(rng.uniform(0, 1, (3, 28, 28, 1)), jnp.float32)
    v = normed.init(jax.random.PRNGKey(2), xs[:1])
    mean, std = models.INPUT_NORMS["fashion-mnist"]
    np.testing.assert_allclose(
        raw.logits(v, xs), normed.logits(v, xs * std[0] + mean[0]), rtol=1e-4, atol=1e-5
    )


def test_select_rule():
    # candidates λ = 0.01, 0.1, 1: λ = 1 has the best PGD accuracy but loses 5 points of clean accuracy → λ = 0.1
    j, _ = robustness_table.select(0.90, [0.90, 0.895, 0.85], [0.3, 0.4, 0.6], "val_pgd_within_1pt", 0.01)
    assert j == 1
    j, why = robustness_table.select(0.9, [0.7, 0.7, 0.7], [0.3, 0.4, 0.6], "val_pgd_within_1pt", 0.01)
    assert j == 0 and "the first" in why
    assert robustness_table.select(0.9, None, None, "fixed", 0.01)[0] == 0
    with pytest.raises(GsJaxError, match="unknown table.select"):
        robustness_table.select(0.9, [0.9] * 3, [0.1] * 3, "nope", 0.01)


def test_augment_is_a_crop_of_the_padded_image_or_its_flip():
    x = jax.random.uniform(jax.random.PRNGKey(0), (6, 8, 8, 3))
    out = sampling.augment_crop_flip(x, jax.random.PRNGKey(3), pad=0)
    for i in range(6):
        a, b = np.asarray(out[i]), np.asarray(x[i])
        assert np.array_equal(a, b) or np.array_equal(a, b[:, ::-1])
    out4 = sampling.augment_crop_flip(x, jax.random.PRNGKey(3), pad=4)
    assert out4.shape == x.shape and float(jnp.min(out4)) >= 0.0


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_variants_load(variant):
    cfg = config.load_config(f"{REPO}/configs/robustness.py" + (f":{variant}" if variant else ""))
    assert (
        cfg.table.enabled and cfg.attack.eps == pytest.approx(5 / 255) and cfg.attack.input_scale == "correct"
    )
    assert "erm" in cfg.methods.enabled and "sd" in cfg.methods.enabled
    if variant == "cifar10":
        assert (cfg.table.net.name, cfg.table.epochs, cfg.table.milestones) == ("vgg", 160, (80, 120))
        assert cfg.methods.sd.lam == 0.01 and cfg.table.nesterov and cfg.table.augment
        assert cfg.table.net.input_norm == "cifar10"
    if variant == "cifar100":
        assert (cfg.table.net.name, cfg.table.net.depth, cfg.methods.sd.lam) == ("preact", 110, 0.05)
    if (
        variant is None
    ):  # the protocols: Fig. 2 exact, Table 1 saturated with the paper's λ and a validated one
        f = cfg.fig2
        assert cfg.data.dataset == "fashion-mnist" and cfg.table.restarts >= 3 and f.classes == (2, 4)
        assert (f.batch_size, f.epochs, f.lr, f.momentum, f.sd_coef, f.seeds) == (
            1,
            40,
            1e-3,
            0.9,
            0.1,
            (1, 2, 3),
        )
        assert (f.search.eps0, f.search.growth, f.search.halvings, f.search.steps) == (0.3, 1.5, 20, 40)
        assert f.n_points == 0 and cfg.methods.sd.lam == 0.01 and len(cfg.methods.sd_val.lam) > 1
        assert cfg.table.net.input_norm == "fashion-mnist" and cfg.table.milestones


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
    fig = summary["fig2"]
    assert set(fig["protocol"]) >= {"batch_size", "epochs", "lr", "sd_coef", "classes"}
    for name in ("erm", "sd"):
        m = fig["methods"][name]
        assert set(m) >= {
            "train_acc",
            "test_acc",
            "margin_median",
            "margin_quartiles",
            "failed_attacks",
            "n_points",
        }
    for row in summary["table"]["rows"]:
        assert set(row) >= {"lam", "train_acc_mean", "clean_acc_mean", "clean_acc_std", "pgd_acc_mean", "pgd_acc_std",
                            "pgd_acc_authors_attack_mean", "pgd_acc_authors_attack_std"}  # fmt: skip
    for f in (
        "margin_cdf.png",
        "margin_cdf.pdf",
        "pgd_vs_eps.png",
        "table.md",
        "metrics.jsonl",
        "margins.npz",
    ):
        assert (run / f).is_file(), f
    return summary


class _KillAt:
    """A progress meter whose bar raises KeyboardInterrupt (as Ctrl-C would) at its ``at``-th update of a program
    whose description starts with ``prefix``: that chunk finished, its checkpoint not yet written."""

    def __init__(self, prefix: str, at: int):
        self.prefix, self.at, self.fired = prefix, at, False

    def __call__(self, total=None, desc="", **kw):
        outer = self

        class Bar:
            count = 0

            def update(self, n):
                self.count += 1
                if desc.startswith(outer.prefix) and self.count == outer.at and not outer.fired:
                    outer.fired = True
                    raise KeyboardInterrupt

            def close(self):
                pass

        return Bar()


def test_main_small_contract_and_kill_and_resume(in_tmp, capsys):
    """The small variant writes the output contract, with logit adjustment and JTT (its first stage included)
    beside ERM and SD; a run killed in the middle of the table program and resumed with ``--resume NAME`` ends
    with the summary (wall times aside) and metrics.jsonl of an uninterrupted run."""
    data = _tiny_fashion(in_tmp / "fashion")
    argv = ["--config", f"{REPO}/configs/robustness.py:small", f"--config.data.dir={data}",
            "--config.data.verify=false", "--runs-dir", "runs", "--config.table.epochs=2",
            "--config.checkpoint_every_s=0", "--config.methods.enabled=erm,sd,sd_val,logit_adjust,jtt"]  # fmt: skip
    main = entry().main
    assert main([*argv, "--name", "whole"], progress=None) == 0
    out = capsys.readouterr().out
    assert "Table 1 analogue — data: fashion-mnist" in out and "paper cifar10" in out
    whole = _check_contract(in_tmp / "runs" / "robustness" / "latest", "fashion-mnist")
    assert set(whole["methods"]) == {"erm", "sd", "sd_val", "logit_adjust", "jtt"}
    assert whole["methods"]["jtt"]["setting"].startswith("jtt") and "(" in out  # the JTT row in the table
    killer = _KillAt("table", at=2)  # the table program runs 2 chunks (epochs): killed after the second
    assert main([*argv, "--name", "cut"], progress=killer) == 130 and killer.fired
    err = capsys.readouterr().err
    assert "interrupted at step" in err and "--resume cut" in err
    cut = in_tmp / "runs" / "robustness" / "cut"
    assert not (cut / "summary.json").exists() and any((cut / "checkpoints" / "table").glob("ckpt_*.npz"))
    assert main([*argv, "--resume", "cut"], progress=None) == 0
    resumed = json.loads((cut / "summary.json").read_text())

    def strip(tree):
        if isinstance(tree, dict):
            return {k: strip(v) for k, v in tree.items() if k not in WALL_TIMES}
        return tree

    assert strip(resumed) == strip(whole)
    lines = (cut / "metrics.jsonl").read_text().splitlines()
    assert lines == (in_tmp / "runs" / "robustness" / "whole" / "metrics.jsonl").read_text().splitlines()
    # 5 distinct settings (erm, sd 0.01, sd 0.1, logit_adjust, jtt; sd_val's 0.01 is sd's) × 2 seeds, then ERM and
    # SD of Fig. 2: nothing written twice
    assert len(lines) == 5 * 2 + 2


def test_methods_the_data_lack_are_refused(in_tmp, capsys):
    data = _tiny_fashion(in_tmp / "fashion")
    base = ["--config", f"{REPO}/configs/robustness.py:small", f"--config.data.dir={data}",
            "--config.data.verify=false", "--runs-dir", "runs"]  # fmt: skip
    for method, what in (("irm", "environment labels"), ("vrex", "environment labels"),
                         ("group_dro", "group labels"), ("dfr", "group labels")):  # fmt: skip
        assert entry().main([*base, f"--config.methods.enabled=erm,sd,{method}"], progress=None) == 2
        err = [e for e in capsys.readouterr().err.strip().splitlines() if not e.startswith("[gs-jax]")]
        assert len(err) == 1 and method in err[0] and what in err[0], err


def test_cifar2_fig2_part_on_generated_files(in_tmp):
    """The Fig. 2 part on CIFAR-2 (airplane vs horse, 32×32×3) from files in the real pickle format."""
    cifar.write_fake_cifar(in_tmp / "data", "cifar10", n_per_batch=40)
    argv = ["--config", f"{REPO}/configs/robustness.py:cifar2_small", f"--config.data.dir={in_tmp / 'data'}",
            "--config.data.verify=false", "--runs-dir", "runs", "--name", "t", "--config.table.enabled=false",
            "--config.fig2.seeds=1,2"]  # fmt: skip
    assert entry().main(argv, progress=None) == 0
    summary = json.loads((in_tmp / "runs" / "robustness" / "t" / "summary.json").read_text())
    fig = summary["fig2"]
    # two seeds: test margins for every network, training margins for the first seed's ERM and SD only
    assert (
        fig["methods"]["erm"]["train_points"]["seed"] == 1
        and len(fig["methods"]["sd"]["margin_median_per_seed"]) == 2
    )
    assert summary["data"] == "cifar2" and fig["protocol"]["classes"] == [0, 7] and "methods" not in summary
    assert fig["methods"]["erm"]["n_points"] == 8 and (in_tmp / "runs/robustness/t/margin_cdf.png").is_file()


@pytest.mark.slow  # VGG-16-BN and PreAct-ResNet (and the CIFAR-2 table) take minutes to compile on 2 shared cores
@pytest.mark.parametrize("variant", ["cifar2_small", "cifar10_small", "cifar100_small"])
def test_main_small_cifar_writes_the_output_contract(variant, in_tmp):
    dataset = "cifar100" if variant.startswith("cifar100") else "cifar10"
    cifar.write_fake_cifar(in_tmp / "data", dataset, n_per_batch=40)
    argv = ["--config", f"{REPO}/configs/robustness.py:{variant}", f"--config.data.dir={in_tmp / 'data'}",
            "--config.data.verify=false", "--runs-dir", "runs", "--name", "t"]  # fmt: skip
    assert entry().main(argv, progress=None) == 0
    _check_contract(in_tmp / "runs" / "robustness" / "latest", variant.removesuffix("_small"))


@pytest.mark.parametrize(
    "override,message",
    [
        ("table.batch_size=-16", "table.batch_size must be ≥ 1, got -16"),
        ("table.restarts=0", "table.restarts must be ≥ 1, got 0"),
        ("table.epochs=0", "table.epochs must be ≥ 1, got 0"),
        ("fig2.batch_size=0", "fig2.batch_size must be ≥ 1, got 0"),
        ("attack.steps=-1", "attack.steps must be ≥ 0, got -1"),
        ("table.nope=1", "unknown config key 'table.nope'"),
        ("methods.enabled=sd", "methods.enabled must hold 'erm'"),
    ],
)
def test_bad_input_is_one_line(override, message, in_tmp, capsys):
    data = _tiny_fashion(in_tmp / "fashion")
    argv = ["--config", f"{REPO}/configs/robustness.py:small", f"--config.data.dir={data}",
            "--config.data.verify=false", "--runs-dir", "runs", f"--config.{override}"]  # fmt: skip
    assert entry().main(argv, progress=None) == 2
    err = [e for e in capsys.readouterr().err.strip().splitlines() if not e.startswith("[gs-jax]")]
    assert len(err) == 1 and err[0].startswith("robustness: error:") and message in err[0], err
    assert not any((in_tmp / "runs").glob("robustness/*/config.json"))  # a refused run leaves no folder


def test_missing_data_is_one_line(in_tmp, capsys, monkeypatch):
    monkeypatch.delenv("GS_DATA_DIR", raising=False)
    assert (
        entry().main(["--config", f"{REPO}/configs/robustness.py:cifar10_small", "--runs-dir", "runs"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("robustness: error:") and "make data-cifar" in err[-1]
    argv = ["--config", f"{REPO}/configs/robustness.py:cifar2_small", f"--config.data.dir={in_tmp / 'absent'}",
            "--runs-dir", "r"]  # fmt: skip
    assert entry().main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
