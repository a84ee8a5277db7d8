"""Configs as data: load ``configs/<experiment>.py[:variant]`` and apply dotted command-line overrides.

A config file defines ``get_config(arg=None) -> ml_collections.ConfigDict`` and never imports gs_jax; ``arg`` selects
a variant (``configs/cmnist.py:sd``).  The returned dict is locked, so an override can only change an existing key,
and its new value is parsed to the type of the old one.  Every problem is a one-line :class:`GsJaxError`.

Command line (shared by every entry point under ``analysis/`` and ``train/``)::

    python analysis/theorem2.py --config configs/theorem2.py:quick --config.sweep.points=50 --name try1
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from gs_jax.errors import GsJaxError

ConfigDict = ml_collections.ConfigDict
# the checkout holding configs/ (the package is installed editable)
_PROJECT = Path(__file__).resolve().parents[1]


def load_config(spec: str | Path) -> ConfigDict:
    """Import ``path[:variant]`` and return its locked ``get_config(variant)``."""
    path_str, _, variant = str(spec).partition(":")
    path = Path(path_str)
    if not path.is_file() and not path.is_absolute() and (_PROJECT / path).is_file():
        path = _PROJECT / path  # `configs/X.py` from outside the checkout: the project's own config
    if not path.is_file() and (shipped := shipped_config(path)) is not None:
        path = shipped  # an installed package without a checkout: the copy shipped in the wheel
    if not path.is_file():
        here = sorted(p.as_posix() for p in Path("configs").glob("*.py")) if Path("configs").is_dir() else []
        hint = f" (available: {', '.join(here)})" if here else ""
        raise GsJaxError(
            f"config file '{path}' not found; pass --config configs/<experiment>.py[:variant]{hint}"
        )
    module_spec = importlib.util.spec_from_file_location(f"_gs_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise GsJaxError(f"config file '{path}' defines no get_config(arg=None)")
    try:
        cfg = module.get_config(variant or None)
    except (KeyError, ValueError) as err:  # config files signal an unknown variant this way
        message = err.args[0] if err.args else repr(err)
        raise GsJaxError(f"config '{spec}': {message}") from None
    if not isinstance(cfg, ConfigDict):
        raise GsJaxError(f"get_config in '{path}' must return an ml_collections.ConfigDict, got {type(cfg)}")
    cfg.lock()
    return cfg


def shipped_config(path: str | Path) -> Path | None:
    """The copy of ``configs/<name>.py`` shipped inside an installed gs-jax (``gs_jax/_configs/``), or None.

    The wheel maps the checkout's top-level ``configs/`` to ``gs_jax/_configs/`` (pyproject.toml); in a checkout
    (editable install) the folder does not exist there and :func:`load_config` uses ``configs/`` itself.
    """
    path = Path(path)
    if path.is_absolute() or path.parent.as_posix() != "configs":
        return None
    shipped = Path(__file__).resolve().parent / "_configs" / path.name
    return shipped if shipped.is_file() else None


def flat_keys(cfg: ConfigDict, prefix: str = "") -> list[str]:
    """All leaf keys of a (nested) ConfigDict in dotted form, sorted."""
    keys = []
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, ConfigDict):
            keys.extend(flat_keys(value, dotted + "."))
        else:
            keys.append(dotted)
    return sorted(keys)


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_value(raw: str, like: Any, key: str = "value", grid: bool = False) -> Any:
    """Parse the command-line string ``raw`` to the type of the current value ``like``. With ``grid`` (a method's
    hyper-parameter, ``methods.*``), a number may also be given as a comma-separated list: a tuple, i.e. a grid
    the benchmark trains value by value (``gs_jax.algorithms.grid``)."""

    def fail(expected: str) -> GsJaxError:
        return GsJaxError(f"config key '{key}' expects {expected}, got {raw!r}")

    if isinstance(like, bool):
        low = raw.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise fail("a bool (true/false)")
    if grid and isinstance(like, (int, float)) and not isinstance(like, bool) and "," in raw:
        return parse_value(raw, (like,), key)
    if isinstance(like, int):
        try:
            return int(raw)
        except ValueError:
            raise fail("an int") from None
    if isinstance(like, float):
        try:
            return float(raw)
        except ValueError:
            raise fail("a float") from None
    if isinstance(like, str):
        return raw
    if isinstance(like, (tuple, list)):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = tuple(part.strip() for part in raw.split(",") if part.strip())
        if not isinstance(value, (tuple, list)):
            value = (value,)
        if like and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in like):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise fail("a comma-separated list of numbers")
            if any(isinstance(v, float) for v in like):
                value = [float(v) for v in value]
        return type(like)(value)
    if like is None:
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    raise fail(type(like).__name__)


def apply_overrides(cfg: ConfigDict, overrides: Mapping[str, str] | Iterable[str]) -> ConfigDict:
    """Return a copy of ``cfg`` with dotted overrides applied (``{"sweep.points": "50"}`` or ``["sweep.points=50"]``)."""
    if not isinstance(overrides, Mapping):
        pairs = {}
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise GsJaxError(f"override '{item}' has no value; write --config.{item}=VALUE")
            pairs[key] = raw
        overrides = pairs
    out = ml_collections.ConfigDict(cfg.to_dict())
    valid = flat_keys(cfg)
    for key, raw in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, ConfigDict) else None
        if not isinstance(node, ConfigDict) or leaf not in node or isinstance(node[leaf], ConfigDict):
            members = [k for k in valid if k.startswith(key + ".")]
            if members:
                raise GsJaxError(
                    f"config key '{key}' is a group, not a value; set one of its keys: {', '.join(members)}"
                )
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise GsJaxError(f"unknown config key '{key}'; {hint}valid keys: {', '.join(valid)}")
        value = parse_value(raw, node[leaf], key, grid=key.startswith("methods."))
        with node.unlocked():
            if type(value) is not type(node[leaf]) and isinstance(value, tuple):
                del node[leaf]  # a number became a grid of numbers (the field's type changes)
            node[leaf] = value
    out.lock()
    return out


@dataclasses.dataclass(frozen=True)
class Invocation:
    """What an entry point was asked to do: the resolved config and where to write."""

    config: ConfigDict
    config_spec: str
    run_name: str | None = None
    runs_root: str = "runs"
    resume: str | None = None  # continue runs/<experiment>/<resume>/ from its checkpoints


_USAGE = (
    "usage: [--config configs/X.py[:variant]] [--config.KEY=VALUE ...] [--name RUN_NAME] [--runs-dir DIR] "
    "[--resume RUN_NAME]"
)


def parse_cli(argv: Sequence[str], default_config: str) -> Invocation:
    """Parse ``--config``, ``--config.KEY=VALUE``, ``--name`` and ``--runs-dir`` (``=`` or a separate token)."""
    spec, name, root, overrides, resume = default_config, None, "runs", [], None
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if not flag.startswith("--"):
            raise GsJaxError(f"unexpected argument '{arg}'; {_USAGE}")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise GsJaxError(f"flag '{flag}' needs a value; {_USAGE}")
            value, i = args[i + 1], i + 1
        if flag == "--config":
            spec = value
        elif flag.startswith("--config."):
            overrides.append(f"{flag[len('--config.') :]}={value}")
        elif flag == "--name":
            name = value
        elif flag == "--runs-dir":
            root = value
        elif flag == "--resume":
            resume = value
        else:
            raise GsJaxError(f"unknown flag '{flag}'; {_USAGE}")
        i += 1
    cfg = apply_overrides(load_config(spec), overrides)
    return Invocation(config=cfg, config_spec=spec, run_name=name, runs_root=root, resume=resume)


def get_key(cfg: ConfigDict, key: str) -> Any:
    """The value at a dotted key (``"table.batch_size"``)."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_sizes(cfg: ConfigDict, minimums: Mapping[str, float]) -> None:
    """Refuse up front, naming the config key, a size below its minimum: ``check_sizes(cfg, {"restarts": 1,
    "table.batch_size": 1})`` → "restarts must be ≥ 1, got 0". A tuple value is checked element by element."""
    for key, low in minimums.items():
        value = get_key(cfg, key)
        items = value if isinstance(value, (tuple, list)) else (value,)
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= low for v in items)
        if not ok:
            raise GsJaxError(
                f"{key} must be ≥ {low:g}, got {value!r}; pass --config.{key}=<a value ≥ {low:g}>"
            )
