"""Symbolic forms of a convolution, built with sympy from the same triple table as the numbers.

:mod:`.matrix` holds the symbols (``w1 …``, ``a1 …``, ``z1 …``), the symbolic matrix and the
symbolic output; :mod:`.backward` the backward pass as equations (eq. 9.8, 9.11 and 9.13 of
the Deep Learning book), instantiated and in general form.

>>> from convalgebra import ConvSpec
>>> from convalgebra.symbolic import symbolic_matrix
>>> symbolic_matrix(ConvSpec((1, 3), 1, 2, bias=False))
Matrix([
[w1, w2,  0],
[ 0, w1, w2]])
"""

from __future__ import annotations

from .backward import (
    GeneralFormulas,
    GradSymbol,
    SymbolicBackward,
    check_general_formulas,
    general_formulas,
    grad_symbol,
    symbolic_backward,
)
from .matrix import (
    input_symbols,
    matrix_entries,
    output_symbols,
    symbol_array,
    symbolic_matrix,
    symbolic_output,
    weight_symbols,
)

__all__ = [
    "GeneralFormulas",
    "GradSymbol",
    "SymbolicBackward",
    "check_general_formulas",
    "general_formulas",
    "grad_symbol",
    "input_symbols",
    "matrix_entries",
    "output_symbols",
    "symbol_array",
    "symbolic_backward",
    "symbolic_matrix",
    "symbolic_output",
    "weight_symbols",
]
