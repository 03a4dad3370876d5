"""Transposed convolutions as specs: which sizes collide, and the spec of a matrix's transpose.

A strided convolution floors its output size, so up to ``stride`` input sizes share one output
size and the transposed convolution cannot tell which to restore: PyTorch's
``output_padding`` selects it. :func:`colliding_input_sizes` lists, per axis, every such size
and the ``output_padding`` that yields it, by arithmetic on the sizes;
:func:`transpose_spec` gives the spec whose matrix is the transpose of a spec's matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConvAlgebraError, shown
from .operators import check_spec
from .spec import MAX_SIZE, ConvSpec, normalize_tuple

__all__ = ["AxisSizes", "CollidingSizes", "SizeRange", "colliding_input_sizes", "transpose_spec"]


class SizeRange(Sequence):
    """Consecutive sizes ``start, start + 1, …, stop - 1``, stored as a ``range``.

    Behaves as a tuple of ints (``len``, ``in``, ``index``, slicing, iteration, equality with
    tuples) without listing its elements: a stride of 10**8 gives 10**8 colliding sizes.

    Examples
    --------
    >>> SizeRange(7, 9) == (7, 8), 8 in SizeRange(7, 9), SizeRange(7, 9).index(8)
    (True, True, 1)
    >>> SizeRange(0, 10**8)
    SizeRange(0, 100000000)
    """

    def __init__(self, start: int, stop: int) -> None:
        self._range = range(start, max(start, stop))

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index):
        item = self._range[index]
        return tuple(item) if isinstance(item, range) else item

    def __contains__(self, value) -> bool:
        return isinstance(value, (int, np.integer)) and int(value) in self._range

    def index(self, value, start: int = 0, stop: int | None = None) -> int:
        if value not in self:
            raise ValueError(f"{shown(value)} is not in {shown(self)}")
        return self._range.index(int(value))

    def __eq__(self, other) -> bool:
        if isinstance(other, SizeRange):
            return self._range == other._range
        if isinstance(other, (tuple, list, range)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._range.start, self._range.stop))

    def __repr__(self) -> str:
        if len(self) <= 16:
            return repr(tuple(self._range))
        return f"SizeRange({self._range.start}, {self._range.stop})"


@dataclass(frozen=True)
class AxisSizes:
    """Along one spatial axis: the large-side sizes that share one strided-side size.

    Attributes
    ----------
    axis : int
    output_size : int
        Size on the strided side: the forward convolution's output (= a transposed spec's
        input).
    input_sizes : tuple of int
        Every forward input size mapped to ``output_size`` (ascending). For a transposed
        spec: every output size its input reaches, one per ``output_padding <
        max(stride, dilation)`` (PyTorch's rule; with ``output_padding >= stride`` the size's
        forward convolution has more outputs, see :func:`transpose_spec`).
    output_padding : tuple of int
        Parallel to ``input_sizes``: the ``output_padding`` a transposed convolution needs
        to produce that size.
    current : int
        The spec's own large-side size (forward input, or transposed output).
    """

    axis: int
    output_size: int
    input_sizes: Sequence[int]
    output_padding: Sequence[int]
    current: int

    @property
    def collides(self) -> bool:
        return len(self.input_sizes) > 1

    def __str__(self) -> str:
        if not self.collides:
            return (
                f"axis {self.axis}: only input size {self.input_sizes[0]} gives output size "
                f"{self.output_size} (no collision)"
            )
        pairs = ", ".join(
            f"{n} (output_padding={p})"
            for n, p in zip(self.input_sizes[:8], self.output_padding[:8])
        )
        if len(self.input_sizes) > 8:
            pairs += (
                f", … ({len(self.input_sizes):,} sizes, up to {self.input_sizes[-1]} "
                f"(output_padding={self.output_padding[-1]}))"
            )
        return f"axis {self.axis}: input sizes {pairs} all give output size {self.output_size}"


@dataclass(frozen=True)
class CollidingSizes:
    """Result of :func:`colliding_input_sizes`: one :class:`AxisSizes` per spatial axis."""

    spec: ConvSpec
    axes: tuple[AxisSizes, ...]

    @property
    def collides(self) -> bool:
        """True when some axis has several input sizes for one output size."""
        return any(a.collides for a in self.axes)

    def output_padding_for(self, sizes) -> tuple[int, ...]:
        """The ``output_padding`` that makes the transposed convolution produce ``sizes``.

        Raises ``ConvAlgebraError`` naming the axis and the reachable sizes otherwise.
        """
        sizes = (sizes,) * len(self.axes) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
        if len(sizes) != len(self.axes):
            raise ConvAlgebraError(
                f"sizes must have {len(self.axes)} entries (one per spatial axis), got {shown(sizes)}"
            )
        result = []
        for axis, size in zip(self.axes, sizes):
            if size not in axis.input_sizes:
                raise ConvAlgebraError(
                    f"size {size} along spatial axis {axis.axis} cannot be reached: the "
                    f"transposed convolution from size {axis.output_size} produces only "
                    f"{list(axis.input_sizes)} (output_padding {list(axis.output_padding)})"
                )
            result.append(axis.output_padding[axis.input_sizes.index(size)])
        return tuple(result)

    def __str__(self) -> str:
        return "\n".join(str(a) for a in self.axes)

    def _repr_markdown_(self) -> str:
        def listed(values) -> str:
            if len(values) <= 8:
                return ", ".join(map(str, values))
            return f"{values[0]}, {values[1]}, …, {values[-1]}"

        rows = [
            f"| {a.axis} | {a.output_size} | {listed(a.input_sizes)} | {listed(a.output_padding)} |"
            for a in self.axes
        ]
        head = "| axis | output size | input sizes | output_padding |\n|---|---|---|---|"
        return "\n".join([head, *rows])


def _smallest_input(spec: ConvSpec, axis: int) -> int:
    """Smallest forward input size giving the spec's forward output size along ``axis``."""
    (before, after), k = spec.padding[axis], spec.kernel_size[axis]
    s, d = spec.stride[axis], spec.dilation[axis]
    return (spec.forward_output_spatial[axis] - 1) * s + d * (k - 1) + 1 - before - after


def _reach(spec: ConvSpec, axis: int) -> int:
    """How many sizes to try: a transposed spec allows ``output_padding < max(stride, dilation)``."""
    s = spec.stride[axis]
    return max(s, spec.dilation[axis]) if spec.transposed else s


def _extras(spec: ConvSpec, axis: int) -> range:
    """The ``extra`` in ``range(_reach)`` for which size ``smallest + extra`` is a valid spec.

    Only the padding rules bound it below (a positive size; reflect padding smaller than the
    size, circular padding at most the size) and the 2**62 limit above, so the valid extras
    are one interval, computed rather than tried one spec at a time.
    """
    before, after = spec.padding[axis]
    low = 1
    if spec.padding_mode == "reflect":
        low = max(before, after) + 1
    elif spec.padding_mode == "circular":
        low = max(before, after, 1)
    sizes = list(spec.forward_input_spatial)
    channels = spec.out_channels if spec.transposed else spec.in_channels
    others = channels * math.prod(sizes[:axis] + sizes[axis + 1 :])
    high = min(MAX_SIZE - 1 - before - after, (MAX_SIZE - 1) // others)
    smallest = _smallest_input(spec, axis)
    return range(max(0, low - smallest), min(_reach(spec, axis), high - smallest + 1))


def colliding_input_sizes(spec: ConvSpec) -> CollidingSizes:
    """Which input sizes map to the same output size, per axis, and how to tell them apart.

    A strided convolution floors: with stride ``s``, up to ``s`` input sizes give one output
    size, so the transposed convolution cannot know which to restore. PyTorch's
    ``output_padding`` selects it; this lists, for each spatial axis, every such size and the
    ``output_padding`` that yields it.

    Parameters
    ----------
    spec : ConvSpec
        A forward spec (sizes of its input) or a transposed spec (sizes of its output; its
        input is the strided side).

    Returns
    -------
    CollidingSizes
        One record per spatial axis: the input sizes giving the same output size, each with
        the ``output_padding`` a transposed convolution needs to reach it; ``collides`` tells
        whether any axis has several.

    Examples
    --------
    >>> print(colliding_input_sizes(ConvSpec((1, 7), 1, 3, stride=2)))
    axis 0: input sizes 7 (output_padding=0), 8 (output_padding=1) all give output size 3
    >>> sizes = colliding_input_sizes(ConvSpec((1, 3), 1, 3, stride=2, transposed=True))
    >>> sizes.output_padding_for(8)
    (1,)
    """
    check_spec(spec)
    axes = []
    for axis in range(spec.ndim):
        smallest = _smallest_input(spec, axis)
        extras = _extras(spec, axis)
        axes.append(
            AxisSizes(
                axis=axis,
                output_size=spec.forward_output_spatial[axis],
                input_sizes=SizeRange(smallest + extras.start, smallest + extras.stop),
                output_padding=SizeRange(extras.start, extras.stop),
                current=spec.forward_input_spatial[axis],
            )
        )
    return CollidingSizes(spec, tuple(axes))


def transpose_spec(spec: ConvSpec, input_size=None) -> ConvSpec:
    """The spec whose matrix is the transpose of ``spec``'s matrix.

    For a forward spec: the transposed convolution from its output back to its input size
    (or to ``input_size``, one of :func:`colliding_input_sizes`), ``output_padding`` chosen
    accordingly. For a transposed spec: its forward convolution.

    Parameters
    ----------
    spec : ConvSpec
        A forward or transposed spec, neither tiled nor with a channel table.
    input_size : tuple of int, optional
        For a forward spec, the spatial size the transposed convolution must produce (the
        sizes a strided layer maps to one output size collide); default ``spec``'s input size.

    Returns
    -------
    ConvSpec
        Its matrix is ``conv_matrix(spec, w).T`` for every weight ``w``.

    Raises
    ------
    ConvAlgebraError
        ``input_size`` cannot be reached, or the spec is tiled or has a channel table.

    Examples
    --------
    >>> t = transpose_spec(ConvSpec((1, 8), 1, 3, stride=2))
    >>> t.input_shape, t.output_padding, t.output_shape
    ((1, 3), (1,), (1, 8))
    >>> transpose_spec(ConvSpec((1, 8), 1, 3, stride=2), (7,)).output_shape
    (1, 7)
    """
    check_spec(spec)
    if spec.tile is not None or spec.channel_table is not None:
        raise ConvAlgebraError(
            "transpose_spec: tiled, locally connected and channel-table layers have no "
            f"transposed ConvSpec; use conv_matrix(spec, w).T ({spec.describe()})"
        )
    if spec.transposed:
        forward = spec.forward
        if forward.output_shape != spec.input_shape:
            raise ConvAlgebraError(
                f"output_padding={spec.output_padding} is not smaller than stride={spec.stride}: "
                f"the forward convolution of the output gives {forward.output_shape}, not the "
                f"input shape {spec.input_shape}, so no forward spec has this transpose"
            )
        return forward
    if input_size is None:
        target = spec.input_shape[1:]
    else:
        target = normalize_tuple(input_size, spec.ndim, "input_size")
    output_padding = colliding_input_sizes(spec).output_padding_for(target)
    return ConvSpec(
        (spec.out_channels, *spec.output_shape[1:]),
        spec.in_channels,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        groups=spec.groups,
        padding_mode=spec.padding_mode,
        bias=spec.bias,
        transposed=True,
        output_padding=output_padding,
        flip=spec.flip,
    )
