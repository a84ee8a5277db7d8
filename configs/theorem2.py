"""Theorem 2 (Section 3.3): dz₂*/ds₁² < 0 for the two-feature coupling of Eq. 15, plus SD (Eq. 18) and a phase map.

Command:   make theorem2
           make theorem2 ARGS="--config configs/theorem2.py:no_phase"
           make theorem2 ARGS="--config.lam=0.1 --config.n_points=400"
Variants:  no_phase (the default sweep only), small (tiny sizes for tests).
Expected:  dz₂*/ds₁² < 0 on every s₁² > s₂² for δ ∈ {0.1, 0.25, 0.5} (Eq. 9 and Eq. 10), exactly 0 at δ = 0 and for
           SD at every δ; implicit derivatives equal 5-point central differences to ~1e-10 relative.
           Phase map: dz₂*/ds₁² < 0 fails exactly where z₂* < 0, i.e. δ > 1/√2, for every λ and s₁²/s₂² tried.
"""

import ml_collections

VARIANTS = ("default", "no_phase", "small")


def get_config(arg=None):
    cfg = ml_collections.ConfigDict()
    cfg.equations = ("eq10", "eq9", "sd")  # issue #4: Eq. 10 and Eq. 9, plus SD (Eq. 18)
    cfg.s2_sq = (
        2.0  # issue #4 default sweep: s₂² = 2 (not a paper number; the paper gives no numbers for Thm. 2)
    )
    cfg.lam = 1.0  # issue #4 default sweep: λ = 1
    cfg.deltas = (0.0, 0.1, 0.25, 0.5)  # issue #4: δ ∈ {0, 0.1, 0.25, 0.5}; δ is the coupling of Eq. 15
    cfg.ratio_max = 30.0  # issue #4: s₁² from s₂² to 30·s₂²
    cfg.n_points = 200  # issue #4: at least 200 points
    cfg.fd_rel = 1e-3  # 5-point central difference step, relative to s₁² (truncation error O(h⁴) ≈ 1e-12)

    cfg.phase = ml_collections.ConfigDict()
    cfg.phase.enabled = True  # issue #4, "beyond the paper": the phase map
    cfg.phase.equations = ("eq10", "eq9")
    cfg.phase.n_delta = 100  # δ ∈ [0, 0.99] (issue #4)
    cfg.phase.delta_max = 0.99
    cfg.phase.n_ratio = 117  # s₁²/s₂² ∈ [1, 30] (issue #4), steps of 0.25
    cfg.phase.lams = (0.1, 1.0, 10.0)  # issue #4: λ ∈ {0.1, 1, 10}

    if arg in (None, "", "default"):
        pass
    elif arg == "no_phase":
        cfg.phase.enabled = False
    elif arg == "small":
        cfg.deltas = (0.0, 0.25)
        cfg.n_points = 12
        cfg.phase.n_delta = 6
        cfg.phase.n_ratio = 5
        cfg.phase.lams = (1.0,)
    else:
        raise ValueError(f"unknown variant {arg!r}; choose from {VARIANTS}")
    return cfg
