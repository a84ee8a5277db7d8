"""Table 3 analogue: average and worst-group accuracy of ERM, SD, logit adjustment, a threshold shift, Group DRO, JTT
and DFR (``make worst-group``), and the ρ calibration (``make worst-group-calibrate``, variant ``calibrate``, into
runs/worst_group_calibrate); see configs/worst_group.py for the variants and overrides."""

import functools
import sys

from gs_jax import cli, runs
from gs_jax.experiments.worst_group import run_worst_group


def main(argv=None, progress=runs.progress):
    body = functools.partial(run_worst_group, progress=progress)
    return cli.main(
        body,
        experiment="worst_group",
        default_config="configs/worst_group.py",
        argv=argv,
        experiment_of=lambda cfg: "worst_group_calibrate" if cfg.calibration.only else "worst_group",
    )


if __name__ == "__main__":
    sys.exit(main())
