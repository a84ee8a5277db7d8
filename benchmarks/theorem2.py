"""Wall time of the Theorem 2 default sweep and phase map, against the authors' way of finding a fixed point.

    .venv/bin/python benchmarks/theorem2.py [--quick]

Rows:
* sweep (first call) / sweep (warm): ``theorem2_sweep`` on configs/theorem2.py's default grid (Eq. 10, Eq. 9, SD;
  4 δ × 200 s₁²): Newton roots, implicit dz₂*/ds₁², a 5-point finite difference (4 more roots) and Lemma 1. The
  first call includes jit compilation; the process starts cold, so this is the "whole default sweep" figure.
* phase map (first call / warm): the default phase map (Eq. 10 and Eq. 9, 100 δ × 117 ratios × 3 λ).
* baseline: the authors' procedure (toy_fig_6.py) — 5,000 plain gradient-ascent steps on α with a clip to
  [0, 1] — for z₂ and a central difference (3 solves per point) on the Eq. 9 part of the sweep, (a) as a Python
  loop of numpy steps per point (the authors' structure; timed on a subset and extrapolated) and (b) jitted and
  vmapped over all points (a fair modern baseline). Its step size is set for stability, 1/(max curvature).
The error column is the largest |z₂| difference to the Newton root over the timed points.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import dynamics, precision
from gs_jax import fixed_points as fp
from gs_jax.experiments import theorem2

precision.enable_x64()

STEPS = 5000  # toy_fig_6.py: 5000 SGD steps on the dual


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - t0, out


def _grid(n_points, deltas, s2_sq=2.0):
    s1 = np.linspace(s2_sq, 30 * s2_sq, n_points)
    d = np.repeat(np.asarray(deltas, float), s1.size)
    return d, np.tile(s1, len(deltas))


def _ascent_numpy(K, lam, lr):
    a = np.full(2, 1e-8)
    for _ in range(STEPS):
        a = np.clip(a + lr * (np.log1p(-a) - np.log(a) - K @ a / lam), 1e-12, 1 - 1e-12)
    return a


def _ascent_jax(delta, s1_sq, s2_sq, lam, lr):
    U = dynamics.coupling_matrix(delta)
    s = jnp.stack([s1_sq, s2_sq])
    a = jax.lax.fori_loop(
        0,
        STEPS,
        lambda _, a: jnp.clip(a + lr * dynamics.eq9_field(a, U, s, lam), 1e-12, 1 - 1e-12),
        jnp.full(2, 1e-8),
    )
    return dynamics.dual_to_z("eq9", a, U, s, lam)[1]


def _lr(s1_sq, lam, s2_sq=2.0):
    # curvature of Eq. 8 at α*: 1/(α(1−α)) + λ⁻¹‖K‖ ≤ 1/α_min + (s₁² + s₂²)/λ; α_min from the decoupled root
    a_min = float(fp.decoupled_alpha(s1_sq / lam + 1.0))
    return 1.0 / (1.0 / a_min + (s1_sq + s2_sq) / lam)


def main(argv=None):
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    n_points = 40 if quick else 200
    deltas = (0.0, 0.1, 0.25, 0.5)
    s1 = np.linspace(2.0, 60.0, n_points)
    rows = []

    t, sweep = _timed(lambda: theorem2.theorem2_sweep(("eq10", "eq9", "sd"), deltas, s1, 2.0, 1.0))
    rows.append(("sweep, first call (incl. compile)", t, len(sweep), None))
    t, _ = _timed(lambda: theorem2.theorem2_sweep(("eq10", "eq9", "sd"), deltas, s1, 2.0, 1.0))
    rows.append(("sweep, warm", t, len(sweep), None))

    nd, nr = (20, 20) if quick else (100, 117)
    pd, pr = np.linspace(0, 0.99, nd), np.linspace(1, 30, nr)
    t, pm = _timed(lambda: theorem2.phase_map(("eq10", "eq9"), pd, pr, (0.1, 1.0, 10.0), 2.0))
    rows.append(("phase map, first call", t, len(pm), None))
    t, _ = _timed(lambda: theorem2.phase_map(("eq10", "eq9"), pd, pr, (0.1, 1.0, 10.0), 2.0))
    rows.append(("phase map, warm", t, len(pm), None))

    # Baselines on the Eq. 9 part of the sweep: z₂ plus a central difference = 3 solves per point.
    d, s1g = _grid(n_points, deltas)
    ref = {(r["delta"], r["s1_sq"]): r["z2"] for r in sweep if r["equation"] == "eq9"}
    lr = min(_lr(float(s1g.max()) * 1.001, 1.0), 0.05)
    subset = np.linspace(0, d.size - 1, 8 if quick else 12).astype(int)

    def numpy_loop():
        out = []
        for i in subset:
            for k in (-1.0, 0.0, 1.0):
                s = np.array([s1g[i] * (1 + 1e-4 * k), 2.0])
                U = np.asarray(dynamics.coupling_matrix(d[i]))
                a = _ascent_numpy((U * s) @ U.T, 1.0, lr)
                if k == 0.0:
                    out.append(s[1] * (U.T @ a)[1])
        return np.array(out)

    t, z_np = _timed(numpy_loop)
    err_np = np.max(np.abs(z_np - np.array([ref[(d[i], s1g[i])] for i in subset])))
    rows.append(
        (
            f"baseline numpy loop, {subset.size} pts -> {d.size} extrapolated",
            t * d.size / subset.size,
            d.size,
            err_np,
        )
    )

    run = jax.jit(jax.vmap(_ascent_jax, in_axes=(0, 0, None, None, None)))
    pts_d = np.concatenate([d, d, d])
    pts_s = np.concatenate([s1g * (1 - 1e-4), s1g, s1g * (1 + 1e-4)])
    t, z_jax = _timed(lambda: run(pts_d, pts_s, 2.0, 1.0, lr))
    z_mid = np.asarray(z_jax)[d.size : 2 * d.size]
    err_jax = np.max(np.abs(z_mid - np.array([ref[(a, b)] for a, b in zip(d, s1g, strict=True)])))
    rows.append(("baseline jit+vmap gradient ascent, first call", t, d.size, err_jax))

    load = os.getloadavg()
    print(
        f"Theorem 2 benchmark ({'quick' if quick else 'default'} sizes), CPU devices: {jax.device_count()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine: timings are inflated by load)"
    )
    print(f"{'what':55} {'seconds':>9} {'points':>8} {'max |z2 - root|':>16}")
    for name, t, n, err in rows:
        print(f"{name:55} {t:9.2f} {n:8d} {('-' if err is None else f'{err:.2e}'):>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
