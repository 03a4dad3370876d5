"""The operator-expression route of the fixed laws, against torch.

``ops.spec_layer`` (a ConvSpec's layer at any size, every option) evaluated exactly against
torch's own convolution; ``ops.transpose_kernel`` through the oracle; ``CheckResult.all_sizes``
against the law checked size by size; the residual of a failing size against dense matrices.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)

from brute_identities import batched_conv, dense_layer  # noqa: E402
from ops_oracle import evaluate  # noqa: E402
from strategies import conv_specs  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra import ops  # noqa: E402


def _kernel_of(spec):
    shape = spec.weight_shape
    return ops.kernel(
        "w", (math.prod(shape[: len(shape) - spec.ndim - 1]), *shape[-spec.ndim - 1 :])
    )


@settings(max_examples=40)
@given(conv_specs(ndims=(1, 2, 3), transposed=None, max_size=5, max_channels=3), st.data())
@example(ca.ConvSpec((2, 5), 2, 3, padding=((2, 0),), padding_mode="reflect", flip=True), None)
@example(ca.ConvSpec((2, 4), 4, 3, stride=2, groups=2, transposed=True, output_padding=1), None)
def test_spec_layer_is_torchs_layer(spec, data):
    """Every option conv_specs draws (stride, dilation, asymmetric and word paddings, padding
    modes, groups, flip, transposed with output padding): exact values equal torch's."""
    rng = np.random.default_rng(0 if data is None else data.draw(st.integers(0, 2**31)))
    x = rng.integers(-4, 5, spec.input_shape)
    w = rng.integers(-4, 5, spec.weight_shape)
    signal = ops.signal(spec.in_channels, spec.ndim)
    layer = ops.spec_layer(signal, _kernel_of(spec), spec)
    out, _ = ops.evaluate_sides(
        layer,
        layer,
        spec.input_shape[1:],
        {"x": x},
        {"w": w},
    )
    expected = batched_conv(
        spec, torch.tensor(x, dtype=torch.float64)[None], torch.tensor(w, dtype=torch.float64)
    )[0]
    assert out.shape == tuple(expected.shape)
    assert np.array_equal(np.asarray(out.tolist(), dtype=float), expected.numpy())


@settings(max_examples=20)
@given(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(0, 2),
    st.integers(0, 2**31),
)
def test_transpose_kernel_turns_a_transposed_convolution_into_a_convolution(
    nd, c_in, c_out, k, p, seed
):
    """conv_transpose(x, w, padding=p) == conv(x, flip(transpose(w)), padding=k - 1 - p) for
    every size (ops.prove), and the oracle agrees at a random size."""
    assume(p <= k - 1)
    x = ops.signal(c_in, nd)
    w = ops.kernel("w", (c_in, c_out, *(k,) * nd))
    lhs = ops.conv_transpose(x, w, padding=p)
    rhs = ops.conv(x, ops.flip_kernel(ops.transpose_kernel(w)), padding=k - 1 - p)
    proof = ca.prove(lhs, rhs)
    assert proof.holds
    rng = np.random.default_rng(seed)
    n = tuple(int(v) for v in rng.integers(2 * p + 1, 2 * p + 6, nd))  # defined sizes
    values = {"x": rng.integers(-3, 4, (c_in, *n)), "w": rng.integers(-3, 4, w.shape)}
    assert torch.equal(
        evaluate(lhs, {"x": values["x"]}, values), evaluate(rhs, {"x": values["x"]}, values)
    )


@settings(max_examples=15)
@given(conv_specs(ndims=(1,), transposed=False, max_size=5, max_channels=2), st.integers(1, 3))
def test_all_sizes_agrees_with_the_law_size_by_size(spec, amount):
    """translation_equivariance's all-size answer contains exactly the sizes where the
    size-by-size check holds (each of which the brute-force tests hold against torch)."""
    assume(amount < spec.input_shape[1] and amount % spec.stride[0] == 0)
    r = ca.check("translation_equivariance", spec, shift=amount)
    proof = r.all_sizes(max_sizes=400)
    for size in range(amount + 1, 13):
        try:
            at = dataclasses.replace(spec, input_shape=(spec.input_shape[0], size))
        except ca.ConvAlgebraError:
            assert (size,) not in proof.defined
            continue
        assert ca.check("translation_equivariance", at, shift=amount).holds == (
            (size,) in proof.sizes
        )


@settings(max_examples=20)
@given(conv_specs(ndims=(1, 2), transposed=None, max_size=4, max_channels=2))
def test_residual_rows_are_where_the_dense_matrices_differ(spec):
    """The residual of flip equivariance, evaluated at one-hot kernels, against torch's dense
    matrices of both sides."""
    x, w = ops.signal(spec.in_channels, spec.ndim), _kernel_of(spec)
    lhs = ops.spec_layer(ops.flip(x, (1,)), w, spec)
    rhs = ops.flip(ops.spec_layer(x, w, spec), (1,))
    proof = ca.prove(lhs, rhs, size=spec.input_shape[1:])
    n_in = math.prod(spec.input_shape)
    flip_in = np.flip(np.arange(n_in).reshape(spec.input_shape), 1).ravel()
    n_out = math.prod(spec.output_shape)
    flip_out = np.flip(np.arange(n_out).reshape(spec.output_shape), 1).ravel()
    rows = set()
    for e in range(math.prod(spec.weight_shape)):
        k = np.zeros(math.prod(spec.weight_shape))
        k[e] = 1
        m = dense_layer(spec, k.reshape(spec.weight_shape))
        diff = m[:, flip_in] - m[flip_out]
        rows |= set(np.flatnonzero(np.abs(diff).sum(axis=1)).tolist())
    assert proof.holds == (not rows)
    if not proof.holds:
        assert set(np.unique(proof.residual.out).tolist()) == rows
