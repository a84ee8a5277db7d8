"""Gradient starvation on a real network: feature responses of ERM vs SD and Theorem 2 measured against Eq. 9
(``make starvation``); see configs/starvation.py."""

import functools
import sys

from gs_jax import cli, runs
from gs_jax.experiments.starvation import run_starvation


def main(argv=None):
    body = functools.partial(run_starvation, progress=runs.progress)
    return cli.main(body, experiment="starvation", default_config="configs/starvation.py", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
