"""The ``gs-jax`` command (also ``python -m gs_jax``): experiment name → its run function and default config.

    gs-jax theorem2                                   # the shipped default config, runs/theorem2/<run-name>/
    gs-jax theorem2:small                             # a variant of the default config
    gs-jax cmnist --config.methods=erm,sd --name try1 # any flag of the entry points (gs_jax.cli)

A thin mapping onto the same functions the ``train/`` and ``analysis/`` scripts and the make targets call; the run
itself is :func:`gs_jax.cli.main`. Configs are found in ``configs/`` of the working directory, else of the checkout
gs-jax is installed from, else the copies shipped in the package (:func:`gs_jax.config.load_config`).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from gs_jax.errors import GsJaxError


class Command(NamedTuple):
    """One experiment: ``module.function(cfg, run_dir)`` with ``configs/<config>.py`` as its default."""

    module: str  # gs_jax.experiments.<module>
    function: str  # its run function
    config: str  # configs/<config>.py
    summary: str  # one line for --help
    data: str = ""  # what must be installed first, if anything
    theory: bool = False  # float64 (precision.enable_x64) before anything runs
    progress: bool = False  # pass runs.progress for progress bars


_FASHION = (
    "Fashion-MNIST (make data-fashion, or python -m gs_jax.data.mnist download DIR --dataset fashion-mnist "
    "and --config.data.dir=DIR)"
)

COMMANDS: dict[str, Command] = {
    "theorem2": Command("theorem2", "run_theorem2", "theorem2", "Theorem 2 sweep and phase map", theory=True),
    "primal-dual": Command(
        "primal_dual", "run_primal_dual", "primal_dual", "Fig. 5: primal vs dual trajectories", theory=True
    ),
    "cmnist": Command("cmnist", "run_cmnist", "cmnist", "Colored MNIST, Table 2 and Fig. 3"),
    "moons": Command(
        "moons", "run_moons", "moons", "two-moons Fig. 1 and Appendix B (:linear: the linearised study)"
    ),
    "robustness": Command(
        "robustness",
        "run_robustness",
        "robustness",
        "Table 1 and Fig. 2 analogues on Fashion-MNIST (CIFAR variants)",
        data=f"{_FASHION}; CIFAR variants: the CIFAR files (make data-cifar)",
        progress=True,
    ),
    "worst-group": Command(
        "worst_group",
        "run_worst_group",
        "worst_group",
        "Table 3 analogue: average and worst-group accuracy (dominoes; CelebA variants)",
        data=f"{_FASHION}; CelebA variants: the CelebA files (make data-celeba)",
        progress=True,
    ),
    "starvation": Command(
        "starvation", "run_starvation", "starvation", "the starvation monitor on Colored MNIST", progress=True
    ),
}


def _body(cmd: Command) -> Callable:
    """The run function, imported only when the command runs (``gs-jax --help`` stays fast)."""
    fn = getattr(importlib.import_module(f"gs_jax.experiments.{cmd.module}"), cmd.function)
    if cmd.module == "moons":  # as train/moons.py: the ``:linear`` study is the moons entry point's too
        from gs_jax.experiments.moons_linear import run_moons_linear

        fn = functools.partial(fn, linear_study=run_moons_linear)
    if cmd.progress:
        from gs_jax import runs

        fn = functools.partial(fn, progress=runs.progress)
    return fn


def _moons_folder(cfg) -> str:
    """As train/moons.py: the linearised study alone (``:linear``, no cases) writes runs/moons_linear/."""
    return "moons" if cfg.run else "moons_linear"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: gs-jax EXPERIMENT[:VARIANT] [--config configs/X.py[:variant]] [--config.KEY=VALUE ...] "
        "[--name RUN_NAME] [--runs-dir DIR] [--resume RUN_NAME]",
        "",
        "Runs one experiment with its default config (configs/<experiment>.py, shipped with the package) and writes",
        "runs/<experiment>/<run-name>/ under the working directory. Every experiment has a ':small' variant that runs",
        "in seconds to minutes on a CPU. Experiments:",
    ]
    for name, cmd in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {cmd.summary} [configs/{cmd.config}.py]")
        if cmd.data:
            lines.append(f"  {'':<{width}}  needs {cmd.data}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gs-jax EXPERIMENT[:VARIANT] [flags]``; return the exit status (2 with one line on a usage error)."""
    from gs_jax import cli, precision

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, _, variant = argv[0].partition(":")
    cmd = COMMANDS.get(name) or COMMANDS.get(name.replace("_", "-"))
    try:
        if cmd is None:
            raise GsJaxError(
                f"unknown experiment {name!r}; choose from {', '.join(COMMANDS)} (gs-jax --help)"
            )
        if variant and any(a == "--config" or a.startswith("--config=") for a in argv[1:]):
            raise GsJaxError(f"give the variant once: '{argv[0]}' or --config, not both")
    except GsJaxError as err:
        print(f"gs-jax: error: {err}", file=sys.stderr)
        return 2
    default_config = f"configs/{cmd.config}.py" + (f":{variant}" if variant else "")
    if cmd.theory:
        precision.enable_x64()
    return cli.main(
        _body(cmd),
        experiment=cmd.module,
        default_config=default_config,
        argv=argv[1:],
        experiment_of=_moons_folder if cmd.module == "moons" else None,
    )
