"""The document model every proof and derivation is made of: steps holding equations, grids
and tables.

Like the step-by-step solvers (SymPy Gamma, handcalcs), a document is a title and an ordered
list of :class:`Step` records (statement, displayed mathematics, justification, sub-steps).
Every displayed expression is an :class:`Expr` that keeps, beside its LaTeX and text
renderings, the value the library computed, so a derivation can be verified by parsing the
rendering back. The renderers live in :mod:`convalgebra.render.formats`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Expr", "Grid", "Equation", "DataTable", "Figure", "Step", "ELLIPSES"]

#: Markers a :class:`Grid` cell may hold instead of an :class:`Expr` (elided entries).
ELLIPSES = {"h": (r"\cdots", "…"), "v": (r"\vdots", "⋮"), "d": (r"\ddots", "⋱"), "": ("", "")}


@dataclass(frozen=True)
class Expr:
    """One side of an equation: LaTeX, plain text, and the value behind them.

    ``value`` is a sympy object computed by the library; ``None`` marks notation that is not a
    computed expression (e.g. the general eq. 9.8 with abstract indices).
    """

    tex: str
    text: str
    value: Any = None


@dataclass(frozen=True)
class Grid:
    """A matrix display: cells are :class:`Expr` or an ellipsis marker (``"h"``, ``"v"``, ``"d"``).

    ``value`` is the whole matrix as a sympy ``Matrix`` when nothing is elided.
    """

    cells: tuple[tuple[Any, ...], ...]
    value: Any = None
    note: str = ""
    rows: tuple[int | None, ...] = ()  # the 0-based row of the full matrix each row shows
    cols: tuple[int | None, ...] = ()  # (None: the elided ones); empty when not known

    def narrowed(self, keep: int) -> Grid:
        """The same matrix showing at most ``keep`` of its displayed columns: the first
        ``keep - 2``, an ellipsis and the last (row and column indices follow the cut).

        Examples
        --------
        >>> g = Grid(((Expr("1", "1"), Expr("2", "2"), Expr("3", "3"), Expr("4", "4")),), rows=(0,), cols=(0, 1, 2, 3))
        >>> n = g.narrowed(3)
        >>> n.text, n.cols
        ('[1 … 4]', (0, None, 3))
        """
        n = len(self.cells[0]) if self.cells else 0
        if n <= keep or keep < 3:
            return self
        picked = [*range(keep - 2), None, n - 1]
        cols = self.cols or (None,) * n  # unknown columns stay unknown
        cells = tuple(
            tuple(("d" if row[0] in ("v", "d") else "h") if j is None else row[j] for j in picked)
            for row in self.cells
        )
        return Grid(
            cells,
            None,
            self.note,
            self.rows,
            tuple(None if j is None else cols[j] for j in picked) if self.cols else (),
        )

    @property
    def tex(self) -> str:
        rows = [
            " & ".join(c.tex if isinstance(c, Expr) else ELLIPSES[c][0] for c in row)
            for row in self.cells
        ]
        n = len(self.cells[0]) if self.cells else 0
        if n <= 10:
            return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"
        # bmatrix stops at MaxMatrixCols (10) columns; an array has no limit, needs no
        # preamble setting and reads the same in MathJax
        return rf"\left[\begin{{array}}{{{'c' * n}}}" + r" \\ ".join(rows) + r"\end{array}\right]"

    @property
    def text(self) -> str:
        cells = [
            [c.text if isinstance(c, Expr) else ELLIPSES[c][1] for c in row] for row in self.cells
        ]
        widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))] if cells else []
        return "\n".join(
            "[" + " ".join(c.rjust(w) for c, w in zip(row, widths, strict=False)) + "]"
            for row in cells
        )

    def exprs(self) -> Iterator[Expr]:
        for row in self.cells:
            yield from (c for c in row if isinstance(c, Expr))


@dataclass(frozen=True)
class Equation:
    """A chain ``sides[0] = sides[1] = …`` (or another relation, or one per link).

    ``relation`` is ``"="``, ``"approx"``, ``"<="``, … or a tuple with one per link. Only
    links ``"="`` are checked for equality.

    With ``defines=True`` the first side is the name being defined and is not compared; all
    other sides with a value must be equal once ``subs`` (pairs ``(symbol, value)``) is
    substituted -- which :func:`~convalgebra.derivations.verify.verify` checks. ``chain=False`` marks
    a statement whose sides are not to be compared (a step of a proof; its truth is the
    checker's), only their renderings.

    ``check`` is, for a formula whose sides are notation (a general index formula), a
    callable that instantiates the printed formula and compares it with the computed object,
    raising on a mismatch and returning how many instances it compared.
    """

    sides: tuple[Any, ...]
    defines: bool = True
    subs: tuple[tuple[Any, Any], ...] = ()
    relation: str | tuple[str, ...] = "="
    label: str = ""
    check: Any = field(default=None, compare=False, repr=False)
    chain: bool = True

    def exprs(self) -> Iterator[Expr]:
        for side in self.sides:
            if isinstance(side, Grid):
                yield from side.exprs()
            else:
                yield side


@dataclass(frozen=True)
class DataTable:
    """A table; cells are prose (``$…$`` for inline math) or :class:`Equation` objects."""

    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str = ""
    layout: str = (
        "table"  # or "pairs": two columns read as "name: value" lines in text and Markdown
    )

    def equations(self) -> Iterator[Equation]:
        for row in self.rows:
            yield from (c for c in row if isinstance(c, Equation))


@dataclass(frozen=True)
class Figure:
    """A picture: TikZ for LaTeX (needs the ``tikz`` package), a character drawing for text
    and Markdown (a code block), and a caption (prose, ``$…$`` for inline math)."""

    tikz: str
    drawing: str
    caption: str = ""


@dataclass(frozen=True)
class Step:
    """One step: a statement, its displayed mathematics, why it holds, and sub-steps.

    ``statement`` is prose in which ``$…$`` encloses inline LaTeX, or a sympy statement (an
    equation, a relation or an expression) that is displayed as an equation. ``justification``
    is prose. ``rule`` names the kind of step (``"definition"``, ``"substitute"``, ``"proof"``,
    ``"index formula"``, …) for programs that walk the tree.

    A proof step is often just a statement and its reason, ``Step(statement, "why")``: a
    string in the place of ``math`` is the justification.

    Examples
    --------
    >>> import sympy
    >>> s = Step(sympy.Eq(sympy.Symbol("a"), 1), "by definition")
    >>> s.latex, s.text, s.justification
    ('a = 1', 'a = 1    [by definition]', 'by definition')
    """

    statement: Any
    math: tuple[Any, ...] | str = ()  # a str is the justification (moved there in __post_init__)
    justification: str = ""
    rule: str = ""
    substeps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.math, str):  # Step(statement, "why")
            object.__setattr__(self, "justification", self.math)
            object.__setattr__(self, "math", ())
        if isinstance(self.statement, bool) or type(self.statement).__name__ in (
            "BooleanTrue",
            "BooleanFalse",
        ):
            # sympy decides Eq(a, b) structurally to a bare True/False: such a step would print "False"
            raise TypeError(
                f"Step statement evaluated to {self.statement}; build it with evaluate=False"
            )

    @property
    def is_prose(self) -> bool:
        return isinstance(self.statement, str)

    @property
    def latex(self) -> str:
        """The statement as LaTeX (a sentence is wrapped in ``\\text{}``)."""
        if self.is_prose:
            return r"\text{" + self.statement.replace("_", r"\_") + "}"
        import sympy

        return sympy.latex(self.statement)

    @property
    def text(self) -> str:
        """The statement followed by its justification in brackets."""
        rel = {"Equality": "=", "Unequality": "≠"}.get(type(self.statement).__name__)
        plain = f"{self.statement.lhs} {rel} {self.statement.rhs}" if rel else str(self.statement)
        return f"{plain}    [{self.justification}]"

    def walk(self) -> Iterator[Step]:
        yield self
        for sub in self.substeps:
            yield from sub.walk()
