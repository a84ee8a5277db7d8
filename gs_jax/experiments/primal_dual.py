"""Fig. 5 (``make primal-dual``): primal and dual trajectories of the two-feature problem, with and without SD.

For each s₁, with U from Eq. 15 and S = diag(s₁, s₂): dual gradient ascent (Eq. 9), primal gradient descent with
weight decay (Eq. 5) and with Spectral Decoupling (Eq. 17), pushed to the responses z = (z₁, z₂), next to the
root-solved fixed points of Eq. 9 and Eq. 18 and the primal optima. The vector fields and integrators are
:mod:`gs_jax.dynamics`; the roots and optima :mod:`gs_jax.fixed_points`. This module runs them, checks that the
end points agree, and writes the run (``trajectories.csv``, ``endpoints.csv``, ``endpoints.txt``,
``summary.json``, the figure).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gs_jax import dynamics, precision
from gs_jax import fixed_points as fp
from gs_jax.errors import check
from gs_jax.plotting import theory as plots
from gs_jax.reporting import Column, text_table

PRIMAL_DUAL_COLUMNS = ("s1", "method", "t", "z1", "z2")


# The printed end-point table: header, its layout, and the cell template over the fields of an end-point row.
ENDPOINT_TABLE = (
    Column("s1", ">3", "{s1:3g}"),
    Column("alpha*", ">21", "({alpha1:.6f}, {alpha2:.6f})"),
    Column("z* Eq.9 root", ">19", "({z1_eq9:.5f}, {z2_eq9:.5f})"),
    Column("dual ODE end", ">19", "({z1_dual_end:.5f}, {z2_dual_end:.5f})"),
    Column("primal L2 end", ">19", "({z1_primal_l2_end:.5f}, {z2_primal_l2_end:.5f})"),
    Column("z* Eq.18 root", ">19", "({z1_sd:.5f}, {z2_sd:.5f})"),
    Column("primal SD end", ">19", "({z1_primal_sd_end:.5f}, {z2_primal_sd_end:.5f})"),
    Column("max gap", ">8", "{max_gap:8.1e}"),
)


def primal_dual_curves(delta, s1_values, s2, lam, sd_lam, alpha0, dual_ts, primal_ts) -> list[dict]:
    """Trajectories of z = (z₁, z₂) for each s₁: dual ascent (Eq. 9), primal GD with weight decay (Eq. 5) and
    primal GD with SD (Eq. 17, coefficient ``sd_lam``), plus the root-solved fixed points of Eq. 9 and Eq. 18.

    ``U`` from Eq. 15 with coupling ``delta``, ``S = diag(s₁, s₂)``, labels all +1 (SPEC §3), θ₀ = 0,
    α₀ = ``alpha0``·1. Returns one dict per s₁ with arrays of shape (T, 2).
    """
    U = dynamics.coupling_matrix(delta)
    y = jnp.ones(2)
    curves = []
    for s1 in s1_values:
        s_sq = jnp.array([s1**2, s2**2], dtype=U.dtype)
        Phi = dynamics.ntrf(U, s_sq)
        dual = dynamics.integrate_dual("eq9", jnp.full(2, alpha0), U, s_sq, lam, dual_ts)
        l2 = dynamics.integrate_primal("l2", jnp.zeros(2), Phi, y, lam, primal_ts)
        sd = dynamics.integrate_primal("sd", jnp.zeros(2), Phi, y, sd_lam, primal_ts)
        to_z = jax.vmap(lambda th, Phi=Phi: dynamics.primal_to_z(th, Phi, y, U))
        alpha9 = fp.fixed_point("eq9", U, s_sq, lam)
        alpha_sd = fp.fixed_point("sd", U, s_sq, sd_lam)
        curves.append(
            dict(
                s1=float(s1),
                dual_t=np.asarray(dual.ts),
                primal_t=np.asarray(l2.ts),
                dual=np.asarray(
                    jax.vmap(lambda a, s_sq=s_sq: dynamics.dual_to_z("eq9", a, U, s_sq, lam))(dual.states)
                ),
                primal_l2=np.asarray(to_z(l2.states)),
                primal_sd=np.asarray(to_z(sd.states)),
                alpha_eq9=np.asarray(alpha9),
                z_eq9=np.asarray(dynamics.dual_to_z("eq9", alpha9, U, s_sq, lam)),
                z_sd=np.asarray(dynamics.dual_to_z("sd", alpha_sd, U, s_sq, sd_lam)),
                z_primal_l2_opt=np.asarray(
                    dynamics.primal_to_z(fp.primal_optimum("l2", Phi, y, lam), Phi, y, U)
                ),
                z_primal_sd_opt=np.asarray(
                    dynamics.primal_to_z(fp.primal_optimum("sd", Phi, y, sd_lam), Phi, y, U)
                ),
            )
        )
    return curves


def primal_dual_endpoints(curves) -> list[dict]:
    """Per s₁: end points of the three flows next to the root-solved fixed points, and their largest gaps."""
    rows = []
    for c in curves:
        rows.append(
            dict(
                s1=c["s1"],
                alpha1=c["alpha_eq9"][0],
                alpha2=c["alpha_eq9"][1],
                z1_eq9=c["z_eq9"][0],
                z2_eq9=c["z_eq9"][1],
                z1_dual_end=c["dual"][-1, 0],
                z2_dual_end=c["dual"][-1, 1],
                z1_primal_l2_end=c["primal_l2"][-1, 0],
                z2_primal_l2_end=c["primal_l2"][-1, 1],
                z1_sd=c["z_sd"][0],
                z2_sd=c["z_sd"][1],
                z1_primal_sd_end=c["primal_sd"][-1, 0],
                z2_primal_sd_end=c["primal_sd"][-1, 1],
                gap_dual_ode=float(np.max(np.abs(c["dual"][-1] - c["z_eq9"]))),
                gap_primal_l2_ode=float(np.max(np.abs(c["primal_l2"][-1] - c["z_eq9"]))),
                gap_primal_l2_opt=float(np.max(np.abs(c["z_primal_l2_opt"] - c["z_eq9"]))),
                gap_primal_sd_ode=float(np.max(np.abs(c["primal_sd"][-1] - c["z_sd"]))),
                gap_primal_sd_opt=float(np.max(np.abs(c["z_primal_sd_opt"] - c["z_sd"]))),
            )
        )
    return rows


def _max_gap(row) -> float:
    return max(row[k] for k in row if k.startswith("gap_"))


def format_endpoints(rows) -> str:
    """The printed end-point table, one line per s₁ of :func:`primal_dual_endpoints`, with its largest gap."""
    return text_table([dict(r, max_gap=_max_gap(r)) for r in rows], ENDPOINT_TABLE)


def run_primal_dual(cfg, run_dir):
    """``make primal-dual``: Fig. 5 trajectories, end-point table (printed), trajectories.csv, endpoints.csv,
    summary.json and the figure. Raises GsJaxError if primal and dual end points differ by more than ``cfg.tol``."""
    precision.enable_x64()
    check(0 <= cfg.delta < 1, "delta must lie in [0, 1) (Eq. 15)")
    check(cfg.C > 0 and cfg.sd_lam > 0, "C and sd_lam must be > 0")
    check(0 < cfg.alpha0 < 1, "alpha0 must lie in (0, 1)")
    lam = 1.0 / cfg.C
    dual_ts = np.concatenate([[0.0], np.logspace(-9, np.log10(cfg.t_dual), cfg.n_times)])
    primal_ts = np.concatenate([[0.0], np.logspace(-3, np.log10(cfg.t_primal), cfg.n_times)])
    t0 = time.perf_counter()
    curves = primal_dual_curves(
        cfg.delta, tuple(cfg.s1_values), cfg.s2, lam, cfg.sd_lam, cfg.alpha0, dual_ts, primal_ts
    )
    seconds = time.perf_counter() - t0
    traj_rows = []
    for c in curves:
        for method, key, ts in (
            ("dual", "dual", c["dual_t"]),
            ("primal_l2", "primal_l2", c["primal_t"]),
            ("primal_sd", "primal_sd", c["primal_t"]),
        ):
            traj_rows += [
                dict(s1=c["s1"], method=method, t=t, z1=z[0], z2=z[1])
                for t, z in zip(ts, c[key], strict=True)
            ]
    run_dir.write_csv("trajectories.csv", traj_rows, PRIMAL_DUAL_COLUMNS)
    ends = primal_dual_endpoints(curves)
    run_dir.write_csv("endpoints.csv", ends)
    table = format_endpoints(ends)
    print(
        f"Primal vs dual (Fig. 5): delta={cfg.delta:g}, s2={cfg.s2:g}, lambda=1/C={lam:g}, SD lambda={cfg.sd_lam:g}"
    )
    print(table)
    run_dir.write_text("endpoints.txt", table + "\n")
    fig = plots.primal_dual_figure(curves)
    run_dir.save_figure(fig, "primal_dual")
    plt.close(fig)
    max_gap = max(_max_gap(r) for r in ends)
    summary = dict(endpoints=ends, max_gap=max_gap, seconds=seconds, lam=lam, sd_lam=cfg.sd_lam)
    run_dir.write_summary(summary)
    check(
        max_gap <= cfg.tol,
        f"primal and dual end points differ by {max_gap:.3g} > tol {cfg.tol:g}; raise t_primal / t_dual",
    )
    return summary


__all__ = [
    "PRIMAL_DUAL_COLUMNS",
    "primal_dual_curves",
    "primal_dual_endpoints",
    "format_endpoints",
    "run_primal_dual",
]
