"""Text tables made from result records: GitHub markdown tables and fixed-width plain-text tables.

Records are ``dict``s (one per row); these functions only turn them into strings. Printing the strings and writing
them into a run directory are the caller's business (``gs_jax.runs.RunDir.write_text``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import NamedTuple

_FORMATTER = string.Formatter()


def markdown_table(rows: list[dict[str, str]], title: str = "") -> str:
    """A GitHub markdown table (also readable as plain text)."""
    cols = list(rows[0].keys())
    lines = [f"{title}\n"] if title else []
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


class Column(NamedTuple):
    """One column of :func:`text_table`.

    ``title`` is the header text, laid out with the format spec ``spec`` (``">11"``: right-aligned, 11 wide);
    ``cell`` is a :meth:`str.format` template over the row's fields (``"{max_dz2:11.3e}"``, or several fields at
    once, ``"({z1:.5f}, {z2:.5f})"``). A cell whose fields are absent or ``None`` prints ``missing`` laid out with
    ``spec``.
    """

    title: str
    spec: str
    cell: str


def _fields(template: str) -> list[str]:
    """The row keys a format template reads (``"{a[0]:.3f} {b.real}"`` → ``["a", "b"]``)."""
    names = []
    for _, field, _, _ in _FORMATTER.parse(template):
        if field is not None:
            names.append(field.split(".", 1)[0].split("[", 1)[0])
    return names


def text_table(rows: Sequence[Mapping], columns: Sequence[Column], missing: str = "-") -> str:
    """A fixed-width plain-text table: header line, a rule of dashes as long as the header, one line per row.

    Cells are joined by one space; each is ``column.cell`` formatted with the row (see :class:`Column`).
    """

    def cell(column: Column, row: Mapping) -> str:
        if any(row.get(name) is None for name in _fields(column.cell)):
            return format(missing, column.spec)
        return column.cell.format_map(row)

    head = " ".join(format(c.title, c.spec) for c in columns)
    lines = [head, "-" * len(head)]
    lines += [" ".join(cell(c, row) for c in columns) for row in rows]
    return "\n".join(lines)


def mean_std_str(mean: float | None, std: float | None, fmt: str = "{:.3f}") -> str:
    """``"0.512 ± 0.031"``: mean and standard deviation, each written with ``fmt``; ``"—"`` when ``mean`` is None."""
    return "—" if mean is None else f"{fmt.format(mean)} ± {fmt.format(std)}"


__all__ = ["Column", "markdown_table", "mean_std_str", "text_table"]
