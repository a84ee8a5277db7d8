"""gs-jax and its PyTorch peer, back to back in ONE run, one table (``make bench``).

    python benchmarks/side_by_side.py            # every row at the issue's sizes (≈ 15 min on 2 CPU cores)
    python benchmarks/side_by_side.py --quick    # smaller sizes (≈ 2 min): the same table, a smoke run
    python benchmarks/side_by_side.py --rows cmnist pgd --repeats 3

Rows (same protocol, data and sizes on both sides; the peers are ``benchmarks/peers/torch_*.py``, run in their own
``.venv-peers`` as a subprocess right after the gs-jax measurement):

- ``cmnist``: Colored MNIST ERM, R restarts × S full-batch Adam steps (the authors' protocol, SPEC §2); gs-jax runs
  all restarts as one vmapped program, the peer one after another, as the authors' script.
- ``moons``: one two-moons case (Fig. 1 b: Δ = +0.1, 2-500-1, SGD-m lr 1e-2, wd 2e-4), 10 seeds × S steps.
- ``moons-deep``: the same with the Appendix B 5-layer net (2-500-500-500-500-1), the FLOP-heavy case of
  ``make moons``.
- ``ntk``: the empirical NTK Gram K = J Jᵀ of the Colored MNIST MLP (392-300-300-1) at n examples; the peer's
  best torch.func method (Jacobian contraction or NTK-vector products).
- ``ntk-nt``: the same Gram through gs-jax's API (``gs_jax.ntk.empirical_ntk``, default arguments) against raw
  neural-tangents (``empirical_ntk_fn``, structured derivatives, jitted, one call) in the same process: what the
  API's checks, blocking and caching cost (goal: within 1.1×, i.e. a ratio ≥ 0.91).
- ``pgd``: L∞ PGD (10 steps, random start) on the Fig. 2 LeNet (28×28×1, 181,266 parameters), images per second.
- ``fig2``: the Fig. 2 protocol's training (Fashion-MNIST pullover/coat, the LeNet with 2 outputs, batch 1, SGD lr
  1e-3 momentum 0.9): gs-jax runs one epoch of its program — 3 seeds × {ERM, SD} as 6 vmapped restarts, one step
  per training example — against the authors' ``Figure_2/main.py`` batch-1 loop (``torch_fig2.py``: DataLoader,
  SGD, ``loss.item()`` per step) for one epoch of one run. Compared per run-step: the seconds columns are one
  run-epoch each (gs-jax: its epoch of 6 runs / 6). The peer runs with 1 torch thread and with all (spinning
  OpenMP threads lose badly on a shared machine); the faster is kept and named.

Columns: the best of ``--repeats`` warm timings on each side (compilation excluded on the gs-jax side and reported
apart; the peers' first call likewise), the ratio peer/gs-jax (> 1: gs-jax faster), gs-jax's achieved GFLOP/s from
an analytic matmul FLOP count and its fraction of the float32 matmul peak measured at the start of the same run,
peak resident memory of each process, and the load average before and after. Timings on a shared machine move
with its load: compare ratios from one run, not absolute times from different days.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEERS_PY = REPO / ".venv-peers" / "bin" / "python"
SIZES = {  # row -> (full, quick)
    "cmnist": ({"restarts": 10, "steps": 1001}, {"restarts": 4, "steps": 201}),
    "moons": ({"seeds": 10, "steps": 10000}, {"seeds": 10, "steps": 2000}),
    "moons-deep": ({"seeds": 10, "steps": 1000}, {"seeds": 10, "steps": 200}),
    "ntk": ({"n": 1024}, {"n": 256}),
    "ntk-nt": ({"n": 4096}, {"n": 1024}),
    "pgd": ({"batch": 256}, {"batch": 128}),
    "fig2": ({"steps": 12000, "seeds": 3}, {"steps": 1000, "seeds": 3}),
}


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a jit-compiled ``size³`` matmul, now (the bound every fraction refers to)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    return 2.0 * size**3 / min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats)) / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _peer(harness: str, args: list[str]) -> dict:
    if not PEERS_PY.exists():
        return {"error": "no .venv-peers (run `make bench-peers` once)"}
    cmd = [str(PEERS_PY), str(REPO / "benchmarks" / "peers" / f"torch_{harness}.py"), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit {proc.returncode}"
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mlp_flops(n: int, d: int = 392, h: int = 300) -> float:
    """Forward + backward matmul FLOPs of one full-batch step of the d → h → h → 1 MLP on n examples."""
    fwd = 2.0 * n * (d * h + h * h + h)
    return 2 * fwd + 2.0 * n * (h * h + h)


# ---------------------------------------------------------------------------------------------------------------
# Rows: each returns (gs-jax seconds, compile seconds, FLOPs or None, peer seconds or None, note, peer peak MiB)
# ---------------------------------------------------------------------------------------------------------------


def row_cmnist(size, repeats):
    from gs_jax.data import colored_mnist, mnist
    from gs_jax.experiments import cmnist

    r, s = size["restarts"], size["steps"]
    seeds = [1234 + i for i in range(r)]
    data = cmnist.restart_data(
        [colored_mnist.build_restart(mnist.load_pool(), k, four_envs=False) for k in seeds]
    )
    schedule = {"hidden": 300, "lr": 1e-4, "steps": s, "grayscale": False}  # the ERM row of configs/cmnist.py

    def train(steps):
        return cmnist.train_restarts(
            "erm", data, seeds, schedule={**schedule, "steps": steps}, eval_every=50
        )[0]

    compile_s = _timed(lambda: train(min(s, 51)))
    best = min(_timed(lambda: jax.block_until_ready(train(s).params)) for _ in range(repeats))
    n = data["x"].shape[1]
    peer = _peer("cmnist", ["--restarts", str(r), "--steps", str(s), "--repeats", str(repeats)])
    return best, compile_s, _mlp_flops(n) * s * r, peer.get("wall_s"), f"{r} restarts × {s} steps", peer


def row_moons(size, repeats, n_hidden: int = 1):
    from gs_jax.data import moons as moons_data
    from gs_jax.experiments import moons

    k, s = size["seeds"], size["steps"]
    x, y = moons_data.stack_seeds(list(range(k)), 0.1)
    arch, hyper = (
        moons.MoonsArch(hidden=500, n_hidden=n_hidden),
        moons.MoonsHyper(np.float32(1e-2), np.float32(2e-4), np.float32(0.0)),
    )
    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(k)])
    chunk = min(s, 10_000)

    def run():
        res = moons.train_moons(arch, hyper, x, y, keys, s, record_every=10, chunk_steps=chunk)
        jax.block_until_ready(jax.tree_util.tree_leaves(res)[0])

    compile_s = _timed(run)
    best = min(_timed(run) for _ in range(repeats))
    n = x.shape[1]
    # fwd + bwd matmuls: weight gradients of every layer, input gradients of all but the first
    fwd = 2 * n * (2 * 500 + (n_hidden - 1) * 500 * 500 + 500)
    flops = (2 * fwd + 2 * n * ((n_hidden - 1) * 500 * 500 + 500)) * s * k
    peer = _peer("moons", ["--seeds", str(k), "--steps", str(s), "--repeats", str(repeats),
                           "--n-hidden", str(n_hidden)])  # fmt: skip
    return (
        best,
        compile_s,
        flops,
        peer.get("wall_s"),
        f"{k} seeds × {s} steps"
        + (f", {n_hidden + 1}-layer net" if n_hidden > 1 else " (compile in 1st call)"),
        peer,
    )


def row_moons_deep(size, repeats):
    """The Appendix B 5-layer case (2-500-500-500-500-1), the largest of ``make moons`` (135 TFLOP at 10 × 10,000)."""
    return row_moons(size, repeats, n_hidden=4)


def _cmnist_mlp_ntk_inputs(n: int):
    """``(apply_fn, params, x)`` of the NTK rows: the Colored MNIST MLP (392-300-300-1) on n uniform inputs."""
    from gs_jax import models

    model = models.CmnistMLP(hidden=300)
    x = jax.random.uniform(jax.random.PRNGKey(0), (n, 392))
    params = model.init(jax.random.PRNGKey(1), x[:1])["params"]

    def f(p, xx):
        return model.apply({"params": p}, xx)

    return f, params, x


def row_ntk(size, repeats):
    from gs_jax import ntk

    n = size["n"]
    f, params, x = _cmnist_mlp_ntk_inputs(n)
    compile_s = _timed(lambda: ntk.empirical_ntk(f, params, x).block_until_ready())
    best = min(_timed(lambda: ntk.empirical_ntk(f, params, x).block_until_ready()) for _ in range(repeats))
    m = 392 * 300 + 300 + 300 * 300 + 300 + 301
    peer = _peer("ntk", ["--sizes", str(n), "--repeats", str(repeats), "--dense-max", str(n)])
    warm = [rw["warm_s"] for rw in peer.get("rows", []) if rw["n"] == n]
    # no GFLOP/s: neural-tangents' structured method never forms the m-wide Jacobian contraction (2n²m FLOPs)
    return best, compile_s, None, min(warm) if warm else None, f"n = {n}, m = {m} (structured NTK)", peer


def row_ntk_nt(size, repeats):
    from gs_jax import ntk

    n = size["n"]
    if not ntk.nt_available():
        return float("nan"), 0.0, None, None, f"n = {n}", {"error": "neural-tangents not importable"}
    f, params, x = _cmnist_mlp_ntk_inputs(n)
    raw_fn = ntk._nt().empirical_ntk_fn(f, trace_axes=(), vmap_axes=0, implementation=3)
    raw = jax.jit(lambda p, xx: raw_fn(xx, None, p))
    compile_s = _timed(lambda: ntk.empirical_ntk(f, params, x).block_until_ready())
    raw(params, x).block_until_ready()
    ours_s, raw_s = float("inf"), float("inf")
    for _ in range(repeats):  # alternate the two so that load drifts hit both alike
        ours_s = min(ours_s, _timed(lambda: ntk.empirical_ntk(f, params, x).block_until_ready()))
        raw_s = min(raw_s, _timed(lambda: raw(params, x).block_until_ready()))
    return (
        ours_s,
        compile_s,
        None,
        raw_s,
        f"n = {n}, gs-jax API vs raw neural-tangents",
        {},
    )


def row_pgd(size, repeats):
    from gs_jax import attacks, models

    b = size["batch"]
    x = jax.random.uniform(jax.random.PRNGKey(0), (b, 28, 28, 1))
    y = jax.random.randint(jax.random.PRNGKey(1), (b,), 0, 10)
    params = models.LeNetFig2(num_classes=10).init(jax.random.PRNGKey(2), x[:1])["params"]
    eps = 5 / 255

    @jax.jit
    def attack(p, xx, yy):
        return attacks.pgd(models.lenet_fig2_apply, p, xx, yy, eps=eps, step_size=eps / 10, steps=10,
                           norm="linf", random_start=True, key=jax.random.PRNGKey(3), clip=(0.0, 1.0))  # fmt: skip

    compile_s = _timed(lambda: attack(params, x, y).block_until_ready())
    best = min(_timed(lambda: attack(params, x, y).block_until_ready()) for _ in range(repeats))
    fwd = 2.0 * b * (24 * 24 * 25 * 12 + 8 * 8 * 300 * 32 + 512 * 240 + 240 * 192 + 192 * 10)
    peer = _peer("pgd", ["--batch", str(b), "--repeats", str(repeats)])
    peer_s = b / peer["images_per_s"] if "images_per_s" in peer else None
    return (
        best,
        compile_s,
        fwd * 3 * 11,
        peer_s,
        f"batch {b}, 10 steps (images/s: seconds per batch shown)",
        peer,
    )


def row_fig2(size, repeats):
    """One epoch of the Fig. 2 program (seeds × {ERM, SD} vmapped) vs the authors' batch-1 loop, per run-step."""
    from gs_jax import config, trainer
    from gs_jax.experiments import robustness_data, robustness_fig2

    cfg = config.load_config(str(REPO / "configs" / "robustness.py"))
    raw = robustness_data.load_raw(cfg.data)
    train, _, _, _ = robustness_data.part_splits(raw, tuple(cfg.fig2.classes), tuple(cfg.fig2.pixel_range), 0)
    f = cfg.fig2.copy_and_resolve_references()
    with f.unlocked():
        f.seeds = tuple(range(1, size["seeds"] + 1))
    prog = robustness_fig2.program(f, train.y, raw.name)
    steps, r = size["steps"], len(prog.runs)
    data = {"x": jnp.asarray(train.x), "y": jnp.asarray(train.y)}
    kw = dict(steps=steps, data_per_restart=False, init=trainer.Init(algo_state=prog.algo_state),
              layout=prog.layout._replace(max_chunk=steps))  # fmt: skip

    def run():
        jax.block_until_ready(trainer.train(prog.task, data, prog.keys, **kw).state.params)

    subprocess.run([sys.executable, str(REPO / "benchmarks" / "peers" / "export_data.py"), "--skip-cmnist",
                    "--skip-moons", "--fig2"], cwd=REPO, check=True, capture_output=True)  # fmt: skip
    compile_s = _timed(run)
    best, best_cpu, peer = float("inf"), float("inf"), None
    for _ in range(repeats):  # alternate the two sides so that load drifts hit both alike
        c0 = time.process_time()
        best = min(best, _timed(run))
        best_cpu = min(best_cpu, time.process_time() - c0)
        p = _peer("fig2", ["--steps", str(steps), "--threads", "1"])
        if "ms_per_step" in p and (peer is None or p["ms_per_step"] < peer["ms_per_step"]):
            peer = p
    probe = _peer(
        "fig2", ["--steps", str(min(steps, 300)), "--threads", "0"]
    )  # all threads: short, often slow
    if "ms_per_step" in probe and (peer is None or probe["ms_per_step"] < peer["ms_per_step"]):
        peer = probe
    ok = peer is not None
    peer = peer or probe
    per_run_epoch = best / r * (len(train.y) / steps)  # seconds per epoch of ONE run
    peer_epoch = peer["ms_per_step"] / 1e3 * len(train.y) if ok else None
    fwd = 2.0 * (24 * 24 * 25 * 12 + 8 * 8 * 300 * 32 + 512 * 240 + 240 * 192 + 192 * 2)
    note = (f"{steps} steps × {r} runs; per run-step {1e3 * best / steps / r:.3f} ms vs "
            + (f"{peer['ms_per_step']:.3f} ms ({peer['threads']} thr)" if ok else "n/a")
            + f"; CPU ms per run-step {1e3 * best_cpu / steps / r:.3f} vs "
            + (f"{peer.get('cpu_ms_per_step', float('nan')):.3f}" if ok else "n/a"))  # fmt: skip
    return per_run_epoch, compile_s - best, 3 * fwd * len(train.y), peer_epoch, note, peer


ROWS = {"cmnist": row_cmnist, "moons": row_moons, "moons-deep": row_moons_deep, "ntk": row_ntk, "ntk-nt": row_ntk_nt,
        "pgd": row_pgd, "fig2": row_fig2}  # fmt: skip
PEER = {"cmnist": "torch", "moons": "torch", "moons-deep": "torch", "ntk": "torch.func", "ntk-nt": "raw nt",
        "pgd": "torch", "fig2": "torch"}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run of the whole table)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    if "cmnist" in args.rows or "moons" in args.rows:
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "peers" / "export_data.py")], cwd=REPO,
                       check=True, capture_output=True)  # fmt: skip
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak now: {peak:.0f} GFLOP/s | CPUs {os.cpu_count()} | jax {jax.__version__} "
          f"({jax.devices()[0].platform})")  # fmt: skip
    head = (f"{'row':10s} {'size':44s} {'gs-jax s':>9s} {'compile s':>9s} {'peer':>10s} {'peer s':>9s} {'peer/gs':>8s} "
            f"{'GFLOP/s':>8s} {'of peak':>7s} {'peer MiB':>8s} {'load before/after':>18s}")  # fmt: skip
    print(head)
    print("-" * len(head))
    out = []
    for name in args.rows:
        size = SIZES[name][1 if args.quick else 0]
        load0 = os.getloadavg()[0]
        gs, comp, flops, peer_s, note, peer = ROWS[name](size, args.repeats)
        load1 = os.getloadavg()[0]
        gflops = flops / gs / 1e9 if flops else float("nan")
        ratio = peer_s / gs if peer_s else float("nan")
        rec = {"row": name, "peer": PEER[name], "size": size, "gs_jax_s": gs, "compile_s": comp, "peer_s": peer_s, "ratio": ratio,
               "gflops": gflops, "peak_gflops": peak, "fraction_of_peak": gflops / peak,
               "peer_peak_rss_mib": peer.get("peak_rss_mib"), "peer_error": peer.get("error"),
               "load_before": load0, "load_after": load1}  # fmt: skip
        out.append(rec)
        peer_txt = f"{peer_s:9.3f}" if peer_s else f"{'n/a':>9s}"
        print(f"{name:10s} {note[:44]:44s} {gs:9.3f} {comp:9.1f} {PEER[name]:>10s} {peer_txt} {ratio:8.2f} {gflops:8.1f} "
              f"{gflops / peak:7.2f} {peer.get('peak_rss_mib', float('nan')):8.0f} {load0:8.2f} / {load1:6.2f}",
              flush=True)  # fmt: skip
        if len(note) > 44:
            print(f"        {note}")
        if peer.get("error"):
            print(f"        peer: {peer['error']}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"gs-jax process peak resident memory (all rows): {rss:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
