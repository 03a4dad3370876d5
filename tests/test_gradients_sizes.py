"""Transposed convolution as the transpose, and the input sizes that collide under a stride."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from oracle import torch
from strategies import conv_specs

import convalgebra as ca
from convalgebra.transpose import colliding_input_sizes, transpose_spec


def _with_input(spec, axis, size):
    shape = list(spec.input_shape)
    shape[axis + 1] = size
    try:
        return replace(spec, input_shape=tuple(shape))
    except ca.ConvAlgebraError:
        return None


def test_seed_example_4_widths_7_and_8_share_output_3():
    result = colliding_input_sizes(ca.ConvSpec((1, 7), 1, 3, stride=2))
    (axis,) = result.axes
    assert (axis.output_size, axis.input_sizes, axis.output_padding) == (3, (7, 8), (0, 1))
    assert result.collides and axis.current == 7
    assert "7 (output_padding=0), 8 (output_padding=1)" in str(result)
    assert "| 0 | 3 | 7, 8 | 0, 1 |" in result._repr_markdown_()


def test_stride_one_has_no_collision():
    result = colliding_input_sizes(ca.ConvSpec((1, 6, 6), 1, 3, padding=1))
    assert not result.collides
    assert str(result.axes[0]) == "axis 0: only input size 6 gives output size 6 (no collision)"


@given(conv_specs())
def test_listed_sizes_are_exactly_those_with_the_same_output(spec):
    result = colliding_input_sizes(spec)
    for axis in result.axes:
        assert spec.input_shape[axis.axis + 1] in axis.input_sizes
        lo, hi = min(axis.input_sizes), max(axis.input_sizes)
        for size in range(max(1, lo - 2), hi + 3):
            other = _with_input(spec, axis.axis, size)
            same = other is not None and other.output_shape == spec.output_shape
            assert same == (size in axis.input_sizes), (axis, size)


@given(conv_specs(modes=("zeros", "circular", "reflect", "replicate")), st.data())
def test_each_listed_size_is_restored_by_its_output_padding(spec, data):
    result = colliding_input_sizes(spec)
    sizes = tuple(data.draw(st.sampled_from(a.input_sizes)) for a in result.axes)
    transposed = transpose_spec(spec, sizes)
    assert transposed.output_shape[1:] == sizes
    assert transposed.output_padding == result.output_padding_for(sizes)
    forward = _sized(spec, sizes)
    w = np.random.default_rng(0).integers(-3, 4, spec.weight_shape)
    assert (ca.conv_matrix(transposed, w) != ca.conv_matrix(forward, w).T).nnz == 0


def _sized(spec, sizes):
    return replace(spec, input_shape=(spec.in_channels, *sizes))


@given(conv_specs(transposed=True))
def test_transposed_spec_lists_the_sizes_it_can_produce(spec):
    result = colliding_input_sizes(spec)
    for axis in result.axes:
        assert axis.output_size == spec.input_shape[axis.axis + 1]
        for size, padding in zip(axis.input_sizes, axis.output_padding):
            other = list(spec.output_padding)
            other[axis.axis] = padding
            assert replace(spec, output_padding=tuple(other)).output_shape[axis.axis + 1] == size


@given(conv_specs(transposed=True))
def test_transpose_of_a_transposed_spec_is_its_forward(spec):
    assume(spec.forward.output_shape == spec.input_shape)
    forward = transpose_spec(spec)
    w = np.random.default_rng(1).integers(-3, 4, spec.weight_shape)
    assert forward == spec.forward
    assert (ca.conv_matrix(forward, w).T != ca.conv_matrix(spec, w)).nnz == 0


def test_unreachable_size_names_the_reachable_ones():
    spec = ca.ConvSpec((1, 7), 1, 3, stride=2)
    with pytest.raises(
        ca.ConvAlgebraError, match=r"size 9 along spatial axis 0 cannot be reached.*\[7, 8\]"
    ):
        transpose_spec(spec, (9,))


def test_sizes_need_one_entry_per_axis():
    with pytest.raises(ca.ConvAlgebraError, match="sizes must have 2 entries"):
        colliding_input_sizes(ca.ConvSpec((1, 7, 7), 1, 3, stride=2)).output_padding_for((7,))


def test_output_padding_beyond_stride_has_no_forward_spec():
    # allowed by PyTorch because output_padding < dilation, but the forward reads one more row
    spec = ca.ConvSpec((1, 3), 1, 3, stride=1, dilation=2, output_padding=1, transposed=True)
    with pytest.raises(ca.ConvAlgebraError, match="no forward spec has this transpose"):
        transpose_spec(spec)


@pytest.mark.parametrize(
    "spec",
    [
        ca.ConvSpec((1, 6), 1, 2, tile=2),
        ca.ConvSpec((2, 6), 2, 2, channel_table=((True, False), (True, True))),
    ],
    ids=["tiled", "channel-table"],
)
def test_layers_without_a_transposed_spec_say_so(spec):
    with pytest.raises(ca.ConvAlgebraError, match="have no transposed ConvSpec"):
        transpose_spec(spec)


def test_not_a_spec_is_a_type_error():
    with pytest.raises(TypeError, match="spec must be a ConvSpec"):
        colliding_input_sizes((1, 7))


@given(conv_specs(transposed=True))
def test_transposed_size_list_is_complete(spec):
    """Every output_padding torch accepts (< max(stride, dilation)) is listed, the spec's own too."""
    result = colliding_input_sizes(spec)
    for axis in result.axes:
        assert spec.output_shape[axis.axis + 1] in axis.input_sizes
        if any(b != a for b, a in spec.padding):
            continue  # torch has no asymmetric transposed padding to compare with
        for padding in range(max(spec.stride[axis.axis], spec.dilation[axis.axis])):
            other = list(spec.output_padding)
            other[axis.axis] = padding
            module = getattr(torch.nn, f"ConvTranspose{spec.ndim}d")(
                spec.in_channels,
                spec.out_channels,
                spec.kernel_size,
                stride=spec.stride,
                padding=tuple(b for b, _ in spec.padding),
                output_padding=tuple(other),
                dilation=spec.dilation,
                groups=spec.groups,
            ).double()
            try:
                size = module(torch.zeros(1, *spec.input_shape, dtype=torch.float64)).shape[
                    axis.axis + 2
                ]
            except RuntimeError:
                continue
            assert axis.input_sizes[axis.output_padding.index(padding)] == size
