"""`make primal-dual` (Fig. 5): configs, entry point, primal and dual end points agree."""

import csv
import importlib.util
import json

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from gs_jax import config

pytestmark = pytest.mark.usefixtures("x64")


def _entry_point(repo_root):
    spec = importlib.util.spec_from_file_location(
        "analysis_primal_dual", repo_root / "analysis" / "primal_dual.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_variants(repo_root):
    # each variant changes what it says and nothing else (catches a variant dispatch that returns the default)
    load = lambda v: config.load_config(str(repo_root / f"configs/primal_dual.py:{v}"))  # noqa: E731
    default, same, small = load("default"), load("same_lambda"), load("small")
    assert default.C == 100.0 and default.delta == 0.5 and default.s1_values == (2.0, 3.0, 4.0, 5.0, 6.0)
    # toy_fig_6.py's SD term (0.1/C)·Σŷ² = (λ_SD/2)‖ŷ‖²  →  λ_SD = 0.2/C; same_lambda uses the weight decay 1/C
    assert default.sd_lam == pytest.approx(0.2 / default.C) and same.sd_lam == pytest.approx(1 / same.C)
    assert small.s1_values == (2.0, 4.0) and small.sd_lam == default.sd_lam


def test_unknown_variant(repo_root):
    with pytest.raises(ValueError, match="unknown variant"):
        config.load_config(str(repo_root / "configs/primal_dual.py:nope"))


def test_main_primal_equals_dual(repo_root, in_tmp, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    rc = _entry_point(repo_root).main(
        ["--config", "configs/primal_dual.py:small", "--runs-dir", str(in_tmp / "runs")]
    )
    assert rc == 0
    assert "primal L2 end" in capsys.readouterr().out
    run = in_tmp / "runs" / "primal_dual" / "latest"
    for name in ("trajectories.csv", "endpoints.csv", "summary.json", "primal_dual.png", "primal_dual.pdf"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["max_gap"] < 1e-6
    ends = {e["s1"]: e for e in summary["endpoints"]}
    # z₂* falls as s₁ grows (starvation)
    assert ends[4.0]["z2_eq9"] < ends[2.0]["z2_eq9"]
    # SD (Eq. 18): each margin solves σ(−ŷ*) = λ_SD·ŷ* on its own, z* = ŷ*·Uᵀ1 for every s₁ — the root and the
    # primal SD flow's end point against that closed form (scipy bisection; U of Eq. 15 with δ = 0.5).
    # Catches: S² or s₁ entering the SD path, a wrong λ_SD (e.g. toy_fig_6.py's 0.1/C without the factor 2).
    lam_sd = summary["sd_lam"]
    m = scipy.optimize.brentq(lambda t: scipy.special.expit(-t) - lam_sd * t, 0.0, 1 / lam_sd + 1, xtol=1e-14)
    c = np.sqrt(1 - 0.5**2)
    z_closed = m * np.array([c + 0.5, c - 0.5])
    np.testing.assert_allclose(z_closed, [6.3726, 1.7075], atol=1e-4)  # the config's stated expectation
    for s1 in (2.0, 4.0):
        np.testing.assert_allclose([ends[s1]["z1_sd"], ends[s1]["z2_sd"]], z_closed, rtol=1e-10)
        np.testing.assert_allclose(
            [ends[s1]["z1_primal_sd_end"], ends[s1]["z2_primal_sd_end"]], z_closed, atol=1e-6
        )
    # SPEC §3 reference (authors' primal-L2 run, float32): s₁ = 2 → (6.1204, 1.6399)
    np.testing.assert_allclose([ends[2.0]["z1_eq9"], ends[2.0]["z2_eq9"]], [6.1204, 1.6399], atol=2e-4)
    rows = list(csv.DictReader((run / "trajectories.csv").open()))
    assert {r["method"] for r in rows} == {"dual", "primal_l2", "primal_sd"}
    assert all(np.isfinite(float(r["z1"])) and np.isfinite(float(r["z2"])) for r in rows)
