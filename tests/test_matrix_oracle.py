"""conv_matrix against PyTorch (the independent oracle), over random configurations."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convalgebra as ca
from oracle import torch_conv, torch_jacobian
from strategies import conv_specs


def _weights(spec, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(-4, 5, spec.weight_shape).astype(np.float64)


@given(conv_specs(), st.integers(0, 2**31))
def test_matrix_equals_torch_jacobian(spec, seed):
    w = _weights(spec, seed)
    assert np.array_equal(ca.conv_matrix(spec, w).toarray(), torch_jacobian(spec, w))


@given(conv_specs(transposed=True, modes=("zeros",), symmetric=True), st.integers(0, 2**31))
def test_transposed_matrix_equals_torch_conv_transpose(spec, seed):
    w = _weights(spec, seed)
    assert np.array_equal(ca.conv_matrix(spec, w).toarray(), torch_jacobian(spec, w))


@given(conv_specs(transposed=True), st.integers(0, 2**31))
def test_transposed_is_transpose_of_forward(spec, seed):
    w = _weights(spec, seed)
    assert (ca.conv_matrix(spec, w) != _forward_rows(spec, w).T).nnz == 0


def _forward_rows(spec, w):
    """The forward matrix, restricted to the rows the transposed layer's input indexes.

    With output_padding >= stride (allowed when < dilation) the forward convolution from the
    transposed output size has more outputs than the transposed layer has inputs.
    """
    fwd = spec.forward
    rows = np.arange(np.prod(fwd.output_shape)).reshape(fwd.output_shape)
    keep = rows[(slice(None), *(slice(0, n) for n in spec.input_shape[1:]))]
    return ca.conv_matrix(fwd, w)[keep.ravel()]


@given(conv_specs(transposed=None), st.integers(0, 2**31))
def test_matrix_applied_equals_torch_op(spec, seed):
    rng = np.random.default_rng(seed)
    w = _weights(spec, seed)
    x = rng.integers(-4, 5, spec.input_shape).astype(np.float64)
    expected = _reference(spec, x, w)
    assert np.array_equal(ca.conv_matrix(spec, w) @ x.ravel(), expected.ravel())


def _reference(spec, x, w):
    if spec.transposed and (spec.padding_mode != "zeros" or any(b != a for b, a in spec.padding)):
        return _forward_rows(spec, w).T @ x.ravel()  # no torch op: adjoint checked above
    return torch_conv(spec, x, w).numpy()


@given(conv_specs(transposed=None), st.integers(0, 2**31))
def test_operator_matches_matrix(spec, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(spec.weight_shape)
    m = ca.conv_matrix(spec, w)
    op = ca.conv_operator(spec, w)
    x = rng.standard_normal(m.shape[1])
    y = rng.standard_normal(m.shape[0])
    np.testing.assert_allclose(op @ x, m @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(y), m.T @ y, rtol=1e-12, atol=1e-12)


@given(conv_specs(transposed=None), st.integers(1, 50))
def test_row_blocks_assemble_the_forward_matrix(spec, block_rows):
    w = _weights(spec, block_rows)
    blocks = [b for _, b in ca.conv_matrix_blocks(spec, w, block_rows)]
    import scipy.sparse as sp

    full = sp.vstack(blocks).tocsr()
    forward = ca.conv_matrix(spec, w)
    forward = forward.T if spec.transposed else forward
    assert (full != forward).nnz == 0


@given(conv_specs(), st.integers(0, 2**31))
def test_single_tile_is_ordinary_convolution(spec, seed):
    w = _weights(spec, seed)
    tiled = ca.ConvSpec(
        spec.input_shape, spec.out_channels, spec.kernel_size, stride=spec.stride,
        padding=spec.padding, dilation=spec.dilation, groups=spec.groups,
        padding_mode=spec.padding_mode, flip=spec.flip, tile=1,
    )
    generic = ca.conv_matrix(tiled, w.reshape(tiled.weight_shape))
    assert (generic != ca.conv_matrix(spec, w)).nnz == 0


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.complex128], ids=str)
def test_matrix_keeps_weight_dtype(dtype):
    spec = ca.ConvSpec((1, 5), 1, 3)
    w = np.arange(3, dtype=dtype).reshape(1, 1, 3)
    assert ca.conv_matrix(spec, w).dtype == dtype
