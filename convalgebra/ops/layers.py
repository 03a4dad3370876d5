"""Convolutions and average pooling in expressions, lowered through the triple table.

At each size a :class:`~convalgebra.spec.ConvSpec` is made for the node's input shape and
its triples ``(row, column, weight)`` (the layer's own matrix, transposed for
``conv_transpose``) meet the kernel's entries; average pooling is the depthwise triple table
with the weights ``1 / count`` PyTorch divides by.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from .. import budget
from ..budget import OPS_MAX_PARAMETER
from ..connectivity import layer_rows_cols, padded_positions, triples
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec, normalize_tuple, pool_output_size, pool_stride
from ..variants import pool_spec
from .context import Context
from .expressions import Bindings, Geometry, Op
from .kernels import Kernel
from .terms import Terms, Undefined, canonical, compose, one_term_per_row

__all__ = ["conv", "conv_transpose", "avg_pool", "spec_layer"]


def _triple_map(spec: ConvSpec, ctx: Context, weight: Terms | None) -> Terms:
    """The layer's matrix as a term table from its input to its output (``weight`` symbolic
    entries, or all ones when ``None``)."""
    t = triples(spec)
    rows, cols = layer_rows_cols(spec, t)
    n_rows = math.prod(spec.output_shape)
    n_cols = math.prod(spec.input_shape)
    ones = budget.ones(rows.size, dtype=np.int64)
    zeros = budget.zeros(rows.size, dtype=np.int64)
    if weight is None:
        return Terms(rows, cols, zeros, ones, 1, n_rows, n_cols)
    if one_term_per_row(weight):  # each entry one monomial: index it directly
        lookup = budget.full(weight.n_out, -1, dtype=np.int64)
        lookup[weight.out] = np.arange(weight.out.size)
        k = lookup[t.weight_index]
        keep = k >= 0
        k = k[keep]
        table = Terms(
            rows[keep], cols[keep], weight.mono[k], weight.coeff[k], weight.den, n_rows, n_cols
        )
        return canonical(table)
    by_triple = compose(
        Terms(np.arange(rows.size), t.weight_index, zeros, ones, 1, rows.size, weight.n_out),
        weight,
        ctx.monomials,
        ctx.max_terms,
    )
    k = by_triple.out
    return canonical(
        Terms(rows[k], cols[k], by_triple.mono, by_triple.coeff, by_triple.den, n_rows, n_cols)
    )


class _Conv(Op):
    def __init__(
        self, child: Op, weight: Kernel, options: dict[str, Any], transposed: bool
    ) -> None:
        if not isinstance(child, Op):
            raise TypeError(f"conv takes a signal expression, got {shown(child)}")
        if not isinstance(weight, Kernel):
            raise TypeError(
                f"the weight must be a kernel expression (ops.kernel, ...), got {shown(weight)}"
            )
        if weight.ndim != child.ndim:
            raise ConvAlgebraError(
                f"a {weight.ndim}-D kernel {weight.shape} cannot convolve a {child.ndim}-D signal"
            )
        groups = options.get("groups", 1)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ConvAlgebraError(f"groups must be a positive integer, got {shown(groups)}")
        c_in = child.channels
        if transposed:
            if weight.shape[0] != c_in:
                raise ConvAlgebraError(
                    f"conv_transpose: the weight {weight.shape} expects {weight.shape[0]} input "
                    f"channels, the signal has {c_in}"
                )
            out_channels = weight.shape[1] * groups
        else:
            if weight.shape[1] * groups != c_in:
                raise ConvAlgebraError(
                    f"conv: the weight {weight.shape} with groups={groups} reads "
                    f"{weight.shape[1] * groups} channels, the signal has {c_in}"
                )
            out_channels = weight.shape[0]
        self.child, self.weight, self.options, self.transposed = child, weight, options, transposed
        self.channels, self.ndim = out_channels, child.ndim
        self.reverses, self.permutes = child.reverses, child.permutes
        reach = sum(weight.shape[2:]) * _largest(options.get("dilation", 1))
        reach += _largest(options.get("padding", 0)) + _largest(options.get("stride", 1))
        self.probe = self._make((c_in, *((4 * reach + 8,) * child.ndim)))

    def _make(self, shape: tuple[int, ...]) -> ConvSpec:
        return ConvSpec(
            shape,
            self.channels,
            self.weight.shape[2:],
            bias=False,
            transposed=self.transposed,
            **self.options,
        )

    def children(self) -> tuple[Op, ...]:
        return (self.child,)

    def kernels(self) -> tuple[Kernel, ...]:
        return (self.weight,)

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        spec = self.probe
        out = []
        for a, g in enumerate(self.child.geometry(bindings)):
            extent = spec.dilation[a] * (spec.kernel_size[a] - 1) + 1
            s, (before, after) = spec.stride[a], spec.padding[a]
            # row q reads q s - before + [0, E): at most max(before, E - 1 - before) from q s;
            # rows reading padding lie within before (start) or E - 1 - before (end) of it
            window = max(before, extent - 1 - before)
            if self.transposed:  # row o reads (o + before - t d) / s: within window / s + 1
                op = spec.output_padding[a]
                missing = max(extent - 1 - before, extent - 1 - after + op, 0)
                out.append(
                    g.then(Fraction(s), Fraction(-(-window // s) + 1), Fraction(-(-missing // s)))
                )
            else:  # rows reading padding: within `before` of the start, E - before of the end
                edge = max(before, extent - before if after > 0 else 0)
                out.append(g.then(Fraction(1, s), Fraction(window), Fraction(edge)))
        return tuple(out)

    def _spec(self, ctx: Context) -> ConvSpec:
        def build() -> ConvSpec:
            shape = self.child.shape(ctx)
            try:
                return self._make(shape)
            except ConvAlgebraError as exc:  # the options were checked: only the size is wrong
                raise Undefined(str(exc)) from None

        spec: ConvSpec = ctx.memo(ctx.cache, self, build, "spec")
        return spec

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        return self._spec(ctx).output_shape

    def _lower(self, ctx: Context) -> Terms:
        matrix = _triple_map(self._spec(ctx), ctx, self.weight.lower(ctx))
        return compose(matrix, self.child.lower(ctx), ctx.monomials, ctx.max_terms)

    def formula(self) -> str:
        name = "conv_transpose" if self.transposed else "conv"
        args = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{name}({self.child.formula()}, {self.weight.formula()}{args})"


def _largest(value: Any) -> int:
    """The largest int in an option (nested tuples; words count 0) to size a probe input."""
    if isinstance(value, (tuple, list)):
        return max((_largest(v) for v in value), default=0)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return max(int(value), 0)
    return 0


def _plain(name: str, value: Any) -> Any:
    """An option with numpy ints made Python ints (so it prints as typed), within the limit."""
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(name, v) for v in value)
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > OPS_MAX_PARAMETER:
        raise ConvAlgebraError(
            f"{name} must be at most {OPS_MAX_PARAMETER} (OPS_MAX_PARAMETER), got {shown(value)}"
        )
    return value


def _options(**given: Any) -> dict[str, Any]:
    defaults = {
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "padding_mode": "zeros",
        "output_padding": 0,
    }
    given = {k: _plain(k, v) for k, v in given.items()}
    return {k: v for k, v in given.items() if not (k in defaults and _equal(v, defaults[k]))}


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - an odd value is just not the default
        return False


def conv(
    x: Op,
    weight: Kernel,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Op:
    """``F.conv{1,2,3}d(x, weight, stride=, padding=, dilation=, groups=)`` (cross-correlation),
    with ``padding_mode`` as ``nn.Conv`` takes it; ``padding`` also ``"same"``/``"valid"`` or
    (before, after) pairs.

    Examples
    --------
    >>> from convalgebra.ops import signal, kernel
    >>> conv(signal(), kernel("w", (1, 1, 3)), stride=2)
    conv(x, w, stride=2)
    """
    opts = _options(
        stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode
    )
    return _Conv(x, weight, opts, transposed=False)


def conv_transpose(
    x: Op,
    weight: Kernel,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Op:
    """``F.conv_transpose{1,2,3}d``; the weight is ``(C_in, C_out / groups, *k)``.

    Examples
    --------
    >>> from convalgebra.ops import signal, kernel
    >>> conv_transpose(signal(), kernel("w", (1, 1, 3)), stride=2).channels
    1
    """
    opts = _options(
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    )
    return _Conv(x, weight, opts, transposed=True)


class _SpecLayer(_Conv):
    """The layer of a :class:`ConvSpec`'s hyper-parameters at the size that reaches it."""

    def __init__(self, child: Op, weight: Kernel, spec: ConvSpec) -> None:
        if not isinstance(child, Op) or not isinstance(weight, Kernel):
            raise TypeError(
                f"spec_layer takes a signal and a kernel expression, got {shown(child)}"
            )
        if not isinstance(spec, ConvSpec):
            raise TypeError(f"spec_layer takes a ConvSpec, got {shown(spec)}")
        if (child.channels, child.ndim) != (spec.in_channels, spec.ndim):
            raise ConvAlgebraError(
                f"{spec.describe()} reads {spec.in_channels} channels in {spec.ndim}-D, the "
                f"signal has {child.channels} in {child.ndim}-D"
            )
        if math.prod(weight.shape) != math.prod(spec.weight_shape):
            raise ConvAlgebraError(
                f"the kernel {weight.shape} has not the {math.prod(spec.weight_shape)} entries "
                f"of the weight {spec.weight_shape} of {spec.describe()}"
            )
        self.child, self.weight, self.template = child, weight, spec
        self.options, self.transposed = {}, spec.transposed
        self.channels, self.ndim = spec.out_channels, spec.ndim
        self.reverses, self.permutes = child.reverses, child.permutes
        self.probe = spec

    def _make(self, shape: tuple[int, ...]) -> ConvSpec:
        if shape == self.template.input_shape:
            return self.template
        return replace(self.template, input_shape=shape)

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        if self.template.tile is not None:
            raise ConvAlgebraError(
                "a tiled layer's kernels rotate with the output position: decide it at given "
                "sizes (size=, sizes=)"
            )
        return super().geometry(bindings)

    def formula(self) -> str:
        hyper = self.template.describe().split(" on input")[0]
        return f"{hyper}[{self.weight.formula()}]({self.child.formula()})"


def spec_layer(x: Op, weight: Kernel, spec: ConvSpec) -> Op:
    """The layer ``spec`` describes (every option: transposed, flip, tiles, channel tables)
    applied to ``x`` at whatever size reaches it, with the kernel ``weight``.

    ``weight`` holds the entries of ``spec.weight_shape`` in C order (its own shape may merge
    leading axes, e.g. a tiled layer's tiles into the output channels); bias is not part of
    the linear map.

    Examples
    --------
    >>> from convalgebra.ops import signal, kernel
    >>> spec = ConvSpec((1, 8), 1, 3, padding=1, flip=True)
    >>> spec_layer(signal(), kernel("w", (1, 1, 3)), spec)
    Conv1d(1, 1, kernel_size=(3,), stride=(1,), padding=((1, 1),), flip=True)[w](x)
    """
    return _SpecLayer(x, weight, spec)


class _AvgPool(Op):
    def __init__(
        self,
        child: Op,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: int | None,
    ) -> None:
        if not isinstance(child, Op):
            raise TypeError(f"avg_pool takes a signal expression, got {shown(child)}")
        for name, flag in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {shown(flag)}")
        if divisor_override is not None and (
            isinstance(divisor_override, bool)
            or not isinstance(divisor_override, int)
            or divisor_override < 1
        ):
            raise ConvAlgebraError(
                f"divisor_override must be a positive int, got {shown(divisor_override)}"
            )
        self.child = child
        self.kernel_size = normalize_tuple(kernel_size, child.ndim, "kernel_size")
        self.stride = pool_stride(self.kernel_size, stride)
        self.padding = normalize_tuple(padding, child.ndim, "padding", minimum=0)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override
        self.channels, self.ndim = child.channels, child.ndim
        self.reverses, self.permutes = child.reverses, child.permutes
        probe = tuple(
            4 * (k + s + p) + 8 for k, s, p in zip(self.kernel_size, self.stride, self.padding)
        )
        pool_spec(
            (child.channels, *probe), self.kernel_size, self.stride, self.padding, 1, ceil_mode
        )

    def children(self) -> tuple[Op, ...]:
        return (self.child,)

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        return tuple(
            g.then(
                Fraction(1, s),
                Fraction(max(p, k - 1 - p)),
                Fraction(
                    max(p, k - p if (p or self.ceil_mode) else 0) + (s if self.ceil_mode else 0)
                ),
            )
            for g, k, s, p in zip(
                self.child.geometry(bindings), self.kernel_size, self.stride, self.padding
            )
        )

    def _spec(self, ctx: Context) -> ConvSpec:
        def build() -> ConvSpec:
            shape = self.child.shape(ctx)
            for n, k, s, p in zip(shape[1:], self.kernel_size, self.stride, self.padding):
                if pool_output_size(n, k, s, p, 1, self.ceil_mode) < 1:
                    raise Undefined("the pooling window does not fit")
            try:
                return pool_spec(
                    shape, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode
                )
            except ConvAlgebraError as exc:
                raise Undefined(str(exc)) from None

        spec: ConvSpec = ctx.memo(ctx.cache, self, build, "spec")
        return spec

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        return self._spec(ctx).output_shape

    def _counts(self, spec: ConvSpec, matrix: Terms) -> np.ndarray:
        """The divisor of every output row, as PyTorch's avg_pool divides."""
        if self.divisor_override is not None:
            return budget.full(matrix.n_out, self.divisor_override, dtype=np.int64)
        if not self.count_include_pad:
            return np.bincount(matrix.out, minlength=matrix.n_out).astype(np.int64)
        per_axis = []
        for a, (n, p) in enumerate(zip(spec.input_shape[1:], self.padding)):
            taps = padded_positions(spec, a)
            per_axis.append(((taps >= -p) & (taps < n + p)).sum(axis=1))
        spatial = per_axis[0]
        for counts in per_axis[1:]:
            spatial = np.multiply.outer(spatial, counts).ravel()
        return np.tile(spatial.astype(np.int64), spec.out_channels)

    def _lower(self, ctx: Context) -> Terms:
        spec = self._spec(ctx)
        matrix = _triple_map(spec, ctx, None)
        counts = self._counts(spec, matrix)
        den = math.lcm(*(int(c) for c in np.unique(counts)))
        scaled = Terms(
            matrix.out,
            matrix.src,
            matrix.mono,
            (den // counts)[matrix.out],
            den,
            matrix.n_out,
            matrix.n_src,
        )
        return compose(scaled, self.child.lower(ctx), ctx.monomials, ctx.max_terms)

    def formula(self) -> str:
        args = f", {self.kernel_size[0] if len(set(self.kernel_size)) == 1 else self.kernel_size}"
        if self.stride != self.kernel_size:
            args += f", stride={self.stride[0] if len(set(self.stride)) == 1 else self.stride}"
        if any(self.padding):
            args += f", padding={self.padding[0] if len(set(self.padding)) == 1 else self.padding}"
        for name, value, default in (
            ("ceil_mode", self.ceil_mode, False),
            ("count_include_pad", self.count_include_pad, True),
            ("divisor_override", self.divisor_override, None),
        ):
            if value != default:
                args += f", {name}={value}"
        return f"avg_pool({self.child.formula()}{args})"


def avg_pool(
    x: Op,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Op:
    """``F.avg_pool{1,2,3}d`` with PyTorch's defaults (stride = kernel_size) and divisors.

    Examples
    --------
    >>> from convalgebra.ops import signal
    >>> avg_pool(signal(ndim=2), 2)
    avg_pool(x, 2)
    """
    return _AvgPool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
