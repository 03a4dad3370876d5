"""One handler per torch operation that :func:`~convalgebra.interop.trace_ops.trace` maps to
an ``ops`` expression, and the tables from torch's functions and tensor methods to them.

A handler takes the call's arguments by name and returns the ``ops`` value. Tensor dims of a
signal count its batch axis (dim ``d`` is the expression's dim ``d - 1``); a weight's dims are
its own. Every refusal says why the operation has no ``ops`` expression.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from .. import ops
from ..errors import ConvAlgebraError, shown
from ..ops.kernels import as_fraction
from ..ops.terms import DEFAULT_MAX_TERMS

__all__ = ["handler_tables"]

Handler = Callable[[dict[str, Any], str], Any]
Entry = tuple[tuple[str, ...], Handler]


# ------------------------------------------------------------------ checks and dims
def _signal(value: Any, what: str = "input") -> ops.Op:
    if isinstance(value, ops.Kernel):
        raise ConvAlgebraError(f"the {what} is a weight; a signal expression was expected")
    if not isinstance(value, ops.Op):
        raise TypeError(f"the {what} must be a tensor computed from a signal, got {shown(value)}")
    return value


def _weight(value: Any) -> ops.Kernel:
    if isinstance(value, ops.Op):
        raise ConvAlgebraError(
            "the weight is computed from an input signal: weights must be parameters (symbolic "
            "kernels) or maps of them"
        )
    if not isinstance(value, ops.Kernel):
        raise TypeError(f"the weight must be a parameter tensor, got {shown(value)}")
    return value


def _tuple(value: Any) -> Any:
    return tuple(_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {shown(value)}")
    return value


def _dims(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return tuple(_int(d, "a dim") for d in items)


def _signal_dim(d: int, x: ops.Op) -> int:
    """A dim of the traced tensor (batch axis first) as the expression's dim."""
    rank = x.ndim + 2
    if not -rank <= d < rank:
        raise ConvAlgebraError(f"dim {d} is out of range for a tensor of {rank} dims")
    if d % rank == 0:
        raise ConvAlgebraError(
            "dim 0 is the batch axis (of size one in the trace): the map must treat every "
            "batch item alike"
        )
    return d % rank - 1


def _kernel_dim(d: int, w: ops.Kernel) -> int:
    rank = w.ndim + 2
    if not -rank <= d < rank:
        raise ConvAlgebraError(f"dim {d} is out of range for a weight of {rank} dims")
    return d % rank


def _check_ndim(x: ops.Op, d: int, label: str) -> None:
    if x.ndim != d:
        raise ConvAlgebraError(
            f"{label} takes a {d}-D signal ({d + 2}-D tensor), got a {x.ndim}-D one"
        )


def _zero_fill(value: Any) -> None:
    if value not in (None, 0, 0.0):
        raise ConvAlgebraError(
            f"padding with value={shown(value)} is affine, not linear: only zero fill"
        )


# ------------------------------------------------------------------ layers
def _conv(d: int, transposed: bool) -> Handler:
    def handle(a: dict[str, Any], label: str) -> ops.Op:
        x, w = _signal(a["input"]), _weight(a["weight"])
        _check_ndim(x, d, label)
        if a.get("bias") is not None:
            raise ConvAlgebraError("a bias makes the map affine, not linear: pass bias=None")
        names = ("stride", "padding", "dilation", "groups", "output_padding")
        opts: dict[str, Any] = {k: _tuple(a[k]) for k in names if k in a}
        if transposed:
            return ops.conv_transpose(x, w, **opts)
        return ops.conv(x, w, **opts)

    return handle


def _avg_pool(d: int) -> Handler:
    def handle(a: dict[str, Any], label: str) -> ops.Op:
        x = _signal(a["input"])
        _check_ndim(x, d, label)
        stride = _tuple(a.get("stride"))
        return ops.avg_pool(
            x,
            _tuple(a["kernel_size"]),
            stride=stride if stride not in ((), None) else None,
            padding=_tuple(a.get("padding", 0)),
            ceil_mode=a.get("ceil_mode", False),
            count_include_pad=a.get("count_include_pad", True),
            divisor_override=a.get("divisor_override"),
        )

    return handle


def _interpolate(a: dict[str, Any], label: str) -> ops.Op:
    x = _signal(a["input"])
    if a.get("size") is not None:
        raise ConvAlgebraError(
            f"size={shown(a['size'])} fixes the output size, which no expression over every "
            "input size has: use an integer scale_factor"
        )
    mode = a.get("mode", "nearest")
    if mode not in ("nearest", "nearest-exact"):
        raise ConvAlgebraError(
            f"mode={mode!r} is not a gather: only 'nearest' (and 'nearest-exact') with an "
            "integer scale_factor is expressed"
        )
    if a.get("antialias"):
        raise ConvAlgebraError("antialias=True is not expressed")
    factor = a.get("scale_factor")
    items: tuple = tuple(factor) if isinstance(factor, (tuple, list)) else (factor,) * x.ndim
    if any(
        isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or v < 1
        for v in items
    ):
        raise ConvAlgebraError(
            f"scale_factor={shown(factor)}: only positive integer factors are expressed"
        )
    return ops.upsample_nearest(x, tuple(int(v) for v in items))


def _pixel(shuffle: bool) -> Handler:
    def handle(a: dict[str, Any], label: str) -> ops.Op:
        x = _signal(a["input"])
        if x.ndim != 2:
            raise ConvAlgebraError(
                f"torch shuffles the last two dims only; on a {x.ndim}-D signal that is not "
                "a spatial pixel shuffle"
            )
        if shuffle:
            return ops.pixel_shuffle(x, a["upscale_factor"])
        return ops.pixel_unshuffle(x, a["downscale_factor"])

    return handle


def _pad(a: dict[str, Any], label: str) -> Any:
    value, amounts = a["input"], _tuple(a["pad"])
    mode = a.get("mode", "constant") or "constant"
    _zero_fill(a.get("value"))
    if isinstance(value, ops.Kernel):
        if mode != "constant":
            raise ConvAlgebraError(f"a weight is padded with zeros only, got mode={mode!r}")
        return pad_kernel(value, amounts)
    return ops.pad(_signal(value), amounts, mode=mode)


# ------------------------------------------------------------------ kernel maps
def _trim_kernel(w: ops.Kernel, before: list[int], after: list[int]) -> ops.Kernel:
    """``w`` without ``before`` entries at the start and ``after`` at the end of each axis."""
    ones = (1,) * w.ndim
    if any(before):
        w = ops.polyphase_kernel(w, ones, tuple(before))
    if any(after):
        w = ops.flip_kernel(ops.polyphase_kernel(ops.flip_kernel(w), ones, tuple(after)))
    return w


def _enlarged(k: int, before: int, after: int) -> int:
    """The smallest centred enlarging of a size-``k`` axis with at least ``before`` and
    ``after`` zeros on its sides.

    Notes
    -----
    Enlarged to ``S``, ``(S - 1) // 2 - c`` zeros come before (``c = (k - 1) // 2``) and
    ``S // 2 + 1 - k + c`` after, so ``S >= 2 (before + c) + 1`` and
    ``S >= 2 (after + k - c - 1)``.

    Examples
    --------
    >>> _enlarged(3, 2, 0), _enlarged(2, 0, 1), _enlarged(3, -1, 0)
    (7, 4, 3)
    """
    c = (k - 1) // 2
    return max(k + max(before, 0) + max(after, 0), 2 * (before + c) + 1, 2 * (after + k - c - 1))


def pad_kernel(w: ops.Kernel, amounts: Any) -> ops.Kernel:
    """``F.pad(w, amounts)`` of a weight: a centred enlarging (``enlarge_kernel``) when it is
    one, else an enlarging wide enough, trimmed on either side; negative amounts crop.

    Examples
    --------
    >>> pad_kernel(ops.kernel("w", (1, 1, 3)), (1, 1))
    enlarge_kernel(w, 5)
    >>> pad_kernel(ops.kernel("w", (1, 1, 3)), (0, -1))
    flip_kernel(polyphase_kernel(flip_kernel(w), 1, 1))
    """
    if not isinstance(amounts, tuple) or len(amounts) % 2 or not amounts:
        raise ConvAlgebraError(f"pad must be an even-length tuple, got {shown(amounts)}")
    if len(amounts) > 2 * w.ndim:
        raise ConvAlgebraError(
            f"pad={shown(amounts)} reaches the channel dims of a weight {w.shape}"
        )
    pairs = [(0, 0)] * w.ndim
    for j in range(len(amounts) // 2):
        pairs[w.ndim - 1 - j] = (
            _int(amounts[2 * j], "a pad amount"),
            _int(amounts[2 * j + 1], "a pad amount"),
        )
    ks = w.shape[2:]
    sizes = [k + b + e for k, (b, e) in zip(ks, pairs)]
    if min(sizes) < 1:
        raise ConvAlgebraError(f"pad={shown(amounts)} leaves no entry of the weight {w.shape}")
    if any(max(-b, 0) + max(-e, 0) > k for k, (b, e) in zip(ks, pairs)):
        raise ConvAlgebraError(f"pad={shown(amounts)} crops more than the weight {w.shape} has")
    centred = [(s - 1) // 2 - (k - 1) // 2 for s, k in zip(sizes, ks)]
    if min(min(p) for p in pairs) >= 0 and [b for b, _ in pairs] == centred:
        return ops.enlarge_kernel(w, tuple(sizes))
    # enlarge (centred) by at least the largest amount on each side, then trim to the amounts
    big = [_enlarged(k, b, e) for k, (b, e) in zip(ks, pairs)]
    entries = math.prod(w.shape[:2]) * math.prod(big)
    if entries > DEFAULT_MAX_TERMS:
        raise ConvAlgebraError(
            f"pad={shown(amounts)} makes a weight of {entries:,} entries, over "
            f"{DEFAULT_MAX_TERMS:,}: pad by less"
        )
    if big != list(ks):
        w = ops.enlarge_kernel(w, tuple(big))
    starts = [(s - 1) // 2 - (k - 1) // 2 for s, k in zip(big, ks)]
    ends = [s - k - b for s, k, b in zip(big, ks, starts)]
    return _trim_kernel(
        w, [s - b for s, (b, _) in zip(starts, pairs)], [t - e for t, (_, e) in zip(ends, pairs)]
    )


def _index_items(index: Any, rank: int) -> list[Any]:
    """An index as one item per dim (``...`` expanded, missing trailing dims full)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(v is Ellipsis for v in items) > 1:
        raise ConvAlgebraError("an index may hold one ... only")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (rank - len(items) + 1)
    if len(items) > rank:
        raise ConvAlgebraError(f"the index {shown(index)} has more items than the {rank} dims")
    for v in items:
        if not isinstance(v, slice):
            raise ConvAlgebraError(
                f"the index item {shown(v)} is not a slice: integer, None, list or tensor "
                "indices change the dims (use a slice such as a:a+1)"
            )
    return items + [slice(None)] * (rank - len(items))


def _full(item: slice) -> bool:
    return item.start in (None, 0) and item.stop is None and item.step in (None, 1)


def _index_kernel(w: ops.Kernel, index: Any) -> ops.Kernel:
    items = _index_items(index, w.ndim + 2)
    if not (_full(items[0]) and _full(items[1])):
        raise ConvAlgebraError(
            "the channel dims of a weight cannot be sliced in an expression: make the parts "
            "separate weights and join them with torch.cat"
        )
    before, after, steps = [], [], []
    for item, k in zip(items[2:], w.shape[2:]):
        start, stop, step = item.indices(k)
        if step < 1 or stop <= start:
            raise ConvAlgebraError(
                f"the slice {shown(item)} of a kernel axis of size {k} is empty or reversed"
            )
        before.append(start)
        after.append(k - stop)
        steps.append(step)
    w = _trim_kernel(w, [0] * w.ndim, after)
    if any(before) or any(s > 1 for s in steps):
        w = ops.polyphase_kernel(w, tuple(steps), tuple(before))
    return w


def _index_signal(x: ops.Op, index: Any) -> ops.Op:
    items = _index_items(index, x.ndim + 2)
    if not _full(items[0]):
        raise ConvAlgebraError("the batch axis (dim 0) cannot be sliced: the map must keep it")
    if not _full(items[1]):
        x = x[items[1]]
    starts, ends, steps = [], [], []
    for item in items[2:]:
        start, stop, step = item.start or 0, item.stop, item.step or 1
        for v in (start, stop, step):
            if v is not None:
                _int(v, "a slice bound")
        if step < 1:
            raise ConvAlgebraError(f"the slice {shown(item)} runs backwards: use torch.flip")
        if start < 0 or (stop is not None and stop >= 0):
            raise ConvAlgebraError(
                f"the slice {shown(item)} of a spatial dim keeps a fixed number of positions "
                "at some sizes only: write x[..., a:-b:f] with a >= 0 and b > 0 (or no end)"
            )
        starts.append(start)
        ends.append(0 if stop is None else -stop)
        steps.append(step)
    if all(s == 1 for s in steps):
        if any(starts) or any(ends):
            x = ops.crop(x, _pad_order(starts, ends))
        return x
    if any(ends):
        x = ops.crop(x, _pad_order([0] * len(ends), ends))
    return ops.subsample(x, tuple(steps), tuple(starts))


def _pad_order(before: list[int], after: list[int]) -> tuple[int, ...]:
    """Per-axis (before, after) amounts in F.pad's order: the last axis first."""
    return tuple(v for b, e in reversed(list(zip(before, after))) for v in (b, e))


def _getitem(a: dict[str, Any], label: str) -> Any:
    value, index = a["input"], a["index"]
    if isinstance(value, (tuple, list)):
        return value[index]
    if isinstance(value, ops.Kernel):
        return _index_kernel(value, index)
    return _index_signal(_signal(value), index)


# ------------------------------------------------------------------ joins and gathers
def _cat(a: dict[str, Any], label: str) -> Any:
    parts = a["tensors"]
    if not isinstance(parts, (tuple, list)) or not parts:
        raise TypeError(f"cat takes a list of tensors, got {shown(parts)}")
    dim = _int(a.get("dim", 0), "dim")
    if all(isinstance(p, ops.Kernel) for p in parts):
        d = _kernel_dim(dim, parts[0])
        if d > 1:
            raise ConvAlgebraError(f"weights are joined on dim 0 or 1 only, got dim={dim}")
        return ops.cat_kernels(list(parts), d)
    xs = [_signal(p) for p in parts]
    if _signal_dim(dim, xs[0]) != 0:
        raise ConvAlgebraError(
            f"dim={dim} joins a spatial dim, which no expression over every size does: "
            "join channels (dim 1)"
        )
    return ops.cat(xs, 0)


def _split(chunks: bool) -> Handler:
    def handle(a: dict[str, Any], label: str) -> tuple[ops.Op, ...]:
        x = _signal(a["input"])
        if _signal_dim(_int(a.get("dim", 0), "dim"), x) != 0:
            raise ConvAlgebraError("only the channels (dim 1) can be split in an expression")
        if chunks:
            n = _int(a["chunks"], "chunks")
            if n < 1:
                raise ConvAlgebraError(f"chunks must be positive, got {n}")
            return ops.split(x, -(-x.channels // n))
        return ops.split(x, _tuple(a["split_size_or_sections"]))

    return handle


def _flip(a: dict[str, Any], label: str) -> Any:
    value = a["input"]
    dims = _dims(a["dims"])
    if isinstance(value, ops.Kernel):
        spatial = set(range(2, value.ndim + 2))
        if {_kernel_dim(d, value) for d in dims} != spatial or len(dims) != len(spatial):
            raise ConvAlgebraError(
                f"dims={shown(a['dims'])}: a weight is flipped along every spatial dim "
                f"({sorted(spatial)}) only"
            )
        return ops.flip_kernel(value)
    x = _signal(value)
    return ops.flip(x, tuple(_signal_dim(d, x) for d in dims))


def _flip_method(a: dict[str, Any], label: str) -> Any:
    dims = a.get("dims", ())
    if isinstance(dims, tuple) and len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return _flip({"input": a["input"], "dims": dims}, label)


def _roll(a: dict[str, Any], label: str) -> ops.Op:
    x = _signal(a["input"])
    if a.get("dims") is None:
        raise ConvAlgebraError("torch.roll without dims rolls the flattened tensor: give dims")
    dims = _dims(a["dims"])
    shifts = _dims(a["shifts"])
    if len(shifts) != len(dims):
        raise ConvAlgebraError(f"shifts {shifts} and dims {dims} differ in length")
    total = [0] * x.ndim
    for s, d in zip(shifts, dims):
        axis = _signal_dim(d, x)
        if axis == 0:
            raise ConvAlgebraError("rolling the channels is not expressed: roll spatial dims")
        total[axis - 1] += s
    return ops.shift(x, tuple(total), mode="circular")


def _rot90(a: dict[str, Any], label: str) -> ops.Op:
    x = _signal(a["input"])
    dims = tuple(_signal_dim(d, x) for d in _dims(a.get("dims", (0, 1))))
    return ops.rot90(x, _int(a.get("k", 1), "k"), dims)


# ------------------------------------------------------------------ arithmetic
def _linear(value: Any) -> bool:
    return isinstance(value, (ops.Op, ops.Kernel))


def _scalar(value: Any, what: str) -> Fraction:
    if _linear(value):
        raise ConvAlgebraError(
            f"{what} of two tensors is not linear in them: only scalar factors are expressed"
        )
    return as_fraction(value, "a scalar factor")


def _sum(sign: int) -> Handler:
    def handle(a: dict[str, Any], label: str) -> Any:
        left, right = a["input"], a["other"]
        alpha = a.get("alpha", 1)
        if not (_linear(left) and _linear(right)):
            raise ConvAlgebraError(
                f"adding the constant {shown(right if _linear(left) else left)} makes the map "
                "affine, not linear"
            )
        if isinstance(left, ops.Kernel) != isinstance(right, ops.Kernel):
            raise ConvAlgebraError("a weight and a signal cannot be added")
        return left + right * (sign * _scalar(alpha, "alpha"))

    return handle


def _mul(a: dict[str, Any], label: str) -> Any:
    left, right = a["input"], a["other"]
    if _linear(left) and _linear(right):
        raise ConvAlgebraError("the product of two tensors is not linear in them")
    if _linear(right):
        left, right = right, left
    if not _linear(left):
        raise TypeError(f"no tensor in the product {shown(a['input'])} * {shown(a['other'])}")
    return left * _scalar(right, "a product")


def _div(a: dict[str, Any], label: str) -> Any:
    left, right = a["input"], a["other"]
    if not _linear(left) or _linear(right):
        raise ConvAlgebraError("only a tensor divided by a scalar is linear")
    factor = _scalar(right, "a quotient")
    if factor == 0:
        raise ConvAlgebraError("division by zero")
    return left * (1 / factor)


def _neg(a: dict[str, Any], label: str) -> Any:
    value = a["input"]
    if not _linear(value):
        raise TypeError(f"no tensor to negate: {shown(value)}")
    return -value


def _same(a: dict[str, Any], label: str) -> Any:
    return a["input"]


# ------------------------------------------------------------------ the tables
_CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_T = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
_POOL = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
_BINARY = ("input", "other", "alpha")


def handler_tables(torch: Any) -> tuple[dict[Any, Entry], dict[str, Entry]]:
    """``(functions, methods)``: torch callables and tensor method names to
    ``(parameter names, handler)``.

    Examples
    --------
    >>> import torch
    >>> functions, methods = handler_tables(torch)
    >>> functions[torch.conv1d][0][:3], "flip" in methods
    (('input', 'weight', 'bias'), True)
    """
    F = torch.nn.functional
    functions: dict[Any, Entry] = {}
    for d in (1, 2, 3):
        functions[getattr(torch, f"conv{d}d")] = (_CONV, _conv(d, False))
        functions[getattr(torch, f"conv_transpose{d}d")] = (_CONV_T, _conv(d, True))
        pool = _POOL + (("divisor_override",) if d > 1 else ())
        functions[getattr(F, f"avg_pool{d}d")] = (pool, _avg_pool(d))
    interp: tuple[str, ...] = ("input", "size", "scale_factor", "mode", "align_corners")
    interp += ("recompute_scale_factor", "antialias")
    functions.update(
        {
            F.pad: (("input", "pad", "mode", "value"), _pad),
            F.interpolate: (interp, _interpolate),
            torch.pixel_shuffle: (("input", "upscale_factor"), _pixel(True)),
            torch.pixel_unshuffle: (("input", "downscale_factor"), _pixel(False)),
            torch.cat: (("tensors", "dim"), _cat),
            torch.concat: (("tensors", "dim"), _cat),
            torch.concatenate: (("tensors", "dim"), _cat),
            torch.split: (("input", "split_size_or_sections", "dim"), _split(False)),
            torch.chunk: (("input", "chunks", "dim"), _split(True)),
            torch.flip: (("input", "dims"), _flip),
            torch.roll: (("input", "shifts", "dims"), _roll),
            torch.rot90: (("input", "k", "dims"), _rot90),
            operator.getitem: (("input", "index"), _getitem),
            operator.add: (_BINARY, _sum(1)),
            operator.sub: (_BINARY, _sum(-1)),
            operator.mul: (("input", "other"), _mul),
            operator.truediv: (("input", "other"), _div),
            operator.neg: (("input",), _neg),
            torch.add: (_BINARY, _sum(1)),
            torch.sub: (_BINARY, _sum(-1)),
            torch.mul: (("input", "other"), _mul),
            torch.div: (("input", "other"), _div),
            torch.neg: (("input",), _neg),
        }
    )
    methods: dict[str, Entry] = {
        "flip": (("input", "*dims"), _flip_method),
        "roll": (("input", "shifts", "dims"), _roll),
        "rot90": (("input", "k", "dims"), _rot90),
        "split": (("input", "split_size_or_sections", "dim"), _split(False)),
        "chunk": (("input", "chunks", "dim"), _split(True)),
        "add": (_BINARY, _sum(1)),
        "sub": (_BINARY, _sum(-1)),
        "mul": (("input", "other"), _mul),
        "div": (("input", "other"), _div),
        "neg": (("input",), _neg),
        "contiguous": (("input",), _same),
        "clone": (("input",), _same),
    }
    return functions, methods
