"""Module -> layer: the layer kind of a torch module call (``nn.Conv2d`` -> ``Conv``...)."""

from __future__ import annotations

from typing import Any

from ...network.layers import (
    Activation,
    AdaptivePool,
    Attention,
    AvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GroupNorm,
    Identity,
    Layer,
    LayerNorm,
    Linear,
    MaxPool,
    Pad,
    Upsample,
)
from .values import as_tuple, clip_fn

__all__ = ["attention_layer", "module_layer", "kind_of", "module_fan_in"]

_ACTS = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "GELU": "gelu",
    "SiLU": "silu",
    "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "Softplus": "softplus",
    "Mish": "mish",
}


def attention_layer(m: Any, node: Any, args: tuple, kwargs: dict) -> Layer | None:
    q = args[0] if args else kwargs.get("query")
    k = args[1] if len(args) > 1 else kwargs.get("key")
    v = args[2] if len(args) > 2 else kwargs.get("value")
    extra = {n: kwargs.get(n) for n in ("key_padding_mask", "attn_mask")}
    if (
        not (q is k is v)
        or not m.batch_first
        or any(x is not None for x in extra.values())
        or m.bias_k is not None
        or not m._qkv_same_embed_dim
    ):
        return None
    return Attention(m.num_heads, m.in_proj_bias is not None)


def module_layer(m: Any) -> Layer | None:
    """The layer kind of a torch module, or None when it is not interpreted."""
    kind = kind_of(m)
    if (
        kind.startswith("ConvTranspose")
        or kind.startswith("Conv")
        and kind[4:] in ("1d", "2d", "3d")
    ):
        transposed = kind.startswith("ConvTranspose")
        padding = m.padding if not isinstance(m.padding, str) else m.padding
        return Conv(
            m.out_channels,
            m.kernel_size,
            m.stride,
            padding,
            m.dilation,
            m.groups,
            m.bias is not None,
            m.padding_mode,
            transposed,
            m.output_padding if transposed else 0,
        )
    if kind == "Linear":
        return Linear(m.out_features, m.bias is not None)
    if kind.startswith("BatchNorm"):
        return BatchNorm(m.affine, m.track_running_stats, m.eps)
    if kind == "LayerNorm":
        return LayerNorm(
            tuple(m.normalized_shape), m.elementwise_affine, getattr(m, "bias", None) is not None
        )
    if kind == "GroupNorm":
        return GroupNorm(m.num_groups, m.affine)
    if kind in _ACTS:
        return Activation(_ACTS[kind])
    if kind == "Hardtanh":
        return Activation(clip_fn(m.min_val, m.max_val))
    if kind in ("Softmax", "LogSoftmax"):
        return (
            None
            if m.dim in (None, 0)
            else Activation(
                "softmax" if kind == "Softmax" else "log_softmax", m.dim - 1 if m.dim > 0 else m.dim
            )
        )
    if kind.startswith(("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool")):
        return _pool_module(kind, m)
    if kind.startswith("Dropout") or kind == "AlphaDropout":
        return Dropout(m.p)
    if kind == "Identity":
        return Identity()
    if kind == "Flatten":
        return (
            Flatten(m.start_dim - 1, m.end_dim - 1 if m.end_dim > 0 else m.end_dim)
            if m.start_dim
            else None
        )
    if kind.startswith("Upsampl"):
        mode = "bilinear" if kind == "UpsamplingBilinear2d" else m.mode
        align = True if kind == "UpsamplingBilinear2d" else bool(m.align_corners)
        return Upsample(as_tuple(m.scale_factor), as_tuple(m.size), mode, align)
    if kind.endswith(("Pad1d", "Pad2d", "Pad3d")):
        mode = {"Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}
        word = next((v for k, v in mode.items() if kind.startswith(k)), "constant")
        pad = m.padding
        pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
        return Pad(tuple(reversed(pairs)), word, float(getattr(m, "value", 0.0)))
    return None


def kind_of(m: Any) -> str:
    """A module's class name; a parametrised module (weight norm, spectral norm...) is its
    base class (the weight is computed from the stored tensors it lists)."""
    return type(m).__name__.removeprefix("Parametrized")


def _pool_module(kind: str, m: Any) -> Layer:
    if kind.startswith("Adaptive"):
        return AdaptivePool(as_tuple(m.output_size), "max" if "Max" in kind else "avg")
    common = dict(
        kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode
    )
    if kind.startswith("Max"):
        return MaxPool(dilation=m.dilation, **common)
    return AvgPool(count_include_pad=m.count_include_pad, **common)


def module_fan_in(m: Any, kind: str, shape: tuple) -> tuple | None:
    if kind.startswith("Conv"):
        return (0, m.in_channels)
    if kind == "Linear":
        return (-1, m.in_features)
    if kind.startswith("BatchNorm") or kind == "GroupNorm":
        return (0, m.num_features if hasattr(m, "num_features") else m.num_channels)
    return None
