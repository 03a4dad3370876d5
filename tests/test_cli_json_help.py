"""``--format json`` of spectrum, check and grad against brute force; ``derive --help`` lists
every kind; the main job ends with a "next" line whose commands run."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from hypothesis import given, settings

from convalgebra import ConvSpec
from convalgebra.cli import main
from convalgebra.cli.main import DERIVE_KINDS, MAIN_NEXT

torch = pytest.importorskip("torch")
from oracle import torch_grads  # noqa: E402
from strategies import conv_specs  # noqa: E402
from test_spectra import torch_dense  # noqa: E402


def _x(values) -> str:
    return "x".join(map(str, values))


def _flags(spec: ConvSpec) -> list[str]:
    """The command-line flags that describe ``spec``."""
    out = spec.weight_shape[1] * spec.groups if spec.transposed else spec.weight_shape[0]
    flags = [
        "--in",
        _x(spec.input_shape),
        "--out",
        str(out),
        "-k",
        _x(spec.kernel_size),
        "-s",
        _x(spec.stride),
        "-p",
        "x".join(f"{a}:{b}" for a, b in spec.padding),
        "-d",
        _x(spec.dilation),
        "-g",
        str(spec.groups),
        "--mode",
        spec.padding_mode,
    ]
    if spec.transposed:
        flags += ["--transposed", "--output-padding", _x(spec.output_padding)]
    if spec.flip:
        flags.append("--flip")
    if not spec.bias:
        flags.append("--no-bias")
    return flags


def _json_of(argv: list[str]) -> dict:
    """Run a command with ``--format json`` (inside hypothesis: no capsys) and parse it."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([*argv, "--format", "json"]) == 0
    return json.loads(buffer.getvalue())


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------ spectrum
@settings(max_examples=25)
@given(spec=conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=3, symmetric=True))
def test_spectrum_json_is_the_dense_svd(spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("w")
    w = np.random.default_rng(7).integers(-3, 4, size=spec.weight_shape).astype(float)
    np.save(folder / "w.npy", w)
    record = _json_of(["spectrum", *_flags(spec), "--weight", str(folder / "w.npy")])
    dense = torch_dense(spec, w)
    want = np.linalg.svd(dense, compute_uv=False)
    got = np.array(record["singular_values"])
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * max(1.0, want[0]))
    assert record["matrix_shape"] == list(dense.shape)
    assert record["layer"] == spec.describe()
    for bound in record.get("norm_bounds", []):
        assert bound["value"] >= want[0] * (1 - 1e-9) - 1e-12


def test_spectrum_json_with_largest_has_no_smallest(capsys):
    code, out, err = _run(
        capsys, "spectrum", "--in", "1x12", "-k", "3", "--weight", "1,2,1", "--largest", "2",
        "--format", "json",
    )  # fmt: skip
    record = json.loads(out)
    assert code == 0 and err == ""
    assert len(record["singular_values"]) == 2 and "smallest" not in record


# ---------------------------------------------------------------------------------- check
@pytest.mark.parametrize(
    "argv",
    [
        ["adjoint", "--in", "1x6", "-k", "3"],
        ["commutativity", "--in", "1x5", "-k", "2"],
        ["translation_equivariance", "--in", "1x6", "-k", "3", "-s", "2", "--shift", "1"],
        ["translation_equivariance"],
    ],
    ids=["adjoint", "commutativity", "strided-shift", "all-size-proof"],
)
def test_check_json_is_the_check_result(capsys, argv):
    import convalgebra as ca

    code, out, err = _run(capsys, "check", *argv, "--format", "json")
    record = json.loads(out)
    assert err == ""
    code_text, text, _ = _run(capsys, "check", *argv)
    assert code == code_text == (0 if record["holds"] else 1)
    assert text.splitlines()[0] == f"{record['law']}: {record['verdict']} -- {record['claim']}"
    assert record["verdict"] == ("HOLDS" if record["holds"] else "FAILS")
    assert record["law"] in ca.identities.LAWS
    example = record["counterexample"]
    if example is not None:  # the two sides really differ where it says
        lhs, rhs = np.array(example["lhs"], dtype=object), np.array(example["rhs"], dtype=object)
        if example["position"] is None:
            assert lhs.shape != rhs.shape or (lhs != rhs).any()
        else:
            position = tuple(example["position"])
            assert lhs[position] != rhs[position]


# ----------------------------------------------------------------------------------- grad
@settings(max_examples=25)
@given(
    spec=conv_specs(
        ndims=(1, 2), transposed=None, max_size=5, max_channels=3, bias=None, symmetric=True
    )
)
def test_numeric_grad_json_equals_torch_autograd(spec):
    record = _json_of(["grad", *_flags(spec), "--numeric", "--seed", "3"])
    w, x, g = (np.array(record[k], dtype=float) for k in ("weight", "x", "g"))
    assert w.shape == spec.weight_shape and x.shape == spec.input_shape
    assert g.shape == spec.output_shape
    channels = spec.output_shape[0]
    gx, gw, gb = torch_grads(spec, x, w, np.zeros(channels), g)
    np.testing.assert_allclose(record["input_gradient"], gx, atol=1e-9)
    np.testing.assert_allclose(record["weight_gradient"], gw, atol=1e-9)
    if spec.bias:
        np.testing.assert_allclose(record["bias_gradient"], gb, atol=1e-9)
    else:
        assert "bias_gradient" not in record


def test_symbolic_grad_json_is_the_printed_equations(capsys):
    flags = ["--in", "1x5x5", "-k", "3", "-s", "2", "--max-equations", "0"]
    code, out, _ = _run(capsys, "grad", *flags, "--format", "json")
    record = json.loads(out)
    _, text, _ = _run(capsys, "grad", *flags)
    printed = [line.strip() for line in text.splitlines() if line.startswith("  ") and "=" in line]
    as_data = [
        f"{e['lhs']} = {e['rhs']}"
        for key in ("forward", "weight", "bias", "input")
        for e in record[key]
    ]
    assert code == 0 and as_data == printed
    assert record["forward_count"] == 4 and record["input_count"] == 25
    assert record["weight_count"] == 9 and record["bias_count"] == 1


def test_symbolic_grad_json_terms_evaluate_to_torch(capsys):
    """The terms, evaluated at random integers, are torch's gradients."""
    spec = ConvSpec((1, 2, 5), 1, 2, stride=2, padding=((1, 0), (1, 1)), dilation=(1, 2))
    code, out, _ = _run(capsys, "grad", *_flags(spec), "--format", "json", "--max-equations", "0")
    record = json.loads(out)
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, size=spec.input_shape)
    w = rng.integers(-3, 4, size=spec.weight_shape)
    g = rng.integers(-3, 4, size=spec.output_shape)
    values = {"1": 1}
    values |= {f"a{i + 1}": int(v) for i, v in enumerate(x.ravel())}
    values |= {f"w{i + 1}": int(v) for i, v in enumerate(w.ravel())}
    values |= {f"dL/dz{i + 1}": int(v) for i, v in enumerate(g.ravel())}

    def evaluate(equation: dict) -> int:
        return sum(values[left] * values[right] for left, right in equation["terms"])

    gx, gw, _ = torch_grads(spec, x, w, [0], g)
    assert code == 0
    assert [evaluate(e) for e in record["weight"]] == gw.ravel().tolist()
    assert [evaluate(e) for e in record["input"]] == gx.ravel().tolist()


# --------------------------------------------------------------------------- derive --help
def test_derive_kinds_are_the_library_kinds():
    from convalgebra.derivations import KINDS

    assert tuple(DERIVE_KINDS) == KINDS


def test_derive_help_lists_every_kind(capsys):
    code, out, _ = _run(capsys, "derive", "--help")
    assert code == 0
    kinds = out.split("kinds (WHAT):\n")[1].splitlines()
    listed = [line.split()[0] for line in kinds[: len(DERIVE_KINDS)]]
    assert listed == list(DERIVE_KINDS)


# ------------------------------------------------------------------------------ main job
def test_the_main_job_ends_with_a_next_line_and_analyze_does_not(capsys):
    code, out, err = _run(capsys)
    assert code == 0 and err == ""
    assert out.startswith("resnet18")
    assert out.rstrip("\n").splitlines()[-1] == MAIN_NEXT
    code, out, _ = _run(capsys, "analyze")
    assert code == 0 and MAIN_NEXT not in out


def test_every_command_the_next_line_names_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(part) for part in MAIN_NEXT.removeprefix("next: ").split(" | ")]
    assert [c[:2] for c in commands] == [
        ["convalgebra", "rf"],
        ["convalgebra", "report"],
        ["convalgebra", "derive"],
    ]
    for command in commands:
        assert main(command[1:]) == 0, command
    capsys.readouterr()
    assert (tmp_path / "resnet18.html").is_file()
