"""The command line through ``main(argv)``: outputs, exit codes, files written or not."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from hypothesis import given, settings
from strategies import conv_specs

from convalgebra import ConvSpec, conv_matrix
from convalgebra.cli import main
from convalgebra.cli.args import parse_padding, parse_spec_string


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- the flags
@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            ["--in", "3x32x32", "--out", "16", "-k", "3", "-s", "2", "-p", "1"],
            ConvSpec((3, 32, 32), 16, 3, stride=2, padding=1),
        ),
        (["--in", "1x7", "-k", "3", "-p", "same"], ConvSpec((1, 7), 1, 3, padding="same")),
        (
            ["--in", "1x7x8", "-k", "3x2", "-p", "0:1x2", "-d", "2x1"],
            ConvSpec((1, 7, 8), 1, (3, 2), padding=((0, 1), (2, 2)), dilation=(2, 1)),
        ),
        (
            ["--in", "1x6x6", "-k", "3", "-p", "0:1"],
            ConvSpec((1, 6, 6), 1, 3, padding=((0, 1), (0, 1))),
        ),
        (
            [
                "--in",
                "4x5",
                "--out",
                "2",
                "-k",
                "3",
                "-g",
                "2",
                "--mode",
                "circular",
                "-p",
                "1",
                "--no-bias",
                "--flip",
            ],
            ConvSpec(
                (4, 5), 2, 3, groups=2, padding_mode="circular", padding=1, bias=False, flip=True
            ),
        ),
        (
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
            ConvSpec((2, 3, 3), 1, 3, stride=2, padding=1, transposed=True, output_padding=1),
        ),
    ],
    ids=[
        "pytorch-style",
        "same",
        "per-axis-asymmetric",
        "broadcast-pair",
        "groups-circular",
        "transposed",
    ],
)
def test_spec_flags_build_the_pytorch_spec(capsys, flags, expected):
    code, out, _ = run(capsys, "matrix", *flags)
    assert code == 0
    assert out.splitlines()[0] == expected.describe()


def test_parse_padding_forms():
    assert parse_padding("full") == "full"
    assert parse_padding("1,2") == (1, 2)
    assert parse_padding("1:0,0:1") == ((1, 0), (0, 1))


def test_second_layer_string_defaults_to_first_output():
    spec = parse_spec_string("-k 3 --out 2", (1, 6))
    assert spec == ConvSpec((1, 6), 2, 3)


# ------------------------------------------------------------------------------ matrix
def test_matrix_symbolic_strided_example(capsys):
    code, out, err = run(capsys, "matrix", "--in", "1x5x5", "-k", "3", "-s", "2")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "matrix: 4 x 25, 36 non-zeros" in out
    # the row of z1 reads a1 a2 a3, a6 a7 a8, a11 a12 a13 (the slides' 'a4' is a typo)
    assert lines[5].split()[:13] == [
        "w1",
        "w2",
        "w3",
        "·",
        "·",
        "w4",
        "w5",
        "w6",
        "·",
        "·",
        "w7",
        "w8",
        "w9",
    ]


def test_matrix_circulant_structure(capsys):
    code, out, _ = run(
        capsys, "matrix", "--in", "1x4x4", "-k", "3", "-p", "1", "--mode", "circular"
    )
    assert code == 0
    assert "structure: doubly block circulant" in out


def test_matrix_numeric_weight_list(capsys):
    code, out, _ = run(capsys, "matrix", "--in", "1x4", "-k", "2", "--weight", "1,2")
    assert code == 0
    assert out.splitlines()[-3:] == ["1 2 · ·", "· 1 2 ·", "· · 1 2"]


@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
def test_matrix_save_round_trips(capsys, tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    code, out, _ = run(
        capsys,
        "matrix",
        "--in",
        "2x5x4",
        "--out",
        "3",
        "-k",
        "2x3",
        "-s",
        "1x2",
        "-p",
        "1",
        "--weight",
        "random",
        "--seed",
        "3",
        "--save",
        str(path),
    )
    assert code == 0 and f"wrote {path}" in out
    spec = ConvSpec((2, 5, 4), 3, (2, 3), stride=(1, 2), padding=1)
    weight = np.random.default_rng(3).integers(-3, 4, size=spec.weight_shape)
    loaded = scipy.sparse.load_npz(path) if suffix == ".npz" else scipy.io.mmread(path)
    np.testing.assert_array_equal(loaded.toarray(), conv_matrix(spec, weight).toarray())


def test_matrix_save_symbolic_holds_weight_numbers(capsys, tmp_path):
    path = tmp_path / "m.npz"
    assert run(capsys, "matrix", "--in", "1x4", "-k", "2", "--save", str(path))[0] == 0
    np.testing.assert_array_equal(
        scipy.sparse.load_npz(path).toarray(), [[1, 2, 0, 0], [0, 1, 2, 0], [0, 0, 1, 2]]
    )


def test_matrix_plot_writes_png(capsys, tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    from test_plot import assert_real_png

    path = tmp_path / "m.png"
    code, _, _ = run(capsys, "matrix", "--in", "1x4x4", "-k", "3", "-p", "1", "--plot", str(path))
    assert code == 0
    assert_real_png(path.read_bytes())


# ---------------------------------------------------------------------- errors, exit codes
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["matrix", "--in", "3x-2x5", "-k", "3"], "expected a shape like 3x32x32"),
        (["matrix", "--in", "3", "-k", "3"], "got '3'"),
        (["matrix", "--in", "1x5", "-k", "7"], "kernel extent 7"),
        (["matrix", "--in", "4x5", "-k", "3", "-g", "3"], "groups=3 does not divide"),
        (["matrix", "--in", "1x5", "-k", "3", "-p", "x"], "expected padding"),
        (["matrix", "--in", "1x5", "-k", "3", "--mode", "mirror"], "invalid choice"),
        (["matrix", "--in", "1x5", "-k", "3", "--weight", "1,2"], "needs 3 numbers"),
        (["matrix", "--in", "1x5", "-k", "3", "--weight", "bogus"], "must be one of"),
        (["matrix", "--in", "1x5", "-k", "3", "--weight", "missing.npy"], "cannot read weight"),
        (["matrix", "--in", "1x5", "-k", "3", "--save", "m.txt"], "--save must name"),
        (["matrix", "--in", "1x5"], "required: -k"),
        (["matrix", "--in", "1x5", "-k", "3", "--max-size", "0"], "--max-size"),
        (["matrix", "--in", "1x5", "-k", "3", "-s", "0"], "stride must be a positive integer"),
        (["matrix", "--in", "1x5", "-k", "3", "-p", "-1"], "expected padding"),
        (["nosuchcommand"], "invalid choice"),
        (["matrix", "--in", "1x5", "-k", "3", "--bogus"], "unrecognized arguments"),
    ],
    ids=[
        "negative-size",
        "no-spatial",
        "kernel-too-big",
        "groups",
        "padding-word",
        "mode",
        "weight-count",
        "weight-word",
        "weight-file",
        "save-suffix",
        "missing-kernel",
        "max-size",
        "zero-stride",
        "negative-padding",
        "command",
        "unknown-flag",
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert "Traceback" not in err


def test_nothing_written_on_error(capsys, tmp_path):
    save, picture = tmp_path / "m.npz", tmp_path / "m.png"
    code, _, _ = run(
        capsys, "matrix", "--in", "1x5", "-k", "7", "--save", str(save), "--plot", str(picture)
    )
    assert code == 2
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder_writes_nothing(capsys, tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    code, _, err = run(
        capsys,
        "matrix",
        "--in",
        "1x5",
        "-k",
        "3",
        "--save",
        str(tmp_path / "m.npz"),
        "--plot",
        str(tmp_path / "no" / "m.png"),
    )
    assert code == 2 and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_target_that_is_a_folder_writes_nothing(capsys, tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    (tmp_path / "m.png").mkdir()
    code, _, err = run(
        capsys,
        "matrix",
        "--in",
        "1x5",
        "-k",
        "3",
        "--save",
        str(tmp_path / "m.npz"),
        "--plot",
        str(tmp_path / "m.png"),
    )
    assert code == 2 and "it is a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]  # no npz, no temporary files


def test_debug_shows_traceback(capsys):
    code, _, err = run(capsys, "matrix", "--debug", "--in", "1x5", "-k", "7")
    assert code == 2
    assert "Traceback" in err and "kernel extent 7" in err


@pytest.mark.parametrize(
    "error",
    [RuntimeError("unexpected"), MemoryError("unexpected"), OverflowError("unexpected")],
    ids=["runtime", "memory", "overflow"],
)
def test_internal_error_is_exit_3(capsys, monkeypatch, error):
    from convalgebra.cli import layer_commands

    def boom(ns):
        raise error

    monkeypatch.setattr(layer_commands, "matrix", boom)
    code, _, err = run(capsys, "matrix", "--in", "1x5", "-k", "3")
    assert code == 3
    name = type(error).__name__
    assert (
        err.strip() == f"internal error ({name}): unexpected (run with --debug for the traceback)"
    )


@pytest.mark.parametrize(
    "command", ["", "analyze", "matrix", "grad", "check", "derive", "rf", "params"]
)
def test_help_everywhere_with_examples(capsys, command):
    code, out, _ = run(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert "examples:" in out and "convalgebra" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("convalgebra ")


def test_matrix_large_layer_shows_weight_numbers(capsys):
    code, out, _ = run(capsys, "matrix", "--in", "3x32x32", "--out", "8", "-k", "3", "-p", "1")
    assert code == 0
    assert "matrix: 8192 x 3072, 212,064 non-zeros" in out
    assert out.rstrip().endswith("shown for layers up to 50,000 MACs)")


def test_matrix_refuses_huge_layers(capsys):
    code, out, err = run(capsys, "matrix", "--in", "64x224x224", "--out", "64", "-k", "3")
    assert code == 2 and out == ""
    assert "1,816,805,376 non-zeros" in err


def _help_examples() -> list[str]:
    from convalgebra.cli import build_parser

    parser = build_parser()
    epilogs = [parser.epilog] + [
        p.epilog for p in parser._subparsers._group_actions[0].choices.values()
    ]
    lines = []
    for epilog in epilogs:
        block = epilog.split("examples:", 1)[1].split("\n\n", 1)[0]
        lines += [line.split("  #")[0].strip() for line in block.strip().splitlines()]
    return sorted(set(lines))


MYMODEL = """
import torch.nn as nn


class Net(nn.Sequential):
    def __init__(self, width=1):
        super().__init__(nn.Conv2d(3, 8 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8 * width, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))


def make(channels, width=1):
    return nn.Sequential(nn.Conv2d(channels, 4 * width, 3), nn.ReLU(), nn.Conv2d(4 * width, 4, 3))
"""


@pytest.mark.parametrize("line", _help_examples())
def test_every_help_example_runs(capsys, tmp_path, monkeypatch, line):
    import shlex

    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mynet.yaml").write_text(  # the graph file the examples name
        "input: [3, 32, 32]\nlayers:\n  - {kind: conv, out_channels: 8, kernel_size: 3}\n"
        "  - {kind: relu}\n  - {kind: max_pool, kernel_size: 2}\n"
    )
    if "mymodel" in line:  # the Python model the examples name
        pytest.importorskip(
            "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
        )
        (tmp_path / "mymodel.py").write_text(MYMODEL)
    argv = shlex.split(line)
    assert argv[0] == "convalgebra"
    code, out, err = run(capsys, *argv[1:])
    first = out.split("\n", 1)[0]
    fails = (argv[1:2] == ["check"] and ": FAILS" in first) or (
        argv[1:2] == ["prove"] and ("FAILS" in first or '"holds": false' in out)
    )
    assert code == (1 if fails else 0), err  # check, prove: exit 1 when the identity fails
    assert out.strip()


def _flags(spec: ConvSpec) -> list[str]:
    """The command-line flags that describe ``spec`` (padding as before:after pairs)."""
    axes = lambda values: "x".join(map(str, values))  # noqa: E731
    flags = [
        "--in",
        axes(spec.input_shape),
        "--out",
        str(spec.out_channels),
        "-k",
        axes(spec.kernel_size),
        "-s",
        axes(spec.stride),
        "-d",
        axes(spec.dilation),
        "-p",
        "x".join(f"{b}:{a}" for b, a in spec.padding),
        "-g",
        str(spec.groups),
        "--mode",
        spec.padding_mode,
        "--output-padding",
        axes(spec.output_padding),
    ]
    flags += ["--transposed"] * spec.transposed + ["--flip"] * spec.flip
    return flags + ["--no-bias"] * (not spec.bias)


@settings(max_examples=60)
@given(spec=conv_specs(transposed=None))
def test_flags_round_trip_every_spec(spec):
    """Any spec the library accepts can be typed on the command line and comes back equal."""
    from convalgebra.cli import build_parser
    from convalgebra.cli.args import spec_from_args

    ns = build_parser().parse_args(["matrix", *_flags(spec)])
    assert spec_from_args(ns) == spec


def test_missing_library_module_is_a_clear_exit_2(capsys, monkeypatch):
    from convalgebra.cli import common

    def absent(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(common.importlib, "import_module", absent)
    code, out, err = run(capsys, "derive", "matrix", "--in", "1x4", "-k", "2")
    assert code == 2 and out == ""
    assert err.strip() == (
        "error: 'convalgebra derive' is not available: this installation has "
        "no convalgebra.derivations module"
    )
