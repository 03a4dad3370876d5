"""
Generate a textbook derivation
==============================

A derivation generated from the objects that compute the numbers::

    python examples/generate_derivation.py [--latex backward.tex]

Back-propagation through the strided convolution of the course notes (5x5 input, 3x3 kernel,
stride 2), as Markdown; with --latex, also a standalone LaTeX document. The equations are the
library's own (the slides' misprinted "w4 x a4" comes out as w4 a6).
"""

import argparse

import convalgebra as ca

# sphinx_gallery_start_ignore
parser = argparse.ArgumentParser(description="Generate a textbook derivation.")
parser.add_argument("--latex", help="also write a standalone LaTeX document to this file")
args = parser.parse_args()
# sphinx_gallery_end_ignore

# %%
# The output size, step by step
# -----------------------------
spec = ca.ConvSpec((1, 5, 5), out_channels=1, kernel_size=3, stride=2, bias=False)
print(ca.derive("output_size", spec).to_text())

# %%
# Back-propagation, as Markdown
# -----------------------------
derivation = ca.derive("backward", spec)
print(derivation.to_markdown())

# sphinx_gallery_start_ignore
if args.latex:
    with open(args.latex, "w") as stream:
        stream.write(derivation.to_latex(standalone=True))
    print(f"wrote {args.latex}")
# sphinx_gallery_end_ignore
