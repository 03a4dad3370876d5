"""Convolution-arithmetic figures for any spec: input, padding, the kernel's taps and the output.

Dumoulin and Visin drew sixteen fixed cases; :func:`conv_tikz` draws the one a spec describes
(stride, dilation, asymmetric padding, and a transposed layer as zero insertion followed by its
direct convolution) as a TikZ picture, and :func:`conv_gif` animates the sliding window with
matplotlib (the ``plot`` extra). The cells a window covers are read off the layer's index table
(:func:`convalgebra.connectivity.padded_positions`), so the picture shows what the matrix does.

Examples
--------
>>> import convalgebra as ca
>>> window_cells(ca.ConvSpec((1, 5, 5), 1, 3, stride=2, padding=1), (1, 0))
[(2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1), (4, 2)]
"""

from __future__ import annotations

import math
import operator
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import budget
from .budget import require_steps
from .connectivity import padded_positions
from .errors import ConvAlgebraError, shown
from .files import write_file
from .spec import ConvSpec

__all__ = ["window_cells", "figure_layout", "require_figure", "conv_tikz", "conv_gif"]

#: Largest padded input plus output (cells) a figure draws: beyond it no one can read the cells.
FIGURE_MAX_CELLS = 40_000
#: Largest GIF drawn, in frames times cells (each frame is rendered and quantised to a
#: palette, about 50 microseconds per cell at ``GIF_DPI``: a second or two at the limit).
GIF_MAX_CELL_FRAMES = 30_000
#: Resolution of GIF frames: 16 pixels per cell.
GIF_DPI = 40


def _drawn(spec: ConvSpec) -> ConvSpec:
    """The forward convolution to draw (for a transposed spec, on the zero-inserted input)."""
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"figures need a ConvSpec, got {type(spec).__name__}")
    if spec.ndim > 2:
        raise ConvAlgebraError(
            f"figures draw 1-D and 2-D layers, got {spec.ndim}-D: {spec.describe()}"
        )
    if not spec.transposed:
        return spec
    from .derivations.lowering import direct_equivalent

    return direct_equivalent(spec)


def _inserted(spec: ConvSpec, drawn: ConvSpec) -> np.ndarray | None:
    """Which input cells of the drawn convolution are inserted zeros (transposed specs)."""
    if not spec.transposed:
        return None
    inserted = budget.ones(drawn.input_shape[1:], dtype=bool)
    inserted[tuple(slice(None, None, int(s)) for s in tuple(spec.stride))] = False
    return inserted


def window_cells(spec: ConvSpec, output: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Cells of the padded input (0-based, padding included) that output ``output`` reads, tap by tap.

    For a transposed spec, cells of the zero-inserted and padded input of its direct convolution.
    """
    drawn = _drawn(spec)
    if len(output) != drawn.ndim or any(
        not 0 <= o < n for o, n in zip(output, drawn.output_shape[1:], strict=True)
    ):
        raise ConvAlgebraError(
            f"output must be a position in {drawn.output_shape[1:]}, got {shown(output)}"
        )
    per_axis = [padded_positions(drawn, a)[o] + drawn.padding[a][0] for a, o in enumerate(output)]
    grids = np.meshgrid(*per_axis, indexing="ij")
    return [tuple(int(v) for v in cell) for cell in np.stack([g.ravel() for g in grids], axis=1)]


def _position(output: Any) -> tuple[int, ...]:
    try:
        return tuple(operator.index(o) for o in output)
    except TypeError:
        raise TypeError(f"output must be a tuple of ints, got {shown(output)}") from None


def require_figure(spec: ConvSpec, animated: bool = False) -> tuple[int, int]:
    """The budget of a figure of ``spec``, before anything is drawn: (cells, frames).

    A picture holds at most ``FIGURE_MAX_CELLS`` cells (padded input plus output); a GIF
    (``animated``) at most ``GIF_MAX_CELL_FRAMES`` cells summed over its frames, one frame
    per output.

    Examples
    --------
    >>> require_figure(ConvSpec((1, 5, 5), 1, 3), animated=True)
    (34, 9)
    >>> require_figure(ConvSpec((1, 20, 20), 1, 3), animated=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the GIF of Conv2d(...) on input (1, 20, 20) (324 frames of 724 cells) would take 234,576 cell frames, more than GIF_MAX_CELL_FRAMES=30,000; ...
    """
    drawn = _drawn(spec)
    shape = _padded_shape(drawn)
    frames = math.prod(drawn.output_shape[1:])
    cells = math.prod(shape) + frames
    require_steps(
        f"the figure of {spec.describe()} ({' x '.join(map(str, shape))} padded input)",
        cells,
        FIGURE_MAX_CELLS,
        "draw a smaller input, padding or dilation",
        option="FIGURE_MAX_CELLS",
        unit="cells",
    )
    if animated:
        require_steps(
            f"the GIF of {spec.describe()} ({frames:,} frames of {cells:,} cells)",
            frames * cells,
            GIF_MAX_CELL_FRAMES,
            "draw a smaller input or a larger stride, or use the TikZ figure (.tex)",
            option="GIF_MAX_CELL_FRAMES",
            unit="cell frames",
        )
    return cells, frames


def _padded_shape(drawn: ConvSpec) -> tuple[int, ...]:
    return tuple(n + b + a for n, (b, a) in zip(drawn.input_shape[1:], drawn.padding, strict=True))


def figure_layout(spec: ConvSpec) -> dict[str, Any]:
    """What a figure shows: padded input size, which cells are padding or inserted zeros, output size."""
    require_figure(spec)
    drawn = _drawn(spec)
    inserted = _inserted(spec, drawn)
    shape = _padded_shape(drawn)
    padding = budget.ones(shape, dtype=bool)
    padding[
        tuple(
            slice(b, b + n) for n, (b, _) in zip(drawn.input_shape[1:], drawn.padding, strict=True)
        )
    ] = False
    zeros = budget.zeros(shape, dtype=bool)
    if inserted is not None:
        zeros[
            tuple(
                slice(b, b + n)
                for n, (b, _) in zip(drawn.input_shape[1:], drawn.padding, strict=True)
            )
        ] = inserted
    return {
        "drawn": drawn,
        "padded": shape,
        "padding": padding,
        "inserted": zeros,
        "output": tuple(drawn.output_shape[1:]),
    }


def _rows_cols(shape: tuple[int, ...]) -> tuple[int, int]:
    return (1, shape[0]) if len(shape) == 1 else (shape[0], shape[1])


def conv_tikz(spec: ConvSpec, output: tuple[int, ...] | None = None, cell: float = 0.5) -> str:
    """A TikZ picture of the layer: padded input, the window of ``output`` (default the first), the output.

    Padding cells are dashed, inserted zeros (transposed layers) grey, the taps of the window
    blue and numbered, the output cell they produce blue.

    Parameters
    ----------
    spec : ConvSpec
        A layer with 1 or 2 spatial dimensions.
    output : tuple of int, optional
        The output position (0-based) whose window is drawn; default the first.
    cell : float, default 0.5
        The side of one cell, in centimetres.

    Returns
    -------
    str
        A ``tikzpicture`` environment (needs ``\\usepackage{tikz}``).

    Examples
    --------
    >>> import convalgebra as ca
    >>> tex = conv_tikz(ca.ConvSpec((1, 4), 1, 3, padding=1))
    >>> tex.startswith(r"\\begin{tikzpicture}") and tex.count("fill=blue!30") == 4
    True
    """
    layout = figure_layout(spec)
    drawn = layout["drawn"]
    output = tuple(0 for _ in layout["output"]) if output is None else _position(output)
    taps = window_cells(spec, output)
    rows, cols = _rows_cols(layout["padded"])
    out_rows, out_cols = _rows_cols(layout["output"])
    lines = [rf"\begin{{tikzpicture}}[x={cell}cm, y={cell}cm]"]
    for idx in np.ndindex(*layout["padded"]):
        r, c = (0, idx[0]) if len(idx) == 1 else idx
        style = ["draw"]
        if layout["padding"][idx]:
            style.append("dashed")
        if layout["inserted"][idx]:
            style.append("fill=black!15")
        if idx in taps:
            style.append("fill=blue!30")
        lines.append(rf"\path[{', '.join(style)}] ({c}, {-r}) rectangle ++(1, -1);")
    for n, idx in enumerate(taps, 1):
        r, c = (0, idx[0]) if len(idx) == 1 else idx
        lines.append(rf"\node[font=\tiny] at ({c + 0.5}, {-r - 0.5}) {{{n}}};")
    left = cols + 2
    for idx in np.ndindex(*layout["output"]):
        r, c = (0, idx[0]) if len(idx) == 1 else idx
        fill = ", fill=blue!30" if idx == output else ""
        lines.append(rf"\path[draw{fill}] ({left + c}, {-r}) rectangle ++(1, -1);")
    lines.append(
        rf"\node[anchor=north] at ({cols / 2}, {-rows - 0.2}) {{\small input {_caption(drawn, spec)}}};"
    )
    lines.append(
        rf"\node[anchor=north] at ({left + out_cols / 2}, {-out_rows - 0.2}) {{\small output}};"
    )
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


def _base_colour(layout: dict[str, Any], idx: tuple[int, ...]) -> str:
    return "#d9d9d9" if layout["inserted"][idx] else "white"


def _caption(drawn: ConvSpec, spec: ConvSpec) -> str:
    if spec.transposed:
        return "(zeros inserted, padded)"
    return "(padded)" if any(b or a for b, a in drawn.padding) else ""


def conv_gif(spec: ConvSpec, path: str | Path, fps: int = 2) -> Path:
    """An animated GIF of the window sliding over the input, one frame per output (needs matplotlib).

    Parameters
    ----------
    spec : ConvSpec
        A layer with 1 or 2 spatial dimensions.
    path : str or pathlib.Path
        Where to write the GIF.
    fps : int, default 2
        Frames per second.

    Returns
    -------
    pathlib.Path
        The path written, by :func:`convalgebra.files.write_file`: a regular file replaced
        atomically, never a symbolic link, a FIFO or a device.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import convalgebra as ca
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     written = conv_gif(ca.ConvSpec((1, 4), 1, 3), Path(folder) / "conv.gif")
    ...     written.name, written.read_bytes()[:6]
    ('conv.gif', b'GIF89a')
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.animation import FuncAnimation, PillowWriter
        from matplotlib.collections import PatchCollection
        from matplotlib.patches import Rectangle
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ConvAlgebraError(
            "GIF figures need matplotlib: pip install 'convalgebra[plot]'"
        ) from exc
    layout = figure_layout(spec)
    rows, cols = _rows_cols(layout["padded"])
    out_rows, out_cols = _rows_cols(layout["output"])
    outputs = list(np.ndindex(*layout["output"]))
    cells = list(np.ndindex(*layout["padded"]))
    require_figure(spec, animated=True)
    fig, ax = plt.subplots(figsize=(0.4 * (cols + out_cols + 3), 0.4 * (max(rows, out_rows) + 1)))
    ax.set_axis_off()
    ax.set_xlim(-0.5, cols + out_cols + 2.5)
    ax.set_ylim(-max(rows, out_rows) - 0.5, 0.5)
    corners = [((0, i[0]) if len(i) == 1 else i) for i in cells]
    out_corners = [((0, i[0]) if len(i) == 1 else i) for i in outputs]
    boxes = [Rectangle((c, -r - 1), 1, 1) for r, c in corners]
    boxes += [Rectangle((cols + 2 + c, -r - 1), 1, 1) for r, c in out_corners]
    base = [_base_colour(layout, idx) for idx in cells] + ["white"] * len(outputs)
    styles = ["--" if layout["padding"][idx] else "-" for idx in cells] + ["-"] * len(outputs)
    # one collection, recoloured per frame: drawing thousands of separate patches per frame
    # is what makes a GIF slow
    grid = PatchCollection(boxes, facecolors=base, edgecolors="black", linestyles=styles)
    ax.add_collection(grid)
    slot = {idx: n for n, idx in enumerate(cells)}

    def draw(frame: int) -> list:
        colours = list(base)
        for idx in window_cells(spec, outputs[frame]):
            colours[slot[idx]] = "#9ecae1"
        colours[len(cells) + frame] = "#9ecae1"
        grid.set_facecolor(colours)
        return [grid]

    animation = FuncAnimation(fig, draw, frames=len(outputs))
    try:  # drawn in a private folder, then written by the file rules (no link followed)
        with tempfile.TemporaryDirectory() as folder:
            staged = Path(folder) / "figure.gif"
            animation.save(staged, writer=PillowWriter(fps=fps), dpi=GIF_DPI)
            return write_file(path, staged.read_bytes())
    finally:
        plt.close(fig)
