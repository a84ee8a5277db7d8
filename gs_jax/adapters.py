"""Models from any JAX library at the boundary of :mod:`gs_jax.ntk`, :mod:`gs_jax.features` and :mod:`gs_jax.monitor`.

Those modules compute with one form, ``apply_fn(params, x) -> logits`` and a pytree of arrays ``params``.
:func:`as_apply_fn` turns what a user holds into that form:

==========================================  ==========  ===========================================================
``model``                                   ``params``  parameters θ, and how the model is called
==========================================  ==========  ===========================================================
a function ``apply_fn(params, x)``          a pytree    ``params`` as given (a Flax linen ``module.apply`` with
(Flax linen, ``neural_tangents.stax``,      of arrays   ``{"params": p}``, or ``lambda p, x: module.apply(
plain jax)                                              {"params": p}, x)`` with ``p``); unchanged
a Flax NNX module (``nnx.Module``)          ``None``    its ``nnx.Param`` state (``nnx.split(model, nnx.Param,
                                                        ...)``); any other state (batch statistics, RNG counters)
                                                        held fixed; called on the whole batch, ``model(x)``
an Equinox module (``eqx.Module``)          ``None``    its floating-point arrays (``eqx.partition(model,
                                                        eqx.is_inexact_array)``); called on one example and vmapped
                                                        over axis 0 of ``x``, ``jax.vmap(model)(x)`` (the Equinox
                                                        convention; :func:`from_equinox` with ``batched=True`` for
                                                        a module that takes batches)
a function ``apply_fn(module, x)``          an NNX or   the module's parameters as above; ``apply_fn`` receives the
                                            Equinox     module rebuilt from them
                                            module
==========================================  ==========  ===========================================================

So ``ntk.empirical_ntk(model, None, x)`` and ``monitor.at_reference(model, None, x, y, k)`` take an NNX or Equinox
module directly. Results indexed by parameters (the columns of Φ₀, V of the features) follow
``jax.flatten_util.ravel_pytree`` of the θ returned here. Anything else is one :class:`~gs_jax.errors.GsJaxError`
line naming what is accepted.

No library is imported here: a module can only be an NNX (or Equinox) module if ``flax.nnx`` (or ``equinox``) has
already been imported by whoever built it, so the type checks look the libraries up in ``sys.modules``. Neither is
a dependency of gs-jax beyond what Flax ships.

Compilation caches in :mod:`gs_jax.ntk` are keyed on the apply function: the ones built here compare equal for
modules of the same structure (NNX ``GraphDef``, Equinox static part), so calling twice with the same model (or a
trained copy of it) compiles once. An NNX module with non-parameter state gets a fresh apply function (and a fresh
compilation) on each call.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gs_jax.errors import GsJaxError

ApplyFn = Callable[[Any, Any], Any]

ACCEPTED = (
    "a function apply_fn(params, x) with its parameters (Flax linen: "
    "lambda p, x: model.apply({'params': p}, x) and variables['params']), "
    "a Flax NNX module or an Equinox module (with params=None)"
)


def _nnx():
    return sys.modules.get("flax.nnx")


def _eqx():
    return sys.modules.get("equinox")


def is_nnx_module(obj: Any) -> bool:
    """Whether ``obj`` is a Flax NNX module (False when ``flax.nnx`` was never imported)."""
    nnx = _nnx()
    return nnx is not None and isinstance(obj, nnx.Module)


def is_equinox_module(obj: Any) -> bool:
    """Whether ``obj`` is an Equinox module (False when ``equinox`` was never imported)."""
    eqx = _eqx()
    return eqx is not None and isinstance(obj, eqx.Module)


def _is_linen_module(obj: Any) -> bool:
    linen = sys.modules.get("flax.linen")
    return linen is not None and isinstance(obj, linen.Module)


def _describe(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


# ---------------------------------------------------------------------------------------------------------------
# Apply functions for modules (hashable, so that gs_jax.ntk's compilation caches hit across calls)
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _NnxCall:
    """``(θ, x) -> merge(graphdef, θ, rest)(x)`` or, with ``outer``, ``outer(merge(...), x)``."""

    graphdef: Any
    outer: Callable | None = None

    def __call__(self, params, x):
        model = _nnx().merge(self.graphdef, params)
        return model(x) if self.outer is None else self.outer(model, x)


def _nnx_call_with_rest(graphdef, rest, outer):
    nnx = _nnx()

    def apply_fn(params, x):
        model = nnx.merge(graphdef, params, rest)
        return model(x) if outer is None else outer(model, x)

    return apply_fn


@dataclasses.dataclass(frozen=True)
class _EqxCall:
    """``(θ, x) -> vmap(combine(θ, static))(x)`` (``batched``: no vmap) or ``outer(combine(θ, static), x)``."""

    static: Any
    batched: bool = False
    outer: Callable | None = None

    def __call__(self, params, x):
        model = _eqx().combine(params, self.static)
        if self.outer is not None:
            return self.outer(model, x)
        return model(x) if self.batched else jax.vmap(model)(x)


def _hashable(fn: Callable) -> Callable:
    """``fn`` if it can key a cache (hash and == work); otherwise a plain closure calling it."""
    try:
        hash(fn)
        bool(fn == fn)
    except Exception:  # e.g. an Equinox static part holding integer arrays
        return lambda params, x: fn(params, x)
    return fn


def from_nnx(model: Any, outer: Callable | None = None) -> tuple[ApplyFn, Any]:
    """``(apply_fn, θ)`` of a Flax NNX module: θ its ``nnx.Param`` state, other state held fixed.

    ``outer(module, x)``, if given, is called instead of ``module(x)`` (e.g. to pick one output).
    """
    nnx = _nnx()
    if not is_nnx_module(model):
        raise GsJaxError(f"from_nnx needs a Flax NNX module, got {_describe(model)}")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree_util.tree_leaves(rest):
        return _nnx_call_with_rest(graphdef, rest, outer), params
    return _hashable(_NnxCall(graphdef, outer)), params


def from_equinox(model: Any, *, batched: bool = False, outer: Callable | None = None) -> tuple[ApplyFn, Any]:
    """``(apply_fn, θ)`` of an Equinox module: θ its floating-point arrays, the rest static.

    ``batched=False`` (the Equinox convention, e.g. ``eqx.nn.MLP``): the module maps one example and
    ``apply_fn`` vmaps it over axis 0 of ``x``; ``batched=True``: the module takes the batch itself.
    ``outer(module, x)``, if given, is called instead (and ``batched`` is ignored).
    """
    eqx = _eqx()
    if not is_equinox_module(model):
        raise GsJaxError(f"from_equinox needs an Equinox module, got {_describe(model)}")
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return _hashable(_EqxCall(static, bool(batched), outer)), params


# ---------------------------------------------------------------------------------------------------------------
# The boundary
# ---------------------------------------------------------------------------------------------------------------


def _check_array_leaves(params: Any) -> None:
    leaves_with_path = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in leaves_with_path:
        if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")) and not isinstance(
            leaf, (int, float, complex, np.generic)
        ):
            raise GsJaxError(
                f"params must be a pytree of arrays, but params{jax.tree_util.keystr(path)} is a "
                f"{_describe(leaf)}; pass {ACCEPTED}"
            )


def as_apply_fn(model: Any, params: Any = None) -> tuple[ApplyFn, Any]:
    """``(apply_fn, θ)`` for ``model`` and ``params`` as in the table of the module docstring.

    An ``(apply_fn, params)`` pair that is already in this form is returned unchanged (cheap: a walk over the
    leaves), so functions that call one another may each pass through here.
    """
    if is_nnx_module(model) or is_equinox_module(model):
        if params is not None:
            raise GsJaxError(
                f"{_describe(model)} is a module that holds its own parameters: pass params=None "
                "(e.g. ntk.empirical_ntk(model, None, x))"
            )
        return from_nnx(model) if is_nnx_module(model) else from_equinox(model)
    if _is_linen_module(model):
        raise GsJaxError(
            f"{_describe(model)} is a Flax linen module, which holds no parameters: pass its apply function and "
            "parameters, e.g. (lambda p, x: model.apply({'params': p}, x), variables['params'])"
        )
    if _is_linen_module(params):
        raise GsJaxError(
            f"params is a Flax linen module ({_describe(params)}), which holds no parameters: pass the "
            "parameters from model.init, e.g. variables['params']"
        )
    if not callable(model):
        raise GsJaxError(f"the model must be {ACCEPTED}; got {_describe(model)}")
    if is_nnx_module(params):
        return from_nnx(params, outer=model)
    if is_equinox_module(params):
        return from_equinox(params, outer=model)
    if params is None:
        raise GsJaxError(
            f"params is None but the model is a function ({_describe(model)}), not a module: pass {ACCEPTED}"
        )
    _check_array_leaves(params)
    return model, params
