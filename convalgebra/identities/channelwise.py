"""Laws whose transformation acts on space only, the same way on every channel, decided on
one channel pair.

A multi-channel layer with a symbolic kernel and a law ``conv(T x) == T' conv(x)`` whose ``T``
and ``T'`` move positions within each channel (translations, rotations, flips,
transpositions, rescaling) reduce exactly to the layer with one input and one output
channel: :func:`decide_channelwise` decides that layer and expands its verdict, failing
positions, counterexample and kernel constraints to the whole layer.

Notes
-----
For an ordinary layer (no tile, no channel table; any groups, transposed or not) the matrix
is a block matrix whose ``(o, c)`` block, for ``c`` in ``o``'s group, is the same spatial
operator ``A(w[o, c])`` of that pair's kernel slice (``A(w[c, o])`` in the transposed
layout), and zero otherwise; the transformations are ``I_C ⊗ T``. So the residual
``M(w) (I ⊗ T) - (I ⊗ T') M(w)`` has the blocks ``A(w[o, c]) T - T' A(w[o, c])``. With a
symbolic kernel the slices are distinct symbols, and residual entries of different blocks
neither meet nor cancel (they read different inputs ``x[c]`` and different symbols), so the
law fails at output ``(o, p)`` exactly when the single-channel residual ``A(v) T - T' A(v)``
is not zero in row ``p``: every output channel fails at the same spatial positions as the
1 → 1 layer (same kernel size, stride, padding, dilation, padding mode, transposition,
output padding, flip; the laws decide the linear map ``M(w)``, so a bias takes no part).
The kernels for which it holds are the 1 → 1 ones on every pair
(the basis is ``I ⊗ B``), and the 1 → 1 counterexample, put at channel pair ``(0, 0)`` with
every other kernel slice and input channel zero, gives output channel 0 of the whole layer
the 1 → 1 sides and every other output channel zero on both sides. Given kernels keep the
full route (they are evaluated on the whole residual).

Examples
--------
>>> from convalgebra.spec import ConvSpec
>>> from convalgebra.identities.common import positions
>>> from convalgebra.identities.decide import layer, spec_kernel
>>> spec = ConvSpec((3, 6), 2, 3, padding=1)
>>> def law(s):
...     x, w = ops.signal(s.in_channels, s.ndim), spec_kernel("weight", s)
...     return layer(ops.shift(x, (1,)), w, s), ops.shift(layer(x, w, s), (1,))
>>> d = decide_channelwise(law, spec)
>>> d.holds, positions(d.failing, spec.output_shape), d.n_terms
(False, ((0, 0), (0, 5), (1, 0), (1, 5)), 12)
>>> with full_route():
...     full = decide_channelwise(law, spec)
>>> positions(full.failing, spec.output_shape) == positions(d.failing, spec.output_shape)
True
>>> full.n_terms
12
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .. import budget, ops
from ..spec import ConvSpec
from . import decide as decide_module
from .common import is_plain
from .constraints import integer_nullspace
from .decide import Decision, decide, kernel_system
from .result import Counterexample

__all__ = [
    "ChannelDecision",
    "full_route",
    "single_channel",
    "decide_channelwise",
    "counterexample",
    "kernel_nullspace",
    "LAWS",
    "decided_spec",
    "POSITION_BYTES",
]

#: the laws whose transformation acts on every channel alike (reducible to one channel pair)
LAWS = frozenset(
    {
        "translation_equivariance",
        "rotation_equivariance",
        "flip_equivariance",
        "transposition_equivariance",
        "scale_equivariance",
    }
)

#: bytes of one failing position as the result holds it (a tuple of ints; measured ~105)
POSITION_BYTES = 128

_FULL = contextvars.ContextVar("convalgebra_full_route", default=False)


@contextlib.contextmanager
def full_route() -> Iterator[None]:
    """Decide channel-wise laws on the whole layer (no reduction) inside this block; the
    reduction is exact, this is the reference it is compared with."""
    token = _FULL.set(True)
    try:
        yield
    finally:
        _FULL.reset(token)


def single_channel(spec: ConvSpec) -> ConvSpec:
    """``spec`` with one input and one output channel, groups 1, every other option kept.

    >>> single_channel(ConvSpec((4, 5, 5), 6, 3, groups=2, padding=1)).describe() == (
    ...     ConvSpec((1, 5, 5), 1, 3, padding=1).describe())
    True
    """
    return replace(spec, input_shape=(1, *spec.input_shape[1:]), out_channels=1, groups=1)


Law = Callable[[ConvSpec], tuple[ops.Op, ops.Op]]


@dataclass(frozen=True)
class ChannelDecision:
    """A channel-wise law decided on the 1 → 1 layer ``one`` and expanded to ``spec``:
    ``failing`` are flat indices into the whole output (``(C_out, *spatial)``)."""

    lhs: ops.Op
    rhs: ops.Op
    spec: ConvSpec
    one: Decision
    holds: bool
    failing: np.ndarray
    out_shape: tuple[int, ...]

    @property
    def pairs(self) -> int:
        """The channel pairs the kernel holds (``weight_shape[0] * weight_shape[1]``)."""
        return self.spec.weight_shape[0] * self.spec.weight_shape[1]

    @property
    def n_terms(self) -> int:
        """Residual terms of the whole layer: the 1 → 1 ones on every channel pair."""
        return self.pairs * self.one.n_terms


def _reducible(spec: ConvSpec, given: object) -> bool:
    return given is None and is_plain(spec) and not _FULL.get()


def decided_spec(law: str, spec: ConvSpec, options: dict) -> ConvSpec:
    """The layer whose products ``law`` lowers: the 1 → 1 layer where it reduces (a
    channel-wise law, a symbolic kernel, no channel permutation, an ordinary layer), else
    ``spec`` (what a budget is checked on).

    >>> decided_spec("rotation_equivariance", ConvSpec((8, 6, 6), 4, 3), {}).in_channels
    1
    >>> decided_spec("rotation_equivariance", ConvSpec((8, 6, 6), 4, 3), {"out_perm": [1, 0, 2, 3]}).in_channels
    8
    """
    permuted = options.get("in_perm") is not None or options.get("out_perm") is not None
    if law in LAWS and not permuted and _reducible(spec, options.get("weight")):
        return single_channel(spec)
    return spec


def decide_channelwise(
    law: Law, spec: ConvSpec, given: dict | None = None, *, out_shape: tuple | None = None
) -> Decision | ChannelDecision:
    """Decide the law ``law(spec)`` (its two sides), on one channel pair where exact.

    ``law`` builds both sides for a spec; the transformation must act on every channel
    alike (no channel permutation). ``given`` kernels, tiles, channel tables and
    :func:`full_route` decide the whole layer. ``out_shape`` is the whole output shape of the
    left side (default ``spec.output_shape``).

    Notes
    -----
    ``M = Σ_(o,c) E_oc ⊗ A(w[o, c])`` over the pairs of a group and the transformations are
    ``I ⊗ T``, ``I ⊗ T'``, so ``M (I ⊗ T) - (I ⊗ T') M = Σ E_oc ⊗ (A(w[o, c]) T - T' A(w[o, c]))``:
    with distinct symbols per pair no two blocks share a term, and row ``(o, p)`` is zero iff
    row ``p`` of the 1 → 1 residual ``A(v) T - T' A(v)`` is. Failing outputs: ``{o · n + p}``
    for every output channel ``o`` and failing 1 → 1 position ``p`` (``n`` spatial outputs);
    residual terms: the 1 → 1 count times the pairs.
    """
    if not _reducible(spec, given or None):
        lhs, rhs = law(spec)
        return decide(lhs, rhs, spec, given)
    lhs, rhs = law(spec)  # the whole layer's sides (the identity shown), not lowered
    one = decide(*law(single_channel(spec)), spec)
    out_shape = out_shape or spec.output_shape
    n_sp = math.prod(out_shape[1:])
    budget.require_array(
        "the failing output positions (every output channel times the failing positions of "
        "one channel)",
        (out_shape[0], one.failing.size),
        POSITION_BYTES,
        alternative="use smaller sizes, or check the single-channel layer "
        "(channelwise.single_channel(spec)): every output channel fails where it fails",
    )
    failing = budget.empty((out_shape[0], one.failing.size), np.int64, what="failing outputs")
    np.add(
        np.arange(out_shape[0], dtype=np.int64)[:, None] * n_sp, one.failing[None, :], out=failing
    )
    return ChannelDecision(lhs, rhs, spec, one, one.holds, failing.ravel(), tuple(out_shape))


def counterexample(d: Decision | ChannelDecision, names: tuple[str, str]) -> Counterexample | None:
    """The counterexample of either decision; a reduced one is the 1 → 1 counterexample at
    channel pair ``(0, 0)`` of the whole layer (every other slice and channel zero)."""
    if isinstance(d, Decision):
        return decide_module.counterexample(d, names)
    one = decide_module.counterexample(d.one, names)
    if one is None:
        return None
    spec = d.spec
    x = budget.zeros(spec.input_shape, what="the counterexample input")
    x[0] = np.asarray(one.inputs["x"])[0]
    w = budget.zeros(spec.weight_shape, what="the counterexample kernel")
    w[0, 0] = np.asarray(one.inputs["weight"])[0, 0]
    sides = []
    for side in (one.lhs, one.rhs):
        whole = budget.zeros((d.out_shape[0], *side.shape[1:]), what="the counterexample sides")
        whole[0] = side[0]
        sides.append(whole)
    lhs, rhs = sides
    return Counterexample({"x": x, "weight": w}, lhs, rhs, one.position, one.description)


def kernel_nullspace(d: Decision | ChannelDecision, name: str = "weight") -> sp.csr_matrix:
    """Integer basis (rows) of the kernels for which the failing law holds: of the whole
    residual, or ``I ⊗ B`` for the 1 → 1 basis ``B`` on every channel pair."""
    if isinstance(d, Decision):
        n_w = sum(math.prod(s) for k, s in _shapes(d).items() if k == name)
        return integer_nullspace(kernel_system(d, name, n_w))
    n_one = math.prod(single_channel(d.spec).weight_shape)
    one = integer_nullspace(kernel_system(d.one, name, n_one))
    return sp.csr_matrix(sp.kron(sp.identity(d.pairs, dtype=np.int64, format="csr"), one))


def _shapes(d: Decision) -> dict:
    residual = d.proof.residual
    assert residual is not None
    return residual.symbol_shapes
