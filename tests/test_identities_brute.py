"""Every identity law and the equivariant-kernel solver against brute force in PyTorch.

The brute force builds dense matrices with torch's own ops (one-hot inputs and kernels) and
applies torch tensor operations for the grid transformations; it shares no index arithmetic
with the library.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")

from brute_identities import (  # noqa: E402
    assert_sides_differ,
    batched_conv,
    blind_dimension,
    dense_layer,
    dense_transform,
    equivariance_dimension,
)
from oracle import torch  # noqa: E402
from strategies import conv_specs  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra.identities import composed_kernel, composed_spec  # noqa: E402

# ---------------------------------------------------------------------------------------------
# layers and symmetries drawn over every option


def _pair(draw, nd):
    return draw(st.sampled_from([(a, b) for a in range(nd) for b in range(nd) if a != b]))


@st.composite
def symmetry_cases(draw, max_weights=16):
    """(spec, transform name, options, in_perm, out_perm) with grids the symmetry maps onto
    themselves; any stride, dilation, asymmetric padding, mode, groups, flip, transposed."""
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    transform = (
        "flip"
        if nd == 1
        else draw(st.sampled_from(["rotation", "flip", "transposition", "dihedral"]))
    )
    options: dict = {}
    square: tuple = ()
    if transform == "rotation":
        options = {"k": draw(st.integers(1, 3)), "axes": _pair(draw, nd)}
        square = options["axes"]
    elif transform in ("transposition", "dihedral"):
        options = {"axes": _pair(draw, nd)}
        square = options["axes"]
    else:
        options = {"axis": draw(st.integers(0, nd - 1))}
    small = nd == 3
    n = draw(st.integers(1, 3 if small else 6))
    size = [n if a in square else draw(st.integers(1, 3 if small else 6)) for a in range(nd)]
    groups = draw(st.sampled_from([1, 1, 2]))
    cin = groups * draw(st.integers(1, 2 // groups + (groups == 1)))
    cout = groups * draw(st.integers(1, 2 // groups + (groups == 1)))
    transposed = draw(st.integers(0, 4)) == 0
    mode = (
        "zeros"
        if transposed
        else draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    )
    uniform = draw(st.booleans())
    k0, s0, d0 = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(k0 if uniform else draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(s0 if uniform else draw(st.integers(1, 2)) for _ in range(nd))
    dilation = tuple(d0 if uniform else draw(st.integers(1, 2)) for _ in range(nd))
    pads = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    padding = tuple(
        (pads if uniform else (draw(st.integers(0, 3)), draw(st.integers(0, 3)))) for _ in range(nd)
    )
    if transposed:
        padding = tuple((b, b) for b, _ in padding)
    elif draw(st.integers(0, 4)) == 0:
        padding = "same"
        stride = (1,) * nd
    try:
        spec = ca.ConvSpec(
            (cin, *size),
            cout,
            kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            padding_mode=mode,
            transposed=transposed,
            flip=draw(st.booleans()),
            bias=False,
        )
    except ca.ConvAlgebraError:
        assume(False)
    out = spec.output_shape[1:]
    assume(all(out[a] == out[square[0]] for a in square))
    assume(math.prod(spec.weight_shape) <= max_weights and math.prod(spec.input_shape) <= 50)
    assume(math.prod(spec.output_shape) <= 50)
    c_in, c_out = spec.input_shape[0], spec.output_shape[0]
    in_perm = out_perm = None
    if draw(st.booleans()):
        in_perm = draw(st.permutations(range(c_in)))
        out_perm = draw(st.permutations(range(c_out)))
    return spec, transform, options, in_perm, out_perm


def _torch_generators(transform: str, options: dict):
    """The generators as torch ops on a batch (N, C, *spatial)."""
    if transform == "rotation":
        a, b = options["axes"]
        return [lambda e: torch.rot90(e, options["k"], dims=(2 + a, 2 + b))]
    if transform == "flip":
        return [lambda e: torch.flip(e, dims=(2 + options["axis"],))]
    a, b = options["axes"]
    if transform == "transposition":
        return [lambda e: e.transpose(2 + a, 2 + b)]
    return [
        lambda e: torch.rot90(e, 1, dims=(2 + a, 2 + b)),
        lambda e: torch.flip(e, dims=(2 + a,)),
    ]


def _brute_pairs(spec, transform, options, in_perm, out_perm):
    ops = _torch_generators(transform, options)
    return (
        [dense_transform(spec.input_shape, op, in_perm) for op in ops],
        [dense_transform(spec.output_shape, op, out_perm) for op in ops],
    )


def _equivariant(spec, p_in, p_out, w) -> bool:
    m = dense_layer(spec, np.asarray(w, dtype=float).reshape(spec.weight_shape))
    return all(np.array_equal(q @ m, m @ p) for p, q in zip(p_in, p_out, strict=True))


_ISSUE_CASES = [  # layers on which the kernel-grid answer was wrong
    ca.ConvSpec((1, 6, 6), 1, 4, padding="same", bias=False),
    ca.ConvSpec((1, 4, 4), 1, 1, stride=2, bias=False),
    ca.ConvSpec((1, 6, 6), 1, 3, padding=((2, 1), (2, 1)), dilation=2, bias=False),
    ca.ConvSpec((1, 4, 4), 1, 4, padding="same", dilation=2, padding_mode="reflect", bias=False),
]


@settings(max_examples=15)
@given(symmetry_cases(), st.integers(0, 2**31 - 1))
@example((_ISSUE_CASES[0], "rotation", {"k": 1, "axes": (0, 1)}, None, None), 0)
@example((_ISSUE_CASES[1], "rotation", {"k": 1, "axes": (0, 1)}, None, None), 0)
@example((_ISSUE_CASES[2], "rotation", {"k": 1, "axes": (0, 1)}, None, None), 0)
@example((_ISSUE_CASES[3], "rotation", {"k": 1, "axes": (0, 1)}, None, None), 0)
def test_equivariant_kernels_against_brute_force(case, seed):
    spec, transform, options, in_perm, out_perm = case
    ek = ca.equivariant_kernels(spec, transform, in_perm=in_perm, out_perm=out_perm, **options)
    p_in, p_out = _brute_pairs(spec, transform, options, in_perm, out_perm)
    assert ek.dimension == equivariance_dimension(spec, p_in, p_out)
    assert ek.blind_vectors.shape[0] == blind_dimension(spec)
    for b in ek.vectors.toarray():
        assert _equivariant(spec, p_in, p_out, b)
    for b in ek.blind_vectors.toarray():
        assert not dense_layer(spec, b.reshape(spec.weight_shape)).any()
    if ek.grid_vectors is not None:
        assert ek.grid_symmetric == all(
            _equivariant(spec, p_in, p_out, b) for b in ek.grid_vectors.toarray()
        )
    rng = np.random.default_rng(seed)
    member = (
        rng.integers(-3, 4, ek.dimension) @ ek.vectors.toarray()
        if ek.dimension
        else np.zeros(math.prod(spec.weight_shape), dtype=np.int64)
    )
    assert ek.contains(member.reshape(spec.weight_shape))
    other = rng.integers(-3, 4, math.prod(spec.weight_shape))
    assert ek.contains(other.reshape(spec.weight_shape)) == _equivariant(spec, p_in, p_out, other)


# ---------------------------------------------------------------------------------------------
# brute-force residuals: union over one-hot kernels of the rows where the two sides differ


def _one_hots(shape):
    n = math.prod(shape)
    for k in range(n):
        w = np.zeros(n)
        w[k] = 1.0
        yield w.reshape(shape)


def _failing_rows(residuals) -> set:
    """Flat rows where any residual matrix is non-zero (exact: integer data)."""
    rows: set = set()
    for d in residuals:
        rows |= set(np.flatnonzero(np.any(np.rint(d) != 0, axis=1)).tolist())
    return rows


def _flat(positions, shape) -> set:
    return {int(np.ravel_multi_index(p, shape)) for p in positions or ()}


def _weights(draw, spec):
    """None (the generic kernel) or a random integer kernel."""
    if draw(st.booleans()):
        return None
    n = math.prod(spec.weight_shape)
    return np.array(
        draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)), dtype=float
    ).reshape(spec.weight_shape)


def _torch_shift(delta, circular):
    def op(e):
        for a, d in enumerate(delta):
            if not d:
                continue
            dim = 2 + a
            e = torch.roll(e, d, dims=dim)
            if not circular:
                n = e.shape[dim]
                cut = (
                    e.narrow(dim, 0, min(d, n))
                    if d > 0
                    else e.narrow(dim, max(n + d, 0), min(-d, n))
                )
                cut.zero_()
        return e

    return op


@st.composite
def translation_cases(draw):
    spec = draw(conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=2, bias=None))
    if spec.transposed:
        assume(all(b == a for b, a in spec.padding))
    assume(math.prod(spec.weight_shape) <= 24 and math.prod(spec.input_shape) <= 60)
    assume(math.prod(spec.output_shape) <= 80)
    n = spec.input_shape[1:]
    assume(max(n) > 1)
    if draw(st.booleans()):
        axis = draw(st.integers(0, spec.ndim - 1))
        assume(n[axis] > 1)
        amount = draw(st.integers(-(n[axis] - 1), n[axis] - 1).filter(bool))
        options = {"shift": amount, "axis": axis}
        delta = tuple(amount if a == axis else 0 for a in range(spec.ndim))
    else:
        delta = tuple(draw(st.integers(-(m - 1), m - 1)) for m in n)
        options = {"shift": delta}
    options["boundary"] = draw(st.sampled_from([None, "zeros", "circular"]))
    return spec, delta, options, _weights(draw, spec)


def _assert_layer_sides(r, spec, left, p_in, p_out):
    """A failing check's counterexample: conv_left(P x) and Q conv(x), evaluated by torch."""
    assert (r.counterexample is None) == r.holds
    if r.counterexample is None:
        return
    ce = r.counterexample
    x, w = np.asarray(ce.inputs["x"], dtype=float).ravel(), ce.inputs["weight"]
    lhs = dense_layer(left, w) @ (p_in @ x)
    assert_sides_differ(ce, lhs, p_out @ (dense_layer(spec, w) @ x))


def _layer_residuals(spec, weight, p_in, p_out, left=None):
    left = spec if left is None else left
    kernels = _one_hots(spec.weight_shape) if weight is None else [weight]
    return [p_out @ dense_layer(spec, w) - dense_layer(left, w) @ p_in for w in kernels]


@settings(max_examples=15)
@given(translation_cases())
def test_translation_equivariance_against_brute_force(case):
    spec, delta, options, weight = case
    r = ca.check("translation_equivariance", spec, weight=weight, **options)
    boundary = options["boundary"] or ("circular" if spec.padding_mode == "circular" else "zeros")
    circ = boundary == "circular"
    p_in = dense_transform(spec.input_shape, _torch_shift(delta, circ))
    if spec.transposed or all(d % s == 0 for d, s in zip(delta, spec.stride, strict=True)):
        out_delta = tuple(
            d * s if spec.transposed else d // s for d, s in zip(delta, spec.stride, strict=True)
        )
        p_out = dense_transform(spec.output_shape, _torch_shift(out_delta, circ))
        rows = _failing_rows(_layer_residuals(spec, weight, p_in, p_out))
        assert r.holds == (not rows)
        assert _flat(r.failing_positions, spec.output_shape) == rows
        _assert_layer_sides(r, spec, spec, p_in, p_out)
        return
    # not a multiple of the stride: holds when some translate along the shifted axes matches
    ranges = [
        range(-m + 1, m) if d else range(1)
        for d, m in zip(delta, spec.output_shape[1:], strict=True)
    ]
    import itertools

    holds = any(
        not _failing_rows(
            _layer_residuals(
                spec, weight, p_in, dense_transform(spec.output_shape, _torch_shift(d, circ))
            )
        )
        for d in itertools.product(*ranges)
    )
    assert r.holds == holds
    if r.counterexample is not None:
        ce = r.counterexample
        x = np.asarray(ce.inputs["x"], dtype=float).ravel()
        m = dense_layer(spec, ce.inputs["weight"])
        lhs, y = m @ (p_in @ x), m @ x
        for d in itertools.product(*ranges):
            assert not np.allclose(
                lhs, dense_transform(spec.output_shape, _torch_shift(d, circ)) @ y
            )


_LAW = {
    "rotation": "rotation_equivariance",
    "flip": "flip_equivariance",
    "transposition": "transposition_equivariance",
}


@settings(max_examples=15)
@given(symmetry_cases(max_weights=12).filter(lambda c: c[1] != "dihedral"), st.data())
def test_symmetry_laws_against_brute_force(case, data):
    spec, transform, options, in_perm, out_perm = case
    weight = _weights(data.draw, spec)
    r = ca.check(
        _LAW[transform], spec, weight=weight, in_perm=in_perm, out_perm=out_perm, **options
    )
    (p_in,), (p_out,) = _brute_pairs(spec, transform, options, in_perm, out_perm)
    rows = _failing_rows(_layer_residuals(spec, weight, p_in, p_out))
    assert r.holds == (not rows)
    assert _flat(r.failing_positions, spec.output_shape) == rows
    _assert_layer_sides(r, spec, spec, p_in, p_out)
    if weight is None and rows:
        dim = equivariance_dimension(spec, [p_in], [p_out])
        assert r.evidence["dimension of the kernels for which it holds (this size)"] == dim


def _torch_scale(factor, direction, nd):
    def op(e):
        for a in range(nd):
            if direction == "up":
                e = torch.repeat_interleave(e, factor, dim=2 + a)
            else:
                e = e.narrow(2 + a, 0, e.shape[2 + a])[
                    (slice(None),) * (2 + a) + (slice(None, None, factor),)
                ]
        return e

    return op


@settings(max_examples=15)
@given(
    conv_specs(ndims=(1, 2), transposed=None, max_size=4, max_channels=2),
    st.integers(1, 3),
    st.sampled_from(["up", "down"]),
    st.data(),
)
def test_scale_equivariance_against_brute_force(spec, factor, direction, data):
    if spec.transposed:
        assume(all(b == a for b, a in spec.padding))
    assume(math.prod(spec.weight_shape) <= 24 and math.prod(spec.input_shape) <= 40)
    weight = _weights(data.draw, spec)
    op = _torch_scale(factor, direction, spec.ndim)
    x_shape = tuple(op(torch.zeros((1, *spec.input_shape))).shape[1:])
    try:
        left = ca.ConvSpec(
            x_shape,
            spec.out_channels,
            spec.kernel_size,
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
            groups=spec.groups,
            padding_mode=spec.padding_mode,
            transposed=spec.transposed,
            output_padding=spec.output_padding,
            flip=spec.flip,
            bias=False,
        )
    except ca.ConvAlgebraError:
        with pytest.raises(ca.ConvAlgebraError, match="cannot run on the rescaled input"):
            ca.check("scale_equivariance", spec, factor=factor, direction=direction, weight=weight)
        return
    r = ca.check("scale_equivariance", spec, factor=factor, direction=direction, weight=weight)
    y_shape = tuple(op(torch.zeros((1, *spec.output_shape))).shape[1:])
    if left.output_shape != y_shape:
        assert not r.holds and r.failing_positions is None
        return
    p_in = dense_transform(spec.input_shape, op)
    p_out = dense_transform(spec.output_shape, op)
    rows = _failing_rows(_layer_residuals(spec, weight, p_in, p_out, left=left))
    assert r.holds == (not rows)
    assert _flat(r.failing_positions, left.output_shape) == rows
    _assert_layer_sides(r, spec, left, p_in, p_out)


# ---------------------------------------------------------------------------------------------
# two layers, each applied at the size that reaches it (torch runs on any size)


def _torch_chain(first, second, x_batch, w_first, w_second):
    """second(first(x)) by torch, or None when torch refuses a size."""
    try:
        y = batched_conv(first, x_batch, torch.tensor(w_first))
        if min(y.shape[2:]) < 1:
            return None
        z = batched_conv(second, y, torch.tensor(w_second))
        return None if min(z.shape[2:]) < 1 else z
    except RuntimeError:
        return None


def _chain_matrices(first, second, shape, kernels):
    """Dense matrices of ``second(first(.))`` on inputs of ``shape`` for each kernel pair,
    or None when the chain is not defined."""
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    out = []
    for w_first, w_second in kernels:
        z = _torch_chain(first, second, eye, w_first, w_second)
        if z is None:
            return None, None
        out.append(z.reshape(n, -1).T.numpy())
    return out, tuple(z.shape[1:])


def _plain_layer(draw, nd, c_in, c_out, size, groups=1):
    """A layer over every option but transposition (stride, dilation, asymmetric padding,
    padding modes, flip, groups)."""
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    try:
        return ca.ConvSpec(
            (c_in, *size),
            c_out,
            k,
            stride=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            padding=padding,
            flip=draw(st.booleans()),
            bias=False,
            groups=groups,
            padding_mode=draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"])),
        )
    except ca.ConvAlgebraError:
        assume(False)


@st.composite
def layer_pairs(draw):
    """Two C -> C layers (groups 1 or C) over every other option; spec2's size is unused."""
    nd = draw(st.integers(1, 2))
    c = draw(st.integers(1, 2))
    size = tuple(draw(st.integers(2, 6 if nd == 1 else 4)) for _ in range(nd))
    specs = []
    for _ in range(2):
        groups = draw(st.sampled_from([1, c]))
        s = _plain_layer(
            draw,
            nd,
            c,
            c,
            size if not specs else tuple(draw(st.integers(2, 6)) for _ in range(nd)),
            groups,
        )
        specs.append(s)
    assume(all(math.prod(s.weight_shape) <= 8 for s in specs))
    return specs[0], specs[1]


def _weight_pairs(spec1, spec2, weights):
    if weights is not None:
        return [weights]
    return [
        (w1, w2) for w1 in _one_hots(spec1.weight_shape) for w2 in _one_hots(spec2.weight_shape)
    ]


@settings(max_examples=15)
@given(layer_pairs(), st.booleans(), st.data())
def test_layer_commutativity_against_brute_force(pair, numeric, data):
    spec1, spec2 = pair
    weights = None
    if numeric:
        weights = tuple(
            np.array(
                data.draw(
                    st.lists(
                        st.integers(-2, 2),
                        min_size=math.prod(s.weight_shape),
                        max_size=math.prod(s.weight_shape),
                    )
                ),
                dtype=float,
            ).reshape(s.weight_shape)
            for s in (spec1, spec2)
        )
    kw = {} if weights is None else {"weight1": weights[0], "weight2": weights[1]}
    r = ca.check("layer_commutativity", spec1, spec2, **kw)
    pairs = _weight_pairs(spec1, spec2, weights)
    shape = spec1.input_shape
    a, a_shape = _chain_matrices(spec2, spec1, shape, [(w2, w1) for w1, w2 in pairs])
    b, b_shape = _chain_matrices(spec1, spec2, shape, pairs)
    if a is None or b is None:
        assert not r.holds and r.failing_positions is None and "not defined" in r.reason
        return
    if a_shape != b_shape:
        assert not r.holds and r.failing_positions is None and "different shapes" in r.reason
        return
    rows = _failing_rows([ma - mb for ma, mb in zip(a, b, strict=True)])
    assert r.holds == (not rows)
    assert _flat(r.failing_positions, a_shape) == rows
    assert (r.counterexample is None) == r.holds
    if r.counterexample is not None:  # L1(L2 x) and L2(L1 x), by torch
        ce = r.counterexample
        x = torch.tensor(np.asarray(ce.inputs["x"], dtype=float))[None]
        w1, w2 = (np.asarray(ce.inputs[k], dtype=float) for k in ("weight1", "weight2"))
        lhs = _torch_chain(spec2, spec1, x, w2, w1)
        assert_sides_differ(ce, lhs.numpy(), _torch_chain(spec1, spec2, x, w1, w2).numpy())


@st.composite
def composition_pairs(draw):
    nd = draw(st.integers(1, 2))
    c = [draw(st.integers(1, 2)) for _ in range(3)]
    size = tuple(draw(st.integers(2, 6 if nd == 1 else 4)) for _ in range(nd))
    other = tuple(draw(st.integers(1, 6)) for _ in range(nd))  # spec2's own size: unused
    s1 = _plain_layer(draw, nd, c[0], c[1], size)
    s2 = _plain_layer(draw, nd, c[1], c[2], other)
    assume(math.prod(s1.weight_shape) <= 12 and math.prod(s2.weight_shape) <= 12)
    return s1, s2


@settings(max_examples=15)
@given(composition_pairs(), st.booleans(), st.data())
def test_composition_against_brute_force(pair, numeric, data):
    spec1, spec2 = pair
    weights = None
    if numeric:
        weights = tuple(
            np.array(
                data.draw(
                    st.lists(
                        st.integers(-2, 2),
                        min_size=math.prod(s.weight_shape),
                        max_size=math.prod(s.weight_shape),
                    )
                ),
                dtype=float,
            ).reshape(s.weight_shape)
            for s in (spec1, spec2)
        )
    kw = {} if weights is None else {"weight1": weights[0], "weight2": weights[1]}
    r = ca.check("composition", spec1, spec2, **kw)
    pairs = _weight_pairs(spec1, spec2, weights)
    chain, shape = _chain_matrices(spec1, spec2, spec1.input_shape, pairs)
    if chain is None:
        assert not r.holds and "not defined" in r.reason
        return
    spec = composed_spec(spec1, spec2)
    assert spec.output_shape == shape
    composed = [dense_layer(spec, composed_kernel(spec1, spec2, w1, w2)) for w1, w2 in pairs]
    rows = _failing_rows([m - c for m, c in zip(chain, composed, strict=True)])
    assert r.holds == (not rows)
    if weights is None:
        assert _flat(r.failing_positions, shape) == rows
        assert (r.counterexample is None) == r.holds
    if r.counterexample is not None:  # L2(L1 x) by torch, and the composed layer by torch
        ce = r.counterexample
        x = np.asarray(ce.inputs["x"], dtype=float)
        w1, w2 = (np.asarray(ce.inputs[k], dtype=float) for k in ("weight1", "weight2"))
        lhs = _torch_chain(spec1, spec2, torch.tensor(x)[None], w1, w2).numpy()
        rhs = dense_layer(spec, composed_kernel(spec1, spec2, w1, w2)) @ x.ravel()
        assert_sides_differ(ce, lhs, rhs)


# ---------------------------------------------------------------------------------------------
# pooling, adjoint, 1×1, fully connected, convolution theorem, separability, commutativity


@settings(max_examples=15)
@given(st.integers(1, 2), st.data())
def test_max_pool_invariance_against_torch(nd, data):
    c = data.draw(st.integers(1, 2))
    size = tuple(data.draw(st.integers(2, 6)) for _ in range(nd))
    k = data.draw(st.integers(1, min(size)))
    stride = data.draw(st.sampled_from([None, 1, 2, 3]))
    padding = data.draw(st.integers(0, k // 2))
    axis = data.draw(st.integers(0, nd - 1))
    amount = data.draw(st.integers(-(size[axis] - 1), size[axis] - 1))
    boundary = data.draw(st.sampled_from(["zeros", "circular"]))
    x = np.array(
        data.draw(
            st.lists(st.integers(-3, 3), min_size=c * math.prod(size), max_size=c * math.prod(size))
        ),
        dtype=float,
    )
    x = x.reshape(c, *size)
    r = ca.check(
        "max_pool_invariance", x, k, stride, padding, shift=amount, axis=axis, boundary=boundary
    )
    delta = tuple(amount if a == axis else 0 for a in range(nd))
    xs = _torch_shift(delta, boundary == "circular")(torch.tensor(x)[None])
    pool = getattr(torch.nn.functional, f"max_pool{nd}d")
    before = pool(torch.tensor(x)[None], k, stride, padding)[0].numpy()
    after = pool(xs, k, stride, padding)[0].numpy()
    changed = {tuple(int(v) for v in p) for p in np.argwhere(before != after)}
    assert r.holds == (not changed)
    assert set(r.failing_positions or ()) == changed
    assert r.evidence["unchanged"] == before.size - len(changed)
    assert (r.counterexample is None) == r.holds
    if r.counterexample is not None:  # maxpool(S x) and maxpool(x), by torch
        ce = r.counterexample
        assert np.array_equal(ce.inputs["shifted x"], xs[0].numpy())
        assert_sides_differ(ce, after, before)


@settings(max_examples=15)
@given(st.integers(1, 2), st.data())
def test_avg_pool_equivariance_against_torch(nd, data):
    c = data.draw(st.integers(1, 2))
    size = tuple(data.draw(st.integers(2, 6)) for _ in range(nd))
    k = data.draw(st.integers(1, min(size)))
    stride = data.draw(st.sampled_from([None, 1, 2, 3]))
    padding = data.draw(st.integers(0, k // 2))
    axis = data.draw(st.integers(0, nd - 1))
    given_shift = data.draw(st.one_of(st.none(), st.integers(-(size[axis] - 1), size[axis] - 1)))
    s = k if stride is None else stride
    amount = s if given_shift is None else given_shift
    if abs(amount) >= size[axis]:  # the default shift (one stride) does not fit the input
        with pytest.raises(ca.ConvAlgebraError, match="must be smaller than the input size"):
            ca.check(
                "avg_pool_equivariance",
                (c, *size),
                k,
                stride,
                padding,
                shift=given_shift,
                axis=axis,
            )
        return
    r = ca.check(
        "avg_pool_equivariance", (c, *size), k, stride, padding, shift=given_shift, axis=axis
    )
    delta = tuple(amount if a == axis else 0 for a in range(nd))
    pool = getattr(torch.nn.functional, f"avg_pool{nd}d")

    def op(e):
        return pool(e, k, stride, padding, count_include_pad=True)

    n = c * math.prod(size)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, c, *size)
    m = op(eye).reshape(n, -1).T.numpy()
    out_shape = tuple(op(eye[:1]).shape[1:])
    p_in = dense_transform((c, *size), _torch_shift(delta, False))
    if amount % s:  # no integer output shift: some translate must match exactly
        import itertools

        ranges = [
            range(-m_ + 1, m_) if d else range(1)
            for d, m_ in zip(delta, out_shape[1:], strict=True)
        ]
        holds = any(
            np.allclose(m @ p_in, dense_transform(out_shape, _torch_shift(d, False)) @ m)
            for d in itertools.product(*ranges)
        )
        assert r.holds == holds
        return
    out_delta = tuple(d // s for d in delta)
    p_out = dense_transform(out_shape, _torch_shift(out_delta, False))
    d = m @ p_in - p_out @ m
    rows = set(np.flatnonzero(np.any(np.abs(d) > 1e-12, axis=1)).tolist())
    assert r.holds == (not rows)
    assert _flat(r.failing_positions, out_shape) == rows


@settings(max_examples=15)
@given(conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=2, bias=None))
def test_adjoint_against_brute_force(spec):
    if spec.transposed:
        assume(all(b == a for b, a in spec.padding))
    assume(math.prod(spec.weight_shape) <= 12 and math.prod(spec.input_shape) <= 30)
    r = ca.check("adjoint", spec)
    from convalgebra.identities import adjoint_conv_spec
    from convalgebra.transpose import transpose_spec

    flipped = ca.ConvSpec(
        spec.input_shape,
        spec.out_channels,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        groups=spec.groups,
        padding_mode=spec.padding_mode,
        transposed=spec.transposed,
        output_padding=spec.output_padding,
        flip=not spec.flip,
        bias=False,
    )
    mirror = tuple(range(2, 2 + spec.ndim))
    ok = True
    rows: set = set()
    try:
        adj = adjoint_conv_spec(spec)
    except ca.ConvAlgebraError:
        adj = None
    try:
        tr = transpose_spec(spec) if not spec.transposed and spec.padding_mode == "zeros" else None
    except ca.ConvAlgebraError:
        tr = None
    for w in _one_hots(spec.weight_shape):
        m = dense_layer(spec, w)
        ok &= np.array_equal(m, dense_layer(flipped, np.flip(w, axis=mirror)))
        if tr is not None:
            ok &= np.array_equal(m.T, dense_layer(tr, w))
        if adj is not None:
            d = m.T - dense_layer(adj, np.swapaxes(w, 0, 1))
            rows |= set(np.flatnonzero(np.any(d != 0, axis=1)).tolist())
    assert r.holds == (ok and not rows)
    assert _flat(r.failing_positions, spec.input_shape) == rows


@settings(max_examples=15)
@given(st.integers(1, 3), st.data())
def test_one_by_one_against_brute_force(nd, data):
    groups = data.draw(st.sampled_from([1, 2]))
    cin, cout = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    size = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    pad = tuple((data.draw(st.integers(0, 1)), data.draw(st.integers(0, 1))) for _ in range(nd))
    spec = ca.ConvSpec(
        (cin, *size),
        cout,
        1,
        stride=stride,
        padding=pad,
        groups=groups,
        padding_mode=data.draw(st.sampled_from(["zeros", "circular", "replicate"])),
        bias=False,
    )
    r = ca.check("one_by_one", spec)
    w = np.arange(1, math.prod(spec.weight_shape) + 1, dtype=float).reshape(spec.weight_shape)
    m = dense_layer(spec, w)
    # the spatial selection S of one channel pair, and W with zeros outside the groups
    single = ca.ConvSpec(
        (1, *size), 1, 1, stride=stride, padding=pad, padding_mode=spec.padding_mode, bias=False
    )
    s = dense_layer(single, np.ones((1, 1) + (1,) * nd))
    full = np.zeros((cout, cin))
    per_in, per_out = cin // groups, cout // groups
    for o in range(cout):
        g = o // per_out
        full[o, g * per_in : (g + 1) * per_in] = w[o, :, *(0,) * nd]
    assert r.holds == np.array_equal(m, np.kron(full, s))


@settings(max_examples=15)
@given(st.integers(1, 2), st.data())
def test_fully_connected_against_brute_force(nd, data):
    c = data.draw(st.integers(1, 2))
    size = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    n_out = data.draw(st.integers(1, 3))
    kernel = tuple(data.draw(st.integers(1, s)) for s in size)
    pad = data.draw(st.integers(0, 1))
    spec = ca.ConvSpec((c, *size), n_out, kernel, padding=pad, bias=False)
    r = ca.check("fully_connected", spec)
    w = np.arange(1, math.prod(spec.weight_shape) + 1, dtype=float).reshape(spec.weight_shape)
    m = dense_layer(spec, w)
    lin = (
        torch.nn.functional.linear(
            torch.eye(c * math.prod(size), dtype=torch.float64), torch.tensor(w.reshape(n_out, -1))
        ).T.numpy()
        if w.size == n_out * c * math.prod(size)
        else None
    )
    assert r.holds == (lin is not None and m.shape == lin.shape and np.array_equal(m, lin))


@settings(max_examples=15)
@given(st.integers(1, 2), st.data())
def test_convolution_theorem_against_torch_fft(nd, data):
    c_in, c_out = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    size = tuple(data.draw(st.integers(1, 5)) for _ in range(nd))
    kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple((data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) for _ in range(nd))
    mode = data.draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    try:
        spec = ca.ConvSpec(
            (c_in, *size),
            c_out,
            kernel,
            padding=pad,
            dilation=dilation,
            padding_mode=mode,
            flip=data.draw(st.booleans()),
            bias=False,
        )
    except ca.ConvAlgebraError:
        assume(False)
    weight = _weights(data.draw, spec)
    r = ca.check("convolution_theorem", spec, weight=weight)
    # brute force: the claim is M(w) = F^-1 diag(DFT of the circularly embedded kernel) F,
    # i.e. M(w) equals the circular-padded layer's matrix (torch pads circularly), which the
    # DFT diagonalises with exactly those eigenvalues (checked too)
    try:
        circ = ca.ConvSpec(
            spec.input_shape,
            c_out,
            kernel,
            padding=pad,
            dilation=dilation,
            padding_mode="circular",
            flip=spec.flip,
            bias=False,
        )
    except ca.ConvAlgebraError:
        circ = None
    holds = spec.output_shape[1:] == spec.input_shape[1:]
    n = math.prod(size)
    if holds:
        assume(circ is not None and all(max(p) <= m for p, m in zip(pad, size, strict=True)))
        eye = torch.eye(n, dtype=torch.complex128).reshape(n, *size)
        f = torch.fft.fftn(eye, dim=tuple(range(1, nd + 1))).reshape(n, n).numpy()
        for w in _one_hots(spec.weight_shape) if weight is None else [weight]:
            m, mc = dense_layer(spec, w), dense_layer(circ, w)
            holds &= np.array_equal(m, mc)
            block = f @ mc[:n, :n] @ np.linalg.inv(f)
            assert np.allclose(block, np.diag(np.diag(block)), atol=1e-9)
    assert r.holds == holds
    if r.counterexample is not None:  # M v against its best multiple λ v, v a Fourier vector
        ce = r.counterexample
        x = np.asarray(ce.inputs["x (Fourier vector)"])
        lhs = (dense_layer(spec, ce.inputs["weight"]) @ x.ravel())[:n]
        v = x.ravel()[:n]
        assert_sides_differ(ce, lhs, np.vdot(v, lhs) / n * v)


@settings(max_examples=15)
@given(st.integers(1, 3), st.data())
def test_separability_against_brute_force(nd, data):
    size = tuple(data.draw(st.integers(2, 5 if nd < 3 else 3)) for _ in range(nd))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    pad = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(nd))
    mode = data.draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    try:
        spec = ca.ConvSpec(
            (1, *size),
            1,
            kernel,
            padding=pad,
            padding_mode=mode,
            flip=data.draw(st.booleans()),
            bias=False,
        )
    except ca.ConvAlgebraError:
        assume(False)
    factors = [
        np.array(data.draw(st.lists(st.integers(-2, 2), min_size=k, max_size=k)), dtype=float)
        for k in kernel
    ]
    outer = factors[0]
    for f in factors[1:]:
        outer = np.multiply.outer(outer, f)
    noise = np.zeros(outer.shape)
    if data.draw(st.booleans()):
        noise[(0,) * nd] = data.draw(st.integers(-2, 2))
    w = (outer + noise).reshape(spec.weight_shape)
    r = ca.check("separability", spec, weight=w)
    import sympy

    kernel_rank = max(
        sympy.Matrix(
            np.rint(w.reshape(kernel).reshape(kernel[0], -1) if nd > 1 else w.reshape(1, -1))
            .astype(int)
            .tolist()
        ).rank(),
        *[
            sympy.Matrix(
                np.moveaxis(np.rint(w.reshape(kernel)).astype(int), a, 0)
                .reshape(kernel[a], -1)
                .tolist()
            ).rank()
            for a in range(nd)
        ],
    )
    assert r.holds == (kernel_rank <= 1)
    if r.holds and "factors" in r.evidence:  # the 1-D layers in turn, by torch, equal the layer
        x = np.arange(1, math.prod(size) + 1, dtype=float).reshape(1, *size) % 5
        y = dense_layer(spec, w) @ x.ravel()
        z = x.ravel()
        from convalgebra.identities.spectral import _axis_specs  # noqa: PLC2701

        for s, f in zip(_axis_specs(spec), r.evidence["factors"], strict=True):
            z = dense_layer(s, np.asarray(f, dtype=float).reshape(s.weight_shape)) @ z
        assert np.allclose(y, z)


@settings(max_examples=15)
@given(st.integers(1, 2), st.data())
def test_argument_commutativity_against_torch(nd, data):
    n = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    flip = data.draw(st.booleans())
    mode = data.draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    try:
        spec = ca.ConvSpec((1, *n), 1, k, padding_mode=mode, flip=flip, bias=False)
    except ca.ConvAlgebraError:
        assume(False)
    r = ca.check("commutativity", spec)

    def full(a, b):  # the full-extent operation of a with kernel b, by torch
        a_t = torch.tensor(a)[None, None]
        b_t = torch.tensor(b)[None, None]
        if flip:
            b_t = torch.flip(b_t, dims=tuple(range(2, 2 + nd)))
        pads = [p for s in reversed(b.shape) for p in (s - 1, s - 1)]
        return getattr(torch.nn.functional, f"conv{nd}d")(torch.nn.functional.pad(a_t, pads), b_t)[
            0, 0
        ].numpy()

    rows: set = set()
    for x in _one_hots(n):
        for w in _one_hots(k):
            d = full(x, w) - full(w, x)
            rows |= {tuple(int(v) for v in p) for p in np.argwhere(d != 0)}
    assert r.holds == (not rows)
    assert {p[1:] for p in r.failing_positions or ()} == rows
    assert (r.counterexample is None) == r.holds
    if r.counterexample is not None:  # x op k and k op x, by torch
        ce = r.counterexample
        x, k = (np.asarray(ce.inputs[n], dtype=float) for n in ("x", "k"))
        assert_sides_differ(ce, full(x, k), full(k, x))


@settings(max_examples=15)
@given(st.data())
def test_equivariant_kernels_of_tiled_and_table_layers(data):
    """Layers torch has no op for (tiles, channel tables): brute force on the dense matrices of
    one-hot kernels from conv_matrix (held against torch elsewhere), not on the constraint."""
    from convalgebra.operators import conv_matrix

    n = data.draw(st.integers(2, 5))
    k = data.draw(st.integers(1, 3))
    mode = data.draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    pad = data.draw(st.integers(0, min(2, n - 1)))
    if data.draw(st.booleans()):
        extra = {"tile": (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))}
        c_in = c_out = 1
    else:
        c_in, c_out = 2, 2
        extra = {"channel_table": [[data.draw(st.booleans()) for _ in range(2)] for _ in range(2)]}
    try:
        spec = ca.ConvSpec(
            (c_in, n, n), c_out, k, padding=pad, padding_mode=mode, bias=False, **extra
        )
    except ca.ConvAlgebraError:
        assume(False)
    assume(spec.output_shape[1] == spec.output_shape[2])
    ek = ca.equivariant_kernels(spec, "rotation")
    op = _torch_generators("rotation", {"k": 1, "axes": (0, 1)})[0]
    p_in, p_out = dense_transform(spec.input_shape, op), dense_transform(spec.output_shape, op)
    from brute_identities import rank

    mats = [conv_matrix(spec, w).toarray() for w in _one_hots(spec.weight_shape)]
    cols = np.stack([(p_out @ m - m @ p_in).ravel() for m in mats], axis=1)
    assert ek.dimension == len(mats) - rank(cols)
    assert ek.blind_vectors.shape[0] == len(mats) - rank(np.stack([m.ravel() for m in mats], 1))
