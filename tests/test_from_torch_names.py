"""from_torch: module paths, computed weights, axis splits and merges, against torch.

Oracles: ``sum(p.numel())`` of the module's own parameters and buffers, torch's dispatch count
of multiply-accumulates, and the gradient probe of each module's output (the output of its
last call, ``torch_probe.probe_boxes``); the zoo graphs built from the published definitions.
"""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

import torchvision_models as tvm  # noqa: E402
from torch.nn.utils.parametrizations import spectral_norm, weight_norm  # noqa: E402
from torch_probe import dispatch_macs, positive_copy, probe_boxes  # noqa: E402

from convalgebra import ConvAlgebraError, from_torch, macs, param_count, zoo  # noqa: E402
from convalgebra.interop.torch import UnmodelledOpWarning  # noqa: E402
from convalgebra.network.graph import buffer_count  # noqa: E402

C = 4


# ------------------------------------------------------------------ one naming rule
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_zoo_and_from_torch_give_the_same_names_shapes_and_fields(name):
    with torch.device("meta"):
        model = tvm.build(name)
    g, z = from_torch(model, (3, 96, 128)), zoo.get(name, (3, 96, 128))
    imported = [n for n in g.nodes if n not in g.inputs]
    assert imported == [n for n in z.nodes if n not in z.inputs]
    for node in imported:
        assert (g.shape(node), g.receptive_field(node)) == (z.shape(node), z.receptive_field(node))
    assert g.default_node() == z.resolve(z.default_node())
    for path in ("layer3", "layer3.1", "layer4.0.downsample", "features", "features.7"):
        if path in dict(model.named_modules()):
            assert g.resolve(path) == z.resolve(path), path


def test_a_module_path_names_the_output_of_its_last_call():
    with torch.device("meta"):
        model = tvm.build("resnet18")
    g = from_torch(model, (3, 224, 224))
    assert g.resolve("layer3") == g.resolve("layer3.1") == "layer3.1.relu"
    assert g.receptive_field("layer3.1.relu")[0].size == 211  # the block's output
    assert g.receptive_field("layer3.1.relu#1")[0].size == 179  # its first ReLU call
    assert g.nx.graph["modules"]["layer3.1.relu"] == ["layer3.1.relu#1", "layer3.1.relu"]
    assert g.nodes_of("layer3.1")[:3] == ["layer3.1.conv1", "layer3.1.bn1", "layer3.1.relu#1"]
    assert g.nodes_of("layer3.1")[-1] == "layer3.1.relu"


def test_an_unknown_name_lists_the_close_matches():
    g = zoo.resnet18()
    with pytest.raises(ConvAlgebraError, match=r"no node named 'layer3.1.rleu'.*'layer3.1.relu'"):
        g.receptive_field("layer3.1.rleu")
    with pytest.raises(ConvAlgebraError, match=r"no node named 'layr3'.*close matches: 'layer3'"):
        g.shape("layr3")


def test_module_paths_survive_the_spec_round_trip():
    with torch.device("meta"):
        model = tvm.build("resnet18")
    g = from_torch(model, (3, 64, 64))
    h = type(g).from_json(g.to_text())
    assert h.resolve("layer2") == g.resolve("layer2") == "layer2.1.relu"
    assert zoo.resnet18().to_spec()["aliases"] == {"features": "layer4.1.relu"}
    assert type(g).from_spec(zoo.resnet18().to_spec()).resolve("features") == "layer4.1.relu"


# ------------------------------------------------------------------ generated modules
class Repeat(nn.Module):
    """One convolution called twice (shared weights), an activation called twice."""

    def __init__(self, k):
        super().__init__()
        self.conv, self.act = nn.Conv2d(C, C, k, padding=k // 2), nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(self.act(self.conv(x))))


class StdConv(nn.Conv2d):
    """Weight standardisation with a learnable gain (the weight is computed in forward)."""

    def __init__(self, k):
        super().__init__(C, C, k, padding=k // 2)
        self.gain = nn.Parameter(torch.ones(C, 1, 1, 1))

    def forward(self, x):
        flat = self.weight.reshape(1, C, -1)
        w = F.batch_norm(flat, None, None, training=True, momentum=0.0, eps=1e-5)
        return F.conv2d(x, w.reshape_as(self.weight) * self.gain, self.bias, 1, self.padding)


class Blur(nn.Module):
    """A fixed filter held in a buffer used as a depthwise convolution weight."""

    def __init__(self):
        super().__init__()
        self.register_buffer("filt", torch.tensor([1.0, 2.0, 1.0]).outer(torch.ones(3)) / 12)
        self.filt = self.filt.expand(C, 1, 3, 3).clone()

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, groups=C)


class Computed(nn.Module):
    def __init__(self, kind, k):
        super().__init__()
        conv = nn.Conv2d(C, C, k, padding=k // 2)
        self.conv = {
            "std": lambda: StdConv(k),
            "blur": Blur,
            "weight_norm": lambda: weight_norm(conv),
            "spectral_norm": lambda: spectral_norm(conv),
        }[kind]()

    def forward(self, x):
        return self.conv(x)


class SpaceToDepth(nn.Module):
    """view -> permute -> reshape to (4C, H/2, W/2), a 1x1 mix, then back to (C, H, W)."""

    def __init__(self, functional):
        super().__init__()
        self.mix = nn.Conv2d(4 * C, 4 * C, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = None if functional else nn.PixelUnshuffle(2)

    def forward(self, x):
        n, c, h, w = x.shape
        if self.unshuffle is None:
            y = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
            y = y.reshape(n, c * 4, h // 2, w // 2)
        else:
            y = self.unshuffle(x)
        return self.shuffle(self.mix(y))


class StackSumWhere(nn.Module):
    """Selective-kernel style: branches stacked, summed over the new axis, a leaky where."""

    def __init__(self, k):
        super().__init__()
        self.a, self.b = nn.Conv2d(C, C, 1), nn.Conv2d(C, C, k, padding=k // 2)

    def forward(self, x):
        y = torch.stack([self.a(x), self.b(x)], dim=1).sum(1)
        y = torch.where(y > 0, y, 0.1 * y)
        return y * y.amax(1, keepdim=True).clamp(min=0.5)


class ChannelsLast(nn.Module):
    """A ConvNeXt-style block: depthwise conv, then norm and MLP on (H, W, C)."""

    def __init__(self, k):
        super().__init__()
        self.dw = nn.Conv2d(C, C, k, padding=k // 2, groups=C)
        self.norm, self.fc = nn.LayerNorm(C), nn.Linear(C, C)

    def forward(self, x):
        y = self.fc(self.norm(self.dw(x).permute(0, 2, 3, 1)))
        return x + y.permute(0, 3, 1, 2)


@st.composite
def blocks(draw):
    kind = draw(st.sampled_from(["repeat", "computed", "s2d", "stack", "last"]))
    k = draw(st.sampled_from([1, 3, 5]))
    if kind == "repeat":
        return Repeat(k)
    if kind == "computed":
        return Computed(draw(st.sampled_from(["std", "blur", "weight_norm", "spectral_norm"])), k)
    if kind == "s2d":
        return SpaceToDepth(draw(st.booleans()))
    return StackSumWhere(k) if kind == "stack" else ChannelsLast(k)


@st.composite
def networks(draw):
    size = (C, 2 * draw(st.integers(3, 7)), 2 * draw(st.integers(3, 7)))
    parts = draw(st.lists(blocks(), min_size=1, max_size=4))
    return nn.Sequential(*parts).eval(), size


def _paths(model):
    """Every module path but the root and the internals of parametrisations."""
    return [p for p, _ in model.named_modules() if p and "parametrizations" not in p.split(".")]


def _check(model, size, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmodelledOpWarning)
        g = from_torch(model, size)
    assert param_count(g) == sum(p.numel() for p in model.parameters())
    assert buffer_count(g) == sum(b.numel() for b in model.buffers())
    assert macs(g) == dispatch_macs(model, size)
    rng, requests = random.Random(seed), {}
    for path in _paths(model):
        node = g.resolve(path)  # every module path resolves
        axes = g.axes(node)
        if len(axes) == 2 and None not in axes:
            sizes = [g.shape(node)[t] for t in axes]
            requests[path] = (axes, tuple(rng.randrange(n) for n in sizes))
    assert requests
    boxes = probe_boxes(positive_copy(model), size, requests)
    for path, (_, pos) in requests.items():
        assert g.unit_receptive_field(path, pos).box == boxes[path], path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.integers(0, 2**16))
@example((nn.Sequential(SpaceToDepth(True), Computed("std", 3)).eval(), (C, 8, 10)), 1)
@example((nn.Sequential(Repeat(3), ChannelsLast(3)).eval(), (C, 6, 6)), 2)
@example((nn.Sequential(Computed("blur", 1), StackSumWhere(5)).eval(), (C, 8, 8)), 3)
@example((nn.Sequential(Computed("spectral_norm", 5), SpaceToDepth(False)).eval(), (C, 6, 8)), 4)
def test_generated_modules_give_the_torch_counts_and_every_module_its_field(case, seed):
    model, size = case
    _check(model, size, seed)


def test_computed_weights_count_what_the_module_stores():
    model = nn.Sequential(
        Computed("std", 3), Computed("blur", 1), Computed("weight_norm", 3)
    ).eval()
    g = from_torch(model, (C, 8, 8))
    assert param_count(g) == sum(p.numel() for p in model.parameters()) == 152 + 0 + (4 + 144 + 4)
    assert buffer_count(g) == C * 9
    assert g.info("0.conv.conv2d").params == 4 * 4 * 9 + 4 + 4  # weight, bias and gain
    assert g.info("1.conv.conv2d").params == 0 and g.info("1.conv.conv2d").buffers == 36
    assert g.receptive_field("0")[0].size == 3 and g.receptive_field("1")[0].size == 5


def test_space_to_depth_keeps_the_field_finite():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), SpaceToDepth(True), nn.Conv2d(4, 4, 3)).eval()
    g = from_torch(model, (3, 18, 18))
    assert g.nx.graph["unmodelled"] == []
    rf = g.receptive_field("1.mix")[0]
    assert (rf.size, rf.jump, rf.is_global) == (4, 2, False)
    assert not g.receptive_field("2")[0].is_global


def test_where_over_data_is_modelled_and_an_unknown_op_warns():
    class Leaky(nn.Module):
        def forward(self, x):
            return torch.where(x > 0, x, 0.1 * x).cumsum(2)

    with pytest.warns(UnmodelledOpWarning, match="cumsum"):
        g = from_torch(nn.Sequential(nn.Conv2d(3, 4, 3), Leaky()), (3, 8, 8))
    assert g.receptive_field("1.where")[0].size == 3
    assert "opaque" in g.info("1").flags and g.receptive_field("1")[0].is_global
