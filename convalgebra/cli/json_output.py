"""``--format json`` for ``spectrum``, ``check`` and ``grad``: the same objects the text
prints, as data (arrays as nested lists, sympy expressions as their text)."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["jsonable", "dumps", "check_record"]


def jsonable(value: Any) -> Any:
    """Plain JSON values: numbers stay numbers (ints exact), arrays become nested lists,
    anything symbolic becomes its text.

    Examples
    --------
    >>> jsonable({"a": np.array([[1, 2]]), "b": (Fraction(1, 2), np.float64(0.5), None)})
    {'a': [[1, 2]], 'b': ['1/2', 0.5, None]}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else str(float(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()] if value.ndim else jsonable(value.item())
    if hasattr(value, "tolist") and not isinstance(value, Fraction):  # sympy arrays, matrices
        return jsonable(value.tolist())
    if getattr(value, "is_Integer", False):
        return int(value)
    return str(value)


def dumps(record: dict) -> str:
    """The record as indented JSON."""
    return json.dumps(jsonable(record), indent=1, ensure_ascii=False)


def check_record(result: Any) -> dict:
    """A :class:`~convalgebra.identities.CheckResult` as data."""
    record: dict[str, Any] = {
        "law": result.law,
        "holds": bool(result.holds),
        "verdict": result.verdict,
        "claim": result.claim,
        "reason": result.reason,
        "method": result.method,
        "evidence": result.evidence,
        "failing_positions": result.failing_positions,
        "counterexample": None,
    }
    c = result.counterexample
    if c is not None:
        record["counterexample"] = {
            "description": c.description,
            "inputs": c.inputs,
            "lhs": c.lhs,
            "rhs": c.rhs,
            "position": c.position,
        }
    return record
