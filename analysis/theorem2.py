"""Theorem 2 verified numerically (``make theorem2``); see configs/theorem2.py for variants and overrides."""

import sys

from gs_jax import cli, precision
from gs_jax.experiments.theorem2 import run_theorem2


def main(argv=None):
    precision.enable_x64()
    return cli.main(
        run_theorem2, experiment="theorem2", default_config="configs/theorem2.py", argv=argv, resumable=False
    )


if __name__ == "__main__":
    sys.exit(main())
