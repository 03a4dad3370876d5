"""The product routes of conv_operator (wide BLAS products, im2col/col2im) against torch."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from oracle import torch_conv, torch_jacobian
from strategies import conv_specs

import convalgebra as ca
from convalgebra.products import StridedProducts


@st.composite
def one_group_specs(draw):
    """Specs of one group (the wide route, strides by their phases), forward or transposed."""
    nd = draw(st.integers(1, 3))
    limit = 4 if nd == 3 else 7
    transposed = draw(st.booleans())
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    try:
        return ca.ConvSpec(
            (draw(st.integers(1, 4)), *(draw(st.integers(1, limit + 3)) for _ in range(nd))),
            draw(st.integers(1, 4)),
            tuple(draw(st.integers(1, 3)) for _ in range(nd)),
            stride=stride,
            padding=tuple((draw(st.integers(0, 3)),) * 2 for _ in range(nd)),
            dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
            padding_mode="zeros"
            if transposed
            else draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"])),
            transposed=transposed,
            output_padding=tuple(draw(st.integers(0, s - 1)) for s in stride) if transposed else 0,
            flip=draw(st.booleans()),
        )
    except ca.ConvAlgebraError:
        assume(False)


def _check_against_torch(spec, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(spec.weight_shape)
    x = rng.standard_normal(spec.input_shape)
    y = rng.standard_normal(spec.output_shape)
    op = ca.conv_operator(spec, w)
    expected = torch_conv(spec, x, w).numpy().ravel()
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(op.matvec(x.ravel()), expected, rtol=0, atol=1e-12 * scale)
    adjoint = torch_jacobian(spec, w).T @ y.ravel()
    scale = max(1.0, np.abs(adjoint).max())
    np.testing.assert_allclose(op.rmatvec(y.ravel()), adjoint, rtol=0, atol=1e-12 * scale)


@given(one_group_specs(), st.integers(0, 2**31))
def test_wide_products_equal_torch(spec, seed):
    """One group, float64: the in-place BLAS route on the stride phases, both ways, to 1e-12."""
    forward = spec.forward if spec.transposed else spec
    routes = StridedProducts(forward, np.ones(forward.weight_shape))
    out = forward.forward_output_spatial
    extent = [-(-g // s) for g, s in zip(routes.grid, forward.stride)]  # phase grid per axis
    steps = [int(np.prod(extent[a + 1 :])) for a in range(len(out))]
    work = sum((o - 1) * g for o, g in zip(out, steps)) + 1
    assert (routes.wide is not None) == (work <= 1.5 * np.prod(out))
    _check_against_torch(spec, seed)


@given(conv_specs(transposed=None), st.integers(0, 2**31))
def test_products_equal_torch_on_float_weights(spec, seed):
    """Every ordinary layer (strides, groups, padding modes), float weights, to 1e-12."""
    if spec.transposed and (spec.padding_mode != "zeros" or any(b != a for b, a in spec.padding)):
        assume(False)  # no torch op for it: test_matrix_oracle checks it through the matrix
    _check_against_torch(spec, seed)


def test_wide_route_keeps_complex_vectors():
    """Complex vectors take the im2col route: real and imaginary parts each exact."""
    spec = ca.ConvSpec((2, 6, 5), 3, 3, padding=1, padding_mode="reflect")
    rng = np.random.default_rng(1)
    w = rng.standard_normal(spec.weight_shape)
    x = rng.standard_normal(spec.input_shape) + 1j * rng.standard_normal(spec.input_shape)
    op = ca.conv_operator(spec, w)
    real = torch_conv(spec, x.real, w).numpy().ravel()
    imag = torch_conv(spec, x.imag, w).numpy().ravel()
    np.testing.assert_allclose(op.matvec(x.ravel()), real + 1j * imag, rtol=0, atol=1e-12)
