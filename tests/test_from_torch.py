"""from_torch: plain torch.nn models (written here, torchvision's definitions) imported via fx.

Oracles: ``sum(p.numel())`` and ``sum(b.numel())`` of the torch model; torch's own shape
propagation (checked inside from_torch on every node); the zoo graphs built independently
from the published definitions; the gradient-support receptive field of the torch model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
nn, F = torch.nn, torch.nn.functional

from convalgebra import ConvAlgebraError, from_torch, macs, param_count, zoo  # noqa: E402
from convalgebra.network.graph import buffer_count  # noqa: E402


# ------------------------------------------------------------------ plain torch models
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, 64, layers[0])
        self.layer2 = self._make(block, 128, layers[1], 2)
        self.layer3 = self._make(block, 256, layers[2], 2)
        self.layer4 = self._make(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, classes)

    def _make(self, block, width, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != width * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, width * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(width * block.expansion),
            )
        layers = [block(self.inplanes, width, stride, downsample)]
        self.inplanes = width * block.expansion
        layers += [block(self.inplanes, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        layers = [
            nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        ]
        cin = 32
        for t, c, n, s in [
            (1, 16, 1, 1),
            (6, 24, 2, 2),
            (6, 32, 3, 2),
            (6, 64, 4, 2),
            (6, 96, 3, 1),
            (6, 160, 3, 2),
            (6, 320, 1, 1),
        ]:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(
            nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6())
        )
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class UNet(nn.Module):
    """Ronneberger et al. 2015, with valid convolutions and centre-cropped skips."""

    def __init__(self, width=64, classes=2):
        super().__init__()
        widths = [width * 2**i for i in range(5)]
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(
                nn.Sequential(nn.Conv2d(cin, w, 3), nn.ReLU(), nn.Conv2d(w, w, 3), nn.ReLU())
            )
            cin = w
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, 2) for w in widths[3::-1])
        self.dec = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w * 2, w, 3), nn.ReLU(), nn.Conv2d(w, w, 3), nn.ReLU())
            for w in widths[3::-1]
        )
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for up, dec, skip in zip(self.ups, self.dec, skips[3::-1]):
            x = up(x)
            skip = _centre_crop(skip, x.shape[-1])
            x = dec(torch.cat([skip, x], 1))
        return self.head(x)


@torch.fx.wrap
def _centre_crop(t, size):
    off = (t.shape[-1] - size) // 2
    return t[..., off : off + size, off : off + size]


class SmallDag(nn.Module):
    """Functional calls, a shared module called twice, tied weights, a global gate."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, (3, 5), padding=(1, 2))
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)
        self.b.weight = self.a.weight  # tied: counted once
        self.up = nn.ConvTranspose2d(16, 4, 4, stride=2, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.shared(self.shared(x))  # same module twice
        z = F.max_pool2d(self.a(x), 3, 1, 1) + F.avg_pool2d(self.b(y), 3, 1, 1)
        gate = torch.sigmoid(x.mean((2, 3), keepdim=True))
        z = torch.cat([z * gate, y], 1)
        z = self.up(z)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(z, 1), 1))


def _numel(model):
    return sum(p.numel() for p in model.parameters())


def _buffers(model):
    return sum(b.numel() for b in model.buffers())


# ------------------------------------------------------------------------ tests
@pytest.mark.parametrize(
    "make, zoo_name, published",
    [
        (lambda: ResNet(BasicBlock, [2, 2, 2, 2]), "resnet18", 11_689_512),
        (lambda: ResNet(Bottleneck, [3, 4, 6, 3]), "resnet50", 25_557_032),
        (MobileNetV2, "mobilenet_v2", 3_504_872),
    ],
    ids=["resnet18", "resnet50", "mobilenet_v2"],
)
def test_imported_counts_equal_torch_zoo_and_published(make, zoo_name, published):
    with torch.device("meta"):
        model = make()
    g = from_torch(model, (3, 224, 224))
    z = zoo.get(zoo_name)
    assert param_count(g) == _numel(model) == param_count(z) == published
    assert buffer_count(g) == _buffers(model) == buffer_count(z)
    assert macs(g) == macs(z)


def test_imported_resnet18_has_the_zoo_receptive_fields_node_by_node():
    with torch.device("meta"):
        model = ResNet(BasicBlock, [2, 2, 2, 2])
    g, z = from_torch(model, (3, 96, 128)), zoo.resnet18((3, 96, 128))
    convs = [n for n in z.nodes if ".conv" in n or n == "conv1" or "downsample.0" in n]
    assert len(convs) == 20
    for node in convs:
        assert g.receptive_field(node) == z.receptive_field(node), node
        assert g.shape(node) == z.shape(node)
    assert g.receptive_field("layer4.1.relu") == z.receptive_field("features")


def test_unet_counts_equal_torch_and_zoo():
    with torch.device("meta"):
        model = UNet()
    g = from_torch(model, (1, 572, 572))
    z = zoo.unet()
    assert param_count(g) == _numel(model) == param_count(z) == 31_030_658
    assert g.shape(g.outputs[0]) == z.shape("head") == (2, 388, 388)
    assert macs(g) == macs(z)


def test_small_dag_counts_shared_and_tied_parameters_once():
    model = SmallDag()
    g = from_torch(model, (3, 12, 16))
    assert param_count(g) == _numel(model)
    assert g.shape("shared") == (8, 12, 16)  # the output of the last call
    assert g.receptive_field("shared")[1].size == 5 + 2 + 2  # (3x5 stem) + two 3x3
    assert g.receptive_field("shared#1")[1].size == 5 + 2
    assert g.receptive_field("mul")[0].is_global  # the gate reads everything
    assert g.nx.graph["unused_parameters"] == []


def test_small_dag_receptive_field_matches_the_gradient_support():
    model = SmallDag().double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.fill_(0.01)
                m.bias.zero_()
    g = from_torch(model, (3, 12, 16))
    # the output before the gate: conv -> shared x2 -> pools; compare the "add" node
    x = (torch.rand(1, 3, 12, 16, dtype=torch.float64) + 0.5).requires_grad_()
    feats = {}
    h = model.stem(x).relu()
    y = model.shared(model.shared(h))
    feats["add"] = F.avg_pool2d(model.a(h), 3, 1, 1) + F.avg_pool2d(model.b(y), 3, 1, 1)
    feats["add"][0, :, 0, 15].sum().backward()
    rows, cols = np.nonzero(x.grad[0].abs().sum(0).numpy())
    assert g.unit_receptive_field("add", (0, 15)).box == (
        (rows.min(), rows.max()),
        (cols.min(), cols.max()),
    )


def test_unknown_module_becomes_a_flagged_opaque_node():
    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.scale.view(1, 4, 1, 1)

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Weird(), nn.PReLU(4), nn.PixelShuffle(2), nn.ReLU())
    g = from_torch(model, (3, 8, 8))
    assert param_count(g) == _numel(model) == 3 * 4 * 9 + 4 + 4 + 4
    assert "opaque" in g.info("2").flags and "opaque" not in g.info("3").flags
    assert g.shape("3") == (1, 12, 12)  # the pixel shuffle is modelled, after the opaque op
    assert g.receptive_field("4")[0].is_global
    assert "opaque" in g.table()


def test_functional_calls_are_interpreted():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv1d(2, 4, 3, dilation=2)

        def forward(self, x):
            x = F.pad(x, (1, 2), mode="replicate")
            x = F.interpolate(self.c(x), scale_factor=2, mode="nearest")
            x = F.max_pool1d(x, 2, ceil_mode=True)
            return torch.softmax(x.view(x.size(0), -1), dim=1)

    g = from_torch(Net(), (2, 10))
    kinds = [g.layer(n).kind for n in g.nodes]
    assert kinds == ["input", "pad", "conv", "upsample", "max_pool", "reshape", "activation"]
    assert g.shape(g.outputs[0]) == (4 * 9,)


def test_untraceable_module_is_a_clear_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ConvAlgebraError, match="could not trace Branchy"):
        from_torch(Branchy(), (1, 4, 4))


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ConvAlgebraError, match="could not run"):
        from_torch(nn.Conv2d(3, 4, 3), (2, 8, 8))


def test_shape_arguments_and_multi_output_ops_keep_the_data_flow():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            a, b = torch.chunk(self.c(x), 2, dim=1)  # channel halves: slices
            up = F.interpolate(F.max_pool2d(a, 2), size=b.shape[2:], mode="nearest")
            return up + b

    g = from_torch(Net(), (4, 8, 12))
    assert g.shape("interpolate") == (2, 8, 12)
    assert [g.layer(n).kind for n in ("chunk.0", "chunk.1")] == ["slice", "slice"]
    assert g.receptive_field("chunk.1") == g.receptive_field("c")  # channels: field kept
    assert not any("opaque" in g.info(n).flags for n in g.nodes)
    assert nx_has_path(g, "c", "add")
    assert param_count(g) == 4 * 4 * 9 + 4


def nx_has_path(g, a, b):
    import networkx as nx

    return nx.has_path(g.nx, a, b)


def test_only_really_shared_modules_are_flagged_shared():
    """``shared`` (called twice) and the tied pair ``a``/``b`` share; nothing else does."""
    g = from_torch(SmallDag(), (3, 12, 16))
    flagged = sorted(n for n in g.nodes if "shared" in g.info(n).flags)
    assert flagged == ["a", "b", "shared", "shared#1"]
    rows = json.loads(g.table("json"))
    assert sorted(r["node"] for r in rows if "shared" in (r.get("flags") or "")) == flagged


def test_a_sequential_model_has_no_shared_flag():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3))
    g = from_torch(model, (3, 10, 10))
    assert [n for n in g.nodes if g.info(n).flags] == []
    assert param_count(g) == _numel(model)


class WithSpare(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.spare = nn.Linear(5, 7)  # never called in forward

    def forward(self, x):
        return self.conv(x)


def test_parameters_never_used_in_forward_are_shown_not_counted():
    model = WithSpare()
    g = from_torch(model, (3, 8, 8))
    spare = model.spare.weight.numel() + model.spare.bias.numel()  # 5 * 7 + 7 = 42
    assert spare == 42 and param_count(g) == _numel(model) - spare
    assert g.unused_parameters() == {"spare.bias": 7, "spare.weight": 35}
    assert g.summary()["unused_params"] == 42
    note = "not used in forward: spare.bias, spare.weight (42 parameters, not counted)"
    assert g.table().splitlines()[-1] == note
    assert g.table("markdown").splitlines()[-1] == note


# ------------------------------------------------- functional forms, routes, unmodelled ops
class BNActLayer(nn.BatchNorm2d):  # batch norm + activation fused in one module
    def forward(self, x):
        x = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1, self.eps
        )
        return F.relu(x)


class LinLayer(nn.Linear):  # a subclass calling the functional form
    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


def _issue_model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        BNActLayer(8),
        nn.Conv2d(8, 8, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        LinLayer(8, 10),
    ).eval()


def test_functional_forms_count_their_parameters_and_macs():
    model = _issue_model()
    g = from_torch(model, (3, 16, 16))
    assert param_count(g) == _numel(model)
    assert buffer_count(g) == _buffers(model)
    assert macs(g) == 125_360  # 3*8*9*14*14 + 8*8*9*12*12 + 8*10
    assert [g.receptive_field(n)[0].size for n in ("0", "1.batch_norm", "2")] == [3, 3, 5]
    assert not any(g.layer(n).kind == "parameter" for n in g.nodes)


def test_parameters_read_directly_are_parameter_nodes_without_a_field():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.gamma = nn.Parameter(torch.ones(4, 1, 1))

        def forward(self, x):
            return self.gamma * self.conv(x) + self.gamma

    g = from_torch(Scale(), (3, 8, 8))
    assert g.layer("gamma").kind == "parameter"
    assert g.receptive_field("gamma")[0].describe() == "none"
    assert g.receptive_field("add")[0].size == 3  # the conv's, not global
    assert param_count(g) == 4 * 3 * 9 + 4 + 4  # gamma counted once


def test_a_shape_branch_falls_back_to_torch_export():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3)

        def forward(self, x):
            if x.shape[-1] % 2 == 1:
                x = F.pad(x, (0, 1, 0, 1))
            return self.conv(x)

    g = from_torch(Branch(), (2, 7, 7))
    assert g.nx.graph["route"] == "torch.export"
    assert g.shape(g.outputs[0]) == (2, 6, 6)
    assert [g.layer(n).kind for n in g.nodes] == ["input", "pad", "conv"]
    assert param_count(g) == 2 * 2 * 9 + 2


def test_data_dependent_control_flow_names_the_module():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ConvAlgebraError, match="could not trace Branchy.*data-dependent"):
        from_torch(Branchy(), (1, 4, 4))


def test_an_unmodelled_op_is_flagged_warned_and_strict_refuses_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ChannelShuffle(2), nn.Conv2d(4, 1, 3))
    with pytest.warns(UserWarning, match=r"unmodelled.*1 \(module ChannelShuffle\)"):
        g = from_torch(model, (3, 8, 8))
    assert "opaque" in g.info("1").flags and g.receptive_field("2")[0].is_global
    assert g.nx.graph["unmodelled"] == [("1", "module ChannelShuffle")]
    with pytest.raises(ConvAlgebraError, match="node '1': module ChannelShuffle is not modelled"):
        from_torch(model, (3, 8, 8), strict=True)


def test_channel_shuffle_keeps_the_spatial_field():
    class Shuffle(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            x = self.a(x)
            n, c, h, w = x.size()
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
            return self.b(x)

    g = from_torch(Shuffle(), (4, 10, 10))
    assert [f.size for f in g.receptive_field("b")] == [5, 5]
    assert g.axes("transpose") == (2, 3)  # (C/2, 2, H, W) without the batch axis


def test_node_names_follow_the_module_path():
    with torch.device("meta"):
        model = ResNet(Bottleneck, [1, 1, 1, 1])
    g = from_torch(model, (3, 64, 64))
    assert {"layer4.0.relu#1", "layer4.0.relu#2", "layer4.0.relu", "layer1.0.add"} <= set(g.nodes)
    assert "layer4.0.conv1#1" not in g.nodes and "layer4.0.relu#3" not in g.nodes


def test_shufflenet_and_convnext_at_224_keep_their_fields():
    import torchvision_models as tvm

    tvm.load()
    with torch.device("meta"):
        shuffle, convnext = tvm.build("shufflenet_v2_x1_0"), tvm.build("convnext_tiny")
    rf = from_torch(shuffle, (3, 224, 224)).receptive_field("conv5.0")[0]
    assert (rf.size, rf.jump) == (527, 32)
    g = from_torch(convnext, (3, 224, 224))
    assert g.axes("features.1.0.block.1") == (0, 1)  # channels last
    assert not g.receptive_field("features.7.2.add")[0].is_global


def test_an_imported_graph_round_trips_through_its_spec():
    class Mix(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.w = nn.Parameter(torch.rand(4, 6))
            self.gamma = nn.Parameter(torch.rand(6, 1, 1))

        def forward(self, x):
            y = torch.einsum("bchw,cd->bhwd", self.conv(x), self.w).permute(0, 3, 1, 2)
            a, b = (self.gamma * y).split([2, 4], 1)
            return torch.cat([b, a[:, :, 1:, ::2].mean((2, 3), True) * a], 1)

    g = from_torch(Mix(), (4, 9, 9))
    h = type(g).from_spec(json.loads(json.dumps(g.to_spec())))
    assert [h.receptive_field(n) for n in g.nodes] == [g.receptive_field(n) for n in g.nodes]
    assert (
        (param_count(h), macs(h))
        == (param_count(g), macs(g))
        == (4 * 4 * 9 + 4 + 24 + 6, 4 * 81 * 9 * 4 + 81 * 24)
    )


def test_a_parameter_node_holds_no_activation_memory():
    class Gamma(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(4, 1, 1))

        def forward(self, x):
            return self.gamma * x

    g = from_torch(Gamma(), (4, 5, 5))
    assert g.info("gamma").activations == 0
    assert g.summary()["activations"] == 2 * 4 * 5 * 5  # the input and the product
