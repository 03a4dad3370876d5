"""A :class:`~convalgebra.identities.CheckResult` derives itself: claim, proof steps, evidence,
counterexample.

The statements of the proof steps are the checker's own sympy expressions, printed with
``order="none"`` so they read in the order the checker wrote them. Arrays (a counterexample's
input, the two sides evaluated on it) are shown as matrices, truncated past a stated size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConvAlgebraError
from ..exprs import as_expr
from .matrices import pick, truncation_rule
from .model import Derivation, Equation, Expr, Grid, Step, Table
from .printing import number, sympy_expr, tex_to_text

__all__ = ["derive_check", "array_grid"]

_RELATIONS = {"Equality": "=", "Unequality": "!=", "LessThan": "<=", "GreaterThan": ">=",
              "StrictLessThan": "<", "StrictGreaterThan": ">"}


def _sympy_expr(value: Any) -> Expr:
    """A proof statement's side: the checker's own expression, as notation (not re-parsed)."""
    e = sympy_expr(value)
    return Expr(e.tex, tex_to_text(e.text))


def _statement(statement: Any) -> tuple[str, tuple]:
    """Prose and displayed equations for one proof step's statement."""
    if isinstance(statement, str):
        return statement, ()
    relation = _RELATIONS.get(type(statement).__name__)
    if relation is not None:
        eq = Equation((_sympy_expr(statement.lhs), _sympy_expr(statement.rhs)), defines=False, relation=relation)
        return "", (eq,)
    return "", (Equation((_sympy_expr(statement),), defines=False),)


def array_grid(value: Any, max_rows: int = 12, max_cols: int = 12) -> tuple[Grid, str]:
    """A numeric or symbolic array as a :class:`Grid` (2-D view ``(-1, last axis)``) and its truncation rule."""
    import sympy

    array = np.asarray(value, dtype=object)
    matrix = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(-1, array.shape[-1])
    rows, cols = pick(matrix.shape[0], max_rows), pick(matrix.shape[1], max_cols)

    def cell(v: Any) -> Expr:
        v = sympy.nsimplify(v) if isinstance(v, (float, np.floating)) else as_expr(v, "value")
        return number(v) if v.is_number else sympy_expr(v)

    cells = tuple(tuple(("d" if j is None else "v") if i is None else ("h" if j is None else cell(matrix[i, j]))
                        for j in cols) for i in rows)
    full = None not in rows and None not in cols
    grid_value = sympy.Matrix([[c.value for c in row] for row in cells]) if full else None
    return Grid(cells, grid_value), truncation_rule(*matrix.shape, max_rows, max_cols)


def _evidence_step(evidence: dict, max_rows: int, max_cols: int) -> Step | None:
    if not evidence:
        return None
    import sympy

    rows, grids, rules = [], [], []
    for name, value in evidence.items():
        if isinstance(value, (sympy.NDimArray, sympy.MatrixBase)):
            value = np.array(value.tolist(), dtype=object)
        if isinstance(value, (np.ndarray, list, tuple)) and np.asarray(value, dtype=object).size > 1:
            grid, rule = array_grid(value, max_rows, max_cols)
            grids.append(Equation((Expr(rf"\text{{{name}}}", name), grid)))
            rules += [rule] if rule else []
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            rows.append((name, f"{int(value):,}"))
        elif isinstance(value, (float, np.floating)):
            rows.append((name, f"{float(value):.6g}"))
        elif hasattr(value, "free_symbols"):
            rows.append((name, "$" + _sympy_expr(value).tex + "$"))
        else:
            rows.append((name, str(value).replace("$", "")))
    table = (Table(("evidence", "value"), tuple(rows)),) if rows else ()
    return Step("Evidence the checker computed:", table + tuple(grids), " ".join(rules), "evidence")


def _positions_step(result: Any, limit: int) -> Step | None:
    positions = result.failing_positions or ()
    if not positions:
        return None
    shown = ", ".join(str(tuple(int(i) for i in p)) for p in positions[:limit])
    more = f", ... ({len(positions)} in all; the first {limit} shown)" if len(positions) > limit else ""
    return Step(f"Output positions where the identity fails (0-based): {shown}{more}.", rule="failing positions")


def _counterexample_step(cx: Any, max_rows: int, max_cols: int) -> Step:
    eqs, rules = [], []
    for name, value in cx.inputs.items():
        grid, rule = array_grid(value, max_rows, max_cols)
        eqs.append(Equation((Expr(rf"\text{{{name}}}", name), grid)))
        rules += [rule] if rule else []
    if cx.position is not None:
        pos = tuple(int(i) for i in cx.position)
        left = number(np.asarray(cx.lhs)[pos].item())
        right = number(np.asarray(cx.rhs)[pos].item())
        eqs.append(Equation((Expr(rf"\text{{left side at }} {pos}", f"left side at {pos}"), left), relation="="))
        eqs.append(Equation((Expr(rf"\text{{right side at }} {pos}", f"right side at {pos}"), right), relation="="))
    return Step("Counterexample: " + cx.description.replace("$", "") + ".", tuple(eqs),
                ("The two sides differ at the position shown, so the identity fails. " + " ".join(rules)).strip(),
                "counterexample")


def derive_check(result: Any, *, max_positions: int = 12, max_rows: int = 12, max_cols: int = 12) -> Derivation:
    """The derivation of a :class:`~convalgebra.identities.CheckResult`: claim, proof, evidence, counterexample.

    Examples
    --------
    >>> import convalgebra as ca
    >>> r = ca.check("translation_equivariance", ca.ConvSpec((1, 6), 1, 3, padding=1, padding_mode="circular"))
    >>> print(ca.derive(r).to_text().splitlines()[0])  # doctest: +ELLIPSIS
    translation_equivariance: HOLDS
    """
    if not hasattr(result, "holds") or not hasattr(result, "claim"):
        raise ConvAlgebraError(f"check derivations need a CheckResult, got {type(result).__name__}")
    steps = [Step(f"Claim: {result.claim}.", justification=f"Checked by {result.method}.", rule="claim")]
    for s in result.steps:
        prose, math = _statement(s.statement)
        steps.append(Step(prose or "", math, s.justification, "proof"))
    for extra in (_evidence_step(result.evidence, max_rows, max_cols), _positions_step(result, max_positions)):
        steps += [extra] if extra else []
    if result.counterexample is not None:
        steps.append(_counterexample_step(result.counterexample, max_rows, max_cols))
    steps.append(Step(f"Verdict: the identity {'holds' if result.holds else 'fails'}. {result.reason}",
                      rule="verdict"))
    return Derivation(f"{result.law}: {result.verdict}", tuple(steps), result=result)
