"""Sets of input sizes that are eventually periodic: what ``prove`` answers "for every n" with.

Along each axis a set is known on ``1 .. T + P - 1`` and repeats with period ``P`` from ``T``
on: size ``n >= T`` behaves as ``T + (n - T) mod P``. In N dimensions the set is a boolean grid
over the reduced sizes of every axis (or, for square signals, one shared size). A set prints
the way a paper states it (``every n >= 3``, ``n >= 4 and n even``, ``n in {1, 2}``) and
answers membership for any size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .. import budget
from ..errors import ConvAlgebraError, shown

__all__ = ["SizeSet", "describe_axis"]


class SizeSet:
    """An eventually periodic set of sizes (tuples of positive ints, one per axis).

    Parameters
    ----------
    grid : ndarray of bool
        Membership of the reduced sizes: ``grid[n1 - 1, n2 - 1, …]``.
    thresholds, periods : tuple of int
        ``T`` and ``P`` per grid axis: size ``n >= T`` reduces to ``T + (n - T) % P``.
    ndim : int
        Spatial axes of the signal; with ``square=True`` one grid axis stands for all.
    explicit : tuple of tuples, optional
        For a set decided at listed sizes only (``prove(..., sizes=...)``): the sizes that were
        decided; membership outside them is unknown and refused.

    Examples
    --------
    >>> s = SizeSet(np.array([False, False, True, True, True]), (4,), (2,), ndim=1)
    >>> str(s), 3 in s, 100 in s
    ('every n >= 3', True, True)
    >>> even = SizeSet(np.array([False, True, False, True, False, True]), (4,), (2,), ndim=1)
    >>> str(even), 10 in even, 11 in even
    ('every even n', True, False)
    """

    def __init__(
        self,
        grid: np.ndarray,
        thresholds: tuple[int, ...],
        periods: tuple[int, ...],
        ndim: int,
        square: bool = False,
        explicit: tuple[tuple[int, ...], ...] | None = None,
    ) -> None:
        self.grid = np.asarray(grid, dtype=bool)
        self.thresholds = tuple(thresholds)
        self.periods = tuple(periods)
        self.ndim = ndim
        self.square = square
        self.explicit = explicit

    # ---------------------------------------------------------------- membership
    def _size(self, n: Any) -> tuple[int, ...]:
        items = n if isinstance(n, (tuple, list)) else (n,) * (self.ndim if self.square else 1)
        items = tuple(items)
        if len(items) != self.ndim and not (self.ndim == 1 and len(items) == 1):
            raise ConvAlgebraError(f"a size needs {self.ndim} values, got {shown(n)}")
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConvAlgebraError(f"sizes are positive integers, got {shown(n)}")
        return tuple(int(v) for v in items)

    def reduced(self, n: Any) -> tuple[int, ...]:
        """The grid cell (0-based) that decides size ``n``."""
        size = self._size(n)
        if self.square:
            if len(set(size)) != 1:
                return ()
            size = size[:1]
        return tuple(
            (v if v < t + p else t + (v - t) % p) - 1
            for v, t, p in zip(size, self.thresholds, self.periods)
        )

    def __contains__(self, n: Any) -> bool:
        size = self._size(n)
        if self.explicit is not None:
            if size not in self.explicit:
                raise ConvAlgebraError(f"size {size} was not decided (sizes= restricted the proof)")
        cell = self.reduced(size)
        return bool(cell) and bool(self.grid[cell])

    def members(self, upto: int) -> list[tuple[int, ...]]:
        """Every member with all sizes at most ``upto``, in increasing order."""
        axes = [range(1, upto + 1)] * (1 if self.square else self.ndim)
        found = []
        for point in np.ndindex(*(len(a) for a in axes)):
            size = tuple(p + 1 for p in point)
            full = size * self.ndim if self.square else size
            if self.explicit is not None and full not in self.explicit:
                continue
            if full in self:
                found.append(full)
        return sorted(found, key=lambda s: (np.prod(s), s))

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        raise TypeError("a SizeSet may be infinite: use members(upto) or `n in sizes`")

    @property
    def empty(self) -> bool:
        return not self.grid.any()

    @property
    def everything(self) -> bool:
        return bool(self.grid.all())

    def __bool__(self) -> bool:
        return not self.empty

    # ---------------------------------------------------------------- printing
    def __str__(self) -> str:
        if self.explicit is not None:
            inside = [s for s in self.explicit if s in self]
            return _listed(inside, self.ndim)
        names = ["n"] if self.ndim == 1 or self.square else [f"n{a + 1}" for a in range(self.ndim)]
        text = _describe(self.grid, self.thresholds, self.periods, names)
        return text + (" (square signals)" if self.square and self.ndim > 1 else "")

    def __repr__(self) -> str:
        return f"SizeSet({str(self)!r})"


def _listed(sizes: Iterable[tuple[int, ...]], ndim: int) -> str:
    items = [str(s[0]) if ndim == 1 else str(s) for s in sizes]
    return "no n" if not items else "n in {" + ", ".join(items) + "}"


def _describe(grid: np.ndarray, thresholds, periods, names: list[str]) -> str:
    if grid.ndim > 1 and grid.all():
        return "every size"
    if grid.ndim > 1 and not grid.any():
        return "no size"
    if grid.ndim == 1:
        return describe_axis(grid, thresholds[0], periods[0], names[0])
    patterns: dict[bytes, list[int]] = {}
    for i in range(grid.shape[0]):
        patterns.setdefault(grid[i].tobytes(), []).append(i)
    rest = (thresholds[1:], periods[1:], names[1:])
    if len(patterns) == 1:
        return _describe(grid[0], *rest)
    any_row = np.asarray(grid.any(axis=tuple(range(1, grid.ndim))), dtype=bool)
    nonempty = [key for key in patterns if np.frombuffer(key, dtype=bool).any()]
    if len(nonempty) == 1:  # a product: one pattern of the other axes wherever any holds
        inner_grid = grid[patterns[nonempty[0]][0]]
        inner = _describe(inner_grid, *rest)
        outer = describe_axis(any_row, thresholds[0], periods[0], names[0])
        if inner_grid.all():
            return outer
        return inner if any_row.all() else f"{outer} and {inner}"
    parts = []
    for rows in patterns.values():
        mask = budget.zeros(grid.shape[0], dtype=bool)
        mask[rows] = True
        cond = describe_axis(mask, thresholds[0], periods[0], names[0])
        parts.append(f"{cond}: {_describe(grid[rows[0]], *rest)}")
    return "; ".join(parts)


def _tail(mask: np.ndarray, t: int, p: int) -> tuple[int, int]:
    """Smallest ``(start, period)`` describing ``mask`` (positions 1..), period dividing ``p``."""
    n = mask.size
    tail = mask[t - 1 : t - 1 + p]
    period = p
    for d in range(1, p + 1):
        if p % d == 0 and np.array_equal(tail, np.roll(tail, -d)):
            period = d
            break
    start = t
    while start > 1 and start - 2 + period < n and mask[start - 2] == mask[start - 2 + period]:
        start -= 1
    return start, period


def describe_axis(mask: np.ndarray, t: int, p: int, name: str = "n") -> str:
    """Words for an eventually periodic set of positive integers.

    ``mask[i]`` is membership of ``i + 1`` on ``1 .. t + p - 1``; from ``t`` on the set repeats
    with period ``p``.

    Examples
    --------
    >>> describe_axis(np.array([1, 1, 0, 0, 0], bool), 4, 2)
    'n in {1, 2}'
    >>> describe_axis(np.array([1, 0, 0, 1, 0, 1], bool), 4, 2)
    'n = 1 or n >= 4 and n even'
    >>> describe_axis(np.array([0, 0, 1, 0, 0, 1, 0, 0, 1], bool), 6, 3)
    'n ≡ 0 (mod 3)'
    """
    mask = np.asarray(mask, dtype=bool)
    start, period = _tail(mask, t, p)
    residues = [r for r in range(period) if mask[start - 1 + ((r - start) % period)]]
    finite = [i + 1 for i in range(start - 1) if mask[i]]
    if not residues:
        if not finite:
            return f"no {name}"
        return (
            f"{name} = {finite[0]}"
            if len(finite) == 1
            else (f"{name} in {{" + ", ".join(map(str, finite)) + "}")
        )
    tail = _tail_words(residues, period, start, name)
    if not finite:
        return tail
    head = (
        f"{name} = {finite[0]}"
        if len(finite) == 1
        else (f"{name} in {{" + ", ".join(map(str, finite)) + "}")
    )
    return f"{head} or {tail.removeprefix('every ')}"


def _tail_words(residues: list[int], period: int, start: int, name: str) -> str:
    if len(residues) == period:
        return f"every {name}" if start == 1 else f"every {name} >= {start}"
    if period == 2:
        parity = "even" if residues == [0] else "odd"
        first = start + ((residues[0] - start) % 2)
        return f"every {parity} {name}" if first <= 2 else f"{name} >= {first} and {name} {parity}"
    cls = (
        f"{name} ≡ {residues[0]} (mod {period})"
        if len(residues) == 1
        else f"{name} mod {period} in {{" + ", ".join(map(str, residues)) + "}"
    )
    first = min(start + ((r - start) % period) for r in residues)
    return cls if first <= period else f"{name} >= {first} and {cls}"
