"""Handlers: products of tensors (``matmul``, ``bmm``, ``einsum``)."""

from __future__ import annotations

from typing import Any

from ...network.layers import (
    Einsum,
)
from .values import (
    Builder,
    Const,
    Data,
    Unknown,
    prod,
)

__all__ = ["matmul_op", "einsum_op"]


def matmul_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    fname.removeprefix("aten.")
    other = rest[0] if rest else kw.get("other", kw.get("mat2"))
    operands = [x, other]
    shapes = [tuple(v.meta.shape) if isinstance(v, Const) else (1, *v.shape) for v in operands]
    eq = _matmul_equation(shapes, isinstance(x, Const), isinstance(other, Const))
    return _einsum_node(imp, node, fname, eq, operands)


def _matmul_equation(shapes: list, const_a: bool, const_b: bool) -> str:
    """The einsum equation of ``a @ b`` on unbatched data (constants keep every axis)."""
    ra, rb = len(shapes[0]), len(shapes[1])
    if ra < 2 or rb < 2:
        raise Unknown("matmul of a vector")
    letters = "abcdefghijklmnop"
    batch = max(ra, rb) - 2
    lead = letters[:batch]
    a = lead[batch - (ra - 2) :] + "xy"
    b = lead[batch - (rb - 2) :] + "yz"
    out = lead + "xz"
    a, b, out = (
        a if const_a else a[1:] if ra == batch + 2 else a,
        b if const_b else b[1:] if rb == batch + 2 else b,
        out[1:],
    )
    return f"{a},{b}->{out}"


def _einsum_node(imp: Builder, node: Any, fname: str, eq: str, operands: list) -> Data:
    terms = eq.split("->")[0].split(",")
    weights, data, values = [], [], {}
    for k, (term, v) in enumerate(zip(terms, operands, strict=False)):
        if isinstance(v, Const):
            shape = tuple(v.meta.shape)[len(v.meta.shape) - len(term) :]
            if prod(tuple(v.meta.shape)) != prod(shape):
                raise Unknown("einsum with a batched constant")
            weights.append((k, shape))
            values[f"weight{k}"] = v
        elif isinstance(v, Data):
            data.append(v)
        else:
            raise Unknown("einsum operand")
    if len(weights) == 1:
        values = {"weight": next(iter(values.values()))}
    layer = Einsum(eq, tuple(weights))
    return imp.add(imp.name_of(node, fname), layer, data, imp.reads(values))


def einsum_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    if not isinstance(x, str):
        raise Unknown("einsum without an equation first")
    operands = (
        list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else list(rest)
    )
    text = x.replace(" ", "")
    if "->" not in text or "." in text or len(operands) != 2:
        raise Unknown("einsum without an explicit output, with an ellipsis or not of two operands")
    lhs, out = text.split("->")
    terms = lhs.split(",")
    new = []
    for term, v in zip(terms, operands, strict=False):
        new.append(term if isinstance(v, Const) else term[1:])
        if isinstance(v, Data) and len(term) != len(v.shape) + 1:
            raise Unknown("einsum term and operand rank differ")
    batch = [t[0] for t, v in zip(terms, operands, strict=False) if isinstance(v, Data)]
    if len(set(batch)) != 1 or not out.startswith(batch[0]):
        raise Unknown("einsum mixing the batch axis")
    return _einsum_node(imp, node, fname, ",".join(new) + "->" + out[1:], operands)
