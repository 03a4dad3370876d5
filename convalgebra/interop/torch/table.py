"""The one handler table, keyed by op name (``conv2d``, ``aten.convolution`` without its
prefix...), and the prefixes of the pooling families."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .arithmetic import (
    ACT_FNS,
    ALIAS,
    ARITH,
    POINTWISE,
    act_op,
    arith_op,
    dropout_op,
    stochastic_depth_op,
)
from .attention import einsum_op, matmul_op
from .conv import conv_op, linear_op
from .norms import norm_op
from .pooling import REDUCE, interp_op, mean_op, pad_op, pool_op
from .shapes import (
    cat_op,
    expand_op,
    flatten_op,
    getattr_op,
    permute_op,
    pixel_shuffle_op,
    slice_op,
    split_op,
    stack_op,
    unsqueeze_op,
    view_op,
)

__all__ = ["HANDLERS", "PREFIX_HANDLERS", "ALIAS", "handler_for"]

Handler = Callable[..., Any]
# every handler takes (importer, fx node, op name, first argument, other arguments, keywords)
HANDLERS: dict[str, Handler] = {
    **{
        n: conv_op
        for n in (
            "conv1d",
            "conv2d",
            "conv3d",
            "conv_transpose1d",
            "conv_transpose2d",
            "conv_transpose3d",
            "convolution",
        )
    },
    "linear": linear_op,
    **{n: norm_op for n in ("batch_norm", "layer_norm", "group_norm", "instance_norm")},
    **{
        n: act_op
        for n in (*ACT_FNS, *(f + "_" for f in ACT_FNS), *POINTWISE, "softmax", "log_softmax")
    },
    **{n: arith_op for n in ARITH},
    **{n: arith_op for n in ("add_", "mul_", "sub_", "div_")},
    "cat": cat_op,
    "concat": cat_op,
    "concatenate": cat_op,
    "interpolate": interp_op,
    "upsample_nearest2d": interp_op,
    "upsample_bilinear2d": interp_op,
    "pad": pad_op,
    "constant_pad_nd": pad_op,
    **{n: mean_op for n in REDUCE},
    "stack": stack_op,
    "pixel_shuffle": pixel_shuffle_op,
    "pixel_unshuffle": pixel_shuffle_op,
    **{
        n: dropout_op
        for n in (
            "dropout",
            "dropout1d",
            "dropout2d",
            "dropout3d",
            "alpha_dropout",
            "feature_dropout",
        )
    },
    "view": view_op,
    "reshape": view_op,
    "_unsafe_view": view_op,
    "flatten": flatten_op,
    "unsqueeze": unsqueeze_op,
    "squeeze": unsqueeze_op,
    **{n: permute_op for n in ("permute", "transpose", "swapaxes", "swapdims")},
    **{
        n: split_op
        for n in ("split", "split_with_sizes", "chunk", "unbind", "narrow", "index_select")
    },
    "matmul": matmul_op,
    "bmm": matmul_op,
    "mm": matmul_op,
    "einsum": einsum_op,
    "expand": expand_op,
    "stochastic_depth": stochastic_depth_op,
    "slice": slice_op,
    "select": slice_op,
    "upsample_nearest1d": interp_op,
    "upsample_nearest3d": interp_op,
    "upsample_linear1d": interp_op,
    "upsample_trilinear3d": interp_op,
    **{n: getattr_op for n in ("getattr", "size", "dim", "ndimension", "numel")},
}

PREFIX_HANDLERS: list[tuple[str, Handler]] = [
    ("max_pool", pool_op),
    ("avg_pool", pool_op),
    ("adaptive_", pool_op),
    ("_adaptive", pool_op),
    ("_max_pool", pool_op),
]


def handler_for(op: str) -> Handler | None:
    """The handler of op ``op`` (no ``aten.`` prefix), or None when it is not modelled."""
    handler = HANDLERS.get(op)
    if handler is None:
        handler = next((h for prefix, h in PREFIX_HANDLERS if op.startswith(prefix)), None)
    return handler
