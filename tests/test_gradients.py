"""Input, weight and bias gradients against torch autograd, exactly, on integer data."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oracle import torch, torch_conv, torch_grads
from strategies import conv_specs

import convalgebra as ca
from convalgebra.transpose import transpose_spec

METHODS = ["matrix", "operator"]


def _data(spec, seed):
    rng = np.random.default_rng(seed)
    ints = lambda shape: rng.integers(-4, 5, shape).astype(np.float64)  # noqa: E731
    return (
        ints(spec.input_shape),
        ints(spec.weight_shape),
        ints(spec.out_channels),
        ints(spec.output_shape),
    )


def _ours(spec, x, w, g, method):
    return (
        ca.input_gradient(spec, w, g, method=method),
        ca.weight_gradient(spec, x, g, method=method),
        ca.bias_gradient(spec, g),
    )


def _assert_equal(ours, expected):
    for name, a, b in zip(("input", "weight", "bias"), ours, expected):
        assert a.shape == b.shape, name
        assert np.array_equal(a, b), name


def _assert_both_methods(spec, x, w, g, expected):
    """Stored-matrix and matrix-free paths, each exactly equal to the oracle."""
    for method in METHODS:
        _assert_equal(_ours(spec, x, w, g, method)[: len(expected)], expected)


def _torch_transposed_grads(spec, x, w, b, g):
    """Gradients of a transposed layer defined as the adjoint of its forward torch op.

    ``y = M_f^T x`` is the vector-Jacobian product of the forward op at ``x``; differentiating
    that product again (double backward) gives the gradients with respect to ``x`` and ``w``.
    """
    forward = spec.forward
    xt = torch.as_tensor(x).requires_grad_()
    wt = torch.as_tensor(w).requires_grad_()
    bt = torch.as_tensor(b).requires_grad_()
    u = torch.zeros(forward.input_shape, dtype=torch.float64, requires_grad=True)
    (y,) = torch.autograd.grad(torch_conv(forward, u, wt), u, xt, create_graph=True)
    y = y + bt.reshape(-1, *[1] * spec.ndim)
    grads = torch.autograd.grad(y, (xt, wt, bt), torch.as_tensor(g))
    return tuple(t.detach().numpy() for t in grads)


@given(spec=conv_specs(), seed=st.integers(0, 2**31))
def test_forward_gradients_equal_torch_autograd(spec, seed):
    x, w, b, g = _data(spec, seed)
    _assert_both_methods(spec, x, w, g, torch_grads(spec, x, w, b, g))


@given(spec=conv_specs(transposed=True), seed=st.integers(0, 2**31))
def test_transposed_gradients_equal_torch_autograd(spec, seed):
    x, w, b, g = _data(spec, seed)
    if any(before != after for before, after in spec.padding):
        assume(spec.forward.output_shape == spec.input_shape)
        expected = _torch_transposed_grads(spec, x, w, b, g)
    else:
        expected = torch_grads(spec, x, w, b, g)  # torch's conv_transpose op
    _assert_both_methods(spec, x, w, g, expected)


@settings(max_examples=100)
@given(forward=conv_specs(modes=("circular", "reflect", "replicate")), seed=st.integers(0, 2**31))
def test_transposed_padding_modes_equal_adjoint_of_torch_op(forward, seed):
    spec = transpose_spec(forward)
    x, w, b, g = _data(spec, seed)
    _assert_both_methods(spec, x, w, g, _torch_transposed_grads(spec, x, w, b, g))


def test_double_backward_oracle_agrees_with_torch_conv_transpose():
    spec = ca.ConvSpec(
        (2, 3, 4), 4, 3, stride=2, padding=1, output_padding=1, groups=2, transposed=True
    )
    x, w, b, g = _data(spec, 7)
    _assert_equal(_torch_transposed_grads(spec, x, w, b, g), torch_grads(spec, x, w, b, g))


# ---------------------------------------------------------------- tiled / channel table
def _torch_tiled(spec, x, w):
    """Tiled convolution in torch: kernel t at the output positions congruent to t."""
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
    coords = np.indices(spec.output_shape[1:])
    out = 0
    for t in np.ndindex(*spec.tile):
        mask = np.logical_and.reduce([c % n == i for c, n, i in zip(coords, spec.tile, t)])
        out = out + torch_conv(base, x, w[t]) * torch.as_tensor(mask)
    return out


@settings(max_examples=60)
@given(spec=conv_specs(max_size=5), tile=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_tiled_gradients_equal_torch_autograd(spec, tile, seed):
    try:
        spec = ca.ConvSpec(
            spec.input_shape,
            spec.out_channels,
            spec.kernel_size,
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
            groups=spec.groups,
            padding_mode=spec.padding_mode,
            flip=spec.flip,
            tile=tile,
        )
    except ca.ConvAlgebraError:
        assume(False)
    x, w, b, g = _data(spec, seed)
    xt, wt = torch.as_tensor(x).requires_grad_(), torch.as_tensor(w).requires_grad_()
    expected = torch.autograd.grad(_torch_tiled(spec, xt, wt), (xt, wt), torch.as_tensor(g))
    _assert_both_methods(spec, x, w, g, [e.numpy() for e in expected])


@settings(max_examples=60)
@given(spec=conv_specs(ndims=(1, 2)), seed=st.integers(0, 2**31), data=st.data())
def test_channel_table_gradients_equal_masked_torch_conv(spec, seed, data):
    c_out, c_in = spec.out_channels, spec.in_channels
    table = np.array(
        data.draw(
            st.lists(
                st.lists(st.booleans(), min_size=c_in, max_size=c_in),
                min_size=c_out,
                max_size=c_out,
            )
        )
    )
    table[np.arange(c_out), np.arange(c_out) % c_in] = True  # every output reads something
    spec = ca.ConvSpec(
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
    x, w, b, g = _data(spec, seed)
    mask = torch.as_tensor(table.reshape(c_out, c_in, *[1] * spec.ndim).astype(np.float64))
    xt, wt = torch.as_tensor(x).requires_grad_(), torch.as_tensor(w).requires_grad_()
    dense = ca.ConvSpec(
        spec.input_shape,
        c_out,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        padding_mode=spec.padding_mode,
        flip=spec.flip,
    )
    out = torch_conv(dense, xt, wt * mask)
    expected = torch.autograd.grad(out, (xt, wt), torch.as_tensor(g))
    _assert_both_methods(spec, x, w, g, [e.numpy() for e in expected])


# -------------------------------------------------------------------- dtypes and agreement
@given(spec=conv_specs(transposed=None), seed=st.integers(0, 2**31))
def test_integer_arguments_give_exact_float64(spec, seed):
    x, w, _, g = _data(spec, seed)
    got = ca.weight_gradient(spec, x.astype(np.int64), g.astype(np.int64))
    assert got.dtype == np.float64
    assert np.array_equal(got, ca.weight_gradient(spec, x, g))


@settings(max_examples=25, deadline=None)
@given(
    spec=conv_specs(transposed=None, bias=None),
    seed=st.integers(0, 2**31),
    method=st.sampled_from(["matrix", "operator"]),
)
def test_complex_gradients_equal_torch_complex_autograd(spec, seed, method):
    """torch's complex convention: conjugate transposes, M(w)^H g and J(x)^H g."""
    if spec.transposed:
        assume(spec.padding_mode == "zeros" and all(b == a for b, a in spec.padding))
    x, w, b, g = _data(spec, seed)
    x2, w2, b2, g2 = _data(spec, seed + 1)
    x, w, b, g = x + 1j * x2, w + 1j * w2, b + 1j * b2, g + 1j * g2
    gx, gw, gb = torch_grads(spec, x, w, b, g)
    np.testing.assert_allclose(ca.input_gradient(spec, w, g, method=method), gx, atol=1e-9)
    np.testing.assert_allclose(ca.weight_gradient(spec, x, g, method=method), gw, atol=1e-9)
    if spec.bias:
        np.testing.assert_allclose(ca.bias_gradient(spec, g), gb, atol=1e-9)


def test_float32_is_kept():
    spec = ca.ConvSpec((1, 5, 5), 2, 3)
    x = np.ones(spec.input_shape, np.float32)
    g = np.ones(spec.output_shape, np.float32)
    assert ca.weight_gradient(spec, x, g).dtype == np.float32


def test_accepts_torch_tensors():
    spec = ca.ConvSpec((1, 5), 1, 3)
    x, w, b, g = _data(spec, 1)
    got = ca.input_gradient(spec, torch.as_tensor(w), torch.as_tensor(g))
    assert np.array_equal(got, torch_grads(spec, x, w, b, g)[0])


def test_resnet_sized_layer_equals_torch_without_storing_the_matrix():
    spec = ca.ConvSpec((16, 28, 28), 16, 3, padding=1)
    x, w, b, g = _data(spec, 3)
    _assert_equal(_ours(spec, x, w, g, "operator"), torch_grads(spec, x, w, b, g))


# ----------------------------------------------------------------------------- errors
SPEC = ca.ConvSpec((2, 5, 5), 3, 3, stride=2)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: ca.input_gradient(SPEC, np.ones((3, 2, 3, 3)), np.ones((3, 3, 3))),
            r"grad_output must have shape \(3, 2, 2\)",
        ),
        (
            lambda: ca.weight_gradient(SPEC, np.ones((2, 5, 5)), np.ones((1, 3, 2, 2))),
            "leading axis of 1: pass one example at a time",
        ),
        (
            lambda: ca.weight_gradient(SPEC, np.ones((2, 5, 4)), np.ones((3, 2, 2))),
            r"x must have shape \(2, 5, 5\)",
        ),
        (
            lambda: ca.input_gradient(SPEC, np.ones((3, 2, 2, 2)), np.ones((3, 2, 2))),
            r"weight must have shape \(3, 2, 3, 3\)",
        ),
        (
            lambda: ca.input_gradient(
                SPEC, np.ones((3, 2, 3, 3)), np.ones((3, 2, 2)), method="fft"
            ),
            "method must be one of",
        ),
        (
            lambda: ca.bias_gradient(ca.ConvSpec((1, 4), 1, 2, bias=False), np.ones((1, 3))),
            "bias=False",
        ),
    ],
    ids=["grad-shape", "batch-axis", "x-shape", "weight-shape", "method", "no-bias"],
)
def test_bad_input_names_what_was_expected(call, message):
    with pytest.raises(ca.ConvAlgebraError, match=message):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: ca.input_gradient((1, 5), np.ones((1, 1, 3)), np.ones((1, 3))),
        lambda: ca.weight_gradient(SPEC, np.ones((2, 5, 5)), np.full((3, 2, 2), "a")),
    ],
    ids=["spec-not-a-ConvSpec", "grad-not-numeric"],
)
def test_wrong_types_raise_type_error(call):
    with pytest.raises(TypeError):
        call()
