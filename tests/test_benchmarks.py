"""Smoke runs of the benchmark harnesses (never a timing assertion): the side-by-side table's gs-jax side on one
small row, and each PyTorch peer's ``--small`` run where its environment exists (``make bench-peers``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PEERS_PY = REPO / ".venv-peers" / "bin" / "python"


def _module(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # the fast suite's 10 minutes on 2 cores; ≈ 10 s
def test_side_by_side_prints_a_row(tmp_path, capsys):
    sbs = _module("side_by_side")
    out = tmp_path / "rows.json"
    assert sbs.main(["--rows", "pgd", "ntk-nt", "--quick", "--repeats", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "matmul peak" in text and "pgd" in text and "raw nt" in text
    row, nt_row = json.loads(out.read_text())
    assert row["gs_jax_s"] > 0 and 0 < row["fraction_of_peak"] < 2  # a FLOP count of the right order
    assert row["peer_s"] is None or row["ratio"] > 0
    # the API-vs-raw-neural-tangents row times both sides in this process (no peer environment needed)
    from gs_jax import ntk

    if ntk.nt_available():
        assert nt_row["peer"] == "raw nt" and nt_row["peer_s"] > 0 and nt_row["ratio"] > 0


@pytest.mark.skipif(not PEERS_PY.exists(), reason="no .venv-peers (make bench-peers)")
@pytest.mark.parametrize("harness", ["pgd", "ntk"])
def test_peer_small_run_reports_one_json_line(harness):
    proc = subprocess.run([str(PEERS_PY), str(REPO / "benchmarks" / "peers" / f"torch_{harness}.py"), "--small"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rec["harness"] == f"torch_{harness}" and rec["peak_rss_mib"] > 0


@pytest.mark.skipif(not PEERS_PY.exists(), reason="no .venv-peers (make bench-peers)")
def test_fig2_peer_small_run_on_the_exported_data():
    """The authors' batch-1 loop on the exported pullover/coat images: 200 steps, one JSON line."""
    from gs_jax.data import mnist

    try:
        mnist.resolve_dir("fashion-mnist")
    except Exception as err:  # noqa: BLE001 — no Fashion-MNIST files on this machine
        pytest.skip(f"no Fashion-MNIST IDX files: {err}")
    export = subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(REPO / "benchmarks" / "peers" / "export_data.py"),
                             "--skip-cmnist", "--skip-moons", "--fig2"], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert export.returncode == 0, export.stderr[-2000:]
    proc = subprocess.run([str(PEERS_PY), str(REPO / "benchmarks" / "peers" / "torch_fig2.py"), "--small", "--threads", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        rec["harness"] == "torch_fig2"
        and rec["n_train"] == 12000
        and rec["steps"] == 200
        and rec["ms_per_step"] > 0
    )


@pytest.mark.slow  # ≈ 7 s: the fast suite's budget
def test_ntk_memory_scaling_reports_the_largest_n(capsys):
    """benchmarks/ntk.py --memory at toy sizes: the two fits are made and give a positive largest n."""
    bench = _module("ntk")
    lines = bench.memory_scaling([512, 2048], [2000, 8000], k=3, budget_gib=24.0)
    fits = [line for line in lines if "largest n" in line]
    assert len(fits) == 2
    for line in fits:
        assert int(line.rsplit("≈", 1)[1].split()[0].replace(",", "")) > 0
