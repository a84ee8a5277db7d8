"""Primal vs dual dynamics, Fig. 5 of the paper (authors' Figure_6/toy_fig_6.py; SPEC §3).

Command:   make primal-dual
           make primal-dual ARGS="--config configs/primal_dual.py:same_lambda"
Variants:  same_lambda (SD with the same λ as weight decay, the paper's notation), small (tiny sizes for tests).
Expected:  dual (Eq. 9), primal weight decay (Eq. 5) and the Eq. 9 root agree to < 1e-6 in z; z₂* falls as s₁ grows
           (6.1204, 1.6400) at s₁ = 2 → (9.0710, 1.1853) at s₁ = 6; primal SD (Eq. 17) ends at the Eq. 18 root,
           z = ŷ*·Uᵀ1 ≈ (6.3726, 1.7075) for every s₁.
"""

import ml_collections

VARIANTS = ("default", "same_lambda", "small")


def get_config(arg=None):
    cfg = ml_collections.ConfigDict()
    cfg.delta = 0.5  # toy_fig_6.py: s overwritten with 0.5 → U of Eq. 15 with δ = 0.5 (SPEC §3)
    cfg.s1_values = (2.0, 3.0, 4.0, 5.0, 6.0)  # toy_fig_6.py loop variable l ∈ {2..6}
    cfg.s2 = 2.0  # toy_fig_6.py: S = diag(s1, 2)
    cfg.C = 100.0  # toy_fig_6.py: C = 100, λ = 1/C
    cfg.sd_lam = 0.002  # toy_fig_6.py SD term (0.1/C)·Σŷ² = (λ_SD/2)‖ŷ‖² with λ_SD = 0.002 (SPEC §3, §6.11)
    cfg.alpha0 = 1e-8  # toy_fig_6.py: α initialised to 1e-8·[1, 1]
    cfg.t_dual = 10.0  # flow time (η = 1); the dual relaxes at rate ≥ 1/α* ≈ 100, so t = 10 is converged
    cfg.t_primal = (
        1e4  # flow time; the primal relaxes at rate ~ λ = 0.01 (authors: lr 0.05 × 5000 steps = 250)
    )
    cfg.n_times = 300  # saved time points per trajectory (log-spaced)
    cfg.tol = 1e-6  # largest allowed |z| gap between primal and dual end points / roots

    if arg in (None, "", "default"):
        pass
    elif arg == "same_lambda":
        cfg.sd_lam = 0.01  # paper notation: the same λ in Eq. 5 and Eq. 17
    elif arg == "small":
        cfg.s1_values = (2.0, 4.0)
        cfg.n_times = 20
    else:
        raise ValueError(f"unknown variant {arg!r}; choose from {VARIANTS}")
    return cfg
