"""Worked examples of the course material (shared seed-examples.md): shapes, numbers, matrices.

Seed examples on gradients, identities, layer graphs and derivations have their own files
(test_seed_examples_backward.py, _identities.py, _graph.py, test_derivation_goldens.py).
"""

import numpy as np
import pytest
import scipy.signal
from oracle import torch_conv

import convalgebra as ca


@pytest.mark.parametrize("stride, width", [(1, 5), (2, 3), (3, 2)])
def test_1_output_size_of_7_by_3(stride, width):
    spec = ca.ConvSpec((1, 7), 1, 3, stride=stride)
    assert spec.output_shape == (1, width)


def test_1_stride_3_does_not_tile_and_says_which_column_is_never_read():
    spec = ca.ConvSpec((1, 7), 1, 3, stride=3)
    assert spec.output_shape == (1, 2)  # floor((7 - 3) / 3) + 1: the third window does not fit
    assert not spec.tiles_input
    assert "not tiling: input positions never read, per axis: ((6,),)" in ca.report.matrix_report(
        spec
    )
    assert spec.unread_inputs == ((6,),)


def test_2_zero_padding_one_keeps_6_by_6():
    spec = ca.ConvSpec((1, 6, 6), 1, 3, padding=1)
    assert spec.output_shape == (1, 6, 6)
    assert ca.ConvSpec((1, 6, 6), 1, 3, padding="same").padding == ((1, 1), (1, 1))


@pytest.mark.parametrize("word, width", [("valid", 3), ("same", 5), ("full", 7)])
def test_3_valid_same_full(word, width):
    assert ca.ConvSpec((1, 5), 1, 3, padding=word).output_shape == (1, width)


def test_4_inputs_7_and_8_map_to_the_same_output_and_output_padding_tells_them_apart():
    assert ca.ConvSpec((1, 7), 1, 3, stride=2).output_shape == (1, 3)
    assert ca.ConvSpec((1, 8), 1, 3, stride=2).output_shape == (1, 3)
    back = [ca.ConvSpec((1, 3), 1, 3, stride=2, transposed=True, output_padding=p) for p in (0, 1)]
    assert [s.output_shape for s in back] == [(1, 7), (1, 8)]


def test_11_edge_detection_matrix_sizes():
    spec = ca.ConvSpec((1, 280, 320), 1, (1, 2), bias=False)
    assert spec.output_shape == (1, 280, 319)
    m = ca.conv_matrix(spec, np.array([[[[-1.0, 1.0]]]]))
    assert m.shape[0] * m.shape[1] == 89_600 * 89_320 == 8_003_072_000
    assert m.nnz == 2 * 319 * 280 == 178_640
    # two multiplications and one addition per output
    assert 2 * spec.macs - np.prod(spec.output_shape) == 267_960


def test_11_edge_detection_values_equal_scipy_correlation():
    image = np.random.default_rng(0).integers(0, 256, (280, 320)).astype(float)
    spec = ca.ConvSpec((1, 280, 320), 1, (1, 2))
    m = ca.conv_matrix(spec, np.array([[[[-1.0, 1.0]]]]))
    expected = scipy.signal.correlate2d(image, [[-1.0, 1.0]], mode="valid")
    assert np.array_equal(m @ image.ravel(), expected.ravel())


def test_12_separable_kernel_parameter_counts():
    full = ca.ConvSpec((1, 9, 9), 1, (5, 5), bias=False)
    rows, cols = (
        ca.ConvSpec((1, 9, 9), 1, (5, 1), bias=False),
        ca.ConvSpec((1, 5, 9), 1, (1, 5), bias=False),
    )
    assert (full.n_params, rows.n_params + cols.n_params) == (25, 10)


def test_14_cross_correlation_of_the_5x5_image():
    image = np.array(
        [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    )
    kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    spec = ca.ConvSpec((1, 5, 5), 1, 3)
    out = (ca.conv_matrix(spec, kernel[None, None]) @ image.ravel()).reshape(3, 3)
    assert out.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert np.array_equal(out, scipy.signal.correlate2d(image, kernel, mode="valid"))


def test_15_d2l_cross_correlation():
    x = np.arange(9).reshape(1, 3, 3)
    k = np.array([[[[0, 1], [2, 3]]]])
    out = ca.conv_matrix(ca.ConvSpec((1, 3, 3), 1, 2), k) @ x.ravel()
    assert out.reshape(2, 2).tolist() == [[19, 25], [37, 43]]


def test_16_multichannel_with_bias_padding_and_stride():
    spec = ca.ConvSpec((3, 5, 5), 2, 3, stride=2, padding=1)
    assert spec.output_shape == (2, 3, 3)
    rng = np.random.default_rng(16)
    x = rng.integers(0, 3, spec.input_shape).astype(float)
    w = rng.integers(-1, 2, spec.weight_shape).astype(float)
    bias = np.array([1.0, 0.0])
    out = ca.conv_matrix(spec, w) @ x.ravel() + ca.bias_jacobian(spec) @ bias
    assert np.array_equal(out, torch_conv(spec, x, w, bias).numpy().ravel())
    # each output is the sum over the three channels of a 3x3 window, plus the bias
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    assert out[0] == (padded[:, 0:3, 0:3] * w[0]).sum() + 1.0
