"""Round-trip check of a derivation: parse every printed expression back, compare with the value.

Each :class:`~convalgebra.derivations.model.Expr` keeps the value the library computed beside its
LaTeX and text renderings. :func:`verify` parses both renderings back with sympy (LaTeX with
``sympy.parsing.latex.parse_latex`` when its ``antlr4`` runtime is installed; text always with
``convalgebra.symbolic.exprs.parse_arithmetic``, which admits arithmetic only) and checks that

* each rendering denotes exactly the computed value, and
* the sides of each equation chain are equal (after the equation's substitution),

so a derivation cannot print an equation the library did not compute. Library symbols such as
``w_{1,2,3,4}`` or ``\\frac{\\partial L}{\\partial z_{1}}`` are swapped for plain placeholders
before parsing, since sympy's LaTeX grammar does not read them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ConvAlgebraError, shown
from ..render.formats import Document
from ..render.formats import displayed as displayed_form
from ..render.model import Equation, Expr, Grid
from ..render.printing import tex_symbol, text_symbol
from ..symbolic.exprs import as_expr, parse_arithmetic

__all__ = ["verify", "latex_parser_available", "RoundTripError"]


class RoundTripError(ConvAlgebraError):
    """A printed expression that does not parse back to the value the library computed."""


def latex_parser_available() -> bool:
    """True when ``sympy.parsing.latex.parse_latex`` can run (its antlr4 runtime is installed)."""
    try:
        from sympy.parsing.latex import parse_latex

        parse_latex("x")
    except Exception:  # ImportError, or sympy's own complaint about a missing antlr4
        return False
    return True


def _symbols(derivation: Document) -> list[Any]:
    import sympy

    found: set[Any] = set()
    for eq in derivation.equations():
        for expr in eq.exprs():
            if expr.value is not None and hasattr(expr.value, "atoms"):
                # bound summation variables too, and matrix symbols, with their assumptions
                atoms = expr.value.atoms(sympy.Symbol, sympy.MatrixSymbol, sympy.IndexedBase)
                labels = {b.label for b in atoms if isinstance(b, sympy.IndexedBase)}
                found |= {s for s in atoms if not isinstance(s, sympy.Dummy) and s not in labels}
    return sorted(found, key=lambda s: (-len(tex_symbol(s)), s.name))


def _placeholders(symbols: Iterable[Any]):
    import sympy

    tex_map, text_map, back = [], [], {}
    for symbol in symbols:
        if isinstance(
            symbol, sympy.IndexedBase
        ):  # read by its own name (I is then not the imaginary unit)
            back[sympy.Symbol(str(symbol.label))] = symbol
    symbols = [s for s in symbols if not isinstance(s, sympy.IndexedBase)]
    for n, symbol in enumerate(symbols):
        tex_map.append((tex_symbol(symbol), rf"\xi_{{{n}}}"))
        text_map.append((text_symbol(symbol), f"xi_{n}"))
        back[sympy.Symbol(f"xi_{{{n}}}")] = symbol
        back[sympy.Symbol(f"xi_{n}")] = symbol
    return tex_map, sorted(text_map, key=lambda p: -len(p[0])), back


_OPEN = ("{", "(", "[", r"\lfloor", r"\lceil")
_CLOSE = ("}", ")", "]", r"\rfloor", r"\rceil")


def split_terms(tex: str) -> list[tuple[int, str]]:
    r"""Split a LaTeX sum at its top-level `` + `` and `` - `` into ``(sign, term)`` pairs.

    The antlr grammar parses a long sum in quadratic time; its terms one by one take linear
    time, and the sum of the parsed terms is the parsed sum.

    Examples
    --------
    >>> split_terms(r"w_{1} a_{1} - \frac{a - b}{2} + \lfloor 3 - 1 \rfloor")
    [(1, 'w_{1} a_{1}'), (-1, '\\frac{a - b}{2}'), (1, '\\lfloor 3 - 1 \\rfloor')]
    """
    terms, depth, start, sign, i = [], 0, 0, 1, 0
    while i < len(tex):
        opening = next((t for t in _OPEN if tex.startswith(t, i)), None)
        closing = next((t for t in _CLOSE if tex.startswith(t, i)), None)
        token = opening or closing
        if token:
            depth += 1 if opening else -1
            i += len(token)
            continue
        if depth == 0 and tex.startswith((" + ", " - "), i) and tex[start:i].strip():
            terms.append((sign, tex[start:i].strip()))
            sign, start = (1 if tex[i + 1] == "+" else -1), i + 3
            i += 3
            continue
        i += 1
    terms.append((sign, tex[start:].strip()))
    return terms


@lru_cache(maxsize=4096)
def _parse_template(template: str):
    from sympy.parsing.latex import parse_latex

    return parse_latex(template)


def _parse_term(term: str, back: dict):
    """Parse one term; its placeholders become ``x_{0}, x_{1}, …`` so equal shapes parse once."""
    import sympy

    tokens = list(dict.fromkeys(re.findall(r"\\xi_\{\d+\}", term)))
    template = term
    for k, token in enumerate(tokens):
        template = template.replace(token, f"x_{{{k}}}")
    parsed = _parse_template(template)
    return parsed.xreplace(
        {sympy.Symbol(f"x_{{{k}}}"): back[sympy.Symbol(t[1:])] for k, t in enumerate(tokens)}
    )


def _parse_tex(tex: str, tex_map, back):
    import sympy

    for name, token in tex_map:
        if name not in tex:  # most of a long document's symbols are not in this formula
            continue

        def spaced(_m: re.Match[str], t: str = token) -> str:
            return f" {t} "

        # whole tokens only: the symbol t must not match inside \cdot, nor x inside \xi
        tex = re.sub(rf"(?<![A-Za-z\\]){re.escape(name)}(?![A-Za-z])", spaced, tex)
    tex = " ".join(tex.replace("{,}", "").replace(r"\left", "").replace(r"\right", "").split())
    # sympy's grammar reads "0, 202" in an argument list as one number with a separator
    tex = re.sub(r",\s*(\d+(?:\.\d+)?)", r", (\1)", tex)
    return sympy.Add(*[sign * _parse_term(term, back) for sign, term in split_terms(tex)])


def _parse_text(text: str, text_map, back):

    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # thousands separators
    for name, token in text_map:
        if name in text:
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", token, text)
    names, symbols_only = _readings(back)
    return parse_arithmetic(text, dict(names)).xreplace(symbols_only)


_READINGS: dict[int, tuple] = {}


def _readings(back: dict) -> tuple[dict, dict]:
    """The names the text parser reads and the placeholders it swaps back, once per map."""
    import sympy

    key = id(back)
    if key in _READINGS and _READINGS[key][0] is back:
        return _READINGS[key][1], _READINGS[key][2]
    names = {str(k): v for k, v in back.items() if "{" not in str(k)}
    if "I" not in names:
        names["I"] = sympy.I
    symbols_only = {
        k: v
        for k, v in back.items()
        if not isinstance(v, (sympy.IndexedBase, sympy.MatrixExpr))
        or isinstance(v, sympy.MatrixSymbol)
    }
    _READINGS.clear()  # one map at a time: the one being verified
    _READINGS[key] = (back, names, symbols_only)
    return names, symbols_only


def _same(a: Any, b: Any) -> bool:
    import sympy

    try:
        # structurally equal (also matrix expressions, whose difference is not 0), or equal
        # up to the names of bound summation variables
        if a == b or (hasattr(a, "dummy_eq") and a.dummy_eq(b)):
            return True
    except (TypeError, ValueError):
        pass

    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        return sympy.Matrix(a).shape == sympy.Matrix(b).shape and all(
            _same(x, y) for x, y in zip(sympy.Matrix(a), sympy.Matrix(b), strict=False)
        )
    try:
        diff = as_expr(a, "value").doit() - as_expr(b, "value").doit()
    except TypeError:  # a matrix expression against a scalar: only 0 reads as the zero matrix
        return any(isinstance(x, sympy.ZeroMatrix) for x in (a, b)) and 0 in (a, b)
    return diff.expand() == 0 or sympy.simplify(diff) == 0


def _check_expr(expr: Expr, maps, use_tex: bool) -> None:
    import sympy

    if expr.value is None:
        return
    tex_map, text_map, back = maps
    identities = expr.value.atoms(sympy.Identity) if hasattr(expr.value, "atoms") else ()
    if len(identities) == 1:  # the identity matrix prints as I
        back = {**back, sympy.Symbol("I"): next(iter(identities))}
    readings: list[tuple[str, str, Callable[[str, Any, Any], Any]]] = [
        ("text", expr.text, _parse_text)
    ]
    # sympy's LaTeX grammar has no matrix semantics (M^{T} reads as a power): text only
    if use_tex and not (hasattr(expr.value, "atoms") and expr.value.atoms(sympy.MatrixExpr)):
        readings.append(("LaTeX", expr.tex, _parse_tex))
    for kind, rendering, parse in readings:
        try:
            parsed = parse(rendering, *((tex_map, back) if kind == "LaTeX" else (text_map, back)))
        except Exception as exc:
            raise RoundTripError(f"{kind} {shown(rendering)} does not parse: {exc}") from exc
        parsed = _functions(_euler(_imaginary_unit(parsed, expr.value), expr.value))
        if not _same(parsed, expr.value):
            raise RoundTripError(
                f"{kind} {shown(rendering)} reads {parsed}, but the library computed {expr.value}"
            )


def _functions(parsed: Any) -> Any:
    """LaTeX ``\\max``/``\\min`` parse as undefined functions: read them as sympy's Max and Min."""
    import sympy

    if not hasattr(parsed, "replace"):
        return parsed
    named = {"max": sympy.Max, "min": sympy.Min}
    return parsed.replace(
        lambda e: isinstance(e, sympy.Function) and type(e).__name__ in named,
        lambda e: named[type(e).__name__](*e.args),
    )


def _imaginary_unit(parsed: Any, value: Any) -> Any:
    """LaTeX prints the imaginary unit as ``i``: read a free ``i`` as ``I`` when the value has ``I`` and no ``i``."""
    import sympy

    if not (hasattr(value, "has") and value.has(sympy.I) and hasattr(parsed, "free_symbols")):
        return parsed
    named_i = [s for s in parsed.free_symbols if getattr(s, "name", "") == "i"]
    if named_i and not any(getattr(s, "name", "") == "i" for s in value.free_symbols):
        return parsed.xreplace({named_i[0]: sympy.I})
    return parsed


def _euler(parsed: Any, value: Any) -> Any:
    """LaTeX prints ``exp(x)`` as ``e^{x}`` and π as ``\\pi``: read a free ``e`` or ``pi`` as
    the constant when the value has no symbol of that name."""
    import sympy

    if not hasattr(parsed, "free_symbols") or not hasattr(value, "free_symbols"):
        return parsed
    taken = {getattr(s, "name", "") for s in value.free_symbols}
    constants = {"e": sympy.E, "pi": sympy.pi}
    swap = {
        s: constants[s.name]
        for s in parsed.free_symbols
        if getattr(s, "name", "") in constants and s.name not in taken
    }
    return parsed.xreplace(swap) if swap else parsed


def _check_chain(eq: Equation) -> None:
    """Sides joined by ``=`` links (a run) must be equal, after the equation's substitution."""
    n = len(eq.sides) - 1
    relations = [eq.relation] * n if isinstance(eq.relation, str) else list(eq.relation)
    runs: list[list] = [[eq.sides[0]]]
    for relation, side in zip(relations, eq.sides[1:], strict=False):
        if relation == "=":
            runs[-1].append(side)
        else:
            runs.append([side])
    if not eq.chain:
        return
    if eq.defines:
        runs[0] = runs[0][1:]
    subs = dict(eq.subs)
    for run in runs:
        values = [s.value for s in run if s.value is not None]
        values = [v.xreplace(subs) if subs and hasattr(v, "xreplace") else v for v in values]
        for left, right in zip(values, values[1:], strict=False):
            if not _same(left, right):
                raise RoundTripError(f"equation {shown(eq.sides[0].text)}: {left} != {right}")


def _evaluate(text: str, maps, meaning: dict) -> Any:
    """The printed ``text`` read back and evaluated on ``meaning``; None if a name has none."""
    import sympy

    if "…" in text or "⋮" in text:  # a sum cut short by a stated rule: not a value
        return None
    parsed = _functions(_parse_text(text, maps[1], maps[2]))
    if not hasattr(parsed, "free_symbols"):
        return parsed
    subs = {}
    for s in parsed.free_symbols:
        name = text_symbol(s) if isinstance(s, sympy.Symbol) else None
        if name not in meaning or _is_array(meaning[name]):
            raise RoundTripError(f"{text!r} prints the name {name!r}, which stands for nothing")
        subs[s] = sympy.nsimplify(meaning[name])
    return sympy.sympify(parsed.xreplace(subs)).doit()


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or hasattr(value, "tocsr")


def _agrees(got: Any, want: Any) -> bool:
    import sympy

    if got.is_Rational and float(want).is_integer():
        return bool(got == int(want))
    return abs(complex(sympy.N(got)) - complex(want)) <= 1e-9 * max(1.0, abs(complex(want)))


def _check_grid(label: str, grid: Grid, maps, meaning: dict) -> int:
    """Each shown cell of a matrix, read back, against the entry of the meant array at its
    true (row, column)."""
    array = meaning[label]
    if not hasattr(array, "tocsr"):
        array = np.asarray(array)
        array = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(-1, array.shape[-1])
    if not grid.rows or not grid.cols:  # a grid of named blocks, not of entries
        return 0
    count = 0
    for r, row in zip(grid.rows, grid.cells, strict=True):
        for c, cell in zip(grid.cols, row, strict=True):
            if r is None or c is None or not isinstance(cell, Expr):
                continue
            got = _evaluate(cell.text, maps, meaning)
            if got is None:
                continue
            want = array[r, c]
            if not _agrees(got, want):
                raise RoundTripError(
                    f"{label} entry ({r + 1}, {c + 1}) prints {cell.text!r} = {got}, "
                    f"but it is {want}"
                )
            count += 1
    return count


def _check_meaning(eq: Equation, maps, meaning: dict) -> int | None:
    """Evaluate every side linked by ``=`` to a meant name on the meaning; return how many
    (None when the equation does not define a meant name)."""
    label = eq.sides[0]
    if isinstance(label, Grid):
        return None
    entry = re.fullmatch(r"(.+)\[(\d+),(\d+)\]", label.text)  # one entry of a matrix
    if entry and entry.group(1) in meaning and len(eq.sides) == 2:
        grid = Grid(
            ((eq.sides[1],),), rows=(int(entry.group(2)) - 1,), cols=(int(entry.group(3)) - 1,)
        )
        return _check_grid(entry.group(1), grid, maps, meaning)
    if label.text not in meaning:
        return None
    want = meaning[label.text]
    if _is_array(want):
        grids = [s for s in eq.sides[1:] if isinstance(s, Grid)]
        return sum(_check_grid(label.text, g, maps, meaning) for g in grids)
    count = 0
    for relation, side in zip(_relations(eq), eq.sides[1:], strict=False):
        if relation != "=":
            break
        got = None if isinstance(side, Grid) else _evaluate(side.text, maps, meaning)
        if got is None:
            continue
        if not _agrees(got, want):
            raise RoundTripError(
                f"{label.text} = {side.text} evaluates to {got}, but {label.text} is {want}"
            )
        count += 1
    return count


def _relations(eq: Equation) -> list[str]:
    n = len(eq.sides) - 1
    return [eq.relation] * n if isinstance(eq.relation, str) else list(eq.relation)


def verify(derivation: Document, *, latex: bool | None = None, meaning: dict | None = None) -> int:
    """Check every equation of ``derivation``; return how many expressions were parsed back.

    Parameters
    ----------
    latex : bool, optional
        Parse the LaTeX renderings too. Defaults to whether the LaTeX parser is available.
    meaning : dict, optional
        What the printed names stand for (see :mod:`convalgebra.derivations.oracle`);
        defaults to the derivation's own ``meaning``. Every printed equation whose names
        all have one is evaluated on it, each shown matrix cell at its true row and column,
        and at least one must be.

    Raises
    ------
    RoundTripError
        A rendering that does not denote the computed value, or an unequal chain.

    Examples
    --------
    >>> import convalgebra as ca
    >>> d = ca.derive("forward", ca.ConvSpec((1, 3), 1, 2))
    >>> verify(d, latex=False) > 0
    True
    """
    use_tex = latex_parser_available() if latex is None else latex
    maps = _placeholders(_symbols(derivation))
    if meaning is None and callable(getattr(derivation, "meaning", None)):
        meaning = derivation.meaning()  # type: ignore[attr-defined]
    count = displayed = meant = labelled = 0
    for eq in derivation.equations():
        displayed += 1
        if meaning is not None:
            printed = displayed_form(eq)
            for form in [eq] + [e for e in printed if e is not eq]:
                checked = _check_meaning(form, maps, meaning)
                labelled += checked is not None
                meant += checked or 0
        if eq.check is not None:
            try:
                count += eq.check()
            except AssertionError as exc:
                raise RoundTripError(f"general formula {eq.sides[0].text!r}: {exc}") from None
        for side in eq.sides:
            exprs = side.exprs() if isinstance(side, Grid) else [side]
            for expr in exprs:  # a proof statement's LaTeX (Sum, Indexed) is beyond sympy's grammar
                _check_expr(expr, maps, use_tex and eq.chain)
                count += expr.value is not None
        _check_chain(eq)
    if displayed and not count:
        raise RoundTripError(
            f"{derivation.title!r} displays {displayed} equations but none carries a value or "
            "a check: nothing could be verified"
        )
    if meaning is not None and not labelled:
        raise RoundTripError(
            f"{derivation.title!r}: no printed equation defines a name that stands for a value"
        )
    return count + meant
