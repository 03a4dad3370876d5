"""Handlers: activations, elementwise arithmetic, comparisons, ``where``, dropout."""

from __future__ import annotations

from typing import Any

from ...network.layers import (
    ACTIVATIONS,
    Activation,
    Add,
    Dropout,
    Mul,
)
from .values import (
    SIG,
    Builder,
    Const,
    Data,
    Unknown,
    bind,
    clip_fn,
    flatten,
    need_data,
    unbatch,
)

__all__ = [
    "ACT_FNS",
    "POINTWISE",
    "ALIAS",
    "ARITH",
    "act_op",
    "arith_op",
    "dropout_op",
    "stochastic_depth_op",
]

# the elementwise functions a layer kind models by name (softmax needs its dim, scale its factor)
ACT_FNS = frozenset(ACTIVATIONS) - {"softmax", "log_softmax", "scale", "pointwise"}

POINTWISE = {
    "hardtanh",
    "neg",
    "exp",
    "log",
    "abs",
    "sqrt",
    "rsqrt",
    "square",
    "erf",
    "clamp",
    "clamp_min",
    "clamp_max",
    "clip",
    "reciprocal",
    "sin",
    "cos",
    "sign",
    "logsigmoid",
    "selu",
    "celu",
    "prelu_scalar",
    "softsign",
    "tanhshrink",
    "threshold",
    "glu_",
    "pow",
    "exp2",
    "log1p",
    "expm1",
    "floor",
    "ceil",
    "round",
    "nan_to_num",
    "gelu_",
}

ALIAS = {
    "contiguous",
    "clone",
    "detach",
    "float",
    "double",
    "half",
    "to",
    "type_as",
    "cpu",
    "requires_grad_",
    "alias",
    "_assert_tensor_metadata",
    "lift_fresh_copy",
}

#: Ops that are 0 where every operand is 0, read as a sum (zero unless some operand is not)
#: or, for ``mul``, a product (zero where any factor is): what the zero analysis of
#: :mod:`convalgebra.network.support` assumes. Not here: ``eq``/``ge``/``le`` (1 at 0, 0),
#: ``pow`` (0**0 = 1), quotients and ``fmod``/``remainder`` (0/0 is nan), ``where`` (a
#: number as its other branch).
KEEPS_ZERO = frozenset(
    {"add", "iadd", "sub", "isub", "rsub", "mul", "imul", "maximum", "minimum"}
    | {"gt", "lt", "ne", "greater", "less", "logical_and", "logical_or", "logical_xor"}
    | {"bitwise_and", "bitwise_or", "masked_fill", "atan2"}
)

ARITH = {
    "add": "add",
    "iadd": "add",
    "sub": "add",
    "isub": "add",
    "rsub": "add",
    "mul": "mul",
    "imul": "mul",
    "truediv": "mul",
    "div": "mul",
    "itruediv": "mul",
    "floordiv": "mul",
    "maximum": "add",
    "minimum": "add",
    "pow": "mul",
    **dict.fromkeys(("gt", "lt", "ge", "le", "eq", "ne", "greater", "less"), "add"),
    **dict.fromkeys(("logical_and", "logical_or", "logical_xor", "where", "masked_fill"), "add"),
    **dict.fromkeys(("bitwise_and", "bitwise_or", "atan2", "fmod", "remainder"), "add"),
}


def act_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    base = fname.removeprefix("aten.").rstrip("_")
    fn = base if base in ACT_FNS else "pointwise"
    if base == "hardtanh":
        bounds = bind(rest, kw, ("min_val", "max_val"))
        fn = clip_fn(bounds.get("min_val", -1.0), bounds.get("max_val", 1.0))
    if base in ("softmax", "log_softmax"):
        dim = bind(rest, kw, SIG["softmax"]).get("dim")
        return imp.add(
            imp.name_of(node, fname), Activation(base, unbatch(dim, len(x.shape) + 1)), [x]
        )
    if any(isinstance(v, Data) for v in flatten((rest, kw))):
        return arith_op(imp, node, fname, x, rest, kw)
    return imp.add(imp.name_of(node, fname), Activation(fn), [need_data(x, fname)])


def arith_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    """Elementwise ops of tensors (and scalars): arithmetic, comparisons, ``where``,
    ``masked_fill``, ``clamp`` with tensor bounds; each output reads the same position of
    every operand (broadcasting)."""
    base = fname.removeprefix("aten.").rstrip("_")
    operands = [v for v in flatten((x, rest, kw)) if isinstance(v, (Data, Const))]
    data = [v for v in operands if isinstance(v, Data)]
    rank = max(len(d.shape) for d in data)
    if len(operands) < 2:  # the other operands are numbers: scaling keeps zeros, adding not
        scales = base in ("mul", "imul") or base in ("div", "truediv", "itruediv") and x is data[0]
        fn = "scale" if scales else "pointwise"
        return imp.add(imp.name_of(node, fname), Activation(fn), data)
    values = [v if isinstance(v, Data) else imp.materialise(v, rank) for v in operands]
    keeps = base in KEEPS_ZERO
    layer = Add(keeps_zero=keeps) if ARITH.get(base, "mul") == "add" else Mul(keeps_zero=keeps)
    return imp.add(imp.name_of(node, fname), layer, values)


def dropout_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    return imp.add(imp.name_of(node, fname), Dropout(), [need_data(x, fname)])


def stochastic_depth_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    """torchvision's stochastic depth: the identity at inference."""
    b = bind(rest, kw, ("p", "mode", "training"))
    if b.get("training", True) and b.get("p", 0.0):
        raise Unknown("stochastic_depth in training mode")
    return x
