"""Shared test setup: markers, float64 fixture, quiet progress bars, small sizes for notebooks."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

from gs_jax import precision

os.environ.setdefault("GS_NO_PROGRESS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if any(d.platform == "gpu" for d in jax.devices()):
        return
    skip_gpu = pytest.mark.skip(reason="needs a GPU (jax sees none)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def x64():
    """Run the test in float64 (theory code), restoring the previous setting afterwards."""
    with precision.x64(True):
        yield


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test with ``tmp_path`` as the working directory (entry points write ``runs/`` relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
