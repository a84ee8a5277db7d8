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
    assert pins["jax"] == pins["jaxlib"] == "0.4.25"
    assert pins["neural-tangents"] == "0.6.5"
    assert int(pins["numpy"].split(".")[0]) < 2
    assert tuple(int(x) for x in pins["scipy"].split(".")[:2]) < (1, 13)


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
