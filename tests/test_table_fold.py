"""The folded network table (``LayerGraph.table(fold=True)``, ``--fold``): one row per layer,
a batch norm, activation or dropout folded into the layer it follows. Its rows partition the
nodes, each row adds up its nodes' counts, and its totals are the unfolded table's -- over
random graphs and the zoo, and against PyTorch's own counts for torchvision models.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_receptive import graphs

import convalgebra as ca
from convalgebra.cli import main
from convalgebra.network import zoo
from convalgebra.network.tabulate import folded_name, layer_rows

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
SUMMED = ("params", "buffers", "MACs", "act_bytes")


def _check_folded(g, **options):
    """Every folded row against the unfolded rows of its nodes; the totals against the
    unfolded table's and the graph's summary."""
    plain = g.table("json", **options).rows
    folded = g.table("json", fold=True, **options).rows
    by_node = {r["node"]: r for r in plain[:-1]}
    layers = layer_rows(g)
    assert [r["node"] for r in folded[:-1]] == [folded_name(g, row) for row in layers]
    assert sorted(n for row in layers for n in row.nodes) == sorted(by_node)  # a partition
    for row, got in zip(layers, folded[:-1], strict=True):
        members = [by_node[n] for n in row.nodes]
        for column in SUMMED:
            assert got[column] == sum(m[column] for m in members), (got["node"], column)
        assert got["kind"] == members[0]["kind"]
        assert got["output"] == members[-1]["output"] and got["RF"] == members[-1]["RF"]
    assert folded[-1] == plain[-1]
    for column in SUMMED:
        assert sum(r[column] for r in folded[:-1]) == sum(r[column] for r in plain[:-1])
    summary = g.summary(**options)
    assert folded[-1]["params"] == summary["params"] == sum(r["params"] for r in folded[:-1])
    assert folded[-1]["MACs"] == summary["macs"] == sum(r["MACs"] for r in folded[:-1])
    return folded


@SETTINGS
@given(graphs(), st.integers(1, 3), st.sampled_from([1, 2, 4]))
def test_folded_rows_add_up_to_the_unfolded_table(g, batch, dtype_bytes):
    _check_folded(g, batch=batch, dtype_bytes=dtype_bytes)


@SETTINGS
@given(st.sampled_from(zoo.names()), st.integers(1, 2))
def test_zoo_folded_totals_equal_the_unfolded_ones(name, batch):
    _check_folded(zoo.get(name), batch=batch)


def test_resnet18_folds_batch_norm_and_relu():
    g = zoo.get("resnet18")
    rows = g.table(fold=True).rows
    assert len(rows) == 34  # the input, 32 layers and the total, from 70 nodes
    first = rows[1]
    assert (first["node"], first["kind"], first["params"], first["buffers"]) == (
        "conv1 + BN + ReLU",
        "conv",
        64 * 3 * 7 * 7 + 2 * 64,
        2 * 64 + 1,
    )
    assert first["MACs"] == 64 * 112 * 112 * 3 * 7 * 7
    assert first["act_bytes"] == 3 * 64 * 112 * 112 * 4


def test_the_default_table_is_unchanged():
    g = zoo.get("lenet5")
    assert str(g.table()) == str(g.table(fold=False))
    assert len(g.table().rows) == len(g) + 1


def test_fold_and_depth_are_refused_together():
    g = zoo.get("lenet5")
    with pytest.raises(ca.ConvAlgebraError, match="fold and depth"):
        g.table(fold=True, depth=1)
    with pytest.raises(TypeError, match="fold must be True or False"):
        g.table(fold="yes")  # type: ignore[arg-type]


def test_folded_percentages_add_up():
    rows = zoo.get("resnet18").table("json", fold=True, percent=True).rows
    assert rows[-1]["params %"] == 100.0
    assert abs(sum(r["params %"] for r in rows[:-1]) - 100) < 0.1 * len(rows)


def test_cli_params_and_analyze_fold(capsys):
    assert main(["params", "resnet18", "--fold", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["node"] == "conv1 + BN + ReLU" and rows[-1]["params"] == 11_689_512
    assert main(["analyze", "lenet5", "--fold"]) == 0
    assert "conv1 + sigmoid" in capsys.readouterr().out
    assert main(["params", "resnet18", "--fold", "--depth", "1"]) == 2
    assert "fold and depth" in capsys.readouterr().err


# ------------------------------------------------------------------ against torch
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "squeezenet1_1"])
def test_torchvision_folded_totals_equal_torch(name):
    torch = pytest.importorskip("torch")
    import torchvision_models as tvm
    from torch_probe import dispatch_macs

    tvm.load()
    torch.manual_seed(0)
    model = tvm.build(name)
    shape = tvm.small(name)
    g = ca.from_torch(model, shape)
    folded = _check_folded(g)
    assert sum(r["params"] for r in folded[:-1]) == sum(p.numel() for p in model.parameters())
    assert sum(r["buffers"] for r in folded[:-1]) == sum(b.numel() for b in model.buffers())
    assert sum(r["MACs"] for r in folded[:-1]) == dispatch_macs(model, shape)
