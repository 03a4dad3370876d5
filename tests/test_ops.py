"""The operator language: known identities with their exact size sets, bad expressions, the
parser, the command line and the proof document. (Brute force against torch:
tests/test_ops_brute.py.)"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from convalgebra import ConvAlgebraError, derive, ops
from convalgebra.cli import main
from convalgebra.ops.parse import parse_identity
from convalgebra.ops.proof_document import printed_identity, size_classes
from convalgebra.ops.sizes import SizeSet, describe_axis

x1 = ops.signal()
w3 = ops.kernel("w", (1, 1, 3))
v2 = ops.kernel("v", (1, 1, 2))
y1 = ops.signal(name="y")
x2 = ops.signal(ndim=2)
k33 = ops.kernel("w", (1, 1, 3, 3))

u6 = ops.kernel("u", (1, 1, 6, 6))
SUBPIXEL_KERNEL = ops.cat_kernels(  # channel i r + j of the conv = phase (i, j) of u, flipped
    [ops.flip_kernel(ops.polyphase_kernel(u6, 2, (i, j))) for i in range(2) for j in range(2)],
    dim=0,
)

KNOWN = [
    # (id, lhs, rhs, holds, sizes, defined)
    (
        "stride-as-subsample",
        ops.conv(x1, w3, stride=2),
        ops.subsample(ops.conv(x1, w3), 2),
        True,
        "every n >= 3",
        "every n >= 3",
    ),
    (
        "dilation-as-kernel",
        ops.conv(x1, w3, dilation=2),
        ops.conv(x1, ops.dilate_kernel(w3, 2)),
        True,
        "every n >= 5",
        "every n >= 5",
    ),
    (
        "padding-as-pad",
        ops.conv(x1, w3, padding=1),
        ops.conv(ops.pad(x1, (1, 1)), w3),
        True,
        "every n",
        "every n",
    ),
    (
        "avg-pool-as-conv",
        ops.avg_pool(x1, 2),
        ops.conv(x1, ops.constant([[["1/2", "1/2"]]]), stride=2),
        True,
        "every n >= 2",
        "every n >= 2",
    ),
    (
        "composition-valid",
        ops.conv(ops.conv(x1, v2), w3),
        ops.conv(x1, ops.kernel_conv(v2, w3)),
        True,
        "every n >= 4",
        "every n >= 4",
    ),
    (
        "adjoint-is-transposed-conv",
        ops.adjoint(ops.conv(x1, w3, padding=1)),
        ops.conv_transpose(x1, w3, padding=1),
        True,
        "every n",
        "every n",
    ),
    (
        "adjoint-stride-2",
        ops.adjoint(ops.conv(x1, w3, stride=2), y1),
        ops.conv_transpose(y1, w3, stride=2),
        False,
        "n >= 3 and n odd",
        "every n >= 3",
    ),
    (
        "shift-commutes-circular",
        ops.shift(ops.conv(x1, w3, padding=1, padding_mode="circular"), 1, mode="circular"),
        ops.conv(ops.shift(x1, 1, mode="circular"), w3, padding=1, padding_mode="circular"),
        True,
        "every n",
        "every n",
    ),
    (
        "shift-zero-fill",
        ops.shift(ops.conv(x1, w3, padding=1), 1),
        ops.conv(ops.shift(x1, 1), w3, padding=1),
        False,
        "n = 1",
        "every n",
    ),
    (
        "zeros-vs-circular",
        ops.conv(x1, w3, padding=1),
        ops.conv(x1, w3, padding=1, padding_mode="circular"),
        False,
        "no n",
        "every n",
    ),
    (
        "flip-and-kernel-flip",
        ops.flip(ops.conv(x1, w3, padding=1), 1),
        ops.conv(ops.flip(x1, 1), ops.flip_kernel(w3), padding=1),
        True,
        "every n",
        "every n",
    ),
    (
        "same-enlarged",
        ops.conv(x1, w3, padding="same"),
        ops.conv(x1, ops.enlarge_kernel(w3, 5), padding="same"),
        True,
        "every n",
        "every n",
    ),
    (
        "polyphase",
        ops.conv(x1, ops.kernel("u", (1, 1, 4)), stride=2),
        ops.conv(ops.subsample(x1, 2, 0), ops.polyphase_kernel(ops.kernel("u", (1, 1, 4)), 2, 0))
        + ops.conv(ops.subsample(x1, 2, 1), ops.polyphase_kernel(ops.kernel("u", (1, 1, 4)), 2, 1)),
        True,
        "n >= 4 and n even",
        "n >= 4 and n even",
    ),
    (
        "shuffle-unshuffle",
        ops.pixel_shuffle(ops.pixel_unshuffle(x2, 2), 2),
        x2,
        True,
        "every even n1 and every even n2",
        "every even n1 and every even n2",
    ),
    (
        "rot90-needs-rotated-kernel",
        ops.rot90(ops.conv(x2, k33, padding=1)),
        ops.conv(ops.rot90(x2), k33, padding=1),
        False,
        "n = 1 (square signals)",
        "every n (square signals)",
    ),
    (
        "stride-2d",
        ops.conv(x2, k33, stride=2, padding=1),
        ops.subsample(ops.conv(x2, k33, padding=1), 2),
        True,
        "every size",
        "every size",
    ),
]


@pytest.mark.parametrize(
    "lhs, rhs, holds, sizes, defined", [k[1:] for k in KNOWN], ids=[k[0] for k in KNOWN]
)
def test_known_identities_and_their_size_sets(lhs, rhs, holds, sizes, defined):
    proof = ops.prove(lhs, rhs)
    assert (proof.holds, str(proof.sizes), str(proof.defined)) == (holds, sizes, defined)
    assert (proof.counterexample is None) == holds
    if not holds:
        ce = proof.counterexample
        assert ce.size in proof.failing
        assert ce.lhs.shape != ce.rhs.shape or ce.positions


def test_the_smallest_counterexample_is_smallest_and_differs():
    proof = ops.prove(
        ops.shift(ops.conv(x1, w3, padding=1), 1), ops.conv(ops.shift(x1, 1), w3, padding=1)
    )
    ce = proof.counterexample
    assert ce.size == (2,) and 1 in proof.sizes and 2 not in proof.sizes
    assert all(ce.lhs[p] != ce.rhs[p] for p in ce.positions)
    same = [p for p in np.ndindex(ce.lhs.shape) if p not in ce.positions]
    assert all(ce.lhs[p] == ce.rhs[p] for p in same)


def test_size_restrictions():
    proof = ops.prove(
        ops.conv(x1, w3, padding=1), ops.conv(x1, w3, padding=1, padding_mode="circular"), size=8
    )
    assert not proof.holds and proof.counterexample.size == (8,) and 8 in proof.failing
    listed = ops.prove(
        ops.conv(x1, w3, stride=2), ops.subsample(ops.conv(x1, w3), 2), sizes=range(1, 9)
    )
    assert listed.holds and str(listed.sizes) == "n in {3, 4, 5, 6, 7, 8}"
    with pytest.raises(ConvAlgebraError, match="was not decided"):
        20 in listed.sizes  # noqa: B015


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ops.conv(x1, ops.kernel("w", (1, 2, 3))), "reads 2 channels"),
        (lambda: ops.conv(x1, k33), "cannot convolve"),
        (lambda: ops.prove(x1 + ops.subsample(x1, 2), x1), "different rates"),
        (lambda: ops.prove(ops.conv(x1, ops.kernel("w", (2, 1, 3))), x1), "output channels"),
        (
            lambda: ops.prove(
                ops.conv(x1, ops.kernel("w", (1, 1, 3))), ops.conv(x1, ops.kernel("w", (1, 1, 2)))
            ),
            "two shapes",
        ),
        (lambda: ops.pad(x1, (1, 2, 3, 4)), "reaches past"),
        (lambda: ops.pad(x1, (1, 1), mode="wrap"), "mode must be"),
        (lambda: ops.subsample(x1, 0), "at least 1"),
        (lambda: ops.signal(channels=0), "channels"),
        (lambda: ops.kernel("1w", (1, 1, 3)), "identifier"),
        (lambda: ops.enlarge_kernel(w3, 2), "smaller than the kernel"),
        (
            lambda: ops.kernel_conv(ops.kernel("a", (2, 1, 3)), ops.kernel("b", (1, 3, 3))),
            "writes 2",
        ),
        (lambda: x1[5], "out of range"),
    ],
    ids=[
        "channels",
        "dimension",
        "rates",
        "out-channels",
        "kernel-shapes",
        "pad-length",
        "pad-mode",
        "factor",
        "signal",
        "kernel-name",
        "enlarge",
        "kernel-conv",
        "index",
    ],
)
def test_bad_expressions_are_clear_errors(make, match):
    with pytest.raises(ConvAlgebraError, match=match):
        make()


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="kernel expression"):
        ops.conv(x1, np.ones((1, 1, 3)))
    with pytest.raises(TypeError, match="linear"):
        x1 * x1
    with pytest.raises(TypeError, match="operator expression"):
        ops.prove("conv(x, w)", x1)


def test_exact_rational_constants():
    k = ops.constant([[["1/3", 0.5, 2]]])
    assert k.values == [Fraction(1, 3), Fraction(1, 2), Fraction(2)]
    with pytest.raises(ConvAlgebraError, match="finite"):
        ops.constant([[[float("inf")]]])


@pytest.mark.parametrize(
    "mask, t, p, text",
    [
        ([1, 1, 1], 2, 1, "every n"),
        ([0, 0, 1, 1], 3, 1, "every n >= 3"),
        ([1, 1, 0, 0], 3, 1, "n in {1, 2}"),
        ([0, 0, 0], 2, 1, "no n"),
        ([0, 1, 0, 1, 0, 1], 4, 2, "every even n"),
        ([1, 0, 0, 1, 0, 1], 4, 2, "n = 1 or n >= 4 and n even"),
        ([0, 0, 1, 0, 0, 1, 0, 0, 1], 6, 3, "n ≡ 0 (mod 3)"),
        ([1, 0, 1, 1, 1], 4, 1, "n = 1 or n >= 3"),
    ],
)
def test_size_sets_print_as_a_paper_states_them(mask, t, p, text):
    grid = np.array(mask, dtype=bool)
    assert describe_axis(grid, t, p) == text
    s = SizeSet(grid, (t,), (p,), ndim=1)
    for n in range(1, 60):  # membership follows the same periodic rule
        reduced = n if n < t + p else t + (n - t) % p
        assert (n in s) == bool(grid[reduced - 1])


NAMES = {"x": x1, "w": w3, "v": v2}


@pytest.mark.parametrize(
    "text, match",
    [
        ("__import__('os').system('true') == x", "not part of|unknown operator"),
        ("x.__class__ == x", "Attribute"),
        ("[c for c in x] == x", "ListComp"),
        ("(lambda: x)() == x", "unknown operator"),
        ("open('f') == x", "unknown operator 'open'"),
        ("z == x", "unknown name 'z'"),
        ("x == x == x", "lhs == rhs"),
        ("x + ", "cannot read"),
        ("x * x == x", "multiplies by a number"),
        ("9**9**9**9 == x", "Pow"),
        ("(" * 5000 + "x" + ")" * 5000 + " == x", "characters long"),
    ],
)
def test_the_parser_runs_nothing(text, match):
    with pytest.raises(ConvAlgebraError, match=match):
        parse_identity(text, NAMES)


def test_the_parser_reads_every_operator_name():
    lhs, rhs = parse_identity(
        "conv(pad(x, (1, 1), mode='reflect'), dilate_kernel(w, 2), stride=2) + 1/2 * x[0:1] "
        "== subsample(upsample_zeros(flip(x, (1,)), 2), 2) - shift(x, 1, mode='circular')",
        NAMES,
    )
    assert lhs.channels == rhs.channels == 1
    assert (
        parse_identity(f"{lhs.formula()} == {rhs.formula()}", NAMES)[0].formula() == lhs.formula()
    )


def test_command_line_exit_codes(capsys):
    assert (
        main(
            [
                "prove",
                "conv(x, w, stride=2) == subsample(conv(x, w), 2)",
                "--x",
                "1xN",
                "--w",
                "1x1x3",
            ]
        )
        == 0
    )
    assert "Identity HOLDS" in capsys.readouterr().out
    assert (
        main(
            [
                "prove",
                "conv(x, w, padding=1) == conv(x, w, padding=1, padding_mode='circular')",
                "--x",
                "1xN",
                "--w",
                "1x1x3",
                "--format",
                "json",
            ]
        )
        == 1
    )
    assert '"holds": false' in capsys.readouterr().out
    assert main(["prove", "os.system('true') == x", "--x", "1xN"]) == 2
    assert main(["prove", "conv(x, w) == x", "--x", "1xN", "--w", "1xQ"]) == 2
    assert (
        main(["prove", "conv(x, w) == conv(x, w)", "--x", "1xN", "--w", "1x1x3", "--sizes", "1:9"])
        == 0
    )
    assert "n in {3, 4, 5, 6, 7, 8, 9}" in capsys.readouterr().out


def test_the_derivation_checks_what_it_prints():
    proof = ops.prove(
        ops.shift(ops.conv(x1, w3, padding=1), 1), ops.conv(ops.shift(x1, 1), w3, padding=1)
    )
    d = derive(proof)
    assert d.verify() > 0
    text = d.to_text()
    assert "shift(conv(x, w, padding=1), 1)" in text and "Smallest counterexample" in text
    good = ops.prove(ops.conv(x1, w3, stride=2), ops.subsample(ops.conv(x1, w3), 2))
    rows = size_classes(good)
    assert printed_identity(good, rows, ops.prove).check() == sum(len(r[3]) for r in rows)
    label, rep, _, members = rows[1]
    tampered = [rows[0], (label, rep, "fails", members), *rows[2:]]  # no longer what holds
    with pytest.raises(AssertionError, match="printed 'fails', decided 'holds' at"):
        printed_identity(good, tampered, ops.prove).check()
