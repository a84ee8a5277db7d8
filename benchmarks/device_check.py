"""One table from a machine with a GPU: the `gpu`-marked tests, Colored MNIST ERM (10 vmapped restarts, paper
protocol: 1,001 full-batch Adam steps, hidden 300, embedded 5k default) and the top-20 NTK features of the CMNIST MLP
at n = 20,000 (matrix-free Lanczos).

    make device-check            # installs the CUDA plugin of the locked jax (make setup-gpu), then runs this

Each part runs in its own process (so one failure does not hide the others); the table says what each printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], timeout: float) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), 124
    return rc, out, time.perf_counter() - t0


def _grab(pattern: str, text: str, default: str = "—") -> str:
    m = re.search(pattern, text)
    return m.group(1).strip() if m else default


def main() -> int:
    py = sys.executable
    probe = subprocess.run(
        [py, "-c", "import jax; d = jax.devices()[0]; print(jax.__version__, d.platform, d.device_kind)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    rows = [("jax, platform, device", probe or "jax failed to start")]

    rc, out, wall = _run(
        [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_gpu.py"], 900
    )
    summary = _grab(r"(\d+ (?:passed|failed|skipped)[^\n]*)", out)
    rows.append(("gpu tests", f"{summary} (rc {rc})"))

    rc, out, wall = _run([py, "benchmarks/cmnist.py", "--restarts", "10"], 1800)
    rows += [
        ("CMNIST ERM 10 restarts: wall s", _grab(r"wall time \(s\)\s*\|\s*(\S+)", out) + f" (rc {rc})"),
        ("CMNIST ERM: compile + warm-up s", _grab(r"compile \+ warm-up \(s\)\s*\|\s*(\S+)", out)),
        ("CMNIST ERM: achieved GFLOP/s", _grab(r"achieved GFLOP/s\s*\|\s*(\S+)", out)),
        ("CMNIST ERM: matmul peak GFLOP/s", _grab(r"matmul peak \(GFLOP/s\)\s*\|\s*(\S+)", out)),
        ("CMNIST ERM: final test acc", _grab(r"final test acc \(mean\)\s*\|\s*([^\n]+)", out)),
    ]

    rc, out, wall = _run([py, "benchmarks/ntk.py", "--skip-gram", "--top-n", "20000"], 1800)
    rows.append(
        ("NTK top-20 at n = 20,000", _grab(r"n = 20000: ([^;]+);", out) + f" (rc {rc}, process {wall:.0f} s)")
    )

    width = max(len(k) for k, _ in rows)
    print(f"{'device check':<{width}} | result")
    print("-" * width + "-|-" + "-" * 50)
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GS_NO_PROGRESS", "1")
    raise SystemExit(main())
