"""The README's "Your own model" guide runs as written (its ``python`` blocks, in order, in one namespace), and what
it computes agrees with brute force: each library's NTK Gram with J Jᵀ from jax.jacrev on that library's own
parameters, the monitor's strengths with numpy's eigenvalues of Y K Y, the responses with UᵀY(ŷ − ŷ₀) by hand."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

README = Path(__file__).resolve().parents[1] / "README.md"


def _guide_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Your own model\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def guide():
    pytest.importorskip("equinox")
    blocks = _guide_blocks()
    assert len(blocks) >= 6, "the guide lost a block (probe set, linen, NNX, Equinox, responses, k classes)"
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)  # noqa: S102 — the README's own code
    return ns


def _gram(f, theta) -> np.ndarray:
    flat, unravel = ravel_pytree(theta)
    J = np.asarray(jax.jacrev(lambda t: f(unravel(t)).reshape(-1))(flat), np.float64)
    return J @ J.T


def _top_eigs(K, y_pm, k):
    return np.sort(np.linalg.eigvalsh(y_pm[:, None] * np.asarray(K, np.float64) * y_pm[None, :]))[::-1][:k]


def test_each_library_gives_its_own_ntk(guide):
    import equinox as eqx
    from flax import nnx

    g = guide
    x = g["x"]
    graphdef, params_nnx, rest = nnx.split(g["model"], nnx.Param, ...)
    arrays, static = eqx.partition(g["mlp"], eqx.is_inexact_array)
    brute = {
        "K": _gram(lambda p: g["apply_fn"](p, x), g["params"]),
        "K_nnx": _gram(lambda p: nnx.merge(graphdef, p, rest)(x), params_nnx),
        "K_eqx": _gram(lambda p: jax.vmap(eqx.combine(p, static))(x), arrays),
    }
    y_pm = 2.0 * np.asarray(g["y"]) - 1.0
    for name, mon_name in (("K", "mon"), ("K_nnx", "mon_nnx"), ("K_eqx", "mon_eqx")):
        K = np.asarray(g[name])
        assert K.shape == (64, 64)
        np.testing.assert_allclose(K, brute[name], rtol=1e-4, atol=1e-4 * np.abs(brute[name]).max())
        mon = g[mon_name]
        np.testing.assert_allclose(np.asarray(mon.s) ** 2, _top_eigs(brute[name], y_pm, 4), rtol=1e-3)


def test_the_trainer_snippet_equals_the_plain_optax_loop(guide):
    g = guide
    assert list(g["steps"]) == [0, 10, 20, 30, 40, 49] and g["z_t"].shape == (6, 4)
    np.testing.assert_allclose(np.asarray(g["z_t"][0]), 0.0, atol=1e-6)  # centred at θ₀
    final = g["result"].state.params
    for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(g["p"]), strict=True):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6
        )  # 50 Adam steps either way


def test_responses_and_k_classes(guide):
    g = guide
    x, mon = g["x"], g["mon"]
    y_pm = 2.0 * np.asarray(g["y"]) - 1.0
    moved = np.asarray(g["apply_fn"](g["p"], x)) - np.asarray(g["apply_fn"](g["params"], x))
    np.testing.assert_allclose(np.asarray(g["z"]), np.asarray(mon.U).T @ (y_pm * moved), atol=1e-4)
    assert np.abs(np.asarray(g["z"])).max() > 1e-2  # training moved the responses
    ovr, joint, net3 = g["ovr"], g["joint"], g["net3"]
    assert ovr.U.shape == (3, 64, 4) and joint.U.shape == (192, 4)
    np.testing.assert_allclose(np.asarray(g["z3"]), 0.0, atol=1e-5)  # centred responses at θ₀
    import equinox as eqx

    arrays, static = eqx.partition(net3, eqx.is_inexact_array)
    Y = 2.0 * (np.asarray(g["y3"])[:, None] == np.arange(3)) - 1.0
    K = _gram(lambda p: jax.vmap(eqx.combine(p, static))(x), arrays)  # (192, 192), rows i·3 + c
    for c in range(3):
        np.testing.assert_allclose(np.asarray(ovr.s[c]) ** 2, _top_eigs(K[c::3, c::3], Y[:, c], 4), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(joint.s) ** 2, _top_eigs(K, Y.reshape(-1), 4), rtol=1e-3)


def test_add_a_method_section_names_what_exists_and_its_commands_parse():
    """The "Add a method" section: the record, config entry and test it names exist, and each of its commands is a
    valid invocation (config, overrides, every listed method a registered one this benchmark accepts)."""
    import shlex

    from gs_jax import algorithms, supervised
    from gs_jax.cli import parse_cli

    text = README.read_text()
    section = text.split("\n## Add a method\n", 1)[1].split("\n## ", 1)[0]
    root = README.parent
    assert "logit_adjust_loss" in (root / "gs_jax" / "algorithms.py").read_text()
    assert (
        "def test_logit_adjustment_class_and_group_priors"
        in (root / "tests" / "test_algorithms.py").read_text()
    )
    assert (root / "tests" / "test_matrix.py").is_file()
    targets = {"train-cmnist": "configs/cmnist.py", "worst-group": "configs/worst_group.py",
               "robustness-table": "configs/robustness.py"}  # fmt: skip
    commands = re.findall(r"^make (\S+)\s+ARGS=\"(.*?)\"$", section, flags=re.M)
    assert {t for t, _ in commands} == set(targets), commands
    for target, args in commands:
        cfg = parse_cli(shlex.split(args), str(root / targets[target])).config
        rows = supervised.method_rows(cfg.methods, overrides=_overrides(target))
        assert "logit_adjust" in [name for _, name, _ in rows]
        for _, name, block in rows:
            assert algorithms.grid(name, block), (target, name)


def _overrides(target: str) -> tuple[str, ...]:
    """The schedule keys each benchmark's method blocks may carry beside the method's hyper-parameters (what its
    own ``method_rows`` call passes)."""
    if target == "worst-group":
        from gs_jax.experiments.worst_group_train import OVERRIDES

        return OVERRIDES
    if target == "train-cmnist":
        from gs_jax.experiments.cmnist_core import SCHEDULE_KEYS

        return SCHEDULE_KEYS
    return ()
