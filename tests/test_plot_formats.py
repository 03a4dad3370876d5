"""Every picture as PNG, SVG and PDF, read back: size, not blank, every text inside the canvas;
the effective-field picture zoomed on the field with a visible legend and its size explained."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib.colors  # noqa: E402
import matplotlib.image  # noqa: E402
import matplotlib.text  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra import plot  # noqa: E402
from convalgebra.cli import main  # noqa: E402
from convalgebra.network import zoo  # noqa: E402

LONG = ca.ConvSpec(
    (4, 9, 9),
    4,
    3,
    stride=2,
    padding=((1, 2), (0, 1)),
    dilation=2,
    groups=2,
    padding_mode="reflect",
)


def _figures():
    spec = ca.ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular")
    lenet = zoo.lenet5()
    line = ca.LayerGraph.sequential((1, 30), [ca.layers.Conv(1, 5), ca.layers.Conv(1, 3)])
    return {
        "matrix-symbolic": lambda: plot.plot_matrix(spec),
        "matrix-numeric": lambda: plot.plot_matrix(LONG, np.ones(LONG.weight_shape)),
        "receptive-field-2d": lambda: plot.plot_receptive_field(LONG),
        "receptive-field-1d": lambda: plot.plot_receptive_field(ca.ConvSpec((1, 9), 1, 3)),
        "rf-growth": lambda: plot.plot_rf_growth(zoo.resnet18(), title="resnet18"),
        "unit-field": lambda: plot.plot_unit_field(lenet, "conv2", (0, 0), title="lenet5"),
        "effective-2d": lambda: plot.plot_effective_field(
            ca.effective_receptive_field(lenet, "conv2"), title="lenet5"
        ),
        "effective-1d": lambda: plot.plot_effective_field(ca.effective_receptive_field(line)),
        "spectrum-long-title": lambda: plot.plot_spectrum(
            ca.singular_values(LONG, np.ones(LONG.weight_shape)), title=LONG.describe()
        ),
    }


FIGURES = _figures()


def _texts(fig) -> list:
    """The texts a layout can push off the canvas: titles, axis labels, legends."""
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
    for legend in fig.legends:
        texts += legend.get_texts()
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


@pytest.fixture(scope="module", params=sorted(FIGURES))
def figure(request):
    return request.param, FIGURES[request.param]()


def test_every_text_lies_inside_the_canvas(figure):
    name, fig = figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    outside = []
    for text in _texts(fig):
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            outside.append((text.get_text(), tuple(round(v) for v in box.extents)))
    assert outside == [], name


def _title(fig) -> str:
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    return (suptitle or titles[0]).splitlines()[0]


def test_png_reads_back(figure):
    name, fig = figure
    data = plot.to_image(fig, "png", dpi=60)
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert min(image.shape[:2]) >= 120, (name, image.shape)
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) >= 5, name
    # the tight box leaves no wide empty band: every edge strip holds some ink
    ink = (image[..., :3] < 0.95).any(axis=2)
    strip = max(2, min(image.shape[:2]) // 10)
    assert ink[:strip].any() and ink[-strip:].any(), name
    assert ink[:, :strip].any() and ink[:, -strip:].any(), name


def test_svg_reads_back_with_its_title_as_text(figure):
    name, fig = figure
    data = plot.to_image(fig, "svg")
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    width = float(re.match(r"[\d.]+", root.attrib["width"]).group())
    height = float(re.match(r"[\d.]+", root.attrib["height"]).group())
    assert width > 100 and height > 100
    words = " ".join(
        (el.text or "") for el in root.iter() if el.tag == "{http://www.w3.org/2000/svg}text"
    )
    assert _title(fig).split()[0] in words, name


def test_pdf_reads_back(figure):
    name, fig = figure
    data = plot.to_image(fig, "pdf")
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    boxes = re.findall(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert len(boxes) == 1, name
    assert all(float(v) > 100 for v in boxes[0])


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_one_figure_gives_the_same_bytes(fmt):
    """No creation date and fixed ids: rebuilding a figure rebuilds the file."""
    first = plot.to_image(plot.plot_spectrum([3.0, 2.0, 1.0], title="three"), fmt)
    assert plot.to_image(plot.plot_spectrum([3.0, 2.0, 1.0], title="three"), fmt) == first


def test_unknown_format_is_refused():
    fig = plot.plot_spectrum([2.0, 1.0])
    with pytest.raises(ca.ConvAlgebraError, match=r"fmt must be one of \('png', 'svg', 'pdf'\)"):
        plot.to_image(fig, "jpg")
    with pytest.raises(ca.ConvAlgebraError, match=r"must end in \.png, \.svg or \.pdf"):
        plot.figure_format("x.jpg")


def test_effective_field_zooms_on_a_small_field_of_a_large_input():
    g = zoo.resnet18()
    field = ca.effective_receptive_field(g, "layer1.0.relu#1")
    fig = plot.plot_effective_field(field, title="resnet18")
    ax = fig.axes[0]
    (r0, r1), (c0, c1) = field.box
    left, right = ax.get_xlim()
    bottom, top = ax.get_ylim()
    assert left <= c0 - 0.5 and right >= c1 + 0.5 and top <= r0 - 0.5 and bottom >= r1 + 0.5
    assert right - left < 224 / 3  # the 19-pixel box is not lost on the 224-pixel canvas
    assert field.size / (right - left) > 0.3


def test_effective_field_legend_shows_both_outlines_and_says_what_the_size_is():
    field = ca.effective_receptive_field(zoo.lenet5(), "conv2")
    fig = plot.plot_effective_field(field)
    legend = fig.axes[0].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["theoretical box 14x14", "disc holding 95% of the weight"]
    for handle in legend.legend_handles:
        r, g, b, a = matplotlib.colors.to_rgba(handle.get_edgecolor())
        assert a > 0 and min(r, g, b) < 0.8  # visible on the white legend background
    title = fig.axes[0].get_title().replace("\n", " ")
    assert f"effective size {field.size:.1f} px: the diameter of the disc holding 95%" in title


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
@pytest.mark.parametrize(
    "argv",
    [
        ["matrix", "--in", "1x5x5", "-k", "3"],
        ["spectrum", "--in", "2x6x6", "--out", "2", "-k", "3", "--weight", "ones"],
        ["rf", "lenet5"],
        ["rf", "lenet5", "--unit", "1x1", "--node", "conv2"],
    ],
    ids=["matrix", "spectrum", "rf-growth", "rf-unit"],
)
def test_every_plot_option_writes_each_format(tmp_path, capsys, argv, suffix):
    out = tmp_path / f"picture{suffix}"
    assert main([*argv, "--plot", str(out)]) == 0, capsys.readouterr().err
    data = out.read_bytes()
    start = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF-"}[suffix]
    assert data.startswith(start) and len(data) > 5_000


def test_plot_option_refuses_other_formats_naming_them(tmp_path, capsys):
    assert main(["rf", "lenet5", "--plot", str(tmp_path / "x.jpg")]) == 2
    err = capsys.readouterr().err
    assert "--plot must name a .png or .svg or .pdf file" in err
    assert list(tmp_path.iterdir()) == []
