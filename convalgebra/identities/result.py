"""CheckResult: the verdict of an identity check, its evidence, and how it renders.

A check never returns a bare bool. It returns a :class:`CheckResult` carrying

* ``holds`` -- the verdict;
* ``claim`` -- the identity that was checked, in words;
* ``reason`` -- why it holds or fails, one paragraph;
* ``evidence`` -- named facts (a residual, a count, a symbolic condition, a fraction ...);
* ``counterexample`` -- a :class:`Counterexample` with concrete numbers, or ``None`` when it holds;
* ``failing_positions`` -- output multi-indices where the identity breaks, where meaningful;
* ``steps`` -- a list of :class:`Step` (statement + justification), the derivation of the
  verdict, which the derivation renderer turns into LaTeX/Markdown text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Step", "Counterexample", "CheckResult"]


def _latex(value: Any) -> str:
    """LaTeX of a sympy object, a number or an array; plain text is wrapped in \\text{}."""
    if isinstance(value, str):
        return r"\text{" + value.replace("_", r"\_") + "}"
    try:
        import sympy
    except ImportError:  # pragma: no cover
        return str(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            value = sympy.Matrix([value.tolist()])
        elif value.ndim == 2:
            value = sympy.Matrix(value.tolist())
        else:
            return str(value.tolist())
    if isinstance(value, (sympy.Basic, sympy.MatrixBase, sympy.NDimArray)):
        return sympy.latex(value)
    return str(value)


def _plain(value: Any) -> str:
    """Readable one-line text of a statement: ``a = b`` rather than ``Eq(a, b)``."""
    rel = {"Equality": "=", "Unequality": "≠"}.get(type(value).__name__)
    if rel is not None:
        return f"{value.lhs} {rel} {value.rhs}"
    return str(value)


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, threshold=60, max_line_width=100)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class Step:
    """One line of a derivation: a statement and the reason it follows.

    Attributes
    ----------
    statement : sympy expression or str
        An equation (``sympy.Eq``), an expression, or a sentence.
    justification : str
        Why the statement holds (e.g. "change of summation variable n = i - m").

    Examples
    --------
    >>> import sympy
    >>> s = Step(sympy.Eq(sympy.Symbol("a"), 1), "by definition")
    >>> s.latex, s.text
    ('a = 1', 'a = 1    [by definition]')
    """

    statement: Any
    justification: str

    def __post_init__(self) -> None:
        # sympy evaluates Eq(a, b) to a bare True/False when it can decide it structurally,
        # which would print "False" as a proof step: build such equations with evaluate=False.
        from sympy.logic.boolalg import BooleanAtom

        if isinstance(self.statement, (bool, BooleanAtom)):
            raise TypeError(
                f"Step statement evaluated to {self.statement}; build it with evaluate=False"
            )

    @property
    def latex(self) -> str:
        """The statement as LaTeX (a sentence is wrapped in ``\\text{}``)."""
        return _latex(self.statement)

    @property
    def text(self) -> str:
        """The statement followed by its justification in brackets."""
        return f"{_plain(self.statement)}    [{self.justification}]"


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
            lines.append(f"  {name} = {_text(np.asarray(value)).replace(chr(10), chr(10) + '    ')}")
        if self.position is not None:
            lines.append(
                f"  at {self.position}: left side {_text(self.lhs[self.position])}, "
                f"right side {_text(self.rhs[self.position])}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`convalgebra.check`: verdict, evidence and derivation.

    ``bool(result)`` is ``result.holds``.

    Examples
    --------
    >>> r = CheckResult("demo", True, "1 + 1 = 2", "integer arithmetic", {"residual": 0})
    >>> print(r.to_text())
    demo: HOLDS -- 1 + 1 = 2
    integer arithmetic
      residual: 0
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

    def __bool__(self) -> bool:
        return bool(self.holds)

    @property
    def verdict(self) -> str:
        return "HOLDS" if self.holds else "FAILS"

    def _positions_text(self, limit: int = 12) -> str:
        pos = self.failing_positions or ()
        shown = ", ".join(str(p) for p in pos[:limit])
        more = f", … ({len(pos)} in all)" if len(pos) > limit else ""
        return shown + more

    def to_text(self) -> str:
        """Plain text: verdict, reason, evidence, failing positions, counterexample, steps."""
        lines = [f"{self.law}: {self.verdict} -- {self.claim}", self.reason]
        lines += [f"  {k}: {_text(v)}" for k, v in self.evidence.items()]
        if self.failing_positions:
            lines.append(f"  failing output positions: {self._positions_text()}")
        if self.counterexample is not None:
            lines.append("counterexample: " + self.counterexample.to_text())
        if self.steps:
            lines.append("derivation:")
            lines += [f"  {i}. {s.text}" for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Markdown with inline LaTeX (``$…$``), for notebooks and reports."""
        lines = [f"**{self.law}: {self.verdict}** — {self.claim}", "", self.reason, ""]
        lines += [f"- *{k}*: ${_latex(v)}$" if _is_math(v) else f"- *{k}*: {_text(v)}"
                  for k, v in self.evidence.items()]
        if self.failing_positions:
            lines.append(f"- *failing output positions*: {self._positions_text()}")
        if self.counterexample is not None:
            lines += ["", "Counterexample:", "", "```", self.counterexample.to_text(), "```"]
        if self.steps:
            lines += ["", "Derivation:", ""]
            lines += [f"{i}. ${s.latex}$ — {s.justification}" for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines)

    def to_latex(self) -> str:
        """A LaTeX fragment: verdict paragraph and the derivation as an ``align*``."""
        esc = _escape
        parts = [rf"\paragraph{{{esc(self.law)}: {self.verdict}}} {esc(self.claim)}. {esc(self.reason)}"]
        for k, v in self.evidence.items():
            parts.append(rf"\\ \emph{{{esc(k)}}}: $" + _latex(v) + "$" if _is_math(v)
                         else rf"\\ \emph{{{esc(k)}}}: {esc(_text(v))}")
        if self.failing_positions:
            parts.append(rf"\\ \emph{{failing output positions}}: {esc(self._positions_text())}")
        if self.counterexample is not None:
            parts.append(r"\\ \emph{counterexample}: " + esc(self.counterexample.description))
        if self.steps:
            body = r" \\".join(
                rf"\quad & {s.latex} && \text{{{esc(s.justification)}}}" for s in self.steps
            )
            parts.append(r"\begin{align*}" + body + r"\end{align*}")
        return "\n".join(parts)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def __str__(self) -> str:
        return self.to_text()


def _is_math(value: Any) -> bool:
    try:
        import sympy
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, (sympy.Basic, sympy.MatrixBase, sympy.NDimArray))


def _escape(text: str) -> str:
    table = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
             "{": r"\{", "}": r"\}", "$": r"\$"}
    return "".join(table.get(ch, ch) for ch in text)
