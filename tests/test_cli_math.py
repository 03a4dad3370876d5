"""``convalgebra grad``, ``check`` and ``derive`` through ``main(argv)``."""

from __future__ import annotations

import re

import numpy as np
import pytest

from convalgebra import ConvSpec
from convalgebra.cli import main
from convalgebra.cli.layer_commands import _array


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------- grad
def test_grad_reproduces_the_strided_seed_example(capsys):
    """Seed example 17, symbol for symbol (a6 where the slides misprint a4)."""
    code, out, _ = run(
        capsys, "grad", "--in", "1x5x5", "-k", "3", "-s", "2", "--no-bias", "--max-equations", "0"
    )
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert "z1 = w1*a1 + w2*a2 + w3*a3 + w4*a6 + w5*a7 + w6*a8 + w7*a11 + w8*a12 + w9*a13" in lines
    assert "dL/dw1 = a1*dL/dz1 + a3*dL/dz2 + a11*dL/dz3 + a13*dL/dz4" in lines
    assert "dL/dw9 = a13*dL/dz1 + a15*dL/dz2 + a23*dL/dz3 + a25*dL/dz4" in lines
    assert "dL/da13 = w9*dL/dz1 + w7*dL/dz2 + w3*dL/dz3 + w1*dL/dz4" in lines
    assert "bias gradient" not in out  # --no-bias
    assert sum(line.startswith("dL/da") for line in lines) == 25


def test_grad_truncates_and_selects_parts(capsys):
    code, out, _ = run(
        capsys,
        "grad",
        "--in",
        "1x5x5",
        "-k",
        "3",
        "-s",
        "2",
        "--show",
        "input",
        "--max-equations",
        "3",
    )
    assert code == 0
    assert "forward" not in out and "kernel gradient" not in out
    assert "… 22 more (--max-equations 0 shows all)" in out


def test_grad_general_formulas_agree(capsys):
    code, out, _ = run(
        capsys,
        "grad",
        "--in",
        "2x4x5",
        "--out",
        "2",
        "-k",
        "2x3",
        "-s",
        "2",
        "--show",
        "weight",
        "--general",
    )
    assert code == 0
    assert "they agree with the equations above" in out


@pytest.mark.parametrize(
    "flags",
    [
        ["--in", "2x5x6", "--out", "3", "-k", "3", "-s", "2", "-p", "1"],
        ["--in", "4x7", "--out", "2", "-k", "3", "-g", "2", "--mode", "reflect", "-p", "2"],
        [
            "--in",
            "2x3x3",
            "--out",
            "1",
            "-k",
            "3",
            "-s",
            "2",
            "-p",
            "1",
            "--transposed",
            "--output-padding",
            "1",
        ],
    ],
    ids=["strided-2d", "groups-reflect", "transposed"],
)
def test_grad_numeric_matches_torch_autograd(capsys, flags):
    pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")
    from oracle import torch_grads

    from convalgebra.cli import build_parser
    from convalgebra.cli.args import spec_from_args

    spec = spec_from_args(build_parser().parse_args(["grad", *flags]))
    code, out, _ = run(capsys, "grad", *flags, "--numeric", "--seed", "5")
    assert code == 0
    rng = lambda k: np.random.default_rng(5 + k)  # noqa: E731 - the seeds the command uses
    w = rng(0).integers(-3, 4, size=spec.weight_shape)
    x = rng(1).integers(-3, 4, size=spec.input_shape)
    g = rng(2).integers(-3, 4, size=spec.output_shape)
    gx, gw, gb = torch_grads(spec, x, w, np.zeros(spec.out_channels), g)
    assert f"dL/dw = J(x)^T g:\n{_array(gw)}" in out
    assert f"dL/dx = M(w)^T g:\n{_array(gx)}" in out
    assert f"dL/db:\n{_array(gb)}" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["grad", "--in", "1x4", "-k", "2", "--show", "forward,sideways"], "expected parts"),
        (
            ["grad", "--in", "1x4", "-k", "2", "--numeric", "--data", "1,2"],
            "--data needs 4 numbers",
        ),
        (
            ["grad", "--in", "1x4", "-k", "2", "--numeric", "--weight", "symbolic"],
            "numeric --weight",
        ),
    ],
    ids=["parts", "data-size", "symbolic-weight"],
)
def test_grad_bad_input(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and needle in err


# ------------------------------------------------------------------------------ check
def test_check_circular_translation_holds(capsys):
    code, out, _ = run(
        capsys,
        "check",
        "translation_equivariance",
        "--in",
        "1x6x6",
        "-k",
        "3",
        "-p",
        "1",
        "--mode",
        "circular",
        "--shift",
        "1x2",
    )
    assert code == 0
    assert out.startswith("translation_equivariance: HOLDS")


def test_check_zero_padding_fails_at_the_border(capsys):
    code, out, _ = run(
        capsys,
        "check",
        "translation_equivariance",
        "--in",
        "1x6x6",
        "-k",
        "3",
        "-p",
        "1",
        "--shift",
        "0x1",
    )
    assert code == 1  # the law fails: exit status 1, like test(1)
    assert out.startswith("translation_equivariance: FAILS")
    assert "counterexample" in out


def test_check_rotation_solves_for_symmetric_kernels_latex(capsys):
    code, out, _ = run(
        capsys,
        "check",
        "rotation_equivariance",
        "--in",
        "1x5x5",
        "-k",
        "3",
        "-p",
        "1",
        "--turns",
        "1",
        "--format",
        "latex",
    )
    assert code == 1  # fails for a generic kernel; the solved kernels are in the evidence
    assert "\\" in out and "3" in out


def test_check_numeric_weight(capsys):
    # a rotation-symmetric kernel makes the layer equivariant to quarter turns
    code, out, _ = run(
        capsys,
        "check",
        "rotation_equivariance",
        "--in",
        "1x5x5",
        "-k",
        "3",
        "-p",
        "1",
        "--weight",
        "1,2,1,2,5,2,1,2,1",
    )
    assert code == 0 and "HOLDS" in out.splitlines()[0]


def test_check_list(capsys):
    code, out, _ = run(capsys, "check", "--list")
    assert code == 0 and "translation_equivariance" in out.split()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["check", "warp_equivariance", "--in", "1x5", "-k", "3"],
            "unknown law 'warp_equivariance'",
        ),
        (["check", "--in", "1x5", "-k", "3"], "needs a LAW"),
        (
            ["check", "translation_equivariance", "--in", "1x5", "-k", "3", "--turns", "1"],
            "does not take --turns",
        ),
        (["check", "adjoint"], "needs a layer"),
        (
            ["check", "translation_equivariance", "--in", "1x5", "-k", "3", "--with", "-k 9"],
            "kernel extent 9",
        ),
    ],
    ids=["unknown-law", "no-law", "foreign-option", "no-layer", "bad-second-layer"],
)
def test_check_bad_input(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


# ----------------------------------------------------------------------------- derive
def test_derive_output_size_non_tiling(capsys):
    code, out, _ = run(capsys, "derive", "output_size", "--in", "1x7", "-k", "3", "-s", "3")
    assert code == 0
    assert re.search(r"^\s*O_1 = floor\(\(7 - 3 \+ 2\*0\)/3\) \+ 1 = .*= 2$", out, re.M)
    assert "never read" in out and ": 7." in out


def test_derive_backward_latex_to_file(capsys, tmp_path):
    path = tmp_path / "backward.tex"
    code, out, _ = run(
        capsys,
        "derive",
        "backward",
        "--in",
        "1x5x5",
        "-k",
        "3",
        "-s",
        "2",
        "--format",
        "latex",
        "--standalone",
        "-o",
        str(path),
    )
    assert code == 0 and out.startswith(f"wrote {path}")
    text = path.read_text()
    assert text.startswith("\\documentclass") and "\\end{document}" in text
    assert "a_{6}" in text


def test_derive_network_markdown(capsys):
    code, out, _ = run(capsys, "derive", "params", "--model", "lenet5", "--format", "markdown")
    assert code == 0
    assert "61706" in out.replace("{,}", "").replace(",", "")


def test_derive_error_writes_nothing(capsys, tmp_path):
    path = tmp_path / "d.md"
    code, _, err = run(capsys, "derive", "sideways", "--in", "1x5", "-k", "3", "-o", str(path))
    assert code == 2 and "sideways" in err
    assert not path.exists()


@pytest.mark.parametrize(
    "argv, first_line",
    [
        (
            ["commutativity"],
            "commutativity: HOLDS -- I op K = K op I for the convolution, every size",
        ),
        (["commutativity", "--in", "1x3", "-k", "2"], "commutativity: FAILS"),
        (
            [
                "layer_commutativity",
                "--in",
                "1x6",
                "-k",
                "3",
                "-p",
                "1",
                "--mode",
                "circular",
                "--with",
                "-k 2 -p 0:1 --mode circular",
            ],
            "layer_commutativity: HOLDS",
        ),
        (
            ["composition", "--in", "1x9", "-k", "3", "-s", "2", "--with", "-k 2"],
            "composition: HOLDS",
        ),
        (
            ["avg_pool_equivariance", "--in", "1x8x8", "-k", "2", "--shift", "2x0"],
            "avg_pool_equivariance: HOLDS",
        ),
    ],
    ids=["proof-all-sizes", "cross-correlation", "two-circular-layers", "composition", "avg-pool"],
)
def test_check_laws_with_two_layers_proofs_and_pooling(capsys, argv, first_line):
    code, out, _ = run(capsys, "check", *argv)
    assert code == (0 if "HOLDS" in first_line else 1)
    assert out.startswith(first_line)


def test_check_composition_kernel_extent_seed_example_26(capsys):
    code, out, _ = run(
        capsys, "check", "composition", "--in", "1x9", "-k", "3", "-s", "2", "--with", "-k 2"
    )
    assert code == 0
    assert "kernel extent: (5,)" in out and "stride: (2,)" in out  # 3 + (2-1)*2 = 5


def test_check_max_pool_invariance_fraction(capsys):
    """Seed example 24: the fraction of pooled outputs a one-pixel shift leaves unchanged."""
    x = np.arange(16).reshape(1, 4, 4) % 5
    code, out, _ = run(
        capsys,
        "check",
        "max_pool_invariance",
        "--in",
        "1x4x4",
        "-k",
        "2",
        "--shift",
        "0x1",
        "--data",
        ",".join(map(str, x.ravel())),
    )
    shifted = np.zeros_like(x)
    shifted[..., 1:] = x[..., :-1]
    pool = lambda a: a.reshape(2, 2, 2, 2).max(axis=(1, 3))  # noqa: E731
    unchanged = int((pool(shifted[0]) == pool(x[0])).sum())
    assert code == (0 if unchanged == 4 else 1)
    assert f"{unchanged} of 4 pooled outputs are unchanged" in out


@pytest.mark.parametrize(
    "flags, delta",
    [
        (["--shift", "1", "--axis", "1"], (0, 1)),
        (["--shift=-1"], (-1, 0)),
        (["--shift", "-1", "--axis", "0"], (-1, 0)),
        (["--shift", "0x-1"], (0, -1)),
        (["--shift", "-2,1"], (-2, 1)),
    ],
)
def test_check_signed_shifts(capsys, flags, delta):
    """An int --shift combines with --axis; negative shifts are accepted (torch oracle)."""
    from oracle import torch_conv

    code, out, err = run(
        capsys, "check", "translation_equivariance", "--in", "1x5x5", "-k", "3", *flags
    )
    assert code in (0, 1), err
    assert f"zero-fill shift by {delta}" in out
    # the verdict against torch: conv(shift(x)) vs shift(conv(x)) on the valid 3×3 output
    spec = ConvSpec((1, 5, 5), 1, 3)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 5, 5)), rng.standard_normal((1, 1, 3, 3))

    def shift(a):
        out_ = np.zeros_like(a)
        src = tuple(slice(max(-d, 0), a.shape[i + 1] - max(d, 0)) for i, d in enumerate(delta))
        dst = tuple(slice(max(d, 0), a.shape[i + 1] - max(-d, 0)) for i, d in enumerate(delta))
        out_[(slice(None), *dst)] = a[(slice(None), *src)]
        return out_

    same = np.allclose(torch_conv(spec, shift(x), w).numpy(), shift(torch_conv(spec, x, w).numpy()))
    assert code == (0 if same else 1)
    assert out.startswith("translation_equivariance: " + ("HOLDS" if same else "FAILS"))


@pytest.mark.parametrize("value", ["1.5", "a", "1x", "--1", ""])
def test_check_bad_shift_is_a_usage_error(capsys, value):
    code, out, err = run(
        capsys, "check", "translation_equivariance", "--in", "1x5x5", "-k", "3", f"--shift={value}"
    )
    assert code == 2 and out == "" and "expected a shift like" in err


def test_check_composition_circular_then_valid(capsys):
    code, out, _ = run(
        capsys,
        "check",
        "composition",
        "--in",
        "1x6",
        "-k",
        "3",
        "-p",
        "1",
        "--mode",
        "circular",
        "--with",
        "-k 3",
    )
    assert code == 0 and out.startswith("composition: HOLDS")
    assert "padding_mode='circular'" in out
