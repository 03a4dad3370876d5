"""Identities written as text (``"conv(x, w, stride=2) == subsample(conv(x, w), 2)"``), read
into expressions without running anything.

The text is parsed by Python's own parser into a syntax tree, and only a fixed set of node
kinds is interpreted: calls of the operator names of :mod:`convalgebra.ops`, the signal and
kernel names the caller declares, numbers (``1/3`` is an exact fraction), strings, tuples and
lists, ``+``, ``-``, scalar ``*``, channel indexing and ``==``. Attribute access, other names,
comprehensions, lambdas and everything else are refused: data is never code.
"""

from __future__ import annotations

import ast
from fractions import Fraction
from typing import Any

from ..errors import ConvAlgebraError, shown
from . import expressions, gathers, kernels, layers
from .expressions import Op
from .kernels import Kernel

__all__ = ["parse_identity", "parse_expression", "FUNCTIONS", "MAX_TEXT"]

#: Longest text read (characters).
MAX_TEXT = 4000
_MAX_NODES = 2000

FUNCTIONS: dict[str, Any] = {
    "conv": layers.conv,
    "conv_transpose": layers.conv_transpose,
    "avg_pool": layers.avg_pool,
    "pad": gathers.pad,
    "crop": gathers.crop,
    "shift": gathers.shift,
    "flip": gathers.flip,
    "rot90": gathers.rot90,
    "subsample": gathers.subsample,
    "upsample_zeros": gathers.upsample_zeros,
    "upsample_nearest": gathers.upsample_nearest,
    "pixel_shuffle": gathers.pixel_shuffle,
    "pixel_unshuffle": gathers.pixel_unshuffle,
    "cat": expressions.cat,
    "split": expressions.split,
    "adjoint": expressions.adjoint,
    "constant": kernels.constant,
    "delta": kernels.delta,
    "dilate_kernel": kernels.dilate_kernel,
    "enlarge_kernel": kernels.enlarge_kernel,
    "flip_kernel": kernels.flip_kernel,
    "transpose_kernel": kernels.transpose_kernel,
    "kernel_conv": kernels.kernel_conv,
    "polyphase_kernel": kernels.polyphase_kernel,
    "cat_kernels": kernels.cat_kernels,
    "ungroup_kernel": kernels.ungroup_kernel,
}


def _tree(text: Any) -> ast.expr:
    if not isinstance(text, str):
        raise TypeError(f"an identity is text, got {shown(text)}")
    if len(text) > MAX_TEXT:
        raise ConvAlgebraError(f"the identity is {len(text):,} characters long, over {MAX_TEXT:,}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ConvAlgebraError(f"cannot read {shown(text, 80)}: {type(exc).__name__}") from None
    if sum(1 for _ in ast.walk(tree)) > _MAX_NODES:
        raise ConvAlgebraError(f"the identity has more than {_MAX_NODES} parts")
    return tree


def parse_identity(text: str, names: dict[str, Any]) -> tuple[Op, Op]:
    """``(lhs, rhs)`` of ``"lhs == rhs"``; ``names`` maps the declared signals and kernels.

    Examples
    --------
    >>> from convalgebra import ops
    >>> names = {"x": ops.signal(), "w": ops.kernel("w", (1, 1, 3))}
    >>> parse_identity("conv(x, w, stride=2) == subsample(conv(x, w), 2)", names)
    (conv(x, w, stride=2), subsample(conv(x, w), 2))
    >>> parse_identity("__import__('os') == x", names)
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: unknown operator '__import__'; the operators are conv, ...
    """
    tree = _tree(text)
    if (
        not isinstance(tree, ast.Compare)
        or len(tree.ops) != 1
        or not isinstance(tree.ops[0], ast.Eq)
    ):
        raise ConvAlgebraError(f"an identity reads 'lhs == rhs', got {shown(text, 80)}")
    reader = _Reader(names)
    lhs, rhs = reader.value(tree.left), reader.value(tree.comparators[0])
    for side, value in (("left", lhs), ("right", rhs)):
        if not isinstance(value, Op):
            raise ConvAlgebraError(
                f"the {side} side is not a signal expression: {shown(value, 80)}"
            )
    return lhs, rhs


def parse_expression(text: str, names: dict[str, Any]) -> Any:
    """One expression (a signal expression, a kernel or a value)."""
    return _Reader(names).value(_tree(text))


class _Reader:
    def __init__(self, names: dict[str, Any]) -> None:
        clash = sorted(set(names) & set(FUNCTIONS))
        if clash:
            raise ConvAlgebraError(f"{clash[0]!r} names an operator; declare another name")
        self.names = names

    def value(self, node: ast.expr) -> Any:  # noqa: C901 - one branch per node kind
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float, str)):
                raise ConvAlgebraError(f"unsupported constant {shown(node.value)}")
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in self.names:
                raise ConvAlgebraError(
                    f"unknown name {node.id!r}: the operators are conv, ... ; declared: "
                    + ", ".join(self.names)
                )
            return self.names[node.id]
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.value(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            return self._index(node)
        raise ConvAlgebraError(f"{type(node).__name__} is not part of the operator language")

    def _binary(self, node: ast.BinOp) -> Any:
        left, right = self.value(node.left), self.value(node.right)
        numbers = all(isinstance(v, (int, Fraction)) for v in (left, right))
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            scalar = (int, float, Fraction)
            if (isinstance(left, scalar) and isinstance(right, (*scalar, Op, Kernel))) or (
                isinstance(right, scalar) and isinstance(left, (Op, Kernel))
            ):
                return left * right  # never a repetition of text or lists
            raise ConvAlgebraError("'*' multiplies by a number only (the map stays linear)")
        if isinstance(node.op, ast.Div) and numbers:
            if right == 0:
                raise ConvAlgebraError("division by zero")
            return Fraction(left) / Fraction(right)
        raise ConvAlgebraError(f"the operator {type(node.op).__name__} is not supported")

    def _call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
            raise ConvAlgebraError(
                f"unknown operator {name!r}; the operators are {', '.join(FUNCTIONS)}"
            )
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            raise ConvAlgebraError("* and ** are not part of the operator language")
        args = [self.value(a) for a in node.args]
        kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg}
        try:
            return FUNCTIONS[node.func.id](*args, **kwargs)
        except TypeError as exc:
            raise ConvAlgebraError(f"{node.func.id}(...): {exc}") from None

    def _index(self, node: ast.Subscript) -> Any:
        base = self.value(node.value)
        index = node.slice
        if isinstance(index, ast.Slice):
            bounds = [
                None if v is None else self.value(v) for v in (index.lower, index.upper, index.step)
            ]
            key: Any = slice(*bounds)
        else:
            key = self.value(index)
        if isinstance(base, (Op, tuple, list)):
            try:
                return base[key]
            except (TypeError, IndexError) as exc:
                raise ConvAlgebraError(f"cannot index with {shown(key)}: {exc}") from None
        raise ConvAlgebraError(f"only expressions and lists can be indexed, got {shown(base, 60)}")
