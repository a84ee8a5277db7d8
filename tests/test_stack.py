"""The installed stack is exactly the lock file (jax/neural-tangents first: the reason the stack is pinned)."""

import re
from importlib import metadata

import pytest


def _locked(repo_root):
    pins = {}
    for line in (repo_root / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


@pytest.mark.parametrize(
    "name", ["jax", "jaxlib", "neural-tangents", "flax", "optax", "diffrax", "numpy", "scipy"]
)
def test_core_pins_match_lock(repo_root, name):
    assert metadata.version(name) == _locked(repo_root)[name]


def test_core_pin_values(repo_root):
    pins = _locked(repo_root)
    assert pins["jax"] == pins["jaxlib"] == "0.9.2"
    assert pins["neural-tangents"] == "0.6.5"
    assert int(pins["numpy"].split(".")[0]) >= 2
    assert pins["flax"].startswith("0.12.")
    assert pins["optax"] == "0.2.8"
    assert pins["diffrax"].startswith("0.7.")


@pytest.mark.parametrize(
    "name", ["tensorflow", "tensorflow-cpu", "tf2jax", "tf-keras", "keras", "tensorboard"]
)
def test_no_tensorflow_in_lock_or_environment(repo_root, name):
    """neural-tangents' TensorFlow requirements serve only its experimental (jax2tf) subpackage: none is locked
    or installed, and neural-tangents still imports (through gs_jax's compat module)."""
    assert name not in _locked(repo_root)
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version(name)


def test_every_locked_package_is_installed_at_its_version(repo_root):
    wrong = {}
    for name, version in _locked(repo_root).items():
        try:
            got = metadata.version(name)
        except metadata.PackageNotFoundError:
            got = None
        if got != version:
            wrong[name] = (version, got)
    assert not wrong, f"installed stack differs from requirements.lock (locked, installed): {wrong}"
