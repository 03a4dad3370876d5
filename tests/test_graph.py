"""LayerGraph: builders, validation errors, parameter sharing, totals and table rendering."""

from __future__ import annotations

import csv
import io
import json

import networkx as nx
import pytest

import convalgebra as ca
from convalgebra import ConvAlgebraError, GraphCycleError, LayerGraph
from convalgebra.network import layers as L
from convalgebra.network.graph import buffer_count, flops, unit_receptive_field


def _branchy() -> LayerGraph:
    g = LayerGraph("branchy")
    g.add_input("x", (4, 16, 16))
    g.add("a", L.Conv(8, 3, padding=1), "x")
    g.add("b", L.Conv(8, (1, 5), padding=(0, 2)), "x")
    g.add("sum", L.Add(), ["a", "b"])
    g.add("cat", L.Concat(), ["sum", "x"])
    return g


# --------------------------------------------------------------------- builders
def test_public_names_are_exported():
    assert ca.LayerGraph is LayerGraph
    g = _branchy()
    assert ca.param_count(g) == 4 * 8 * 9 + 8 + 4 * 8 * 5 + 8
    assert ca.macs(g) == 16 * 16 * 8 * (4 * 9 + 4 * 5)
    assert ca.receptive_field(g, "sum")[1].size == 5


def test_empty_and_single_layer_graphs():
    g = LayerGraph()
    assert len(g) == 0 and g.param_count() == 0 and g.macs() == 0
    g.add_input("x", (3, 8, 8))
    assert g.receptive_field("x")[0].size == 1 and g.outputs == ["x"]
    g.add("c", L.Conv(2, 3))
    assert g.shape("c") == (2, 6, 6) and g.inputs == ["x"] and g.outputs == ["c"]


def test_nx_graph_is_exposed_with_string_keys_and_ports():
    g = _branchy()
    assert isinstance(g.nx, nx.DiGraph)
    assert all(isinstance(n, str) for n in g.nx)
    assert g.nx.edges["x", "cat"]["port"] == 1
    assert nx.shortest_path_length(g.nx, "x", "cat") == 1
    assert nx.is_directed_acyclic_graph(g.nx)


def test_from_nx_round_trip_and_cycle_error():
    g = _branchy()
    again = LayerGraph.from_nx(g.nx)
    assert [again.shape(n) for n in again.nodes] == [g.shape(n) for n in g.nodes]
    cyclic = nx.DiGraph()
    cyclic.add_node("x", layer=L.Input((1, 8)))
    cyclic.add_node("a", layer=L.Identity())
    cyclic.add_node("b", layer=L.Identity())
    cyclic.add_edges_from([("x", "a"), ("a", "b"), ("b", "a")])
    with pytest.raises(GraphCycleError, match="cycle"):
        LayerGraph.from_nx(cyclic)


def test_spec_round_trip_through_json_and_yaml(tmp_path):
    pytest.importorskip("yaml", reason="the [yaml] extra is not installed: pip install '.[test]'")
    g = _branchy()
    spec = g.to_spec()
    text = json.dumps(spec)
    assert LayerGraph.from_json(text).to_spec() == spec
    path = tmp_path / "net.yaml"
    path.write_text("""
name: tiny
input: [1, 28, 28]
layers:
  - {kind: conv, out_channels: 6, kernel_size: 5, padding: 2}
  - {kind: relu}
  - {name: pool, kind: max_pool, kernel_size: 2}
  - {name: side, kind: conv, out_channels: 6, kernel_size: 1, inputs: [conv1]}
  - {name: sum, kind: add, inputs: [pool, side]}
""")
    with pytest.raises(
        ConvAlgebraError, match="layer 'sum'.*'pool' \\(6, 14, 14\\).*'side' \\(6, 28, 28\\)"
    ):
        LayerGraph.from_file(path)
    path.write_text(path.read_text().replace("kernel_size: 1,", "kernel_size: 2, stride: 2,"))
    tiny = LayerGraph.from_file(path)
    assert tiny.shape("sum") == (6, 14, 14)
    json_path = tmp_path / "net.json"
    json_path.write_text(json.dumps(tiny.to_spec()))
    assert LayerGraph.from_file(json_path).to_spec() == tiny.to_spec()


def test_yaml_is_loaded_safely(tmp_path):
    pytest.importorskip("yaml", reason="the [yaml] extra is not installed: pip install '.[test]'")
    path = tmp_path / "evil.yml"
    path.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(Exception) as info:
        LayerGraph.from_file(path)
    assert "hacked" not in str(info.value) and "ConstructorError" in type(info.value).__name__


def test_sequential_names_and_dict_layers():
    g = LayerGraph.sequential(
        (3, 32, 32),
        [
            L.Conv(8, 3),
            {"kind": "relu"},
            ("pool", L.MaxPool(2)),
            {"name": "fc", "kind": "linear", "out_features": 10},
        ],
    )
    assert g.nodes == ["input", "conv1", "relu2", "pool", "fc"]
    assert g.shape("fc") == (8, 15, 10)  # linear acts on the last axis, as in torch


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "build, message",
    [
        (lambda g: g.add("c", L.Conv(4, 3), "nope"), "reads 'nope', which is not in the graph"),
        (lambda g: g.add("x", L.Identity()), "already in the graph"),
        (lambda g: g.add("c", {"kind": "convolution"}), "unknown layer kind 'convolution'"),
        (
            lambda g: g.add("c", {"kind": "conv", "out_channels": 2, "kernel": 3}),
            "has no field\\(s\\) \\['kernel'\\]",
        ),
        (lambda g: g.add("c", L.Conv(4, 9)), "layer 'c' \\(conv\\).*kernel extent 9"),
        (lambda g: g.add("p", L.MaxPool(9)), "layer 'p' \\(max_pool\\).*not positive"),
        (lambda g: g.add("s", L.Add(), ["x"]), "takes at least 2 input"),
        (lambda g: g.add("c", L.Conv(4, 3, groups=3)), "groups=3 does not divide"),
        (lambda g: g.add("u", L.Upsample()), "exactly one of scale_factor and size"),
    ],
    ids=[
        "dangling",
        "duplicate",
        "unknown-kind",
        "unknown-field",
        "collapse-conv",
        "collapse-pool",
        "arity",
        "groups",
        "upsample",
    ],
)
def test_bad_input_is_a_clear_error(build, message):
    g = LayerGraph()
    g.add_input("x", (2, 8, 8))
    with pytest.raises(ConvAlgebraError, match=message):
        build(g)


def test_merge_of_mismatched_shapes_names_both_branches():
    g = LayerGraph()
    g.add_input("x", (2, 8, 8))
    g.add("left", L.Conv(2, 3), "x")
    with pytest.raises(ConvAlgebraError, match="'left' \\(2, 6, 6\\), 'x' \\(2, 8, 8\\)"):
        g.add("sum", L.Add(), ["left", "x"])
    with pytest.raises(ConvAlgebraError, match="differ outside dim=0"):
        g.add("cat", L.Concat(), ["left", "x"])


def test_unknown_node_and_bad_position():
    g = _branchy()
    with pytest.raises(ConvAlgebraError, match="no node named 'zz'"):
        g.receptive_field("zz")
    with pytest.raises(ConvAlgebraError, match="outside node 'a'"):
        g.unit_receptive_field("a", (16, 0))


# ------------------------------------------------------------ sharing & totals
def test_shared_parameters_are_counted_once():
    g = LayerGraph()
    g.add_input("x", (4, 8, 8))
    g.add("c1", L.Conv(4, 3, padding=1), share="block")
    g.add("c2", L.Conv(4, 3, padding=1), share="block")
    assert g.param_count() == 4 * 4 * 9 + 4
    assert g.macs() == 2 * 64 * 4 * 4 * 9  # the work is done twice
    assert g.info("c2").shared_params == 0 and "shared" in g.info("c2").flags
    with pytest.raises(ConvAlgebraError, match="shares parameter 'block.weight'"):
        g.add("c3", L.Conv(8, 3, padding=1), share="block")


def test_buffers_are_reported_apart_from_parameters():
    g = LayerGraph.sequential((16, 4, 4), [L.BatchNorm(), L.BatchNorm(affine=False)])
    assert g.param_count() == 32
    assert buffer_count(g) == 2 * (16 + 16 + 1)


def test_summary_and_flops_name_macs_apart():
    g = _branchy()
    s = g.summary()
    assert s["flops"] == flops(g) == 2 * s["macs"]
    assert s["activations"] == sum(ca.graph.math.prod(g.shape(n)) for n in g.nodes)
    assert s["activation_bytes"] == 4 * s["activations"]


def test_unit_receptive_field_centre_and_clipping():
    g = LayerGraph.sequential((1, 20, 20), [L.Conv(1, 5, stride=2, padding=2)])
    corner = unit_receptive_field(g, "conv1", (0, 9))
    assert corner.box == ((0, 2), (16, 19)) and corner.centre == (0, 18)
    assert corner.size == (3, 4)


# ---------------------------------------------------------------------- tables
def test_table_formats():
    g = _branchy()
    text = g.table()
    assert text.splitlines()[0].split()[:4] == ["node", "kind", "output", "params"]
    assert "8x16x16" in text and "total" in text.splitlines()[-1]
    md = g.table("markdown")
    assert md.startswith("| node") and md.splitlines()[1].startswith("|---")
    rows = list(csv.DictReader(io.StringIO(g.table("csv"))))
    assert rows[-1]["node"] == "total" and int(rows[-1]["params"]) == g.param_count()
    assert rows[1]["RF"] == "3/1 x 3/1"
    data = json.loads(g.table("json"))
    assert data[1]["output"] == [8, 16, 16]
    with pytest.raises(ConvAlgebraError, match="fmt must be one of"):
        g.table("html")


# ----------------------------------------------------------------- spec documents
def _conv(name, reads):
    return {"name": name, "kind": "conv", "out_channels": 2, "kernel_size": 3, "inputs": reads}


def test_a_cycle_in_a_spec_is_reported_as_a_cycle():
    spec = {
        "input": [1, 8, 8],
        "layers": [_conv("a", ["b"]), {"name": "b", "kind": "relu", "inputs": ["a"]}],
    }
    with pytest.raises(GraphCycleError, match=r"cycle through \['(a', 'b|b', 'a)'\]"):
        LayerGraph.from_spec(spec)


def test_a_forward_reference_that_is_not_a_cycle_is_built_in_data_flow_order():
    spec = {
        "input": [1, 8, 8],
        "layers": [
            {"name": "sum", "kind": "add", "inputs": ["left", "right"]},
            _conv("left", "input"),
            _conv("right", ["input"]),
            {"name": "twice", "kind": "add", "inputs": ["sum", "sum"]},
        ],
    }
    g = LayerGraph.from_spec(spec)
    assert g.nodes == ["input", "left", "right", "sum", "twice"]
    assert g.shape("twice") == (2, 6, 6) and g.nx.nodes["twice"]["inputs"] == ("sum", "sum")
    assert LayerGraph.from_spec(g.to_spec()).nodes == g.nodes


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"input": [1, 8, 8], "layers": "abc"},
            "'layers' must be a list of layer mappings, got str 'abc'",
        ),
        (
            {"input": [1, 8, 8], "layers": [{**_conv("c", 5)}]},
            "layer 'c': 'inputs' must be a node name or a list of node names, got 5",
        ),
        (
            {"input": [1, 8, 8], "layers": [{**_conv("c", [1, 2])}]},
            r"layer 'c': 'inputs' must be .* got \[1, 2\]",
        ),
        ({"inputs": 5, "layers": []}, "'inputs' must map input names to shapes, got int 5"),
        (
            {"input": [1, 8, 8], "layers": [{**_conv("c", None), "kernel_size": "3"}]},
            "layer 'c' .*kernel_size must be an int or a tuple of 2 ints, got '3'",
        ),
        (
            {"input": [1, 8, 8], "layers": [_conv("c", None), _conv("c", None)]},
            "a node named 'c' is already in the graph",
        ),
        (
            {"input": [1, 8, 8], "layers": [_conv("c", "nope")]},
            "layer 'c' reads 'nope', which is not",
        ),
    ],
    ids=[
        "layers-str",
        "inputs-int",
        "inputs-ints",
        "graph-inputs-int",
        "kernel-str",
        "dup",
        "unknown-read",
    ],
)
def test_malformed_spec_documents_name_the_layer_and_the_rule(spec, message):
    with pytest.raises(ConvAlgebraError, match=message):
        LayerGraph.from_spec(spec)


# ------------------------------------------------------------------ Conv.from_spec
from hypothesis import given, settings  # noqa: E402
from strategies import conv_specs  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(spec=conv_specs(transposed=None))
def test_conv_from_spec_has_the_spec_facts(spec):
    facts = L.Conv.from_spec(spec).facts([spec.input_shape])
    assert facts.shape == spec.output_shape
    assert sum(facts.params.values()) == spec.n_params and facts.macs == spec.macs
    assert facts.spec == spec.__class__(**{**_spec_fields(spec), "flip": False})


def _spec_fields(spec):
    return {
        f: getattr(spec, f)
        for f in (
            "input_shape",
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "dilation",
            "groups",
            "padding_mode",
            "bias",
            "transposed",
            "output_padding",
        )
    }


def test_conv_from_a_tiled_spec_is_refused_unless_only_the_field_is_wanted():
    spec = ca.ConvSpec((1, 6), 1, 3, tile=(2,))
    with pytest.raises(ConvAlgebraError, match="no tile or channel table"):
        L.Conv.from_spec(spec)
    assert L.Conv.from_spec(spec, field_only=True).facts([(1, 6)]).shape == (1, 4)
