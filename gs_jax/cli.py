"""The shared shape of every entry point: parse the command line, open a run directory, call one function.

    def run(cfg, run_dir): ...                      # the experiment, in the library
    if __name__ == "__main__":
        sys.exit(cli.main(run, experiment="theorem2", default_config="configs/theorem2.py"))

A :class:`GsJaxError` anywhere becomes one line on stderr and exit status 2; Ctrl-C one line saying where a
``--resume`` continues (exit status 130). Files already written stay; a run folder that holds nothing but its
config (a run refused or failed before it wrote anything) is removed whatever the exception.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax

from gs_jax import runs
from gs_jax.config import ConfigDict, parse_cli
from gs_jax.errors import GsJaxError, Interrupted


def main(
    body: Callable[[ConfigDict, runs.RunDir], Any],
    *,
    experiment: str,
    default_config: str,
    argv: Sequence[str] | None = None,
    experiment_of: Callable[[ConfigDict], str] | None = None,
    resumable: bool = True,
) -> int:
    """Run ``body(config, run_dir)`` for the command line ``argv``; return the process exit status.

    ``experiment_of(config)``, when given, names the ``runs/<experiment>/`` folder from the resolved config (one
    entry point, two kinds of output); ``experiment`` still prefixes messages. ``resumable=False``: the
    experiment writes no checkpoints, and ``--resume`` is refused in one line.
    """
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        resume = (
            " --resume NAME (continue an interrupted run from its checkpoints, same config)"
            if resumable
            else ""
        )
        print(
            f"{experiment}: --config {default_config}[:variant] --config.KEY=VALUE --name NAME --runs-dir DIR{resume}"
        )
        return 0
    run_dir = None
    if os.environ.get("GS_DISTRIBUTED"):
        # a multi-host run: every process calls this first (coordinator, process count and id from the
        # environment, as jax documents); the trainer then lays restarts over all hosts' devices
        jax.distributed.initialize()
    try:
        invocation = parse_cli(argv, default_config)
        folder = experiment_of(invocation.config) if experiment_of else experiment
        if invocation.resume:
            if not resumable:
                raise GsJaxError(
                    f"--resume: {experiment} writes no checkpoints (it is quick); run it again instead"
                )
            run_dir = runs.reopen(folder, invocation.resume, root=invocation.runs_root)
            saved = json.loads(run_dir.file("config.json").read_text())
            if saved != runs.to_jsonable(invocation.config):
                run_dir = None
                raise GsJaxError(
                    f"--resume {invocation.resume}: the config differs from the one the run was started with; "
                    "pass the same --config and overrides as then"
                )
        else:
            run_dir = runs.create(
                folder, invocation.config, name=invocation.run_name, root=invocation.runs_root
            )
        body(invocation.config, run_dir)
    except GsJaxError as err:
        # ``latest`` still names the last completed run
        print(f"{experiment}: error: {err}{_discard(run_dir)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        where = (
            f" at step {err.step}" + (f" of {err.what}" if err.what else "")
            if isinstance(err, Interrupted)
            else ""
        )
        if run_dir is None or run_dir.discard_if_empty():
            print(f"{experiment}: interrupted{where}; nothing was written", file=sys.stderr)
        elif not resumable:
            print(f"{experiment}: interrupted{where}; partial output in {run_dir.path}", file=sys.stderr)
        else:
            print(
                f"{experiment}: interrupted{where}; continue with `--resume {run_dir.path.name}`",
                file=sys.stderr,
            )
        return 130
    except BaseException:
        _discard(run_dir)
        raise
    run_dir.complete()
    return 0


def _discard(run_dir: runs.RunDir | None) -> str:
    """Remove the run folder if nothing but its config was written; else say where the partial output is."""
    if run_dir is None or run_dir.resumed or run_dir.discard_if_empty():
        return ""
    return f" (partial output kept in {run_dir.path}; runs/.../latest unchanged)"
