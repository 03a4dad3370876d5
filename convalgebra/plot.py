"""Pictures: a layer's matrix with its block structure, receptive fields, their growth.

Needs the optional ``plot`` extra (matplotlib), imported on first use. Figures are built with
matplotlib's object-oriented API on the headless Agg canvas, so nothing here touches pyplot's
global state or needs a display; :func:`to_image` turns any figure into PNG, SVG or PDF bytes
(:func:`to_png` for PNG).

Examples
--------
>>> from convalgebra import ConvSpec
>>> fig = plot_matrix(ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular"))
>>> to_png(fig)[:8]
b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np

from . import budget
from .errors import ConvAlgebraError, require, shown
from .spec import ConvSpec
from .taps import padded_coordinates

__all__ = [
    "plot_matrix",
    "plot_receptive_field",
    "plot_rf_growth",
    "plot_unit_field",
    "plot_effective_field",
    "plot_spectrum",
    "FIGURE_FORMATS",
    "figure_format",
    "to_image",
    "to_png",
]

MAX_DRAWN = 1024  # rows/columns drawn at most; larger matrices show their top-left corner
ANNOTATE_UP_TO = 40  # write the entries into the cells when the drawn matrix is this small


def _figure(width: float, height: float):
    """A new headless figure (Agg canvas, no pyplot)."""
    require("matplotlib", "plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


FIGURE_FORMATS = ("png", "svg", "pdf")


def figure_format(path: Any) -> str:
    """The picture format a file name asks for: ``png``, ``svg`` or ``pdf`` (``-``: png).

    Examples
    --------
    >>> figure_format("rf.svg"), figure_format("m.PDF"), figure_format("-")
    ('svg', 'pdf', 'png')
    """
    text = str(path)
    if text == "-":
        return "png"
    suffix = text.rsplit(".", 1)[-1].lower() if "." in text else ""
    if suffix not in FIGURE_FORMATS:
        raise ConvAlgebraError(f"a picture file must end in .png, .svg or .pdf, got {shown(text)}")
    return suffix


def to_image(fig, fmt: str = "png", dpi: int = 150) -> bytes:
    """Render a figure to ``png``, ``svg`` or ``pdf`` bytes (headless, reproducible).

    The saved area is the drawing's tight bounding box (no empty margins, no clipped
    title); SVG keeps its text as text (searchable, selectable), and neither SVG nor PDF
    records a creation date, so one figure always gives the same bytes.
    """
    if fmt not in FIGURE_FORMATS:
        raise ConvAlgebraError(f"fmt must be one of {FIGURE_FORMATS}, got {shown(fmt)}")
    import matplotlib

    buffer = io.BytesIO()
    metadata = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "convalgebra"}):
        fig.savefig(
            buffer,
            format=fmt,
            dpi=dpi,
            facecolor="white",
            bbox_inches="tight",
            pad_inches=0.1,
            metadata=metadata,
        )
    return buffer.getvalue()


def to_png(fig, dpi: int = 150) -> bytes:
    """Render a figure to PNG bytes (headless)."""
    return to_image(fig, "png", dpi)


def _wrap(text: str, width_inches: float, fontsize: float) -> str:
    """Break a title into lines that fit ``width_inches`` at ``fontsize`` points."""
    import textwrap

    chars = max(20, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(
        textwrap.fill(line, chars, break_on_hyphens=False) for line in text.splitlines()
    )


def _short(spec: ConvSpec) -> str:
    """A compact one-line description for titles, e.g. ``Conv2d 1x4x4 -> 1x4x4, k 3x3``."""
    kind = f"Conv{'Transpose' if spec.transposed else ''}{spec.ndim}d"
    dims = lambda t: "x".join(map(str, t))  # noqa: E731
    parts = [
        f"{kind} {dims(spec.input_shape)} -> {dims(spec.output_shape)}",
        f"k {dims(spec.kernel_size)}",
    ]
    if max(spec.stride) > 1:
        parts.append(f"stride {dims(spec.stride)}")
    if any(b or a for b, a in spec.padding):
        pads = {p for p in spec.padding}
        pad = spec.padding_word or (
            str(pads.pop()[0])
            if len(pads) == 1 and all(b == a for b, a in spec.padding)
            else "/".join(f"{b}:{a}" for b, a in spec.padding)
        )
        parts.append(f"pad {pad} ({spec.padding_mode})")
    if max(spec.dilation) > 1:
        parts.append(f"dilation {dims(spec.dilation)}")
    if spec.groups > 1:
        parts.append(f"groups {spec.groups}")
    if spec.flip:
        parts.append("flipped (convolution)")
    return ", ".join(parts)


def _mathtext(symbol: Any) -> str:
    name = str(symbol)
    match = re.fullmatch(r"([A-Za-z]+)(\d+)", name)
    if match:
        return f"${match.group(1)}_{{{match.group(2)}}}$"
    return f"${name}$"


# ------------------------------------------------------------------------------ the matrix
def _weight_codes(spec: ConvSpec, n_rows: int, n_cols: int) -> tuple[np.ndarray, dict]:
    """Dense ``(n_rows, n_cols)`` map: 0 = structural zero, k = weight k, -1 = several summed.

    Also returns ``{(row, col): [weight numbers]}`` for the cells where several taps land
    (reflect/replicate/circular padding can read one pixel twice).
    """
    from .connectivity import layer_rows_cols, triples

    t = triples(spec) if spec.transposed else triples(spec, slice(0, n_rows))
    rows, cols = layer_rows_cols(spec, t)
    keep = (rows < n_rows) & (cols < n_cols)
    rows, cols, w = rows[keep], cols[keep], t.weight_index[keep] + 1
    codes = budget.zeros((n_rows, n_cols), dtype=np.int64)
    counts = budget.zeros((n_rows, n_cols), dtype=np.int64)
    np.add.at(counts, (rows, cols), 1)
    codes[rows, cols] = w
    codes[counts > 1] = -1
    mixed: dict[tuple[int, int], list[int]] = {}
    several = counts[rows, cols] > 1
    for r, c, k in zip(rows[several].tolist(), cols[several].tolist(), w[several].tolist()):
        mixed.setdefault((r, c), []).append(k)
    return codes, mixed


def _numeric_values(spec: ConvSpec, weight, n_rows: int, n_cols: int) -> np.ndarray:
    from .operators import conv_matrix

    m = conv_matrix(spec, weight)
    return budget.dense(m[:n_rows, :n_cols], what="the plotted block").astype(float)


def _draw_blocks(ax, spec: ConvSpec, n_rows: int, n_cols: int) -> None:
    """Block boundaries: channel blocks thick, then one thinner level per spatial axis."""
    row_shape, col_shape = spec.output_shape, spec.input_shape
    styles = [(1.8, "#222222"), (0.8, "#777777"), (0.5, "#aaaaaa")]
    for level in range(len(row_shape) - 1):
        if level == 0 and row_shape[0] == 1 and col_shape[0] == 1:
            continue
        row_step, col_step = math.prod(row_shape[level + 1 :]), math.prod(col_shape[level + 1 :])
        width, colour = styles[min(level, 2)]
        row_lines = np.arange(row_step, n_rows, row_step)
        col_lines = np.arange(col_step, n_cols, col_step)
        if row_lines.size + col_lines.size > 160:
            continue  # too many lines to read; coarser levels still show the structure
        for r in row_lines:
            ax.axhline(r - 0.5, color=colour, linewidth=width)
        for c in col_lines:
            ax.axvline(c - 0.5, color=colour, linewidth=width)


def _categorical(n_weights: int):
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    base = colormaps["tab20" if n_weights > 10 else "tab10"]
    colours = ["#ffffff", "#333333"] + [base(k % base.N) for k in range(n_weights)]
    return ListedColormap(colours)


def _draw_symbolic(fig, ax, spec: ConvSpec, n_rows: int, n_cols: int) -> None:
    """Colour by kernel entry (one colour per weight, or per tap when there are many weights)."""
    from .symbolic import weight_symbols

    codes, mixed = _weight_codes(spec, n_rows, n_cols)
    n_w, taps = math.prod(spec.weight_shape), math.prod(spec.kernel_size)
    labels = [_mathtext(s) for s in weight_symbols(spec).ravel()]
    title = "kernel entry"
    if n_w > 20 and taps <= 20:
        # many channels: colour by tap position, channel blocks are told apart by the lines
        codes = np.where(codes > 0, (codes - 1) % taps + 1, codes)
        labels = [f"tap {tuple(int(i) + 1 for i in idx)}" for idx in np.ndindex(*spec.kernel_size)]
        n_w, title = taps, "kernel tap (every\nchannel block has\nits own kernel)"
    if n_w <= 20:
        # colour index 0 = zero (white), 1 = several weights summed, 2.. = weights
        ax.imshow(
            np.where(codes == -1, 1, np.where(codes > 0, codes + 1, 0)),
            cmap=_categorical(n_w),
            vmin=-0.5,
            vmax=n_w + 1.5,
            interpolation="nearest",
        )
        _weight_legend(ax, codes, labels, title)
    else:
        masked = np.ma.masked_less_equal(codes.astype(float), 0)
        image = ax.imshow(masked, cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.8, label="weight number (C order)")
    if max(n_rows, n_cols) <= ANNOTATE_UP_TO and title == "kernel entry":
        names = [str(s) for s in weight_symbols(spec).ravel()]
        roomy = n_cols <= 12
        text = {
            (r, c): _mathtext("+".join(names[k - 1] for k in sorted(ks)))
            if roomy and len(ks) == 2
            else f"Σ{len(ks)}"
            for (r, c), ks in mixed.items()
        }
        _annotate(ax, codes, lambda r, c: text.get((r, c)) or labels[codes[r, c] - 1])


def _weight_legend(ax, codes: np.ndarray, labels: list[str], title: str) -> None:
    from matplotlib.patches import Patch

    cmap = _categorical(len(labels))
    handles = [
        Patch(facecolor=cmap(k + 2), edgecolor="#444444", label=label)
        for k, label in enumerate(labels)
    ]
    if (codes == -1).any():
        handles.append(Patch(facecolor=cmap(1), label="Σn: sum of n entries\n(padding re-reads)"))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        title=title,
        fontsize=9,
        ncols=1 + len(handles) // 13,
    )


def _draw_numeric(fig, ax, values: np.ndarray) -> None:
    bound = float(np.abs(values).max()) or 1.0
    masked = np.ma.masked_equal(values, 0.0)
    image = ax.imshow(masked, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="entry value")
    if max(values.shape) <= ANNOTATE_UP_TO and np.all(values == np.round(values)) and bound < 100:
        _annotate(ax, values, lambda r, c: f"{values[r, c]:.0f}")


def _annotate(ax, grid: np.ndarray, label) -> None:
    size = max(4.0, min(10.0, 220.0 / max(grid.shape)))
    for r, c in zip(*np.nonzero(grid)):
        colour = "white" if grid[r, c] == -1 else "black"
        ax.text(c, r, label(r, c), ha="center", va="center", fontsize=size, color=colour)


def plot_matrix(spec: ConvSpec, weight=None, *, title: str | None = None):
    """Draw the layer's matrix with its block boundaries (the doubly block structure at a glance).

    Parameters
    ----------
    spec : ConvSpec
    weight : array_like, optional
        Numeric kernel in ``spec.weight_shape``: entries are coloured by value (blue negative,
        red positive). Without it, each kernel entry ``w1, w2, …`` gets its own colour, so
        the shared weights along the diagonals of Toeplitz blocks show as stripes.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Thick lines separate channel blocks, thinner ones the blocks of each spatial axis.
        Matrices larger than ``MAX_DRAWN`` rows or columns show their top-left corner.
    """
    from .structure import matrix_structure

    n_out, n_in = math.prod(spec.output_shape), math.prod(spec.input_shape)
    n_rows, n_cols = min(n_out, MAX_DRAWN), min(n_in, MAX_DRAWN)
    side = 7.0
    width = side * min(1.6, max(0.9, n_cols / n_rows)) + 2.0
    fig = _figure(width, side)
    ax = fig.add_subplot()
    if weight is None:
        _draw_symbolic(fig, ax, spec, n_rows, n_cols)
    else:
        _draw_numeric(fig, ax, _numeric_values(spec, weight, n_rows, n_cols))
    _draw_blocks(ax, spec, n_rows, n_cols)
    corner = "" if (n_rows, n_cols) == (n_out, n_in) else f", top-left {n_rows}x{n_cols} shown"
    structure = matrix_structure(spec, weight).name
    ax.set_title(
        _wrap(title or f"{_short(spec)}\n{structure}, {n_out}x{n_in}{corner}", width - 2.0, 11),
        fontsize=11,
    )
    ax.set_xlabel(f"input index (C order over {'x'.join(map(str, spec.input_shape))})")
    ax.set_ylabel(f"output index (C order over {'x'.join(map(str, spec.output_shape))})")
    return fig


# ------------------------------------------------------------------ receptive field of a unit
def _unit_reads(spec: ConvSpec, unit: tuple[int, ...]) -> np.ndarray:
    """Per input position (spatial grid), how many taps of output ``unit`` read it.

    Counted in the first input channel the unit reads (every channel it reads has the same
    spatial pattern). Padding modes that copy border pixels can make a count exceed 1.
    """
    from .connectivity import triples

    out_sp, in_sp = spec.output_shape[1:], spec.input_shape[1:]
    o = int(np.ravel_multi_index(unit, out_sp))  # channel 0 of the layer's output
    if not spec.transposed:
        t = triples(spec, slice(o, o + 1))
        reads = t.in_index
    else:  # the layer's output is the forward input: the forward outputs reading it
        t = triples(spec)
        reads = t.out_index[t.in_index == o]
    channel, position = np.divmod(reads, math.prod(in_sp))
    position = position[channel == channel.min()] if reads.size else position
    return np.bincount(position, minlength=math.prod(in_sp)).reshape(in_sp)


def _padding_taps(spec: ConvSpec, unit: tuple[int, ...]) -> list[np.ndarray]:
    """Per axis, the padded coordinates the unit's taps land on (forward convolution only)."""
    return [
        padded_coordinates(1, k, s, d, before)[0] + u * s
        for u, s, (before, _), k, d in zip(
            unit, spec.stride, spec.padding, spec.kernel_size, spec.dilation
        )
    ]


def _check_unit(spec: ConvSpec, unit) -> tuple[int, ...]:
    out_sp = spec.output_shape[1:]
    if spec.ndim > 2:
        raise ConvAlgebraError(
            f"receptive fields are drawn for 1-D and 2-D layers, got {spec.ndim} spatial dimensions"
        )
    if unit is None:
        return tuple(s // 2 for s in out_sp)
    unit = tuple(int(u) for u in unit)
    if len(unit) != len(out_sp) or any(not 0 <= u < s for u, s in zip(unit, out_sp)):
        raise ConvAlgebraError(
            f"unit must be an output position inside the output grid {out_sp} (0-based), got {shown(unit)}"
        )
    return unit


def _grid(ax, shape2d: tuple[int, int], origin=(0, 0)) -> None:
    rows, cols = shape2d
    r0, c0 = origin
    for r in range(rows + 1):
        ax.plot([c0 - 0.5, c0 + cols - 0.5], [r0 + r - 0.5] * 2, color="#bbbbbb", lw=0.6)
    for c in range(cols + 1):
        ax.plot([c0 + c - 0.5] * 2, [r0 - 0.5, r0 + rows - 0.5], color="#bbbbbb", lw=0.6)


def _draw_input_panel(ax, spec: ConvSpec, unit: tuple[int, ...], counts2d: np.ndarray) -> list:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    pads = spec.padding if spec.ndim == 2 else ((0, 0), *spec.padding)
    rows, cols = counts2d.shape
    (pt, pb), (pl, pr) = pads if not spec.transposed else ((0, 0), (0, 0))
    ax.add_patch(
        Rectangle(
            (-pl - 0.5, -pt - 0.5),
            cols + pl + pr,
            rows + pt + pb,
            facecolor="#eeeeee",
            hatch="//",
            edgecolor="#cccccc",
            lw=0,
        )
    )
    shades = ["#ffffff", "#6baed6", "#2171b5", "#08306b", "#000000"]
    top = max(1, int(counts2d.max()))
    ax.imshow(
        counts2d,
        cmap=ListedColormap(shades[: top + 1]),
        vmin=-0.5,
        vmax=top + 0.5,
        interpolation="nearest",
        extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
        zorder=2,
    )
    _grid(ax, (rows + pt + pb, cols + pl + pr), (-pt, -pl))
    handles = [Patch(facecolor=shades[1], label="read once")]
    handles += [
        Patch(facecolor=shades[n], label=f"read {n} times (padding copies)")
        for n in range(2, top + 1)
        if (counts2d == n).any()
    ]
    if not spec.transposed and (pt or pb or pl or pr):
        handles.append(
            Patch(
                facecolor="#eeeeee",
                hatch="//",
                edgecolor="#cccccc",
                label=f"{spec.padding_mode} padding",
            )
        )
        handles.append(_padding_outlines(ax, spec, unit, (rows, cols)))
    ax.set_xlim(-pl - 1, cols + pr)
    ax.set_ylim(rows + pb, -pt - 1)
    return handles


def _padding_outlines(ax, spec: ConvSpec, unit: tuple[int, ...], shape2d: tuple[int, int]):
    from matplotlib.patches import Rectangle

    taps = _padding_taps(spec, unit)
    rows_t, cols_t = taps if spec.ndim == 2 else [np.zeros(1, dtype=int), taps[0]]
    rr, cc = np.meshgrid(rows_t, cols_t, indexing="ij")
    outside = (rr < 0) | (rr >= shape2d[0]) | (cc < 0) | (cc >= shape2d[1])
    reads = "reads 0" if spec.padding_mode == "zeros" else f"{spec.padding_mode} copy"
    for r, c in zip(rr[outside], cc[outside]):
        ax.add_patch(
            Rectangle(
                (c - 0.45, r - 0.45),
                0.9,
                0.9,
                fill=False,
                edgecolor="#d62728",
                lw=1.6,
                linestyle="--",
                zorder=3,
            )
        )
    return Rectangle(
        (0, 0),
        1,
        1,
        fill=False,
        edgecolor="#d62728",
        linestyle="--",
        label=f"tap on padding ({reads})",
    )


def _draw_output_panel(ax, spec: ConvSpec, unit: tuple[int, ...]) -> None:
    out_sp = spec.output_shape[1:]
    shape2d = (out_sp[0], out_sp[1]) if spec.ndim == 2 else (1, out_sp[0])
    cell = unit if spec.ndim == 2 else (0, unit[0])
    marked = budget.zeros(shape2d)
    marked[cell] = 1
    ax.imshow(marked, cmap="Oranges", vmin=0, vmax=1.2, interpolation="nearest")
    _grid(ax, shape2d)
    ax.set_xlim(-1, shape2d[1])
    ax.set_ylim(shape2d[0], -1)


def plot_receptive_field(spec: ConvSpec, unit: tuple[int, ...] | None = None):
    """Draw which input pixels one output unit of a layer reads, next to the output grid.

    Parameters
    ----------
    spec : ConvSpec
        A 1-D or 2-D layer (any stride, dilation, padding mode, transposed).
    unit : tuple of int, optional
        The output position (0-based spatial index); default the centre of the output.

    Returns
    -------
    matplotlib.figure.Figure
        Left: the input grid, the padding hatched, each pixel shaded by how many kernel taps
        read it (reflect/replicate/circular padding can read one pixel twice), taps that land
        on the padding outlined. Right: the output grid with the unit marked.
    """
    from matplotlib.ticker import MaxNLocator

    unit = _check_unit(spec, unit)
    counts = _unit_reads(spec, unit)
    counts2d = counts if spec.ndim == 2 else counts[None, :]
    in_sp, out_sp = spec.input_shape[1:], spec.output_shape[1:]
    ratio = (in_sp[-1] + 2) / max(1, out_sp[-1] + 2)
    fig = _figure(11.0, 6.2 if spec.ndim == 2 else 3.4)
    left, right = fig.subplots(1, 2, width_ratios=[max(ratio, 1.0), 1.0])
    handles = _draw_input_panel(left, spec, unit, counts2d)
    _draw_output_panel(right, spec, unit)
    left.set_title(
        f"input {'x'.join(map(str, in_sp))}: {int((counts > 0).sum())} pixels read"
        f"\n{_extent(counts2d, spec.ndim)}",
        fontsize=11,
    )
    right.set_title(f"output {'x'.join(map(str, out_sp))}\nunit {unit}", fontsize=11)
    for ax in (left, right):
        ax.set_aspect("equal")
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if spec.ndim == 1:
            ax.set_yticks([])
    fig.legend(
        handles=handles,
        loc="outside lower center",
        frameon=False,
        fontsize=9,
        ncols=min(4, len(handles)),
    )
    fig.suptitle(
        _wrap(f"receptive field of one output unit: {_short(spec)}", 10.5, 12), fontsize=12
    )
    return fig


def _extent(counts2d: np.ndarray, ndim: int) -> str:
    rows, cols = np.nonzero(counts2d)
    if not rows.size:
        return "every tap lands on the padding"
    span = lambda v: f"{v.min()}" if v.min() == v.max() else f"{v.min()}-{v.max()}"  # noqa: E731
    return f"rows {span(rows)}, columns {span(cols)}" if ndim == 2 else f"positions {span(cols)}"


# ------------------------------------------------------------------------- whole networks
def _spatial_nodes(graph) -> list[str]:
    n = graph.spatial_ndim
    return [v for v in graph.nodes if v not in graph.inputs and len(graph.shape(v)) == n + 1]


def _main_path(graph) -> list[str]:
    """The longest input-to-output path up to the last feature map, keeping the layers that
    change the receptive field (size or jump)."""
    import networkx as nx

    spatial = _spatial_nodes(graph)
    local = [v for v in spatial if not any(f.is_global for f in graph.receptive_field(v))]
    if not local:
        return []
    target = "features" if "features" in local else local[-1]
    path = nx.dag_longest_path(graph.nx.subgraph(nx.ancestors(graph.nx, target) | {target}))
    kept: list[str] = []
    for v in (v for v in path if v in local):
        key = [(f.size, f.jump) for f in graph.receptive_field(v)]
        if not kept or key != [(f.size, f.jump) for f in graph.receptive_field(kept[-1])]:
            kept.append(v)
    return kept


def plot_rf_growth(graph, nodes: list[str] | None = None, *, title: str | None = None):
    """Receptive-field size and jump after each layer of a network.

    Parameters
    ----------
    graph : LayerGraph
    nodes : list of str, optional
        The layers to show, in order; default the longest path from the input to the last
        feature map (``"features"`` in zoo graphs), keeping the layers that change the field.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Size per spatial axis (left scale, input pixels) and the jump (effective stride,
        right scale, log 2) along the layers; global fields are drawn at the input size.
    """
    from matplotlib.ticker import FixedLocator

    nodes = list(nodes) if nodes is not None else _main_path(graph)
    if not nodes:
        raise ConvAlgebraError("the graph has no layer with a spatial output to plot")
    fields = [graph.receptive_field(v) for v in nodes]
    width = max(8.0, min(16.0, 0.25 * len(nodes) + 5))
    fig = _figure(width, 6.0)
    ax = fig.add_subplot()
    x = np.arange(len(nodes))
    _draw_sizes(ax, x, fields, graph.extent)
    jumps = ax.twinx()
    jumps.step(
        x,
        [float(max(f[a].jump for a in range(len(f)))) for f in fields],
        where="post",
        color="#d62728",
        lw=1.5,
        label="jump (effective stride)",
    )
    jumps.set_yscale("log", base=2)
    jumps.set_ylabel("jump (input pixels between neighbouring units)", color="#d62728")
    step = max(1, len(nodes) // 60)
    ax.xaxis.set_major_locator(FixedLocator(x[::step].tolist()))
    ax.set_xticklabels(nodes[::step], rotation=90, fontsize=8)
    ax.set_xlim(-0.5, len(nodes) - 0.5)
    lines = ax.get_legend_handles_labels()[0] + jumps.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="center left", frameon=False)
    shape = "x".join(map(str, graph.shape(graph.inputs[0]))) if graph.inputs else ""
    ax.set_title(
        _wrap(
            f"receptive-field growth: {title or graph.nx.graph.get('name', 'network')} on {shape}",
            width - 2.5,
            12,
        ),
        fontsize=12,
    )
    return fig


def _draw_sizes(ax, x: np.ndarray, fields: list, extent: tuple[int, ...]) -> None:
    """One line per spatial axis, each distinct final size labelled, the input size dotted."""
    names = ["height", "width"] if len(extent) == 2 else [f"axis {a}" for a in range(len(extent))]
    finals: set[float] = set()
    for a, (name, style) in enumerate(zip(names, ("-", "--", ":"))):
        sizes = [float(f[a].size) if not f[a].is_global else float(extent[a]) for f in fields]
        ax.plot(x, sizes, style, marker="o", markersize=3, lw=2, label=f"RF {name}")
        if sizes[-1] not in finals:
            ax.annotate(
                f"{sizes[-1]:g}",
                (x[-1], sizes[-1]),
                textcoords="offset points",
                xytext=(-6, 4 + 10 * len(finals)),
                ha="right",
                fontsize=9,
            )
            finals.add(sizes[-1])
    for size in sorted(set(extent)):
        ax.axhline(size, color="#888888", lw=1, ls=":")
        ax.text(
            x[-1], size, f"input size {size} ", va="bottom", ha="right", fontsize=9, color="#555555"
        )
    ax.set_ylabel("receptive field size (input pixels)")
    ax.grid(axis="y", alpha=0.3)


def plot_unit_field(
    graph, node: str, unit: tuple[int, ...] | None = None, *, title: str | None = None
):
    """The input region one unit of a network layer reads, drawn over the input image.

    Parameters
    ----------
    graph : LayerGraph
        A network with 2-D (or 1-D) spatial input.
    node : str
        The layer.
    unit : tuple of int, optional
        The unit's spatial position (0-based); default the central unit.

    Returns
    -------
    matplotlib.figure.Figure
        The input as a grid, the exact box (clipped to the image) filled, the unclipped
        field dashed where it overhangs into the padding, and the centre marked.
    """
    from matplotlib.patches import Rectangle

    if graph.spatial_ndim not in (1, 2):
        raise ConvAlgebraError(
            f"unit fields are drawn for 1-D and 2-D inputs, got "
            f"{graph.spatial_ndim} spatial dimensions"
        )
    field = graph.unit_receptive_field(node, unit)
    extent = graph.extent if graph.spatial_ndim == 2 else (1, graph.extent[0])
    fig = _figure(7.5, 7.0 if graph.spatial_ndim == 2 else 3.0)
    ax = fig.add_subplot()
    ax.add_patch(
        Rectangle(
            (-0.5, -0.5),
            extent[1],
            extent[0],
            facecolor="#f2f2f2",
            edgecolor="#333333",
            lw=1.2,
            label=f"input {'x'.join(map(str, graph.extent))}",
        )
    )
    if field.box is not None:
        box = field.box if graph.spatial_ndim == 2 else ((0, 0), field.box[0])
        ax.add_patch(
            _pixel_box(
                box,
                facecolor="#6baed6",
                alpha=0.75,
                edgecolor="#08519c",
                lw=1.5,
                label=f"field read (clipped): {' x '.join(map(str, field.size))}",
            )
        )
        _draw_unclipped(ax, graph, node, field)
    (top, bottom), (left, right) = _view(graph, node, field, extent)
    margin = 0.05 * max(bottom - top, right - left)
    ax.set_xlim(left - margin, right + margin)
    ax.set_ylim(bottom + margin, top - margin)
    ax.set_aspect("equal" if graph.spatial_ndim == 2 else "auto")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), frameon=False, ncols=2, fontsize=9)
    ax.set_title(
        _wrap(
            f"{title or graph.nx.graph.get('name', 'network')}: unit {field.position} of "
            f"{node!r} ({'x'.join(map(str, graph.shape(node)))})",
            6.5,
            11,
        ),
        fontsize=11,
    )
    return fig


def _unclipped(graph, node: str, field) -> list[tuple[float, float]] | None:
    """Per axis (rows, columns) the unclipped field of the unit, or None if not a box."""
    rf = graph.receptive_field(node)
    if any(f.is_global or not f.aligned for f in rf) or not field.position:
        return None
    spans = []
    for f, p in zip(rf, field.position):
        lo, hi = f.interval(p)
        spans.append((float(lo), float(hi)))
    return [(0.0, 0.0), spans[0]] if len(spans) == 1 else spans


def _view(graph, node: str, field, extent) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits holding the input and the unclipped field."""
    spans = _unclipped(graph, node, field) or [(0.0, 0.0), (0.0, 0.0)]
    (lo0, hi0), (lo1, hi1) = spans
    return (
        (min(-0.5, lo0 - 0.5), max(extent[0] - 0.5, hi0 + 0.5)),
        (min(-0.5, lo1 - 0.5), max(extent[1] - 0.5, hi1 + 0.5)),
    )


def _pixel_box(box, **style):
    """A rectangle covering the pixels ``((r0, r1), (c0, c1))``, both ends included."""
    from matplotlib.patches import Rectangle

    (r0, r1), (c0, c1) = box
    return Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, **style)


def _draw_unclipped(ax, graph, node: str, field) -> None:
    """Dashed: the field before clipping (it overhangs into the padding); x: its centre."""

    spans = _unclipped(graph, node, field)
    if spans is None:
        return
    (r0, r1), (c0, c1) = spans
    ax.add_patch(
        _pixel_box(
            spans,
            fill=False,
            edgecolor="#d62728",
            lw=1.5,
            ls="--",
            label=f"unclipped field {int(r1 - r0 + 1)} x {int(c1 - c0 + 1)}",
        )
    )
    centre = (
        [float(c) for c in field.centre]
        if len(field.centre) == 2
        else [0.0, float(field.centre[0])]
    )
    ax.plot(centre[1], centre[0], "x", color="#d62728", markersize=10, mew=2, label="centre")


def _erf_window(field, extent: tuple[int, ...]) -> list[tuple[float, float]]:
    """Per axis, the pixel range shown: the theoretical box and the disc, a margin around
    them, within the input (a small field on a large input is shown large)."""
    spans = []
    for a, n in enumerate(extent):
        lo = field.centre[a] - field.radius
        hi = field.centre[a] + field.radius
        if field.box is not None:
            lo, hi = min(lo, field.box[a][0]), max(hi, field.box[a][1])
        margin = max(2.0, 0.15 * (hi - lo))
        spans.append((max(-0.5, lo - margin), min(n - 0.5, hi + margin)))
    return spans


def plot_effective_field(field, *, title: str | None = None):
    """An effective receptive field (:func:`~convalgebra.effective.effective_receptive_field`)
    beside its theoretical box.

    Left: the weight of every input pixel (1-D: a bar chart), the theoretical box outlined
    and the disc (interval) holding ``field.mass`` of the weight dashed, zoomed on the field
    (with a margin, within the input). Right: the weight along the row and the column
    through the centre of mass, against the box. The effective size is the diameter of
    that disc, and the figure says so.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.patches import Circle

    w = field.weights
    if w.ndim not in (1, 2):
        raise ConvAlgebraError(f"effective fields are drawn for 1-D and 2-D inputs, got {w.ndim}")
    fig = _figure(11.0, 5.4)
    ax, side = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    name = f"{title + ': ' if title else ''}unit {field.position} of {field.node!r}"
    disc = "disc" if w.ndim == 2 else "interval"
    mass = f"{field.mass:.0%} of the weight"
    window = _erf_window(field, w.shape)
    if w.ndim == 2:
        image = ax.imshow(w, cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight (sums to 1)")
        if field.box is not None:
            box = "x".join(map(str, field.theoretical_size))
            ax.add_patch(
                _pixel_box(
                    field.box,
                    fill=False,
                    edgecolor="#e41a1c",
                    lw=1.8,
                    label=f"theoretical box {box}",
                )
            )
        ax.add_patch(
            Circle(
                (field.centre[1], field.centre[0]),
                field.radius,
                fill=False,
                edgecolor="#ff7f0e",
                lw=1.8,
                ls="--",
                label=f"{disc} holding {mass}",
            )
        )
        ax.set_xlim(*window[1])
        ax.set_ylim(window[0][1], window[0][0])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False, ncols=2)
        rows = {"row": w[int(round(field.centre[0]))], "column": w[:, int(round(field.centre[1]))]}
    else:
        ax.bar(np.arange(w.size), w, color="#6baed6", width=1.0)
        rows = {"axis 0": w}
        if field.box is not None:
            ax.axvspan(
                field.box[0][0] - 0.5,
                field.box[0][1] + 0.5,
                color="#e41a1c",
                alpha=0.15,
                label="theoretical box",
            )
        ax.axvspan(
            field.centre[0] - field.radius,
            field.centre[0] + field.radius,
            fill=False,
            edgecolor="#ff7f0e",
            ls="--",
            label=f"{disc} holding {mass}",
        )
        ax.set_xlim(*window[0])
        ax.legend(frameon=False)
    ax.set_title(
        _wrap(
            f"{name}\neffective size {field.size:.1f} px: the diameter of the {disc} "
            f"holding {mass}",
            4.6,
            10,
        ),
        fontsize=10,
    )
    for label, values in rows.items():
        side.plot(np.arange(values.size), values, marker=".", label=f"through the centre ({label})")
    side.set_xlim(*window[-1])
    side.set_xlabel("input position")
    side.set_ylabel("weight")
    side.legend(frameon=False, fontsize=9)
    box = "x".join(map(str, field.theoretical_size)) or "none"
    side.set_title(f"theoretical box {box} px (every pixel a path reaches)", fontsize=10)
    return fig


def plot_spectrum(values, *, title: str | None = None):
    """The singular values, descending, against their rank (log scale when positive).

    Examples
    --------
    >>> to_png(plot_spectrum([3.0, 2.0, 1.0]))[:4]
    b'\\x89PNG'
    """
    values = np.sort(np.asarray(values, dtype=float).ravel())[::-1]
    if values.size == 0:
        raise ConvAlgebraError("plot_spectrum needs at least one singular value")
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    ax.plot(np.arange(1, values.size + 1), values, lw=1.2, color="C0")
    if values[-1] > 0:
        ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("singular value")
    ax.set_title(_wrap(title or f"{values.size:,} singular values", 5.2, 10), fontsize=10)
    ax.grid(alpha=0.3)
    return fig
