"""
Inspect the matrix a convolution layer *is*
============================================

Shape, sparsity, structure and entries of the matrix of one layer::

    python examples/inspect_matrix.py [--plot matrix.png]

The 2-D circular convolution of the Deep Learning book (chapter 9) is a doubly block circulant
matrix; we print it with symbolic kernel entries, check it against scipy.signal on random
data, and show that zero padding gives doubly block Toeplitz instead.
"""

import argparse

import numpy as np
from scipy import signal

import convalgebra as ca
from convalgebra.report import matrix_report

# sphinx_gallery_start_ignore
parser = argparse.ArgumentParser(description="Inspect the matrix a convolution layer is.")
parser.add_argument("--plot", help="also draw the matrix to this PNG file")
args = parser.parse_args()
# sphinx_gallery_end_ignore

# %%
# The layer and its matrix, with symbolic kernel entries
# ------------------------------------------------------
spec = ca.ConvSpec((1, 4, 4), out_channels=1, kernel_size=3, padding=1, padding_mode="circular")
print(matrix_report(spec))

# %%
# The same matrix with numbers, checked against an independent implementation
# ----------------------------------------------------------------------------
rng = np.random.default_rng(0)
x = rng.integers(-3, 4, size=(1, 4, 4))
w = rng.integers(-3, 4, size=(1, 1, 3, 3))
m = ca.conv_matrix(spec, w)
expected = signal.correlate2d(x[0], w[0, 0], mode="same", boundary="wrap")
assert np.array_equal(m @ x.ravel(), expected.ravel())
print("\nM @ x.ravel() equals scipy.signal.correlate2d(..., boundary='wrap'): True")

# %%
# Other paddings, other structures
# --------------------------------
zero = ca.ConvSpec((1, 4, 4), 1, 3, padding=1)
print(f"with zero padding instead: {ca.matrix_structure(zero)}")
print(f"1-D, stride 1: {ca.matrix_structure(ca.ConvSpec((1, 6), 1, 3)).name}")

# %%
# The picture
# -----------
# Each colour is one kernel entry; the lines mark the blocks (needs matplotlib).
try:
    from convalgebra.plot import plot_matrix, to_png

    figure = plot_matrix(spec)
except ca.MissingExtraError as missing:
    figure = None
    print(missing)
# sphinx_gallery_start_ignore
if args.plot and figure is not None:
    with open(args.plot, "wb") as stream:
        stream.write(to_png(figure))
    print(f"wrote {args.plot}")
# sphinx_gallery_end_ignore
