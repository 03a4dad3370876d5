"""The cost derivation of a network (``derive("cost", graph)``, ``derive cost --model``): every
printed number read back against the graph's own computations, over random graphs and every
zoo model; a wrong number anywhere fails. The comparison with PyTorch is in
tests/test_derivation_meaning_kinds.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_receptive import graphs

import convalgebra as ca
from convalgebra.cli import main
from convalgebra.derivations.network_cost import cost_meaning
from convalgebra.derivations.verify import RoundTripError
from convalgebra.network import zoo
from convalgebra.network.tabulate import layer_rows

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def resnet18():
    return zoo.get("resnet18")


def _independent(g, dtype_bytes):
    """The totals and per-row counts summed node by node from the unfolded table."""
    rows = {r["node"]: r for r in g.table("json", dtype_bytes=dtype_bytes).rows}
    want = {}
    for i, row in enumerate(layer_rows(g)):
        members = [rows[n] for n in row.nodes]
        want[f"parameters_{i}"] = sum(m["params"] for m in members)
        want[f"buffers_{i}"] = sum(m["buffers"] for m in members)
        want[f"MACs_{i}"] = sum(m["MACs"] for m in members)
        want[f"output bytes_{i}"] = sum(m["act_bytes"] for m in members)
        want[f"shape_{i}"] = tuple(members[-1]["output"])
    total = rows["total"]
    want.update(
        {
            "parameters": total["params"],
            "buffers": total["buffers"],
            "MACs": total["MACs"],
            "FLOPs": 2 * total["MACs"],
            "parameter bytes": (total["params"] + total["buffers"]) * dtype_bytes,
            "activation bytes": total["act_bytes"],
        }
    )
    return want


@SETTINGS
@given(graphs(), st.sampled_from([1, 2, 4, 8]))
def test_random_graph_cost_reads_back_on_the_table(g, dtype_bytes):
    d = ca.derive("cost", g, dtype_bytes=dtype_bytes)
    want = _independent(g, dtype_bytes)
    assert cost_meaning(g, dtype_bytes) == want
    assert d.verify(want) >= 5 * len(layer_rows(g)) + 6
    assert d.result["params"] == want["parameters"] and d.result["macs"] == want["MACs"]


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_model_cost_verifies(name):
    g = zoo.get(name)
    d = ca.derive("cost", g)
    assert d.verify() >= 5 * len(layer_rows(g))
    assert d.verify(_independent(g, 4)) > 0
    assert d.result == {
        k: g.summary()[k]
        for k in ("params", "buffers", "macs", "flops", "param_bytes", "activation_bytes")
    }


def test_resnet18_rows_print_formula_numbers_and_value(resnet18):
    lines = [line.strip() for line in ca.derive("cost", resnet18).to_text().splitlines()]
    row = " | ".join(line for line in lines if line.startswith("conv1 + BN + ReLU"))
    for cell in (
        "64*3*7*7 + 2*64 = 9,536",
        "2*64 + 1 = 129",
        "64*112*112*3*7*7 = 118,013,952",
        "3*64*112*112*4 = 9,633,792",
    ):
        assert cell in row
    fc = " | ".join(line for line in lines if line.startswith("fc "))
    assert "512*1000 + 1,000 = 513,000" in fc and "512*1000 = 512,000" in fc
    assert "FLOPs = 2*1814073344 = 3,628,146,688" in lines
    assert "parameter bytes = (11689512 + 9620)*4 = 46,796,528" in lines
    assert any(line.startswith("parameters = 9,536 + ") for line in lines)
    assert any(line.endswith("= 11,689,512") for line in lines)


@pytest.mark.parametrize(
    "key",
    [
        "parameters_1",
        "buffers_1",
        "MACs_5",
        "output bytes_0",
        "shape_32",
        "parameters",
        "buffers",
        "MACs",
        "FLOPs",
        "parameter bytes",
        "activation bytes",
    ],
)
def test_a_wrong_number_does_not_verify(resnet18, key):
    d = ca.derive("cost", resnet18)
    meaning = cost_meaning(resnet18)
    value = meaning[key]
    meaning[key] = tuple(v + 1 for v in value) if isinstance(value, tuple) else value + 1
    with pytest.raises(RoundTripError):
        d.verify(meaning)


def test_the_cost_of_layers_is_unchanged():
    dw = ca.ConvSpec((32, 16, 16), 32, 3, padding=1, groups=32, bias=False)
    pw = ca.ConvSpec((32, 16, 16), 64, 1, bias=False)
    assert ca.derive("cost", [dw, pw]).result["macs"] == 598016


def test_bad_options_are_refused(resnet18):
    spec = ca.ConvSpec((3, 8, 8), 4, 3)
    with pytest.raises(ca.ConvAlgebraError, match="baseline"):
        ca.derive("cost", resnet18, baseline=spec)
    with pytest.raises(ca.ConvAlgebraError, match="batch norms"):
        ca.derive("cost", resnet18, batchnorm=True)
    with pytest.raises(ca.ConvAlgebraError, match="dtype_bytes"):
        ca.derive("cost", spec, dtype_bytes=2)
    with pytest.raises(ca.ConvAlgebraError, match="dtype_bytes"):
        ca.derive("cost", resnet18, dtype_bytes=0)
    with pytest.raises(ca.ConvAlgebraError, match="LayerGraph"):
        ca.derive("cost", "resnet18")


def test_cli_derive_cost_of_a_model(capsys):
    assert main(["derive", "cost", "--model", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Cost of lenet5") and "conv1 + sigmoid" in out
    assert main(["derive", "cost", "--model", "resnet18", "--format", "latex"]) == 0
    assert r"\text{parameters}" in capsys.readouterr().out
