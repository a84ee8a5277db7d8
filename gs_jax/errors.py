"""The one exception type users see.

Anything a user can fix (bad config key, wrong shape, missing data file, labels outside the expected set,
non-finite values) raises :class:`GsJaxError` with a single line that names the problem and the fix.  Entry
points catch it and print that line instead of a traceback (``gs_jax.cli.main``).
"""

from __future__ import annotations


class GsJaxError(ValueError):
    """A user-fixable problem, described in one line: what is wrong and how to fix it."""


def check(condition: bool, message: str) -> None:
    """Raise ``GsJaxError(message)`` unless ``condition`` holds."""
    if not condition:
        raise GsJaxError(message)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``step`` is where the newest checkpoint stands (where ``--resume`` continues),
    ``what`` names the training program. Entry points print one line instead of a traceback."""

    def __init__(self, step: int, what: str = ""):
        super().__init__(step, what)
        self.step, self.what = int(step), what
