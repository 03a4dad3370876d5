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

pytest.importorskip("torch")

import convalgebra as ca  # noqa: E402
from brute_identities import (  # noqa: E402
    batched_conv,
    blind_dimension,
    dense_layer,
    dense_transform,
    equivariance_dimension,
)
from convalgebra.identities import composed_kernel, composed_spec  # noqa: E402
from oracle import torch  # noqa: E402
from strategies import conv_specs  # noqa: E402

# ---------------------------------------------------------------------------------------------
# layers and symmetries drawn over every option


def _pair(draw, nd):
    return draw(st.sampled_from([(a, b) for a in range(nd) for b in range(nd) if a != b]))


@st.composite
def symmetry_cases(draw, max_weights=48):
    """(spec, transform name, options, in_perm, out_perm) with grids the symmetry maps onto
    themselves; any stride, dilation, asymmetric padding, mode, groups, flip, transposed."""
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    transform = "flip" if nd == 1 else draw(
        st.sampled_from(["rotation", "flip", "transposition", "dihedral"]))
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
    mode = "zeros" if transposed else draw(
        st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    uniform = draw(st.booleans())
    k0, s0, d0 = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(k0 if uniform else draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(s0 if uniform else draw(st.integers(1, 2)) for _ in range(nd))
    dilation = tuple(d0 if uniform else draw(st.integers(1, 2)) for _ in range(nd))
    pads = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    padding = tuple((pads if uniform else (draw(st.integers(0, 3)), draw(st.integers(0, 3))))
                    for _ in range(nd))
    if transposed:
        padding = tuple((b, b) for b, _ in padding)
    elif draw(st.integers(0, 4)) == 0:
        padding = "same"
        stride = (1,) * nd
    try:
        spec = ca.ConvSpec((cin, *size), cout, kernel, stride=stride, padding=padding,
                           dilation=dilation, groups=groups, padding_mode=mode,
                           transposed=transposed, flip=draw(st.booleans()), bias=False)
    except ca.ConvAlgebraError:
        assume(False)
    out = spec.output_shape[1:]
    assume(all(out[a] == out[square[0]] for a in square))
    assume(math.prod(spec.weight_shape) <= max_weights and math.prod(spec.input_shape) <= 150)
    assume(math.prod(spec.output_shape) <= 150)
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
    return [lambda e: torch.rot90(e, 1, dims=(2 + a, 2 + b)), lambda e: torch.flip(e, dims=(2 + a,))]


def _brute_pairs(spec, transform, options, in_perm, out_perm):
    ops = _torch_generators(transform, options)
    return ([dense_transform(spec.input_shape, op, in_perm) for op in ops],
            [dense_transform(spec.output_shape, op, out_perm) for op in ops])


def _equivariant(spec, p_in, p_out, w) -> bool:
    m = dense_layer(spec, np.asarray(w, dtype=float).reshape(spec.weight_shape))
    return all(np.array_equal(q @ m, m @ p) for p, q in zip(p_in, p_out, strict=True))


_ISSUE_CASES = [  # layers on which the kernel-grid answer was wrong
    ca.ConvSpec((1, 6, 6), 1, 4, padding="same", bias=False),
    ca.ConvSpec((1, 4, 4), 1, 1, stride=2, bias=False),
    ca.ConvSpec((1, 6, 6), 1, 3, padding=((2, 1), (2, 1)), dilation=2, bias=False),
    ca.ConvSpec((1, 4, 4), 1, 4, padding="same", dilation=2, padding_mode="reflect", bias=False),
]


@settings(max_examples=40)
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
        assert ek.grid_symmetric == all(_equivariant(spec, p_in, p_out, b)
                                        for b in ek.grid_vectors.toarray())
    rng = np.random.default_rng(seed)
    member = rng.integers(-3, 4, ek.dimension) @ ek.vectors.toarray() if ek.dimension else \
        np.zeros(math.prod(spec.weight_shape), dtype=np.int64)
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
    return np.array(draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)),
                    dtype=float).reshape(spec.weight_shape)


def _torch_shift(delta, circular):
    def op(e):
        for a, d in enumerate(delta):
            if not d:
                continue
            dim = 2 + a
            e = torch.roll(e, d, dims=dim)
            if not circular:
                n = e.shape[dim]
                cut = e.narrow(dim, 0, min(d, n)) if d > 0 else e.narrow(dim, max(n + d, 0), min(-d, n))
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


def _layer_residuals(spec, weight, p_in, p_out, left=None):
    left = spec if left is None else left
    kernels = _one_hots(spec.weight_shape) if weight is None else [weight]
    return [p_out @ dense_layer(spec, w) - dense_layer(left, w) @ p_in for w in kernels]


@settings(max_examples=40)
@given(translation_cases())
def test_translation_equivariance_against_brute_force(case):
    spec, delta, options, weight = case
    r = ca.check("translation_equivariance", spec, weight=weight, **options)
    boundary = options["boundary"] or ("circular" if spec.padding_mode == "circular" else "zeros")
    circ = boundary == "circular"
    p_in = dense_transform(spec.input_shape, _torch_shift(delta, circ))
    if spec.transposed or all(d % s == 0 for d, s in zip(delta, spec.stride, strict=True)):
        out_delta = tuple(d * s if spec.transposed else d // s
                          for d, s in zip(delta, spec.stride, strict=True))
        p_out = dense_transform(spec.output_shape, _torch_shift(out_delta, circ))
        rows = _failing_rows(_layer_residuals(spec, weight, p_in, p_out))
        assert r.holds == (not rows)
        assert _flat(r.failing_positions, spec.output_shape) == rows
        return
    # not a multiple of the stride: holds when some translate along the shifted axes matches
    ranges = [range(-m + 1, m) if d else range(1)
              for d, m in zip(delta, spec.output_shape[1:], strict=True)]
    import itertools

    holds = any(not _failing_rows(_layer_residuals(
        spec, weight, p_in, dense_transform(spec.output_shape, _torch_shift(d, circ))))
        for d in itertools.product(*ranges))
    assert r.holds == holds
    if r.counterexample is not None:
        ce = r.counterexample
        x = np.asarray(ce.inputs["x"], dtype=float).ravel()
        m = dense_layer(spec, ce.inputs["weight"])
        lhs, y = m @ (p_in @ x), m @ x
        for d in itertools.product(*ranges):
            assert not np.allclose(lhs, dense_transform(spec.output_shape,
                                                        _torch_shift(d, circ)) @ y)


_LAW = {"rotation": "rotation_equivariance", "flip": "flip_equivariance",
        "transposition": "transposition_equivariance"}


@settings(max_examples=40)
@given(symmetry_cases(max_weights=24).filter(lambda c: c[1] != "dihedral"), st.data())
def test_symmetry_laws_against_brute_force(case, data):
    spec, transform, options, in_perm, out_perm = case
    weight = _weights(data.draw, spec)
    r = ca.check(_LAW[transform], spec, weight=weight, in_perm=in_perm, out_perm=out_perm,
                 **options)
    (p_in,), (p_out,) = _brute_pairs(spec, transform, options, in_perm, out_perm)
    rows = _failing_rows(_layer_residuals(spec, weight, p_in, p_out))
    assert r.holds == (not rows)
    assert _flat(r.failing_positions, spec.output_shape) == rows
    if weight is None and rows:
        dim = equivariance_dimension(spec, [p_in], [p_out])
        assert r.evidence["dimension of the kernels for which it holds (this size)"] == dim


def _torch_scale(factor, direction, nd):
    def op(e):
        for a in range(nd):
            if direction == "up":
                e = torch.repeat_interleave(e, factor, dim=2 + a)
            else:
                e = e.narrow(2 + a, 0, e.shape[2 + a])[(slice(None),) * (2 + a) + (slice(None, None, factor),)]
        return e
    return op


@settings(max_examples=30)
@given(conv_specs(ndims=(1, 2), transposed=None, max_size=4, max_channels=2),
       st.integers(1, 3), st.sampled_from(["up", "down"]), st.data())
def test_scale_equivariance_against_brute_force(spec, factor, direction, data):
    if spec.transposed:
        assume(all(b == a for b, a in spec.padding))
    assume(math.prod(spec.weight_shape) <= 24 and math.prod(spec.input_shape) <= 40)
    weight = _weights(data.draw, spec)
    op = _torch_scale(factor, direction, spec.ndim)
    x_shape = tuple(op(torch.zeros((1, *spec.input_shape))).shape[1:])
    try:
        left = ca.ConvSpec(x_shape, spec.out_channels, spec.kernel_size, stride=spec.stride,
                           padding=spec.padding, dilation=spec.dilation, groups=spec.groups,
                           padding_mode=spec.padding_mode, transposed=spec.transposed,
                           output_padding=spec.output_padding, flip=spec.flip, bias=False)
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


@st.composite
def layer_pairs(draw):
    c = draw(st.integers(1, 2))
    specs = []
    for _ in range(2):
        s = draw(conv_specs(ndims=(1, 2), transposed=False, max_size=6, max_channels=2,
                            bias=False))
        assume(s.ndim == (specs[0].ndim if specs else s.ndim))
        groups = s.groups if c % s.groups == 0 else 1
        try:
            s = ca.ConvSpec((c, *s.input_shape[1:]), c, s.kernel_size, stride=s.stride,
                            padding=s.padding, dilation=s.dilation, groups=groups,
                            padding_mode=s.padding_mode, flip=s.flip, bias=False)
        except ca.ConvAlgebraError:
            assume(False)
        specs.append(s)
    assume(all(math.prod(s.weight_shape) <= 8 for s in specs))
    assume(math.prod(specs[0].input_shape) <= 40)
    return specs[0], specs[1]


def _weight_pairs(spec1, spec2, weights):
    if weights is not None:
        return [weights]
    return [(w1, w2) for w1 in _one_hots(spec1.weight_shape)
            for w2 in _one_hots(spec2.weight_shape)]


@settings(max_examples=40)
@given(layer_pairs(), st.booleans(), st.data())
def test_layer_commutativity_against_brute_force(pair, numeric, data):
    spec1, spec2 = pair
    weights = None
    if numeric:
        weights = tuple(np.array(data.draw(st.lists(st.integers(-2, 2), min_size=math.prod(
            s.weight_shape), max_size=math.prod(s.weight_shape))), dtype=float).reshape(
            s.weight_shape) for s in (spec1, spec2))
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


def _plain_layer(draw, nd, c_in, c_out, size):
    """A groups=1 layer over every other option (stride, dilation, asymmetric padding, modes)."""
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    try:
        return ca.ConvSpec((c_in, *size), c_out, k,
                           stride=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
                           dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
                           padding=padding, flip=draw(st.booleans()), bias=False,
                           padding_mode=draw(st.sampled_from(
                               ["zeros", "circular", "reflect", "replicate"])))
    except ca.ConvAlgebraError:
        assume(False)


@st.composite
def composition_pairs(draw):
    nd = draw(st.integers(1, 2))
    c = [draw(st.integers(1, 2)) for _ in range(3)]
    size = tuple(draw(st.integers(2, 6 if nd == 1 else 4)) for _ in range(nd))
    other = tuple(draw(st.integers(1, 6)) for _ in range(nd))   # spec2's own size: unused
    s1 = _plain_layer(draw, nd, c[0], c[1], size)
    s2 = _plain_layer(draw, nd, c[1], c[2], other)
    assume(math.prod(s1.weight_shape) <= 12 and math.prod(s2.weight_shape) <= 12)
    return s1, s2


@settings(max_examples=40)
@given(composition_pairs(), st.booleans(), st.data())
def test_composition_against_brute_force(pair, numeric, data):
    spec1, spec2 = pair
    weights = None
    if numeric:
        weights = tuple(np.array(data.draw(st.lists(st.integers(-2, 2), min_size=math.prod(
            s.weight_shape), max_size=math.prod(s.weight_shape))), dtype=float).reshape(
            s.weight_shape) for s in (spec1, spec2))
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
