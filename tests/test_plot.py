"""Pictures: what they draw is checked against the torch oracle; each renders a real PNG."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convalgebra import ConvAlgebraError, ConvSpec

pytest.importorskip("matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'")
from oracle import torch_jacobian  # noqa: E402
from strategies import conv_specs  # noqa: E402

from convalgebra import plot  # noqa: E402


def assert_real_png(data: bytes, min_side: int = 300, min_colours: int = 5) -> None:
    """A PNG of a reasonable size with several distinct colours (not blank, not one flat tone)."""
    import matplotlib.image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert min(image.shape[:2]) >= min_side, image.shape
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) >= min_colours, len(colours)


# ------------------------------------------------------------------ what is drawn is right
@settings(max_examples=25)
@given(spec=conv_specs(ndims=(1, 2), transposed=None, symmetric=True, max_channels=2, max_size=5))
def test_weight_codes_match_torch_jacobian(spec):
    """Cell colours: weight k where torch's matrix (arange kernel) holds k; -1 where it sums."""
    n_out, n_in = math.prod(spec.output_shape), math.prod(spec.input_shape)
    weight = np.arange(1, math.prod(spec.weight_shape) + 1, dtype=float).reshape(spec.weight_shape)
    ones = np.ones(spec.weight_shape)
    codes, mixed = plot._weight_codes(spec, n_out, n_in)
    jac, taps = torch_jacobian(spec, weight), torch_jacobian(spec, ones)
    single = codes > 0
    np.testing.assert_array_equal(codes[single], jac[single])
    np.testing.assert_array_equal(taps[single], 1)
    np.testing.assert_array_equal(codes == 0, taps == 0)
    np.testing.assert_array_equal(codes == -1, taps > 1)
    for (r, c), ks in mixed.items():
        assert sum(ks) == jac[r, c] and len(ks) == taps[r, c]


@settings(max_examples=40)
@given(
    spec=conv_specs(ndims=(1, 2), transposed=None, symmetric=True, max_channels=3, max_size=6),
    data=st.data(),
)
def test_unit_reads_match_torch_jacobian_row(spec, data):
    """The receptive field drawn for a unit is the support (with multiplicity) of its row."""
    unit = tuple(data.draw(st.integers(0, s - 1)) for s in spec.output_shape[1:])
    row = np.ravel_multi_index((0, *unit), spec.output_shape)
    taps = torch_jacobian(spec, np.ones(spec.weight_shape))[row].reshape(spec.input_shape)
    read = np.flatnonzero(taps.reshape(spec.in_channels, -1).any(axis=1))
    expected = taps[read[0]] if read.size else np.zeros(spec.input_shape[1:])
    np.testing.assert_array_equal(plot._unit_reads(spec, unit), expected)


def test_unit_reads_reflect_counts_double_reads():
    # k=3, dilation 2, reflect pad 1 at unit (0, 0): rows -1,1,3 -> 1,1,3 (row 1 read twice)
    counts = plot._unit_reads(
        ConvSpec((1, 5, 6), 1, 3, padding=1, padding_mode="reflect", dilation=2), (0, 0)
    )
    assert counts[1, 1] == 4 and counts[1, 3] == 2 and counts[3, 1] == 2 and counts[3, 3] == 1
    assert counts.sum() == 9


# ----------------------------------------------------------------------- PNGs are real
MATRIX_CASES = {
    "circulant-symbolic": (ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular"), None),
    "multichannel-taps": (ConvSpec((2, 6, 6), 3, 3, padding=1), None),
    "reflect-sums": (ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="reflect"), None),
    "numeric-1d": (ConvSpec((1, 12), 1, 3, stride=2), np.array([[[1.0, -2.0, 0.5]]])),
    "many-weights": (ConvSpec((3, 5, 5), 8, 3), None),
    "large-corner": (ConvSpec((1, 40, 40), 1, 3, padding=1), "random"),
}


@pytest.mark.parametrize("name", list(MATRIX_CASES), ids=list(MATRIX_CASES))
def test_plot_matrix_renders(name):
    spec, weight = MATRIX_CASES[name]
    if isinstance(weight, str):
        weight = np.random.default_rng(0).normal(size=spec.weight_shape)
    fig = plot.plot_matrix(spec, weight)
    assert_real_png(plot.to_png(fig, dpi=60))


def test_plot_matrix_large_shows_corner():
    spec = ConvSpec((1, 40, 40), 1, 3, padding=1)
    fig = plot.plot_matrix(spec, np.ones(spec.weight_shape))
    assert "top-left 1024x1024" in fig.axes[0].get_title()


def test_plot_matrix_block_lines_at_block_boundaries():
    fig = plot.plot_matrix(ConvSpec((1, 4, 4), 1, 3, padding=1))
    ax = fig.axes[0]
    horizontal = sorted(
        {line.get_ydata()[0] for line in ax.lines if line.get_ydata()[0] == line.get_ydata()[1]}
    )
    assert horizontal == [3.5, 7.5, 11.5]  # 4x4 blocks of a 16x16 doubly block Toeplitz


RF_CASES = {
    "strided-2d": (ConvSpec((1, 7, 7), 1, 3, stride=2, padding=1), (0, 1)),
    "reflect-dilated": (
        ConvSpec((1, 5, 6), 1, 3, padding=1, padding_mode="reflect", dilation=2),
        (0, 0),
    ),
    "1d": (ConvSpec((1, 8), 1, 3, padding=1), None),
    "transposed": (
        ConvSpec((1, 3, 3), 1, 3, stride=2, padding=1, transposed=True, output_padding=1),
        None,
    ),
}


@pytest.mark.parametrize("name", list(RF_CASES), ids=list(RF_CASES))
def test_plot_receptive_field_renders(name):
    spec, unit = RF_CASES[name]
    assert_real_png(plot.to_png(plot.plot_receptive_field(spec, unit), dpi=60), min_side=150)


@pytest.mark.parametrize(
    "spec, unit, message",
    [
        (ConvSpec((1, 4, 4), 1, 3), (2, 0), "inside the output grid"),
        (ConvSpec((1, 4, 4), 1, 3), (0,), "inside the output grid"),
        (ConvSpec((1, 4, 4, 4), 1, 3), None, "1-D and 2-D"),
    ],
    ids=["outside", "wrong-rank", "3d"],
)
def test_plot_receptive_field_rejects(spec, unit, message):
    with pytest.raises(ConvAlgebraError, match=message):
        plot.plot_receptive_field(spec, unit)


def test_importing_plot_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, convalgebra.plot, convalgebra.cli; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_missing_matplotlib_names_the_extra(capsys, tmp_path, monkeypatch):
    from convalgebra import MissingExtraError
    from convalgebra.cli import main

    def missing(module, extra):
        raise MissingExtraError(
            f"{module} is needed for this feature: pip install 'convalgebra[{extra}]'"
        )

    monkeypatch.setattr(plot, "require", missing)
    with pytest.raises(MissingExtraError, match=r"convalgebra\[plot\]"):
        plot.plot_matrix(ConvSpec((1, 4), 1, 2))
    code = main(
        [
            "matrix",
            "--in",
            "1x4",
            "-k",
            "2",
            "--save",
            str(tmp_path / "m.npz"),
            "--plot",
            str(tmp_path / "m.png"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'convalgebra[plot]'" in err
    assert list(tmp_path.iterdir()) == []
