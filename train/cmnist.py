"""Colored MNIST Table 2 and Fig. 3 (``make train-cmnist``); see configs/cmnist.py for variants and overrides."""

import sys

from gs_jax import cli
from gs_jax.experiments.cmnist import run_cmnist


def main(argv=None):
    return cli.main(run_cmnist, experiment="cmnist", default_config="configs/cmnist.py", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
