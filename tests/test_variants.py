"""Textbook variants (tiled, locally connected, channel tables, pooling) against torch."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import F, torch, torch_conv
from strategies import conv_specs

import convalgebra as ca


def _tiled_reference(spec, x, w):
    """Ordinary torch convolution with each tile's kernel, picked per output position."""
    base = ca.ConvSpec(
        spec.input_shape,
        spec.out_channels,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        groups=spec.groups,
        padding_mode=spec.padding_mode,
        flip=spec.flip,
    )
    out = np.zeros(base.output_shape)
    grids = np.meshgrid(*[np.arange(n) for n in base.output_shape[1:]], indexing="ij")
    for t in itertools.product(*[range(n) for n in spec.tile]):
        full = torch_conv(base, x, w[t]).numpy()
        mask = np.ones(base.output_shape[1:], dtype=bool)
        for g, ti, n in zip(grids, t, spec.tile):
            mask &= (g % n) == ti
        out[:, mask] = full[:, mask]
    return out


@given(conv_specs(ndims=(1, 2), modes=("zeros", "reflect", "circular")), st.data())
def test_tiled_matches_per_tile_torch_convolutions(spec, data):
    tile = tuple(data.draw(st.integers(1, n)) for n in spec.output_shape[1:])
    tiled = ca.tiled(
        spec.input_shape,
        spec.out_channels,
        spec.kernel_size,
        tile,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        groups=spec.groups,
        padding_mode=spec.padding_mode,
        flip=spec.flip,
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    w = rng.integers(-4, 5, tiled.weight_shape).astype(float)
    x = rng.integers(-4, 5, tiled.input_shape).astype(float)
    expected = _tiled_reference(tiled, x, w)
    assert np.array_equal(ca.conv_matrix(tiled, w) @ x.ravel(), expected.ravel())


def test_locally_connected_has_one_kernel_per_output_position():
    spec = ca.locally_connected((2, 6, 5), 3, (3, 2), stride=(1, 2))
    assert spec.tile == spec.output_shape[1:] == (4, 2)
    assert spec.n_weights == 4 * 2 * 3 * 2 * 3 * 2
    t = ca.triples(spec)
    assert np.all(t.sharing() == 1)  # unshared: every weight used exactly once


def test_tiled_parameter_counts_interpolate_between_conv_and_locally_connected():
    # seed example 13: t = 1 is convolution, t = output width is locally connected
    conv = ca.ConvSpec((1, 10), 1, 3, bias=False)
    assert ca.tiled((1, 10), 1, 3, 1, bias=False).n_params == conv.n_params == 3
    assert ca.tiled((1, 10), 1, 3, 2, bias=False).n_params == 6
    assert ca.locally_connected((1, 10), 1, 3, bias=False).n_params == 8 * 3


@given(conv_specs(ndims=(1, 2), modes=("zeros", "replicate")), st.data())
def test_channel_table_equals_masked_torch_convolution(spec, data):
    c_out, c_in = spec.out_channels, spec.in_channels
    cells = data.draw(st.lists(st.booleans(), min_size=c_out * c_in, max_size=c_out * c_in))
    table = np.array(cells).reshape(c_out, c_in)
    table[np.arange(c_out), np.arange(c_out) % c_in] = True
    restricted = ca.ConvSpec(
        spec.input_shape,
        c_out,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        padding_mode=spec.padding_mode,
        flip=spec.flip,
        channel_table=table.tolist(),
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    w = rng.integers(-4, 5, restricted.weight_shape).astype(float)
    x = rng.integers(-4, 5, restricted.input_shape).astype(float)
    masked = w * table.reshape(table.shape + (1,) * spec.ndim)
    plain = ca.ConvSpec(
        restricted.input_shape,
        c_out,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        padding_mode=spec.padding_mode,
        flip=spec.flip,
    )
    expected = torch_conv(plain, x, masked).numpy()
    assert np.array_equal(ca.conv_matrix(restricted, w) @ x.ravel(), expected.ravel())
    assert restricted.n_weights == table.sum() * math.prod(spec.kernel_size)


def test_lenet5_c3_connection_table_parameters():
    # LeCun et al. 1998, table 1: C3 reads 60 (input map, output map) pairs of 5x5 kernels
    cols = [
        (0, 1, 2),
        (1, 2, 3),
        (2, 3, 4),
        (3, 4, 5),
        (0, 4, 5),
        (0, 1, 5),
        (0, 1, 2, 3),
        (1, 2, 3, 4),
        (2, 3, 4, 5),
        (0, 3, 4, 5),
        (0, 1, 4, 5),
        (0, 1, 2, 5),
        (0, 1, 3, 4),
        (1, 2, 4, 5),
        (0, 2, 3, 5),
        (0, 1, 2, 3, 4, 5),
    ]
    table = [[ci in c for ci in range(6)] for c in cols]
    spec = ca.ConvSpec((6, 14, 14), 16, 5, channel_table=table)
    assert spec.n_params == 1516
    assert spec.output_shape == (16, 10, 10)


pool_params = st.tuples(
    st.integers(1, 3),  # channels
    st.sampled_from([1, 2, 3]),  # spatial dims
    st.integers(1, 3),  # kernel
    st.integers(1, 3),  # stride
    st.booleans(),  # ceil_mode
    st.booleans(),  # count_include_pad
)


@given(pool_params, st.integers(0, 1), st.integers(0, 2**31))
def test_avg_pool_matrix_equals_torch(params, pad, seed):
    c, nd, k, s, ceil, include = params
    pad = min(pad, k // 2)
    rng = np.random.default_rng(seed)
    shape = (c, *rng.integers(k, k + 5, nd))
    x = rng.standard_normal(shape)
    m = ca.avg_pool_matrix(shape, k, s, pad, ceil_mode=ceil, count_include_pad=include)
    op = getattr(F, f"avg_pool{nd}d")
    ref = op(torch.tensor(x)[None], k, s, pad, ceil_mode=ceil, count_include_pad=include)[0]
    np.testing.assert_allclose(m @ x.ravel(), ref.numpy().ravel(), rtol=1e-13, atol=1e-13)


@given(pool_params, st.integers(0, 1), st.integers(1, 2), st.integers(0, 2**31))
def test_max_pool_selection_equals_torch(params, pad, dilation, seed):
    c, nd, k, s, ceil, _ = params
    pad = min(pad, k // 2)
    rng = np.random.default_rng(seed)
    shape = (c, *rng.integers(dilation * (k - 1) + 1, dilation * (k - 1) + 6, nd))
    x = rng.integers(-3, 4, shape).astype(float)  # ties: the first maximum wins, as in torch
    sel = ca.max_pool_selection(x, k, s, pad, dilation, ceil_mode=ceil)
    op = getattr(F, f"max_pool{nd}d")
    ref, idx = op(torch.tensor(x)[None], k, s, pad, dilation, ceil_mode=ceil, return_indices=True)
    assert np.array_equal(sel @ x.ravel(), ref[0].numpy().ravel())
    per_channel = int(np.prod(shape[1:]))
    expected_cols = idx[0].numpy().reshape(c, -1) + np.arange(c)[:, None] * per_channel
    assert np.array_equal(sel.indices, expected_cols.ravel())


def test_max_pool_selection_depends_on_the_input():
    a = ca.max_pool_selection(np.array([[1.0, 2.0]]), 2)
    b = ca.max_pool_selection(np.array([[2.0, 1.0]]), 2)
    assert (a != b).nnz > 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ca.avg_pool_matrix((1, 4), 2, padding=2), "at most half"),
        (lambda: ca.avg_pool_matrix((1, 4), 2, divisor_override=0), "divisor_override"),
        (lambda: ca.max_pool_selection(np.zeros(4), 2), "shape"),
        (lambda: ca.tiled((1, 5), 1, 3, tile=0), "tile"),
        (lambda: ca.ConvSpec((2, 5), 2, 3, channel_table=[[1, 0]]), "channel_table"),
        (lambda: ca.ConvSpec((2, 5), 2, 3, channel_table=[[0, 0], [1, 1]]), "read no input"),
    ],
    ids=["pool-padding", "divisor", "pool-shape", "tile-zero", "table-shape", "table-empty-row"],
)
def test_variant_bad_input(call, message):
    with pytest.raises(ca.ConvAlgebraError, match=message):
        call()


@pytest.mark.parametrize(
    "kernel, padding, dilation", [(3, 2, 2), (3, 1, 2), (4, 2, 1), (3, 2, 1), (2, 1, 3), (5, 3, 1)]
)
def test_pool_padding_rule_is_torchs(kernel, padding, dilation):
    x = np.zeros((1, 12, 12))
    try:
        F.max_pool2d(torch.tensor(x)[None], kernel, 1, padding, dilation)
        torch_accepts = True
    except RuntimeError:
        torch_accepts = False
    if torch_accepts:
        assert ca.max_pool_selection(x, kernel, 1, padding, dilation).shape[1] == 144
    else:
        with pytest.raises(ca.ConvAlgebraError, match="at most half of kernel_size"):
            ca.max_pool_selection(x, kernel, 1, padding, dilation)
