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
    blind_dimension,
    dense_layer,
    dense_transform,
    equivariance_dimension,
)
from oracle import torch  # noqa: E402

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
