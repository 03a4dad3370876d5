"""conv_matrix against PyTorch (the independent oracle), over random configurations."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import torch_conv, torch_jacobian
from strategies import conv_specs

import convalgebra as ca


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


@given(conv_specs(transposed=None), st.integers(0, 2**31), st.sampled_from(["numpy", "torch"]))
def test_operator_backends_equal_torch_on_integers(spec, seed, backend):
    """Both product routes, forward and adjoint, exactly equal to torch (integer inputs)."""
    rng = np.random.default_rng(seed)
    w = _weights(spec, seed)
    x = rng.integers(-4, 5, spec.input_shape).astype(np.float64)
    y = rng.integers(-4, 5, spec.output_shape).astype(np.float64)
    op = ca.conv_operator(spec, w, backend=backend)
    assert np.array_equal(op.matvec(x.ravel()), _reference(spec, x, w).ravel())
    if spec.transposed and (spec.padding_mode != "zeros" or any(b != a for b, a in spec.padding)):
        dense = _forward_rows(spec, w).T.toarray()  # no torch op: its forward is checked above
    else:
        dense = torch_jacobian(spec, w)
    assert np.array_equal(op.rmatvec(y.ravel()), dense.T @ y.ravel())


def test_operator_backend_is_checked():
    spec = ca.ConvSpec((1, 5), 1, 3)
    with pytest.raises(ca.ConvAlgebraError, match="backend must be"):
        ca.conv_operator(spec, np.ones(spec.weight_shape), backend="jax")


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
        spec.input_shape,
        spec.out_channels,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        groups=spec.groups,
        padding_mode=spec.padding_mode,
        flip=spec.flip,
        tile=1,
    )
    generic = ca.conv_matrix(tiled, w.reshape(tiled.weight_shape))
    assert (generic != ca.conv_matrix(spec, w)).nnz == 0


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.complex128], ids=str)
def test_matrix_keeps_weight_dtype(dtype):
    spec = ca.ConvSpec((1, 5), 1, 3)
    w = np.arange(3, dtype=dtype).reshape(1, 1, 3)
    assert ca.conv_matrix(spec, w).dtype == dtype


def _complex(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@given(conv_specs(transposed=None), st.integers(0, 2**31))
def test_complex_operator_adjoint_is_the_conjugate_transpose(spec, seed):
    """Dot test <y, A x> == <A^H y, x>, and A x equals torch's complex convolution."""
    rng = np.random.default_rng(seed)
    w = _complex(rng, spec.weight_shape)
    op = ca.conv_operator(spec, w)
    x, y = _complex(rng, op.shape[1]), _complex(rng, op.shape[0])
    np.testing.assert_allclose(np.vdot(y, op @ x), np.vdot(op.rmatvec(y), x), rtol=1e-10)
    np.testing.assert_allclose(
        op.rmatvec(y), ca.conv_matrix(spec, w).conj().T @ y, rtol=1e-10, atol=1e-10
    )
    expected = _reference(spec, x.reshape(spec.input_shape), w)
    np.testing.assert_allclose(op @ x, np.ravel(expected), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "extra",
    [dict(tile=2), dict(tile=(3, 1)), dict(channel_table=[[1, 0], [1, 1], [0, 1]])],
    ids=["tile2", "tile31", "table"],
)
def test_complex_tiled_and_table_operator_dot_test(extra):
    rng = np.random.default_rng(3)
    spec = ca.ConvSpec((2, 5, 4), 3, 2, padding=1, padding_mode="reflect", **extra)
    w = _complex(rng, spec.weight_shape)
    op, m = ca.conv_operator(spec, w), ca.conv_matrix(spec, w)
    x, y = _complex(rng, op.shape[1]), _complex(rng, op.shape[0])
    np.testing.assert_allclose(op @ x, m @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.vdot(y, op @ x), np.vdot(op.rmatvec(y), x), rtol=1e-10)
    if "tile" in extra:  # a one-tile layout repeated everywhere is the ordinary convolution
        same = np.broadcast_to(w[(0,) * spec.ndim], w.shape)
        plain = ca.ConvSpec((2, 5, 4), 3, 2, padding=1, padding_mode="reflect")
        np.testing.assert_allclose(
            ca.conv_operator(spec, same) @ x,
            torch_conv(plain, x.reshape(2, 5, 4), same[(0,) * spec.ndim]).numpy().ravel(),
            rtol=1e-10,
            atol=1e-10,
        )


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32])
def test_narrow_integer_weights_do_not_wrap_when_taps_coincide(dtype):
    spec = ca.ConvSpec((1, 2), 1, 3, padding=1, padding_mode="reflect")
    w = np.array([[[100, 0, 100]]], dtype=dtype)
    got = ca.conv_matrix(spec, w).toarray()
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, torch_jacobian(spec, w.astype(np.float64)))
    assert got.max() == 200


def _report_line(spec, start):
    from convalgebra.report import matrix_report

    return next(
        line for line in matrix_report(spec, symbolic=False).splitlines() if line.startswith(start)
    )


@given(
    conv_specs(ndims=(1, 2), modes=("reflect", "replicate", "circular", "zeros")),
    st.integers(0, 2**31),
)
def test_report_counts_the_real_non_zeros_of_the_torch_jacobian(spec, seed):
    w = np.random.default_rng(seed).uniform(1, 2, spec.weight_shape)  # positive: no cancellation
    dense = torch_jacobian(spec, w)
    nnz = int(np.count_nonzero(dense))
    assert f" {nnz:,} non-zeros ({100 * nnz / dense.size:.1f}% dense)" in _report_line(
        spec, "matrix:"
    )


def test_report_sharing_counts_only_weights_a_channel_table_connects():
    spec = ca.ConvSpec((2, 4), 2, 3, channel_table=[[1, 0], [1, 1]])
    assert _report_line(spec, "parameter sharing") == (
        "parameter sharing: each of the 9 connected weights is used 2 times"
    )


def test_tiled_operator_builds_its_triples_once(monkeypatch):
    import convalgebra.operators as ops

    spec = ca.ConvSpec((2, 6, 5), 3, 3, padding=1, tile=2)
    w = np.random.default_rng(0).standard_normal(spec.weight_shape)
    x = np.random.default_rng(1).standard_normal(int(np.prod(spec.input_shape)))
    y = np.random.default_rng(2).standard_normal(int(np.prod(spec.output_shape)))
    m = ca.conv_matrix(spec, w)
    op = ca.conv_operator(spec, w)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("triples rebuilt on a product")

    monkeypatch.setattr(ops, "iter_triples", no_rebuild)
    monkeypatch.setattr(ops, "triples", no_rebuild)
    for _ in range(2):
        np.testing.assert_allclose(op @ x, m @ x, rtol=1e-12)
        np.testing.assert_allclose(op.rmatvec(y), m.T @ y, rtol=1e-12)
