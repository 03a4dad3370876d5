"""The one conversion of user values to sympy: data is never code.

Weights and inputs of the symbolic functions are numbers, numpy arrays, sympy expressions,
or *names* that become :class:`sympy.Symbol`. A string is read only as a number (``"3"``,
``"-2.5"``, ``"1/3"``, ``"1e-3"``) or as an ASCII identifier (``"w1"``, ``"alpha"``); anything
else is a ``TypeError`` naming the argument. Nothing typed by a user reaches ``eval``,
``sympify`` or ``parse_expr``.

Examples
--------
>>> as_expr("w1", "weight"), as_expr("1/3", "weight"), as_expr(2, "weight")
(w1, 1/3, 2)
>>> as_expr("__import__('os')", "weight")
Traceback (most recent call last):
...
TypeError: weight entries must be numbers, sympy expressions or names (a string is read only as a number like 2, -1.5, 1/3 or an ASCII identifier like w1), got "__import__('os')"
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import numpy as np

from ..errors import ConvAlgebraError, shown
from ..spec import plain_array

__all__ = ["as_expr", "as_expr_array", "parse_arithmetic", "NUMBER", "IDENTIFIER"]

#: A decimal number, optionally signed, with an optional exponent; or an integer fraction.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+/\d+", re.ASCII)
#: An ASCII identifier that does not start with an underscore.
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*", re.ASCII)

_RULE = (
    "numbers, sympy expressions or names (a string is read only as a number like 2, -1.5, "
    "1/3 or an ASCII identifier like w1)"
)


def _from_text(text: str, name: str):
    import sympy

    stripped = text.strip(" \t\n\r\f\v")  # ASCII whitespace only, as the patterns
    if len(stripped) <= 100 and NUMBER.fullmatch(stripped):
        if "/" in stripped:
            num, den = stripped.split("/")
            if int(den) == 0:
                raise ConvAlgebraError(f"{name} entries: division by zero in {shown(text)}")
            return sympy.Rational(int(num), int(den))
        if re.fullmatch(r"[+-]?\d+", stripped):
            return sympy.Integer(int(stripped))
        return sympy.Float(float(stripped))
    if len(stripped) <= 100 and IDENTIFIER.fullmatch(stripped):
        return sympy.Symbol(stripped)
    raise TypeError(f"{name} entries must be {_RULE}, got {shown(text)}")


def as_expr(value: Any, name: str):
    """One value as a sympy expression: numbers, sympy objects, names; nothing is evaluated.

    Parameters
    ----------
    value : number, numpy scalar, sympy expression or str
    name : str
        The argument's name, for the error message.

    Raises
    ------
    TypeError
        A string that is neither a number nor an identifier, or an object of another type.
    """
    import sympy

    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, (str, np.str_)):
        return _from_text(str(value), name)
    if isinstance(value, (bool, np.bool_)):
        return sympy.Integer(int(value))
    if isinstance(value, (int, float, complex, np.number)):
        if isinstance(value, np.floating) and value.dtype.itemsize < 4:
            value = np.float32(value)  # float16 is computed in float32 everywhere
        return sympy.sympify(value, strict=True)
    raise TypeError(f"{name} entries must be {_RULE}, got {type(value).__name__} {shown(value)}")


def as_expr_array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """An object array of sympy expressions of ``shape`` (see :func:`as_expr` for the entries).

    Examples
    --------
    >>> as_expr_array([["a", 2]], (1, 2), "x").tolist()
    [[a, 2]]
    """
    value = plain_array(value)  # a torch tensor, detached
    if isinstance(value, (str, bytes, dict, set)) or value is None:
        raise TypeError(f"{name} must be an array of {_RULE}, got {shown(value)}")
    try:
        array = np.asarray(value, dtype=object)
    except ValueError as exc:  # ragged nesting
        raise ConvAlgebraError(
            f"{name} must be a rectangular array of shape {shape}, got {shown(value)}"
        ) from exc
    if array.shape != tuple(shape):
        raise ConvAlgebraError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    out = np.empty(array.size, dtype=object)
    out[:] = [as_expr(v, name) for v in array.ravel().tolist()]
    return out.reshape(array.shape)


#: Function names a printed expression of the library may contain.
_KNOWN = (
    "sqrt",
    "I",
    "pi",
    "E",
    "oo",
    "zoo",
    "nan",
    "exp",
    "log",
    "cos",
    "sin",
    "Abs",
    "sign",
    "floor",
    "ceiling",
    "Mod",
    "Sum",
    "Rational",
    "Integer",
    "Float",
    "Symbol",
    "Function",
    "KroneckerProduct",
    "Transpose",
    "Identity",
    "ZeroMatrix",
    "re",
    "im",
    "conjugate",
    "Max",
    "Min",
    "Piecewise",
    "Eq",
    "Ne",
)
_SAFE_TEXT = re.compile(r"[\sA-Za-z0-9_.,*/+\-()^{}\[\]]*", re.ASCII)
#: Every ``[`` must subscript a name (an indexed symbol the caller passes in ``names``).
_SUBSCRIPT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)?\s*\[", re.ASCII)


def parse_arithmetic(text: str, names: dict[str, Any] | None = None):
    """Parse the library's own printed arithmetic back to sympy, after checking it is only that.

    Accepted: numbers, names (``names`` maps some to objects; others become symbols),
    ``+ - * / **``, parentheses and calls of the few sympy functions the printer emits. No
    quotes, brackets, attribute access or dunder names pass, and the parser's namespace holds
    nothing else (no builtins).

    Examples
    --------
    >>> parse_arithmetic("2*(j - 1) + m")
    2*j + m - 2
    >>> parse_arithmetic("x.__class__")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: not arithmetic of known names: 'x.__class__'
    """
    import sympy
    from sympy.core.facts import InconsistentAssumptions
    from sympy.parsing.sympy_parser import parse_expr

    if not isinstance(text, str):
        raise TypeError(f"text must be a string of arithmetic, got {shown(text)}")
    calls = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", text))
    subscripted = [m.group(1) for m in _SUBSCRIPT.finditer(text)]
    if (
        not _SAFE_TEXT.fullmatch(text)
        or "__" in text
        or re.search(r"[A-Za-z_)]\s*\.", text)
        or calls - set(_KNOWN)
        or len(text) > 10**6
        or any(name is None or name not in (names or {}) for name in subscripted)
    ):
        raise ConvAlgebraError(f"not arithmetic of known names: {shown(text)}")
    namespace: dict[str, Any] = {"__builtins__": {}}
    namespace.update({n: getattr(sympy, n) for n in _KNOWN})
    local = dict(names or {})
    depth = max(itertools.accumulate((c == "(") - (c == ")") for c in text), default=0)
    if depth > MAX_NESTING:
        raise ConvAlgebraError(
            f"cannot read {shown(text)} as arithmetic: parentheses nest {depth:,} deep, over "
            f"the limit of {MAX_NESTING}"
        )
    plain = {**namespace, **{n: getattr(sympy, n) for n in _UNEVALUATED}}
    try:  # first unevaluated, to bound the powers before any is computed
        try:
            _check_powers(parse_expr(text, local_dict=local, global_dict=plain, evaluate=False))
        except InconsistentAssumptions:
            # sympy caches unevaluated trees across calls with the facts half-deduced on them,
            # and a later query in another order can contradict them: decide afresh once
            sympy.core.cache.clear_cache()
            _check_powers(parse_expr(text, local_dict=local, global_dict=plain, evaluate=False))
        return parse_expr(text, local_dict=local, global_dict=namespace)
    except ConvAlgebraError:
        raise
    except (
        SyntaxError,
        ValueError,
        TypeError,
        ArithmeticError,
        RecursionError,
        MemoryError,
    ) as exc:
        raise ConvAlgebraError(f"cannot read {shown(text)} as arithmetic: {_reason(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - tokenize.TokenError and sympy's own errors
        if type(exc).__module__.split(".")[0] not in ("tokenize", "sympy"):
            raise
        raise ConvAlgebraError(f"cannot read {shown(text)} as arithmetic: {_reason(exc)}") from None


#: Most decimal digits a number written in a parsed expression may evaluate to.
MAX_DIGITS = 4_000  # under Python's 4,300 of int <-> str
#: Deepest nesting of parentheses read.
MAX_NESTING = 100
#: The constructors an unevaluated parse names (the operators, spelled as calls).
_UNEVALUATED = ("Add", "Mul", "Pow", "Not", "Or", "And", "Xor")


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {shown(str(exc), 120)}" if str(exc) else type(exc).__name__


def _check_powers(expr) -> None:
    """Refuse, before evaluating, a power of numbers over :data:`MAX_DIGITS` digits
    (``9**9**9**9``) or a Float of more than that precision; inner powers are checked first."""
    import sympy

    total = 0.0
    for node in sympy.postorder_traversal(expr):
        if isinstance(node, sympy.Float) and node._prec > 4 * MAX_DIGITS:
            raise ConvAlgebraError(f"a number with {node._prec:,} bits of precision is too long")
        if not isinstance(node, sympy.Pow) or node.free_symbols:
            continue
        if any(a.is_finite is False or a is sympy.nan for a in node.args):  # oo, zoo, nan
            continue
        base, exponent = (abs(complex(sympy.N(a, 15))) for a in node.args)
        digits = exponent * abs(math.log10(base)) if base not in (0.0, 1.0) else 0.0
        total += digits
        if not digits <= MAX_DIGITS or not total <= 10 * MAX_DIGITS:  # nan and inf too
            raise ConvAlgebraError(
                f"the power {shown(str(node), 60)} would have about {digits:.3g} digits, over "
                f"the limit of {MAX_DIGITS:,}"
            )
