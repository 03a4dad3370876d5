"""The records a derivation is made of: a tree of typed steps holding equations and tables.

Like the step-by-step solvers (SymPy Gamma, handcalcs), a :class:`Derivation` is a title and
an ordered list of :class:`Step` records (rule, statement, displayed mathematics,
justification, sub-steps); printers for LaTeX, Markdown and plain text live in
:mod:`convalgebra.derive.render`. Every displayed expression is an :class:`Expr` that keeps,
beside its LaTeX and text renderings, the value the library computed, so
:func:`convalgebra.derive.verify.verify` can parse the rendering back and compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Expr", "Grid", "Equation", "Table", "Step", "Derivation", "ELLIPSES", "combine"]

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

    @property
    def tex(self) -> str:
        rows = [
            " & ".join(c.tex if isinstance(c, Expr) else ELLIPSES[c][0] for c in row)
            for row in self.cells
        ]
        return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"

    @property
    def text(self) -> str:
        cells = [[c.text if isinstance(c, Expr) else ELLIPSES[c][1] for c in row] for row in self.cells]
        widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))] if cells else []
        return "\n".join("[" + " ".join(c.rjust(w) for c, w in zip(row, widths)) + "]" for row in cells)

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
    substituted -- which :func:`~convalgebra.derive.verify.verify` checks.

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

    def exprs(self) -> Iterator[Expr]:
        for side in self.sides:
            if isinstance(side, Grid):
                yield from side.exprs()
            else:
                yield side


@dataclass(frozen=True)
class Table:
    """A table; cells are prose (``$…$`` for inline math) or :class:`Equation` objects."""

    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str = ""

    def equations(self) -> Iterator[Equation]:
        for row in self.rows:
            yield from (c for c in row if isinstance(c, Equation))


@dataclass(frozen=True)
class Step:
    """One step: a statement, its displayed mathematics, why it holds, and sub-steps.

    ``statement`` and ``justification`` are prose in which ``$…$`` encloses inline LaTeX.
    ``rule`` names the kind of step (``"definition"``, ``"substitute"``, ``"floor"``,
    ``"index formula"``, ``"transpose"``, …) for programs that walk the tree.
    """

    statement: str
    math: tuple[Any, ...] = ()
    justification: str = ""
    rule: str = ""
    substeps: tuple["Step", ...] = ()

    def walk(self) -> Iterator["Step"]:
        yield self
        for sub in self.substeps:
            yield from sub.walk()


@dataclass(frozen=True)
class Derivation:
    """A titled, ordered list of steps that renders as LaTeX, Markdown and text.

    Examples
    --------
    >>> import convalgebra as ca
    >>> d = ca.derive("output_size", ca.ConvSpec((1, 7), 1, 3, stride=3))
    >>> print(d.to_text().splitlines()[0])
    Output size of Conv1d(1, 1, kernel_size=(3,), stride=(3,), padding=((0, 0),)) on input (1, 7)
    """

    title: str
    steps: tuple[Step, ...]
    intro: str = ""
    result: Any = field(default=None, compare=False)

    def walk(self) -> Iterator[Step]:
        """Every step, depth first."""
        for step in self.steps:
            yield from step.walk()

    def equations(self) -> Iterator[Equation]:
        """Every displayed equation, including those inside tables."""
        for step in self.walk():
            for item in step.math:
                if isinstance(item, Equation):
                    yield item
                elif isinstance(item, Table):
                    yield from item.equations()

    def to_latex(self, standalone: bool = False) -> str:
        """LaTeX: a fragment (``\\section*`` + steps) or, with ``standalone``, a document."""
        from .render import to_latex

        return to_latex(self, standalone)

    def to_markdown(self) -> str:
        """Markdown with ``$…$``/``$$…$$`` math, for GitHub and Jupyter."""
        from .render import to_markdown

        return to_markdown(self)

    def to_text(self) -> str:
        """Plain text, for terminals."""
        from .render import to_text

        return to_text(self)

    def verify(self) -> int:
        """Parse every equation back and compare it with the value the library computed.

        Returns the number of expressions checked; raises ``RoundTripError`` on a mismatch
        (see :func:`convalgebra.derive.verify.verify`).
        """
        from .verify import verify

        return verify(self)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def combine(title: str, parts: "list[Derivation | Step]", intro: str = "") -> Derivation:
    """One derivation made of several: each part becomes a step whose sub-steps are its steps.

    Examples
    --------
    >>> import convalgebra as ca
    >>> d = combine("Two sizes", [ca.derive("output_size", ca.ConvSpec((1, n), 1, 3)) for n in (5, 6)])
    >>> [step.statement[:20] for step in d.steps]
    ['Output size of Conv1', 'Output size of Conv1']
    """
    steps = tuple(
        p if isinstance(p, Step) else Step(p.title + ("." if not p.title.endswith(".") else ""),
                                           substeps=p.steps, rule="part")
        for p in parts)
    return Derivation(title, steps, intro, result=[getattr(p, "result", None) for p in parts])
