"""Private: import neural-tangents 0.6.5 on current jax, without TensorFlow. Only ``gs_jax.ntk`` imports this.

neural-tangents 0.6.5 (its last release) was written against jax 0.4.2x. Two things stand between it and the jax
gs-jax locks:

1. ``neural_tangents/__init__.py`` imports its ``experimental`` subpackage, which imports ``jax2tf``/``tf2jax`` and
   so TensorFlow (1.4 GB). gs-jax never uses it (it converts TensorFlow models); a stub module takes its place in
   ``sys.modules`` and raises one clear line if anything reaches for it.
2. jax moved or removed a few names its empirical-kernel code imports: ``jax.core.{Jaxpr, JaxprEqn, Literal, Var,
   Primitive, ClosedJaxpr}`` now live in ``jax.extend.core``; the module ``jax.util`` (``safe_map``, ``safe_zip``)
   is gone; ``jax.interpreters.ad`` lost ``source_info_util``, ``config`` and ``zeros_like_p``; ``jax.core`` lost
   ``lattice_join`` and ``DShapedArray`` (both reached only under ``jax_enable_checks`` or for dynamic shapes).

:func:`load` provides exactly those names again — each one only where it is missing — for the jax versions listed
in :data:`TESTED_JAX`, on which all three empirical implementations (structured derivatives, Jacobian contraction,
NTK-vector products), ``stax`` kernels, ``linearize`` and ``batch`` were checked against brute-force Jacobians
(``tests/test_nt_compat.py``). On any other jax it refuses with one line: the structured-derivative implementation
walks jaxprs through private jax APIs that change between releases (on jax 0.10 its private ``linearize`` changed
signature), and a silently wrong kernel is worse than none. gs-jax's own jax-only implementations
(``backend="jax"`` in ``gs_jax.ntk``) need none of this.
"""

from __future__ import annotations

import functools
import os
import sys
import types
import warnings

import jax

from gs_jax.errors import GsJaxError

#: jax versions on which the shims below were tested with neural-tangents 0.6.5.
TESTED_JAX = ("0.9.2",)
NT_VERSION = "0.6.5"

_EXPERIMENTAL = "neural_tangents.experimental"


class _NoExperimental(types.ModuleType):
    """Stands in for ``neural_tangents.experimental`` (jax2tf/TensorFlow), which gs-jax does not install."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise GsJaxError(
            f"neural_tangents.experimental.{name} needs TensorFlow and tf2jax, which gs-jax does not install "
            "(it converts TensorFlow models); install them yourself and import neural_tangents directly"
        )


class _NoDShapedArray:
    """Placeholder for the removed ``jax.core.DShapedArray`` (dynamic shapes): no value is ever of this type."""


def _lattice_join(a, b):
    """The removed ``jax.core.lattice_join`` for the one use neural-tangents makes of it (a check that a cotangent's
    abstract value matches its variable's, under ``jax_enable_checks``)."""
    if a == b or getattr(a, "shape", None) == getattr(b, "shape", ()) and a.dtype == b.dtype:
        return a
    raise TypeError(f"abstract values do not match: {a} vs {b}")


def _provide(module: types.ModuleType, name: str, value) -> None:
    """Set ``module.name`` unless jax still has it (a module-level ``__getattr__`` counts as having it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a name kept behind a deprecation warning is still there
        try:
            getattr(module, name)
            return
        except AttributeError:
            pass
    setattr(module, name, value)


def _shim_jax() -> None:
    import jax.core
    import jax.extend.core
    import jax.extend.source_info_util
    import jax.interpreters.ad
    from jax._src import util as _util  # safe_map/safe_zip: jax's own, as jax.util re-exported them

    for name in ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive", "ClosedJaxpr"):
        _provide(jax.core, name, getattr(jax.extend.core, name))
    _provide(jax.core, "lattice_join", _lattice_join)
    _provide(jax.core, "DShapedArray", _NoDShapedArray)

    if "jax.util" not in sys.modules:
        util = types.ModuleType("jax.util", "Shim for the removed jax.util module (safe_map, safe_zip).")
        util.safe_map = _util.safe_map
        util.safe_zip = _util.safe_zip
        sys.modules["jax.util"] = util
        jax.util = util

    ad = jax.interpreters.ad
    _provide(ad, "source_info_util", jax.extend.source_info_util)
    _provide(ad, "config", jax.config)
    # neural-tangents registers rules keyed by this primitive at import; jax no longer emits it, so a fresh
    # primitive of the same name is a key that simply never matches.
    _provide(ad, "zeros_like_p", jax.extend.core.Primitive("zeros_like"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # still present but deprecated (unused by jax since 0.4.38): bind it once so each lookup does not warn
        ad.reducing_transposes = getattr(ad, "reducing_transposes", {})


def supported() -> bool:
    """Whether neural-tangents can be imported here: installed, and this jax is one :func:`load` was tested on."""
    import importlib.util

    return jax.__version__ in TESTED_JAX and importlib.util.find_spec("neural_tangents") is not None


@functools.cache
def load() -> types.ModuleType:
    """Import and return ``neural_tangents`` (0.6.5) on a tested jax, or raise one GsJaxError line."""
    if jax.__version__ not in TESTED_JAX:
        raise GsJaxError(
            f"neural-tangents {NT_VERSION} is supported on jax {', '.join(TESTED_JAX)} only (found jax "
            f"{jax.__version__}): use gs-jax's own implementations with backend='jax' "
            "(implementation='jacobian' or 'ntvp'), or install the locked stack with `make setup`"
        )
    try:
        import importlib.util

        found = importlib.util.find_spec("neural_tangents") is not None
    except ValueError:
        found = "neural_tangents" in sys.modules
    if not found:
        raise GsJaxError(
            "neural-tangents is not installed: use backend='jax' (implementation='jacobian' or 'ntvp'), "
            "or install the locked stack with `make setup`"
        )
    # jax presets TF_CPP_MIN_LOG_LEVEL=1; should a user's TensorFlow be importable, keep its C++ logging quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _shim_jax()
    if _EXPERIMENTAL not in sys.modules:
        sys.modules[_EXPERIMENTAL] = _NoExperimental(_EXPERIMENTAL, _NoExperimental.__doc__)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # its imports of jax names kept behind deprecations
        import neural_tangents
    if neural_tangents.__version__ != NT_VERSION:
        raise GsJaxError(
            f"gs-jax's neural-tangents shims are for version {NT_VERSION}, found {neural_tangents.__version__}: "
            "install the locked stack with `make setup`, or use backend='jax'"
        )
    return neural_tangents
