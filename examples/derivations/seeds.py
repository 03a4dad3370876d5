"""The worked examples of the course material, each built as a derivation with the public API.

``SEEDS`` lists ``(number, slug, builder)``; a builder returns a
:class:`convalgebra.derivations.Derivation`. ``generate.py`` writes the Markdown of each to
``NN_<slug>.md``; ``tests/test_derivation_goldens.py`` rebuilds them and checks the files are
up to date and that every equation round-trips.
"""

from __future__ import annotations

import numpy as np
import sympy

import convalgebra as ca
from convalgebra.derivations import Derivation, Equation, Expr, Step, combine
from convalgebra.derivations.printing import number
from convalgebra.network.layers import Activation, AvgPool, Conv, Flatten, Linear, MaxPool

Spec = ca.ConvSpec


# ------------------------------------------------------------------------ shapes
def seed01() -> Derivation:
    parts = [ca.derive("output_size", Spec((1, 7), 1, 3, stride=s)) for s in (1, 2, 3)]
    return combine(
        "Seed 1: output size (N - F + 2P)/S + 1 for N = 7, F = 3, P = 0 and S = 1, 2, 3",
        parts,
        "Stride 3 does not tile the input: the library floors, as PyTorch does, and reports the input "
        "positions no output reads.",
    )


def seed02() -> Derivation:
    return combine(
        "Seed 2: zero padding P = 1 keeps a 6 x 6 input at 6 x 6 ('same')",
        [ca.derive("output_size", Spec((1, 6, 6), 1, 3, padding="same"))],
    )


def seed03() -> Derivation:
    parts = [
        ca.derive("output_size", Spec((1, 5), 1, 3, padding=word))
        for word in ("valid", "same", "full")
    ]
    return combine(
        "Seed 3: valid, same and full convolution of width m = 5 with k = 3",
        parts,
        "The widths are "
        + ", ".join(str(p.result[1]) for p in parts)
        + " (m - k + 1, m and m + k - 1).",
    )


def seed04() -> Derivation:
    d = ca.derive("output_size", [Spec((1, 7), 1, 3, stride=2), Spec((1, 8), 1, 3, stride=2)])
    return combine(
        "Seed 4: different inputs, same output (k = 3, s = 2, widths 7 and 8)", list(d.steps)
    )


def _cifar():
    return ca.LayerGraph.sequential(
        (3, 32, 32),
        [Conv(12, 3, padding="same"), Activation("relu"), MaxPool(2), Flatten(), Linear(10)],
        name="a CIFAR-10 pipeline",
    )


def seed05() -> Derivation:
    graph = _cifar()
    return combine(
        "Seed 5: INPUT 32x32x3, CONV 12 'same', RELU, POOL, FC 10",
        [ca.derive("params", graph)],
        "Shapes (channels first): " + _shapes(graph) + ".",
    )


def _shapes(graph) -> str:
    return ", ".join("x".join(map(str, graph.shape(node))) for node in graph.nodes)


# -------------------------------------------------------------- parameters, cost
def seed06() -> Derivation:
    spec = Spec((3, 32, 32), 10, 5, padding=2)
    return combine(
        "Seed 6: 10 filters 5x5 on 32x32x3, stride 1, pad 2",
        [ca.derive("output_size", spec), ca.derive("params", spec)],
    )


def _stack_weights(c: int) -> Step:
    """49 C^2 against 27 C^2 with C a symbol, checked at C = c against the library's counts."""
    C = sympy.Symbol("C")
    one = Spec((c, 32, 32), c, 7, padding=3, bias=False)
    three = [Spec((c, 32, 32), c, 3, padding=1, bias=False)] * 3
    lib_one, lib_three = one.n_weights, sum(s.n_weights for s in three)
    eqs = (
        Equation(
            (
                Expr(r"\text{one } 7 \times 7", "one 7x7"),
                Expr(r"7 \cdot 7 \cdot C \cdot C", "7*7*C*C", 49 * C**2),
                Expr("49 C^{2}", "49*C**2", 49 * C**2),
                number(lib_one),
            ),
            subs=((C, c),),
            relation=("=", "=", "="),
            label=f"at $C = {c}$",
        ),
        Equation(
            (
                Expr(r"\text{three } 3 \times 3", "three 3x3"),
                Expr(r"3 \cdot 3 \cdot 3 \cdot C \cdot C", "3*3*3*C*C", 27 * C**2),
                Expr("27 C^{2}", "27*C**2", 27 * C**2),
                number(lib_three),
            ),
            subs=((C, c),),
            label=f"at $C = {c}$",
        ),
    )
    return Step(
        f"Weights (biases apart), symbolically and for $C = {c}$ as the library counts them:",
        eqs,
        "Each layer maps $C$ channels to $C$ channels with $k \\cdot k$ taps: $k^2 C^2$ weights.",
        "count",
    )


def seed07() -> Derivation:
    stack = [Spec((64, 32, 32), 64, 3, padding=1, bias=False)] * 3
    rf = ca.derive("receptive_field", stack, axes=[0])
    return combine(
        "Seed 7: three 3x3 layers against one 7x7 layer (C to C channels, size preserved)",
        [_stack_weights(64), rf],
        "After each 3x3 layer a unit sees "
        + ", ".join(map(str, rf.result))
        + " input positions per axis: "
        f"the field of one {rf.result[-1]}x{rf.result[-1]} layer, with fewer weights.",
    )


def seed08() -> Derivation:
    direct = Spec((200, 32, 32), 32, 5, padding="same", bias=False)
    squeeze = Spec((200, 32, 32), 16, 1, bias=False)
    expand = Spec((16, 32, 32), 32, 5, padding="same", bias=False)
    a, b = ca.derive("params", direct), ca.derive("params", [squeeze, expand])
    cheap = squeeze.macs + expand.macs
    ratio = Step(
        "Ratio of the costs:",
        (
            Equation(
                (
                    Expr(
                        rf"\frac{{{number(direct.macs).tex}}}{{{number(cheap).tex}}}",
                        f"{direct.macs}/{cheap}",
                        sympy.Rational(direct.macs, cheap),
                    ),
                    number(sympy.Rational(direct.macs, cheap)),
                ),
                defines=False,
            ),
        ),
        rule="compare",
    )
    return combine(
        "Seed 8: a 1x1 bottleneck before a 5x5 convolution (32x32x200 to 32x32x32)",
        [a, b, ratio],
        "Biases apart, as in the course.",
    )


def _lenet():
    return ca.LayerGraph.sequential(
        (1, 28, 28),
        [
            Conv(6, 5, padding=2),
            AvgPool(2, 2),
            Conv(16, 5),
            AvgPool(2, 2),
            Flatten(),
            Linear(120),
            Linear(84),
            Linear(10),
        ],
        name="LeNet (d2l variant)",
    )


def seed09() -> Derivation:
    graph = _lenet()
    return combine(
        "Seed 9: LeNet, shapes and parameters",
        [ca.derive("params", graph)],
        "Shapes (channels first): " + _shapes(graph) + ".",
    )


def seed10() -> Derivation:
    return combine(
        "Seed 10: dense, sparse and shared connections (m = 8 inputs, n = 6 outputs, k = 3)",
        [ca.derive("matrix", Spec((1, 8), 1, 3, bias=False))],
    )


def seed11() -> Derivation:
    spec = Spec((1, 280, 320), 1, (1, 2), bias=False)
    return combine(
        "Seed 11: edge detection, a 280x320 image and the kernel [-1, 1] along the width",
        [
            ca.derive("output_size", spec),
            ca.derive("matrix", spec, weight=[[[[-1, 1]]]], blocks=False),
        ],
    )


def seed12() -> Derivation:
    full = Spec((1, 32, 32), 1, 5, bias=False)
    rows = Spec((1, 32, 32), 1, (5, 1), bias=False)
    cols = Spec((1, 28, 32), 1, (1, 5), bias=False)
    parts = [ca.derive("params", full), ca.derive("params", [rows, cols])]
    check = _check(
        "separability",
        Spec((1, 6, 6), 1, 3, bias=False),
        weight=np.outer([1, 2, 1], [1, 0, -1])[None, None],
    )
    return combine(
        "Seed 12: a separable 5x5 kernel: 25 against 10 parameters and multiplications per output",
        parts + ([ca.derive(check)] if check is not None else []),
    )


def seed13() -> Derivation:
    specs = [
        Spec((1, 6, 6), 1, 3, bias=False),
        ca.tiled((1, 6, 6), 1, 3, 1, bias=False),
        ca.tiled((1, 6, 6), 1, 3, 2, bias=False),
        ca.locally_connected((1, 6, 6), 1, 3, bias=False),
    ]
    return combine(
        "Seed 13: convolution, tiled convolution (t = 1, 2) and a locally connected layer",
        [ca.derive("params", s) for s in specs],
        "Tiled with t = 1 is convolution; t equal to the output width is locally connected (eq. 9.9, 9.10).",
    )


# ------------------------------------------------------------------------ numbers
def seed14() -> Derivation:
    x = [[[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]]
    w = [[[[1, 0, 1], [0, 1, 0], [1, 0, 1]]]]
    return combine(
        "Seed 14: a 5x5 image cross-correlated with a 3x3 kernel (valid)",
        [ca.derive("forward", Spec((1, 5, 5), 1, 3, bias=False), weight=w, x=x)],
    )


def seed15() -> Derivation:
    x = [[[0, 1, 2], [3, 4, 5], [6, 7, 8]]]
    w = [[[[0, 1], [2, 3]]]]
    return combine(
        "Seed 15: d2l's X and K",
        [ca.derive("forward", Spec((1, 3, 3), 1, 2, bias=False), weight=w, x=x)],
    )


def seed16() -> Derivation:
    rng = np.random.default_rng(16)
    x = rng.integers(0, 3, size=(3, 5, 5))
    w = rng.integers(-1, 2, size=(2, 3, 3, 3))
    spec = Spec((3, 5, 5), 2, 3, stride=2, padding=1)
    return combine(
        "Seed 16: multi-channel convolution, 5x5x3 input, two 3x3x3 filters, biases 1 and 0, stride 2",
        [ca.derive("forward", spec, weight=w, x=x, bias=[1, 0], max_outputs=18)],
        "Input and filters are small integers drawn with a fixed seed (the slides' numbers were garbled); "
        "each output sums over the three channels and adds its filter's bias.",
    )


# -------------------------------------------------------------------- derivations
def seed17() -> Derivation:
    return combine(
        "Seed 17: back-propagation through a strided convolution (5x5 input, 3x3 kernel, stride 2)",
        [ca.derive("backward", Spec((1, 5, 5), 1, 3, stride=2, bias=False))],
        "The slides print w4 a4 in z1: the correct term is w4 a6, as derived here.",
    )


def seed18() -> Derivation:
    spec = Spec((2, 5, 5), 2, 3, stride=2, bias=False)
    return combine(
        "Seed 18: eq. 9.8, 9.11 and 9.13 for a two-channel strided convolution",
        [ca.derive("backward", spec, max_outputs=10)],
    )


def seed19() -> Derivation:
    return combine(
        "Seed 19: the Toeplitz matrix of a 1-D convolution and the doubly block circulant matrix of a "
        "2-D circular convolution",
        [
            ca.derive("matrix", Spec((1, 6), 1, 3, flip=True, bias=False)),
            ca.derive(
                "matrix",
                Spec((1, 4, 4), 1, 3, padding=1, padding_mode="circular", bias=False),
                max_rows=16,
                max_cols=16,
            ),
        ],
    )


# ---------------------------------------------------------------------- identities
def _check(law: str, *args, **options):
    """``ca.check(law, ...)``, or None when the identity checker does not know the law yet."""
    from convalgebra.identities import LAWS

    if law not in LAWS:
        return None
    return ca.check(law, *args, **options)


def _identity(title: str, *checks) -> Derivation:
    found = [c for c in checks if c is not None]
    if not found:
        raise LookupError(f"{title}: the identity checker does not provide these laws yet")
    return combine(title, [ca.derive(c) for c in found])


def seed20() -> Derivation:
    return _identity(
        "Seed 20: convolution commutes, cross-correlation does not",
        _check("commutativity"),
        _check("commutativity", Spec((1, 5), 1, 3, flip=True)),
        _check("commutativity", Spec((1, 5), 1, 3)),
    )


def _flip_step() -> Step:
    """M of the true convolution with w equals M of the cross-correlation with w reversed."""
    from convalgebra.derivations.matrices import matrix_grid
    from convalgebra.symbolic import weight_symbols

    conv, xcorr = Spec((1, 5), 1, 3, flip=True, bias=False), Spec((1, 5), 1, 3, bias=False)
    reversed_w = weight_symbols(xcorr)[..., ::-1]
    eq = Equation(
        (
            Expr(r"M_{\ast}(w)", "M_conv(w)"),
            matrix_grid(conv),
            Expr(r"M_{\star}(\overleftarrow{w})", "M_xcorr(reversed w)"),
            matrix_grid(xcorr, weight=reversed_w),
        ),
        defines=False,
    )
    return Step(
        "The matrix of the true convolution with $w = (w_1, w_2, w_3)$ equals the matrix of the "
        "cross-correlation with the reversed kernel $(w_3, w_2, w_1)$:",
        (eq,),
        "Both matrices are built by the library from the triple table; the derivation checks them equal.",
        "compare",
    )


def seed21() -> Derivation:
    adjoint = _check("adjoint", Spec((1, 5, 5), 1, 3))
    if adjoint is None:
        raise LookupError("Seed 21: the identity checker does not provide 'adjoint' yet")
    return combine(
        "Seed 21: cross-correlation is convolution with the flipped kernel, and the adjoint of convolution",
        [_flip_step(), ca.derive(adjoint)],
    )


def seed22() -> Derivation:
    circular = dict(padding=1, padding_mode="circular")
    return _identity(
        "Seed 22: translation equivariance (circular, zero padding, stride) and rotation",
        ca.check("translation_equivariance", Spec((1, 6, 6), 1, 3, **circular)),
        ca.check("translation_equivariance", Spec((1, 6, 6), 1, 3, padding=1)),
        ca.check(
            "translation_equivariance", Spec((1, 6, 6), 1, 3, stride=2, **circular), shift=(2, 0)
        ),
        ca.check(
            "translation_equivariance", Spec((1, 6, 6), 1, 3, stride=2, **circular), shift=(1, 0)
        ),
        ca.check("rotation_equivariance", Spec((1, 5, 5), 1, 3, padding=1)),
    )


def seed23() -> Derivation:
    circular = dict(padding=1, padding_mode="circular", flip=True, bias=False)
    return _identity(
        "Seed 23: when do multichannel convolutions commute?",
        _check(
            "layer_commutativity",
            Spec((1, 5, 5), 1, 3, **circular),
            Spec((1, 5, 5), 1, 3, **circular),
        ),
        _check(
            "layer_commutativity",
            Spec((2, 5, 5), 2, 3, **circular),
            Spec((2, 5, 5), 2, 3, **circular),
        ),
    )


def seed24() -> Derivation:
    x = (np.arange(64).reshape(1, 8, 8) * 5) % 7
    return _identity(
        "Seed 24: max pooling is approximately invariant to small translations",
        _check("max_pool_invariance", x, 2),
    )


def seed25() -> Derivation:
    return _identity(
        "Seed 25: a 1x1 convolution is a fully connected layer at every pixel, and a fully connected "
        "layer on HxWxC is an HxW convolution",
        _check("one_by_one", Spec((3, 4, 4), 2, 1)),
        _check("fully_connected", Spec((3, 4, 4), 5, 4)),
    )


def seed26() -> Derivation:
    return _identity(
        "Seed 26: two convolutions compose into one",
        _check("composition", Spec((1, 8), 1, 3), Spec((1, 6), 1, 2)),
        _check("composition", Spec((1, 9), 1, 3, stride=2), Spec((1, 4), 1, 2, stride=2)),
    )


SEEDS = [
    (1, "output_size", seed01),
    (2, "zero_padding", seed02),
    (3, "valid_same_full", seed03),
    (4, "same_output", seed04),
    (5, "cifar_pipeline", seed05),
    (6, "conv_layer_params", seed06),
    (7, "stacked_3x3", seed07),
    (8, "bottleneck", seed08),
    (9, "lenet", seed09),
    (10, "dense_sparse_shared", seed10),
    (11, "edge_detection", seed11),
    (12, "separable", seed12),
    (13, "tiled_locally_connected", seed13),
    (14, "numbers_5x5", seed14),
    (15, "numbers_d2l", seed15),
    (16, "multichannel", seed16),
    (17, "strided_backprop", seed17),
    (18, "general_forms", seed18),
    (19, "toeplitz_circulant", seed19),
    (20, "commutativity", seed20),
    (21, "flip_adjoint", seed21),
    (22, "translation_equivariance", seed22),
    (23, "multichannel_commute", seed23),
    (24, "max_pool_invariance", seed24),
    (25, "pointwise_dense", seed25),
    (26, "composition", seed26),
]


# ------------------------------------------------- kinds a lecturer writes by hand
def kind27() -> Derivation:
    return combine(
        "Example 27: im2col, the strided 5x5 layer of seed 17 as one matrix product",
        [ca.derive("im2col", Spec((1, 5, 5), 1, 3, stride=2, bias=False))],
    )


def kind28() -> Derivation:
    return combine(
        "Example 28: im2col with two input channels, two filters and zero padding",
        [ca.derive("im2col", Spec((2, 3, 3), 2, 2, padding=1, bias=False))],
    )


def kind29() -> Derivation:
    return combine(
        "Example 29: the receptive field of one dilated layer, and of three stacked 3x3 layers",
        [
            ca.derive("receptive_field", Spec((1, 9, 9), 1, 3, dilation=2)),
            ca.derive("receptive_field", [Spec((1, 32, 32), 1, 3, padding=1)] * 3, axes=[0]),
        ],
    )


def kind30() -> Derivation:
    dw = Spec((32, 112, 112), 32, 3, padding=1, groups=32, bias=False)
    pw = Spec((32, 112, 112), 64, 1, bias=False)
    return combine(
        "Example 30: a depthwise-separable block (MobileNet) against the 3x3 convolution it replaces",
        [ca.derive("cost", [dw, pw], batchnorm=True)],
    )


def kind31() -> Derivation:
    return combine(
        "Example 31: a transposed convolution as zero insertion and a direct convolution",
        [
            ca.derive("transposed", Spec((1, 3), 1, 3, stride=2, transposed=True, bias=False)),
            ca.derive(
                "transposed",
                Spec(
                    (1, 2, 2),
                    1,
                    3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    transposed=True,
                    bias=False,
                ),
            ),
        ],
    )


def kind32() -> Derivation:
    x = (np.arange(16).reshape(1, 4, 4) * 5) % 7
    return combine(
        "Example 32: max and average pooling of a 4x4 input, and where the gradients go",
        [
            ca.derive("pooling", MaxPool(2), x=x),
            ca.derive("pooling", AvgPool(3, stride=2, padding=1), x=x),
        ],
    )


#: Derivations of the kinds beyond the seed examples (numbered after them).
EXTRAS = [
    (27, "im2col", kind27),
    (28, "im2col_channels", kind28),
    (29, "receptive_field", kind29),
    (30, "separable_cost", kind30),
    (31, "transposed", kind31),
    (32, "pooling", kind32),
]


def filename(number: int, slug: str) -> str:
    return f"{number:02d}_{slug}.md"
