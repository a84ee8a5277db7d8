import textwrap

import ml_collections
import pytest

from gs_jax import config as gs_config
from gs_jax.errors import GsJaxError

CONFIG = textwrap.dedent(
    """
    import ml_collections

    def get_config(arg=None):
        c = ml_collections.ConfigDict()
        c.seed = 0
        c.lr = 1e-4
        c.method = "erm"
        c.verbose = False
        c.widths = (64, 128)
        c.optim = ml_collections.ConfigDict({"steps": 100, "b1": 0.9})
        variants = {None: {}, "sd": {"method": "sd", "lr": 3e-4}}
        if arg not in variants:
            raise ValueError(f"unknown variant {arg!r}; choose from {sorted(k for k in variants if k)}")
        c.update(variants[arg])
        return c
    """
)


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(CONFIG)
    return path


def test_load_default_and_variant(cfg_file):
    cfg = gs_config.load_config(cfg_file)
    assert cfg.method == "erm" and cfg.lr == 1e-4
    sd = gs_config.load_config(f"{cfg_file}:sd")
    assert sd.method == "sd" and sd.lr == 3e-4
    with pytest.raises(AttributeError):  # locked: no new keys
        sd.new_key = 1


def test_unknown_variant_and_missing_file(cfg_file, tmp_path):
    with pytest.raises(GsJaxError, match="unknown variant 'nope'"):
        gs_config.load_config(f"{cfg_file}:nope")
    with pytest.raises(GsJaxError, match="not found"):
        gs_config.load_config(tmp_path / "missing.py")


def test_project_configs_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout: configs/ is not in the working directory
    cfg = gs_config.load_config("configs/theorem2.py:small")
    assert "deltas" in cfg
    with pytest.raises(GsJaxError, match="not found"):
        gs_config.load_config("configs/no_such_experiment.py")


def test_overrides_parse_to_the_existing_type(cfg_file):
    cfg = gs_config.load_config(cfg_file)
    out = gs_config.apply_overrides(
        cfg, ["seed=3", "lr=1e-3", "verbose=true", "widths=32,64,4096", "optim.steps=7", "method=irm"]
    )
    assert (out.seed, out.lr, out.verbose, out.widths, out.optim.steps, out.method) == (
        3,
        1e-3,
        True,
        (32, 64, 4096),
        7,
        "irm",
    )
    assert isinstance(out.lr, float) and isinstance(out.widths, tuple)
    assert cfg.seed == 0, "the input config is not modified"


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "sed=3",
            "unknown config key 'sed'; did you mean 'seed'? "
            "valid keys: lr, method, optim.b1, optim.steps, seed, verbose, widths",
        ),
        ("optim=3", "config key 'optim' is a group, not a value; set one of its keys: optim.b1, optim.steps"),
        ("xyz=3", "unknown config key 'xyz'; valid keys"),  # no close match: no guess
        ("optim.stepz=3", "unknown config key 'optim.stepz'; did you mean 'optim.steps'?"),
        ("seed=three", "config key 'seed' expects an int, got 'three'"),
        ("lr=fast", "config key 'lr' expects a float"),
        ("verbose=maybe", "expects a bool"),
        ("widths=a,b", "comma-separated list of numbers"),
    ],
)
def test_bad_overrides_are_one_line_errors(cfg_file, override, message):
    cfg = gs_config.load_config(cfg_file)
    with pytest.raises(GsJaxError) as info:
        gs_config.apply_overrides(cfg, [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_parse_cli(cfg_file):
    inv = gs_config.parse_cli(
        ["--config", f"{cfg_file}:sd", "--config.seed=5", "--config.optim.b1", "0.5", "--name=a"],
        str(cfg_file),
    )
    assert inv.config.method == "sd" and inv.config.seed == 5 and inv.config.optim.b1 == 0.5
    assert inv.run_name == "a" and inv.runs_root == "runs"
    with pytest.raises(GsJaxError, match="unknown flag '--confg.seed'"):
        gs_config.parse_cli(["--confg.seed=1"], str(cfg_file))
    with pytest.raises(GsJaxError, match="needs a value"):
        gs_config.parse_cli(["--name"], str(cfg_file))


def test_flat_keys():
    c = ml_collections.ConfigDict({"a": 1, "b": {"c": 2, "d": {"e": 3}}})
    assert gs_config.flat_keys(c) == ["a", "b.c", "b.d.e"]


def test_a_method_hyper_parameter_becomes_a_grid_from_the_command_line():
    cfg = gs_config.load_config("configs/worst_group.py")
    out = gs_config.apply_overrides(cfg, ["methods.logit_adjust.tau=0.5,1,2", "methods.group_dro.eta=0.1"])
    assert out.methods.logit_adjust.tau == (0.5, 1.0, 2.0) and out.methods.group_dro.eta == (
        0.1,
    )  # a grid stays one
    assert cfg.methods.logit_adjust.tau == 1.0  # the original is untouched
    with pytest.raises(GsJaxError, match="'seed' expects an int"):
        gs_config.apply_overrides(cfg, ["seed=1,2"])  # only methods.* numbers take a list
    with pytest.raises(GsJaxError, match="expects a comma-separated list of numbers"):
        gs_config.apply_overrides(cfg, ["methods.logit_adjust.tau=0.5,x"])
