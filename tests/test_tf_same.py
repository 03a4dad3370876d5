"""``padding="tf_same"``: TensorFlow's input-dependent, asymmetric 'SAME' padding.

Oracle: the same network written as TensorFlow runs it in torch, an explicit ``F.pad`` (the
padding computed from the input size by TensorFlow's documented rule) before each
convolution or pool with no padding of its own; its shapes (torch), its import and the
gradient probe of each layer's output.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from torch_probe import positive_copy, probe_boxes  # noqa: E402

from convalgebra import ConvAlgebraError, LayerGraph, from_torch  # noqa: E402
from convalgebra.network.layers import AvgPool, Conv, MaxPool, tf_same_padding  # noqa: E402

C = 2


def _tf_pads(size, k, s, d):
    """TensorFlow's rule (tf.nn.convolution docs): out = ceil(in / s), pad what that needs,
    the odd unit at the end."""
    out = -(-size // s)
    needed = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return needed // 2, needed - needed // 2


class Step(nn.Module):
    """One TF layer: explicit padding, then a convolution or pool without padding."""

    def __init__(self, kind, k, s, d, sizes):
        super().__init__()
        self.kind, self.k, self.s, self.d = kind, k, s, d
        pads = [_tf_pads(n, k, s, d) for n in sizes]
        self.pads = tuple(v for pair in reversed(pads) for v in pair)  # F.pad: last axis first
        conv = (nn.Conv1d, nn.Conv2d)[len(sizes) - 1]
        self.conv = conv(C, C, k, s, 0, d) if kind == "conv" else None

    def forward(self, x):
        x = F.pad(x, self.pads)
        if self.conv is not None:
            return self.conv(x)
        pool = {"max": (F.max_pool1d, F.max_pool2d), "avg": (F.avg_pool1d, F.avg_pool2d)}
        fn = pool[self.kind][x.dim() - 3]
        return fn(x, self.k, self.s) if self.kind == "avg" else fn(x, self.k, self.s, 0, self.d)


def _layer(kind, k, s, d):
    if kind == "conv":
        return Conv(C, k, stride=s, padding="tf_same", dilation=d)
    if kind == "max":
        return MaxPool(k, s, padding="tf_same", dilation=d)
    return AvgPool(k, s, padding="tf_same")


@st.composite
def chains(draw):
    sizes = tuple(draw(st.lists(st.integers(5, 17), min_size=1, max_size=2)))
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "max", "avg"]))
        # pools without dilation: the probe reads a max pool as an average pool (no dilation)
        d = draw(st.integers(1, 2)) if kind == "conv" else 1
        steps.append((kind, draw(st.integers(1, 5)), draw(st.integers(1, 3)), d))
    return sizes, steps


def _both(sizes, steps):
    mods, current = [], sizes
    for kind, k, s, d in steps:
        mods.append(Step(kind, k, s, d, current))
        current = tuple(-(-n // s) for n in current)
    model = nn.Sequential(*mods).eval()
    graph = LayerGraph.sequential((C, *sizes), [_layer(*step) for step in steps])
    return model, graph


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.integers(0, 2**16))
@example(((7, 8), [("conv", 3, 2, 1), ("max", 3, 2, 1)]), 0)  # odd and even sizes
@example(((224,), [("conv", 5, 2, 2), ("avg", 2, 2, 1)]), 1)
@example(((9, 6), [("max", 4, 3, 1), ("conv", 4, 2, 2)]), 2)
def test_tf_same_equals_the_explicit_tensorflow_padding(chain, seed):
    sizes, steps = chain
    model, graph = _both(sizes, steps)
    imported = from_torch(model, (C, *sizes))
    rng = random.Random(seed)
    x = torch.rand(1, C, *sizes)
    requests = {}
    for k, node in enumerate(graph.nodes[1:]):
        x = model[k](x)
        assert graph.shape(node) == tuple(x.shape[1:])  # ceil(n / s) units, as TensorFlow
        assert graph.receptive_field(node) == imported.receptive_field(str(k))
        axes = tuple(range(1, len(sizes) + 1))
        requests[str(k)] = (axes, tuple(rng.randrange(n) for n in x.shape[2:]))
    boxes = probe_boxes(positive_copy(model), (C, *sizes), requests)
    for k, node in enumerate(graph.nodes[1:]):
        box = graph.unit_receptive_field(node, requests[str(k)][1]).box
        assert box == boxes[str(k)], node


def test_tf_same_pads_depend_on_the_input_size():
    assert tf_same_padding((224, 225), 3, 2) == ((0, 1), (1, 1))
    g = LayerGraph.sequential((3, 225, 224), [Conv(8, 3, stride=2, padding="tf_same")])
    assert g.shape("conv1") == (8, 113, 112)
    assert g.layer("conv1").padding == "tf_same"
    assert LayerGraph.from_json(g.to_text()).shape("conv1") == (8, 113, 112)


def test_tf_same_is_refused_for_a_transposed_convolution():
    with pytest.raises(ConvAlgebraError, match="not to a transposed convolution"):
        LayerGraph.sequential((1, 8), [Conv(1, 3, stride=2, padding="tf_same", transposed=True)])
