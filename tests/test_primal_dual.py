"""`make primal-dual` (Fig. 5): configs, entry point, primal and dual end points agree."""

import csv
import importlib.util
import json

import numpy as np
import pytest

from gs_jax import config

pytestmark = pytest.mark.usefixtures("x64")


def _entry_point(repo_root):
    spec = importlib.util.spec_from_file_location(
        "analysis_primal_dual", repo_root / "analysis" / "primal_dual.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["default", "same_lambda", "small"])
def test_config_variants(repo_root, variant):
    cfg = config.load_config(str(repo_root / f"configs/primal_dual.py:{variant}"))
    assert cfg.C == 100.0 and cfg.delta == 0.5


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
    # z₂* falls as s₁ grows (starvation); SD end points do not depend on s₁ (decoupling, Eq. 18)
    assert ends[4.0]["z2_eq9"] < ends[2.0]["z2_eq9"]
    np.testing.assert_allclose(ends[4.0]["z2_sd"], ends[2.0]["z2_sd"], rtol=1e-12)
    # SPEC §3 reference (authors' primal-L2 run, float32): s₁ = 2 → (6.1204, 1.6399)
    np.testing.assert_allclose([ends[2.0]["z1_eq9"], ends[2.0]["z2_eq9"]], [6.1204, 1.6399], atol=2e-4)
    rows = list(csv.DictReader((run / "trajectories.csv").open()))
    assert {r["method"] for r in rows} == {"dual", "primal_l2", "primal_sd"}
    assert all(np.isfinite(float(r["z1"])) and np.isfinite(float(r["z2"])) for r in rows)
