"""Receptive fields: per-axis recurrences and the exact region of one output unit.

Every layer tells, for each spatial axis, how one output unit reads its input (an *axis map*):

- :class:`Local` -- unit ``o`` reads positions ``o * stride + c`` for each tap offset ``c``
  (convolution, pooling, padding, cropping, elementwise layers);
- :class:`Scatter` -- input ``i`` writes to outputs ``i * stride + c`` (transposed
  convolution, nearest upsampling by an integer factor);
- :class:`Resample` -- interpolation with an arbitrary ratio (nearest or linear);
- :class:`Window` -- adaptive pooling windows ``[floor(o n / m), ceil((o + 1) n / m))``;
- :class:`Broadcast` -- a size-1 axis read by every output unit;
- :class:`Global` -- every output unit reads the whole axis.

Two things are derived from the same maps:

1. the Araujo, Norris & Sim (Distill, 2019) recurrences for the size ``r``, jump ``j`` and
   centre ``start`` of the first unit, :func:`apply_map`, with the union over the branches of
   a DAG, :func:`merge`;
2. the exact set of input positions read by a set of output positions along one axis,
   :meth:`Local.back` and friends (used for the receptive field of one unit: the layers act
   on each axis separately, so the projections of the region are propagated exactly).

Notes
-----
For a :class:`Local` map with taps ``c_min .. c_max`` the recurrences are
``r' = r + (c_max - c_min) j``, ``start' = start + (c_min + c_max) j / 2``, ``j' = s j``.
For a :class:`Scatter` map (stride ``s``) ``j' = j / s`` (a fractional jump),
``start' = start - (c_min + c_max) j / (2 s)`` and ``r' = r + span j`` where ``span`` is the
largest distance, in input units, between two inputs written to the same output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from .. import budget
from ..taps import map_padded

__all__ = [
    "AxisRF",
    "Local",
    "Scatter",
    "Resample",
    "Window",
    "Broadcast",
    "Global",
    "IDENTITY",
    "apply_map",
    "merge",
    "input_rf",
    "global_rf",
    "plain_number",
]

Num = int | Fraction


def _num(value: Num) -> Num:
    """A Fraction with denominator 1 becomes an int (for readable records)."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return value


def _half(value: Num) -> Num:
    """``value / 2``, an int when exact."""
    if isinstance(value, int) and value % 2 == 0:
        return value // 2
    return _num(Fraction(value) / 2)


@dataclass(frozen=True, slots=True)
class AxisRF:
    """The receptive field of a layer's units along one spatial axis of the input.

    Attributes
    ----------
    size : int or Fraction
        Extent ``r`` in input positions of unit 0's field (the same for every unit of an
        aligned field; the largest over units when it varies by phase and ``exact`` is set).
    jump : int or Fraction
        Distance in input positions between the centres of adjacent units (effective stride);
        a fraction after transposed convolutions or upsampling. For unaligned fields, the
        largest of ``jumps``.
    start : int or Fraction
        Centre of the first unit's field, in input coordinates (may lie outside the input).
    is_global : bool
        The units read the whole axis (global pooling, linear layers, gates, normalisation
        over the axis); ``size`` is then the input extent.
    jumps : tuple
        The distinct jumps of the paths that reach this node. More than one means the
        branches are not aligned: ``size``/``start`` describe unit 0 (the union of the
        paths' intervals) and the field of unit ``i`` is :meth:`interval` ``(i)``.
    exact : bool
        False after a layer whose reach depends on the unit's phase (a transposed convolution
        or upsampling with stride > 1, adaptive pooling that does not divide): ``size`` is
        then the recurrence's value; ``LayerGraph.receptive_field(node, exact=True)`` gives
        the largest extent over units.
    parts : tuple
        One ``(size, jump, start, exact)`` record per distinct path jump, each propagated by
        the recurrences on its own (empty for a single aligned record: the field itself).

    Examples
    --------
    >>> rf = AxisRF(size=7, jump=2, start=1)
    >>> rf.padding
    2
    """

    size: Num
    jump: Num
    start: Num
    is_global: bool = False
    jumps: tuple = field(default=())
    exact: bool = True
    parts: tuple = field(default=(), repr=False)

    @property
    def padding(self) -> Num:
        """Effective padding ``(size - 1) / 2 - start`` of the input (Araujo et al.)."""
        return _num(Fraction(self.size - 1) / 2 - self.start)

    @property
    def aligned(self) -> bool:
        """False when merged branches have different jumps."""
        return len(self.jumps) <= 1

    @property
    def records(self) -> tuple:
        """The ``(size, jump, start, exact)`` record of each distinct path jump."""
        return self.parts or ((self.size, self.jump, self.start, self.exact),)

    def interval(self, index: int = 0) -> tuple[Num, Num]:
        """Unclipped ``(first, last)`` input position read by unit ``index``.

        For unaligned fields, the hull of the intervals of every path.

        Examples
        --------
        >>> fields = [AxisRF(6, 2, Fraction(5, 2)), AxisRF(11, 1, 5)]
        >>> merged = merge(fields, 16)
        >>> merged.interval(0), merged.interval(5), merged.interval(7)
        ((0, 10), (5, 15), (7, 19))
        """
        ends = [
            (
                start + index * jump - Fraction(size - 1) / 2,
                start + index * jump + Fraction(size - 1) / 2,
            )
            for size, jump, start, _ in self.records
        ]
        return _num(Fraction(min(e[0] for e in ends))), _num(Fraction(max(e[1] for e in ends)))

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values: ``size``, ``jump`` and ``start`` as numbers (an
        int when whole, else a float), ``global`` and ``exact`` as booleans.

        Examples
        --------
        >>> AxisRF(7, 2, Fraction(3, 2)).to_dict()
        {'size': 7, 'jump': 2, 'start': 1.5, 'global': False, 'exact': True}
        """
        return {
            "size": plain_number(self.size),
            "jump": plain_number(self.jump),
            "start": plain_number(self.start),
            "global": bool(self.is_global),
            "exact": bool(self.exact),
        }

    def describe(self) -> str:
        """Short text: ``"7/2"`` (size/jump), ``"~5/(1/2)"`` (not exact), ``"global"``.

        Fractional jumps are parenthesised; unaligned fields list their jumps (``"18/1|2"``).

        Examples
        --------
        >>> AxisRF(2, Fraction(1, 2), Fraction(1, 4), exact=False).describe()
        '~2/(1/2)'
        """
        if self.is_global:
            return "global"
        if self.size == 0:  # a parameter's field: it reads no input
            return "none"
        jumps = self.jumps if not self.aligned else (self.jump,)
        jump = "|".join(f"({j})" if isinstance(j, Fraction) else str(j) for j in jumps)
        return f"{'' if self.exact else '~'}{self.size}/{jump}"


def plain_number(value: Any) -> int | float:
    """``value`` as an int when it is whole, else as a float (for JSON, CSV and GraphML)."""
    return int(value) if value == int(value) else float(value)


def input_rf() -> AxisRF:
    """The field of an input unit: itself (size 1, jump 1, centre 0)."""
    return AxisRF(1, 1, 0, jumps=(1,))


def global_rf(extent: int, jump: Num) -> AxisRF:
    """A global field over an axis of ``extent`` input positions."""
    return AxisRF(extent, jump, _half(extent - 1), True, (jump,))


# ------------------------------------------------------------------------ axis maps
def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


@dataclass(frozen=True, slots=True)
class Local:
    """Unit ``o`` reads input positions ``o * stride + c`` for ``c`` in ``taps``.

    ``mode`` says what happens outside ``[0, n)``: ``"zeros"`` drops the tap, ``"replicate"``,
    ``"reflect"`` and ``"circular"`` map it back inside (as the padding modes of PyTorch).
    """

    stride: int
    taps: tuple[int, ...]
    mode: str = "zeros"

    def back(self, pos: np.ndarray, n: int, clip: bool = True) -> np.ndarray:
        read = pos[:, None] * self.stride + np.asarray(self.taps)[None, :]
        if not clip:
            return np.unique(read)
        mapped = map_padded(read, n, {"constant": "zeros"}.get(self.mode, self.mode))
        return np.unique(mapped[mapped >= 0])


@dataclass(frozen=True, slots=True)
class Scatter:
    """Input ``i`` writes to outputs ``i * stride + c`` for ``c`` in ``taps``."""

    stride: int
    taps: tuple[int, ...]

    def back(self, pos: np.ndarray, n: int, clip: bool = True) -> np.ndarray:
        offset = pos[:, None] - np.asarray(self.taps)[None, :]
        src = offset // self.stride
        keep = (offset % self.stride == 0) & ((src >= 0) & (src < n) | (not clip))
        return np.unique(src[keep])

    def span(self) -> int:
        """Largest distance between two inputs written to the same output."""
        best = 0
        for phase in range(self.stride):
            same = [c for c in self.taps if (c - phase) % self.stride == 0]
            if same:
                best = max(best, (max(same) - min(same)) // self.stride)
        return best


@dataclass(frozen=True, slots=True)
class Resample:
    """Interpolation: output ``o`` samples input coordinate ``src(o)`` (PyTorch's rules).

    ``ratio`` is input size per output unit (``1 / scale_factor`` when a scale is given);
    ``linear`` reads the two neighbours of ``src(o)`` (the second only with a non-zero
    weight), nearest reads ``floor(o * ratio)``.
    """

    ratio: Fraction
    linear: bool = False
    align_corners: bool = False

    def back(self, pos: np.ndarray, n: int, clip: bool = True) -> np.ndarray:
        # src(o) = num / den exactly, in integers
        a, b = self.ratio.numerator, self.ratio.denominator
        top = n - 1 if clip else np.iinfo(np.int64).max
        if not self.linear:  # PyTorch computes floor(o * scale) in float32
            scaled = np.floor(pos.astype(np.float32) * np.float32(float(self.ratio)))
            return np.unique(np.minimum(scaled.astype(np.int64), top))
        if self.align_corners:
            num, den = pos * a, np.full_like(pos, b)
        else:
            num, den = (2 * pos + 1) * a - b, np.full_like(pos, 2 * b)
            num = np.maximum(num, 0) if clip else num
        first = num // den
        second = np.where(num % den != 0, first + 1, first)
        return np.unique(np.minimum(np.concatenate([first, second]), top))


@dataclass(frozen=True, slots=True)
class Window:
    """Adaptive pooling from ``n_in`` to ``n_out`` units (PyTorch's window rule)."""

    n_in: int
    n_out: int

    def back(self, pos: np.ndarray, n: int, clip: bool = True) -> np.ndarray:
        if not clip:  # only whole windows: the hull is exact
            first = pos.min() * self.n_in // self.n_out
            return np.arange(first, -((-(pos.max() + 1) * self.n_in) // self.n_out))
        starts = pos * self.n_in // self.n_out
        ends = -((-(pos + 1) * self.n_in) // self.n_out)
        marks = budget.zeros(n + 1, dtype=np.int64)
        np.add.at(marks, starts, 1)
        np.add.at(marks, ends, -1)
        return np.flatnonzero(np.cumsum(marks)[:n] > 0)

    def widest(self) -> int:
        o = np.arange(self.n_out)
        ends = -((-(o + 1) * self.n_in) // self.n_out)
        return int((ends - (o * self.n_in) // self.n_out).max())


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A size-1 input axis broadcast to every output unit."""

    def back(self, pos: np.ndarray, n: int, clip: bool = True) -> np.ndarray:
        return np.zeros(1, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Global:
    """Every output unit reads the whole input axis."""

    def back(self, pos: np.ndarray, n: int, clip: bool = True) -> np.ndarray:
        return np.arange(n)


IDENTITY = Local(1, (0,))
AxisMap = Local | Scatter | Resample | Window | Broadcast | Global


# ----------------------------------------------------------------------- recurrences
@lru_cache(maxsize=1 << 16)  # records and maps are immutable; repeated blocks recur
def apply_map(rf: AxisRF, amap: AxisMap, extent: int) -> AxisRF:
    """The field after one layer, from the field of its input (Araujo et al. recurrences).

    ``extent`` is the size of the graph's input along the axis (used by global fields).

    Examples
    --------
    >>> rf = apply_map(input_rf(), Local(1, (-1, 0, 1)), 32)   # 3x3 conv, padding 1
    >>> (rf.size, rf.jump, rf.start)
    (3, 1, 0)
    >>> rf = apply_map(rf, Local(2, (0, 1)), 32)               # 2x2 pool, stride 2
    >>> (rf.size, rf.jump, rf.start)
    (4, 2, Fraction(1, 2))
    >>> apply_map(rf, Scatter(2, (0, 1)), 32).jump            # 2x2 transposed, stride 2
    1
    """
    if rf.is_global or isinstance(amap, Global):
        return global_rf(extent, rf.jump)
    if isinstance(amap, Broadcast):
        return rf
    if amap is IDENTITY:
        return rf
    if rf.parts:  # unaligned: every path's record follows the recurrence on its own
        return merge(
            [
                _apply_aligned(AxisRF(size, jump, start, False, (jump,), exact), amap, extent)
                for size, jump, start, exact in rf.parts
            ],
            extent,
        )
    return _apply_aligned(rf, amap, extent)


def _apply_aligned(rf: AxisRF, amap: AxisMap, extent: int) -> AxisRF:
    if isinstance(amap, Global):
        return global_rf(extent, rf.jump)
    j = rf.jump
    if isinstance(amap, Local):
        lo, hi = min(amap.taps), max(amap.taps)
        shift = (lo + hi) * j
        if type(j) is int and type(rf.start) is int and shift % 2 == 0:
            jump = j * amap.stride  # the common all-integer case, without Fractions
            return AxisRF(
                rf.size + (hi - lo) * j, jump, rf.start + shift // 2, False, (jump,), rf.exact
            )
        return _record(
            rf.size + (hi - lo) * j, j * amap.stride, rf.start + _half((lo + hi) * j), rf.exact
        )
    if isinstance(amap, Scatter):
        lo, hi = min(amap.taps), max(amap.taps)
        shift = Fraction(-(lo + hi) * j) / (2 * amap.stride)
        return _record(
            rf.size + amap.span() * j,
            Fraction(j) / amap.stride,
            rf.start + shift,
            rf.exact and amap.stride == 1,
        )
    if isinstance(amap, Resample):
        # nearest reads floor(o r): no shift; linear without align_corners is centred and
        # reads one position when its source o r + (r - 1) / 2 is an integer (odd r)
        centred = amap.linear and not amap.align_corners
        shift = (amap.ratio - 1) / 2 if centred else 0
        single = centred and amap.ratio.denominator == 1 and amap.ratio.numerator % 2 == 1
        return _record(
            rf.size + (j if amap.linear and not single else 0),
            j * amap.ratio,
            rf.start + shift * j,
            rf.exact and amap.ratio.denominator == 1,
        )
    assert isinstance(amap, Window)  # the last kind of map
    if amap.n_out == 1:
        return global_rf(extent, j)
    if amap.n_in % amap.n_out == 0:
        k = amap.n_in // amap.n_out
        return _apply_aligned(rf, Local(k, tuple(range(k))), extent)
    first = _ceil_div(amap.n_in, amap.n_out)
    ratio = Fraction(amap.n_in, amap.n_out)
    return _record(
        rf.size + (amap.widest() - 1) * j, j * ratio, rf.start + _half((first - 1) * j), False
    )


def _record(size: Num, jump: Num, start: Num, exact: bool) -> AxisRF:
    jump = _num(jump) if isinstance(jump, Fraction) else jump
    return AxisRF(
        _num(size),
        jump,
        _num(start) if isinstance(start, Fraction) else start,
        False,
        (jump,),
        exact,
    )


def _hull(records: list) -> tuple[Num, Num, bool]:
    """``(size, start, exact)`` of the union of unit 0's intervals of ``records``."""
    # ends in doubled coordinates (integers for half-integer centres)
    lows, highs = zip(
        *((2 * start - (size - 1), 2 * start + (size - 1)) for size, _, start, _ in records)
    )
    lo, hi = _num(min(lows)), _num(max(highs))
    size = _half(hi - lo) + 1
    start = (
        (lo + hi) // 4
        if isinstance(lo + hi, int) and (lo + hi) % 4 == 0
        else _num(Fraction(lo + hi) / 4)
    )
    return _num(size) if isinstance(size, Fraction) else size, start, all(r[3] for r in records)


def _merge_integers(fields: list[AxisRF]) -> AxisRF | None:
    """:func:`merge` of single-record local fields with one jump and integer sizes and
    centres whose union has an integer centre (the common case), without Fractions; None
    for any other."""
    jump = fields[0].jump
    lo = hi = 0
    exact = True
    for k, f in enumerate(fields):
        size, start = f.size, f.start
        if f.parts or f.is_global or f.jump != jump or type(size) is not int:
            return None
        if type(start) is not int:
            return None
        # unit 0 reads [start - (size - 1) / 2, start + (size - 1) / 2]: doubled, shifted by 1
        low, high = 2 * start - size, 2 * start + size
        lo, hi = (low, high) if k == 0 else (min(lo, low), max(hi, high))
        exact = exact and f.exact
    if (lo + hi) % 4:
        return None
    return AxisRF((hi - lo) // 2, jump, (lo + hi) // 4, False, (jump,), exact)


def merge(fields: list[AxisRF], extent: int) -> AxisRF:
    """Union of the fields of the branches that meet at a node (add, concat, multiply).

    Paths with the same jump are united into one record (unit ``i`` of each is the hull of
    their unit ``i``); paths with different jumps keep one record each (``parts``), which
    later layers propagate separately. ``size``/``start`` describe unit 0's union.

    Examples
    --------
    >>> a, b = AxisRF(3, 1, 0, jumps=(1,)), AxisRF(7, 1, 0, jumps=(1,))
    >>> merge([a, b], 32)
    AxisRF(size=7, jump=1, start=0, is_global=False, jumps=(1,), exact=True)
    >>> m = merge([AxisRF(2, 2, Fraction(1, 2)), AxisRF(9, 1, 4)], 16)
    >>> m.describe(), m.interval(0), m.interval(3)
    ('9/1|2', (0, 8), (3, 11))
    """
    if len(fields) == 1:
        return fields[0]
    found = _merge_integers(fields)
    if found is not None:
        return found
    records = [r for f in fields for r in f.records]
    jumps = tuple(sorted({r[1] for r in records}))
    if any(f.is_global for f in fields):
        return AxisRF(extent, max(jumps), _half(extent - 1), True, jumps)
    if len(jumps) == 1:  # aligned: one record, no parts
        size, start, exact = _hull(records)
        return AxisRF(size, jumps[0], start, False, jumps, exact)
    groups = {j: [r for r in records if r[1] == j] for j in jumps}
    parts = tuple(
        (size, j, start, exact) for j, g in groups.items() for size, start, exact in (_hull(g),)
    )
    size, start, exact = _hull(list(parts))
    return AxisRF(size, max(jumps), start, False, jumps, exact, parts if len(parts) > 1 else ())
