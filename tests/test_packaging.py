"""The wheel: every package of gs_jax and every shipped config inside, the ``gs-jax`` command, the metadata (Python
versions, licence, URLs, readme), and a run of the installed package with no checkout in sight.

The wheel is built from a copy of the sources in a temporary folder (setuptools writes build/ and *.egg-info beside
its input), without build isolation: the locked setuptools, no network. ``make test-package`` installs it with its
dependencies into a fresh virtual environment of the newest Python and runs an experiment there.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("no checkout")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    for folder in ("gs_jax", "configs"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("gs_jax-*.whl")
    return found


def test_wheel_holds_every_package_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "gs_jax").rglob("*.py")}
    missing = sources - names
    assert not missing, f"not in the wheel (add the package to [tool.setuptools] packages): {sorted(missing)}"
    configs = {f"gs_jax/_configs/{p.name}" for p in (REPO / "configs").glob("*.py")}
    assert configs and configs <= names
    assert not any(n.startswith(("tests/", "train/", "analysis/", "configs/")) for n in names)


def test_wheel_metadata(wheel):
    zf = zipfile.ZipFile(wheel)
    info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_bytes(zf.read(info))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["Requires-Python"] == project["requires-python"] == ">=3.11"
    assert meta["License-Expression"] and any(n.endswith("licenses/LICENSE") for n in zf.namelist())
    assert meta.get_all("Project-URL") and meta["Description-Content-Type"] == "text/markdown"
    assert "## Your own model" in meta.get_payload()  # the README is the long description
    extras = meta.get_all("Provides-Extra")
    assert {"gpu", "nt"} <= set(extras)
    entry = zf.read(next(n for n in zf.namelist() if n.endswith("entry_points.txt"))).decode()
    assert "gs-jax = gs_jax.commands:main" in entry


def test_installed_wheel_runs_without_a_checkout(wheel, tmp_path):
    # the wheel unpacked into its own folder, ahead of everything else on the path; the dependencies are this
    # environment's. From an empty directory: the shipped configs are found, and `python -m gs_jax` works.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "empty"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import gs_jax, gs_jax.config as c; print(gs_jax.__file__); "
        "print(c.load_config('configs/theorem2.py:small').deltas)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, check=True, capture_output=True, text=True
    ).stdout.split("\n")
    assert out[0].startswith(str(site)), out  # the installed copy, not the checkout
    assert out[1] == "(0.0, 0.25)"  # configs/theorem2.py:small, read from gs_jax/_configs
    usage = subprocess.run(
        [sys.executable, "-m", "gs_jax", "--help"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "theorem2" in usage and "worst-group" in usage
