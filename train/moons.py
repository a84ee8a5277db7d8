"""Two-moons Fig. 1 (a-d), the Appendix B grid and their margins (``make moons``); see configs/moons.py."""

import sys

from gs_jax import cli
from gs_jax.training import run_moons


def main(argv=None):
    return cli.main(run_moons, experiment="moons", default_config="configs/moons.py", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
