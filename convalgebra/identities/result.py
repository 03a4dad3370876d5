"""CheckResult: the verdict of an identity check, its evidence, and how it renders.

A check never returns a bare bool. It returns a :class:`CheckResult` carrying

* ``holds`` -- the verdict;
* ``claim`` -- the identity that was checked, in words;
* ``reason`` -- why it holds or fails, one paragraph;
* ``evidence`` -- named facts (a residual, a count, a symbolic condition, a fraction ...);
* ``counterexample`` -- a :class:`Counterexample` with concrete numbers, or ``None`` when it holds;
* ``failing_positions`` -- output multi-indices where the identity breaks, where meaningful;
* ``steps`` -- a list of :class:`~convalgebra.render.model.Step` (statement + justification),
  the derivation of the verdict;
* ``identity`` -- the two sides as :mod:`convalgebra.ops` expressions, where the law is an
  equation between linear operators (decided by :func:`convalgebra.ops.prove`);
  :meth:`CheckResult.all_sizes` decides it for every input size;
* ``not_applicable`` -- the parts of a law that do not apply to the input, each with why (e.g.
  ``"Mᵀ = the transposed convolution (reflect padding has no transposed convolution)"``):
  they were not checked, ``holds`` covers only the rest, and the claim names them.

:meth:`CheckResult.document` assembles claim, proof steps, evidence, counterexample and verdict
as one :class:`~convalgebra.render.Document`; ``to_text``/``to_markdown``/``to_latex`` and
``convalgebra.derive(result)`` all render that same document with the one renderer of
:mod:`convalgebra.render`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..display import short_repr
from ..render.model import Step

__all__ = ["Step", "Counterexample", "CheckResult"]


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, threshold=60, max_line_width=100)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class Counterexample:
    """Concrete numbers for which the two sides of an identity differ.

    Attributes
    ----------
    inputs : dict of str to ndarray
        The arrays to plug in, named as in the claim (e.g. ``x``, ``weight``).
    lhs, rhs : ndarray
        The two sides evaluated on ``inputs`` (already checked to differ).
    position : tuple of int or None
        A multi-index where ``lhs`` and ``rhs`` differ.
    description : str
        The counterexample in words.
    """

    inputs: dict
    lhs: np.ndarray
    rhs: np.ndarray
    position: tuple | None
    description: str

    def to_text(self) -> str:
        lines = [self.description]
        for name, value in self.inputs.items():
            lines.append(
                f"  {name} = {_text(np.asarray(value)).replace(chr(10), chr(10) + '    ')}"
            )
        if self.position is not None:
            lines.append(
                f"  at {self.position}: left side {_text(self.lhs[self.position])}, "
                f"right side {_text(self.rhs[self.position])}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`convalgebra.check`: verdict, evidence and derivation.

    ``bool(result)`` is ``result.holds``. ``not_applicable`` lists the parts of the law that
    were not checked because they do not apply (each with why); ``holds`` and ``claim`` cover
    only what was checked, and the claim names the parts left out.

    Parameters
    ----------
    law : str
        The law's name, e.g. ``"translation_equivariance"``.
    holds : bool
        The verdict.
    claim : str
        What was checked, in words and symbols.
    reason : str
        Why the verdict follows, in a sentence.
    evidence : dict, optional
        Named facts the checker computed (counts, residuals, tables).
    counterexample : Counterexample, optional
        Numbers for which the two sides differ, when the law fails.
    failing_positions : tuple, optional
        The 0-based output positions where the two sides differ, when known.
    steps : tuple of Step, optional
        The derivation of the verdict, step by step.
    method : str, default "index tables"
        How the sides were compared (named in the first step of the derivation).
    not_applicable : tuple of str, optional
        Parts of the law not checked because they do not apply, each with why.
    identity : tuple of two convalgebra.ops.Op, optional
        The two sides as operator expressions where the law is an equation between linear
        operators (decided by :func:`convalgebra.ops.prove`); :meth:`all_sizes` decides it
        for every input size.

    Examples
    --------
    Checks build results; the fields read back:

    >>> import convalgebra as ca
    >>> spec = ca.ConvSpec((1, 6), 1, 3, padding=1)
    >>> failed = ca.check("translation_equivariance", spec, shift=(1,))
    >>> failed.holds, failed.failing_positions, failed.counterexample.inputs["x"].tolist()
    (False, ((0, 0), (0, 5)), [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])

    One built by hand renders the same way:

    >>> r = CheckResult("demo", True, "1 + 1 = 2", "Integer arithmetic.", {"residual": 0})
    >>> print(r.to_text())
    demo: HOLDS -- 1 + 1 = 2
    1. The checker compared the index tables (output, input, kernel tap) of both sides, entry by entry.
    2. Evidence the checker computed:
        residual: 0
    3. Verdict: the identity holds. Integer arithmetic.
    >>> bool(r), r.counterexample is None
    (True, True)
    """

    law: str
    holds: bool
    claim: str
    reason: str
    evidence: dict = field(default_factory=dict)
    counterexample: Counterexample | None = None
    failing_positions: tuple | None = None
    steps: tuple = ()
    method: str = "index tables"
    not_applicable: tuple = ()
    identity: tuple | None = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return bool(self.holds)

    def all_sizes(self, **options: Any):
        """The same identity decided for every input size: a :class:`convalgebra.ops.Proof`.

        Available where the law was decided as an equation between operator expressions
        (``identity`` holds the two sides, written with :mod:`convalgebra.ops`); ``options``
        go to :func:`convalgebra.ops.prove` (e.g. ``max_sizes``).

        Examples
        --------
        >>> import convalgebra as ca
        >>> spec = ca.ConvSpec((1, 6), 1, 3, padding=1)
        >>> r = ca.check("translation_equivariance", spec, shift=1)
        >>> r.holds, str(r.all_sizes().sizes)       # zero padding: only the trivial size
        (False, 'n = 1')
        >>> spec = ca.ConvSpec((1, 6), 1, 3, padding=1, padding_mode="circular")
        >>> str(ca.check("translation_equivariance", spec, shift=1).all_sizes().sizes)
        'every n'
        """
        if self.identity is None:
            from ..errors import ConvAlgebraError

            raise ConvAlgebraError(
                f"{self.law} was not decided as an equation between operator expressions here; "
                "there is no all-size form of this result"
            )
        from ..ops import prove

        return prove(*self.identity, **options)

    @property
    def verdict(self) -> str:
        return "HOLDS" if self.holds else "FAILS"

    def document(self, *, max_positions: int = 12, max_rows: int = 12, max_cols: int = 12):
        """Claim, proof steps, evidence, failing positions, counterexample and verdict, as a document.

        Returns a :class:`~convalgebra.render.Document` (``level="paragraph"``); arrays are
        shown as matrices, cut past ``max_rows`` by ``max_cols`` by the stated rule.
        """
        from ..render.formats import Document

        steps = [Step(_method_sentence(self.method), rule="method")]
        if self.not_applicable:
            steps.append(
                Step(
                    "Not checked, as not applicable: " + "; ".join(self.not_applicable) + ".",
                    justification="the verdict covers only the parts of the law that apply",
                    rule="scope",
                )
            )
        steps += list(self.steps)
        for extra in (
            _evidence_step(self.evidence, max_rows, max_cols),
            _positions_step(self, max_positions),
        ):
            steps += [extra] if extra else []
        if self.counterexample is not None:
            steps.append(_counterexample_step(self.counterexample, max_rows, max_cols))
        steps.append(
            Step(
                f"Verdict: the identity {'holds' if self.holds else 'fails'}. {self.reason}",
                rule="verdict",
            )
        )
        return Document(
            f"{self.law}: {self.verdict}",
            tuple(steps),
            intro=self.claim,
            result=self,
            level="paragraph",
        )

    def to_text(self) -> str:
        """Plain text: claim, proof, evidence, counterexample and verdict."""
        return self.document().to_text()

    def to_markdown(self) -> str:
        """Markdown with inline LaTeX (``$…$``), for notebooks and reports."""
        return self.document().to_markdown()

    def to_latex(self) -> str:
        """A LaTeX fragment (a ``\\paragraph`` and its steps)."""
        return self.document().to_latex()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        colour = "#1e7b34" if self.holds else "#b02a1e"
        head = (
            f'<strong>{html.escape(self.law)}: <span style="color:{colour}">'
            f"{self.verdict}</span></strong> &mdash; {html.escape(self.claim)}"
        )
        return (
            f"<details><summary>{head}</summary><pre>{html.escape(self.to_text())}</pre></details>"
        )

    def __repr__(self) -> str:
        return short_repr("CheckResult", f"{self.law}: {self.verdict} -- {self.claim}")

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def __str__(self) -> str:
        return self.to_text()


_METHODS = {
    "operator expressions": "wrote both sides as operator expressions (convalgebra.ops) and "
    "compared their tables of terms (output, input, kernel monomial) entry by entry",
    "index tables": "compared the index tables (output, input, kernel tap) of both sides, entry by entry",
    "index tables + FFT": "compared the index tables (output, input, kernel tap) entry by entry, "
    "and evaluated both sides with the FFT on random inputs",
    "index tables + all-size index proof": "compared the index tables entry by entry, and proved "
    "the index identity for every size",
    "index proof (all sizes)": "proved the index identity for every size",
    "operator expressions + all-size index proof": "wrote both sides as operator expressions "
    "(convalgebra.ops) and compared their tables of terms entry by entry, and proved the index "
    "identity for every size",
    "matrices": "compared the two sides' matrices entry by entry",
    "exact rank": "computed the exact rank of the kernel in rational arithmetic",
    "numeric": "evaluated both sides on numeric inputs",
    "numeric (max pooling is not linear)": "evaluated both sides on numeric inputs (max pooling "
    "is not linear, so no matrix identity applies)",
}


def _method_sentence(method: str) -> str:
    """Why the verdict can be trusted, in words."""
    if method not in _METHODS:
        return f"Checked by: {method}."
    return f"The checker {_METHODS[method]}."


def _evidence_step(evidence: dict, max_rows: int, max_cols: int) -> Step | None:
    from ..render.grids import array_grid
    from ..render.model import DataTable, Equation, Expr
    from ..render.printing import sympy_expr

    if not evidence:
        return None
    import sympy

    rows, grids, rules = [], [], []
    for name, value in evidence.items():
        if isinstance(value, (sympy.NDimArray, sympy.MatrixBase)):
            value = np.array(value.tolist(), dtype=object)
        if (
            isinstance(value, (np.ndarray, list, tuple))
            and np.asarray(value, dtype=object).size > 1
        ):
            grid, rule = array_grid(value, max_rows, max_cols)
            grids.append(Equation((Expr(rf"\text{{{name}}}", name), grid)))
            rules += [rule] if rule else []
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            rows.append((name, f"{int(value):,}"))
        elif isinstance(value, (float, np.floating)):
            rows.append((name, f"{float(value):.6g}"))
        elif hasattr(value, "free_symbols"):
            rows.append((name, "$" + sympy_expr(value).tex + "$"))
        else:
            rows.append((name, str(value).replace("$", "")))
    table = (DataTable(("evidence", "value"), tuple(rows), layout="pairs"),) if rows else ()
    return Step("Evidence the checker computed:", table + tuple(grids), " ".join(rules), "evidence")


def _positions_step(result: CheckResult, limit: int) -> Step | None:
    positions = result.failing_positions or ()
    if not positions:
        return None
    shown = ", ".join(str(tuple(int(i) + 1 for i in p)) for p in positions[:limit])
    more = (
        f", … ({len(positions)} in all; the first {limit} shown)" if len(positions) > limit else ""
    )
    return Step(
        f"Output positions where the identity fails (1-based): {shown}{more}.",
        justification="At each of them the two sides, evaluated on the same input, differ.",
        rule="failing positions",
    )


def _counterexample_step(cx: Counterexample, max_rows: int, max_cols: int) -> Step:
    from ..render.grids import array_grid
    from ..render.model import Equation, Expr
    from ..render.printing import number

    eqs, rules = [], []
    for name, value in cx.inputs.items():
        grid, rule = array_grid(value, max_rows, max_cols)
        eqs.append(Equation((Expr(rf"\text{{{name}}}", name), grid)))
        rules += [rule] if rule else []
    if cx.position is not None:
        pos = tuple(int(i) for i in cx.position)
        shown = tuple(i + 1 for i in pos)
        left = number(np.asarray(cx.lhs)[pos].item())
        right = number(np.asarray(cx.rhs)[pos].item())
        eqs.append(
            Equation((Expr(rf"\text{{left side at }} {shown}", f"left side at {shown}"), left))
        )
        eqs.append(
            Equation((Expr(rf"\text{{right side at }} {shown}", f"right side at {shown}"), right))
        )
    return Step(
        "A counterexample: " + cx.description.replace("$", "") + ".",
        tuple(eqs),
        (
            "The two sides differ at the position shown (1-based), so the identity fails. "
            + " ".join(rules)
        ).strip(),
        "counterexample",
    )
