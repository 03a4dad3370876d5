"""Printing for derivations: symbols, sums of products, index formulas, numbers.

sympy prints in canonical order (``a1*w1``, ``h_{-k + m}``, ``-1 + N``), which reads badly in a
textbook. These helpers print terms in the order a derivation builds them (``w_{1} a_{1}``,
``m - k``, ``N - 1``) and return a :class:`~convalgebra.render.model.Expr` that keeps the value
the library computed beside both renderings, so the rendering can be checked against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..symbolic.exprs import as_expr, parse_arithmetic
from .model import Expr

__all__ = [
    "tex_symbol",
    "text_symbol",
    "grad_symbol",
    "symbol_expr",
    "number",
    "sum_of_products",
    "linear",
    "tex_to_text",
    "grouped",
    "is_notation",
    "sympy_expr",
    "tex",
    "text",
]

_GRAD = "dL/d"


def grad_symbol(symbol: Any):
    """The symbol for ``∂L/∂symbol`` (a gradient arriving from the loss ``L``).

    Examples
    --------
    >>> import sympy
    >>> tex_symbol(grad_symbol(sympy.Symbol("z1")))
    '\\\\frac{\\\\partial L}{\\\\partial z_{1}}'
    """
    import sympy

    return sympy.Symbol(f"{_GRAD}{symbol.name}")


_NOTATION = re.compile(r"[\\ ()^+]")


def is_notation(symbol: Any) -> bool:
    """True for a symbol whose name is LaTeX notation (``(M v_j)_r``, ``\\omega^{j r}``), not a variable.

    Examples
    --------
    >>> import sympy
    >>> is_notation(sympy.Symbol("(M v_j)_r")), is_notation(sympy.Symbol("w_{1,2}"))
    (True, False)
    """
    name = getattr(symbol, "name", "")
    return isinstance(name, str) and not name.startswith(_GRAD) and bool(_NOTATION.search(name))


def tex_symbol(symbol: Any) -> str:
    """LaTeX of a library symbol: ``w1 -> w_{1}``, ``dL/dz1 -> \\frac{\\partial L}{\\partial z_{1}}``."""
    import sympy

    name = symbol.name
    if is_notation(symbol):
        return name
    if name.startswith(_GRAD):
        inner = tex_symbol(sympy.Symbol(name[len(_GRAD) :]))
        return rf"\frac{{\partial L}}{{\partial {inner}}}"
    if "_{" in name:
        return name
    match = re.fullmatch(r"([A-Za-z]+)(\d+)", name)
    return f"{match.group(1)}_{{{match.group(2)}}}" if match else sympy.latex(symbol)


def text_symbol(symbol: Any) -> str:
    """Plain text of a library symbol: ``w1``, ``w_{1,2}`` -> ``w_1,2``, ``dL/dz1`` -> ``dL/dz1``."""
    return symbol.name.replace("_{", "_").replace("}", "")


def symbol_expr(symbol: Any) -> Expr:
    """A single symbol as an :class:`Expr`."""
    return Expr(tex_symbol(symbol), text_symbol(symbol), symbol)


def _tex_number(value: Any) -> str:
    import sympy

    value = sympy.nsimplify(value) if isinstance(value, float) else as_expr(value, "value")
    if value.is_Integer:
        return f"{int(value):,}".replace(",", "{,}")
    return sympy.latex(value)


def number(value: Any) -> Expr:
    """An exact number (thousands separated as ``163{,}840{,}000`` in LaTeX).

    Examples
    --------
    >>> number(163840000).tex
    '163{,}840{,}000'
    """
    import sympy

    exact = (
        sympy.nsimplify(value) if isinstance(value, (float, complex)) else as_expr(value, "value")
    )
    return Expr(_tex_number(exact), f"{int(exact):,}" if exact.is_Integer else str(exact), exact)


def _factor(value: Any) -> tuple[str, str, bool]:
    """(tex, text, is_number) of one factor; negative numbers are parenthesised."""

    value = as_expr(value, "value")
    if value.is_Symbol:
        return tex_symbol(value), text_symbol(value), False
    tex, text = _tex_number(value), str(value)
    if value.is_number and value.is_negative:
        tex, text = f"({tex})", f"({text})"
    return tex, text, True


def sum_of_products(terms: Sequence[Sequence[Any]], value: Any = None) -> Expr:
    """``Σ Π factors`` printed in the given order (``w_{1} a_{1} + w_{2} a_{2}``).

    ``value`` is what the library computed for this sum (checked against the rendering
    when the derivation is verified); it defaults to the sum of the terms.

    Examples
    --------
    >>> import sympy
    >>> w1, a1, w2, a2 = sympy.symbols("w1 a1 w2 a2")
    >>> e = sum_of_products([(w1, a1), (w2, a2)])
    >>> e.tex, e.text
    ('w_{1} a_{1} + w_{2} a_{2}', 'w1*a1 + w2*a2')
    >>> sum_of_products([(2, -1), (3, 4)]).tex
    '2 \\\\cdot (-1) + 3 \\\\cdot 4'
    """
    import sympy

    if not terms:
        return number(0) if value is None else Expr("0", "0", value)
    tex_terms, text_terms = [], []
    for term in terms:
        parts = [_factor(f) for f in term]
        numeric = any(p[2] for p in parts)
        tex_terms.append((r" \cdot " if numeric else " ").join(p[0] for p in parts))
        text_terms.append("*".join(p[1] for p in parts))
    computed = sympy.Add(*[sympy.Mul(*(as_expr(f, "term") for f in t)) for t in terms])
    return Expr(" + ".join(tex_terms), " + ".join(text_terms), computed if value is None else value)


def grouped(tex: str, text: str) -> tuple[str, str]:
    """Parenthesise a rendering when it is a sum (to multiply it)."""
    if re.search(r"[+-]", tex.lstrip("-")):
        return f"({tex})", f"({text})"
    return tex, text


def linear(terms: Iterable[tuple[int, str]], constant: int = 0) -> Expr:
    """An index formula ``c1·t1 + c2·t2 + … + constant`` in the given order.

    Each term is ``(coefficient, tex of a symbol or a group such as "(j-1)")``; zero terms
    vanish, unit coefficients are not printed, the constant goes last. The value is the sympy
    expression of the same formula.

    Examples
    --------
    >>> linear([(2, "(j - 1)"), (1, "m")]).tex
    '2(j - 1) + m'
    >>> linear([(1, "j"), (1, "m")], -1).text
    'j + m - 1'
    >>> linear([(1, "m"), (-1, "k")]).tex
    'm - k'
    """
    out_tex, out_text = [], []
    for coefficient, symbol in terms:
        if coefficient == 0:
            continue
        sign = "-" if coefficient < 0 else "+"
        body = symbol if abs(coefficient) == 1 else f"{abs(coefficient)}{symbol}"
        text_body = symbol if abs(coefficient) == 1 else f"{abs(coefficient)}*{symbol}"
        out_tex.append((sign, body))
        out_text.append((sign, text_body))
    if constant or not out_tex:
        out_tex.append(("-" if constant < 0 else "+", str(abs(constant))))
        out_text.append(out_tex[-1])

    def join(parts):
        first_sign, first = parts[0]
        head = f"-{first}" if first_sign == "-" else first
        return head + "".join(f" {s} {b}" for s, b in parts[1:])

    text = join(out_text)
    return Expr(join(out_tex), text, parse_arithmetic(text))


_TEXT_MACROS = [
    (r"\left", ""),
    (r"\right", ""),
    (r"\cdot", "·"),
    (r"\times", "×"),
    (r"\lfloor", "⌊"),
    (r"\rfloor", "⌋"),
    (r"\lceil", "⌈"),
    (r"\rceil", "⌉"),
    (r"\ldots", "…"),
    (r"\dots", "…"),
    (r"\cdots", "…"),
    (r"\le", "≤"),
    (r"\ge", "≥"),
    (r"\ne", "≠"),
    (r"\sum", "Σ"),
    (r"\partial", "∂"),
    (r"\prod", "Π"),
    (r"\ast", "∗"),
    (r"\star", "⋆"),
    (r"\otimes", "⊗"),
    (r"\circ", "∘"),
    (r"\top", "T"),
    (r"\infty", "∞"),
    (r"\gamma", "γ"),
    (r"\pi", "π"),
    (r"\lambda", "λ"),
    (r"\omega", "ω"),
    (r"\delta", "δ"),
    (r"\sigma", "σ"),
    (r"\theta", "θ"),
    (r"\xi", "ξ"),
    (r"\tilde", "~"),
    (r"\operatorname", ""),
    (r"\mathbb", ""),
    (r"\hat", ""),
    (r"\substack", ""),
    (r"\to", "→"),
    (r"\in", "∈"),
    (r"\quad", "  "),
    (r"\,", " "),
    (r"\ ", " "),
    (r"\%", "%"),
    (r"\{", "{"),
    (r"\}", "}"),
    (r"\bmod", "mod"),
    (r"\mathrm", ""),
    (r"\text", ""),
    (r"\operatorname", ""),
]


def _subscript(match: re.Match) -> str:
    """``_{1}`` -> ``1``, ``_{j}`` -> ``_j``, ``_{j + m - 1}`` -> ``_(j + m - 1)``."""
    inner = match.group(1)
    if re.fullmatch(r"\d+", inner):
        return inner
    return "_" + inner if re.fullmatch(r"[A-Za-z0-9]+", inner) else f"_({inner})"


def tex_to_text(tex: str) -> str:
    """A readable plain-text approximation of a short inline LaTeX formula.

    Examples
    --------
    >>> tex_to_text(r"w_{1} a_{1} + \\frac{N - F}{S} + 1")
    'w1 a1 + (N - F)/(S) + 1'
    """
    out = re.sub(r"\\sum_\{([^{}]*)=([^{}]*)\}\^\{([^{}]*)\}\s*", r"Σ[\1=\2..\3] ", tex)
    out = re.sub(r"\\sum_\{([^{}]*)\}\s*", r"Σ[\1] ", out)
    out = out.replace(r"\partial ", "∂").replace(r"\,", "")
    for macro, repl in _TEXT_MACROS:
        out = re.sub(re.escape(macro) + r"(?![A-Za-z])", repl.replace("\\", "\\\\"), out)
    for _ in range(2):
        out = re.sub(r"_\{([^{}]*)\}", _subscript, out)
        out = re.sub(r"\^\{([^{}]*)\}", r"^\1", out)
    for _ in range(3):
        out = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", out)
    return out.replace("{,}", ",").replace("{", "").replace("}", "")


def _textbook_terms(expr: Any) -> list:
    """Terms of a sum in textbook order: positive terms, then negative ones, constants last."""
    terms = list(expr.args)

    def rank(term: Any) -> int:
        if term.is_number:
            return 2
        return 1 if term.could_extract_minus_sign() else 0

    return sorted(terms, key=rank)  # stable: keeps sympy's order within each group


def _printers():
    from sympy.printing.latex import LatexPrinter
    from sympy.printing.str import StrPrinter

    class TextbookLatex(LatexPrinter):
        def _print_Add(self, expr, order=None):
            return super()._print_Add(
                expr.func(*_textbook_terms(expr), evaluate=False), order="none"
            )

        def _print_Symbol(self, expr, style="plain"):
            return tex_symbol(expr)

    class TextbookStr(StrPrinter):
        def _print_Add(self, expr, order=None):
            return super()._print_Add(
                expr.func(*_textbook_terms(expr), evaluate=False), order="none"
            )

        def _print_Symbol(self, expr):
            return text_symbol(expr)

    return TextbookLatex({"order": "none"}), TextbookStr({"order": "none"})


def tex(expr: Any) -> str:
    """LaTeX of a sympy expression in textbook order: ``h_{m - k}``, ``N - 1``, ``k + o - 1``.

    Examples
    --------
    >>> import sympy
    >>> m, k, N = sympy.symbols("m k N")
    >>> tex(m - k), tex(N - 1), sympy.latex(m - k)
    ('m - k', 'N - 1', '- k + m')
    """
    return _printers()[0].doprint(expr)


def text(expr: Any) -> str:
    """Plain text of a sympy expression in textbook order (parseable by ``sympy.sympify``).

    Examples
    --------
    >>> import sympy
    >>> k, o = sympy.symbols("k o")
    >>> text(k + o - 1), str(k + o - 1)
    ('k + o - 1', 'k + o - 1')
    >>> text(sympy.Symbol("N") - 1)
    'N - 1'
    """
    return _printers()[1].doprint(expr)


def sympy_expr(value: Any) -> Expr:
    """An :class:`Expr` of a sympy expression, printed in textbook order, keeping the value."""
    return Expr(tex(value), text(value), value)
