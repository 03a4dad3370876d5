"""``convalgebra spectrum`` through ``main(argv)``: printed values against torch's dense SVD."""

from __future__ import annotations

import numpy as np
import pytest
from test_spectra import torch_dense

from convalgebra import ConvSpec
from convalgebra.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def printed_values(out: str) -> np.ndarray:
    line = next(x for x in out.splitlines() if x.startswith("largest: "))
    return np.array([float(v) for v in line[len("largest: ") :].split(", ") if "more" not in v])


CASES = {
    "circular-stride": (
        ["--in", "2x6x6", "--out", "3", "-k", "3", "-p", "1", "-s", "2", "--mode", "circular"],
        ConvSpec((2, 6, 6), 3, 3, stride=2, padding=1, padding_mode="circular"),
    ),
    "reflect-dense": (
        ["--in", "2x5", "--out", "2", "-k", "3", "-p", "1", "--mode", "reflect"],
        ConvSpec((2, 5), 2, 3, padding=1, padding_mode="reflect"),
    ),
    "transposed": (
        ["--in", "2x4x4", "--out", "1", "-k", "3", "-s", "2", "--transposed"],
        ConvSpec((2, 4, 4), 1, 3, stride=2, transposed=True),
    ),
}


@pytest.mark.parametrize("flags, spec", CASES.values(), ids=CASES.keys())
def test_printed_values_equal_dense_svd(capsys, tmp_path, flags, spec):
    w = np.random.default_rng(5).standard_normal(spec.weight_shape)
    np.save(tmp_path / "w.npy", w)
    code, out, err = run(
        capsys, "spectrum", *flags, "--weight", str(tmp_path / "w.npy"), "--show", "1000"
    )
    assert code == 0, err
    want = np.linalg.svd(torch_dense(spec, w), compute_uv=False)
    np.testing.assert_allclose(printed_values(out), want, rtol=1e-5, atol=1e-5 * want[0])
    assert "circulant" in out and "upper bound" in out


def test_largest_by_lanczos_and_plot(capsys, tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    spec = ConvSpec((2, 12, 12), 2, 3, padding=1)
    w = np.random.default_rng(1).standard_normal(spec.weight_shape)
    np.save(tmp_path / "w.npy", w)
    code, out, err = run(
        capsys,
        "spectrum",
        "--in",
        "2x12x12",
        "--out",
        "2",
        "-k",
        "3",
        "-p",
        "1",
        "--weight",
        str(tmp_path / "w.npy"),
        "--largest",
        "2",
        "--plot",
        str(tmp_path / "s.png"),
    )
    assert code == 0, err
    assert "Lanczos" in out
    want = np.linalg.svd(torch_dense(spec, w), compute_uv=False)[:2]
    np.testing.assert_allclose(printed_values(out), want, rtol=1e-5)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--in", "1x5", "-k", "3", "--largest", "0"], "--largest must be"),
        (["--in", "1x5", "-k", "3", "--weight", "symbolic"], "needs numbers"),
        (["--in", "1x5", "-k", "3", "--plot", "x.pdf"], "--plot must name"),
        (["-k", "3"], "needs a layer"),
    ],
    ids=["largest", "symbolic", "plot-suffix", "no-layer"],
)
def test_bad_input_exits_2(capsys, flags, message):
    code, out, err = run(capsys, "spectrum", *flags)
    assert code == 2 and message in err and out == ""


def test_derive_spectrum_from_the_command_line(capsys):
    code, out, err = run(
        capsys, "derive", "spectrum", "--in", "1x4", "-k", "2", "-p", "0:1", "--mode", "circular"
    )
    assert code == 0, err
    assert "sigma_0 = Abs(w1 + w2)" in out
