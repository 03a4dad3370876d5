"""ConvSpec: shape arithmetic against torch, and clear errors for bad input."""

import numpy as np
import pytest
from hypothesis import given
from oracle import torch
from strategies import conv_specs

import convalgebra as ca


@given(
    conv_specs(
        transposed=None,
        modes=("zeros", "circular", "reflect", "replicate"),
        symmetric=True,
        bias=None,
    )
)
def test_param_count_and_weight_shape_equal_torch_modules(spec):
    nd = spec.ndim
    cls = getattr(torch.nn, f"ConvTranspose{nd}d" if spec.transposed else f"Conv{nd}d")
    kwargs = dict(
        stride=spec.stride,
        padding=tuple(b for b, _ in spec.padding),
        dilation=spec.dilation,
        groups=spec.groups,
        bias=spec.bias,
    )
    if spec.transposed:
        kwargs["output_padding"] = spec.output_padding
    else:
        kwargs["padding_mode"] = spec.padding_mode
    module = cls(spec.in_channels, spec.out_channels, spec.kernel_size, **kwargs)
    assert tuple(module.weight.shape) == spec.weight_shape
    assert sum(p.numel() for p in module.parameters()) == spec.n_params
    out = module(torch.zeros((1, *spec.input_shape)))
    assert tuple(out.shape[1:]) == spec.output_shape


def _mask_from_axes(shape, untouched):
    """Positions touched along every axis: the product of the per-axis masks."""
    mask = np.ones(shape, dtype=bool)
    for axis, positions in enumerate(untouched):
        along = np.ones(shape[axis], dtype=bool)
        along[list(positions)] = False
        mask &= along.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return mask


@given(conv_specs(transposed=None))
def test_unread_inputs_are_the_all_zero_columns(spec):
    m = abs(ca.conv_matrix(spec, np.ones(spec.weight_shape)))
    read = np.asarray(m.sum(axis=0)).ravel().reshape(spec.input_shape)[0] > 0
    written = np.asarray(m.sum(axis=1)).ravel().reshape(spec.output_shape)[0] > 0
    assert np.array_equal(read, _mask_from_axes(read.shape, spec.unread_inputs))
    assert np.array_equal(written, _mask_from_axes(written.shape, spec.unwritten_outputs))
    assert spec.tiles_input == (not any(spec.unread_inputs))


def test_macs_of_a_bottleneck():
    # seed example 8: 32x32x200 -> 32 filters 5x5 'same'
    assert ca.ConvSpec((200, 32, 32), 32, 5, padding="same").macs == 163_840_000
    one_by_one = ca.ConvSpec((200, 32, 32), 16, 1)
    then = ca.ConvSpec((16, 32, 32), 32, 5, padding="same")
    assert one_by_one.macs + then.macs == 3_276_800 + 13_107_200 == 16_384_000
    assert one_by_one.n_weights + then.n_weights == 3_200 + 12_800


def test_transposed_macs_count_the_scatter_side():
    spec = ca.ConvSpec((4, 5, 5), 2, 3, stride=2, transposed=True)
    assert spec.macs == 4 * 25 * 2 * 9


def test_same_padding_puts_the_odd_unit_after():
    assert ca.ConvSpec((1, 8), 1, 4, padding="same").padding == ((1, 2),)
    assert ca.ConvSpec((1, 8), 1, 3, padding="full", dilation=2).padding == ((4, 4),)


def test_spec_is_hashable_and_normalised():
    a = ca.ConvSpec((3, 8, 8), 4, 3, padding=1)
    b = ca.ConvSpec([3, 8, 8], 4, (3, 3), padding=((1, 1), (1, 1)))
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(input_shape=(4, 8), out_channels=6, kernel_size=3, groups=3),
            ca.ConvAlgebraError,
            r"groups=3 does not divide in_channels=4",
        ),
        (
            dict(input_shape=(3, 8), out_channels=4, kernel_size=3, groups=3),
            ca.ConvAlgebraError,
            r"groups=3 does not divide out_channels=4",
        ),
        (dict(input_shape=(0, 8), out_channels=1, kernel_size=3), ca.ConvAlgebraError, "positive"),
        (
            dict(input_shape=(1, 8), out_channels=0, kernel_size=3),
            ca.ConvAlgebraError,
            r"out_channels must be a positive integer, got 0",
        ),
        (
            dict(input_shape=(1, 8), out_channels=1, kernel_size=0),
            ca.ConvAlgebraError,
            "kernel_size",
        ),
        (
            dict(input_shape=(1, 8), out_channels=1, kernel_size=3, stride=0),
            ca.ConvAlgebraError,
            r"stride must be a positive integer",
        ),
        (dict(input_shape=(1, 8), out_channels=1, kernel_size=3, stride=1.5), TypeError, "stride"),
        (
            dict(input_shape=(1, 4), out_channels=1, kernel_size=6),
            ca.ConvAlgebraError,
            r"kernel extent 6 .* larger than the padded input 4",
        ),
        (
            dict(input_shape=(1, 4), out_channels=1, kernel_size=3, dilation=2),
            ca.ConvAlgebraError,
            r"kernel extent 5",
        ),
        (
            dict(
                input_shape=(1, 4), out_channels=1, kernel_size=3, padding=4, padding_mode="reflect"
            ),
            ca.ConvAlgebraError,
            r"reflect padding \(4, 4\) must be smaller than the input size 4",
        ),
        (
            dict(
                input_shape=(1, 4),
                out_channels=1,
                kernel_size=3,
                padding=5,
                padding_mode="circular",
            ),
            ca.ConvAlgebraError,
            "wrap around",
        ),
        (
            dict(input_shape=(1, 8), out_channels=1, kernel_size=3, stride=2, padding="same"),
            ca.ConvAlgebraError,
            r"'same' is not supported for strided",
        ),
        (
            dict(input_shape=(1, 8), out_channels=1, kernel_size=3, padding="half"),
            ca.ConvAlgebraError,
            "padding must be",
        ),
        (
            dict(input_shape=(1, 8), out_channels=1, kernel_size=3, padding=-1),
            ca.ConvAlgebraError,
            "non-negative",
        ),
        (
            dict(input_shape=(1, 8), out_channels=1, kernel_size=3, padding_mode="mirror"),
            ca.ConvAlgebraError,
            "padding_mode must be one of",
        ),
        (
            dict(
                input_shape=(1, 4),
                out_channels=1,
                kernel_size=3,
                stride=2,
                transposed=True,
                output_padding=2,
            ),
            ca.ConvAlgebraError,
            "output_padding=.* smaller than either stride",
        ),
        (
            dict(input_shape=(1, 4), out_channels=1, kernel_size=3, output_padding=1),
            ca.ConvAlgebraError,
            "only meaningful with transposed",
        ),
        (
            dict(input_shape=(1, 2), out_channels=1, kernel_size=1, padding=2, transposed=True),
            ca.ConvAlgebraError,
            "not positive",
        ),
        (
            dict(input_shape=(1, 2, 2, 2, 2), out_channels=1, kernel_size=1),
            ca.ConvAlgebraError,
            "1, 2 or 3 spatial",
        ),
        (dict(input_shape="3x32x32", out_channels=1, kernel_size=1), TypeError, "input_shape"),
        (
            dict(input_shape=(1, 8), out_channels=1, kernel_size=(3, 3)),
            ca.ConvAlgebraError,
            r"kernel_size must have 1 entries",
        ),
        (dict(input_shape=(1, 8), out_channels=1, kernel_size=3, bias="yes"), TypeError, "bias"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_spec_raises_a_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        ca.ConvSpec(**kwargs)


def test_errors_are_value_errors():
    assert issubclass(ca.ConvAlgebraError, ValueError)


def test_weight_of_the_wrong_shape():
    spec = ca.ConvSpec((3, 8, 8), 4, 3)
    with pytest.raises(ca.ConvAlgebraError, match=r"weight must have shape \(4, 3, 3, 3\)"):
        ca.conv_matrix(spec, np.zeros((4, 3, 3)))
    with pytest.raises(TypeError, match="numeric"):
        ca.conv_matrix(spec, np.full(spec.weight_shape, "a"))


def test_matrix_over_the_memory_budget_points_to_the_operator():
    spec = ca.ConvSpec((64, 56, 56), 64, 3, padding=1)
    # (56*3 - 2)**2 taps per channel pair that land inside the input, times 64*64 pairs
    with pytest.raises(ca.ConvAlgebraError, match=r"112,869,376 non-zeros .* conv_operator"):
        ca.conv_matrix(spec, np.ones(spec.weight_shape), max_bytes=2**20)


# ---------------------------------------------------------------- rejected configurations
ConvSpec, ConvAlgebraError = ca.ConvSpec, ca.ConvAlgebraError


def test_channel_table_with_transposed_is_rejected():
    with pytest.raises(ConvAlgebraError, match="channel_table.*transposed"):
        ConvSpec((2, 5), 2, 3, channel_table=[[1, 0], [1, 1]], transposed=True)


@pytest.mark.parametrize("value", [np.array(2.5), np.float64(2.0), 2.0, "2", True, np.bool_(True)])
def test_non_integer_kernel_size_is_rejected_not_truncated(value):
    with pytest.raises(TypeError, match="kernel_size"):
        ConvSpec((1, 7), 1, value)


def test_integer_array_of_several_values_gives_a_clear_type_error():
    with pytest.raises(TypeError, match="single integer"):
        ConvSpec((1, 7), 1, np.array([2, 3]))


def test_zero_dim_integer_arrays_are_accepted():
    spec = ConvSpec((1, 7), np.int32(2), np.array(3), stride=np.int64(2))
    assert spec.kernel_size == (3,) and spec.out_channels == 2 and spec.stride == (2,)
    assert all(type(v) is int for v in (*spec.kernel_size, *spec.stride, spec.out_channels))


def test_tile_larger_than_output_is_rejected():
    with pytest.raises(ConvAlgebraError, match="locally_connected"):
        ConvSpec((1, 5), 1, 3, tile=7)
    assert ConvSpec((1, 5), 1, 3, tile=3).weight_shape == (3, 1, 1, 3)  # == output size is fine


@pytest.mark.parametrize(
    "table",
    [
        5,
        [[1, "0"], [0, 1]],
        [[2, 0], [0, 1]],
        [[-1, 0], [0, 1]],
        [[1, 0.5], [0, 1]],
        [1, 0],
        [[[1]]],
    ],
)
def test_bad_channel_tables_name_the_parameter(table):
    with pytest.raises(ConvAlgebraError, match="channel_table"):
        ConvSpec((2, 5), 2, 3, channel_table=table)


def test_good_channel_tables_are_accepted():
    for table in (
        [[1, 0], [1, 1]],
        np.array([[True, False], [True, True]]),
        ((True, 0), (1, True)),
    ):
        assert ConvSpec((2, 5), 2, 3, channel_table=table).channel_table == (
            (True, False),
            (True, True),
        )


@pytest.mark.parametrize(
    "kwargs", [dict(padding_mode="reflect", padding=1), dict(padding=((0, 1),))]
)
def test_describe_marks_transposed_specs_without_torch_equivalent(kwargs):
    spec = ConvSpec((1, 5), 1, 3, transposed=True, **kwargs)
    assert spec.describe().endswith("# transpose of the forward conv; no torch equivalent")
    assert "#" not in ConvSpec((1, 5), 1, 3, transposed=True, padding=1).describe()
