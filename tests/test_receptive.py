"""Receptive fields against the gradient-support oracle, on random chains and DAGs.

For a graph executed by torch with positive weights (1/fan-in, float64), max pooling replaced
by average pooling over the same window and nonlinearities removed, the input positions with
a non-zero gradient of one output position are exactly the positions it reads. Their
bounding box must equal ``unit_receptive_field``; shapes, parameter counts and MACs are
checked against torch on the same random graphs.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from test_graph_oracle import TorchGraph, check_shapes, flop_count, gradient_boxes

from convalgebra import ConvAlgebraError
from convalgebra.network import layers as L
from convalgebra.network.graph import LayerGraph
from convalgebra.network.receptive import AxisRF, Local, Scatter, apply_map, input_rf, merge

# torch runs each example: keep the default small, raise GRAPH_EXAMPLES to search harder
FEW = settings(max_examples=int(os.environ.get("GRAPH_EXAMPLES", 100)), deadline=None)


# --------------------------------------------------------------------- strategies
def _ints(draw, nd, lo, hi):
    return tuple(draw(st.integers(lo, hi)) for _ in range(nd))


@st.composite
def unary_layers(draw, nd, channels, aligned=False):
    """One random single-input layer (``aligned``: integer jumps and no crops)."""
    kinds = ["conv", "conv", "max_pool", "avg_pool", "pad", "bn", "act"]
    if not aligned:
        kinds += ["conv_t", "upsample", "adaptive", "crop", "se", "global"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("conv", "conv_t"):
        groups = draw(st.sampled_from([1, channels])) if channels > 1 else 1
        out = groups * draw(st.integers(1, 2))
        t = kind == "conv_t"
        k, s, d = _ints(draw, nd, 1, 4), _ints(draw, nd, 1, 3), _ints(draw, nd, 1, 2)
        pad = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
        if t:
            pad = tuple((p, p) for p, _ in pad)
        mode = (
            "zeros"
            if t
            else draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        )
        return L.Conv(out, k, s, pad, d, groups, draw(st.booleans()), mode, t)
    if kind in ("max_pool", "avg_pool"):
        k = _ints(draw, nd, 1, 3)
        p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
        common = dict(
            kernel_size=k, stride=_ints(draw, nd, 1, 3), padding=p, ceil_mode=draw(st.booleans())
        )
        if kind == "max_pool":
            return L.MaxPool(
                dilation=_ints(draw, nd, 1, 2) if not common["ceil_mode"] else 1, **common
            )
        return L.AvgPool(**common)
    if kind == "pad":
        lo = -1 if not aligned else 0
        pairs = tuple((draw(st.integers(lo, 2)), draw(st.integers(lo, 2))) for _ in range(nd))
        return L.Pad(pairs, draw(st.sampled_from(["constant", "replicate", "reflect", "circular"])))
    if kind == "bn":
        return L.BatchNorm()
    if kind == "act":
        return L.Activation(draw(st.sampled_from(["relu", "sigmoid"])))
    if kind == "upsample":
        if draw(st.booleans()):
            return L.Upsample(scale_factor=draw(st.sampled_from([2, 3])), mode="nearest")
        if draw(st.booleans()):
            return L.Upsample(size=_ints(draw, nd, 2, 40), mode="nearest")
        return L.Upsample(scale_factor=draw(st.sampled_from([2, 4])), mode="bilinear")
    if kind == "adaptive":
        return L.AdaptivePool(_ints(draw, nd, 1, 5), draw(st.sampled_from(["avg", "max"])))
    if kind == "crop":
        return L.Crop(_ints(draw, nd, 3, 6))
    if kind == "se":
        return L.SqueezeExcite(draw(st.integers(1, 3)))
    return L.AdaptivePool(1)


@st.composite
def graphs(draw, dag=True, aligned=False, max_nodes=6):
    """A random valid LayerGraph: chains, or DAGs with add/concat/gated merges."""
    nd = draw(st.sampled_from([1, 2]))
    size = _ints(draw, nd, 6, 16 if nd == 2 else 30)
    g = LayerGraph("random")
    g.add_input("x", (draw(st.integers(1, 3)), *size))
    names = ["x"]
    for i in range(draw(st.integers(1, max_nodes))):
        spatial = [n for n in names if len(g.shape(n)) == nd + 1]
        if dag and draw(st.integers(0, 2)) == 0 and len(spatial) > 1:
            a = draw(st.sampled_from(spatial))
            mates = [n for n in spatial if n != a and g.shape(n)[1:] == g.shape(a)[1:]]
            if mates:
                b = draw(st.sampled_from(mates))
                layer = L.Add() if g.shape(a) == g.shape(b) else L.Concat()
                names.append(g.add(f"m{i}", layer, [a, b]))
                continue
            if not aligned and draw(st.booleans()):
                gate = g.add(f"gp{i}", L.AdaptivePool(1), a)
                names.append(g.add(f"gate{i}", L.Mul(), [a, gate]))
                continue
        if dag and draw(st.integers(0, 3)) == 0 and spatial:
            fork = _unaligned_fork(draw, g, draw(st.sampled_from(spatial)), i)
            if fork:
                names += fork
                continue
        src = draw(st.sampled_from(spatial)) if dag else names[-1]
        if len(g.shape(src)) != nd + 1:
            break
        try:
            names.append(g.add(f"n{i}", draw(unary_layers(nd, g.shape(src)[0], aligned)), src))
        except ConvAlgebraError:
            continue
    assume(len(names) > 1)
    note(repr(g.to_spec()))
    return g


def _unaligned_fork(draw, g: LayerGraph, src: str, i: int) -> list[str]:
    """A strided and an unstrided branch of equal output size, merged: two path jumps."""
    channels, sizes = g.shape(src)[0], g.shape(src)[1:]
    kernel, stride = _ints(draw, len(sizes), 1, 3), _ints(draw, len(sizes), 2, 3)
    if any(n < k for n, k in zip(sizes, kernel)):
        return []
    coarse = tuple((n - k) // s + 1 for n, k, s in zip(sizes, kernel, stride))
    wide = tuple(n - m + 1 for n, m in zip(sizes, coarse))  # an unstrided conv to that size
    a = g.add(f"s{i}", L.Conv(channels, kernel, stride), src)
    b = g.add(f"w{i}", L.Conv(channels, wide), src)
    return [a, b, g.add(f"m{i}", draw(st.sampled_from([L.Add(), L.Concat()])), [a, b])]


def _queries(draw, g: LayerGraph):
    spatial = [n for n in g.nodes[1:] if len(g.shape(n)) == g.spatial_ndim + 1]
    assume(spatial)
    out = []
    for _ in range(3):
        node = draw(st.sampled_from(spatial))
        out.append((node, tuple(draw(st.integers(0, s - 1)) for s in g.shape(node)[1:])))
    return out


# ------------------------------------------------------------------------ oracle
@FEW
@given(g=graphs(dag=False), data=st.data())
def test_unit_box_of_random_chains_equals_gradient_support(g, data):
    queries = _queries(data.draw, g)
    expected = gradient_boxes(g, queries)
    assert [g.unit_receptive_field(n, p).box for n, p in queries] == expected


@FEW
@given(g=graphs(dag=True), data=st.data())
def test_unit_box_of_random_dags_equals_gradient_support(g, data):
    queries = _queries(data.draw, g)
    expected = gradient_boxes(g, queries)
    assert [g.unit_receptive_field(n, p).box for n, p in queries] == expected


@FEW
@given(g=graphs(dag=True))
def test_shapes_params_and_macs_of_random_dags_equal_torch(g):
    check_shapes(g)
    assert TorchGraph(g).param_count() == g.param_count()
    assert TorchGraph(g).buffer_count() == g.param_count(trainable=False)
    assert flop_count(g) == 2 * g.macs()


@FEW
@given(g=graphs(dag=True, aligned=True), data=st.data())
def test_recurrence_size_and_centre_match_interior_units(g, data):
    """Where a unit's box is not clipped, its extent is ``size`` and its centre ``start + i j``."""
    queries = _queries(data.draw, g)
    for (node, pos), box in zip(queries, gradient_boxes(g, queries)):
        rfs = g.receptive_field(node)
        for axis, (rf, p) in enumerate(zip(rfs, pos)):
            n = g.extent[axis]
            lo, hi = rf.interval(p)
            if box is None or not (0 < lo and hi < n - 1):
                continue
            assert lo <= box[axis][0] and box[axis][1] <= hi
            if all(isinstance(m, Local) and m.mode == "zeros" for m in _local_maps(g)):
                assert (box[axis][0], box[axis][1]) == (lo, hi), (node, pos, axis)


def _local_maps(g):
    return [m for n in g.nodes[1:] if g.facts(n).maps for port in g.facts(n).maps for m in port]


# ----------------------------------------------------------------- hand values
@pytest.mark.parametrize(
    "taps, stride, expected",
    [
        ((-1, 0, 1), 1, (3, 1, 0)),
        ((0, 2, 4), 2, (5, 2, 2)),  # kernel 3, dilation 2, no padding
        ((-3, -2, -1, 0, 1, 2, 3), 2, (7, 2, 0)),
        ((0, 1), 2, (2, 2, 0.5)),
    ],
    ids=["3x3-pad1", "dilated", "7x7-s2-p3", "2x2-pool"],
)
def test_local_recurrence_hand_values(taps, stride, expected):
    rf = apply_map(input_rf(), Local(stride, taps), 100)
    assert (rf.size, rf.jump, rf.start) == expected


def test_transposed_conv_has_fractional_jump_and_nonzero_size():
    g = LayerGraph.sequential(
        (1, 16),
        [
            ("down", L.Conv(1, 3, stride=2)),
            ("up", L.Conv(1, 4, stride=2, padding=1, transposed=True)),
        ],
    )
    down, up = g.receptive_field("down")[0], g.receptive_field("up")[0]
    assert (down.size, down.jump) == (3, 2)
    assert up.jump == 1 and up.size == 3 + 2  # two stride-2 units of the first layer
    assert Scatter(2, (-1, 0, 1, 2)).span() == 1
    g2 = LayerGraph.sequential(
        (1, 16), [("up", L.Conv(1, 4, stride=2, padding=1, transposed=True))]
    )
    assert g2.receptive_field("up")[0].jump == pytest.approx(0.5)
    assert g2.receptive_field("up")[0].size == 2
    assert g2.layer("up").kind == "conv" and "conv_transpose" in g2.table()


def test_dag_with_different_jumps_is_reported_not_merged():
    g = LayerGraph()
    g.add_input("x", (1, 32))
    g.add("fine", L.Conv(1, 3, padding=1), "x")
    g.add("coarse", L.Conv(1, 1, stride=2), g.add("pad", L.Pad(((16, 16),)), "x"))
    g.add("sum", L.Add(), ["fine", "coarse"])
    rf = g.receptive_field("sum")[0]
    assert not rf.aligned and rf.jumps == (1, 2)
    assert rf.describe() == "18/1|2"  # unit 0 of the coarse branch reads -16
    assert "unaligned" in g.info("sum").flags
    # the exact box of a unit is still exact: fine reads 9..11, coarse reads 2*10-16 = 4
    assert g.unit_receptive_field("sum", (10,)).box == ((4, 11),)


def _strided_and_wide_branches(merge):
    g = LayerGraph()
    g.add_input("x", (1, 16))
    g.add("a", L.Conv(1, 2, stride=2), "x")  # 8 units of jump 2
    g.add("b", L.Conv(1, 9), "x")  # 8 units of jump 1
    g.add("cat", merge, ["a", "b"])
    g.add("c", L.Conv(1, 3), "cat")
    return g


@pytest.mark.parametrize("merge", [L.Concat(), L.Add()], ids=["concat", "add"])
def test_layers_after_a_merge_of_different_jumps_follow_each_path(merge):
    """By hand: unit i of c reads a's units i..i+2 (inputs 2i..2i+5) and b's units i..i+2
    (inputs i..i+10): the union is i..i+10 for i <= 5, 11 wide, as the gradient says."""
    g = _strided_and_wide_branches(merge)
    rf = g.receptive_field("c")[0]
    assert (rf.size, rf.start, rf.jumps) == (11, 5, (1, 2))
    assert [rf.interval(i) for i in range(6)] == [(i, i + 10) for i in range(6)]
    assert g.receptive_field("c", exact=True)[0].size == 11
    queries = [("c", (i,)) for i in range(6)]
    assert gradient_boxes(g, queries) == [((i, i + 10),) for i in range(6)]
    assert [g.unit_receptive_field(n, p).box for n, p in queries] == [
        ((i, i + 10),) for i in range(6)
    ]


def test_exact_size_of_an_unaligned_field_is_its_widest_unit():
    """By hand: fine unit i reads i-1..i+1, coarse unit i reads 2i-14 (pad 14, stride 2);
    the union is -14..1 at unit 0 (16 wide) and 30..48 at unit 31 (19 wide, the widest:
    the width is convex in i)."""
    g = LayerGraph()
    g.add_input("x", (1, 32))
    g.add("fine", L.Conv(1, 3, padding=1), "x")
    g.add("coarse", L.Conv(1, 1, stride=2), g.add("pad", L.Pad(((14, 18),)), "x"))
    g.add("sum", L.Add(), ["fine", "coarse"])
    rf = g.receptive_field("sum")[0]
    assert (rf.size, rf.interval(0), rf.interval(31)) == (16, (-14, 1), (30, 48))
    assert g.receptive_field("sum", exact=True)[0].size == 19
    assert g.unit_receptive_field("sum", (31,), clip=False).box == ((30, 48),)
    assert (
        g.unit_receptive_field("sum", (31,)).box
        == ((30, 31),)
        == gradient_boxes(g, [("sum", (31,))])[0]
    )


def test_global_reach_layers_give_global_fields():
    g = LayerGraph.sequential((3, 20, 30), [L.Conv(4, 3), L.SqueezeExcite(2), L.Conv(4, 1)])
    assert all(rf.is_global for rf in g.receptive_field("conv3"))
    assert g.receptive_field("conv3")[1].size == 30
    assert g.unit_receptive_field("conv3", (0, 0)).box == ((0, 19), (0, 29))


def test_layer_norm_over_the_last_axis_is_global_along_it_only():
    g = LayerGraph.sequential((2, 8, 10), [L.Conv(2, 3, padding=1), L.LayerNorm(10)])
    rows, cols = g.receptive_field("layer_norm2")
    assert (rows.size, rows.is_global, cols.is_global) == (3, False, True)


def test_non_square_kernels_use_every_axis():
    g = LayerGraph.sequential((1, 40, 40), [L.Conv(1, (1, 7)), L.Conv(1, (5, 1), dilation=(2, 1))])
    assert [rf.size for rf in g.receptive_field("conv2")] == [9, 7]


def test_transposed_unit_without_any_input_has_an_empty_box():
    g = LayerGraph.sequential((1, 5), [("up", L.Conv(1, 1, stride=2, transposed=True))])
    assert g.unit_receptive_field("up", (1,)).box is None
    assert g.unit_receptive_field("up", (2,)).box == ((1, 1),)


def test_axis_rf_padding_and_description():
    rf = AxisRF(11, 4, 1, jumps=(4,))
    assert rf.padding == 4 and rf.describe() == "11/4"
    assert math.isclose(float(AxisRF(4, 2, 0.5).padding), 1.0)


@FEW
@given(g=graphs(dag=True))
def test_exact_size_is_the_largest_unclipped_unit_box(g):
    """``exact=True`` (one period of units) is the largest unclipped box over all units;
    every clipped box (the oracle-checked one) lies inside its unclipped box."""
    node = g.nodes[-1]
    shape = g.shape(node)
    assume(len(shape) == g.spatial_ndim + 1)
    fields = g.receptive_field(node, exact=True)
    zeros = all(getattr(m, "mode", "zeros") == "zeros" for m in _local_maps(g))
    for axis, rf in enumerate(fields):
        sizes = []
        for p in range(shape[1 + axis]):
            position = [s // 2 for s in shape[1:]]
            position[axis] = p
            clipped = g.unit_receptive_field(node, tuple(position)).box
            box = g.unit_receptive_field(node, tuple(position), clip=False).box
            if clipped and zeros:  # other padding modes read border copies instead
                assert box[axis][0] <= clipped[axis][0] and clipped[axis][1] <= box[axis][1]
            if box:
                sizes.append(box[axis][1] - box[axis][0] + 1)
        if rf.is_global or not sizes:
            continue
        assert rf.exact and rf.size == max(sizes)
        plain = g.receptive_field(node)[axis]
        if plain.exact and plain.aligned:
            assert set(sizes) == {rf.size}
        if plain.exact:  # every unit's unclipped box is the union of its paths' intervals
            for p in range(shape[1 + axis]):
                position = [s // 2 for s in shape[1:]]
                position[axis] = p
                box = g.unit_receptive_field(node, tuple(position), clip=False).box
                assert box is None or box[axis] == plain.interval(p), (axis, p)


@pytest.mark.parametrize("width, expected", [(7, ((0, 6),)), (8, ((0, 6),))])
def test_linear_units_read_what_the_flattened_map_read(width, expected):
    g = LayerGraph.sequential(
        (2, width), [("sub", L.Conv(3, 1, stride=2)), ("flat", L.Flatten()), ("fc", L.Linear(4))]
    )
    assert g.unit_receptive_field("fc").box == expected == gradient_boxes(g, [("fc", ())])[0]
    assert g.receptive_field("fc")[0].is_global


def test_mean_over_one_axis_is_global_along_it():
    g = LayerGraph.sequential(
        (2, 9, 11), [("c", L.Conv(2, 3)), ("m", L.Mean(dims=2, keepdim=True))]
    )
    rows, cols = g.receptive_field("m")
    assert (rows.size, rows.is_global, cols.is_global) == (3, False, True)
    assert (
        g.unit_receptive_field("m", (3, 0)).box
        == ((3, 5), (0, 10))
        == gradient_boxes(g, [("m", (3, 0))])[0]
    )


def test_linear_on_a_feature_map_mixes_only_the_last_axis():
    g = LayerGraph.sequential((2, 9, 11), [("c", L.Conv(2, 3)), ("fc", L.Linear(5))])
    rows, cols = g.receptive_field("fc")
    assert g.shape("fc") == (2, 7, 5)
    assert (rows.size, rows.is_global, cols.is_global) == (3, False, True)
    assert (
        g.unit_receptive_field("fc", (2, 4)).box
        == ((2, 4), (0, 10))
        == gradient_boxes(g, [("fc", (2, 4))])[0]
    )


@pytest.mark.parametrize(
    "size, mode, expected",
    [
        (2, "nearest", [(0, 0), (3, 3)]),  # floor(3 o): no centring shift
        (2, "linear", [(1, 1), (4, 4)]),  # 3 o + 1 is an integer: one position
        (3, "linear", [(0, 1), (2, 3), (4, 5)]),  # 2 o + 1/2: two positions
    ],
    ids=["nearest-3", "linear-3", "linear-2"],
)
def test_size_based_downsampling_records_match_the_units(size, mode, expected):
    g = LayerGraph.sequential((1, 6), [("u", L.Upsample(size=size, mode=mode))])
    rf = g.receptive_field("u")[0]
    queries = [("u", (i,)) for i in range(size)]
    assert [rf.interval(i) for i in range(size)] == expected
    assert gradient_boxes(g, queries) == [(e,) for e in expected]


def test_a_fractional_jump_is_parenthesised_in_the_description():
    """Stride-2 transposed conv: half an input pixel between units, reach by phase (~)."""
    g = LayerGraph.sequential((1, 16), [("up", L.Conv(1, 4, stride=2, padding=1, transposed=True))])
    assert g.receptive_field("up")[0].describe() == "~2/(1/2)"
    assert "~2/(1/2)" in g.table()


@given(
    st.lists(
        st.tuples(st.integers(1, 40), st.integers(-40, 80), st.booleans()), min_size=2, max_size=4
    ),
    st.sampled_from([1, 2, 4, Fraction(1, 2), Fraction(3, 2)]),
    st.booleans(),
)
def test_merge_of_aligned_fields_is_the_hull_of_their_units(records, jump, halves):
    """Brute force: unit i of each field reads [start + i j - (size - 1) / 2, start + i j +
    (size - 1) / 2]; the merged field's unit i reads the hull of those, for every i."""
    fields = [
        AxisRF(size, jump, Fraction(twice, 2) if halves else twice, jumps=(jump,), exact=exact)
        for size, twice, exact in records
    ]
    merged = merge(fields, 64)
    for i in range(4):
        ends = [
            (
                f.start + i * jump - Fraction(f.size - 1, 2),
                f.start + i * jump + Fraction(f.size - 1, 2),
            )
            for f in fields
        ]
        assert merged.interval(i) == (min(e[0] for e in ends), max(e[1] for e in ends))
    assert (merged.jump, merged.jumps, merged.is_global) == (jump, (jump,), False)
    assert merged.exact == all(exact for _, _, exact in records)
    assert merged.size == merged.interval(0)[1] - merged.interval(0)[0] + 1
    assert not isinstance(merged.size, Fraction) or merged.size.denominator != 1
