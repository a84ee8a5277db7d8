"""Training and PGD-attack throughput of the robustness experiment's net (Fig. 2 LeNet, 10 classes, 28×28×1).

    python benchmarks/robustness.py [--restarts 5] [--steps 60] [--batch 128] [--attack-n 1000] [--peak-gflops G]

Training: ``restarts`` vmapped restarts of the Table 1 task (the registry's ``sd``, CE + λ·mean ŷ², SGD momentum, the
``epochs`` sampler; ``supervised.make_task``) on the generic trainer, ``steps`` steps in one compiled chunk (compile timed apart). Attack: L∞ PGD, 10 steps, random
start (the authors' Table 1 attack) on ``attack-n`` images for every restart. Images/s count every restart's images.
The FLOP-based limit is the analytic matmul FLOP count (im2col convolutions and dense layers; training = 3 × the
forward pass, a PGD step = 2 × the forward pass) divided by the float32 matmul peak measured in the same run (best of
a few jit-compiled 2048³ matmuls). The load average is printed beside the timings (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import evaluators, models, optim, supervised, trainer
from gs_jax.experiments import robustness_table


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a jit-compiled ``size³`` matmul on this machine, now (2·size³ FLOPs per call)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def lenet_forward_flops(k: int = 10) -> float:
    """Matmul FLOPs of one forward pass of LeNetFig2 on 28×28×1: conv 5×5 1→12 at 24², conv 5×5 12→32 at 8²,
    dense 512→240→192→k."""
    return 2.0 * (24 * 24 * 25 * 12 + 8 * 8 * 300 * 32 + 512 * 240 + 240 * 192 + 192 * k)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--attack-n", type=int, default=1000)
    ap.add_argument("--peak-gflops", type=float, help="matmul peak (default: measured now)")
    args = ap.parse_args(argv)
    peak = args.peak_gflops or matmul_peak_gflops()
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = (np.arange(n) % 10).astype(np.int32)
    model = models.build("lenet", num_outputs=10)
    spec = supervised.Spec(model, (("sd", ()),), optim.spec(name="sgd", lr=0.05, momentum=0.9),
                           supervised.data_info(y, n_outputs=10), sampler="epochs", batch_size=args.batch,
                           steps_per_epoch=args.steps)  # fmt: skip
    task = supervised.make_task(spec)
    keys = jax.random.split(jax.random.PRNGKey(0), args.restarts)
    algo = supervised.stack([supervised.restart_state(spec, "sd", {"lam": 0.01})] * args.restarts)
    kw = dict(steps=args.steps, data_per_restart=False, init=trainer.Init(algo_state=algo),
              layout=trainer.Layout(max_chunk=args.steps))  # fmt: skip
    t0 = time.perf_counter()
    trainer.train(task, {"x": x, "y": y}, keys, **kw)
    first = time.perf_counter() - t0
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = trainer.train(task, {"x": x, "y": y}, keys, **kw)
    train_s = time.perf_counter() - t0
    train_imgs = args.restarts * args.steps * args.batch

    v = evaluators.variables_of(res.state)
    xa, ya = x[: args.attack_n], y[: args.attack_n]
    pgd = robustness_table.pgd_fn(model, 10, 0.1, (0.0, 1.0), 250)
    jax.block_until_ready(pgd(v, xa, ya, 5 / 255, jax.random.PRNGKey(1)))
    t0 = time.perf_counter()
    jax.block_until_ready(pgd(v, xa, ya, 5 / 255, jax.random.PRNGKey(1)))
    attack_s = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    attack_imgs = args.restarts * len(ya)

    fwd = lenet_forward_flops()
    train_flops, attack_flops = 3 * fwd * train_imgs, (2 * 10 + 2) * fwd * attack_imgs
    rows = [
        ("restarts × steps × batch", f"{args.restarts} × {args.steps} × {args.batch} (vmapped, one chunk)"),
        ("compile + first run (s)", f"{first:.1f}"),
        ("training images/s", f"{train_imgs / train_s:,.0f} ({train_s:.2f} s)"),
        ("training FLOP-based limit (images/s)", f"{peak * 1e9 / (3 * fwd):,.0f}"),
        ("training fraction of peak", f"{train_flops / train_s / 1e9 / peak:.2f}"),
        ("PGD (10 steps) images/s", f"{attack_imgs / attack_s:,.0f} ({attack_s:.2f} s)"),
        ("PGD FLOP-based limit (images/s)", f"{peak * 1e9 / (22 * fwd):,.0f}"),
        ("PGD fraction of peak", f"{attack_flops / attack_s / 1e9 / peak:.2f}"),
        (
            "matmul peak (GFLOP/s)",
            f"{peak:.1f} ({'given' if args.peak_gflops else 'measured now, 2048³ float32'})",
        ),
        ("load average (1 min) before / after", f"{load0:.2f} / {load1:.2f} (shared machine)"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'Robustness (LeNet, Fashion-size) benchmark':<{width}} | value")
    print("-" * width + "-|-" + "-" * 40)
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
