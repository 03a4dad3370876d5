"""Bad input to the core's public entry points: clear errors naming parameter, value and rule."""

import numpy as np
import pytest
from oracle import torch, torch_conv

import convalgebra as ca
from convalgebra.operators import conv_matrix_blocks, kernel_jacobian
from convalgebra.transpose import transpose_spec
from convalgebra.variants import avg_pool_matrix, max_pool_selection

SPEC = ca.ConvSpec((1, 8), 1, 3, stride=2)
W = np.ones((1, 1, 3))
X = np.arange(8.0).reshape(1, 8)
G = np.ones((1, 3))

CASES = [
    ("transpose_spec str", lambda: transpose_spec(SPEC, "8"), TypeError, "input_size"),
    ("transpose_spec float", lambda: transpose_spec(SPEC, 8.0), TypeError, "input_size"),
    (
        "conv_matrix str spec",
        lambda: ca.conv_matrix("spec", W),
        TypeError,
        "spec must be a ConvSpec",
    ),
    (
        "conv_operator None spec",
        lambda: ca.conv_operator(None, W),
        TypeError,
        "spec must be a ConvSpec",
    ),
    (
        "kernel_jacobian None spec",
        lambda: kernel_jacobian(None, X),
        TypeError,
        "spec must be a ConvSpec",
    ),
    ("bias_jacobian str spec", lambda: ca.bias_jacobian("s"), TypeError, "spec must be a ConvSpec"),
    ("blocks 2.5", lambda: list(conv_matrix_blocks(SPEC, W, 2.5)), TypeError, "block_rows"),
    ("blocks None", lambda: list(conv_matrix_blocks(SPEC, W, None)), TypeError, "block_rows"),
    ("blocks 0", lambda: list(conv_matrix_blocks(SPEC, W, 0)), ca.ConvAlgebraError, "block_rows"),
    ("max_bytes None", lambda: ca.conv_matrix(SPEC, W, max_bytes=None), TypeError, "max_bytes"),
    ("max_bytes str", lambda: kernel_jacobian(SPEC, X, max_bytes="1"), TypeError, "max_bytes"),
    ("max_pool str", lambda: max_pool_selection("abc", 2), TypeError, "real numeric"),
    (
        "max_pool complex",
        lambda: max_pool_selection(np.ones((1, 4)) * 1j, 2),
        TypeError,
        "real numeric",
    ),
    (
        "avg divisor bool",
        lambda: avg_pool_matrix((1, 4), 2, divisor_override=True),
        TypeError,
        "divisor_override",
    ),
    (
        "avg divisor 0",
        lambda: avg_pool_matrix((1, 4), 2, divisor_override=np.int64(0)),
        ca.ConvAlgebraError,
        "divisor_override",
    ),
    ("symbolic bias str", lambda: ca.symbolic_backward(SPEC, bias="yes"), TypeError, "bias"),
]


@pytest.mark.parametrize("call,error,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_transpose_spec_accepts_integer_sizes():
    assert transpose_spec(SPEC, np.int64(8)).output_shape == (1, 8)
    assert transpose_spec(SPEC, (7,)).output_shape == (1, 7)


def test_avg_pool_numpy_integer_divisor_equals_torch():
    got = avg_pool_matrix((1, 1, 4), (1, 2), divisor_override=np.int64(3)) @ np.arange(4.0)
    expected = torch.nn.functional.avg_pool2d(
        torch.arange(4.0, dtype=torch.float64).reshape(1, 1, 1, 4), (1, 2), divisor_override=3
    )
    np.testing.assert_allclose(got, expected.numpy().ravel())


def test_max_pool_selection_takes_a_tensor_requiring_grad():
    xt = torch.tensor([[3.0, 1.0, 2.0, 5.0]], dtype=torch.float64, requires_grad=True)
    got = max_pool_selection(xt, 2) @ xt.detach().numpy().ravel()
    np.testing.assert_array_equal(
        got, torch.nn.functional.max_pool1d(xt[None], 2).detach().numpy().ravel()
    )


def test_kernel_jacobian_refuses_over_budget_before_building():
    spec = ca.ConvSpec((1, 4096, 4096), 64, 3, padding=1)
    with pytest.raises(ca.ConvAlgebraError, match="max_bytes"):
        kernel_jacobian(spec, np.zeros(spec.input_shape, np.float32), max_bytes=2**20)
    with pytest.raises(ca.ConvAlgebraError, match="max_bytes"):
        kernel_jacobian(ca.ConvSpec((1, 8, 8), 2, 3), np.ones((1, 8, 8)), max_bytes=100)


def test_kernel_jacobian_within_budget_equals_torch():
    spec = ca.ConvSpec((2, 6, 5), 3, 3, padding=1, padding_mode="reflect")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    got = kernel_jacobian(spec, x, max_bytes=10**7) @ w.ravel()
    np.testing.assert_allclose(got, torch_conv(spec, x, w).numpy().ravel(), rtol=1e-12)
