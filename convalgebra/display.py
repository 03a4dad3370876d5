"""Notebook display: tables as objects, and the short reprs of results.

A :class:`Table` is the text a table prints (it *is* a ``str``), and it also holds the rows
as data: ``.rows`` (one dict per row, raw values), :meth:`Table.to_records`,
:meth:`Table.to_pandas` and an HTML rendering for notebooks (``_repr_html_``).

Examples
--------
>>> t = Table("a  b\\n-  -\\n1  x", [{"a": 1, "b": "x"}], ["a", "b"])
>>> print(t)
a  b
-  -
1  x
>>> t.rows, t.to_records()
([{'a': 1, 'b': 'x'}], [(1, 'x')])
>>> print(t._repr_html_())  # doctest: +NORMALIZE_WHITESPACE
<table class="convalgebra-table"><thead><tr><th>a</th><th>b</th></tr></thead><tbody>
<tr><td style="text-align:right">1</td><td style="text-align:left">x</td></tr>
</tbody></table>
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import require

__all__ = ["Table", "html_table", "summary_html", "short_repr"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def html_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    cell: Callable[[Any], str] = str,
) -> str:
    """An escaped HTML ``<table>``: numeric columns right-aligned, ``None`` shown empty.

    Examples
    --------
    >>> html_table([{"n": "<a>", "v": None}], ["n", "v"])  # doctest: +ELLIPSIS
    '<table ...<td style="text-align:left">&lt;a&gt;</td><td style="text-align:left"></td>...'
    """
    numeric = [
        any(_is_number(r.get(c)) for r in rows)
        and all(_is_number(r.get(c)) for r in rows if r.get(c) is not None)
        for c in columns
    ]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = [
        "<tr>"
        + "".join(
            f'<td style="text-align:{"right" if num else "left"}">'
            f"{'' if r.get(c) is None else html.escape(cell(r.get(c)))}</td>"
            for c, num in zip(columns, numeric)
        )
        + "</tr>"
        for r in rows
    ]
    return (
        f'<table class="convalgebra-table"><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table>"
    )


def summary_html(title: str, items: Mapping[str, Any], body: str = "") -> str:
    """A titled block of ``name: value`` lines (escaped), then ``body`` (already HTML).

    Examples
    --------
    >>> summary_html("bound", {"upper": 2.0})
    '<div class="convalgebra"><strong>bound</strong><br><span>upper: 2.0</span><br></div>'
    """
    lines = "".join(
        f"<span>{html.escape(str(k))}: {html.escape(str(v))}</span><br>" for k, v in items.items()
    )
    return f'<div class="convalgebra"><strong>{html.escape(title)}</strong><br>{lines}{body}</div>'


def short_repr(kind: str, text: str, limit: int = 200) -> str:
    """``<Kind text>``, the text cut to ``limit`` characters with ``…``.

    Examples
    --------
    >>> short_repr("CheckResult", "adjoint: HOLDS")
    '<CheckResult adjoint: HOLDS>'
    >>> len(short_repr("X", "y" * 1000))
    204
    """
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"<{kind} {text}>"


class Table(str):
    """A table's text, holding its rows (see the module docstring).

    Parameters
    ----------
    text : str
        What ``str(table)`` and ``print(table)`` show.
    rows : sequence of dict
        The rows with raw values (ints, tuples of ints for shapes, ``None`` for empty).
    columns : sequence of str
        Column order.
    cell : callable, optional
        How a raw value is shown in the HTML table (default ``str``).
    """

    rows: list[dict[str, Any]]
    columns: list[str]
    _cell: Callable[[Any], str]

    def __new__(
        cls,
        text: str,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str],
        cell: Callable[[Any], str] = str,
    ) -> Table:
        table = super().__new__(cls, text)
        table.rows = [dict(r) for r in rows]
        table.columns = list(columns)
        table._cell = cell
        return table

    def to_records(self) -> list[tuple]:
        """The rows as tuples in column order (``None`` for a missing value).

        Ready for ``pandas.DataFrame.from_records(t.to_records(), columns=t.columns)`` or a
        ``csv.writer``.
        """
        return [tuple(r.get(c) for c in self.columns) for r in self.rows]

    def to_pandas(self) -> Any:
        """The rows as a :class:`pandas.DataFrame` (pandas must be installed).

        Raises
        ------
        MissingExtraError
            pandas is not installed.
        """
        pandas = require("pandas", "pandas")
        return pandas.DataFrame.from_records(self.to_records(), columns=self.columns)

    def _repr_html_(self) -> str:
        return html_table(self.rows, self.columns, self._cell)
