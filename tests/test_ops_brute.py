"""``ops.prove`` against brute force: both sides evaluated in torch at every size.

Random identities are drawn as a chain of operators (every operator and option of
``convalgebra.ops``) and a rewrite of it (a stride moved into a subsampling, a dilation into
the kernel, a padding into ``pad``, a padding mode changed, two steps exchanged, a parameter
changed, a step dropped), so that both sides agree at some sizes and differ at others. At
every size from 1 to four times the proof's threshold, torch evaluates both sides on random
integer inputs and kernels: the sizes where torch finds both defined and equal must be
exactly ``proof.sizes``, where both are defined exactly ``proof.defined``, and the
counterexample must reproduce in torch.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)

from ops_oracle import OracleUndefined, evaluate  # noqa: E402

from convalgebra import ops  # noqa: E402

_SETTINGS = settings(
    max_examples=max(10, settings().max_examples // 5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# ------------------------------------------------------------------ chains of operators
def _step(c: int):
    k = st.integers(1, 4)
    return st.one_of(
        st.tuples(
            st.just("conv"),
            k,
            st.integers(1, 3),
            st.integers(0, 2),
            st.integers(1, 2),
            st.sampled_from(["zeros", "circular", "reflect", "replicate"]),
            st.sampled_from([1, c]),
            st.sampled_from("vw"),
        ),
        st.tuples(st.just("same"), k, st.sampled_from("vw")),
        st.tuples(
            st.just("convT"),
            k,
            st.integers(1, 3),
            st.integers(0, 2),
            st.integers(0, 2),
            st.sampled_from("vw"),
        ),
        st.tuples(
            st.just("avg"),
            st.integers(1, 3),
            st.integers(1, 3),
            st.integers(0, 1),
            st.booleans(),
            st.booleans(),
        ),
        st.tuples(
            st.just("pad"),
            st.integers(0, 2),
            st.integers(0, 2),
            st.sampled_from(["constant", "reflect", "replicate", "circular"]),
        ),
        st.tuples(st.just("crop"), st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("shift"), st.integers(-2, 2), st.sampled_from(["zeros", "circular"])),
        st.tuples(st.just("flip")),
        st.tuples(st.just("sub"), st.integers(1, 3), st.integers(0, 2)),
        st.tuples(st.just("upz"), st.integers(1, 3)),
        st.tuples(st.just("upn"), st.integers(1, 2)),
        st.tuples(st.just("shuffle"), st.just(2)),
        st.tuples(st.just("residual"), st.integers(-1, 1)),
    )


def build(steps, c: int, x=None):
    """The expression of a chain of steps over a ``c``-channel 1-D signal."""
    e = x if x is not None else ops.signal(channels=c)
    for step in steps:
        e = apply_step(e, step)
    return e


def _kernel(name: str, shape) -> ops.Kernel:
    return ops.kernel(f"{name}{'_'.join(map(str, shape))}", shape)


def apply_step(e, step):  # noqa: C901 - one branch per operator
    kind, *a = step
    c = e.channels
    if kind == "conv":
        k, s, p, d, mode, groups, name = a
        groups = groups if c % groups == 0 else 1
        return ops.conv(
            e,
            _kernel(name, (c, c // groups, k)),
            stride=s,
            padding=p,
            dilation=d,
            groups=groups,
            padding_mode=mode,
        )
    if kind == "conv_dilated_kernel":
        k, s, p, d, mode, groups, name = a
        groups = groups if c % groups == 0 else 1
        w = ops.dilate_kernel(_kernel(name, (c, c // groups, k)), d)
        return ops.conv(e, w, stride=s, padding=p, groups=groups, padding_mode=mode)
    if kind == "same":
        k, name = a
        return ops.conv(e, _kernel(name, (c, c, k)), padding="same")
    if kind == "same_enlarged":
        k, name = a
        return ops.conv(e, ops.enlarge_kernel(_kernel(name, (c, c, k)), k + 2), padding="same")
    if kind == "convT":
        k, s, p, op, name = a
        op = min(op, s - 1)
        return ops.conv_transpose(
            e, _kernel(name, (c, c, k)), stride=s, padding=p, output_padding=op
        )
    if kind == "avg":
        k, s, p, ceil, cip = a
        p = min(p, k // 2)
        return ops.avg_pool(e, k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip)
    if kind == "avg_as_conv":
        k, s, p = a
        w = ops.constant(np.full((c, 1, k), Fraction(1, k), dtype=object))
        return ops.conv(e, w, stride=s, padding=p, groups=c)
    if kind == "pad":
        return ops.pad(e, (a[0], a[1]), mode=a[2])
    if kind == "crop":
        return ops.crop(e, (a[0], a[1]))
    if kind == "shift":
        return ops.shift(e, a[0], mode=a[1])
    if kind == "flip":
        return ops.flip(e, 1)
    if kind == "sub":
        return ops.subsample(e, a[0], a[1])
    if kind == "upz":
        return ops.upsample_zeros(e, a[0])
    if kind == "upn":
        return ops.upsample_nearest(e, a[0])
    if kind == "shuffle":
        return ops.pixel_shuffle(ops.pixel_unshuffle(e, a[0]), a[0])
    if kind == "unshuffle_only":
        return ops.pixel_unshuffle(e, a[0])[0:c]
    if kind == "residual":
        return e + ops.shift(e, a[0], mode="circular")
    raise AssertionError(kind)


def rewrite(steps, draw):  # noqa: C901 - one branch per rewrite
    """A rewrite of one step (or of two adjacent steps) of the chain."""
    steps = list(steps)
    if not steps:
        return steps
    i = draw(st.integers(0, len(steps) - 1))
    kind, *a = steps[i]
    choice = draw(st.integers(0, 5))
    if choice == 0 and i + 1 < len(steps):
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
    elif choice == 1:
        del steps[i]
    elif kind == "conv" and choice == 2 and a[1] > 1:
        steps[i : i + 1] = [("conv", a[0], 1, *a[2:]), ("sub", a[1], 0)]
    elif kind == "conv" and choice == 3:
        steps[i] = ("conv_dilated_kernel", *a)
    elif kind == "conv" and choice == 4 and a[4] == "zeros":
        steps[i : i + 1] = [("pad", a[2], a[2], "constant"), ("conv", a[0], a[1], 0, *a[3:])]
    elif kind == "conv":
        steps[i] = ("conv", *a[:4], draw(st.sampled_from(["zeros", "circular", "reflect"])), *a[5:])
    elif kind == "same":
        steps[i] = ("same_enlarged", *a)
    elif kind == "avg" and not a[3] and a[4]:
        steps[i] = ("avg_as_conv", a[0], a[1], min(a[2], a[0] // 2))
    elif kind in ("pad", "shift"):
        modes = ["constant", "circular", "replicate"] if kind == "pad" else ["zeros", "circular"]
        steps[i] = (kind, *a[:-1], draw(st.sampled_from(modes)))
    elif kind == "sub":
        steps[i] = ("sub", a[0], draw(st.integers(0, 2)))
    elif kind == "shuffle":
        steps[i] = ("unshuffle_only", 2)
    else:
        steps.insert(i, ("shift", 1, "circular"))
    return steps


@st.composite
def identities(draw):
    c = draw(st.integers(1, 2))
    lhs = draw(st.lists(_step(c), min_size=1, max_size=3))
    rhs = lhs
    for _ in range(draw(st.integers(1, 2))):
        rhs = rewrite(rhs, draw)
    return c, lhs, rhs


def _built(c, lhs, rhs):
    x = ops.signal(channels=c)
    try:
        return build(lhs, c, x), build(rhs, c, x)
    except ValueError:  # an option the operator refuses at construction (clear error)
        return None


# ------------------------------------------------------------------ brute force
def torch_status(lhs, rhs, n: int, seed: int) -> str:
    """``"undefined"``, ``"holds"`` or ``"fails"`` at size ``n``, by torch on random integers."""
    rng = np.random.default_rng(seed)
    for _ in range(3):
        try:
            x = _inputs(lhs, rhs, n, rng)
        except OracleUndefined:
            return "undefined"
        values = {  # non-zero entries: a zero kernel would make every identity hold
            name: rng.choice([-9, -7, -5, -3, -2, -1, 1, 2, 3, 5, 7, 9], shape)
            for name, shape in _kernels(lhs, rhs).items()
        }
        try:
            a, b = evaluate(lhs, x, values), evaluate(rhs, x, values)
        except OracleUndefined:
            return "undefined"
        if a.shape != b.shape or not torch.allclose(a, b, rtol=0, atol=1e-7):
            return "fails"
    return "holds"


def _inputs(lhs, rhs, n: int, rng) -> dict:
    """``x`` of size ``n``, and every signal an adjoint binds at the shape torch gives its
    expression there."""
    from convalgebra.ops.expressions import walk

    inputs = {"x": rng.integers(-9, 10, (_signal_channels(lhs, rhs), n))}
    ones = {name: np.ones(shape) for name, shape in _kernels(lhs, rhs).items()}
    for node in walk(lhs) + walk(rhs):
        target = getattr(node, "target", None)
        if hasattr(node, "expr") and target is not None and target.name not in inputs:
            shape = tuple(evaluate(node.expr, inputs, ones).shape)
            inputs[target.name] = rng.integers(-9, 10, shape)
    return inputs


def _signal_channels(lhs, rhs) -> int:
    from convalgebra.ops.expressions import Signal, walk

    return next(n.channels for n in walk(lhs) + walk(rhs) if isinstance(n, Signal))


def _kernels(lhs, rhs) -> dict:
    from convalgebra.ops.expressions import walk

    found = {}
    for node in walk(lhs) + walk(rhs):
        for k in node.kernels():
            found.update(k.symbols())
    return found


def check_against_torch(lhs, rhs, proof, sizes) -> None:
    for n in sizes:
        status = torch_status(lhs, rhs, n, seed=n)
        assert (n in proof.defined) == (status != "undefined"), (n, status, str(proof.defined))
        assert (n in proof.sizes) == (status == "holds"), (n, status, str(proof.sizes))
    ce = proof.counterexample
    assert (ce is None) == proof.holds
    if ce is not None:
        values = {k: np.asarray(v, dtype=np.int64) for k, v in ce.kernels.items()}
        a = evaluate(lhs, ce.inputs, values)
        b = evaluate(rhs, ce.inputs, values)
        assert a.shape == ce.lhs.shape and b.shape == ce.rhs.shape
        assert np.allclose(a.numpy(), ce.lhs.astype(float)) and np.allclose(
            b.numpy(), ce.rhs.astype(float)
        )
        if a.shape == b.shape:
            differ = {
                tuple(int(v) for v in p) for p in np.argwhere(~np.isclose(a.numpy(), b.numpy()))
            }
            assert differ == set(ce.positions) and differ
        smaller = [n for n in range(1, ce.size[0]) if n in proof.defined]
        assert all(n in proof.sizes for n in smaller)


@_SETTINGS
@given(identities())
@example(
    (
        1,
        [("conv", 3, 2, 1, 1, "zeros", 1, "w")],
        [("conv", 3, 1, 1, 1, "zeros", 1, "w"), ("sub", 2, 0)],
    )
)
@example(
    (
        2,
        [("conv", 2, 1, 0, 2, "circular", 2, "v")],
        [("conv_dilated_kernel", 2, 1, 0, 2, "circular", 2, "v")],
    )
)
@example((1, [("shuffle", 2), ("flip",)], [("flip",), ("shuffle", 2)]))
def test_prove_equals_torch_at_every_size(case):
    c, lhs_steps, rhs_steps = case
    built = _built(c, lhs_steps, rhs_steps)
    if built is None or built[0].channels != built[1].channels:
        return
    lhs, rhs = built
    try:
        proof = ops.prove(lhs, rhs)
    except ValueError as exc:
        assert (
            "not both defined at any size" in str(exc)
            or "different rates" in str(exc)
            or "output channels" in str(exc)
        )
        return
    top = 4 * proof.thresholds[0] + 2 * proof.periods[0]
    check_against_torch(lhs, rhs, proof, range(1, top + 1))


y1 = ops.signal(name="y")
_w = ops.kernel("w", (1, 1, 3))
ADJOINTS = [
    (ops.adjoint(ops.conv(ops.signal(), _w, stride=2), y1), ops.conv_transpose(y1, _w, stride=2)),
    (
        ops.adjoint(ops.conv(ops.signal(), _w, stride=2), y1),
        ops.conv_transpose(y1, _w, stride=2, output_padding=1),
    ),
    (
        ops.adjoint(ops.conv(ops.signal(), _w, stride=3, padding=1), y1),
        ops.conv_transpose(y1, _w, stride=3, padding=1, output_padding=2),
    ),
    (
        ops.adjoint(ops.conv(ops.signal(), _w, padding=1, padding_mode="circular")),
        ops.conv(ops.signal(), ops.flip_kernel(_w), padding=1, padding_mode="circular"),
    ),
    (
        ops.adjoint(ops.subsample(ops.shift(ops.signal(), 1), 2), y1),
        ops.shift(ops.upsample_zeros(y1, 2), -1),
    ),
    (
        ops.adjoint(ops.conv(ops.signal(), _w, padding=1, padding_mode="reflect")),
        ops.conv_transpose(ops.signal(), _w, padding=1),
    ),
]


@pytest.mark.parametrize("lhs, rhs", ADJOINTS, ids=[f"adjoint-{i}" for i in range(len(ADJOINTS))])
def test_adjoint_identities_equal_torch_autograd_at_every_size(lhs, rhs):
    proof = ops.prove(lhs, rhs)
    top = 4 * proof.thresholds[0] + 2 * proof.periods[0]
    check_against_torch(lhs, rhs, proof, range(1, top + 1))
