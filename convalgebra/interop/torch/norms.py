"""Handlers: batch, layer, group and instance normalisation (functional forms)."""

from __future__ import annotations

from typing import Any

from ...network.layers import (
    BatchNorm,
    GroupNorm,
    Layer,
    LayerNorm,
)
from .values import (
    SIG,
    Builder,
    Const,
    Data,
    Unknown,
    as_tuple,
    bind,
    need_data,
)

__all__ = ["norm_op"]


def norm_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    base = fname.removeprefix("aten.")
    x = need_data(x, fname)
    if base == "batch_norm":
        b = bind(rest, kw, SIG["aten.batch_norm" if fname.startswith("aten.") else base])
        stats = b.get("running_mean") is not None
        counted = _batches_tracked(imp, b.get("running_mean"))
        layer: Layer = BatchNorm(b.get("weight") is not None, stats, count_batches=counted)
        values = {
            "weight": b.get("weight"),
            "bias": b.get("bias"),
            "running_mean": b.get("running_mean"),
            "running_var": b.get("running_var"),
        }
        if counted:
            key = next(iter(b["running_mean"].keys)).rsplit(".", 1)[0] + ".num_batches_tracked"
            values["num_batches_tracked"] = Const(None, {key: 1})
    elif base == "layer_norm":
        b = bind(rest, kw, SIG["layer_norm"])
        layer = LayerNorm(
            tuple(as_tuple(b["normalized_shape"])),
            b.get("weight") is not None,
            b.get("bias") is not None,
        )
        values = {"weight": b.get("weight"), "bias": b.get("bias")}
    elif base == "group_norm":
        b = bind(rest, kw, SIG["group_norm"])
        layer = GroupNorm(int(b["num_groups"]), b.get("weight") is not None)
        values = {"weight": b.get("weight"), "bias": b.get("bias")}
    else:  # instance norm: statistics over the positions of each channel
        b = bind(rest, kw, SIG["aten.instance_norm" if fname.startswith("aten.") else base])
        if b.get("running_mean") is not None:
            raise Unknown("instance_norm with running statistics")
        layer = GroupNorm(x.shape[0], b.get("weight") is not None)
        values = {"weight": b.get("weight"), "bias": b.get("bias")}
    if (
        isinstance(layer, (LayerNorm, GroupNorm))
        and (b.get("weight") is None) != (b.get("bias") is None)
        and not isinstance(layer, LayerNorm)
    ):
        raise Unknown(f"{base} with a weight but no bias")
    return imp.add(imp.name_of(node, fname), layer, [x], imp.reads(values))


def _batches_tracked(imp: Builder, mean: Any) -> bool:
    if not isinstance(mean, Const) or len(mean.keys) != 1:
        return False
    key = next(iter(mean.keys)).rsplit(".", 1)[0] + ".num_batches_tracked"
    return key in imp.named_buffers and imp.named_buffers[key].numel() == 1 and key not in imp.used
