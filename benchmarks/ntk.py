"""Wall time and peak memory of the empirical NTK Gram, per implementation, and the matrix-free top-k features.

Part 1 — K = Φ₀Φ₀ᵀ on n random inputs (float32, as trained) for the Fig. 1 two-layer ReLU (2 → 500 → 1,
``gs_jax.models.MoonsMLP``) and the Colored MNIST MLP (392 → 300 → 300 → 1, ``gs_jax.models.CmnistMLP``):

- ``raw-structured``: ``neural_tangents.empirical_ntk_fn`` (structured derivatives), jitted, called directly;
- ``nt-structured`` / ``nt-jacobian`` / ``nt-ntvp``: ``gs_jax.ntk.empirical_ntk(backend="nt")`` with each of
  neural-tangents' implementations (default ``batch_size="auto"``: 512-blocks beyond 768 examples on CPU);
  ``nt-one-call``: structured in one call (``batch_size=None``); ``nt-blocked``: structured, ``batch_size=B``;
- ``jax-jacobian`` / ``jax-ntvp``: gs-jax's own implementations on public jax (``backend="jax"``);
  ``jax-blocked``: Jacobian contraction with ``batch_size=B``;
- ``brute-jacrev``: ``jax.jacrev`` of the flattened model, then J Jᵀ.

Without neural-tangents (an untested jax) the ``raw``/``nt`` rows are skipped and ratios are against ``jax-jacobian``.

``first`` is the first call (tracing + compilation + run), ``warm`` a second call on the same shapes; ``peak`` is
the process's peak resident memory during the call minus its resident memory before (Linux ``VmHWM``, reset per
measurement), so it includes the output and XLA's buffers. ``ratio`` = warm / warm of the first row of that size
(raw-structured where neural-tangents is available).
Slow methods are only run up to ``--dense-max`` examples.

Part 2 — the top-k features of YΦ₀ for the CMNIST MLP at n inputs (goal: k = 20 at n = 50,000 Colored MNIST-like
examples in under 5 minutes on 2 CPU cores with bounded memory) by ``gs_jax.features.top_k`` (Lanczos on
NTK-vector products); ``--top-data cfmnist`` takes Colored Fashion-MNIST training examples (50,000 with
``make data-fashion``) instead of random inputs.

Part 3 (``--memory``) — peak memory of the dense Gram and of the matrix-free top-k at growing n, and the largest n
each fits in ``--budget-gib`` (24 GiB: these machines), extrapolated from the measured growth.

    python benchmarks/ntk.py            # small: n ∈ {256, 1024} (slow methods n ≤ 256), top-20 at n = 2,000 (vs dense eigh)
    python benchmarks/ntk.py --full     # n ∈ {256, 1024, 4096}, top-20 at n = 20,000
    python benchmarks/ntk.py --skip-gram --top-n 50000 --top-data cfmnist   # top-20 of 50,000 real examples
    python benchmarks/ntk.py --skip-gram --skip-top --memory               # largest n in 24 GiB

Timings depend on the machine's load: report ``uptime`` alongside.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GS_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from gs_jax import features, models, ntk  # noqa: E402

MODELS = {
    "relu-2-500-1": (lambda: models.MoonsMLP(hidden=500), 2),
    "cmnist-mlp": (lambda: models.CmnistMLP(hidden=300), 392),
}


# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False


def measure(fn, repeats: int = 3) -> dict:
    """First call (compile + run) seconds, best of ``repeats`` warm calls, peak RSS growth (MiB) over the first."""
    can_reset = _reset_peak()
    rss0 = _status_kib("VmRSS")
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    warm = float("inf")
    for _ in range(repeats if first < 5 else 1):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        warm = min(warm, time.perf_counter() - t0)
    peak_mib = (
        max(0.0, (peak - rss0) / 1024)
        if (can_reset and peak is not None and rss0 is not None)
        else float("nan")
    )
    return {"first": first, "warm": warm, "peak_mib": peak_mib, "out": out}


def _raw_structured(apply_fn):
    nt = ntk._nt()
    fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=3)
    return jax.jit(lambda p, x: fn(x, None, p))


def _brute_jacrev(apply_fn):
    def gram(params, x):
        theta, unravel = ravel_pytree(params)
        J = jax.jacrev(lambda t: apply_fn(unravel(t), x).reshape(-1))(theta)
        return J @ J.T

    return jax.jit(gram)


def _methods(apply_fn, params, x, n: int, dense_max: int, block: int) -> dict:
    """name -> (thunk computing K, whether to run it at this n)."""
    brute = _brute_jacrev(apply_fn)
    big = 2**34  # the benchmark measures memory instead of refusing

    def ours(backend, impl, **kw):
        return lambda: ntk.empirical_ntk(
            apply_fn, params, x, backend=backend, implementation=impl, max_bytes=big, **kw
        )

    methods = {}
    if ntk.nt_available():
        raw = _raw_structured(apply_fn)
        methods |= {
            "raw-structured": (lambda: raw(params, x), True),
            "nt-structured": (ours("nt", "structured"), True),  # batch_size="auto": blocks beyond 768 on CPU
            "nt-one-call": (ours("nt", "structured", batch_size=None), n > 768),
            "nt-blocked": (ours("nt", "structured", batch_size=block), n > block),
            "nt-jacobian": (ours("nt", "jacobian"), n <= dense_max),
            "nt-ntvp": (ours("nt", "ntvp"), n <= dense_max),
        }
    return methods | {
        "jax-jacobian": (ours("jax", "jacobian"), n <= max(dense_max, 1024)),
        "jax-blocked": (ours("jax", "jacobian", batch_size=block), n > block),
        "jax-ntvp": (ours("jax", "ntvp"), n <= dense_max),
        "brute-jacrev": (lambda: brute(params, x), n <= dense_max),
    }


def gram_table(sizes, dense_max: int, block: int, seed: int = 0) -> list[dict]:
    rows = []
    for name, (make, d) in MODELS.items():
        model = make()
        for n in sizes:
            x = jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype=jnp.float32)
            params = model.init(jax.random.PRNGKey(seed + 1), x[:2])
            apply_fn = model.apply
            methods = _methods(apply_fn, params, x, n, dense_max, block)
            ref = None
            raw_warm = None
            for method, (fn, run) in methods.items():
                row = {"model": name, "n": n, "m": ntk.num_params(params), "method": method}
                if not run:
                    rows.append(
                        row | {"first": None, "warm": None, "peak_mib": None, "ratio": None, "maxrel": None}
                    )
                    continue
                r = measure(fn)
                K = np.asarray(r.pop("out"), dtype=np.float64)
                if ref is None:
                    ref, raw_warm = K, r["warm"]
                r["ratio"] = r["warm"] / raw_warm
                r["maxrel"] = float(np.abs(K - ref).max() / np.abs(ref).max())
                rows.append(row | r)
                print(_fmt_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Top-k features
# ---------------------------------------------------------------------------------------------------------------


def _top_k_inputs(n: int, data: str, seed: int):
    """(x, y) for the top-k run: ``random`` Gaussian inputs with random labels, or the first n training examples of
    a Colored Fashion-MNIST restart (``cfmnist``: 2 × 25,000 with the Debian files) — real inputs have the steep,
    clustered spectrum that sets Lanczos' iteration count."""
    if data == "random":
        x = jax.random.normal(jax.random.PRNGKey(seed), (n, 392), dtype=jnp.float32)
        y = (jax.random.uniform(jax.random.PRNGKey(seed + 2), (n,)) < 0.5).astype(jnp.int32)
        return x, np.asarray(y)
    from gs_jax.data import colored_mnist, mnist

    restart = colored_mnist.build_restart(mnist.load_pool("fashion-mnist"), 1234, four_envs=False)
    x = np.concatenate([e.x for e in restart.train])
    y = np.concatenate([e.y for e in restart.train])
    if x.shape[0] < n:
        raise SystemExit(f"--top-data cfmnist holds {x.shape[0]} training examples, fewer than --top-n {n}")
    return jnp.asarray(x[:n]), y[:n].astype(np.int32)


def top_k_run(n: int, k: int, check_dense: bool, seed: int = 0, data: str = "random") -> dict:
    model = models.CmnistMLP(hidden=300)
    x, y = _top_k_inputs(n, data, seed)
    params = model.init(jax.random.PRNGKey(seed + 1), x[:2])
    _reset_peak()
    rss0 = _status_kib("VmRSS")
    t0 = time.perf_counter()
    f = features.top_k(model.apply, params, x, y, k, method="lanczos", tol=1e-6)
    jax.block_until_ready(f.s)
    wall = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    out = {
        "n": n,
        "k": k,
        "data": data,
        "wall_s": wall,
        "peak_mib": (peak - rss0) / 1024 if peak and rss0 else float("nan"),
        "s_top": np.asarray(f.s[:5]).tolist(),
        "s_k": float(f.s[-1]),
        "dense_maxrel_s": None,
    }
    if check_dense:
        K = ntk.empirical_ntk(model.apply, params, x, batch_size=1024, backend="jax")
        dense = features.from_gram(K, y, top_k=k)
        out["dense_maxrel_s"] = float(
            np.max(np.abs(np.asarray(f.s) - np.asarray(dense.s)) / np.asarray(dense.s))
        )
    return out


def memory_scaling(gram_sizes, top_sizes, k: int, budget_gib: float) -> list[str]:
    """Peak resident memory of the dense Gram (CMNIST MLP, ``ntk.empirical_ntk`` with its defaults: 512-blocks on a
    CPU, written into one device array) and of the matrix-free top-k at growing n, and the largest n each fits in ``budget_gib`` by the
    measured growth: a + b·n² for the Gram (its n² float32 entries), a + b·n for top-k (per-example activations).
    """
    model = models.CmnistMLP(hidden=300)
    lines = []
    gram = []
    for n in gram_sizes:
        x = jax.random.normal(jax.random.PRNGKey(0), (n, 392), dtype=jnp.float32)
        params = model.init(jax.random.PRNGKey(1), x[:2])
        r = measure(lambda x=x, params=params: ntk.empirical_ntk(model.apply, params, x, max_bytes=2**40), 1)
        del r["out"]
        gram.append((n, r["peak_mib"]))
        lines.append(
            f"dense Gram n = {n:>6}: {r['first']:7.1f} s (first call), peak +{r['peak_mib']:8.0f} MiB"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    top = []
    for n in top_sizes:
        r = top_k_run(n, k, check_dense=False)
        top.append((n, r["peak_mib"]))
        lines.append(f"top-{k} (Lanczos) n = {n:>7}: {r['wall_s']:7.1f} s, peak +{r['peak_mib']:8.0f} MiB")
        print(lines[-1], file=sys.stderr, flush=True)
    budget = budget_gib * 1024
    for name, pts, power, unit in (("dense Gram", gram, 2, "B·n²"), (f"top-{k}", top, 1, "B·n")):
        if len(pts) < 2:
            continue
        (n0, p0), (n1, p1) = pts[-2], pts[-1]
        b = (p1 - p0) / (n1**power - n0**power)  # MiB per n^power
        a = p1 - b * n1**power
        if not b > 0:
            lines.append(f"{name}: memory did not grow between n = {n0} and {n1}; try larger sizes")
            continue
        largest = int(((budget - a) / b) ** (1 / power))
        lines.append(f"{name}: peak ≈ {a:.0f} MiB + {b * 2**20:.2f} {unit} → largest n in {budget_gib:g} GiB "
                     f"≈ {largest:,}" + (" (float32 K alone: 4 B·n²)" if power == 2 else ""))  # fmt: skip
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------


def _num(v, fmt):
    width = int(fmt.split(".")[0])
    return f"{'—':>{width}}" if v is None else format(v, fmt)


def _fmt_row(r: dict) -> str:
    return (
        f"{r['model']:<13} {r['n']:>5} {r['m']:>7} {r['method']:<16} {_num(r['first'], '9.3f')} "
        f"{_num(r['warm'], '9.3f')} {_num(r['peak_mib'], '9.0f')} {_num(r['ratio'], '7.2f')} "
        f"{_num(r['maxrel'], '9.1e')}"
    )


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'model':<13} {'n':>5} {'m':>7} {'method':<16} {'first s':>9} {'warm s':>9} {'peak MiB':>9} "
        f"{'ratio':>7} {'max rel':>9}"
    )
    return "\n".join([head, "-" * len(head)] + [_fmt_row(r) for r in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--full", action="store_true", help="the issue's sizes (n up to 4096, top-k at 20,000)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="Gram sizes n (default 256 1024; --full adds 4096)"
    )
    parser.add_argument(
        "--dense-max", type=int, help="largest n for jacobian/ntvp/brute force (default 256; --full 1024)"
    )
    parser.add_argument("--block", type=int, default=512, help="batch_size of the blocked method")
    parser.add_argument("--top-n", type=int, help="n for the top-k features (default 2000; --full 20000)")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument(
        "--top-data",
        choices=["random", "cfmnist"],
        default="random",
        help="inputs of the top-k run: random, or Colored Fashion-MNIST training examples",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="peak memory of the dense Gram and of top-k at growing n, and the largest n in --budget",
    )
    parser.add_argument("--gram-sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--top-sizes", type=int, nargs="+", default=[25000, 50000, 100000])
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--skip-gram", action="store_true")
    parser.add_argument("--skip-top", action="store_true")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([256, 1024, 4096] if args.full else [256, 1024])
    top_n = args.top_n or (20000 if args.full else 2000)
    dense_max = args.dense_max if args.dense_max is not None else (1024 if args.full else 256)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; neural-tangents "
        f"{'available' if ntk.nt_available() else 'not available'}; load {os.getloadavg()}"
    )
    if not args.skip_gram:
        rows = gram_table(sizes, dense_max, args.block)
        print(format_table(rows))
    if not args.skip_top:
        r = top_k_run(top_n, args.top_k, check_dense=top_n <= 4096, data=args.top_data)
        print(
            f"top-{r['k']} features of the CMNIST MLP NTK at n = {r['n']} ({r['data']} inputs): {r['wall_s']:.1f} s, "
            f"peak +{r['peak_mib']:.0f}"
            f" MiB; s[:5] = {np.round(r['s_top'], 3).tolist()}, s[{r['k'] - 1}] = {r['s_k']:.3f}"
            + (
                ""
                if r["dense_maxrel_s"] is None
                else f"; max rel. error of s vs dense eigh {r['dense_maxrel_s']:.1e}"
            )
        )
    if args.memory:
        print("\n".join(memory_scaling(args.gram_sizes, args.top_sizes, args.top_k, args.budget_gib)))
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
