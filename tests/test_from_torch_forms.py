"""from_torch on modules written as users write them (issue: functional forms and slices).

Hypothesis draws small torch modules mixing module and functional forms, subclassed layers
whose ``forward`` calls the functional form, channels-last blocks, channel slices, splits and
shuffles, crops by indexing, parameters used directly (layer scale, einsum and matmul
weights), a module called twice and squeeze-and-excitation gates. For each: parameters equal
``sum(p.numel())``, MACs equal torch's dispatch count, and the box read by one unit of every
block's output equals the gradient probe of the linearised module (for a global field too:
no op that leaves the spatial axes alone may widen a field).
"""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
nn, F = torch.nn, torch.nn.functional

from torch_probe import dispatch_macs, positive_copy, probe_boxes  # noqa: E402

from convalgebra import ConvAlgebraError, from_torch, macs, param_count  # noqa: E402
from convalgebra.interop.torch import UnmodelledOpWarning  # noqa: E402

C = 4


class Block(nn.Module):
    """A block whose output passes through ``self.out`` (a hookable, named point)."""

    def __init__(self):
        super().__init__()
        self.out = nn.Identity()


class ConvModule(Block):
    def __init__(self, k, s, p, d, g):
        super().__init__()
        self.conv = nn.Conv2d(C, C, k, s, p, d, g)

    def forward(self, x):
        return self.out(self.conv(x))


class SubConv(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class FunctionalConv(Block):
    def __init__(self, k, s, p, d, g, subclass, transposed):
        super().__init__()
        self.transposed = transposed
        if subclass and not transposed:
            self.conv = SubConv(C, C, k, s, p, d, g)
        else:
            shape = (C, C // g, k, k)
            self.w = nn.Parameter(torch.rand(shape))
            self.b = nn.Parameter(torch.rand(C))
        self.args = (s, p, d, g)

    def forward(self, x):
        s, p, d, g = self.args
        if hasattr(self, "conv"):
            return self.out(self.conv(x))
        if self.transposed:
            return self.out(F.conv_transpose2d(x, self.w, self.b, s, p, 0, g, d))
        return self.out(F.conv2d(x, self.w, self.b, s, p, d, g))


class BNAct(nn.BatchNorm2d):
    def forward(self, x):
        x = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1, self.eps
        )
        return F.relu(x)


class Norm(Block):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        if kind == "bnact":
            self.bn = BNAct(C)
        else:
            self.w, self.b = nn.Parameter(torch.rand(C)), nn.Parameter(torch.rand(C))

    def forward(self, x):
        if self.kind == "bnact":
            return self.out(self.bn(x))
        if self.kind == "group":
            return self.out(F.group_norm(x, 2, self.w, self.b))
        return self.out(F.instance_norm(x, weight=self.w, bias=self.b))


class Lin(nn.Linear):
    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class ChannelsLast(Block):
    """ConvNeXt style: permute, layer norm, a channel mix over the last axis, layer scale."""

    def __init__(self, mix, norm_module):
        super().__init__()
        self.mix = mix
        self.norm = nn.LayerNorm(C) if norm_module else None
        if not norm_module:
            self.ln_w, self.ln_b = nn.Parameter(torch.rand(C)), nn.Parameter(torch.rand(C))
        self.lin = Lin(C, 2 * C)
        self.w = nn.Parameter(torch.rand(2 * C, C))
        self.gamma = nn.Parameter(torch.rand(C, 1, 1))

    def forward(self, x):
        y = x.permute(0, 2, 3, 1)
        y = self.norm(y) if self.norm is not None else F.layer_norm(y, (C,), self.ln_w, self.ln_b)
        y = F.gelu(self.lin(y))
        if self.mix == "matmul":
            y = y @ self.w
        else:
            y = torch.einsum("bhwc,cd->bhwd", y, self.w)
        return self.out(x + self.gamma * y.permute(0, 3, 1, 2))


class Split(Block):
    def __init__(self, how, k):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(C // 2, C // 2, k, padding=k // 2)

    def forward(self, x):
        if self.how == "split":
            a, b = torch.split(x, [C // 2, C // 2], 1)
        elif self.how == "chunk":
            a, b = x.chunk(2, dim=1)
        elif self.how == "narrow":
            a, b = x.narrow(1, 0, C // 2), x.narrow(1, C // 2, C // 2)
        else:
            a, b = x[:, : C // 2], x[:, C // 2 :]
        return self.out(torch.cat([self.conv(a), b], 1))


class Shuffle(Block):
    def forward(self, x):
        b, c, h, w = x.size()
        x = x.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous()
        return self.out(x.view(b, -1, h, w))


class Pool(Block):
    def __init__(self, kind, k, s, p, ceil):
        super().__init__()
        self.kind, self.args = kind, (k, s, p)
        self.ceil = ceil

    def forward(self, x):
        k, s, p = self.args
        if self.kind == "max":
            return self.out(F.max_pool2d(x, k, s, p, ceil_mode=self.ceil))
        return self.out(F.avg_pool2d(x, k, s, p, ceil_mode=self.ceil))


class Pad(Block):
    def __init__(self, pads, mode):
        super().__init__()
        self.pads, self.mode = pads, mode

    def forward(self, x):
        return self.out(F.pad(x, self.pads, mode=self.mode))


class Interp(Block):
    def __init__(self, mode, scale):
        super().__init__()
        self.mode, self.scale = mode, scale

    def forward(self, x):
        align = False if self.mode == "bilinear" else None
        return self.out(
            F.interpolate(x, scale_factor=self.scale, mode=self.mode, align_corners=align)
        )


class Crop(Block):
    def __init__(self, a, b, step):
        super().__init__()
        self.a, self.b, self.step = a, b, step

    def forward(self, x):
        return self.out(x[:, :, self.a : x.shape[2] - self.b, self.b :: self.step])


class Shared(Block):
    """The same module called twice (its parameters counted once)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, padding=1)

    def forward(self, x):
        return self.out(self.conv(F.relu(self.conv(x))))


class SqueezeExcite(Block):
    def __init__(self):
        super().__init__()
        self.fc = nn.Conv2d(C, C, 1)

    def forward(self, x):
        gate = torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))
        return self.out(x * gate)


def _local_block(draw):
    kind = draw(
        st.sampled_from(
            [
                "conv",
                "fconv",
                "norm",
                "last",
                "split",
                "shuffle",
                "pool",
                "pad",
                "interp",
                "crop",
                "shared",
            ]
        )
    )
    k = draw(st.sampled_from([1, 2, 3]))
    s, d = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    g = draw(st.sampled_from([1, 2, 4]))
    if kind == "conv":
        return ConvModule(k, s, p, d, g)
    if kind == "fconv":
        return FunctionalConv(k, s, p, d, g, draw(st.booleans()), draw(st.booleans()))
    if kind == "norm":
        return Norm("bnact")
    if kind == "last":
        return ChannelsLast(draw(st.sampled_from(["matmul", "einsum"])), draw(st.booleans()))
    if kind == "split":
        return Split(draw(st.sampled_from(["split", "chunk", "narrow", "index"])), 2 * p + 1)
    if kind == "shuffle":
        return Shuffle()
    if kind == "pool":
        kp = max(k, 2)
        return Pool(
            draw(st.sampled_from(["max", "avg"])),
            kp,
            s,
            draw(st.integers(0, kp // 2)),
            draw(st.booleans()),
        )
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
        return Pad(tuple(draw(st.integers(0, 2)) for _ in range(4)), mode)
    if kind == "interp":
        return Interp(draw(st.sampled_from(["nearest", "bilinear"])), 2)
    if kind == "crop":
        return Crop(draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 2)))
    return Shared()


@st.composite
def networks(draw):
    size = (C, draw(st.integers(8, 14)), draw(st.integers(8, 14)))
    blocks, shape = [], size
    for _ in range(draw(st.integers(1, 5))):
        block = _local_block(draw)
        try:
            with torch.no_grad():
                out = block(torch.rand(1, *shape)).shape[1:]
        except RuntimeError:  # e.g. reflect padding wider than the input
            continue
        if min(out[1:]) < 2 or max(out[1:]) > 40:
            continue
        blocks.append(block)
        shape = tuple(out)
    if draw(st.booleans()):
        blocks.append(
            draw(
                st.sampled_from([SqueezeExcite, lambda: Norm("group"), lambda: Norm("instance")])
            )()
        )
    return nn.Sequential(*blocks).eval(), size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.data())
def test_mixed_forms_give_the_torch_facts(case, data):
    model, size = case
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmodelledOpWarning)
        g = from_torch(model, size)
    assert param_count(g) == sum(p.numel() for p in model.parameters())
    assert macs(g) == dispatch_macs(model, size)
    requests = {}
    for k in range(len(model)):
        node = f"{k}.out"
        axes = g.axes(node)
        sizes = [g.shape(node)[t] for t in axes]
        requests[node] = (axes, tuple(data.draw(st.integers(0, n - 1)) for n in sizes))
    boxes = probe_boxes(positive_copy(model), size, requests)
    for node, (_, pos) in requests.items():
        assert g.unit_receptive_field(node, pos).box == boxes[node], node


class ShapeBranch(nn.Module):
    """Pads odd sizes to even ones: a branch on a shape, which torch.fx cannot trace."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        if x.shape[-1] % 2 == 1:
            x = F.pad(x, (0, 1, 0, 1))
        return self.body(x)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.data())
def test_a_shape_branch_is_traced_by_export_with_the_same_facts(case, data):
    body, size = case
    model = ShapeBranch(body).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmodelledOpWarning)
        g = from_torch(model, size)
    assert g.nx.graph["route"] == "torch.export"
    assert param_count(g) == sum(p.numel() for p in model.parameters())
    assert macs(g) == dispatch_macs(model, size)
    out = g.outputs[0]
    axes = g.axes(out)
    pos = tuple(data.draw(st.integers(0, g.shape(out)[t] - 1)) for t in axes)
    box = probe_boxes(positive_copy(model), size, {"": (axes, pos)})[""]
    assert g.unit_receptive_field(out, pos).box == box


def test_a_gate_on_zero_padding_reads_nothing():
    """The case the test above found (its draws use ``st.data()``, which ``@example`` cannot
    give): ``F.pad`` pads 8x11 to 9x12, nearest upsampling doubles it; in the padding (row 16
    and beyond, column 22 and beyond) the squeeze-and-excitation product is ``0 * gate``, the
    constant 0: it reads no input, not the gate's global box."""
    model = ShapeBranch(nn.Sequential(Interp("nearest", 2), SqueezeExcite())).eval()
    size = (C, 8, 11)
    g = from_torch(model, size)
    assert g.nx.graph["route"] == "torch.export"
    out = g.outputs[0]
    axes = g.axes(out)
    units = [(0, 22), (0, 23), (17, 5), (16, 23), (0, 21), (15, 0), (9, 9)]
    probed = positive_copy(model)
    boxes = {u: probe_boxes(probed, size, {"": (axes, u)})[""] for u in units}
    assert boxes[(0, 22)] is None and boxes[(0, 21)] == ((0, 7), (0, 10))
    for unit in units:
        assert g.unit_receptive_field(out, unit).box == boxes[unit], unit


# ----------------------------------------------- published architectures in these styles
class Conv2dSame(nn.Conv2d):
    """timm's TensorFlow-style 'same' convolution: padding computed from the input size."""

    def forward(self, x):
        ih, iw = x.size()[-2:]
        pads = [
            max((math.ceil(i / s) - 1) * s + (k - 1) * d + 1 - i, 0)
            for i, s, k, d in zip(
                (ih, iw), self.stride, self.kernel_size, self.dilation, strict=True
            )
        ]
        if pads[0] > 0 or pads[1] > 0:
            x = F.pad(
                x, [pads[1] // 2, pads[1] - pads[1] // 2, pads[0] // 2, pads[0] - pads[0] // 2]
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class LayerNorm2d(nn.LayerNorm):
    """timm's LayerNorm2d: layer norm over channels through a permute."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class EfficientStyle(nn.Module):
    """timm-style stem and inverted residual: same padding, fused BN+act, an SE gate."""

    def __init__(self):
        super().__init__()
        self.stem = Conv2dSame(3, 8, 3, 2)
        self.bn = BNAct(8)
        self.dw = Conv2dSame(8, 8, 5, 2, groups=8)
        self.se_reduce, self.se_expand = nn.Conv2d(8, 2, 1), nn.Conv2d(2, 8, 1)
        self.project = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.bn(self.stem(x))
        y = F.silu(self.dw(x))
        s = self.se_expand(F.silu(self.se_reduce(y.mean((2, 3), keepdim=True))))
        return self.project(y * s.sigmoid())


class ConvNeXtStyle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, 4)
        self.norm = LayerNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.mlp = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8))
        self.gamma = nn.Parameter(torch.full((8,), 1e-6))

    def forward(self, x):
        x = self.norm(self.stem(x))
        y = self.mlp(self.dw(x).permute(0, 2, 3, 1))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class UNetStyle(nn.Module):
    """Decoder upsampling to the skip's size (shape arguments) and concatenating."""

    def __init__(self):
        super().__init__()
        self.enc1, self.enc2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
        self.dec = nn.Conv2d(12, 4, 3, padding=1)

    def forward(self, x):
        a = F.relu(self.enc1(x))
        b = F.relu(self.enc2(F.max_pool2d(a, 2)))
        up = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
        return self.dec(torch.cat([a, up], dim=1))


@pytest.mark.parametrize(
    "make, route",
    [(EfficientStyle, "torch.export"), (ConvNeXtStyle, "torch.fx"), (UNetStyle, "torch.fx")],
    ids=["efficientnet-timm", "convnext-timm", "unet"],
)
def test_published_styles_give_the_torch_facts(make, route):
    torch.manual_seed(0)
    model, size = make().eval(), (3, 15, 17)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmodelledOpWarning)
        g = from_torch(model, size)
    assert g.nx.graph["route"] == route
    assert param_count(g) == sum(p.numel() for p in model.parameters())
    assert macs(g) == dispatch_macs(model, size)
    out = g.outputs[0]
    shape = g.shape(out)
    requests = {"": (g.axes(out), tuple(shape[t] // 2 for t in g.axes(out)))}
    box = probe_boxes(positive_copy(model), size, requests)[""]
    assert g.unit_receptive_field(out, requests[""][1]).box == box


# ------------------------------------------------------- the tracer builds torch's graph
def _fx_record(graph):
    """Every node of an fx graph as text: its line of code, module stack and users."""
    return [
        (
            node.format_node(),
            tuple((k, v[0], v[1]) for k, v in (node.meta.get("nn_module_stack") or {}).items()),
            tuple(u.name for u in node.users),
        )
        for node in graph.nodes
    ]


def _same_trace(model):
    from convalgebra.interop.torch.tracing import recording_tracer

    ours, theirs = recording_tracer(torch), torch.fx.Tracer()
    assert _fx_record(ours.trace(model)) == _fx_record(theirs.trace(model))
    assert ours.node_name_to_scope == theirs.node_name_to_scope
    assert ours.calls  # every module call recorded, with the node(s) it returns
    assert all(isinstance(path, str) for path, _ in ours.calls)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_the_recording_tracer_builds_the_graph_torch_fx_builds(case):
    model, _ = case
    _same_trace(model)


@pytest.mark.parametrize("make", [ConvNeXtStyle, UNetStyle], ids=["convnext-timm", "unet"])
def test_the_recording_tracer_builds_the_graph_torch_fx_builds_for_published_styles(make):
    _same_trace(make().eval())


class _Transposed(nn.Module):
    """A convolution of the transposed image: its output's axes are (C, W, H)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, (3, 2), stride=(2, 1), padding=(1, 0))

    def forward(self, x):
        return self.conv(x.transpose(2, 3))


def test_a_permuted_node_is_addressed_in_the_inputs_axis_order():
    """``g.axes(node)`` says where each input axis sits; the position is in input order."""
    model, size = _Transposed().double().eval(), (1, 5, 9)
    g = from_torch(model, size)
    out = g.outputs[0]
    axes = g.axes(out)
    assert axes == (2, 1)  # input H is the output's last axis, input W its middle one
    extent = [g.shape(out)[t] for t in axes]
    for pos in [(0, 0), (extent[0] - 1, extent[1] - 1), (2, 1)]:
        box = probe_boxes(positive_copy(model), size, {"": (axes, pos)})[""]
        assert g.unit_receptive_field(out, pos).box == box, pos
    assert g.shape(out) == (1, 5, 4) and extent == [4, 5]
    with pytest.raises(ConvAlgebraError, match=r"in its order, below \(4, 5\)"):
        g.unit_receptive_field(out, (4, 0))  # in the node's own order it would be inside
