"""Every field a law reports, not only its verdict, against brute force in PyTorch.

``grid_dimension``, ``grid_symmetric`` and ``blind`` of the kernel solver; the parts of the
adjoint law that apply and the claim that names them; each counterexample's two sides,
evaluated by torch (they must differ); the condition a commutativity reason cites (the one
that decides the case); the padding in the composition derivation.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

from brute_identities import (  # noqa: E402
    assert_sides_differ,
    batched_conv,
    blind_dimension,
    dense_layer,
    equivariance_dimension,
    kernel_grid_space,
    rank,
)
from oracle import torch  # noqa: E402
from strategies import conv_specs  # noqa: E402
from test_identities_brute import (  # noqa: E402
    _chain_matrices,
    _equivariant,
    _one_hots,
    _torch_chain,
    _torch_generators,
    _torch_shift,
    symmetry_cases,
)

import convalgebra as ca  # noqa: E402
from convalgebra.identities.algebra import AGREE, BORDER, CHANNELS, SAMPLING  # noqa: E402
from convalgebra.identities.transforms import shift  # noqa: E402

# ---------------------------------------------------------------------------------------------
# the kernel solver: grid_dimension, grid_symmetric, blind


@st.composite
def kernel_cases(draw):
    """(spec, transform, options, in_perm, out_perm, torch ops): the named symmetries, or a
    translation (zero fill or cyclic) given as a GridTransform."""
    if draw(st.booleans()):
        spec, name, options, in_perm, out_perm = draw(symmetry_cases())
        return spec, name, options, in_perm, out_perm, _torch_generators(name, options)
    spec = draw(conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=2, bias=False))
    if spec.transposed:
        assume(all(b == a for b, a in spec.padding))
    assume(math.prod(spec.weight_shape) <= 16 and math.prod(spec.input_shape) <= 50)
    assume(math.prod(spec.output_shape) <= 50)
    delta = tuple(draw(st.integers(-2, 2)) for _ in range(spec.ndim))
    circular = draw(st.booleans())
    perms = [None, None]
    if draw(st.booleans()):
        perms = [
            draw(st.permutations(range(c))) for c in (spec.input_shape[0], spec.output_shape[0])
        ]
    return spec, shift(delta, circular), {}, *perms, [_torch_shift(delta, circular)]


def _pairs(spec, ops, in_perm, out_perm):
    from brute_identities import dense_transform

    return (
        [dense_transform(spec.input_shape, op, in_perm) for op in ops],
        [dense_transform(spec.output_shape, op, out_perm) for op in ops],
    )


_ZERO_FILL = ca.ConvSpec((1, 6, 6), 1, 3)


@settings(max_examples=25)
@given(kernel_cases())
@example((_ZERO_FILL, shift((1, 0)), {}, None, None, [_torch_shift((1, 0), False)]))
@example((_ZERO_FILL, shift((1, 0), True), {}, None, None, [_torch_shift((1, 0), True)]))
@example(  # a transposed layer that crops every written position: M(w) = 0 for every w
    (
        ca.ConvSpec((1, 4), 1, 1, stride=2, padding=3, transposed=True, bias=False),
        "flip",
        {"axis": 0},
        None,
        None,
        [lambda e: torch.flip(e, dims=(2,))],
    )
)
@example(  # the transposition maps a 1×2 kernel to a 2×1 one: no grid symmetry
    (
        ca.ConvSpec((1, 1, 1), 1, (1, 2), padding="same", bias=False),
        "transposition",
        {"axes": (0, 1)},
        None,
        None,
        [lambda e: e.transpose(2, 3)],
    )
)
def test_equivariant_kernel_fields_against_brute_force(case):
    spec, transform, options, in_perm, out_perm, ops = case
    ek = ca.equivariant_kernels(spec, transform, in_perm=in_perm, out_perm=out_perm, **options)
    p_in, p_out = _pairs(spec, ops, in_perm, out_perm)
    assert ek.dimension == equivariance_dimension(spec, p_in, p_out)
    # blind: the kernels giving the zero layer, a subspace of the solutions
    assert ek.blind_vectors.shape[0] == len(ek.blind) == blind_dimension(spec)
    for b in ek.blind_vectors.toarray():
        assert not dense_layer(spec, b.reshape(spec.weight_shape)).any()
        assert ek.contains(b.reshape(spec.weight_shape))
    # grid_dimension: {W = g(W)} on the kernel grid, None when g permutes no kernel grid
    grid = kernel_grid_space(spec, ops, in_perm, out_perm)
    event(f"grid {'undefined' if grid is None else 'defined'}")
    assert ek.grid_dimension == (None if grid is None else len(grid))
    if grid is None:
        assert ek.grid_symmetric is False and ek.grid_general is None
        return
    # grid_symmetric: every kernel symmetric on its grid makes the layer equivariant
    assert ek.grid_symmetric == all(_equivariant(spec, p_in, p_out, b) for b in grid)
    if len(grid):  # the library's grid basis spans the brute-force space
        ours = ek.grid_vectors.toarray()
        assert rank(np.vstack([grid, ours])) == len(grid) == rank(ours)


# ---------------------------------------------------------------------------------------------
# adjoint: the parts checked, the parts not applicable, the claim naming them

_TRANSPOSED = "Mᵀ = the transposed convolution"
_ORDINARY = "Mᵀ = an ordinary convolution"


def _transposed_applies(spec) -> bool:
    from convalgebra.transpose import transpose_spec

    if spec.transposed or spec.padding_mode != "zeros":
        return False
    try:
        transpose_spec(spec)
    except ca.ConvAlgebraError:
        return False
    return True


def _ordinary_applies(spec) -> bool:
    return (
        not spec.transposed
        and max(spec.stride) == 1
        and spec.groups == 1
        and all(
            max(p) <= d * (k - 1)
            for p, k, d in zip(spec.padding, spec.kernel_size, spec.dilation, strict=True)
        )
    )


_STRIDED_REFLECT = ca.ConvSpec((1, 6), 1, 3, stride=2, padding=1, padding_mode="reflect")


@settings(max_examples=25)
@given(conv_specs(ndims=(1, 2), transposed=None, max_size=5, max_channels=2, bias=None))
@example(_STRIDED_REFLECT)
@example(ca.ConvSpec((1, 6), 1, 3, padding=1, padding_mode="reflect"))
def test_adjoint_states_exactly_what_it_checked(spec):
    if spec.transposed:
        assume(all(b == a for b, a in spec.padding))
    assume(math.prod(spec.weight_shape) <= 12 and math.prod(spec.input_shape) <= 30)
    r = ca.check("adjoint", spec)
    event(f"{len(r.not_applicable)} parts not applicable")
    checked, _, _ = r.claim.partition(" (not applicable: ")
    parts = {_TRANSPOSED: _transposed_applies(spec), _ORDINARY: _ordinary_applies(spec)}
    for part, applies in parts.items():
        assert (part in checked) == applies
        assert any(n.startswith(part) for n in r.not_applicable) == (not applies)
    assert "cross-correlation = convolution with the flipped kernel" in checked
    assert all(n in r.claim for n in r.not_applicable)
    assert ("not applicable" in r.to_text()) == bool(r.not_applicable)
    # holds covers the checked parts only, each held against torch's matrices
    from convalgebra.identities import adjoint_conv_spec
    from convalgebra.transpose import transpose_spec

    mirror = tuple(range(2, 2 + spec.ndim))
    flipped = dataclasses.replace(spec, flip=not spec.flip, bias=False)
    ok = True
    for w in _one_hots(spec.weight_shape):
        m = dense_layer(spec, w)
        ok &= np.array_equal(m, dense_layer(flipped, np.flip(w, axis=mirror)))
        if parts[_TRANSPOSED]:
            ok &= np.array_equal(m.T, dense_layer(transpose_spec(spec), w))
        if parts[_ORDINARY]:
            ok &= np.array_equal(m.T, dense_layer(adjoint_conv_spec(spec), np.swapaxes(w, 0, 1)))
    assert r.holds == ok
    if r.counterexample is not None:
        ce = r.counterexample
        w, y = ce.inputs["weight"], ce.inputs["y"].ravel()
        adj = adjoint_conv_spec(spec)
        lhs = dense_layer(spec, w).T @ y
        rhs = dense_layer(adj, np.swapaxes(w, 0, 1)) @ y
        assert_sides_differ(ce, lhs, rhs)


# ---------------------------------------------------------------------------------------------
# separability over stride and dilation too: the counterexample's sides, by torch


def _axis_layers(spec):
    """The 1-D layers along each axis in turn (kernel 1 elsewhere), built here from the spec."""
    layers, shape = [], spec.input_shape
    for a in range(spec.ndim):

        def pick(values, one, a=a):
            return tuple(v if b == a else one for b, v in enumerate(values))

        layer = ca.ConvSpec(
            shape,
            1,
            pick(spec.kernel_size, 1),
            stride=pick(spec.stride, 1),
            dilation=pick(spec.dilation, 1),
            padding=pick(spec.padding, (0, 0)),
            padding_mode=spec.padding_mode,
            flip=spec.flip,
            bias=False,
        )
        layers.append(layer)
        shape = layer.output_shape
    return layers


def _torch_separable(spec, x, factors):
    z = torch.tensor(np.asarray(x, dtype=float))[None]
    for layer, f in zip(_axis_layers(spec), factors, strict=True):
        z = batched_conv(layer, z, torch.tensor(np.asarray(f, float).reshape(layer.weight_shape)))
    return z[0].numpy()


@st.composite
def separability_cases(draw):
    nd = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(2, 5 if nd < 3 else 3)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    try:
        spec = ca.ConvSpec(
            (1, *size),
            1,
            kernel,
            stride=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            padding=tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd)),
            padding_mode=draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"])),
            flip=draw(st.booleans()),
            bias=False,
        )
    except ca.ConvAlgebraError:
        assume(False)
    n = math.prod(kernel)
    w = np.array(draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)), dtype=float)
    return spec, w.reshape(spec.weight_shape)


def _kernel_rank(w) -> int:
    k = w.reshape(w.shape[2:])
    return max(rank(np.moveaxis(k, a, 0).reshape(k.shape[a], -1)) for a in range(k.ndim))


@settings(max_examples=25)
@given(separability_cases())
@example((ca.ConvSpec((1, 4, 4), 1, 2, stride=2, bias=False), np.eye(2).reshape(1, 1, 2, 2)))
@example(  # tap row 0 reads only padding: rank 2, yet the layer of a separable kernel
    (
        ca.ConvSpec((1, 2, 2), 1, 3, padding=((2, 0), (2, 0)), bias=False),
        np.array([[1.0, 0, 0], [0, 5, 0], [0, 0, 0]]).reshape(1, 1, 3, 3),
    )
)
def test_separability_counterexample_sides_differ_in_torch(case):
    spec, w = case
    r = ca.check("separability", spec, weight=w)
    assert r.holds == (_kernel_rank(w) <= 1)
    if r.holds:
        x = np.arange(1, math.prod(spec.input_shape) + 1).reshape(spec.input_shape) % 5
        lhs = dense_layer(spec, w) @ x.ravel()
        assert np.allclose(lhs, _torch_separable(spec, x, r.evidence["factors"]).ravel())
        return
    ce = r.counterexample
    event(f"counterexample {ce is not None}")
    if ce is None:  # no input separates: the closest separable kernel gives the same layer
        k = w.reshape(spec.kernel_size)
        u = [
            np.linalg.svd(np.moveaxis(k, a, 0).reshape(k.shape[a], -1))[0][:, 0]
            for a in range(k.ndim)
        ]
        core = k
        for f in u:
            core = np.tensordot(f, core, axes=(0, 0))
        u[0] = u[0] * float(core)
        for x in _one_hots(spec.input_shape):
            assert np.allclose(
                dense_layer(spec, w) @ x.ravel(), _torch_separable(spec, x, u).ravel()
            )
        return
    factors = [ce.inputs[name] for name in "uvs"[: spec.ndim]]
    lhs = dense_layer(spec, ce.inputs["weight"]) @ ce.inputs["x"].ravel()
    assert_sides_differ(ce, lhs, _torch_separable(spec, ce.inputs["x"], factors))


# ---------------------------------------------------------------------------------------------
# two layers: the condition the reason cites is the one that decides


def _layer(draw, nd, c, size, groups):
    transposed = draw(st.integers(0, 3)) == 0
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    if transposed:
        padding = tuple((b, b) for b, _ in padding)
    try:
        return ca.ConvSpec(
            (c, *size),
            c,
            k,
            stride=stride,
            dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            padding=padding,
            flip=draw(st.booleans()),
            bias=False,
            groups=groups,
            transposed=transposed,
            padding_mode="zeros"
            if transposed
            else draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"])),
        )
    except ca.ConvAlgebraError:
        assume(False)


@st.composite
def any_layer_pairs(draw):
    """Two C -> C layers over every option, transposed and strided ones included."""
    nd = draw(st.integers(1, 2))
    c = draw(st.integers(1, 2))
    size = tuple(draw(st.integers(2, 6 if nd == 1 else 4)) for _ in range(nd))
    specs = [_layer(draw, nd, c, size, draw(st.sampled_from([1, c]))) for _ in range(2)]
    assume(all(math.prod(s.weight_shape) <= 8 for s in specs))
    return specs[0], specs[1]


def _single(spec, size=None):
    """``spec``'s spatial hyper-parameters with one channel (and optionally another size)."""
    return ca.ConvSpec(
        (1, *(spec.input_shape[1:] if size is None else size)),
        1,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        padding_mode=spec.padding_mode,
        transposed=spec.transposed,
        flip=spec.flip,
        bias=False,
    )


def _commute(spec1, spec2, shape, pairs) -> bool | None:
    a, a_shape = _chain_matrices(spec2, spec1, shape, [(w2, w1) for w1, w2 in pairs])
    b, b_shape = _chain_matrices(spec1, spec2, shape, pairs)
    if a is None or b is None or a_shape != b_shape:
        return None
    return all(np.array_equal(np.rint(ma), np.rint(mb)) for ma, mb in zip(a, b, strict=True))


def _all_pairs(spec1, spec2):
    return [(u, v) for u in _one_hots(spec1.weight_shape) for v in _one_hots(spec2.weight_shape)]


def _axis_layer(spec, axis, n):
    pick = lambda v: (v[axis],)  # noqa: E731
    return ca.ConvSpec(
        (1, n),
        1,
        pick(spec.kernel_size),
        stride=pick(spec.stride),
        padding=pick(spec.padding),
        dilation=pick(spec.dilation),
        transposed=spec.transposed,
        flip=spec.flip,
        bias=False,
    )


def _interior_differs(spec1, spec2) -> bool:
    """Do the two orders differ away from the borders? Per axis, one channel, on a long grid:
    the rows far from both ends of L1(L2 x) and L2(L1 x) (aligned at the origin)."""
    margin = 20
    for axis in range(spec1.ndim):
        # long enough that both orders keep more than 2 * margin rows (dilated kernels and
        # padding shrink the grid by up to 2 (k - 1) d + p on each side)
        reach = sum(s.dilation[axis] * (s.kernel_size[axis] - 1) + 2 for s in (spec1, spec2))
        n = (48 + 4 * reach) * math.prod(s.stride[axis] for s in (spec1, spec2) if not s.transposed)
        a1, a2 = _axis_layer(spec1, axis, n), _axis_layer(spec2, axis, n)
        eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, n)
        for w1, w2 in _all_pairs(a1, a2):
            za = _torch_chain(a2, a1, eye, w2, w1)  # L1(L2 x)
            zb = _torch_chain(a1, a2, eye, w1, w2)  # L2(L1 x)
            rows = min(za.shape[-1], zb.shape[-1]) - margin
            assert rows > margin + 4  # the grid is long enough to have an interior
            if not torch.equal(za[..., margin:rows], zb[..., margin:rows]):
                return True
    return False


_STRIDED = ca.ConvSpec((2, 6), 2, 3, padding=1, stride=2, bias=False)
_TRANSPOSED_2 = ca.ConvSpec((2, 3), 2, 2, stride=2, transposed=True, bias=False)


@settings(max_examples=25)
@given(any_layer_pairs(), st.integers(0, 2**31 - 1))
@example((_STRIDED, ca.ConvSpec((2, 6), 2, 1, bias=False)), 0)
@example((ca.ConvSpec((2, 6), 2, 3, bias=False), _TRANSPOSED_2), 0)
@example((_TRANSPOSED_2, _TRANSPOSED_2), 0)
@example(
    (
        ca.ConvSpec((2, 5), 2, 3, padding=1, padding_mode="circular", bias=False),
        ca.ConvSpec((2, 5), 2, 2, padding=((1, 0),), padding_mode="circular", bias=False),
    ),
    0,
)
@example(  # zero padding, stride 1: the borders decide
    (ca.ConvSpec((1, 6), 1, 3, padding=1, bias=False),) * 2, 0
)
@example(  # a dilated kernel and a cropping transposed layer: the oracle's grid must be long
    (
        ca.ConvSpec((1, 6), 1, 3, padding=((0, 1),), dilation=2, bias=False),
        ca.ConvSpec((1, 6), 1, 1, padding=1, transposed=True, bias=False),
    ),
    0,
)
def test_layer_commutativity_reason_cites_the_deciding_condition(pair, seed):
    spec1, spec2 = pair
    r = ca.check("layer_commutativity", spec1, spec2)
    shape = spec1.input_shape
    full = _commute(spec1, spec2, shape, _all_pairs(spec1, spec2))
    if full is None:  # an order is not defined, or the shapes differ: cited as such
        event("not defined, or different shapes")
        assert not r.holds and ("not defined" in r.reason or "different shapes" in r.reason)
        return
    assert r.holds == full
    deciding = r.evidence["deciding condition"]
    event(deciding)
    key = "commutator sums per path class"
    assert (key in r.evidence) == (deciding == CHANNELS)
    if full:
        assert deciding == AGREE
        return
    s1, s2 = _single(spec1), _single(spec2)
    if _commute(s1, s2, s1.input_shape, _all_pairs(s1, s2)):
        assert deciding == CHANNELS and "commutators" in r.reason
        _check_channel_condition(spec1, spec2, r.evidence[key], seed)
    else:
        interior = _interior_differs(spec1, spec2)
        assert deciding == (SAMPLING if interior else BORDER)
        assert ("stride" in r.reason) if interior else ("border" in r.reason)
    assert "circular grid with stride 1" not in r.reason


def _check_channel_condition(spec1, spec2, condition, seed):
    """The cited equations decide: for random kernels they all vanish exactly when torch's
    two orders agree; and they do not vanish for generic kernels."""
    assert condition  # a failing symbolic check has at least one equation
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-2, 3, spec1.weight_shape).astype(float)
    w2 = rng.integers(-2, 3, spec2.weight_shape).astype(float)
    if seed % 3 == 0:  # kernels that commute: the second one a multiple of the first
        assume(spec1.weight_shape == spec2.weight_shape)
        w2 = 2 * w1
    subs = dict(
        zip(
            ca.weight_symbols(spec1, "w").ravel().tolist()
            + ca.weight_symbols(spec2, "u").ravel().tolist(),
            w1.ravel().tolist() + w2.ravel().tolist(),
            strict=True,
        )
    )
    vanish = all(m.subs(subs).is_zero_matrix for m in condition)
    assert vanish == bool(_commute(spec1, spec2, spec1.input_shape, [(w1, w2)]))


# ---------------------------------------------------------------------------------------------
# composition: the printed derivation carries the padding of the composed layer


@settings(max_examples=15)
@given(st.data())
def test_composition_steps_carry_the_composed_padding(data):
    from test_identities_brute import composition_pairs

    from convalgebra.identities import composed_spec

    spec1, spec2 = data.draw(composition_pairs())
    r = ca.check("composition", spec1, spec2)
    if "not defined" in r.reason:
        return
    spec = composed_spec(spec1, spec2)
    text = r.to_text()
    before = spec.padding[0][0]
    assert f"padding p1 + s1·p2 = {before} before the first pixel" in text
    assert f"padding {spec2.padding[0]}" in text and f"{spec1.padding[0]}" in text
    assert ca.derive(r).verify() > 0
