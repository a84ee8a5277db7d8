"""Theorem 2 on the default grid, the phase-map boundary δ = 1/√2, and the `make theorem2` entry point."""

import csv
import importlib.util
import json

import numpy as np
import pytest

from gs_jax import config
from gs_jax import fixed_points as fp

pytestmark = pytest.mark.usefixtures("x64")


def _entry_point(repo_root):
    spec = importlib.util.spec_from_file_location("analysis_theorem2", repo_root / "analysis" / "theorem2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slopes(equation, deltas, s1_sq, s2_sq=2.0, lam=1.0):
    D, S1 = np.meshgrid(np.asarray(deltas, float), np.asarray(s1_sq, float), indexing="ij")
    z2, dz2, res = (
        np.asarray(a)
        for a in fp.z2_and_slope(
            equation, D.ravel(), S1.ravel(), np.full(D.size, s2_sq), np.full(D.size, lam)
        )
    )
    assert np.all(res < 1e-12)
    return z2.reshape(D.shape), dz2.reshape(D.shape)


@pytest.mark.parametrize("equation", ["eq10", "eq9"])
def test_theorem2_on_the_default_grid(equation):
    # default sweep: s₂² = 2, λ = 1, s₁² ∈ (2, 60] (200 points); dz₂*/ds₁² < 0 for every coupled δ
    s1 = np.linspace(2.0, 60.0, 200)[1:]
    z2, dz2 = _slopes(equation, (0.1, 0.25, 0.5), s1)
    assert np.all(dz2 < 0)
    assert np.all(z2 > 0)


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_phase_boundary_is_delta_one_over_sqrt2(lam):
    # What the phase map finds: dz₂*/ds₁² < 0 holds exactly where z₂* > 0, i.e. δ < 1/√2 (U₂₂ > −U₁₂), for every λ
    # and s₁²/s₂² ∈ (1, 30]; beyond it z₂* < 0 and dz₂*/ds₁² > 0, while |z₂*| still shrinks (starvation in size).
    s1 = 2.0 * np.linspace(1.0, 30.0, 30)[1:]
    edge = 1 / np.sqrt(2)
    for equation in ("eq10", "eq9"):
        z2, dz2 = _slopes(equation, (0.3, edge - 1e-3), s1, lam=lam)
        assert np.all(dz2 < 0) and np.all(z2 > 0)
        z2, dz2 = _slopes(equation, (edge + 1e-3, 0.95), s1, lam=lam)
        assert np.all(dz2 > 0) and np.all(z2 < 0)
        assert np.all(np.sign(z2) * dz2 < 0)


def test_z2_vanishes_at_delta_one_over_sqrt2():
    # δ = 1/√2: K is symmetric under swapping the two examples, so α₁* = α₂* and z₂* = 0 for every s₁², λ
    for lam in (0.1, 10.0):
        z2, _ = _slopes("eq9", (1 / np.sqrt(2),), [2.0, 7.0, 60.0], lam=lam)
        np.testing.assert_allclose(z2, 0.0, atol=1e-14)


def test_slope_vanishes_at_equal_strengths():
    # s₁² = s₂²: K = s²I, the response dα ∝ −u₁ is orthogonal to u₂, so dz₂*/ds₁² = 0 exactly (up to rounding)
    z2, dz2 = _slopes("eq9", (0.1, 0.5, 0.9), [2.0])
    np.testing.assert_allclose(dz2, 0.0, atol=1e-15)


def test_config_variants(repo_root):
    # each variant changes what it says and nothing else (catches a dispatch that returns the default, or a default
    # grid that drifted from the one the README and the slow test describe)
    load = lambda v: config.load_config(str(repo_root / f"configs/theorem2.py:{v}"))  # noqa: E731
    default, no_phase, small = load("default"), load("no_phase"), load("small")
    assert default.deltas == (0.0, 0.1, 0.25, 0.5) and default.n_points == 200
    assert (default.s2_sq, default.lam, default.ratio_max) == (2.0, 1.0, 30.0) and default.phase.enabled
    assert (default.phase.n_delta, default.phase.delta_max, default.phase.lams) == (
        100,
        0.99,
        (0.1, 1.0, 10.0),
    )
    assert not no_phase.phase.enabled and no_phase.deltas == default.deltas and no_phase.n_points == 200
    assert small.phase.enabled and small.n_points == 12 and small.phase.n_delta == 6


def test_unknown_variant(repo_root):
    with pytest.raises(ValueError, match="unknown variant"):
        config.load_config(str(repo_root / "configs/theorem2.py:nope"))


def test_main_writes_the_contract(repo_root, in_tmp, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    theorem2 = _entry_point(repo_root)

    rc = theorem2.main(["--config", "configs/theorem2.py:small", "--runs-dir", str(in_tmp / "runs")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "dz2*/ds1^2" in out and "Phase map" in out
    run = in_tmp / "runs" / "theorem2" / "latest"
    for name in (
        "results.csv",
        "summary.json",
        "starvation.png",
        "starvation.pdf",
        "phase_map.png",
        "phase_map.csv",
        "phase_magnitude.png",
    ):
        assert (run / name).exists(), name
    rows = list(csv.DictReader((run / "results.csv").open()))
    need = {
        "equation",
        "delta",
        "lam",
        "s1_sq",
        "s2_sq",
        "z1",
        "z2",
        "dz2_ds1sq",
        "dz2_ds1sq_fd",
        "z2_lemma1",
    }
    assert need <= set(rows[0])
    assert {r["equation"] for r in rows} == {"eq9", "eq10", "sd"}
    assert all(r["z2_lemma1"] == "" for r in rows if r["equation"] != "eq10")
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("z1", "z2", "dz2_ds1sq", "dz2_ds1sq_fd"))
    summary = json.loads((run / "summary.json").read_text())
    assert {v["sign"] for v in summary["verdicts"] if v["delta"] > 0 and v["equation"] != "sd"} == {"< 0"}
    assert {v["sign"] for v in summary["verdicts"] if v["delta"] == 0 or v["equation"] == "sd"} == {"= 0"}
    # the small phase map, δ ∈ linspace(0, 0.99, 6): the sign statement fails from the first δ past 1/√2 (0.792)
    # on, exactly where z₂* < 0, and |z₂*| still shrinks everywhere (catches a phase summary that miscounts)
    for p in summary["phase_map"]:
        assert p["min_delta_failing"] == pytest.approx(0.792) and p["min_delta_z2_negative"] == pytest.approx(
            0.792
        )
        assert p["fails_where_z2_positive"] == 0 and p["abs_fails"] == 0 and p["fails"] == p["z2_negative"]
    # the magnitude summary: starvation has a size on the z₂* > 0 side (elasticity < 0, not NaN)
    assert summary["phase_magnitude"] and all(
        m["min"] < 0 and m["median"] <= 0 for m in summary["phase_magnitude"]
    )


@pytest.mark.parametrize("equation", ["eq9", "eq10"])
def test_elasticity_is_the_log_log_slope(equation):
    # the phase map's d log|z₂*| / d log s₁² against a central finite difference of log z₂* in log s₁² (h = 1e-4:
    # truncation O(h²) ≈ 1e-8, rounding of the 1e-14-converged roots ≈ 1e-10)
    from gs_jax.experiments.theorem2 import phase_map

    rows = phase_map((equation,), [0.3, 0.6], [2.0, 5.0], [0.5], 2.0)
    h = 1e-4
    for r in rows:
        s1 = r["ratio"] * 2.0
        zp, _ = _slopes(equation, [r["delta"]], [s1 * np.exp(h)], lam=0.5)
        zm, _ = _slopes(equation, [r["delta"]], [s1 * np.exp(-h)], lam=0.5)
        fd = (np.log(zp[0, 0]) - np.log(zm[0, 0])) / (2 * h)
        assert r["elasticity"] == pytest.approx(fd, rel=1e-5, abs=1e-8)
        assert r["elasticity"] < 0


def test_main_reports_bad_config(repo_root, in_tmp, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    theorem2 = _entry_point(repo_root)

    rc = theorem2.main(
        ["--config", "configs/theorem2.py:small", "--config.lam=-1", "--runs-dir", str(in_tmp / "r")]
    )
    assert rc == 2
    assert "must be > 0" in capsys.readouterr().err


@pytest.mark.slow
def test_theorem2_default_run_and_phase_boundary(repo_root, in_tmp, monkeypatch):
    """`make theorem2` on its default config: dz₂*/ds₁² < 0 on the default grid (δ ∈ {0.1, 0.25, 0.5}, Eq. 9 and
    Eq. 10, s₁² ∈ (2, 60]), = 0 at δ = 0 and for SD; implicit derivatives equal the 5-point differences; and on the
    phase map (δ ∈ [0, 0.99] step 0.01, s₁²/s₂² ∈ [1, 30], λ ∈ {0.1, 1, 10}) the sign statement fails exactly past
    δ = 1/√2 — first at δ = 0.71, never at 0.70 — and only where z₂* < 0."""
    monkeypatch.chdir(repo_root)
    assert _entry_point(repo_root).main(["--runs-dir", str(in_tmp / "runs")]) == 0
    summary = json.loads((in_tmp / "runs" / "theorem2" / "latest" / "summary.json").read_text())
    verdicts = summary["verdicts"]
    assert len(verdicts) == 3 * 4
    for v in verdicts:
        coupled = v["delta"] > 0 and v["equation"] != "sd"
        assert v["sign"] == ("< 0" if coupled else "= 0"), v
        if coupled:
            assert v["fd_max_rel_err"] < 1e-6, v
    assert len(summary["phase_map"]) == 2 * 3
    for p in summary["phase_map"]:
        assert p["points"] == 99 * 116  # δ > 0, ratio > 1
        assert p["min_delta_failing"] == pytest.approx(0.71) and p["min_delta_z2_negative"] == pytest.approx(
            0.71
        )
        assert p["fails"] == p["z2_negative"] == 29 * 116, p  # δ = 0.71 … 0.99
        assert p["fails_where_z2_positive"] == 0 and p["abs_fails"] == 0, p
