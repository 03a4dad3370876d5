"""Render rows of a layer table as text, Markdown, CSV or JSON (no pandas).

Examples
--------
>>> rows = [{"node": "conv1", "params": 760}, {"node": "total", "params": 760}]
>>> print(render(rows, fmt="markdown"))
| node  | params |
|-------|-------:|
| conv1 |    760 |
| total |    760 |
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from .errors import ConvAlgebraError, shown

__all__ = ["FORMATS", "render", "format_cell"]

FORMATS = ("text", "markdown", "csv", "json")


def format_cell(value: Any) -> str:
    """Thousands separators for ints, ``3x224x224`` for shapes, ``""`` for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def _is_numeric(rows: list[dict], column: str) -> bool:
    values = [r.get(column) for r in rows if r.get(column) is not None]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                for v in values)


def render(rows: Sequence[dict], columns: Sequence[str] | None = None, fmt: str = "text") -> str:
    """Render ``rows`` (dicts sharing keys) with ``columns`` in format ``fmt``.

    Parameters
    ----------
    rows : sequence of dict
    columns : sequence of str, optional
        Defaults to the keys of the first row.
    fmt : {"text", "markdown", "csv", "json"}
        ``csv`` and ``json`` keep raw values (no thousands separators).
    """
    if fmt not in FORMATS:
        raise ConvAlgebraError(f"fmt must be one of {FORMATS}, got {shown(fmt)}")
    rows = list(rows)
    columns = list(columns if columns is not None else (rows[0] if rows else []))
    if fmt == "json":
        return json.dumps([{c: _jsonable(r.get(c)) for c in columns} for r in rows], indent=1)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else _plain(r.get(c)) for c in columns])
        return buffer.getvalue().rstrip("\n")
    cells = [[format_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    right = [_is_numeric(rows, c) for c in columns]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return ("| " + " | ".join(parts) + " |") if fmt == "markdown" else "  ".join(parts).rstrip()

    header = line(list(columns))
    if fmt == "markdown":
        rule = "|" + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right)) + "|"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([header, rule, *(line(row) for row in cells)])


def _plain(value: Any) -> Any:
    return "x".join(map(str, value)) if isinstance(value, tuple) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
