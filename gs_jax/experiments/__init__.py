"""Experiments: one module per experiment, the only place where a config meets data, solvers and outputs.

Each module holds a driver ``run_<name>(cfg, run_dir)`` (called by the thin entry point under ``analysis/`` or
``train/``), the sweeps it runs, the summaries it computes from their rows and the tables it prints.

- ``theorem2``     Theorem 2 (``make theorem2``): the two-feature sweep, its verdict table and the phase map.
- ``primal_dual``  Fig. 5 (``make primal-dual``): primal vs dual trajectories with and without SD.
- ``cmnist``       Colored MNIST, Table 2 and Fig. 3 (``make train-cmnist``).
- ``moons``        two-moons, Fig. 1 (a–d) and the Appendix B grid (``make moons``).
- ``moons_linear`` two-moons, the linearised network against the real one from the same θ₀.
"""
