import json
import math

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from gs_jax import cli, runs


def test_create_writes_config_and_latest_moves_on_completion(tmp_path):
    cfg = ml_collections.ConfigDict({"lr": 0.1, "widths": (1, 2)})
    run = runs.create("exp", cfg, name="a", root=tmp_path, quiet=True)
    assert json.loads((run.path / "config.json").read_text()) == {"lr": 0.1, "widths": [1, 2]}
    assert not (tmp_path / "exp" / "latest").exists(), "latest names completed runs only"
    run.complete()
    assert runs.latest("exp", tmp_path) == run.path.resolve()
    again = runs.create("exp", cfg, name="a", root=tmp_path, quiet=True)
    assert again.path.name == "a-1", "an existing run is never overwritten"
    assert (run.path / "config.json").exists()
    assert runs.latest("exp", tmp_path) == run.path.resolve(), "a run in progress does not move latest"
    again.complete()
    assert runs.latest("exp", tmp_path) == again.path.resolve()


def test_writers_roundtrip(tmp_path):
    run = runs.create("exp", root=tmp_path, quiet=True)
    run.log_metrics({"step": np.int32(1), "loss": jnp.float32(0.5), "nan": float("nan")})
    run.log_metrics({"step": 2, "vec": np.arange(3)})
    assert runs.read_metrics(run.file("metrics.jsonl")) == [
        {"step": 1, "loss": 0.5, "nan": None},
        {"step": 2, "vec": [0, 1, 2]},
    ]
    run.write_summary({"acc": np.float64(0.75), "inf": math.inf})
    assert json.loads(run.file("summary.json").read_text()) == {"acc": 0.75, "inf": None}
    run.write_csv("r.csv", [{"a": 1, "b": None}, {"a": 2.5, "b": float("nan")}])
    assert run.file("r.csv").read_text().splitlines() == ["a,b", "1,", "2.5,"]
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = run.save_figure(fig, "fig")
    plt.close(fig)
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)


def test_cli_main_reports_one_line_and_keeps_files(tmp_path, capsys):
    cfg_file = tmp_path / "c.py"
    cfg_file.write_text(
        "import ml_collections\n\ndef get_config(arg=None):\n    return ml_collections.ConfigDict({'n': 1})\n"
    )
    seen = {}

    def body(cfg, run):
        seen["n"], seen["path"] = cfg.n, run.path
        run.write_summary({"n": cfg.n})

    root = str(tmp_path / "runs")
    assert (
        cli.main(
            body, experiment="e", default_config=str(cfg_file), argv=["--config.n=4", "--runs-dir", root]
        )
        == 0
    )
    assert seen["n"] == 4 and (seen["path"] / "summary.json").exists()
    assert "writing to" in capsys.readouterr().err

    status = cli.main(
        body, experiment="e", default_config=str(cfg_file), argv=["--config.m=4", "--runs-dir", root]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == ["e: error: unknown config key 'm'; valid keys: n"]
    assert (seen["path"] / "summary.json").exists(), "the earlier run is untouched"

    def failing(cfg, run):
        from gs_jax.errors import GsJaxError

        run.write_text("partial.txt", "kept")
        raise GsJaxError("labels must be in {0, 1}; got 2")

    assert cli.main(failing, experiment="e", default_config=str(cfg_file), argv=["--runs-dir", root]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("[gs-jax] e: writing to"), err
    assert err[1].startswith("e: error: labels must be in {0, 1}; got 2 (partial output kept in ")
    partial = [p for p in (tmp_path / "runs" / "e").iterdir() if (p / "partial.txt").exists()]
    assert len(partial) == 1 and (partial[0] / "partial.txt").read_text() == "kept"
    assert runs.latest("e", root) == seen["path"].resolve(), "latest still names the last completed run"

    def refusing(cfg, run):
        from gs_jax.errors import GsJaxError

        raise GsJaxError("seeds must be ≥ 1, got 0")

    before = sorted(p.name for p in (tmp_path / "runs" / "e").iterdir())
    assert cli.main(refusing, experiment="e", default_config=str(cfg_file), argv=["--runs-dir", root]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "e: error: seeds must be ≥ 1, got 0"
    assert sorted(p.name for p in (tmp_path / "runs" / "e").iterdir()) == before, "no empty run folder left"
    assert runs.latest("e", root) == seen["path"].resolve()


def _cfg_file(tmp_path):
    cfg_file = tmp_path / "c.py"
    cfg_file.write_text(
        "import ml_collections\n\ndef get_config(arg=None):\n    return ml_collections.ConfigDict({'n': 1})\n"
    )
    return str(cfg_file)


def test_any_exception_removes_an_empty_run_folder_and_ctrl_c_is_one_line(tmp_path, capsys):
    from gs_jax.errors import Interrupted

    cfg, root = _cfg_file(tmp_path), str(tmp_path / "runs")

    def crash(cfg, run):
        raise ZeroDivisionError("a bug")

    try:
        cli.main(crash, experiment="e", default_config=cfg, argv=["--runs-dir", root])
    except ZeroDivisionError:
        pass
    assert not any((tmp_path / "runs" / "e").iterdir()), "no run folder left by an unexpected exception"

    def interrupted(cfg, run):
        run.log_metrics({"step": 0})
        raise Interrupted(40, "table (all λ × seeds)")

    assert (
        cli.main(interrupted, experiment="e", default_config=cfg, argv=["--runs-dir", root, "--name", "r"])
        == 130
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "e: interrupted at step 40 of table (all λ × seeds); continue with `--resume r`"
    assert cli.main(interrupted, experiment="e", default_config=cfg, argv=["--runs-dir", root, "--resume", "r"],
                    resumable=False) == 2  # fmt: skip
    assert "writes no checkpoints" in capsys.readouterr().err


def test_a_resumed_run_does_not_write_a_metrics_line_twice(tmp_path):
    run = runs.create("exp", {"n": 1}, name="r", root=tmp_path, quiet=True)
    for s in range(3):
        run.log_metrics({"step": s})
    with run.file("metrics.jsonl").open("a") as fh:
        fh.write('{"step": 3')  # cut by the kill
    again = runs.reopen("exp", "r", root=tmp_path, quiet=True)
    for s in range(1, 5):  # the resumed run recomputes steps after its last checkpoint
        again.log_metrics({"step": s})
    assert [r["step"] for r in runs.read_metrics(again.file("metrics.jsonl"))] == [0, 1, 2, 3, 4]
