"""Gated receptive fields: the field of the non-gate path, held against a gradient probe.

A random stack of convolutions, average pools and squeeze-and-excitation gates is written as
a plain torch module and imported with ``from_torch``. The module is linear on its main path
(positive weights, no activation there), so the support of the input gradient of one output
unit is its receptive field: with the gate computed normally for ``gates="keep"``, and with
the gate's value detached (a constant) for ``gates="ignore"``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
nn = torch.nn

import convalgebra as ca  # noqa: E402
from convalgebra.errors import ConvAlgebraError  # noqa: E402
from convalgebra.network.layers import AdaptivePool, Conv, Mul, SqueezeExcite  # noqa: E402


class Gate(nn.Module):
    """Squeeze-and-excitation: pool, 1x1 conv, ReLU, 1x1 conv, sigmoid, multiply."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, 2, 1)
        self.fc2 = nn.Conv2d(2, channels, 1)
        self.constant = False

    def forward(self, x):
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))
        return x * (s.detach() if self.constant else s)


@st.composite
def gated_stacks(draw):
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "conv", "pool"]))
        if kind == "conv":
            k = draw(st.integers(1, 3))
            blocks.append(
                nn.Conv2d(
                    2,
                    2,
                    k,
                    stride=draw(st.integers(1, 2)),
                    padding=draw(st.integers(0, k // 2)),
                    dilation=draw(st.integers(1, 2)),
                )
            )
        else:
            blocks.append(nn.AvgPool2d(2, stride=draw(st.integers(1, 2))))
        if draw(st.booleans()):
            blocks.append(Gate(2))
    size = draw(st.tuples(st.integers(9, 16), st.integers(9, 16)))
    return nn.Sequential(*blocks), size


def _positive(module) -> None:
    """Positive weights scaled by the fan-in: values stay near 1, so the sigmoid of a gate
    never saturates (its derivative would round to 0 and hide the gate's reach)."""
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_((torch.rand_like(p) + 0.1) / fan_in)


def _probe_box(module, size, position, constant: bool):
    for m in module.modules():
        if isinstance(m, Gate):
            m.constant = constant
    x = (torch.rand((1, 2, *size), dtype=torch.float64) + 0.5).requires_grad_()
    y = module(x)
    y[(0, slice(None), *position)].sum().backward()
    where = np.nonzero(x.grad[0].abs().sum(0).numpy() > 0)
    return tuple((int(w.min()), int(w.max())) for w in where) if where[0].size else None


@settings(max_examples=25)
@given(stack=gated_stacks(), data=st.data())
def test_gated_and_strict_unit_fields_equal_gradient_probes(stack, data):
    module, size = stack
    module = module.double()
    _positive(module)
    try:
        g = ca.from_torch(module, (2, *size))
    except ConvAlgebraError:
        assume(False)  # the stack does not fit the input
    node = g.outputs[-1]
    shape = g.shape(node)
    assume(len(shape) == 3 and min(shape[1:]) >= 1)
    position = tuple(data.draw(st.integers(0, s - 1)) for s in shape[1:])
    for gates, constant in (("keep", False), ("ignore", True)):
        box = g.unit_receptive_field(node, position, gates=gates).box
        assert box == _probe_box(module, size, position, constant), gates


@settings(max_examples=25)
@given(stack=gated_stacks())
def test_ignored_gates_give_the_gate_free_network_field(stack):
    """The field without gates equals the field of the same network with the gates removed."""
    module, size = stack
    try:
        g = ca.from_torch(module, (2, *size))
        bare = ca.from_torch(
            nn.Sequential(*[m for m in module if not isinstance(m, Gate)]), (2, *size)
        )
    except ConvAlgebraError:
        assume(False)
    assert g.receptive_field(gates="ignore") == bare.receptive_field()


def _se_graph(layer_gate: bool) -> ca.LayerGraph:
    g = ca.LayerGraph("se")
    g.add_input("x", (4, 16, 16))
    g.add("conv1", Conv(4, 3, padding=1), "x")
    if layer_gate:
        g.add("se", SqueezeExcite(2), "conv1")
    else:
        g.add("pool", AdaptivePool(1), "conv1")
        g.add("fc", Conv(4, 1), "pool")
        g.add("se", Mul(), ["conv1", "fc"])
    g.add("conv2", Conv(4, 3, padding=1), "se")
    return g


@pytest.mark.parametrize("layer_gate", [True, False], ids=["squeeze_excite", "mul"])
def test_gate_free_field_of_a_hand_built_graph(layer_gate):
    g = _se_graph(layer_gate)
    assert g.receptive_field("conv2")[0].is_global
    assert [f.describe() for f in g.receptive_field("conv2", gates="ignore")] == ["5/1", "5/1"]
    assert ca.receptive_field(g, gates="ignore") == g.receptive_field("conv2", gates="ignore")
    assert g.receptive_field("conv2", gates="ignore", exact=True)[0].size == 5


def test_table_and_derivation_show_both_fields():
    g = _se_graph(False)
    rows = {r["node"]: r for r in __import__("json").loads(g.table("json"))}
    assert rows["conv2"]["RF"] == "global x global"
    assert rows["conv2"]["RF w/o gates"] == "5/1 x 5/1"
    text = ca.derive("receptive_field", g).to_text()
    assert "without gates" in text and "5/1 x 5/1" in text.split("Summary")[-1]


def test_table_has_no_gate_column_without_gates():
    g = ca.LayerGraph.sequential((1, 8, 8), [Conv(1, 3)])
    assert "RF w/o gates" not in g.table()
    assert "without gates" not in ca.derive("receptive_field", g).to_text()


def test_product_of_two_pooled_branches_has_no_gate():
    g = ca.LayerGraph()
    g.add_input("x", (2, 8, 8))
    g.add("a", AdaptivePool(1), "x")
    g.add("b", AdaptivePool(1), "x")
    g.add("ab", Mul(), ["a", "b"])
    assert g.gate_ports("ab") == ()
    assert g.receptive_field("ab", gates="ignore")[0].is_global


def test_bad_gates_value_is_named():
    g = _se_graph(True)
    with pytest.raises(ConvAlgebraError, match="gates must be 'keep' or 'ignore', got 'drop'"):
        g.receptive_field("conv2", gates="drop")
