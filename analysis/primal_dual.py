"""Primal vs dual trajectories, Fig. 5 (``make primal-dual``); see configs/primal_dual.py for variants."""

import sys

from gs_jax import cli, precision
from gs_jax.experiments.primal_dual import run_primal_dual


def main(argv=None):
    precision.enable_x64()
    return cli.main(
        run_primal_dual,
        experiment="primal_dual",
        default_config="configs/primal_dual.py",
        argv=argv,
        resumable=False,
    )


if __name__ == "__main__":
    sys.exit(main())
