"""The one per-axis tap primitive: which input position an output reads through a kernel tap.

Along one spatial axis, output position ``o`` reads through tap ``t`` the padded coordinate
``o * stride - before + t * dilation``; the padding mode maps that coordinate back into the
input (or marks it as zero padding). Everything in the library that asks "which input does
output ``o`` read through tap ``t``" (the triple table, a spec's unread inputs, receptive
fields, pictures) goes through these functions. They take sizes only, so the lowest layer
(:mod:`convalgebra.spec`) can use them too.
"""

from __future__ import annotations

import numpy as np

from .errors import ConvAlgebraError

__all__ = [
    "MAX_LISTED",
    "axis_taps",
    "map_padded",
    "padded_coordinates",
    "read_mask",
    "tap_offsets",
    "written_mask",
]

#: Positions per axis (and table entries) up to which the read/written sets are listed.
MAX_LISTED = 2**24
#: Taps per axis up to which a read set is marked tap by tap (one strided slice each).
SLICED_TAPS = 4096


def tap_offsets(kernel: int, dilation: int, before: int) -> tuple[int, ...]:
    """Offset of each tap from ``output * stride``: ``-before + t * dilation``.

    Examples
    --------
    >>> tap_offsets(3, dilation=2, before=1)
    (-1, 1, 3)
    """
    return tuple(-before + t * dilation for t in range(kernel))


def padded_coordinates(
    n_out: int, kernel: int, stride: int, dilation: int, before: int
) -> np.ndarray:
    """Coordinate (relative to the unpadded input) each (output, tap) reads along one axis.

    Parameters
    ----------
    n_out, kernel, stride, dilation : int
        Number of output positions, kernel taps, and the step between them.
    before : int
        Padding before the first input position.

    Returns
    -------
    numpy.ndarray
        ``(n_out, kernel)`` int64; negative or ``>= size`` values fall in the padding.

    Notes
    -----
    ``c[o, t] = o * stride - before + t * dilation``.

    Examples
    --------
    >>> padded_coordinates(3, 3, stride=2, dilation=1, before=1)
    array([[-1,  0,  1],
           [ 1,  2,  3],
           [ 3,  4,  5]])
    """
    outputs = np.arange(n_out, dtype=np.int64)[:, None] * stride
    offsets = np.asarray(tap_offsets(kernel, dilation, before), dtype=np.int64)
    return outputs + offsets.reshape(1, kernel)


def map_padded(pos: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Map padded coordinates to input positions; ``-1`` marks a zero (padding) tap.

    Notes
    -----
    ``zeros``: outside ``[0, size)`` is ``-1``; ``circular``: ``pos mod size``;
    ``replicate``: clipped to the border; ``reflect``: mirrored without repeating the edge
    (PyTorch's and numpy's ``reflect``), period ``2 (size - 1)``.

    Examples
    --------
    >>> map_padded(np.array([-2, -1, 0, 3, 4]), 4, "reflect")
    array([2, 1, 0, 3, 2])
    >>> map_padded(np.array([-1, 4]), 4, "zeros")
    array([-1, -1])
    """
    if mode == "zeros":
        return np.where((pos >= 0) & (pos < size), pos, -1)
    if mode == "circular":
        return np.mod(pos, size)
    if mode == "replicate":
        return np.clip(pos, 0, size - 1)
    period = 2 * (size - 1)
    if period == 0:
        return np.zeros_like(pos)
    folded = np.mod(pos, period)
    return np.where(folded < size, folded, period - folded)


def axis_taps(
    size: int, n_out: int, kernel: int, stride: int, dilation: int, before: int, mode: str
) -> np.ndarray:
    """Input position read by each (output position, kernel tap) along one axis.

    Returns an ``(n_out, kernel)`` int64 array, ``-1`` where the tap reads zero padding.

    Examples
    --------
    >>> axis_taps(5, 3, 3, stride=2, dilation=1, before=1, mode="zeros")
    array([[-1,  0,  1],
           [ 1,  2,  3],
           [ 3,  4, -1]])
    """
    return map_padded(padded_coordinates(n_out, kernel, stride, dilation, before), size, mode)


def _require_listed(what: str, count: int) -> None:
    if count > MAX_LISTED:
        raise ConvAlgebraError(
            f"{what} would take {count:,} positions, more than {MAX_LISTED:,}; use smaller "
            "sizes (axis_taps gives the same answer for a range of outputs)"
        )


def read_mask(
    size: int, n_out: int, kernel: int, stride: int, dilation: int, before: int, mode: str
) -> np.ndarray:
    """Boolean mask over the input along one axis: True where some (output, tap) reads it.

    Without the ``(n_out, kernel)`` table when the padding mode keeps positions in place
    (zeros, replicate): each tap reads the arithmetic progression ``t d - before + o s``, one
    strided slice. Refused above :data:`MAX_LISTED` positions.

    Examples
    --------
    >>> read_mask(7, 2, 3, stride=3, dilation=1, before=0, mode="zeros").astype(int).tolist()
    [1, 1, 1, 1, 1, 1, 0]
    >>> bool(read_mask(5, 2 * 10**9 + 5, 3, 1, 10**9, 2 * 10**9, "zeros").all())
    True
    """
    _require_listed("the input positions read", size)
    mask = np.zeros(size, dtype=bool)
    if mode in ("zeros", "replicate") and kernel <= SLICED_TAPS:
        first = np.asarray(tap_offsets(kernel, dilation, before), dtype=np.int64)
        last = first + (n_out - 1) * stride
        start = first + np.maximum(-(first // stride), 0) * stride  # first read index >= 0
        for a, b in zip(start.tolist(), last.tolist()):
            if a <= b and a < size:
                mask[a : min(b, size - 1) + 1 : stride] = True
        if mode == "replicate":
            mask[0] |= bool((first <= 0).any())
            mask[-1] |= bool((last >= size - 1).any())
        return mask
    _require_listed("the table of reads", n_out * kernel)
    table = axis_taps(size, n_out, kernel, stride, dilation, before, mode)
    mask[table[table >= 0]] = True
    return mask


def written_mask(
    size: int, n_out: int, kernel: int, stride: int, dilation: int, before: int, mode: str
) -> np.ndarray:
    """Boolean mask over the outputs along one axis: True where some tap reads the input.

    Notes
    -----
    Only zero padding can leave an output reading padding alone. Output ``o`` reads the input
    through tap ``t`` when ``0 <= o s + t d - before < size``, i.e. ``t`` between
    ``ceil((before - o s) / d)`` and ``floor((size - 1 + before - o s) / d)``: O(n_out).

    Examples
    --------
    >>> written_mask(2, 6, 1, stride=1, dilation=1, before=2, mode="zeros").astype(int).tolist()
    [0, 0, 1, 1, 0, 0]
    """
    _require_listed("the output positions written", n_out)
    if mode != "zeros":
        return np.ones(n_out, dtype=bool)
    offset = before - np.arange(n_out, dtype=np.int64) * stride
    lo = np.maximum(-(-offset // dilation), 0)
    hi = np.minimum((size - 1 + offset) // dilation, kernel - 1)
    return lo <= hi
