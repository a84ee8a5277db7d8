"""Every registered method on every training benchmark's small variant (the matrix of SubpopBench / DomainBed): one
run per benchmark with ``--config.methods.enabled`` set to every method the benchmark's data allow, each writing its
output contract (``summary.json`` → ``methods.<name>``); every other method refused in one line naming what the data
lack. The data are tiny and generated (Colored MNIST: the embedded digits), so this stays a fast test."""

from __future__ import annotations

import json

import pytest
from conftest import entry_point, write_tiny_fashion

from gs_jax import algorithms

# benchmark → (entry point, small variant, what its data provide, the post-hoc methods it runs, extra overrides)
BENCHMARKS = {
    "cmnist": ("train/cmnist.py", "configs/cmnist.py:small", {"group", "env", "binary"}, {"dfr"},
               ["--config.restarts=1", "--config.max_steps=4", "--config.eval_every=2"]),
    "worst_group": ("train/worst_group.py", "configs/worst_group.py:small", {"group", "binary"}, {"dfr", "threshold"},
                    ["--config.seeds=1", "--config.data.max_eval=40", "--config.data.verify=false",
                     "--config.responses.enabled=false"]),
    "robustness": ("train/robustness.py", "configs/robustness.py:small", set(), set(),
                   ["--config.table.restarts=1", "--config.fig2.enabled=false", "--config.data.verify=false"]),
}  # fmt: skip
WHAT = {"group": "group labels", "env": "environment labels", "binary": "binary task"}


def _split(provides, posthoc):
    """The methods the benchmark runs, and the others with the words their refusal must hold."""
    ok, refused = [], {}
    for name, alg in algorithms.ALGORITHMS.items():
        missing = set(alg.needs(algorithms.hyper(name))) - provides
        if missing:
            refused[name] = [WHAT[m] for m in missing]
        elif alg.posthoc and name not in posthoc:
            refused[name] = ["post-hoc method this benchmark does not run"]
        else:
            ok.append(name)
    return ok, refused


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    return write_tiny_fashion(tmp_path_factory.mktemp("fashion"), n_train=400, n_test=160)


def _run(bench, fashion, root, names, *extra):
    script, variant, _, _, overrides = BENCHMARKS[bench]
    data = [] if bench == "cmnist" else [f"--config.data.dir={fashion}"]
    argv = ["--config", variant, *overrides, *data, "--runs-dir", str(root), *extra,
            f"--config.methods.enabled={','.join(names)}"]  # fmt: skip
    module = entry_point(script)
    kw = {} if bench == "cmnist" else {"progress": None}
    return module.main(argv, **kw)


@pytest.mark.parametrize("bench", list(BENCHMARKS))
def test_every_method_the_data_allow_runs_and_the_rest_is_refused(bench, fashion, tmp_path, capsys):
    ok, refused = _split(*BENCHMARKS[bench][2:4])
    assert _run(bench, fashion, tmp_path, ok, "--name", "all") == 0, capsys.readouterr().err[-2000:]
    summary = json.loads((tmp_path / bench / "all" / "summary.json").read_text())
    assert set(ok) <= set(summary["methods"]), sorted(set(ok) - set(summary["methods"]))
    for name, words in refused.items():
        capsys.readouterr()
        assert _run(bench, fashion, tmp_path, ["erm", name]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert name in err and all(w in err for w in words), err
