"""Derivations: documents (:mod:`convalgebra.render`) that can verify their own equations.

The records a derivation is made of (:class:`Step`, :class:`Equation`, :class:`Expr`,
:class:`Grid`, and the table type, here also called ``Table``) are those of
:mod:`convalgebra.render.model`; a :class:`Derivation` is a
:class:`~convalgebra.render.Document` with :meth:`Derivation.verify`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..render.formats import Document
from ..render.model import ELLIPSES, DataTable, Equation, Expr, Grid, Step

__all__ = [
    "Expr",
    "Grid",
    "Equation",
    "Table",
    "DataTable",
    "Step",
    "Derivation",
    "ELLIPSES",
    "combine",
]

#: The former name of :class:`~convalgebra.render.model.DataTable`.
Table = DataTable


@dataclass(frozen=True)
class Derivation(Document):
    """A titled, ordered list of steps that renders as LaTeX, Markdown and text, and verifies.

    Built by :func:`convalgebra.derive`; :meth:`verify` parses every printed equation back
    and compares it with the value the library computed.

    Parameters
    ----------
    title : str
        The heading.
    steps : tuple of Step
        The steps in order: each a statement, its displayed mathematics, why it holds, and
        sub-steps.
    intro : str, default ""
        A paragraph before the steps.
    result : object, optional
        The value the derivation arrives at (e.g. the output shape).
    level : {"section", "paragraph"}, default "section"
        ``"section"`` for a document that stands alone, ``"paragraph"`` for one that is part
        of a larger text.
    meaning : callable, optional
        Returns what the printed names mean (name to value, matrix label to array), for
        :meth:`verify`.

    Examples
    --------
    >>> import convalgebra as ca
    >>> d = ca.derive("output_size", ca.ConvSpec((1, 7), 1, 3, stride=3))
    >>> print(d.to_text().splitlines()[0])
    Output size of Conv1d, kernel 3, stride 3 on 1×7
    >>> d.result, d.verify() > 0
    ((1, 2), True)
    """

    #: A callable returning what the printed names mean (name -> value, matrix label ->
    #: array; see :mod:`convalgebra.derivations.oracle`), or None.
    meaning: Any = field(default=None, compare=False, repr=False)

    def verify(self, meaning: dict | None = None) -> int:
        """Parse every equation back and compare it with the value the library computed.

        Every printed equation whose names have a meaning (this derivation's own, or the
        ``meaning`` given, e.g. computed by PyTorch) is also evaluated on it.
        Returns the number of expressions, formula instances and evaluations checked; raises
        ``RoundTripError`` on a mismatch (see :func:`convalgebra.derivations.verify.verify`).
        """
        from .verify import verify

        return verify(self, meaning=meaning)


def combine(title: str, parts: list[Document | Step], intro: str = "") -> Derivation:
    """One derivation made of several: each part becomes a step whose sub-steps are its steps.

    Examples
    --------
    >>> import convalgebra as ca
    >>> d = combine("Two sizes", [ca.derive("output_size", ca.ConvSpec((1, n), 1, 3)) for n in (5, 6)])
    >>> [step.statement[:20] for step in d.steps]
    ['Output size of Conv1', 'Output size of Conv1']
    """
    steps = tuple(
        p
        if isinstance(p, Step)
        else Step(
            p.title + ("." if not p.title.endswith(".") else ""), substeps=p.steps, rule="part"
        )
        for p in parts
    )
    result: Any = [getattr(p, "result", None) for p in parts]
    return Derivation(title, steps, intro, result=result)
