"""Handlers: pooling, interpolation, padding and reductions over given axes."""

from __future__ import annotations

from typing import Any

from ...errors import shown
from ...network.layers import (
    AdaptivePool,
    AvgPool,
    Layer,
    MaxPool,
    Mean,
    Pad,
    Upsample,
)
from .values import (
    SIG,
    Builder,
    Data,
    Unknown,
    as_tuple,
    bind,
    need_data,
    unbatch,
)

__all__ = ["REDUCE", "pool_op", "interp_op", "pad_op", "mean_op"]

# reductions over the given axes (a spatial axis reduced is read whole)
REDUCE = ("mean", "sum", "amax", "amin", "nansum", "nanmean", "prod", "std", "var", "logsumexp")


def pool_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    base = fname.removeprefix("aten.").lstrip("_")
    x = need_data(x, fname)
    if base.startswith("adaptive"):
        b = bind(rest, kw, SIG["adaptive"])
        layer: Layer = AdaptivePool(as_tuple(b["output_size"]), "max" if "max" in base else "avg")
    else:
        b = bind(rest, kw, SIG[base[:8]])
        if b.get("return_indices") or base.endswith("with_indices"):
            raise Unknown(f"{fname} returning indices")
        common = dict(
            kernel_size=as_tuple(b["kernel_size"]),
            stride=as_tuple(b.get("stride")) or None,
            padding=as_tuple(b.get("padding", 0)),
            ceil_mode=bool(b.get("ceil_mode", False)),
        )
        if base.startswith("max"):
            layer = MaxPool(dilation=as_tuple(b.get("dilation", 1)), **common)
        else:
            if b.get("divisor_override"):
                raise Unknown(f"{fname} with divisor_override")
            layer = AvgPool(count_include_pad=bool(b.get("count_include_pad", True)), **common)
    return imp.add(imp.name_of(node, fname), layer, [x])


def interp_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    base = fname.removeprefix("aten.")
    if base.startswith("upsample"):  # aten.upsample_<mode>.vec of the export route
        nearest = "nearest" in base
        b = bind(
            rest,
            kw,
            ("output_size", "scale_factors")
            if nearest
            else ("output_size", "align_corners", "scale_factors"),
        )
        mode = "nearest" if nearest else base.removeprefix("upsample_").rstrip("0123456789d")
        size, scale = as_tuple(b.get("output_size")), as_tuple(b.get("scale_factors"))
        layer = Upsample(
            None if size else scale, size or None, mode, bool(b.get("align_corners") or False)
        )
    else:
        b = bind(rest, kw, SIG["interpolate"])
        if (
            b.get("recompute_scale_factor")
            or kw.get("recompute_scale_factor")
            or kw.get("antialias")
        ):
            raise Unknown("interpolate with recompute_scale_factor or antialias")
        mode = b.get("mode", "nearest")
        if mode not in ("nearest", "linear", "bilinear", "trilinear"):
            raise Unknown(f"interpolate mode {shown(mode)}")
        layer = Upsample(
            as_tuple(b.get("scale_factor")),
            as_tuple(b.get("size")),
            mode,
            bool(b.get("align_corners") or False),
        )
    return imp.add(imp.name_of(node, fname), layer, [need_data(x, fname)])


def pad_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    b = bind(rest, kw, SIG["pad"])
    pad = list(b["pad"])
    x = need_data(x, fname)
    if len(pad) // 2 > len(x.shape) - 1:
        raise Unknown("padding the channel axis")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    pairs += [(0, 0)] * (len(x.shape) - 1 - len(pairs))
    value = b.get("value")
    layer = Pad(
        tuple(reversed(pairs)), b.get("mode", "constant") or "constant", float(value or 0.0)
    )
    return imp.add(imp.name_of(node, fname), layer, [x])


def mean_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    """``mean``, ``sum``, ``amax``... over given axes (a spatial axis reduced is read whole)."""
    b = bind(rest, kw, SIG["mean"])
    dims = b.get("dim", kw.get("axis"))
    if dims is None:
        raise Unknown(f"{fname} over every axis (the batch axis too)")
    rank = len(x.shape) + 1
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    layer = Mean(tuple(unbatch(d, rank) for d in dims), bool(b.get("keepdim", False)))
    return imp.add(imp.name_of(node, fname), layer, [need_data(x, fname)])
