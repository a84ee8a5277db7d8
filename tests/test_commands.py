"""The ``gs-jax`` command (gs_jax.commands): every experiment maps to the run function and default config its make
target's script uses, every default config has a ``:small`` variant, and one real run through the command."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

from gs_jax import commands, config
from gs_jax.errors import GsJaxError

REPO = Path(__file__).resolve().parents[1]


def _script_calls(path: Path) -> tuple[set[str], set[str]]:
    """Names the script imports from gs_jax.experiments, and the ``default_config=`` strings it passes."""
    tree = ast.parse(path.read_text())
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gs_jax.experiments")
        for alias in node.names
    }
    configs = {
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == "default_config" and isinstance(kw.value, ast.Constant)
    }
    return names, configs


def _pairs(path: Path) -> set[tuple[str, str]]:
    names, configs = _script_calls(path)
    return {(n, c) for n in names for c in configs}


@pytest.mark.parametrize("name", list(commands.COMMANDS))
def test_each_command_is_its_entry_point(name):
    # the command and the make target's script (analysis/ or train/) run the same function with the same config
    if not (REPO / "train").is_dir():
        pytest.skip("no checkout (train/ and analysis/ are not shipped)")
    cmd = commands.COMMANDS[name]
    pairs = set().union(*(_pairs(p) for p in [*REPO.glob("analysis/*.py"), *REPO.glob("train/*.py")]))
    assert (cmd.function, f"configs/{cmd.config}.py") in pairs, (
        f"no script runs {cmd.function} with {cmd.config}"
    )
    fn = getattr(importlib.import_module(f"gs_jax.experiments.{cmd.module}"), cmd.function)
    params = list(inspect.signature(fn).parameters)
    assert params[:2] == ["cfg", "run_dir"] and (not cmd.progress or "progress" in params)


@pytest.mark.parametrize("name", list(commands.COMMANDS))
def test_each_default_config_has_a_small_variant(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # found without a configs/ folder in the working directory
    cfg = config.load_config(f"configs/{commands.COMMANDS[name].config}.py:small")
    assert cfg.to_dict() != config.load_config(f"configs/{commands.COMMANDS[name].config}.py").to_dict()


def test_help_lists_every_experiment_and_its_data(capsys):
    assert commands.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, cmd in commands.COMMANDS.items():
        assert name in out and f"configs/{cmd.config}.py" in out
    assert out.count("needs Fashion-MNIST") == 2  # robustness and worst-group


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nope"], "unknown experiment 'nope'; choose from theorem2, primal-dual"),
        (["theorem2:small", "--config", "configs/theorem2.py"], "give the variant once"),
        (["theorem2:nope"], "unknown variant 'nope'"),
    ],
)
def test_usage_errors_are_one_line(argv, message, capsys, in_tmp, x64):
    assert commands.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (in_tmp / "runs" / "theorem2").exists() or not any((in_tmp / "runs" / "theorem2").iterdir())


def test_a_run_through_the_command_writes_its_folder(in_tmp, x64):
    # a variant, dotted overrides and --name pass through to the entry point (theorem2:small, one equation, no map)
    argv = ["theorem2:small", "--name", "cmd", "--config.phase.enabled=false", "--config.equations=eq10"]
    assert commands.main(argv) == 0
    run = in_tmp / "runs" / "theorem2" / "cmd"
    saved = json.loads((run / "config.json").read_text())
    assert saved["equations"] == ["eq10"] and saved["n_points"] == 12 and not saved["phase"]["enabled"]
    assert (in_tmp / "runs" / "theorem2" / "latest").resolve() == run.resolve()
    assert (run / "summary.json").is_file()


def test_shipped_config_only_for_configs_folder(tmp_path):
    assert (
        config.shipped_config(tmp_path / "configs" / "theorem2.py") is None
    )  # absolute paths are the user's
    assert config.shipped_config("elsewhere/theorem2.py") is None
    with pytest.raises(GsJaxError, match="not found"):
        config.load_config(tmp_path / "configs" / "theorem2.py")
