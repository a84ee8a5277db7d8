"""Wall time of `make moons` (all cases, 10 seeds, the 100,000-step "longer" run included), compilation included.

    python benchmarks/moons.py                 # the full `make moons` in a fresh process, outputs in a temp dir
    python benchmarks/moons.py --quick         # the same cases capped at 1,000 steps (a smoke run of the harness)
    python benchmarks/moons.py --config.seeds=3 ...   # any config override is passed through

Prints one row per case (steps, seeds, wall seconds including that case's compilation and evaluation, seed-steps
per second) and the total, with the machine's CPU count and load average before and after: on a shared machine
the load inflates every number, so read them together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    extra = [a for a in argv if a != "--quick"]
    if quick:
        extra = ["--config.max_steps=1000", "--config.chunk_steps=1000", *extra]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(REPO / "train" / "moons.py"), "--runs-dir", tmp, "--name", "bench", *extra]
        env = {**os.environ, "GS_NO_PROGRESS": "1"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        summary = json.loads((Path(tmp) / "moons" / "bench" / "summary.json").read_text())
    load_after = os.getloadavg()
    seeds = len(summary["seeds"])
    print(f"make moons benchmark ({'quick: ≤ 1,000 steps' if quick else 'full protocol'}), {seeds} seeds")
    print(f"{'case':20s} {'steps':>7s} {'wall s':>8s} {'seed-steps/s':>13s}")
    for name, c in summary["cases"].items():
        print(f"{name:20s} {c['steps']:7d} {c['wall_s']:8.1f} {seeds * c['steps'] / c['wall_s']:13.0f}")
    print(f"{'total (process)':20s} {'':7s} {wall:8.1f}   (library time {summary['wall_s_total']:.1f} s)")
    print(
        f"CPUs: {os.cpu_count()}, load average (1/5/15 min) before {tuple(round(v, 2) for v in load_before)}, "
        f"after {tuple(round(v, 2) for v in load_after)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
