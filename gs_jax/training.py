"""Functional training: explicit train state pytrees, pure jitted steps, restarts/seeds as a vmap axis."""

from __future__ import annotations
