"""The one document model and renderer of convalgebra: every derivation and every proof.

A document is a title and steps (:class:`Step`) holding equations (:class:`Equation` of
:class:`Expr` sides), matrices (:class:`Grid`) and tables (:class:`DataTable`);
:class:`Document` renders it as LaTeX, Markdown (``$…$`` math) or plain text. Identity checks
(:mod:`convalgebra.identities`) and derivations (:mod:`convalgebra.derivations`) both build their
steps with it, so a proof reads the same whichever way it is asked for. This package imports
neither of them.

Examples
--------
>>> from convalgebra.render import Document, Equation, Expr, Step
>>> doc = Document("Sum", (Step("Add:", (Equation((Expr("x", "x"), Expr("1 + 1", "1 + 1"))),)),))
>>> print(doc.to_text())
Sum
===
1. Add:
    x = 1 + 1
"""

from __future__ import annotations

from .formats import PREAMBLE, Document, step_math, to_latex, to_markdown, to_text
from .grids import array_grid, pick, truncation_rule
from .model import ELLIPSES, DataTable, Equation, Expr, Figure, Grid, Step

__all__ = [
    "Document",
    "Step",
    "Equation",
    "Expr",
    "Grid",
    "DataTable",
    "Figure",
    "ELLIPSES",
    "PREAMBLE",
    "to_latex",
    "to_markdown",
    "to_text",
    "step_math",
    "pick",
    "truncation_rule",
    "array_grid",
]
