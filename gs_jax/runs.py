"""Run directories: ``runs/<experiment>/<name>/`` with the resolved config, metrics, summary and figures.

Every entry point writes through this module, so every run looks the same on disk::

    runs/<experiment>/<name>/config.json      the resolved config (after overrides)
    runs/<experiment>/<name>/metrics.jsonl    one JSON record per logged step
    runs/<experiment>/<name>/summary.json     the final numbers other tools read
    runs/<experiment>/<name>/<figure>.png/.pdf
    runs/<experiment>/latest -> <name>        stable path to the newest *completed* run

A run directory is never overwritten: a name that exists gets a ``-1``, ``-2``, ... suffix. ``latest`` moves only
when a run completes (``RunDir.complete()``, which ``gs_jax.cli`` calls after the body returns), so a run that is in
progress, or failed, or was interrupted never hides the last good results from the tools that read ``latest``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/jax scalars and arrays, ConfigDicts, paths and tuples to plain JSON; NaN/inf become null."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):  # ml_collections.ConfigDict
        return to_jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if hasattr(obj, "__array__"):
        arr = np.asarray(obj)
        return to_jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
    return obj


@dataclasses.dataclass(frozen=True)
class RunDir:
    """One run's output directory and the writers for it."""

    path: Path
    experiment: str
    resumed: bool = False  # opened by `--resume NAME`: trainers continue from the checkpoints under it
    # metrics.jsonl lines already written before a resume: a resumed run recomputes (bit for bit) what the killed
    # one logged after its last checkpoint, and those lines are not written twice
    logged: set = dataclasses.field(default_factory=set, compare=False, repr=False)

    def file(self, name: str) -> Path:
        return self.path / name

    def complete(self) -> None:
        """Mark the run finished: point ``<experiment>/latest`` at it."""
        _point_latest(self.path.parent, self.path.name)

    def discard_if_empty(self) -> bool:
        """Remove the directory if it holds nothing but ``config.json`` (a run refused before it wrote anything);
        return whether it was removed."""
        if {p.name for p in self.path.iterdir()} <= {"config.json"}:
            for p in self.path.iterdir():
                p.unlink()
            self.path.rmdir()
            return True
        return False

    def write_json(self, name: str, obj: Any) -> Path:
        target = self.file(name)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, target)
        return target

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        return self.write_json("summary.json", summary)

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one record to ``metrics.jsonl`` (in a resumed run, unless the killed run already wrote it)."""
        line = json.dumps(to_jsonable(record), allow_nan=False)
        if line in self.logged:
            return
        with self.file("metrics.jsonl").open("a") as fh:
            fh.write(line + "\n")

    def write_csv(
        self, name: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> Path:
        """Write dict rows as CSV; ``None``/NaN are written as empty cells."""
        columns = list(columns or (rows[0].keys() if rows else []))
        target = self.file(name)
        with target.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
        return target

    def write_text(self, name: str, text: str) -> Path:
        target = self.file(name)
        target.write_text(text)
        return target

    def save_figure(self, fig: Any, stem: str, dpi: int = 150) -> list[Path]:
        """Save a matplotlib figure as ``<stem>.png`` and ``<stem>.pdf``, then close it (frees its memory)."""
        import matplotlib.pyplot as plt  # the figure's own backend is already loaded; this only closes it

        paths = [self.file(f"{stem}.png"), self.file(f"{stem}.pdf")]
        try:
            fig.savefig(paths[0], dpi=dpi, bbox_inches="tight")
            fig.savefig(paths[1], bbox_inches="tight")
        finally:
            plt.close(fig)
        return paths


def _csv_cell(value: Any) -> Any:
    value = to_jsonable(value)
    return "" if value is None else value


def create(
    experiment: str,
    config: Any = None,
    *,
    name: str | None = None,
    root: str | Path = "runs",
    quiet: bool = False,
) -> RunDir:
    """Create ``<root>/<experiment>/<name>/`` (timestamped by default) and write ``config.json``.

    ``latest`` is left alone until ``RunDir.complete()``.
    """
    base = Path(root) / experiment
    base.mkdir(parents=True, exist_ok=True)
    stem = name or time.strftime("%Y%m%d-%H%M%S")
    path, k = base / stem, 0
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            k += 1
            path = base / f"{stem}-{k}"
    run = RunDir(path=path, experiment=experiment)
    if config is not None:
        run.write_json("config.json", config)
    if not quiet:
        print(f"[gs-jax] {experiment}: writing to {path}", file=sys.stderr)
    return run


def reopen(experiment: str, name: str, *, root: str | Path = "runs", quiet: bool = False) -> RunDir:
    """Open the existing run ``<root>/<experiment>/<name>/`` to continue it (``--resume NAME``)."""
    from gs_jax.errors import GsJaxError

    path = Path(root) / experiment / name
    if not (path / "config.json").is_file():
        have = sorted(p.name for p in (Path(root) / experiment).glob("*") if (p / "config.json").is_file())
        raise GsJaxError(
            f"cannot resume '{path}': no such run (runs with a config.json: {', '.join(have[-5:]) or 'none'})"
        )
    if not quiet:
        print(f"[gs-jax] {experiment}: resuming {path}", file=sys.stderr)
    logged: set[str] = set()
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        text = metrics.read_text()
        lines = text.split("\n")
        complete = lines[:-1]  # a line cut by the kill has no newline yet: drop it
        if lines[-1]:
            metrics.write_text("".join(f"{line}\n" for line in complete))
        logged = set(complete)
    return RunDir(path=path, experiment=experiment, resumed=True, logged=logged)


def _point_latest(base: Path, target: str) -> None:
    link, tmp = base / "latest", base / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def latest(experiment: str, root: str | Path = "runs") -> Path:
    """The stable path ``<root>/<experiment>/latest`` (resolved): the newest completed run."""
    return (Path(root) / experiment / "latest").resolve()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``metrics.jsonl`` file back."""
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def progress(
    iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None, **kw: Any
):
    """A tqdm progress bar on stderr; silenced when ``GS_NO_PROGRESS`` is set (tests, notebooks at small size)."""
    kw.setdefault("disable", bool(os.environ.get("GS_NO_PROGRESS")))
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, mininterval=0.5, **kw)
