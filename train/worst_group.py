"""Table 3 analogue: average and worst-group accuracy of ERM, SD, Group DRO, JTT and DFR (``make worst-group``); see
configs/worst_group.py for the variants (dominoes default, CelebA) and overrides."""

import functools
import sys

from gs_jax import cli, runs
from gs_jax.experiments.worst_group import run_worst_group


def main(argv=None):
    body = functools.partial(run_worst_group, progress=runs.progress)
    return cli.main(body, experiment="worst_group", default_config="configs/worst_group.py", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
