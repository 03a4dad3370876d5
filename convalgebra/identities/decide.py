"""The laws that are equations between linear operators, decided by :func:`convalgebra.ops.prove`.

A law is written as two operator expressions of a signal ``x`` (:mod:`convalgebra.ops`):
its layers with a symbolic kernel (one symbol per entry) at the spec's own size. ``prove``
lowers both sides to term tables and compares them; the residual ``lhs - rhs`` says which
outputs fail, and, evaluated at a given kernel (numbers or sympy expressions), whether the
law holds for that kernel. A counterexample is evaluated exactly by the same expressions.

Examples
--------
>>> from convalgebra.spec import ConvSpec
>>> spec = ConvSpec((1, 6), 1, 3, padding=1)
>>> x, w = ops.signal(), spec_kernel("weight", spec)
>>> d = decide(ops.conv(ops.shift(x, 1), w, padding=1), ops.shift(layer(x, w, spec), 1), spec)
>>> d.holds, positions(d.failing, spec.output_shape)
(False, ((0, 0), (0, 5)))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import budget, ops
from ..errors import ConvAlgebraError
from ..ops.expressions import Gather
from ..spec import ConvSpec
from .common import is_symbolic, positions
from .constraints import SparseSystem
from .operator_laws import METHOD
from .result import Counterexample
from .transforms import GridTransform

__all__ = [
    "OPS_METHOD",
    "numeric_kernel",
    "Decision",
    "decide",
    "layer",
    "spec_kernel",
    "kernel_values",
    "counterexample",
    "kernel_system",
    "positions",
    "permuted",
    "grid_op",
]


#: the ``method`` of a :class:`CheckResult` decided here
OPS_METHOD = METHOD


def spec_kernel(name: str, spec: ConvSpec) -> ops.Kernel:
    """A symbolic kernel with the entries of ``spec.weight_shape`` (tiles merged into the
    output channels, so that the shape is a kernel shape)."""
    shape = spec.weight_shape
    return ops.kernel(
        name, (math.prod(shape[: len(shape) - spec.ndim - 1]), *shape[-spec.ndim - 1 :])
    )


def layer(x: ops.Op, weight: ops.Kernel, spec: ConvSpec) -> ops.Op:
    """The layer ``spec`` on ``x`` (at whatever size reaches it)."""
    return ops.spec_layer(x, weight, spec)


def kernel_values(weight: Any, spec: ConvSpec, name: str = "weight") -> np.ndarray:
    """A given kernel as a flat array: floats, or sympy expressions (object), shape-checked."""
    array = np.asarray(weight, dtype=object)
    if array.shape != spec.weight_shape:
        raise ConvAlgebraError(
            f"{name} must have shape {spec.weight_shape} for {spec.describe()}, got {array.shape}"
        )
    if not is_symbolic(array):
        return np.asarray(weight, dtype=np.float64).ravel()
    from ..symbolic.exprs import as_expr_array

    return as_expr_array(array, spec.weight_shape, name).ravel()


def permuted(e: ops.Op, perm: Any, name: str) -> ops.Op:
    """Channels of ``e`` reordered: channel ``c`` is ``e[perm[c]]`` (``None``: unchanged)."""
    if perm is None:
        return e
    n = e.channels
    perm = np.asarray(perm)
    if perm.shape != (n,) or sorted(perm.tolist()) != list(range(n)):
        raise ConvAlgebraError(f"{name} must be a permutation of range({n}), got {perm.tolist()}")
    return ops.cat([e[int(p)] for p in perm])


def grid_op(e: ops.Op, t: GridTransform) -> ops.Op:
    """A grid transformation of every channel of ``e``, as an operator (a gather).

    Any :class:`GridTransform` (a user's own included) has no geometry the all-size
    argument could use: expressions with it are decided at given sizes only.
    """

    def geometry(child: Any) -> Any:
        raise ConvAlgebraError(
            f"the {t.name}, given as a gather, is decided at given sizes only (size=, sizes=)"
        )

    # positions 1-based so that a zero fill reads as -1
    return Gather(e, lambda idx: t.apply(idx + 1) - 1, t.name, geometry, e.channels)


@dataclass(frozen=True)
class Decision:
    """``lhs == rhs`` at one size: the proof, the verdict for the kernels given (if any) and
    the flat output indices where the two sides differ (for every kernel: where the residual
    is not identically zero)."""

    lhs: ops.Op
    rhs: ops.Op
    size: tuple[int, ...]
    proof: ops.Proof
    holds: bool
    failing: np.ndarray
    given: dict[str, np.ndarray]
    largest: float = 0.0  # the largest |residual entry| at the given numeric kernels
    source: int = -1  # at the given kernels: a source of the first failing output it reads

    @property
    def n_terms(self) -> int:
        """Residual terms at this size (0 when it holds)."""
        r = self.proof.residual
        return 0 if r is None else int(r.out.size)


def decide(lhs: ops.Op, rhs: ops.Op, spec_or_size: Any, given: dict | None = None) -> Decision:
    """Decide ``lhs == rhs`` at the size of a spec's input (or a size tuple), for symbolic
    kernels; with ``given`` (kernel name to flat values, numbers or sympy), for those kernels.

    For given kernels the residual of the symbolic identity is evaluated at them: the law
    holds for them exactly when every residual entry vanishes (numbers: to 1e-9 of the
    largest value, as float kernels are given; sympy: after expansion).
    """
    size = (
        spec_or_size.input_shape[1:] if isinstance(spec_or_size, ConvSpec) else tuple(spec_or_size)
    )
    proof = ops.prove(lhs, rhs, size=size, witness=False)  # counterexamples: below
    given = dict(given or {})
    if proof.holds:
        return Decision(lhs, rhs, size, proof, True, np.zeros(0, np.int64), given)
    residual = proof.residual
    assert residual is not None
    if not given:
        return Decision(lhs, rhs, size, proof, False, np.unique(residual.out), given)
    rows, largest, source = _failing_for(residual, given)
    return Decision(lhs, rhs, size, proof, rows.size == 0, rows, given, largest, source)


def _symbol_values(residual: ops.Residual, given: dict[str, np.ndarray]) -> np.ndarray:
    total = sum(math.prod(s) for s in residual.symbol_shapes.values())
    symbolic = any(v.dtype == object for v in given.values())
    values = budget.zeros(total, dtype=object if symbolic else np.float64)
    for name, flat in given.items():
        start = residual.symbol_offsets[name]
        values[start : start + flat.size] = flat
    return values


def _failing_for(residual: ops.Residual, given: dict[str, np.ndarray]):
    """Output rows where ``Σ coeff · Π w`` over one ``(out, src)`` is not zero for ``given``,
    the largest such sum in absolute value (numeric kernels), and the source of the first."""
    if residual.out.size == 0:
        return np.zeros(0, np.int64), 0.0, -1
    values = _symbol_values(residual, given)
    product = residual.coeff.astype(values.dtype)
    for slot in range(residual.symbols.shape[1]):
        ids = residual.symbols[:, slot]
        used = ids >= 0
        factor = budget.ones(ids.size, dtype=values.dtype)
        factor[used] = values[ids[used]]
        product = product * factor
    pair = residual.out.astype(np.int64) * (int(residual.src.max()) + 1) + residual.src
    keys, inverse = np.unique(pair, return_inverse=True)
    if values.dtype != object:
        sums = np.bincount(inverse.ravel(), weights=product, minlength=keys.size) / residual.den
        scale = max(1.0, float(np.abs(values).max(initial=0.0)))
        bad = np.abs(sums) > 1e-9 * scale
        largest = float(np.abs(sums).max(initial=0.0))
    else:
        import sympy

        acc = [sympy.Integer(0)] * keys.size
        for k, v in zip(inverse.ravel().tolist(), product.tolist(), strict=True):
            acc[k] += v
        bad = np.array([sympy.expand(v) != 0 for v in acc], dtype=bool)
        largest = 0.0
    width = int(residual.src.max()) + 1
    first = int(keys[bad][0] % width) if bad.any() else -1
    return np.unique(keys[bad] // width), largest, first


def counterexample(
    d: Decision,
    names: tuple[str, str],
    rename: dict[str, str] | None = None,
    signals: tuple[str, ...] | None = None,
) -> Counterexample | None:
    """The failing decision's counterexample, evaluated by the expressions themselves.

    Without given kernels: the first residual term ``c · Π w[e] · x[src]`` read with a one-hot
    input at ``src`` and kernels one-hot at its entries ``e`` (their difference at that output
    is ``c``), or, should other terms cancel it, :func:`convalgebra.ops.prove`'s own; with
    given kernels, a one-hot input at a
    source of a failing output and those kernels (sympy symbols replaced by small integers
    until the sides differ). ``rename`` maps kernel names to the names the result shows;
    ``signals`` keeps only those inputs (a signal that only an adjoint binds reads nothing).
    """
    if d.holds:
        return None
    rename = rename or {}
    residual = d.proof.residual
    assert residual is not None
    one_hot = _one_hot_instance(d, residual) if not d.given else None
    if one_hot is not None:
        inputs, kernels, lhs, rhs, at = one_hot
    elif not d.given:
        ce = ops.prove(d.lhs, d.rhs, size=d.size).counterexample
        assert ce is not None
        inputs, kernels = ce.inputs, ce.kernels
        lhs, rhs = ce.lhs, ce.rhs
        at = ce.positions[0] if ce.positions else None
    else:
        inputs, kernels, lhs, rhs, at = _given_instance(d, residual)
    shown = {k: _floats(v) for k, v in inputs.items() if signals is None or k in signals}
    for name, value in kernels.items():
        shape = residual.symbol_shapes[name]
        shown[rename.get(name, name)] = _floats(np.asarray(value).reshape(shape))
    left, right = _floats(lhs), _floats(rhs)
    if at is None:
        text = f"{names[0]} and {names[1]} have different shapes: {left.shape} and {right.shape}"
    else:
        kind = (
            _one_hot_words(shown)
            if one_hot is not None
            else "with the integer input and kernel(s) shown"
        )
        text = (
            f"{kind}, {names[0]} and {names[1]} differ at "
            f"output {tuple(i + 1 for i in at)} (1-based; {left[at]:g} vs {right[at]:g})"
        )
    return Counterexample(shown, left, right, at, text)


def _one_hot_words(shown: dict[str, np.ndarray]) -> str:
    """Where each one-hot array has its 1, 1-based: ``x = 1 at (1, 2, 3) only``."""
    where = []
    for name, value in shown.items():
        nonzero = np.argwhere(value)
        at = "nowhere" if not len(nonzero) else f"at {tuple(int(i) + 1 for i in nonzero[0])}"
        where.append(f"{name} = 1 {at}" if len(nonzero) <= 1 else f"{name} as shown")
    return "with " + ", ".join(where) + " and 0 elsewhere"


def _one_hot_inputs(residual: ops.Residual, src: int) -> dict[str, np.ndarray]:
    inputs = {}
    for name, shape in residual.signal_shapes.items():
        start = residual.signal_offsets[name]
        flat = budget.zeros(math.prod(shape), dtype=np.int64)
        if start <= src < start + flat.size:
            flat[src - start] = 1
        inputs[name] = flat.reshape(shape)
    return inputs


def _one_hot_instance(d: Decision, residual: ops.Residual):
    """One-hot input and kernels at the first residual term, if the sides then differ."""
    if residual.out.size == 0:
        return None
    hot = residual.symbols[0][residual.symbols[0] >= 0]
    kernels = {}
    for name, shape in residual.symbol_shapes.items():
        start = residual.symbol_offsets[name]
        flat = budget.zeros(math.prod(shape), dtype=np.int64)
        mine = hot[(hot >= start) & (hot < start + flat.size)]
        flat[mine - start] = 1
        kernels[name] = flat
    inputs = _one_hot_inputs(residual, int(residual.src[0]))
    lhs, rhs = d.proof.evaluate_failing(inputs, kernels)
    bad = np.argwhere(lhs != rhs) if lhs.shape == rhs.shape else np.zeros((0, 1))
    if bad.size == 0:
        return None
    return inputs, kernels, lhs, rhs, tuple(int(v) for v in bad[0])


def _floats(value: Any) -> np.ndarray:
    return np.asarray(np.asarray(value, dtype=object).tolist(), dtype=float)


def _given_instance(d: Decision, residual: ops.Residual):
    """One-hot input at a source of the first failing output; the given kernels (symbols
    replaced by small integers, seeded, until the two sides differ)."""
    inputs = _one_hot_inputs(residual, d.source)
    rng = np.random.default_rng(0)
    for _ in range(50):
        kernels = {k: numeric_kernel(v, rng) for k, v in d.given.items()}
        full = {
            **kernels,
            **{k: _ones(s) for k, s in residual.symbol_shapes.items() if k not in kernels},
        }
        lhs, rhs = d.proof.evaluate_failing(inputs, full)
        if lhs.shape != rhs.shape:
            return inputs, kernels, lhs, rhs, None
        bad = np.argwhere(lhs != rhs)
        if bad.size:
            return inputs, kernels, lhs, rhs, tuple(int(v) for v in bad[0])
    raise ConvAlgebraError("internal: no numeric kernel separates the two sides")


def _ones(shape: tuple[int, ...]) -> np.ndarray:
    return budget.ones(math.prod(shape), dtype=np.int64)


def numeric_kernel(flat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A given kernel's numbers; sympy symbols replaced by small random integers."""
    if flat.dtype != object:
        return flat
    free = sorted(set().union(*[v.free_symbols for v in flat]), key=str)
    values = dict(zip(free, rng.integers(-3, 4, len(free)).tolist(), strict=True))
    return np.array([float(v.subs(values)) for v in flat])


def kernel_system(d: Decision, name: str, n_w: int) -> SparseSystem:
    """The residual of a degree-1 identity as equations on kernel ``name`` (``n_w`` entries):
    one equation per output and source, ``Σ coeff · w[entry] = 0`` (none when it holds)."""
    residual = d.proof.residual
    if residual is None or residual.out.size == 0:
        empty = np.zeros(0, np.int64)
        return SparseSystem(empty, empty, empty, n_w)
    pair = residual.out.astype(np.int64) * (int(residual.src.max()) + 1) + residual.src
    _, row = np.unique(pair, return_inverse=True)
    col = residual.symbols[:, -1] - residual.symbol_offsets[name]
    return SparseSystem(row.ravel(), col.astype(np.int64), residual.coeff.astype(np.int64), n_w)
