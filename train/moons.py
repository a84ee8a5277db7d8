"""Two-moons Fig. 1 (a-d), the Appendix B grid and their margins (``make moons``); see configs/moons.py."""

import functools
import sys

from gs_jax import cli
from gs_jax.experiments.moons import run_moons
from gs_jax.experiments.moons_linear import run_moons_linear


def experiment_of(cfg) -> str:
    """The linearised-vs-real study alone (``:linear``, no cases) goes to runs/moons_linear/, so that
    runs/moons/latest stays the run with the figures and ``cases``."""
    return "moons" if cfg.run else "moons_linear"


def main(argv=None):
    return cli.main(
        functools.partial(run_moons, linear_study=run_moons_linear),
        experiment="moons",
        default_config="configs/moons.py",
        argv=argv,
        experiment_of=experiment_of,
    )


if __name__ == "__main__":
    sys.exit(main())
