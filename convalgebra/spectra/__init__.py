"""Singular values and operator norms of convolution layers, from their structure.

Three modules: :mod:`.circulant` (the circulant that contains a layer, its DFT blocks and
norm), :mod:`.bounds` (guaranteed upper bounds) and :mod:`.norms` (singular values and the
certified interval of the norm).

A circular layer whose output grid tiles its input (``out = n / gcd(stride, n)`` per axis) is
block-diagonalised by the DFT: after splitting the input into its polyphase components, each
frequency contributes the singular values of one small ``C_out x (C_in/groups * phases)``
matrix (Sedghi, Gupta & Long, ICLR 2019, extended here to 1-/2-/3-D, groups, dilation, stride
and transposed layers). Every other layer is a row selection of such a circulant applied to its
padded input, which gives guaranteed upper bounds on its norm; a Rayleigh quotient from Lanczos
on the matrix-free operator gives a guaranteed lower bound, so the norm is returned as a
certified interval, closed when the two ends meet.

Examples
--------
>>> import numpy as np
>>> from convalgebra import ConvSpec
>>> spec = ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular")
>>> np.round(singular_values(spec, [[[1.0, 2.0, 1.0]]]), 6).tolist()
[4.0, 2.0, 2.0, 0.0]
>>> norm = operator_norm(spec, [[[1.0, 2.0, 1.0]]])
>>> round(float(norm), 12), norm.exact, norm.method
(4.0, True, 'fft')
"""

from .bounds import Bound, upper_bounds
from .circulant import (
    DENSE_MAX_BYTES,
    GRAM_MAX_ITERATIONS,
    fft_applies,
    padding_norm,
    polyphase_taps,
)
from .norms import LANCZOS_TOL, OperatorNorm, operator_norm, singular_values

__all__ = [
    "DENSE_MAX_BYTES",
    "LANCZOS_TOL",
    "GRAM_MAX_ITERATIONS",
    "Bound",
    "OperatorNorm",
    "singular_values",
    "operator_norm",
    "upper_bounds",
    "fft_applies",
    "padding_norm",
    "polyphase_taps",
]
