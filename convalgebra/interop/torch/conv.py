"""Handlers: convolutions and linear maps (functional forms and computed weights)."""

from __future__ import annotations

from typing import Any

from ...network.layers import (
    Conv,
    Linear,
)
from .values import (
    SIG,
    Builder,
    Const,
    Data,
    Unknown,
    as_tuple,
    bind,
    check_fan_in,
    need_data,
    shape_of,
)

__all__ = ["conv_op", "linear_op"]


def conv_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    base = fname.removeprefix("aten.")
    if base == "convolution":
        b = bind(rest, kw, SIG["convolution"])
        transposed = bool(b.get("transposed", False))
    else:
        transposed = "transpose" in base
        b = bind(rest, kw, SIG["conv_transpose" if transposed else "conv"])
    w, bias = b["weight"], b.get("bias")
    wshape = shape_of(w)
    if not wshape:
        raise Unknown(f"{fname} with a weight computed from data")
    groups = int(b.get("groups", 1))
    out = wshape[1] * groups if transposed else wshape[0]
    layer = Conv(
        out,
        tuple(wshape[2:]),
        as_tuple(b.get("stride", 1)),
        as_tuple(b.get("padding", 0)),
        as_tuple(b.get("dilation", 1)),
        groups,
        bias is not None,
        "zeros",
        transposed,
        as_tuple(b.get("output_padding", 0)) if transposed else 0,
    )
    x = need_data(x, fname)
    fan_in = wshape[0] if transposed else wshape[1] * groups
    check_fan_in(str(node.name), fname, x.shape, (0, fan_in))
    keys = imp.reads({"weight": w, "bias": bias})
    return imp.add(imp.name_of(node, fname), layer, [x], keys)


def linear_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    b = bind(rest, kw, SIG["linear"])
    w, bias = b["weight"], b.get("bias")
    if not isinstance(w, Const):
        raise Unknown("linear with a weight computed from data")
    layer = Linear(shape_of(w)[0], bias is not None)
    x = need_data(x, fname)
    check_fan_in(str(node.name), fname, x.shape, (-1, shape_of(w)[-1]))
    keys = imp.reads({"weight": w, "bias": bias})
    return imp.add(imp.name_of(node, fname), layer, [x], keys)
