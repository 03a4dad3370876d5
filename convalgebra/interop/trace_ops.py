"""PyTorch functions as operator expressions: trace ``torch.nn.functional`` code into ``ops``.

A plain Python function of an input tensor and weight tensors, written with
``torch.nn.functional``, is traced once with ``torch.fx`` (symbolically: no tensor arithmetic
is run) and every call is mapped to the :mod:`convalgebra.ops` function of the same name and
options. The traced input has a batch axis of one: tensor dim ``d`` of a signal is dim
``d - 1`` of the expression (dim 1, the channels, is the expression's dim 0). Weights have no
batch axis. An operation outside the set below is refused with a
:class:`~convalgebra.errors.ConvAlgebraError` naming it.

On signals: ``F.conv1d/2d/3d`` and ``F.conv_transpose1d/2d/3d`` (no bias: a bias makes the map
affine), ``F.avg_pool1d/2d/3d``, ``F.pad`` (every mode, zero fill), ``F.pixel_shuffle`` and
``F.pixel_unshuffle`` (2-D signals: torch shuffles the last two dims),
``F.interpolate(mode="nearest" or "nearest-exact", integer scale_factor)``, ``torch.cat`` and
``torch.split``/``chunk`` on dim 1, ``torch.flip``, ``torch.roll``, ``torch.rot90``, slicing
``x[:, a:b]`` (channels) and ``x[..., o:-e:f]`` (spatial dims: crops and subsampling), ``+``,
``-`` and scalar ``*`` and ``/``. On weights: slicing ``w[..., p::f]`` (polyphase components,
crops), ``torch.flip`` of every spatial dim, ``F.pad`` (enlarging or cropping, zero fill),
``torch.cat`` on dim 0 or 1, ``+``, ``-`` and scalar ``*`` and ``/``. torch is imported only
when a function is traced.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

from .. import ops
from ..errors import ConvAlgebraError, require, shown
from ..ops.prove import DEFAULT_MAX_SIZES
from ..ops.terms import DEFAULT_MAX_TERMS
from .trace_handlers import handler_tables

__all__ = ["trace", "prove"]

Value = Any  # an ops.Op, an ops.Kernel, a tuple of them, or a plain Python constant


# ------------------------------------------------------------------ public
def trace(f: Callable[..., Any], **shapes: Any) -> ops.Op:
    """The operator expression a PyTorch function computes, for inputs of every size.

    Parameters
    ----------
    f : callable
        A function of tensors written with ``torch.nn.functional`` (see the module's list).
        Parameters with a default and no shape keep their default.
    **shapes
        One per parameter: ``x=(C, "n")`` or ``x=(C, "n", "n")`` for an input signal of
        ``C`` channels and every spatial size (a string marks each symbolic spatial size; the
        traced tensor has a batch axis of one), ``w=(C_out, C_in, k)`` for a weight: a
        symbolic kernel named after the parameter.

    Returns
    -------
    ops.Op
        The expression, over signals and kernels named after ``f``'s parameters.

    Raises
    ------
    ConvAlgebraError
        A parameter without a shape, a shape naming no parameter, an operation that no
        ``ops`` expression computes (named, with the reason), or a function torch.fx cannot
        trace (control flow on tensor values or sizes).

    Examples
    --------
    >>> import torch.nn.functional as F
    >>> trace(lambda x, w: F.conv1d(x, w, stride=2)[..., 1:], x=(1, "n"), w=(1, 1, 3))
    crop(conv(x, w, stride=2), (1, 0))
    """
    torch = require("torch", "torch")
    if not callable(f):
        raise TypeError(f"trace takes a function of tensors, got {shown(f)}")
    leaves = _leaves(f, shapes)
    graph = _fx_graph(torch, f, leaves)
    return _Interpreter(torch, _name(f), leaves).run(graph)


def prove(
    lhs: Any,
    rhs: Any,
    *,
    size: Any = None,
    sizes: Any = None,
    max_terms: int = DEFAULT_MAX_TERMS,
    max_sizes: int = DEFAULT_MAX_SIZES,
    **shapes: Any,
) -> ops.Proof:
    """Decide ``lhs == rhs`` for every input size: operator expressions, or PyTorch functions.

    Parameters
    ----------
    lhs, rhs : ops.Op or callable
        Expressions built with :mod:`convalgebra.ops`, or functions of tensors written with
        ``torch.nn.functional``, traced by :func:`trace` (a parameter of the same name is the
        same signal or the same kernel on both sides).
    size : int or tuple of int, optional
        Decide at this one size only (see :func:`convalgebra.ops.prove`).
    sizes : iterable, optional
        Decide at these sizes only.
    max_terms, max_sizes : int
        Budget: terms of one table, and sizes decided one by one; refused above them.
    **shapes
        For functions: the shape of every parameter, ``x=(C, "n")`` (a signal of every size),
        ``w=(C_out, C_in, k)`` (a symbolic kernel). These names cannot be ``size``,
        ``sizes``, ``max_terms`` or ``max_sizes``.

    Returns
    -------
    ops.Proof
        See :func:`convalgebra.ops.prove`: the verdict, the exact set of sizes where the two
        sides agree, and the smallest counterexample.

    Examples
    --------
    Two implementations of one strided convolution agree for every input size:

    >>> import convalgebra as ca
    >>> import torch.nn.functional as F
    >>> def strided(x, w):
    ...     return F.conv1d(x, w, stride=2)
    >>> def sliced(x, w):
    ...     return F.conv1d(x, w)[..., ::2]
    >>> r = ca.prove(strided, sliced, x=(1, "n"), w=(1, 1, 3))
    >>> r.holds, str(r.sizes)
    (True, 'every n >= 3')

    Keeping the odd outputs instead is another map; the smallest counterexample is evaluated:

    >>> r = ca.prove(strided, lambda x, w: F.conv1d(x, w)[..., 1::2], x=(1, "n"), w=(1, 1, 3))
    >>> r.holds, str(r.sizes), r.counterexample.size
    (False, 'no n', (4,))
    """
    sides = []
    for label, side in (("lhs", lhs), ("rhs", rhs)):
        if isinstance(side, ops.Op):
            sides.append(side)
        elif callable(side):
            own = {k: v for k, v in shapes.items() if k in _parameters(side)}
            sides.append(trace(side, **own))
        else:
            raise TypeError(
                f"prove: {label} must be an ops expression or a function of tensors, "
                f"got {shown(side)}"
            )
    used = set().union(*(_parameters(s) for s in (lhs, rhs) if not isinstance(s, ops.Op)))
    stray = sorted(set(shapes) - used)
    if stray:
        raise ConvAlgebraError(
            f"prove: the shape(s) {', '.join(stray)} name no parameter of the traced functions "
            f"(parameters: {sorted(used)})"
        )
    return ops.prove(
        sides[0], sides[1], size=size, sizes=sizes, max_terms=max_terms, max_sizes=max_sizes
    )


# ------------------------------------------------------------------ inputs
def _name(f: Any) -> str:
    return getattr(f, "__name__", type(f).__name__)


def _signature(f: Any) -> inspect.Signature:
    """The traced parameters: a module's are its ``forward``'s."""
    target = f.forward if callable(getattr(f, "forward", None)) else f
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        raise ConvAlgebraError(f"cannot read the parameters of {shown(f)}") from None


def _parameters(f: Any) -> list[str]:
    return list(_signature(f).parameters)


def _leaves(f: Any, shapes: dict[str, Any]) -> dict[str, Value]:
    """Every parameter of ``f``: a signal, a kernel, or its default value."""
    params = _signature(f).parameters
    stray = sorted(set(shapes) - set(params))
    if stray:
        raise ConvAlgebraError(
            f"{_name(f)}: the shape(s) {', '.join(stray)} name no parameter "
            f"(parameters: {list(params)})"
        )
    leaves: dict[str, Value] = {}
    for name, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConvAlgebraError(f"{_name(f)}: *{name} cannot be traced: name every parameter")
        if name in shapes:
            leaves[name] = _leaf(name, shapes[name])
        elif p.default is not p.empty:
            leaves[name] = p.default
        else:
            raise ConvAlgebraError(
                f"{_name(f)}: parameter {name!r} has no shape: pass {name}=(C, 'n') for an "
                f"input signal or {name}=(C_out, C_in, k) for a weight"
            )
    return leaves


def _leaf(name: str, shape: Any) -> Value:
    if not isinstance(shape, (tuple, list)) or len(shape) < 2:
        raise ConvAlgebraError(
            f"{name}={shown(shape)}: a shape is (C, 'n', ...) for a signal or "
            "(C_out, C_in, k, ...) for a weight"
        )
    if len(shape) < 3 or any(isinstance(v, str) for v in shape[1:]):
        if not all(isinstance(v, str) and v.isidentifier() for v in shape[1:]):
            raise ConvAlgebraError(
                f"{name}={shown(shape)}: the spatial sizes of a signal are symbolic, marked by "
                "a name such as 'n' (decide one size with size=); a weight is (C_out, C_in, k, ...)"
            )
        channels = shape[0]
        if isinstance(channels, bool) or not isinstance(channels, int):
            raise TypeError(f"{name}: the channel count must be an int, got {shown(channels)}")
        return ops.signal(channels=channels, ndim=len(shape) - 1, name=name)
    return ops.kernel(name, tuple(shape))


def _fx_graph(torch: Any, f: Any, leaves: dict[str, Value]) -> Any:
    """The fx graph of ``f``; parameters that keep their default are traced as constants."""
    constants = {k: v for k, v in leaves.items() if not isinstance(v, (ops.Op, ops.Kernel))}
    try:
        return torch.fx.symbolic_trace(f, concrete_args=constants or None).graph
    except Exception as exc:  # fx raises many kinds; the message is what the user needs
        text = " ".join(str(exc).split())[:300]
        raise ConvAlgebraError(
            f"torch.fx cannot trace {_name(f)}: {text} (control flow on tensor values or "
            "sizes cannot be traced: the sizes are symbolic)"
        ) from exc


# ------------------------------------------------------------------ the interpreter
class _Interpreter:
    """Runs an fx graph on ops values: one handler per supported torch operation."""

    def __init__(self, torch: Any, fname: str, leaves: dict[str, Value]) -> None:
        self.torch, self.fname, self.leaves = torch, fname, leaves
        self.functions, self.methods = handler_tables(torch)

    def run(self, graph: Any) -> ops.Op:
        env: dict[Any, Value] = {}
        result: Value = None
        for node in graph.nodes:
            args, kwargs = self.torch.fx.node.map_arg((node.args, dict(node.kwargs)), env.get)
            if node.op == "placeholder":
                env[node] = self._placeholder(node)
            elif node.op == "output":
                result = args[0]
            elif node.op in ("call_function", "call_method"):
                env[node] = self._call(node, args, kwargs)
            elif node.op == "call_module":
                raise ConvAlgebraError(
                    f"{self.fname}: the module call {node.target!r} cannot be traced: write it "
                    "with torch.nn.functional, its weights as parameters"
                )
            else:
                raise ConvAlgebraError(
                    f"{self.fname}: a tensor constant or attribute ({node.target}) is used: "
                    "every weight must be a parameter of the function (a symbolic kernel)"
                )
        if not isinstance(result, ops.Op):
            raise ConvAlgebraError(
                f"{self.fname} must return one tensor computed from its input signal, "
                f"got {shown(result)}"
            )
        return result

    def _placeholder(self, node: Any) -> Value:
        name = str(node.target)
        if name in self.leaves:
            return self.leaves[name]
        if node.args:  # a concrete argument: fx renames it and keeps its default
            return node.args[0]
        raise ConvAlgebraError(f"{self.fname}: parameter {name!r} has no shape")

    def _call(self, node: Any, args: tuple, kwargs: dict) -> Value:
        if node.op == "call_method":
            label = f"Tensor.{node.target}"
            entry = self.methods.get(str(node.target))
        else:
            label = _label(node.target)
            entry = self.functions.get(node.target)
        if entry is None:
            if node.op == "call_function" and _is_constant(node.target, args, kwargs):
                return node.target(*args, **kwargs)
            raise ConvAlgebraError(f"{self.fname}: {label} {_unsupported(node, label)}")
        names, handler = entry
        try:
            bound = _bind(names, args, kwargs)
            return handler(bound, label)
        except ConvAlgebraError as exc:
            raise ConvAlgebraError(f"{self.fname}: {label}: {exc}") from None
        except TypeError as exc:
            raise TypeError(f"{self.fname}: {label}: {exc}") from None


_PURE = (operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge)


def _is_constant(target: Any, args: tuple, kwargs: dict) -> bool:
    """A check fx left on a default argument (``s == 2``, ``torch._assert(True, ...)``)."""
    values = [*args, *kwargs.values()]
    if any(isinstance(v, (ops.Op, ops.Kernel, tuple, list)) for v in values):
        return False
    if target in _PURE:
        return True
    return getattr(target, "__name__", "") == "_assert" and bool(args and args[0] is True)


def _unsupported(node: Any, label: str) -> str:
    if label in ("getattr", "Tensor.size", "Tensor.dim"):
        return "reads the size of a tensor, which is symbolic: write the operation without it"
    return (
        "cannot be expressed as an ops expression (supported: convolutions, transposed "
        "convolutions, avg_pool, pad, interpolate nearest, pixel_(un)shuffle, cat, split, chunk, "
        "flip, roll, rot90, slicing, +, -, scalar * and /)"
    )


def _label(target: Any) -> str:
    name = getattr(target, "__name__", repr(target))
    module = getattr(target, "__module__", None) or "torch"
    if module.startswith(("torch.nn.functional", "torch._C._nn")):
        return f"F.{name}"
    if module in ("_operator", "operator", "builtins"):
        return name
    return f"torch.{name}" if module.startswith("torch") else f"{module}.{name}"


def _bind(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments by name; ``*rest`` collects the remaining positional ones."""
    bound: dict[str, Any] = {}
    star = next((n for n in names if n.startswith("*")), None)
    fixed = [n for n in names if not n.startswith("*")]
    if len(args) > len(fixed) and star is None:
        raise TypeError(f"takes at most {len(fixed)} positional arguments, got {len(args)}")
    for n, v in zip(fixed, args):
        bound[n] = v
    if star is not None:
        bound[star[1:]] = tuple(args[len(fixed) :])
    for k, v in kwargs.items():
        if k not in names and f"*{k}" not in names:
            raise TypeError(f"unexpected argument {k}={shown(v)}")
        bound[k] = v
    return bound
