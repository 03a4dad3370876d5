"""The field of a product where one factor is structurally zero (zero padding).

A product ``y * g`` is the constant 0 wherever ``y`` is: a position of constant padding
with value 0, or one computed from such positions only by layers that map 0 to 0. Its field
there is empty, even when ``g`` is a squeeze-and-excitation gate reading the whole input;
with a non-zero padding value, a bias or an activation with ``f(0) != 0`` (the sigmoid) on
the way, the product reads ``g``'s field. Hypothesis draws such products (paddings, values,
layers between the padding and the product, the kind of the other factor, layers after
it) and compares the box of every output unit with the gradient support of the module
(positive parameters and inputs, the sigmoid and tanh replaced by functions with the same
value at 0 that do not saturate: no derivative vanishes by accident; average pools only, as
a max pool's gradient reaches one position of its window).
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
nn, F = torch.nn, torch.nn.functional

from torch.overrides import TorchFunctionMode  # noqa: E402
from torch_probe import positive_copy  # noqa: E402

from convalgebra import from_torch  # noqa: E402
from convalgebra.interop.torch import UnmodelledOpWarning  # noqa: E402
from convalgebra.network.graph import LayerGraph  # noqa: E402
from convalgebra.network.layers import Conv, Mul, Pad, Parameter, SqueezeExcite  # noqa: E402

C = 2


class Step(nn.Module):
    """One layer between the padding and the product (or after the product)."""

    def __init__(self, kind, arg):
        super().__init__()
        self.kind, self.arg = kind, arg
        if kind in ("conv", "tconv"):
            k, p, bias = arg
            cls = nn.ConvTranspose2d if kind == "tconv" else nn.Conv2d
            stride = 2 if kind == "tconv" else 1
            self.conv = cls(C, C, k, stride, p, bias=bias)

    def extra_repr(self):
        return f"{self.kind!r}, {self.arg!r}"

    def forward(self, y):
        kind, arg = self.kind, self.arg
        if kind in ("conv", "tconv"):
            return self.conv(y)
        if kind == "act":
            return getattr(torch, arg)(y) if arg in ("sigmoid", "tanh") else getattr(F, arg)(y)
        if kind == "pool":
            return F.avg_pool2d(y, 2, 2, arg[0], ceil_mode=arg[1], count_include_pad=arg[2])
        if kind == "up":
            return F.interpolate(y, scale_factor=2, mode=arg)
        if kind == "scale":
            return y * 3.0
        if kind == "shift":
            return y + 2.0
        assert kind == "crop"
        return y[:, :, arg:, : y.shape[-1] - arg]


class ZeroGate(nn.Module):
    """``pad`` the input, run ``pre`` on it, multiply by ``factor``, then run ``post``."""

    def __init__(self, pads, mode, value, pre, factor, post):
        super().__init__()
        self.pads, self.mode, self.value, self.factor = pads, mode, value, factor
        self.pre, self.post = nn.ModuleList(pre), nn.ModuleList(post)
        self.fc = nn.Conv2d(C, C, 1)
        self.local = nn.Conv2d(C, C, 3, padding=1)
        self.scale = nn.Parameter(torch.rand(C, 1, 1) + 0.5)

    def extra_repr(self):
        return f"pads={self.pads}, mode={self.mode!r}, value={self.value}, factor={self.factor!r}"

    def forward(self, x):
        kw = {"value": self.value} if self.mode == "constant" else {}
        y = F.pad(x, self.pads, mode=self.mode, **kw)
        for step in self.pre:
            y = step(y)
        if self.factor == "se":  # squeeze-and-excitation of y
            y = y * torch.sigmoid(self.fc(F.adaptive_avg_pool2d(y, 1)))
        elif self.factor == "input_gate":  # a gate computed from the unpadded input
            y = y * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))
        elif self.factor == "pooled":  # a gate without a bias: zero only if y is everywhere
            y = y * F.adaptive_avg_pool2d(y, 1)
        elif self.factor == "local":  # a local factor of the same padded tensor
            y = y * self.local(y)
        elif self.factor == "self":
            y = y * y
        elif self.factor == "ge":  # 1 where y >= 0 (and so on the padding): the gate is read
            gate = torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))
            y = torch.ge(y, y * 0.5).to(y.dtype) * gate
        else:  # a non-zero constant tensor, then a gate
            y = (y * self.scale) * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))
        for step in self.post:
            y = step(y)
        return y


def _step(draw, after):
    kinds = ["conv", "act", "pool", "up", "scale", "shift", "crop"]
    kind = draw(st.sampled_from(kinds if after else [*kinds, "tconv"]))
    if kind == "conv":
        k = draw(st.integers(1, 3))
        return Step(kind, (k, draw(st.integers(0, 2)), draw(st.booleans())))
    if kind == "tconv":
        return Step(kind, (draw(st.integers(1, 3)), 0, draw(st.booleans())))
    if kind == "act":
        return Step(kind, draw(st.sampled_from(["relu", "silu", "gelu", "sigmoid", "tanh"])))
    if kind == "pool":
        return Step(kind, (draw(st.integers(0, 1)), draw(st.booleans()), draw(st.booleans())))
    if kind == "up":
        return Step(kind, draw(st.sampled_from(["nearest", "bilinear"])))
    if kind == "crop":
        return Step(kind, draw(st.integers(1, 2)))
    return Step(kind, None)


@st.composite
def zero_gates(draw):
    size = (C, draw(st.integers(3, 7)), draw(st.integers(3, 7)))
    mode = draw(st.sampled_from(["constant", "constant", "constant", "reflect", "replicate"]))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    value = draw(st.sampled_from([0.0, 0.0, 0.5, 2.0]))
    pre = [_step(draw, False) for _ in range(draw(st.integers(0, 2)))]
    post = [_step(draw, True) for _ in range(draw(st.integers(0, 1)))]
    factor = draw(
        st.sampled_from(["se", "input_gate", "pooled", "local", "self", "constant", "ge"])
    )
    model = ZeroGate(pads, mode, value, pre, factor, post).eval()
    try:
        with torch.no_grad():
            out = model(torch.rand(1, *size))
    except RuntimeError:  # e.g. reflect padding wider than the input, a pool too large
        out = None
    if out is None or min(out.shape[2:]) < 1 or out.shape[2:].numel() > 400:
        reject()
    return model, size


class Unsaturated(TorchFunctionMode):
    """The sigmoid as ``x + 1/2`` and tanh as ``x``: the same values at 0 (so the same
    structural zeros), without the saturation that rounds a derivative to 0 in float64."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("sigmoid", "sigmoid_"):
            return args[0] + 0.5
        if name in ("tanh", "tanh_"):
            return args[0]
        return func(*args, **(kwargs or {}))


def gradient_boxes(model, size, out_shape) -> dict:
    """Every output unit's gradient support in the module (one backward pass)."""
    h, w = out_shape
    units = [(i, j) for i in range(h) for j in range(w)]
    x = (torch.rand(len(units), *size, dtype=torch.float64) + 0.5).requires_grad_()
    with Unsaturated():
        y = model(x)
    rows = torch.arange(len(units))
    picked = y[rows, :, [u[0] for u in units], [u[1] for u in units]]
    picked.sum().backward()
    grad = x.grad.abs().sum(1)
    boxes = {}
    for k, unit in enumerate(units):
        nz = torch.nonzero(grad[k])
        boxes[unit] = tuple((int(a.min()), int(a.max())) for a in nz.T) if nz.shape[0] else None
    return boxes


def _case(pads, value, pre, factor, post=(), mode="constant"):
    return ZeroGate(pads, mode, value, [Step(*s) for s in pre], factor, [Step(*s) for s in post])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(zero_gates())
# a saturated sigmoid: its derivative rounds to 0 in float64 (the oracle avoids saturation)
@example(
    case=(
        _case((0, 0, 0, 0), 0.0, [("scale", None)] * 2, "pooled", [("act", "sigmoid")]).eval(),
        (C, 3, 3),
    )
)
# a gate on zero padding: 0 * gate reads nothing (found before products knew zeros)
@example(case=(_case((0, 1, 0, 1), 0.0, [], "se").eval(), (C, 3, 3)))
@example(case=(_case((0, 1, 0, 1), 0.0, [("up", "nearest")], "se").eval(), (C, 8, 11)))
# y + 2.0 is not zero on the padding (it was imported as a scaling, which keeps zeros)
@example(case=(_case((0, 1, 0, 1), 0.0, [("shift", None)], "se").eval(), (C, 3, 3)))
# a non-zero padding value, the sigmoid (f(0) != 0), a transposed convolution without bias
@example(
    case=(
        _case(
            (1, 0, 2, 0), 0.5, [("conv", (1, 0, False))], "input_gate", [("conv", (3, 1, False))]
        ).eval(),
        (C, 4, 5),
    )
)
@example(case=(_case((2, 0, 0, 1), 0.0, [("act", "sigmoid")], "local").eval(), (C, 4, 4)))
# ge(0, 0) is 1: a comparison of two zeros times a gate reads the gate (not a product of zeros)
@example(case=(_case((0, 1, 0, 1), 0.0, [], "ge").eval(), (C, 3, 3)))
@example(case=(_case((1, 0, 1, 0), 0.0, [("conv", (3, 1, False))], "ge").eval(), (C, 4, 4)))
@example(case=(_case((1, 1, 1, 0), 0.0, [("tconv", (3, 0, False))], "self").eval(), (C, 3, 4)))
def test_a_product_with_a_padded_factor_reads_what_the_gradient_reads(case):
    model, size = case
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmodelledOpWarning)
        g = from_torch(model, size)
    out = g.outputs[0]
    assert g.axes(out) == (1, 2)
    boxes = gradient_boxes(positive_copy(model), size, g.shape(out)[1:])
    for unit, box in boxes.items():
        assert g.unit_receptive_field(out, unit).box == box, unit


# ------------------------------------------------- hand-built graphs: the same rule, no torch import
def _graph(pads, value, bias, factor):
    g = LayerGraph()
    g.add_input("x", (C, 4, 5))
    g.add("pad", Pad(pads, value=value), "x")
    g.add("conv", Conv(C, 3, padding=1, bias=bias), "pad")
    if factor == "se":
        g.add("out", SqueezeExcite(1), "conv")
    else:
        g.add("gamma", Parameter((C, 1, 1)))
        g.add("out", Mul(), ["conv", "gamma"])
    return g


class _TorchGraph(nn.Module):
    def __init__(self, pads, value, bias, factor):
        super().__init__()
        self.pads, self.value, self.factor = pads, value, factor
        self.conv = nn.Conv2d(C, C, 3, padding=1, bias=bias)
        self.fc1, self.fc2 = nn.Conv2d(C, 1, 1), nn.Conv2d(1, C, 1)
        self.gamma = nn.Parameter(torch.rand(C, 1, 1))

    def forward(self, x):
        (t, b), (lft, r) = self.pads
        y = self.conv(F.pad(x, (lft, r, t, b), value=self.value))
        if self.factor == "se":
            return y * torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return y * self.gamma


@settings(deadline=None)
@example(pads=((0, 0), (0, 2)), value=0.0, bias=False, factor="se")
@given(
    st.tuples(
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
    st.sampled_from([0.0, 1.5]),
    st.booleans(),
    st.sampled_from(["se", "constant"]),
)
def test_a_layer_graph_product_is_empty_where_its_factor_is_zero(pads, value, bias, factor):
    g = _graph(pads, value, bias, factor)
    model = _TorchGraph(pads, value, bias, factor).eval()
    boxes = gradient_boxes(positive_copy(model), (C, 4, 5), g.shape("out")[1:])
    for unit, box in boxes.items():
        assert g.unit_receptive_field("out", unit).box == box, unit


class _Clipped(nn.Module):
    """``hardtanh(pad(x), lo, hi) * conv(x)``: a gate on the padding unless the clip maps 0 to 0."""

    def __init__(self, lo, hi, module):
        super().__init__()
        self.lo, self.hi = lo, hi
        self.act = nn.Hardtanh(lo, hi) if module else None
        self.conv = nn.Conv1d(1, 1, 3, padding=3)

    def forward(self, x):
        y = F.pad(x, (2, 2))
        y = self.act(y) if self.act is not None else F.hardtanh(y, self.lo, self.hi)
        return y * self.conv(x)


@pytest.mark.parametrize("module", [True, False], ids=["module", "function"])
@pytest.mark.parametrize("lo, hi", [(0.5, 2.0), (-2.0, -0.5), (-1.0, 1.0), (0.0, 6.0)])
def test_a_clip_whose_interval_misses_zero_is_no_zero(lo, hi, module):
    """hardtanh(0, 0.5, 2) = 0.5: the product reads the other factor on the padding (it was
    read as relu6, which keeps zeros, so the field was empty)."""
    model = _Clipped(lo, hi, module).double().eval()
    g = from_torch(model, (1, 4))
    out = g.outputs[0]
    x = (torch.rand(1, 1, 4, dtype=torch.float64) + 0.1).requires_grad_()
    for unit in range(g.shape(out)[1]):
        (grad,) = torch.autograd.grad(model(x)[0, 0, unit], x)
        nz = torch.nonzero(grad[0, 0])[:, 0]
        box = ((int(nz.min()), int(nz.max())),) if len(nz) else None
        assert g.unit_receptive_field(out, (unit,)).box == box, unit
