"""The lecture of a network against PyTorch: every printed size, field, jump, parameter count
and MAC count of random small networks, evaluated on values torch computed.

Hypothesis draws ``nn.Sequential`` networks of convolutions (every kernel, stride, padding,
dilation and bias, non-square), batch norms, ReLUs, max and average pooling and residual
blocks (with a strided 1x1 projection or the identity); :func:`torch_lecture_meaning` values
the lecture's names by running the model (forward hooks: output shapes), counting each
module's tensors (parameters), torch's flop counter on each layer (MACs) and gradient probes
of the linearised network (the field of the centre unit and the jump to its neighbour).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
nn = torch.nn

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torch_probe import dispatch_macs, positive_copy, probe_boxes  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra import from_torch  # noqa: E402
from convalgebra.network.tabulate import layer_rows  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
CHECKED: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print("\nlecture checks against torch:", dict(CHECKED))  # seen with -s


class Residual(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN, plus the input (projected when needed)."""

    def __init__(self, c: int, o: int, stride: int, k: int):
        super().__init__()
        p = (k - 1) // 2
        self.conv1 = nn.Conv2d(c, o, k, stride, p, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(o, o, k, 1, p, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.down = (
            nn.Sequential(nn.Conv2d(c, o, 1, stride, bias=False), nn.BatchNorm2d(o))
            if stride > 1 or c != o
            else None
        )
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.down is None else self.down(x)))


@st.composite
def networks(draw):
    c = draw(st.integers(1, 3))
    size = (c, draw(st.integers(10, 24)), draw(st.integers(10, 24)))
    stages = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "residual"]))
        if kind == "conv":
            o = draw(st.integers(1, 4))
            k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
            s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            p = tuple(draw(st.integers(0, kk // 2 + 1)) for kk in k)
            stages.append(nn.Conv2d(c, o, k, s, p, d, bias=draw(st.booleans())))
            if draw(st.booleans()):
                stages.append(nn.BatchNorm2d(o))
            if draw(st.booleans()):
                stages.append(nn.ReLU())
            c = o
        elif kind == "pool":
            k = draw(st.integers(2, 3))
            s = draw(st.integers(1, 2))
            p = draw(st.integers(0, k // 2))
            if draw(st.booleans()):
                stages.append(nn.MaxPool2d(k, s, p, dilation=draw(st.integers(1, 2))))
            else:
                stages.append(nn.AvgPool2d(k, s, p))
        else:
            o = draw(st.integers(1, 4))
            stages.append(Residual(c, o, draw(st.integers(1, 2)), draw(st.sampled_from([1, 3]))))
            c = o
    return nn.Sequential(*stages).eval(), size


def _window(module) -> dict[str, tuple] | None:
    """k, s, d, p, q per axis of a torch convolution or pooling module."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return None

    def pair(v):
        return tuple(v) if isinstance(v, tuple) else (v, v)

    k, s, p = pair(module.kernel_size), pair(module.stride), pair(module.padding)
    d = pair(getattr(module, "dilation", 1))
    return {"k": k, "s": s, "d": d, "p": p, "q": p}


def _hooked(model, size):
    """Each module's input and output of its last call."""
    seen: dict = {}
    hooks = []
    for name, module in model.named_modules():
        if name:
            hooks.append(
                module.register_forward_hook(
                    lambda m, i, o, n=name: seen.__setitem__(n, (i[0].detach(), o.detach()))
                )
            )
    try:
        with torch.no_grad():
            model(torch.rand(1, *size))
    finally:
        for h in hooks:
            h.remove()
    return seen


def _probe(model, size, names, shapes, shift):
    """The gradient box of the centre unit (moved by ``shift``) of each module's output."""
    requests = {}
    for n in names:
        pos = tuple((m - 1) // 2 + t for m, t in zip(shapes[n][-2:], shift, strict=True))
        if all(0 <= q < m for q, m in zip(pos, shapes[n][-2:], strict=True)):
            requests[n] = ((1, 2), pos)
    return probe_boxes(positive_copy(model), size, requests)


def torch_lecture_meaning(model, size, graph) -> dict:
    """The lecture's names valued by torch alone (the graph gives only the row structure)."""
    modules = dict(model.named_modules())
    seen = _hooked(model, size)
    rows = layer_rows(graph)
    names = [r.last for r in rows[1:]]
    shapes = {n: tuple(seen[n][1].shape[1:]) for n in names}
    boxes = [_probe(model, size, names, shapes, t) for t in ((0, 0), (1, 0), (0, 1))]
    meaning: dict = {}
    per_axis: dict = {}
    per_axis[0] = {"n": size[1:], "r": (1, 1), "j": (1, 1)}
    meaning["shape_0"] = tuple(size)
    clipped = False
    for l, row in enumerate(rows[1:], 1):
        last, lead = modules[row.last], modules.get(row.lead)
        values = {"n": shapes[row.last][1:]}
        box = boxes[0].get(row.last)
        inside = box is not None and all(
            0 < a and b < n - 1 for (a, b), n in zip(box, size[1:], strict=True)
        )
        clipped = clipped or not inside
        if not clipped:
            values["r"] = tuple(b - a + 1 for a, b in box)
            jumps = []
            for axis, moved in ((0, boxes[1]), (1, boxes[2])):
                other = moved.get(row.last)
                jumps.append(None if other is None else other[axis][0] - box[axis][0])
            if None not in jumps:
                values["j"] = tuple(jumps)
        window = _window(lead)
        values.update(window or {})
        per_axis[l] = values
        meaning[f"shape_{l}"] = shapes[row.last]
        meaning[f"P_{l}"] = sum(
            p.numel() for n in row.nodes if n in modules for p in modules[n].parameters()
        )
        meaning[f"MACs_{l}"] = 0
        if isinstance(lead, nn.Conv2d):
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                lead(seen[row.lead][0])
            meaning[f"MACs_{l}"] = counter.get_total_flops() // 2
        del last
    for l, values in per_axis.items():
        for key, pair in values.items():
            for a, v in enumerate(pair):
                meaning[f"{key}_{l},{a + 1}"] = int(v)
            if len(set(pair)) == 1:
                meaning[f"{key}_{l}"] = int(pair[0])
    meaning["P"] = sum(p.numel() for p in model.parameters())
    meaning["MACs"] = dispatch_macs(model, size)
    return meaning


@SETTINGS
@given(networks())
@example(
    (
        nn.Sequential(
            nn.Conv2d(1, 2, 3, 2, 1), nn.BatchNorm2d(2), nn.ReLU(), Residual(2, 3, 2, 3)
        ).eval(),
        (1, 15, 20),
    )
)
@example(  # a dilated max pool: its window reads taps 0 and 2, a field of 3
    (nn.Sequential(nn.Conv2d(1, 1, 1), nn.MaxPool2d(2, 1, 0, dilation=2)).eval(), (1, 10, 10))
)
@example((nn.Sequential(nn.Conv2d(1, 1, 1, dilation=(1, 2), bias=False)).eval(), (1, 10, 10)))
def test_lecture_reads_back_as_torch_computes(case):
    model, size = case
    try:
        torch.no_grad()(model)(torch.rand(1, *size))
    except RuntimeError:  # an output size below 1: not a network
        return
    graph = from_torch(model, size)
    d = ca.derive("lecture", graph)
    meaning = torch_lecture_meaning(model, size, graph)
    n = d.verify(meaning)
    assert n > 0
    CHECKED["checks"] += n
    CHECKED["layers"] += d.result["layers"]
    assert d.result["params"] == meaning["P"] and d.result["macs"] == meaning["MACs"]
    assert math.prod(graph.shape(layer_rows(graph)[-1].last)) == math.prod(
        meaning[f"shape_{d.result['layers']}"]
    )
