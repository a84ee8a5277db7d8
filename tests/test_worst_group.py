"""The worst-group benchmark on the platform: config rows → registry candidates and refusals, the one program's
per-restart objectives against their formulas, selection rules, the post-hoc drivers (JTT's first stage, DFR in
both forms, the threshold shift) against independent computations, the group data registry, and the entry point on
tiny dominoes: a run, a killed-and-resumed run equal to it, one-line errors. ResNet/CelebA pieces at the end."""

from __future__ import annotations

import json
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import algorithms, config, metrics, models, posthoc, runs, selection, supervised
from gs_jax.data import celeba, celeba_download, groups, mnist
from gs_jax.errors import GsJaxError
from gs_jax.experiments import worst_group_train as wg

N = 64


def _small():
    return config.load_config("configs/worst_group.py:small")


def _toy(n=N, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    g = (2 * y + rng.integers(0, 2, n)).astype(np.int32)
    x = rng.uniform(0, 1, (n, 28, 28, 1)).astype(np.float32)
    split = groups.make_split(x, y, g, 4)
    return groups.GroupData(split, split, split, "toy", "toy", ("a", "b", "c", "d"))


def _ell(z, y):
    return np.logaddexp(0.0, -z * (2 * y - 1))  # log(1 + exp(−ŷ(2y − 1)))


# ---------------------------------------------------------------------------------------------------------------
# Config rows → candidates; the program's objectives
# ---------------------------------------------------------------------------------------------------------------


def test_rows_map_to_registry_grids_and_unsupported_methods_are_refused():
    cfg = _small()
    data = _toy()
    cands = wg.candidates(cfg, data.info())
    assert [(c.row, c.method) for c in cands] == [
        ("erm", "erm"), ("sd", "sd_spw3"), ("sd", "sd_spw3"), ("sd_paper", "sd_class"), ("logit_adjust", "logit_adjust"),
        ("erm_threshold", "threshold"), ("group_dro", "group_dro"), ("group_dro_uniform", "group_dro"), ("jtt", "jtt"),
        ("dfr", "dfr"), ("dfr_l2", "dfr")]  # fmt: skip
    # the authors' γ by role (the minority class y = 1 gets 2.5) and the zero control
    assert [c.hp["gamma"] for c in cands[1:3]] == [(0.44, 2.5), (0.0, 0.0)]
    assert cands[1].label == "sd[sd_spw3 lam=(0.1, 0.1) gamma=(0.44, 2.5)]"
    assert [c.hp["reweight"] for c in cands[6:8]] == [1.0, 0.0]
    assert cands[-1].source == "erm" and not cands[-1].schedule and cands[-1].hp["penalty"] == "l2"
    cfg.methods.enabled = ("erm", "sd_class", "sd_rescaled", "logit_adjust", "dfr")  # any registry names
    assert [c.method for c in wg.candidates(cfg, data.info())] == list(cfg.methods.enabled)
    for bad, match in ((("erm", "irm"), "'irm' needs environment labels"), (("erm", "lff"), "neither a registered"),
                       (("sd", "dfr"), "not a trained row")):  # fmt: skip
        cfg.methods.enabled = bad
        with pytest.raises(GsJaxError, match=match):
            wg.candidates(cfg, data.info())


def test_each_restart_of_the_one_program_runs_its_rows_objective():
    """The worst-group program's loss per restart, against a numpy transcription of the formula of its row: ERM,
    the authors' SD (spw3, per-class means, no ½), the paper's SD (½, per-class sums over n), logit adjustment
    (class prior), Group DRO's online q (by hand), JTT's plain ERM loss."""
    data = _toy()
    cfg = _small()
    cfg.methods.sd.lam, cfg.methods.sd.gamma = (0.3, 0.1), (0.44, 2.5)
    cfg.methods.sd_paper.lam = (0.2, 1.3)
    cfg.methods.logit_adjust.tau = 2.0
    cfg.methods.group_dro.eta = (0.5,)
    cands = [c for c in wg.candidates(cfg, data.info()) if c.schedule]
    ctx = wg.Context(cfg, models.build("linear", num_outputs=1), data, data.trainer_data(), data.info(),
                     wg.seed_keys(cfg, 1), None, None)  # fmt: skip
    spec = ctx.spec(supervised.branches_of([(c.method, c.hp) for c in cands]), wg.schedule_of(cfg, {})[0])
    task = supervised.make_task(spec)
    params, ms = task.init(jax.random.PRNGKey(0), ctx.tdata)
    batch = {"x": data.train.x, "y": data.train.y, "group": data.train.group, "idx": np.arange(N)}
    z = np.asarray(ctx.model.logits({"params": params}, data.train.x), np.float64)
    y, g = data.train.y, data.train.group
    inputs = {"group": g, "n": N, "error_set": np.zeros(N, bool)}
    for c in cands:
        st = jax.tree_util.tree_map(jnp.asarray, supervised.restart_state(spec, c.method, c.hp, inputs))
        value, (_, new, _) = task.loss(params, ms, st, batch, 0, jax.random.PRNGKey(1))
        ell = _ell(z, y)
        if c.method == "sd_spw3":
            want = ell.mean() + 0.3 * np.mean((z[y == 0] - 0.44) ** 2) + 0.1 * np.mean((z[y == 1] - 2.5) ** 2)
        elif c.method == "sd_class":
            want = (
                ell.mean()
                + (0.1 * np.sum((z[y == 0] - 0.44) ** 2) + 0.65 * np.sum((z[y == 1] - 2.5) ** 2)) / N
            )
        elif c.method == "logit_adjust":
            prior = np.bincount(y, minlength=2) / N
            want = _ell(z + 2.0 * np.log(prior[1] / prior[0]), y).mean()
        elif c.method == "group_dro":
            L = np.array([ell[g == k].mean() for k in range(4)])
            q = 0.25 * np.exp(float(c.hp["eta"]) * L)
            q /= q.sum()
            np.testing.assert_allclose(np.asarray(new["state"][spec.branches.index(("group_dro", ()))]["q"]), q,
                                       rtol=1e-5)  # fmt: skip
            want = q @ L
        else:
            want = ell.mean()
        np.testing.assert_allclose(float(value), want, rtol=1e-5, err_msg=c.label)


def test_selection_picks_the_epoch_and_candidate_by_validation():
    # 3 epochs × 2 seeds; seed 0 peaks (val worst) at epoch 2, seed 1 at epoch 3; val avg and worst class elsewhere
    curves = {"val_worst": np.array([[0.1, 0.2], [0.5, 0.3], [0.4, 0.6]]),
              "val_avg": np.array([[0.9, 0.9], [0.8, 0.7], [0.7, 0.8]]),
              "val_worst_class": np.array([[0.2, 0.1], [0.1, 0.1], [0.3, 0.2]]),
              "test_avg": np.array([[0.90, 0.91], [0.85, 0.86], [0.80, 0.81]]),
              "test_worst": np.array([[0.0, 0.1], [0.6, 0.2], [0.5, 0.7]]),
              **{f"test_g{k}": np.full((3, 2), 0.5) for k in range(4)}}  # fmt: skip
    e = selection.at_selected(curves, "val_worst", 4)
    assert e["epochs"] == [2, 3] and e["val_score"] == pytest.approx(0.55)
    np.testing.assert_allclose(e["test_worst"], [0.6, 0.7])
    assert selection.at_selected(curves, "val_avg", 4)["epochs"] == [1, 1]
    assert selection.at_selected(curves, "val_worst_class", 4)["epochs"] == [3, 3]
    assert selection.best([0.2, 0.5, 0.5]) == 1
    with pytest.raises(GsJaxError, match="selection rule"):
        selection.select_epochs(curves, "test_worst")
    s = selection.scores(jnp.array([1.0, -1.0, 1.0, 1.0, -1.0, -2.0]), np.array([1, 0, 0, 1, 1, 0]),
                         np.array([3, 0, 0, 3, 2, 0]), 4)  # fmt: skip
    np.testing.assert_allclose(s["groups"], [2 / 3, np.nan, 0.0, 1.0])  # group 1 empty
    assert (s["avg"], s["worst"], s["worst_class"]) == pytest.approx((4 / 6, 0.0, 2 / 3))
    rng = np.random.default_rng(0)  # bit for bit the trainer's evaluator arithmetic (gs_jax.metrics)
    for n in (7, 100, 1234):
        z, y = rng.normal(size=n).astype(np.float32), rng.integers(0, 2, n)
        g = 2 * y + rng.integers(0, 2, n)
        s = selection.scores(z, y, g, 4)
        assert s["avg"] == float(metrics.accuracy(jnp.asarray(z), jnp.asarray(y)))
        np.testing.assert_array_equal(
            s["groups"], metrics.group_accuracies(jnp.asarray(z), jnp.asarray(y), g, 4)
        )


# ---------------------------------------------------------------------------------------------------------------
# Post-hoc drivers
# ---------------------------------------------------------------------------------------------------------------


def _features(n_per_group, seed, spurious=3.0):
    """Features [core, spurious, noise…] of four groups (g = 2y + a): the core coordinate is ±1 by y, the spurious
    one ±spurious by a, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(4), n_per_group).astype(np.int32)
    y, a = g // 2, g % 2
    f = rng.normal(0, 0.6, (len(g), 6))
    f[:, 0] += 2 * y - 1
    f[:, 1] += spurious * (2 * a - 1)
    return f.astype(np.float32), y.astype(np.int32), g


def test_dfr_reference_form_is_sklearns_pipeline_on_balanced_validation():
    """With a validation set that is already group-balanced, each refit fits all of it: the averaged model must be
    scikit-learn's StandardScaler(train features) + LogisticRegression(l1, liblinear) fitted once, and its test
    worst group (digit-independent core feature) high where the spurious feature misleads."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ftr, ytr, gtr = _features((200, 10, 10, 200), 0)
    fv, yv, gv = _features((40, 40, 40, 40), 1)
    ft, yt, gt = _features((50, 50, 50, 50), 2)
    splits = {"val": groups.make_split(fv, yv, gv, 4), "test": groups.make_split(ft, yt, gt, 4)}
    hp = algorithms.hyper("dfr", {"c": (0.3,), "n_refits": 3})
    out = posthoc.dfr(
        {"train": ftr, "val": fv, "test": ft}, splits, hp, n_groups=4, key=jax.random.PRNGKey(0)
    )
    sc = StandardScaler().fit(ftr.astype(np.float64))
    ref = LogisticRegression(C=0.3, l1_ratio=1.0, solver="liblinear").fit(
        sc.transform(fv.astype(np.float64)), yv
    )
    ref_pred = ref.predict(sc.transform(ft.astype(np.float64)))
    r = out["val_worst"]
    assert r["hyper"] == {"c": 0.3}
    acc_g = [np.mean(ref_pred[gt == k] == yt[gt == k]) for k in range(4)]
    np.testing.assert_allclose(r["scores"]["groups"], acc_g, atol=1 / 50 + 1e-6)  # at most one example flips
    assert r["scores"]["worst"] >= 0.85


def test_dfr_l2_form_tunes_each_rule_and_recovers_the_worst_group():
    fv, yv, gv = _features((40, 40, 40, 40), 1)
    ft, yt, gt = _features((50, 50, 50, 50), 2)
    splits = {"val": groups.make_split(fv, yv, gv, 4), "test": groups.make_split(ft, yt, gt, 4)}
    hp = algorithms.hyper("dfr", {"penalty": "l2", "l2": (1e-2, 1.0), "n_refits": 2})
    out = posthoc.dfr({"val": fv, "test": ft}, splits, hp, n_groups=4, key=jax.random.PRNGKey(0))
    assert set(out) == set(selection.RULES)
    for r in out.values():
        assert r["hyper"]["l2"] in (1e-2, 1.0) and len(r["tuning"]) == 2 and r["scores"]["worst"] >= 0.85


def test_threshold_shift_by_hand():
    # validation: class 1 logits sit at −0.5 … −0.2 (all wrong at b = 0), class 0 at −2 … −1
    vz = np.array([-2.0, -1.5, -1.0, -0.5, -0.4, -0.2])
    vy = np.array([0, 0, 0, 1, 1, 1])
    vg = np.array([0, 1, 0, 2, 3, 2])
    tz, ty, tg = np.array([-1.2, -0.3, 0.5, -0.6]), np.array([0, 1, 1, 0]), np.array([0, 3, 2, 1])
    out = posthoc.threshold_shift(vz, vy, vg, tz, ty, tg, n_groups=4)
    # every rule is perfect for b in (−1.0, −0.5); the cut there is the midpoint −0.75 (the only one inside)
    for rule in selection.RULES:
        assert out[rule]["hyper"]["b"] == pytest.approx(-0.75) and out[rule]["val_score"] == 1.0
    np.testing.assert_allclose(
        out["val_worst"]["scores"]["groups"], [1.0, 0.0, 1.0, 1.0]
    )  # −0.6 > −0.75: called 1, wrong
    # nothing to gain: b stays 0
    assert posthoc.threshold_shift(np.array([-1.0, 1.0]), np.array([0, 1]), np.array([0, 3]), tz, ty, tg,
                                   n_groups=4)["val_avg"]["hyper"]["b"] == 0.0  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The data registry
# ---------------------------------------------------------------------------------------------------------------


def test_group_data_registry_loads_caps_and_refuses(monkeypatch):
    toy = _toy()
    monkeypatch.setitem(groups.LOADERS, "toy", groups.Loader(lambda d, progress: toy, "a test set"))
    cfg = _small()
    cfg.data.dataset = "toy"
    d = groups.load(cfg.data)
    assert len(d.train.y) == N and len(d.val.y) == N  # the caps (256 / 100) exceed the toy's 64
    cfg.data.max_eval = 10
    assert len(groups.load(cfg.data).test.y) == 10
    assert d.info().group_counts == tuple(np.bincount(toy.train.group, minlength=4))
    cfg.data.dataset = "waterbirds"
    with pytest.raises(GsJaxError, match="unknown data.dataset 'waterbirds'; registered: dominoes, celeba"):
        groups.load(cfg.data)
    with pytest.raises(GsJaxError, match="labels must lie"):
        groups.make_split(np.zeros((2, 1)), [0, 2], [0, 1], 4)


# ---------------------------------------------------------------------------------------------------------------
# End to end (tiny dominoes): a run, a killed and resumed run, refusals
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    """Tiny Fashion-MNIST IDX files (coats and dresses of random pixels) in the real format."""
    root = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for split, n in (("train", 400), ("t10k", 160)):
        labels = np.tile(np.array([3, 4], np.uint8), n // 2)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[labels == 3, 14:, :] //= 4  # a visible class cue
        mnist.write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        mnist.write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def _main(root, args, progress=None):
    from importlib import util

    spec = util.spec_from_file_location("wg_entry", "train/worst_group.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main([*args, "--runs-dir", str(root)], progress=progress)


# every row of the small variant but dfr_l2 (its L2 Newton fits compile per subsample size; tested on features above)
ROWS = (
    "erm",
    "sd",
    "sd_paper",
    "logit_adjust",
    "erm_threshold",
    "group_dro",
    "group_dro_uniform",
    "jtt",
    "dfr",
)


def _args(fashion_dir, name):
    return ["--config", "configs/worst_group.py:small", f"--config.data.dir={fashion_dir}",
            "--config.data.verify=false", "--config.seeds=1", "--config.data.max_eval=40",
            f"--config.methods.enabled={ROWS}", "--name", name]  # fmt: skip


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, fashion_dir):
    root = tmp_path_factory.mktemp("runs")
    assert _main(root, _args(fashion_dir, "full")) == 0
    return root / "worst_group" / "full"


def test_entry_point_on_tiny_dominoes(full_run):
    s = json.loads((full_run / "summary.json").read_text())
    assert s["data"] == "dominoes" and set(s["by_rule"]) == set(selection.RULES)
    assert (s["variant"], s["rho"], s["layout"]) == ("small", 0.95, "symmetric")
    assert isinstance(s["rho_calibration"], list)
    for rule in selection.RULES:
        assert set(s["by_rule"][rule]) == set(ROWS)
        for m, r in s["by_rule"][rule].items():
            assert r["rule"] == rule and r["candidates"]
            for k in ("avg_acc_mean", "worst_group_acc_mean"):
                assert 0.0 <= r[k] <= 1.0, (m, k, r[k])
            # one seed: the worst group is the minimum of the per-group accuracies
            assert r["worst_group_acc_mean"] == pytest.approx(np.nanmin(r["per_group"]))
    sd = s["methods"]["sd"]["candidates"]
    assert [c["hyper"]["gamma"] for c in sd] == [[0.44, 2.5], [0.0, 0.0]] and {
        "val_score",
        "test_worst_mean",
    } <= set(sd[0])
    assert [c["c"] for c in s["methods"]["dfr"]["candidates"]] == [1.0, 0.1]
    assert "b" in s["methods"]["erm_threshold"]["candidates"][0]
    assert s["jtt_identification"]["jtt_identify_0"]["error_set_size"][0] >= 0
    resp = s["responses"]
    assert (
        resp["probe"]["n"] == 20
        and resp["features"][0]["digit"]["index"] != resp["features"][0]["item"]["index"]
    )
    assert {"erm", "sd"} <= set(resp["rows"]) and np.isfinite(resp["rows"]["sd"]["z_item_mean"])
    for f in (
        "table.md",
        "group_curves.png",
        "worst_group_bars.png",
        "responses.png",
        "curves.npz",
        "metrics.jsonl",
    ):
        assert (full_run / f).is_file(), f


def test_calibration_variant(tmp_path, fashion_dir, full_run):
    args = [*_args(fashion_dir, "cal"), "--config.calibration.run=true", "--config.calibration.only=true",
            "--config.calibration.rhos=(0.95,)", "--config.calibration.celeba_layout=false"]  # fmt: skip
    assert _main(tmp_path, args) == 0
    out = tmp_path / "worst_group_calibrate" / "cal"
    s = json.loads((out / "summary.json").read_text())
    (row,) = s["rho_calibration"]
    assert row["rho"] == 0.95 and row["layout"] == "symmetric" and len(row["per_group"]) == 4
    # the ERM row at the same ρ, seeds and selection rule as the full run's: the same numbers
    erm = json.loads((full_run / "summary.json").read_text())["methods"]["erm"]
    assert row["erm_worst_group_acc_mean"] == erm["worst_group_acc_mean"]
    assert (out / "rho_calibration.png").is_file() and "ERM against" in (out / "table.md").read_text()


class _Killer:
    """A progress meter whose bars raise KeyboardInterrupt (Ctrl-C) at the ``after``-th finished chunk."""

    def __init__(self, after):
        self.left = after

    def __call__(self, total=None, desc=None):
        meter = self

        class Bar:
            def update(self, n):
                meter.left -= 1
                if meter.left == 0:
                    raise KeyboardInterrupt

            def close(self):
                pass

        return Bar()


def test_a_killed_run_resumes_to_the_uninterrupted_results(tmp_path, fashion_dir, full_run, capsys):
    # chunks: JTT identification (1 epoch), then the training program's 2 epochs: killed after its first epoch
    assert _main(tmp_path, _args(fashion_dir, "r"), progress=_Killer(2)) == 130
    assert "continue with `--resume r`" in capsys.readouterr().err
    assert (tmp_path / "worst_group" / "r" / "checkpoints" / "jtt_identify_0").is_dir()
    assert _main(tmp_path, [*_args(fashion_dir, "x")[:-2], "--resume", "r"]) == 0

    def summary(path):
        s = json.loads((path / "summary.json").read_text())
        s.pop("wall_s")
        return s

    resumed = tmp_path / "worst_group" / "r"
    assert summary(resumed) == summary(full_run)
    assert (resumed / "metrics.jsonl").read_text() == (full_run / "metrics.jsonl").read_text()


def test_bad_input_is_one_line(tmp_path, fashion_dir, capsys):
    base = _args(fashion_dir, "bad")
    for extra, match in ((["--config.seeds=0"], "seeds must be ≥ 1"), (["--config.train.epochs=0"], "train.epochs"),
                         (["--config.methods.enabled=('erm', 'vrex')"], "needs environment labels"),
                         (["--config.train.batch_size=100000"], "train.batch_size 100000 is larger")):  # fmt: skip
        assert _main(tmp_path, [*base, *extra]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[gs-jax]")]
        assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "worst_group" / "bad").exists()
    with pytest.raises(ValueError, match="unknown variant"):
        config.load_config("configs/worst_group.py:waterbirds")


# ---------------------------------------------------------------------------------------------------------------
# ResNet, CelebA
# ---------------------------------------------------------------------------------------------------------------


def _flax_to_torch_names(variables):
    """The inverse map of models.load_torchvision_resnet: a torchvision-style state dict of a flax ResNet."""
    import re

    out = {}
    for path, value in jax.tree_util.tree_flatten_with_path(variables)[0]:
        kind, *mod, leaf = [p.key for p in path]
        name = re.sub(r"(layer\d+|downsample)_(\d+)", r"\1.\2", ".".join(mod))
        v = np.asarray(value)
        if leaf == "kernel":
            out[f"{name}.weight"] = v.transpose(3, 2, 0, 1) if v.ndim == 4 else v.T
        else:
            torch_leaf = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}[
                leaf
            ]
            out[f"{name}.{torch_leaf}"] = v
    return out


@pytest.mark.slow  # the fast suite's 10 minutes on 2 cores; the CelebA ResNet (≈ 16 s to compile)
def test_resnet_shapes_and_torchvision_loader_round_trip():
    net = models.ResNet(stage_sizes=(1, 2, 1, 1), width=4)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
    v = net.init(jax.random.PRNGKey(1), x)
    assert net.apply(v, x).shape == (2, 1)
    assert net.apply(v, x, features_only=True).shape == (2, 4 * 8 * 4)  # width · 8 · expansion 4
    other = net.init(jax.random.PRNGKey(2), x)
    sd = _flax_to_torch_names(other)
    assert "layer2.0.downsample.0.weight" in sd and sd["conv1.weight"].shape == (4, 3, 7, 7)
    sd["layer1.0.bn1.num_batches_tracked"] = np.array(3)
    loaded = models.load_torchvision_resnet(v, sd)

    def flat(t):
        return {jax.tree_util.keystr(p): np.asarray(a) for p, a in jax.tree_util.tree_flatten_with_path(t)[0]}

    got, want, init = flat(loaded), flat(other), flat(v)
    assert got.keys() == want.keys()
    for k in got:  # every entry from the checkpoint, except the head, which keeps its own initialisation
        np.testing.assert_array_equal(got[k], init[k] if "'fc'" in k else want[k], err_msg=k)
    bad = dict(sd)
    bad["conv1.weight"] = np.zeros((8, 3, 7, 7), np.float32)
    with pytest.raises(GsJaxError, match="conv1.weight.*shape"):
        models.load_torchvision_resnet(v, bad)
    with pytest.raises(GsJaxError, match="lacks"):
        models.load_torchvision_resnet(v, {k: a for k, a in sd.items() if not k.startswith("layer4")})


def test_pretrained_file_errors_are_one_line(tmp_path):
    with pytest.raises(GsJaxError, match="no file"):
        models.read_state_dict(str(tmp_path / "absent.npz"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(GsJaxError, match="not a readable"):
        models.read_state_dict(str(tmp_path / "bad.npz"))


def test_celeba_download_without_internet_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*a, **k):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert celeba_download._main(["download", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no internet" in err
    assert not list(tmp_path.rglob("*.part"))


def test_celeba_download_rejects_a_web_page(tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"<html>quota exceeded</html>"))
    with pytest.raises(GsJaxError, match="web page"):
        celeba_download.fetch("https://x", tmp_path / "list.txt", "0" * 32)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # a ResNet's compile: ~30 s on 2 cores; the reader, the ResNet and its loader are tested above
def test_entry_point_on_generated_celeba(tmp_path):
    celeba.write_fake_celeba(tmp_path / "celeba", n=48, fmt="csv", seed=1)
    rc = _main(tmp_path, ["--config", "configs/worst_group.py:celeba_small", f"--config.data.dir={tmp_path / 'celeba'}",
                          "--config.methods.enabled=('erm', 'sd', 'dfr')"])  # fmt: skip
    assert rc == 0
    s = json.loads(runs.latest("worst_group", tmp_path).joinpath("summary.json").read_text())
    assert s["data"] == "celeba" and s["group_counts"]["train"] == [4, 4, 4, 4]
    assert set(s["methods"]) == {"erm", "sd", "dfr"}
