"""New derivation kinds against brute force: im2col's patch matrix is torch's unfold (after the
same padding), its product is the layer's output; one spec's receptive field is its gradient probe."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import conv_specs

import convalgebra as ca
from convalgebra.derivations.lowering import patch_matrix

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
import torch.nn.functional as F  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def _plain(spec: ca.ConvSpec) -> bool:
    return not spec.transposed and spec.groups == 1 and not spec.flip


@SETTINGS
@given(conv_specs(ndims=(2,), max_size=6, max_channels=3), st.integers(0, 2**16))
def test_patch_matrix_is_torch_unfold_of_the_padded_input(spec, seed):
    assume(_plain(spec))
    x = np.random.default_rng(seed).integers(-4, 5, spec.input_shape).astype(float)
    (pt, pb), (pl, pr) = spec.padding
    xt = torch.as_tensor(x)[None]
    mode = {"zeros": "constant"}.get(spec.padding_mode, spec.padding_mode)
    padded = F.pad(xt, (pl, pr, pt, pb), mode=mode)
    cols = F.unfold(padded, spec.kernel_size, dilation=spec.dilation, stride=spec.stride)[
        0
    ].T.numpy()
    np.testing.assert_array_equal(patch_matrix(spec, x).astype(float), cols)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(conv_specs(ndims=(1, 2), max_size=4, max_channels=2), st.integers(0, 2**16))
def test_im2col_product_is_the_layer_output(spec, seed):
    assume(_plain(spec))
    d = ca.derive("im2col", spec, max_rows=10**3, max_cols=10**3)
    assert d.verify() > 0  # W X^T checked equal to M a entry by entry
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, spec.input_shape).astype(float)
    w = rng.integers(-3, 4, spec.weight_shape).astype(float)
    z = w.reshape(spec.out_channels, -1) @ patch_matrix(spec, x).astype(float).T
    expected = ca.conv_matrix(spec, w) @ x.ravel()
    np.testing.assert_allclose(z.ravel(), expected)


def test_im2col_refuses_layers_it_does_not_lower():
    with pytest.raises(ca.ConvAlgebraError, match="one group"):
        ca.derive("im2col", ca.ConvSpec((2, 4), 2, 3, groups=2))
    with pytest.raises(TypeError, match="ConvSpec"):
        ca.derive("im2col", "layer")


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(conv_specs(ndims=(1, 2), modes=("zeros",), max_size=9, max_channels=1))
def test_single_spec_receptive_field_is_the_gradient_probe(spec):
    assume(not spec.transposed and not spec.flip)
    d = ca.derive("receptive_field", spec, axes=[0])
    x = torch.zeros((1, *spec.input_shape), dtype=torch.float64, requires_grad=True)
    w = torch.ones(spec.weight_shape, dtype=torch.float64)
    conv = getattr(F, f"conv{spec.ndim}d")
    pad = [p for pair in reversed(spec.padding) for p in pair]
    out = conv(F.pad(x, pad), w, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    from convalgebra.connectivity import axis_table

    inside = [np.flatnonzero((axis_table(spec, a) >= 0).all(axis=1)) for a in range(spec.ndim)]
    assume(all(len(i) for i in inside))  # a unit whose window lies inside the input
    out[(0, 0, *(int(i[0]) for i in inside))].backward()
    touched = np.nonzero(x.grad[0, 0].numpy().reshape(x.shape[2], -1).any(axis=1))[0]
    assert d.result[0] == touched.max() - touched.min() + 1


def _torch_conv(spec: ca.ConvSpec):
    cls = getattr(torch.nn, f"Conv{spec.ndim}d")
    return cls(
        spec.in_channels,
        spec.out_channels,
        spec.kernel_size,
        stride=spec.stride,
        padding=[b for b, _ in spec.padding],
        dilation=spec.dilation,
        groups=spec.groups,
        bias=spec.bias,
    )


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.integers(1, 4),
    st.integers(1, 8),
    st.sampled_from([1, 3, 5]),
    st.integers(3, 9),
    st.booleans(),
)
def test_cost_of_a_separable_block_counts_what_torch_holds(c_in, c_out, k, size, bn):
    p = k // 2
    dw = ca.ConvSpec((c_in, size, size), c_in, k, padding=p, groups=c_in, bias=False)
    pw = ca.ConvSpec((c_in, size, size), c_out, 1, bias=False)
    d = ca.derive("cost", [dw, pw], batchnorm=bn)
    assert d.verify() > 0
    modules = [_torch_conv(dw), _torch_conv(pw)]
    x = torch.zeros(1, c_in, size, size)
    macs = 0
    for m, spec in zip(modules, (dw, pw), strict=True):
        out = m(x)  # dense MACs: every output element times the taps it reads (padding included)
        macs += out.numel() * (spec.in_channels // spec.groups) * int(np.prod(m.kernel_size))
        x = out
    assert d.result["params"] == sum(p.numel() for m in modules for p in m.parameters())
    assert d.result["macs"] == macs
    std = _torch_conv(ca.ConvSpec((c_in, size, size), c_out, k, padding=p, bias=False))
    assert d.result["baseline_params"] == sum(q.numel() for q in std.parameters())
    if bn:
        norms = [torch.nn.BatchNorm2d(c_in), torch.nn.BatchNorm2d(c_out)]
        assert d.result["bn_params"] == sum(q.numel() for n in norms for q in n.parameters())
        assert d.result["bn_buffers"] == sum(b.numel() for n in norms for b in n.buffers())
    if k > 1:
        assert "1/C_out + 1/K" in d.to_text()


def test_cost_refuses_a_block_whose_shapes_do_not_chain():
    with pytest.raises(ca.ConvAlgebraError, match="reads"):
        ca.derive("cost", [ca.ConvSpec((1, 8), 2, 3), ca.ConvSpec((1, 6), 1, 3)])


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    conv_specs(ndims=(1, 2), transposed=True, symmetric=True, max_size=4, max_channels=4),
    st.integers(0, 2**16),
)
def test_zero_insertion_and_direct_convolution_equal_torch_conv_transpose(spec, seed):
    from convalgebra.derivations.lowering import direct_equivalent, direct_weight, zero_inserted

    assume(
        all(
            b <= d * (k - 1)
            for (b, _), k, d in zip(spec.padding, spec.kernel_size, spec.dilation, strict=False)
        )
    )
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, spec.input_shape).astype(float)
    w = rng.integers(-3, 4, spec.weight_shape).astype(float)
    direct = direct_equivalent(spec)
    got = ca.conv_matrix(direct, direct_weight(spec, w)) @ zero_inserted(spec, x).ravel()
    conv_t = getattr(F, f"conv_transpose{spec.ndim}d")
    wt = torch.as_tensor(w)
    if spec.flip:
        wt = torch.flip(wt, dims=list(range(2, 2 + spec.ndim)))
    want = conv_t(
        torch.as_tensor(x)[None],
        wt,
        stride=spec.stride,
        padding=[b for b, _ in spec.padding],
        output_padding=spec.output_padding,
        groups=spec.groups,
        dilation=spec.dilation,
    )[0]
    np.testing.assert_allclose(got, want.numpy().ravel())


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(conv_specs(ndims=(1, 2), transposed=True, symmetric=True, max_size=3, max_channels=2))
def test_transposed_derivation_verifies(spec):
    assume(
        all(
            b <= d * (k - 1)
            for (b, _), k, d in zip(spec.padding, spec.kernel_size, spec.dilation, strict=False)
        )
    )
    d = ca.derive("transposed", spec)
    assert d.verify() >= np.prod(spec.output_shape)  # every output of the direct form checked
    assert d.result == spec.output_shape


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(["max", "avg"]),
    st.integers(1, 2),
    st.integers(2, 3),
    st.integers(1, 3),
    st.integers(0, 1),
    st.booleans(),
    st.integers(3, 6),
    st.integers(0, 2**16),
)
def test_pooling_forward_and_gradient_routing_equal_torch(
    kind, c, k, s, p, include_pad, size, seed
):
    from convalgebra.network.layers import AvgPool, MaxPool

    assume(2 * p <= k and size + 2 * p >= k)
    rng = np.random.default_rng(seed)
    x = rng.integers(-5, 6, (c, size, size)).astype(float)
    layer = (
        MaxPool(k, stride=s, padding=p)
        if kind == "max"
        else AvgPool(k, stride=s, padding=p, count_include_pad=include_pad)
    )
    d = ca.derive("pooling", layer, x=x)
    assert d.verify() > 0
    xt = torch.as_tensor(x)[None].requires_grad_()
    out = (
        F.max_pool2d(xt, k, s, p)
        if kind == "max"
        else F.avg_pool2d(xt, k, s, p, count_include_pad=include_pad)
    )
    g = rng.integers(-3, 4, out.shape).astype(float)
    out.backward(torch.as_tensor(g))
    routing = d.result
    # float64 sums in two orders: outputs that cancel to 0 differ by rounding (1e-17), so the
    # absolute tolerance is rounding's, relative to the data's scale (|x|, |g| <= 5)
    np.testing.assert_allclose(routing @ x.ravel(), out.detach().numpy().ravel(), atol=1e-12)
    np.testing.assert_allclose(routing.T @ g.ravel(), xt.grad.numpy().ravel(), atol=1e-12)


def test_pooling_needs_a_pooling_layer_and_numbers():
    from convalgebra.network.layers import MaxPool

    with pytest.raises(TypeError, match="MaxPool or AvgPool"):
        ca.derive("pooling", ca.ConvSpec((1, 4), 1, 2), x=np.zeros((1, 4)))
    with pytest.raises(ca.ConvAlgebraError, match="numeric array"):
        ca.derive("pooling", MaxPool(2), x=np.zeros(4))
