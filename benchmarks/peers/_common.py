"""Shared helpers of the PyTorch peer harnesses: thread setup, memory readings, the one-line JSON report.

Nothing here imports gs_jax or jax: the peers run in their own environment (torch + numpy only).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = REPO / "runs" / "bench" / "peer_data"


def setup_threads(threads: int = 0) -> int:
    """Pin torch's intra-op threads (default: every CPU of the machine) and return the number in use."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch.get_num_threads()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (``getrusage``; ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakWindow:
    """Peak RSS growth (MiB) over a block: Linux ``VmHWM`` reset on entry, minus the RSS on entry.

    ``mib`` is NaN where the high-water mark cannot be reset (non-Linux, restricted /proc).
    """

    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self._ok = True
        except OSError:
            self._ok = False
        self._rss0 = _status_kib("VmRSS")
        self.mib = float("nan")
        return self

    def __exit__(self, *exc):
        peak = _status_kib("VmHWM")
        if self._ok and peak is not None and self._rss0 is not None:
            self.mib = (peak - self._rss0) / 1024.0
        return False


def timed(fn):
    """(result, seconds) of one call of ``fn``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def environment(threads: int) -> dict:
    """The fields every report carries: versions, threads, CPUs and the load average before the run."""
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "cpus": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_avg_before": [round(v, 2) for v in os.getloadavg()],
    }


def emit(record: dict) -> None:
    """Print the report as ONE JSON line on stdout (load average after and peak RSS added here)."""
    record = {
        **record,
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    sys.stdout.write(json.dumps(record, sort_keys=False) + "\n")
    sys.stdout.flush()


def load_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Arrays of an exported data file, or exit with the command that writes it."""
    if not path.is_file():
        sys.exit(
            f"{what} data file '{path}' not found; write it first with the main environment:\n"
            f"    python benchmarks/peers/export_data.py"
        )
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
