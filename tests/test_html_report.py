"""The HTML report's data: its boxes are the exact fields (torch gradients), its page is
self-contained, its budget refuses early. The page in a browser: test_html_report_browser.py."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convalgebra as ca
from convalgebra.network import zoo
from convalgebra.network.htmlreport import graph_html, report_data

torch = pytest.importorskip("torch")
from test_graph_oracle import gradient_boxes  # noqa: E402
from test_receptive import graphs  # noqa: E402


def _page_box(entry: dict, position: tuple[int, ...]):
    """The box the page draws for ``position`` (as the page's script reads its data)."""
    if entry["boxes"] is None:
        return None if entry["fixed"] is None else tuple(map(tuple, entry["fixed"]))
    parts = [entry["boxes"][a][p] for a, p in enumerate(position)]
    return None if any(p is None for p in parts) else tuple(map(tuple, parts))


@settings(max_examples=40)
@given(graphs(), st.data())
def test_report_boxes_are_the_gradient_support(g, data):
    report = report_data(g)
    queries = []
    for entry in report["nodes"]:
        if entry["units"] is None:
            queries.append((entry["node"], ()))
            continue
        position = tuple(data.draw(st.integers(0, s - 1)) for s in entry["units"])
        queries.append((entry["node"], position))
    entries = {e["node"]: e for e in report["nodes"]}
    # nodes without spatial axes: the fixed box is the whole node's field
    spatial = [(n, p) for n, p in queries if p or entries[n]["fixed"] is None]
    expected = gradient_boxes(g, [(n, p) for n, p in spatial if p])
    got = [_page_box(entries[n], p) for n, p in spatial if p]
    assert got == expected
    for node, position in queries:
        want = ca.unit_receptive_field(g, node, position or None).box
        assert _page_box(entries[node], position) == want


def test_report_fields_are_the_library_fields():
    g = zoo.resnet18()
    report = report_data(g, name="resnet18")
    assert report["name"] == "resnet18" and report["axes"] == ["H", "W"]
    for entry in report["nodes"]:
        fields = ca.receptive_field(g, entry["node"])
        assert entry["size"] == [f.size for f in fields]
        assert entry["jump"] == [f.jump for f in fields]
        assert entry["start"] == [float(f.start) for f in fields]
        assert entry["output"] == "x".join(map(str, g.shape(entry["node"])))
    assert report["totals"]["params"] == ca.param_count(g)


def test_the_page_loads_nothing_from_anywhere(tmp_path):
    page = zoo.resnet18().to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == page
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == ["data:,", "#"]
    assert "@import" not in page and "url(" not in page and "fetch(" not in page
    assert "default-src 'none'" in page  # the browser itself refuses any load
    assert page.count("<script") == 2


def test_node_names_cannot_break_out_of_the_page():
    from convalgebra.network.graph import LayerGraph
    from convalgebra.network.layers import Conv

    g = LayerGraph("</script><b>")
    g.add_input("x", (1, 6))
    g.add("</script><script>alert(1)</script>", Conv(1, 3), "x")
    page = graph_html(g, name="</script><b>")
    assert page.count("</script>") == 2


def test_the_budget_refuses_before_any_lookup():
    g = zoo.resnet18()
    started = time.perf_counter()
    with pytest.raises(ca.ConvAlgebraError, match=r"looks up to 6,557 unit fields.*max_units=100"):
        report_data(g, max_units=100)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(ca.ConvAlgebraError, match="max_units must be a positive integer"):
        report_data(g, max_units=0)


def test_never_overwrites_what_is_not_a_regular_file(tmp_path):
    with pytest.raises(ca.ConvAlgebraError, match="not a regular file"):
        zoo.lenet5().to_html(tmp_path)


def test_a_diagonal_unit_reading_only_padding_keeps_the_other_axis():
    """Found by the property above: unit (0, 0) reads only padding along H, but W's
    position 0 still reads column 0."""
    from convalgebra.network.graph import LayerGraph
    from convalgebra.network.layers import Conv

    g = LayerGraph("pad")
    g.add_input("x", (1, 6, 6))
    g.add("n0", Conv(1, 1, padding=((1, 0), (0, 0)), bias=False), "x")
    entry = report_data(g)["nodes"][1]
    assert entry["boxes"][0][0] is None and entry["boxes"][1][0] == [0, 0]
    for position in [(1, 0), (6, 5), (3, 2)]:
        assert _page_box(entry, position) == gradient_boxes(g, [("n0", position)])[0]


def _page_backward(field: dict, node: str, units: list[int], position: tuple[int, ...]):
    """The page's backward pass (its script, line for line) over the embedded data."""
    import numpy as np

    start = np.zeros(units)
    start[position] = 1.0
    grads = {node: start}
    order = list(field["order"])
    reached = None
    for v in reversed(order):
        g = grads.pop(v, None)
        if g is None:
            continue
        if v == field["input"]:
            reached = g
            continue
        for src, gain, mats in field["steps"].get(v, []):
            back = g
            if mats is not None:
                for a, (n_out, n_in, starts, cols, vals) in enumerate(mats):
                    dense = np.zeros((n_out, n_in))
                    for o in range(n_out):
                        dense[o, cols[starts[o] : starts[o + 1]]] = vals[starts[o] : starts[o + 1]]
                    back = np.moveaxis(np.tensordot(dense, back, axes=([0], [a])), 0, a)
                back = back * gain
            grads[src] = grads[src] + back if src in grads else back
    return reached


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data())
def test_the_embedded_fields_are_the_effective_fields(g, data):
    """Every node's field as the page computes it from the embedded network (after the JSON
    round trip) equals effective_receptive_field; a node without one says why."""
    import json

    import numpy as np

    report = json.loads(json.dumps(report_data(g)))
    field = {**report["field"], "order": [e["node"] for e in report["nodes"]]}
    for entry in report["nodes"]:
        node = entry["node"]
        if entry["units"] is None or node in field["notes"]:
            with pytest.raises(ca.ConvAlgebraError) as info:
                ca.effective_receptive_field(g, node)
            if entry["units"] is not None:
                assert str(info.value) == field["notes"][node]
            continue
        position = tuple(data.draw(st.integers(0, s - 1)) for s in entry["units"])
        want = ca.effective_receptive_field(g, node, position).weights
        reached = _page_backward(field, node, entry["units"], position)
        got = np.zeros(want.shape) if reached is None else np.abs(reached)
        got = got / got.sum() if got.sum() else got
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


def test_the_fields_add_little_to_resnet18s_page():
    import json

    g = zoo.resnet18()
    field = report_data(g)["field"]
    assert field["notes"] == {
        "flatten": "node 'flatten' of shape (512,) has no spatial axes",
        "fc": "node 'fc' of shape (1000,) has no spatial axes",
    }
    assert len(json.dumps(field, separators=(",", ":"))) < 60_000  # measured 53,072 bytes


def test_the_fields_over_the_budget_are_omitted_with_the_reason():
    from convalgebra.network.htmlreport import field_data

    started = time.perf_counter()
    omitted = field_data(zoo.resnet18(), max_entries=1000)["omitted"]
    assert time.perf_counter() - started < 1.0
    assert re.fullmatch(
        r"the effective fields of the report .* would take [\d,]+ entries, more than "
        r"max_field_entries=1,000; use a smaller input shape or a larger max_field_entries=",
        omitted,
    )
    three_d = ca.LayerGraph.sequential((1, 4, 4, 4), [ca.layers.Conv(1, 3)])
    assert field_data(three_d) == {
        "omitted": "effective fields are drawn for inputs with 1 or 2 spatial axes"
    }
