"""Conv-arithmetic figures: the window drawn for an output is the set of padded input cells the
output's gradient reaches in torch; the TikZ compiles; the GIF has one frame per output."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from strategies import conv_specs

import convalgebra as ca
from convalgebra.figures import conv_gif, conv_tikz, figure_layout, window_cells

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
import torch.nn.functional as F  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(conv_specs(ndims=(1, 2), transposed=None, symmetric=False, max_size=6, max_channels=1))
def test_window_is_what_the_output_gradient_reaches(spec):
    if spec.transposed:
        assume(
            all(
                max(b, a) <= d * (k - 1)
                for (b, a), k, d in zip(spec.padding, spec.kernel_size, spec.dilation, strict=False)
            )
        )
    layout = figure_layout(spec)
    drawn = layout["drawn"]
    padded = torch.zeros((1, 1, *layout["padded"]), dtype=torch.float64, requires_grad=True)
    conv = getattr(F, f"conv{drawn.ndim}d")
    out = conv(
        padded,
        torch.ones((1, 1, *drawn.kernel_size), dtype=torch.float64),
        stride=drawn.stride,
        dilation=drawn.dilation,
    )
    assert tuple(out.shape[2:]) == layout["output"]
    last = tuple(n - 1 for n in layout["output"])
    out[(0, 0, *last)].backward()
    reached = {tuple(int(v) for v in idx) for idx in np.argwhere(padded.grad[0, 0].numpy() != 0)}
    assert set(window_cells(spec, last)) == reached


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize(
    "spec",
    [
        ca.ConvSpec((1, 5, 5), 1, 3, stride=2, padding=1),
        ca.ConvSpec((1, 7, 7), 1, 3, dilation=2, padding=((2, 1), (0, 1))),
        ca.ConvSpec((1, 3, 3), 1, 3, stride=2, padding=1, output_padding=1, transposed=True),
    ],
    ids=["strided", "dilated-asymmetric", "transposed"],
)
def test_tikz_figure_compiles(tmp_path, spec):
    probe = subprocess.run(["kpsewhich", "tikz.sty"], capture_output=True, text=True)
    if not probe.stdout.strip():
        pytest.skip("TikZ is not installed")
    doc = (
        "\\documentclass{article}\\usepackage{tikz}\\begin{document}\n"
        + conv_tikz(spec)
        + "\n\\end{document}\n"
    )
    (tmp_path / "fig.tex").write_text(doc, "utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "fig.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]


def test_gif_has_one_frame_per_output(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    from PIL import Image

    spec = ca.ConvSpec((1, 4, 4), 1, 3, padding=1, stride=2)
    path = conv_gif(spec, tmp_path / "slide.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == np.prod(spec.output_shape[1:])


def test_figures_refuse_3d_layers():
    with pytest.raises(ca.ConvAlgebraError, match="1-D and 2-D"):
        conv_tikz(ca.ConvSpec((1, 3, 3, 3), 1, 2))


def test_cli_derive_writes_the_figure(tmp_path):
    from convalgebra.cli import main

    path = tmp_path / "fig.tex"
    assert (
        main(
            [
                "derive",
                "output_size",
                "--in",
                "1x5x5",
                "-k",
                "3",
                "-s",
                "2",
                "-p",
                "1",
                "--figure",
                str(path),
            ]
        )
        == 0
    )
    assert path.read_text().startswith(r"\begin{tikzpicture}")
    assert (
        main(
            [
                "derive",
                "output_size",
                "--in",
                "1x5x5",
                "-k",
                "3",
                "--figure",
                str(tmp_path / "f.png"),
            ]
        )
        == 2
    )
