"""Numerical precision, set in one place.

Theory code (NTK features, dual dynamics, fixed points, Theorem 2) runs in float64; trainers stay in float32.
jax's ``jax_enable_x64`` flag is process-global, so entry points call :func:`enable_x64` once at start-up,
before any array is created; library code that needs a scoped switch uses :func:`x64`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


def enable_x64(enabled: bool = True) -> None:
    """Turn float64 on (or off) for the whole process. Call before creating arrays."""
    jax.config.update("jax_enable_x64", enabled)


def x64_enabled() -> bool:
    """Whether float64 is currently on."""
    return bool(jax.config.jax_enable_x64)


@contextlib.contextmanager
def x64(enabled: bool = True) -> Iterator[None]:
    """Scoped float64 switch (restores the previous setting on exit).

    Jitted functions traced inside the block keep the precision they were traced with, so use this around
    whole computations, not around calls to functions that were already compiled outside it.
    """
    previous = x64_enabled()
    enable_x64(enabled)
    try:
        yield
    finally:
        enable_x64(previous)
