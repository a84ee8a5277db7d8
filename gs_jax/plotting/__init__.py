"""Matplotlib figures shared by entry points and notebooks; one submodule per topic.

Functions here take arrays/records and return a ``matplotlib.figure.Figure``; they never read or write files
(``gs_jax.runs.RunDir.save_figure`` does that).
"""

from __future__ import annotations

import matplotlib

if matplotlib.get_backend().lower() not in ("agg",) and not matplotlib.is_interactive():
    # Headless by default for scripts; notebooks pick their own inline backend before importing us.
    import os

    if not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend().lower():
        matplotlib.use("Agg")
