"""The worst-group experiment: the shared task's objectives against their formulas, weighted sampling, selection,
DFR, the ResNet and its torchvision-checkpoint loader, the CelebA download's offline failure, and the entry point on
tiny dominoes and a generated CelebA directory."""

from __future__ import annotations

import json
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import config, models
from gs_jax.data import celeba, celeba_download, mnist
from gs_jax.errors import GsJaxError
from gs_jax.experiments import worst_group as wg
from gs_jax.experiments import worst_group_core as core

N = 64


def _toy(n=N, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    g = (2 * y + rng.integers(0, 2, n)).astype(np.int32)
    x = rng.uniform(0, 1, (n, 28, 28, 1)).astype(np.float32)
    split = core.GroupSplit(x, y, g)
    return core.GroupData(split, split, split, "toy", "toy", ("a", "b", "c", "d"))


def _loss_of(state, *, batch=N):
    """The shared task's loss on one drawn minibatch of the toy set, and that minibatch's logits, labels and groups
    (recomputed outside the task) for a numpy transcription of the objective."""
    data = _toy()
    arch, opt = core.Arch(), core.Opt(batch_size=batch)
    task = core.make_task(arch, opt, N)
    params, ms = task.init(jax.random.PRNGKey(0), core.task_data(data))
    td = core.task_data(data)
    key = jax.random.PRNGKey(3)
    value, (_, new_state, _) = task.loss(params, ms, jax.tree_util.tree_map(jnp.asarray, state), td, 0, key)
    idx = np.asarray(core.weighted_draw(key, jnp.asarray(state["logw"]), batch))
    logits = np.asarray(core.forward(arch, {"params": params}, data.train.x[idx])[0], np.float64)
    return float(value), new_state, logits, data.train.y[idx], data.train.g[idx]


def _ell(z, y):
    return np.logaddexp(0.0, -z * (2 * y - 1))  # log(1 + exp(−ŷ(2y − 1)))


def test_erm_and_sd_objectives_are_the_authors_formula():
    erm, _, z, y, _ = _loss_of(core.method_state(N))
    np.testing.assert_allclose(erm, np.mean(_ell(z, y)), rtol=1e-5)
    lam, gamma = (0.3, 0.1), (0.44, 2.5)
    sd, _, z, y, _ = _loss_of(core.method_state(N, lam=lam, gamma=gamma))
    ref = (
        np.mean(_ell(z, y))
        + lam[1] * np.mean((z[y == 1] - gamma[1]) ** 2)
        + lam[0] * np.mean((z[y == 0] - gamma[0]) ** 2)
    )
    np.testing.assert_allclose(sd, ref, rtol=1e-5)


def test_group_dro_objective_updates_q_by_hand():
    eta = 0.5
    value, st, z, y, g = _loss_of(core.method_state(N, dro=True, eta=eta))
    L = np.array([np.mean(_ell(z, y)[g == k]) if np.any(g == k) else 0.0 for k in range(4)])
    q = 0.25 * np.exp(eta * L)
    q /= q.sum()
    np.testing.assert_allclose(np.asarray(st["q"]), q, rtol=1e-5)
    np.testing.assert_allclose(value, q @ L, rtol=1e-5)


def test_weighted_draw_follows_the_weights():
    w = np.array([1.0, 0.0, 3.0, 6.0], np.float32)
    with np.errstate(divide="ignore"):
        idx = np.asarray(core.weighted_draw(jax.random.PRNGKey(0), jnp.log(jnp.asarray(w)), 40000))
    freq = np.bincount(idx, minlength=4) / idx.size
    p = w / w.sum()
    # 4 binomial standard errors at n = 40,000 (≤ 0.01); a zero weight is never drawn
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / idx.size)), (freq, p)
    assert freq[1] == 0


def test_jtt_state_upweights_the_error_set():
    errors = np.zeros(N, bool)
    errors[:8] = True
    st = core.method_state(N, weights=wg.group_methods.jtt_weights(errors, 5.0))
    np.testing.assert_allclose(np.exp(st["logw"][:8]), 5.0, rtol=1e-6)
    np.testing.assert_allclose(np.exp(st["logw"][8:]), 1.0)
    with pytest.raises(GsJaxError, match="sampling weights"):
        core.method_state(N, weights=np.ones(3))


def test_group_accuracy_on_a_constructed_example():
    logits = jnp.array([1.0, -1.0, 1.0, 1.0, -1.0, -2.0])
    y = jnp.array([1, 0, 0, 1, 1, 0])
    g = jnp.array([3, 0, 0, 3, 2, 0])  # group 1 empty
    acc_g, avg, worst = core.group_accuracy(logits, y, g)
    np.testing.assert_allclose(np.asarray(acc_g), [2 / 3, np.nan, 0.0, 1.0])
    assert float(avg) == pytest.approx(4 / 6) and float(worst) == 0.0


def test_selection_picks_the_epoch_and_candidate_by_validation():
    # 3 epochs × 2 seeds; seed 0 peaks (val worst) at epoch 2, seed 1 at epoch 3; val avg peaks elsewhere
    curves = {"val_worst": np.array([[0.1, 0.2], [0.5, 0.3], [0.4, 0.6]]),
              "val_avg": np.array([[0.9, 0.9], [0.8, 0.7], [0.7, 0.8]]),
              "test_avg": np.array([[0.90, 0.91], [0.85, 0.86], [0.80, 0.81]]),
              "test_worst": np.array([[0.0, 0.1], [0.6, 0.2], [0.5, 0.7]]),
              **{f"test_g{k}": np.full((3, 2), 0.5) for k in range(4)}}  # fmt: skip
    e = wg.evaluate_candidate({"curves": curves}, "val_worst")
    assert e["epochs"] == [2, 3] and e["val_score"] == pytest.approx(0.55)
    np.testing.assert_allclose(e["test_worst"], [0.6, 0.7])
    e = wg.evaluate_candidate({"curves": curves}, "val_avg")
    assert e["epochs"] == [1, 1]
    np.testing.assert_allclose(e["test_avg"], [0.90, 0.91])
    with pytest.raises(GsJaxError, match="selection rule"):
        wg.select_epochs(curves, "test_worst")


def _flax_to_torch_names(variables):
    """The inverse map of models.load_torchvision_resnet: a torchvision-style state dict of a flax ResNet."""
    import re

    out = {}
    flat = jax.tree_util.tree_flatten_with_path(variables)[0]
    for path, value in flat:
        keys = [p.key for p in path]
        kind, *mod, leaf = keys
        name = ".".join(mod)
        name = re.sub(r"(layer\d+|downsample)_(\d+)", r"\1.\2", name)
        v = np.asarray(value)
        if leaf == "kernel":
            out[f"{name}.weight"] = v.transpose(3, 2, 0, 1) if v.ndim == 4 else v.T
        else:
            out[
                f"{name}.{ {'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean', 'var': 'running_var'}[leaf] }"
            ] = v
    return out


def test_resnet_shapes_and_torchvision_loader_round_trip():
    net = models.ResNet(stage_sizes=(1, 2, 1, 1), width=4)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
    v = net.init(jax.random.PRNGKey(1), x)
    assert net.apply(v, x).shape == (2, 1)
    assert net.apply(v, x, features_only=True).shape == (2, 4 * 8 * 4)  # width · 8 · expansion 4
    # torchvision's naming (conv1.weight, layer2.0.downsample.1.running_var, …) from another initialisation
    other = net.init(jax.random.PRNGKey(2), x)
    sd = _flax_to_torch_names(other)
    assert (
        "layer2.0.downsample.0.weight" in sd
        and "bn1.running_var" in sd
        and sd["conv1.weight"].shape == (4, 3, 7, 7)
    )
    sd["layer1.0.bn1.num_batches_tracked"] = np.array(3)
    loaded = models.load_torchvision_resnet(v, sd)
    flat = lambda t: {
        jax.tree_util.keystr(p): np.asarray(a) for p, a in jax.tree_util.tree_flatten_with_path(t)[0]
    }  # noqa: E731
    got, want, init = flat(loaded), flat(other), flat(v)
    assert got.keys() == want.keys()
    for k in got:  # every entry from the checkpoint, except the head, which keeps its own initialisation
        np.testing.assert_array_equal(got[k], init[k] if "'fc'" in k else want[k], err_msg=k)
    np.testing.assert_allclose(net.apply(loaded, x, features_only=True), net.apply(other, x, features_only=True),
                               rtol=1e-6)  # fmt: skip
    bad = dict(sd)
    bad["conv1.weight"] = np.zeros((8, 3, 7, 7), np.float32)
    with pytest.raises(GsJaxError, match="conv1.weight.*shape"):
        models.load_torchvision_resnet(v, bad)
    with pytest.raises(GsJaxError, match="lacks"):
        models.load_torchvision_resnet(v, {k: a for k, a in sd.items() if not k.startswith("layer4")})
    with pytest.raises(GsJaxError, match="no place"):
        models.load_torchvision_resnet(v, {**sd, "layer9.0.conv1.weight": np.zeros(1)})


def test_pretrained_file_errors_are_one_line(tmp_path):
    with pytest.raises(GsJaxError, match="no file"):
        core._checkpoint(str(tmp_path / "absent.npz"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(GsJaxError, match="not a readable"):
        core._checkpoint(str(tmp_path / "bad.npz"))


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


# ---------------------------------------------------------------------------------------------------------------
# End to end (tiny)
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


def _run(tmp_path, args):
    from importlib import util

    spec = util.spec_from_file_location("wg_entry", "train/worst_group.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main([*args, "--runs-dir", str(tmp_path)])


def test_entry_point_on_tiny_dominoes(tmp_path, fashion_dir):
    rc = _run(tmp_path, ["--config", "configs/worst_group.py:small", f"--config.data.dir={fashion_dir}",
                         "--config.data.verify=false"])  # fmt: skip
    assert rc == 0
    out = tmp_path / "worst_group" / "latest"
    s = json.loads((out / "summary.json").read_text())
    assert s["data"] == "dominoes"
    for m in wg.METHODS:
        r = s["methods"][m]
        for k in ("avg_acc_mean", "avg_acc_std", "worst_group_acc_mean", "worst_group_acc_std"):
            assert 0.0 <= r[k] <= 1.0, (m, k, r[k])
        assert len(r["per_group"]) == 4 and r["worst_group_acc_mean"] <= r["avg_acc_mean"] + 1e-6
        # the worst group of each seed is the minimum of its per-group accuracies
        assert np.nanmin(r["per_group"]) >= r["worst_group_acc_mean"] - 1e-6
    assert set(s["by_rule"]) == {"val_worst", "val_avg"}
    for f in ("table.md", "group_curves.png", "worst_group_bars.png", "curves.npz"):
        assert (out / f).is_file(), f


@pytest.mark.slow  # a ResNet's compile: ~30 s on 2 cores; the reader, the ResNet and its loader are tested above
def test_entry_point_on_generated_celeba(tmp_path):
    celeba.write_fake_celeba(tmp_path / "celeba", n=48, fmt="csv", seed=1)
    rc = _run(tmp_path, ["--config", "configs/worst_group.py:celeba_small", f"--config.data.dir={tmp_path / 'celeba'}",
                         "--config.methods.enabled=('erm', 'sd', 'dfr')"])  # fmt: skip
    assert rc == 0
    s = json.loads((tmp_path / "worst_group" / "latest" / "summary.json").read_text())
    assert s["data"] == "celeba" and s["group_counts"]["train"] == [4, 4, 4, 4]
    assert set(s["methods"]) == {"erm", "sd", "dfr"}


def test_bad_config_is_one_line(tmp_path, capsys):
    assert (
        _run(
            tmp_path, ["--config", "configs/worst_group.py:small", "--config.methods.enabled=('erm', 'lff')"]
        )
        == 2
    )
    assert "unknown methods ['lff']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown variant"):
        config.load_config("configs/worst_group.py:waterbirds")
