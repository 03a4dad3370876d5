"""Printing for derivations; lives in :mod:`convalgebra.render.printing` (re-exported here)."""

from __future__ import annotations

from ..render.printing import (  # noqa: F401
    __all__,
    grad_symbol,
    grouped,
    linear,
    number,
    sum_of_products,
    symbol_expr,
    sympy_expr,
    tex,
    tex_symbol,
    tex_to_text,
    text,
    text_symbol,
)
