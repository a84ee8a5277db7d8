"""Table 1 and Fig. 2 analogues: clean/PGD accuracy and margin CDF, ERM vs SD (``make robustness``); see
configs/robustness.py for the variants (Fashion-MNIST default, CIFAR-2/10/100 protocols) and overrides.
``--resume NAME`` continues an interrupted run from its checkpoints."""

import functools
import sys

from gs_jax import cli, runs
from gs_jax.experiments.robustness import run_robustness


def main(argv=None, progress=runs.progress):
    body = functools.partial(run_robustness, progress=progress)
    return cli.main(body, experiment="robustness", default_config="configs/robustness.py", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
