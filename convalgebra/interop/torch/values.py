"""The values an import passes between ops, and the helpers every handler uses.

A data tensor (:class:`Data`: a graph node and its shape), a stored or computed constant
(:class:`Const`: a meta tensor and the parameters and buffers it reads), the pieces of a
split (:class:`Pieces`), and :class:`Builder`, what a handler may ask of the importer.
"""

from __future__ import annotations

from typing import Any, Protocol

from ...errors import ConvAlgebraError, shown
from ...network.layers import (
    Layer,
)

__all__ = [
    "clip_fn",
    "UnmodelledOpWarning",
    "SIG",
    "Data",
    "Const",
    "Pieces",
    "Unknown",
    "short",
    "const_macs",
    "meta_like",
    "apply_shapes",
    "attr_path",
    "flatten",
    "meta_of",
    "tensors_of",
    "rebuild",
    "bind",
    "unbatch",
    "need_data",
    "as_tuple",
    "shape_of",
    "sizes_of",
    "prod",
    "check_fan_in",
    "Builder",
]


class UnmodelledOpWarning(UserWarning):
    """An op of an imported module that convalgebra does not model (global field).

    :func:`~convalgebra.from_torch` keeps such an op as an ``opaque`` node whose output
    depends on all of its input, and warns; ``strict=True`` raises instead.

    Examples
    --------
    >>> import warnings
    >>> import torch
    >>> import convalgebra as ca
    >>> class Running(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.cumsum(x, -1)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     g = ca.from_torch(Running(), (1, 8))
    >>> [w.category.__name__ for w in caught]
    ['UnmodelledOpWarning']
    >>> ca.receptive_field(g, "cumsum")[0].is_global
    True
    """


SIG = {  # positional parameter names after the input, as in torch.nn.functional
    "conv": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose": (
        "weight",
        "bias",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "dilation",
    ),
    "convolution": (
        "weight",
        "bias",
        "stride",
        "padding",
        "dilation",
        "transposed",
        "output_padding",
        "groups",
    ),
    "linear": ("weight", "bias"),
    "batch_norm": ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
    "aten.batch_norm": ("weight", "bias", "running_mean", "running_var", "training"),
    "layer_norm": ("normalized_shape", "weight", "bias", "eps"),
    "group_norm": ("num_groups", "weight", "bias", "eps"),
    "instance_norm": ("running_mean", "running_var", "weight", "bias", "use_input_stats"),
    "aten.instance_norm": ("weight", "bias", "running_mean", "running_var", "use_input_stats"),
    "max_pool": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": (
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    "adaptive": ("output_size",),
    "interpolate": ("size", "scale_factor", "mode", "align_corners"),
    "pad": ("pad", "mode", "value"),
    "softmax": ("dim",),
    "mean": ("dim", "keepdim"),
    "flatten": ("start_dim", "end_dim"),
    "split": ("split_size_or_sections", "dim"),
    "chunk": ("chunks", "dim"),
    "narrow": ("dim", "start", "length"),
    "index_select": ("dim", "index"),
    "unbind": ("dim",),
    "transpose": ("dim0", "dim1"),
    "cat": ("dim",),
}


class Data:
    """A data tensor: the graph node holding it and its shape (batch axis of size ``batch``)."""

    __slots__ = ("node", "shape", "batch")

    def __init__(self, node: str, shape: tuple, batch: int = 1) -> None:
        self.node, self.shape, self.batch = node, shape, batch


class Const:
    """A parameter, buffer or constant (a meta tensor), with the parameter names it reads."""

    __slots__ = ("meta", "keys", "node", "macs")

    def __init__(self, meta: Any, keys: dict[str, int], macs: int = 0) -> None:
        self.meta, self.keys, self.macs = meta, keys, macs
        self.node: str | None = None


class Pieces:
    """The result of ``split``/``chunk``/``unbind``: one slice per piece, made when read."""

    __slots__ = ("src", "dim", "bounds", "select", "name")

    def __init__(self, src: Data, dim: int, bounds: list, select: bool, name: str) -> None:
        self.src, self.dim, self.bounds, self.select, self.name = src, dim, bounds, select, name


class Unknown(Exception):
    """An op outside the modelled set (its shape comes from torch)."""


def short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def const_macs(values: list) -> int:
    """MACs spent computing constants from parameters (e.g. an MLP over a coordinate table)."""
    return sum(v.macs for v in {id(v): v for v in values if isinstance(v, Const)}.values())


def meta_like(torch: Any, value: Any) -> Any:
    """A meta tensor of ``value``'s shape and dtype (``value`` may be a fake tensor)."""
    return torch.empty(tuple(value.shape), dtype=value.dtype, device="meta")


def apply_shapes(shape: tuple, layers: list) -> tuple:
    for layer in layers:
        shape = layer.facts([shape]).shape
    return shape


def attr_path(module: Any, path: str) -> Any:
    for part in path.split("."):
        module = getattr(module, part)
    return module


_NESTED = (tuple, list, dict, slice)


def flatten(value: Any) -> list:
    """The leaves of nested tuples, lists, dicts (values) and slices (bounds), in order."""
    if isinstance(value, (tuple, list)):
        items: Any = value
    elif isinstance(value, dict):
        items = value.values()
    elif isinstance(value, slice):
        return [value.start, value.stop, value.step]
    else:
        return [value]
    out = []
    for v in items:
        if isinstance(v, _NESTED):
            out.extend(flatten(v))
        else:
            out.append(v)
    return out


def meta_of(v: Any) -> Any:
    return v.meta if isinstance(v, Const) else v


def tensors_of(torch: Any, value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_of(torch, v)]
    return []


def rebuild(torch: Any, value: Any, outs: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return next(outs)
    if isinstance(value, (tuple, list)):
        return (
            type(value)(rebuild(torch, v, outs) for v in value)
            if isinstance(value, tuple)
            else [rebuild(torch, v, outs) for v in value]
        )
    return value


def bind(args: tuple, kwargs: dict, names: tuple[str, ...]) -> dict:
    bound = dict(zip(names, args, strict=False))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    return bound


def clip_fn(min_val: Any, max_val: Any) -> str:
    """The activation a ``hardtanh(x, min_val, max_val)`` is: ``"relu6"`` (it maps 0 to 0)
    when the interval holds 0, else ``"pointwise"`` (0 becomes a bound: not a zero).

    Examples
    --------
    >>> clip_fn(-1.0, 1.0), clip_fn(0.5, 2.0)
    ('relu6', 'pointwise')
    """
    numbers = all(isinstance(v, (int, float)) for v in (min_val, max_val))
    return "relu6" if numbers and min_val <= 0 <= max_val else "pointwise"


def unbatch(dim: Any, rank: int) -> int:
    """A dim of the batched tensor (rank ``rank``) as a dim of the unbatched shape."""
    if not isinstance(dim, int):
        raise Unknown(f"dim {shown(dim)}")
    dim = dim % rank
    if dim == 0:
        raise Unknown("an op over the batch axis")
    return dim - 1


def need_data(x: Any, what: str) -> Data:
    if not isinstance(x, Data):
        raise Unknown(what)
    return x


def as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def shape_of(value: Any) -> tuple:
    return tuple(value.meta.shape) if isinstance(value, Const) else ()


def sizes_of(rest: tuple) -> tuple:
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        return tuple(rest[0])
    return tuple(rest)


def prod(values: tuple) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def check_fan_in(where: str, what: str, shape: tuple, expected: tuple | None) -> None:
    """``expected`` = (axis, size) of the input a layer was built for."""
    if expected is not None and shape and shape[expected[0]] != expected[1]:
        raise ConvAlgebraError(
            f"torch could not run {shown(where)} ({what}) on input shape {shape}: "
            f"it expects size {expected[1]} on axis {expected[0] % len(shape)}"
            f" (shapes without the batch axis)"
        )


class Builder(Protocol):
    """What a handler asks of the importer: naming and adding nodes, counting the stored
    tensors a node reads, and turning constants and split pieces into nodes."""

    torch: Any
    dtype: Any
    named_buffers: dict[str, Any]
    used: set[str]

    def add(self, name: str, layer: Layer, data: list, tensors: dict | None = None) -> Data: ...

    def name_of(self, node: Any, fname: str) -> str: ...

    def unique(self, base: str, sep: str = "#") -> str: ...

    def reads(self, values: dict[Any, Any]) -> dict[str, tuple[int, bool]]: ...

    def materialise(self, const: Const, rank: int) -> Data: ...

    def piece(self, p: Pieces, i: int) -> Data: ...
