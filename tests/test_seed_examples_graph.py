"""Seed examples 5-10 and 26 (shared/seed-examples.md), reproduced with the graph API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convalgebra import ConvSpec, LayerGraph, conv_matrix, macs, param_count, receptive_field, zoo
from convalgebra.network import layers as L


def test_seed_5_cifar10_pipeline_shapes():
    g = LayerGraph.sequential(
        (3, 32, 32),
        [
            ("conv", L.Conv(12, 3, padding="same")),
            ("relu", L.Activation("relu")),
            ("pool", L.MaxPool(2)),
            ("flatten", L.Flatten()),
            ("fc", L.Linear(10)),
        ],
    )
    assert [g.shape(n) for n in ("conv", "relu", "pool", "fc")] == [
        (12, 32, 32),
        (12, 32, 32),
        (12, 16, 16),
        (10,),
    ]


def test_seed_6_conv_layer_parameters():
    g = LayerGraph.sequential((3, 32, 32), [("conv", L.Conv(10, 5, stride=1, padding=2))])
    assert g.shape("conv") == (10, 32, 32)
    assert g.facts("conv").params == {"weight": 10 * 5 * 5 * 3, "bias": 10}
    assert (5 * 5 * 3 + 1, param_count(g)) == (76, 760)


@given(c=st.integers(1, 64))
def test_seed_7_three_3x3_layers_against_one_7x7(c):
    stack = LayerGraph.sequential((c, 32, 32), [L.Conv(c, 3, padding=1, bias=False)] * 3)
    single = LayerGraph.sequential((c, 32, 32), [L.Conv(c, 7, padding=3, bias=False)])
    assert param_count(stack) == 27 * c * c and param_count(single) == 49 * c * c
    assert [receptive_field(stack, f"conv{i}")[0].size for i in (1, 2, 3)] == [3, 5, 7]
    assert receptive_field(single, "conv1") == receptive_field(stack, "conv3")
    assert stack.shape("conv3") == single.shape("conv1") == (c, 32, 32)


def test_seed_8_bottleneck_macs_and_weights():
    direct = LayerGraph.sequential((200, 32, 32), [L.Conv(32, 5, padding="same", bias=False)])
    bottle = LayerGraph.sequential(
        (200, 32, 32),
        [
            ("squeeze", L.Conv(16, 1, bias=False)),
            ("conv", L.Conv(32, 5, padding="same", bias=False)),
        ],
    )
    assert macs(direct) == 32 * 32 * 32 * 5 * 5 * 200 == 163_840_000
    assert [bottle.facts(n).macs for n in ("squeeze", "conv")] == [3_276_800, 13_107_200]
    assert macs(bottle) == 16_384_000
    assert (param_count(direct), param_count(bottle)) == (160_000, 3_200 + 12_800)


def test_seed_9_lenet_d2l():
    g = zoo.lenet5()
    names = ["conv1", "pool1", "conv2", "features", "flatten", "fc1", "fc2", "fc3"]
    assert [g.shape(n) for n in names] == [
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 5, 5),
        (400,),
        (120,),
        (84,),
        (10,),
    ]
    per_layer = [sum(g.facts(n).params.values()) for n in ("conv1", "conv2", "fc1", "fc2", "fc3")]
    assert per_layer == [156, 2_416, 48_120, 10_164, 850]
    assert param_count(g) == 61_706


@given(m=st.integers(2, 40), k=st.integers(1, 5))
def test_seed_10_dense_sparse_shared(m, k):
    if k > m:
        k = m
    n = m - k + 1
    dense = LayerGraph.sequential((m,), [L.Linear(n, bias=False)])
    local = ConvSpec((1, m), 1, k, tile=n, bias=False)  # locally connected (eq. 9.9)
    shared = ConvSpec((1, m), 1, k, bias=False)
    assert local.is_locally_connected
    assert (param_count(dense), local.n_params, shared.n_params) == (m * n, k * n, k)


@given(
    k1=st.integers(1, 4),
    k2=st.integers(1, 4),
    s1=st.integers(1, 3),
    s2=st.integers(1, 3),
    n=st.integers(14, 30),
    seed=st.integers(0, 2**16),
)
def test_seed_26_two_convolutions_compose_into_one(k1, k2, s1, s2, n, seed):
    g = LayerGraph.sequential(
        (1, n), [L.Conv(1, k1, stride=s1, bias=False), L.Conv(1, k2, stride=s2, bias=False)]
    )
    rf = receptive_field(g, "conv2")[0]
    assert (rf.size, rf.jump) == (k1 + (k2 - 1) * s1, s1 * s2)
    # the composed kernel: c[t] = sum over m + s1 * j = t of a[m] b[j] (full convolution when s1 = 1)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-3, 4, k1), rng.integers(-3, 4, k2)
    c = np.zeros(rf.size, dtype=np.int64)
    for j in range(k2):
        c[j * s1 : j * s1 + k1] += a * b[j]
    if s1 == 1:
        assert np.array_equal(c, np.convolve(a, b))
    first, second = g.facts("conv1").spec, g.facts("conv2").spec
    two_steps = conv_matrix(second, b.reshape(1, 1, -1)) @ conv_matrix(first, a.reshape(1, 1, -1))
    one = ConvSpec((1, n), 1, rf.size, stride=rf.jump, bias=False)
    rows = min(two_steps.shape[0], one.output_shape[1])
    assert np.array_equal(
        two_steps.toarray()[:rows], conv_matrix(one, c.reshape(1, 1, -1)).toarray()[:rows]
    )


@pytest.mark.parametrize("s1, k2, expected", [(1, 3, 5), (2, 3, 7), (3, 2, 6)])
def test_seed_26_receptive_field_hand_values(s1, k2, expected):
    g = LayerGraph.sequential((1, 64), [L.Conv(1, 3, stride=s1), L.Conv(1, k2)])
    assert receptive_field(g, "conv2")[0].size == expected == 3 + (k2 - 1) * s1
