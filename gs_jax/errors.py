"""The one exception type users see.

Anything a user can fix (bad config key, wrong shape, missing data file, labels outside the expected set,
non-finite values) raises :class:`GsJaxError` with a single line that names the problem and the fix.  Entry
points catch it and print that line instead of a traceback (``gs_jax.config.main``).
"""

from __future__ import annotations


class GsJaxError(ValueError):
    """A user-fixable problem, described in one line: what is wrong and how to fix it."""


def check(condition: bool, message: str) -> None:
    """Raise ``GsJaxError(message)`` unless ``condition`` holds."""
    if not condition:
        raise GsJaxError(message)
