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


def entry_point(script: str):
    """The module of an entry point (``"train/worst_group.py"``), loaded from the checkout (its ``main(argv)``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"entry_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tiny_fashion(root: Path, n_train: int = 300, n_test: int = 60, classes=tuple(range(10))) -> Path:
    """Tiny Fashion-MNIST IDX files in the real format: random pixels with a learnable corner per class."""
    import numpy as np

    from gs_jax.data import mnist

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.asarray(classes, np.uint8)[np.arange(n) % len(classes)]
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, :4, :4] = labels[:, None, None] * 25
        mnist.write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        mnist.write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root
