"""Machine-readable results: numeric receptive-field columns, plain networkx graphs and
``ConvSpec.from_torch``, each against an independent computation (torch runs the module)."""

from __future__ import annotations

import csv
import io
import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convalgebra import ConvAlgebraError, ConvSpec, zoo
from convalgebra.network.receptive import plain_number
from convalgebra.operators import conv_matrix


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_table_numbers_equal_the_receptive_field_records(fmt):
    g = zoo.resnet18((3, 64, 64))
    text = g.table(fmt)
    rows = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    by_node = {r["node"]: r for r in rows}
    for node in g.nodes:
        for a, record in enumerate(g.receptive_field(node)):
            row = by_node[node]
            got = [row[f"rf{a}_{k}"] for k in ("size", "jump", "start", "global")]
            want = [plain_number(record.size), plain_number(record.jump)]
            want += [plain_number(record.start), record.is_global]
            assert got == (want if fmt == "json" else [str(v) for v in want]), node
    assert "rf0_size" not in g.table("text")


def test_plain_networkx_graph_writes_graphml_and_node_link_data():
    g = zoo.resnet18((3, 64, 64))
    plain = g.to_networkx()
    buffer = io.BytesIO()
    nx.write_graphml(plain, buffer)
    back = nx.read_graphml(io.BytesIO(buffer.getvalue()))
    assert back.nodes["layer3.1.relu"]["rf0_size"] == g.receptive_field("layer3")[0].size
    json.dumps(nx.node_link_data(plain, edges="links"))
    assert sorted(plain.edges) == sorted(g.nx.edges)
    assert plain.nodes["fc"]["params"] == 512 * 1000 + 1000
    assert json.loads(plain.nodes["conv1"]["layer"])["kernel_size"] == 7


torch = pytest.importorskip("torch")


@st.composite
def conv_modules(draw):
    n = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = 2 * draw(st.integers(1, 2)), 2 * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    s = tuple(draw(st.integers(1, 2)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2)) for _ in range(n))
    bias = draw(st.booleans())
    cls = getattr(torch.nn, f"Conv{'Transpose' if transposed else ''}{n}d")
    if transposed:
        op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
        m = cls(cin, cout, k, s, 0, op, groups, bias, d)
    else:
        mode = draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
        p = tuple(draw(st.integers(0, (ki - 1) * di // 2)) for ki, di in zip(k, d))
        m = cls(cin, cout, k, s, p, d, groups, bias, mode)
    size = (cin, *(draw(st.integers(5, 8)) for _ in range(n)))
    return m, size


@settings(max_examples=50, deadline=None)
@given(conv_modules())
def test_conv_spec_from_torch_equals_the_module(case):
    from torch_probe import dispatch_macs

    module, size = case
    spec = ConvSpec.from_torch(module, size)
    out = module(torch.rand(1, *size))
    assert spec.output_shape == tuple(out.shape[1:])
    assert spec.n_params == sum(p.numel() for p in module.parameters())
    assert spec.macs == dispatch_macs(module, size)
    module = module.double()
    with torch.no_grad():
        module.weight.copy_(torch.randint(-3, 4, module.weight.shape))
        x = torch.randint(-3, 4, (1, *size)).double()
        y = module(x)[0].numpy()
    matrix = conv_matrix(spec, module.weight.detach().numpy())
    bias = 0 if module.bias is None else module.bias.detach().numpy()
    bias = np.reshape(bias, (-1,) + (1,) * (len(size) - 1))
    expected = (y - bias).ravel()
    np.testing.assert_allclose(matrix @ x[0].numpy().ravel(), expected, atol=1e-9)


def test_conv_spec_from_torch_refuses_other_modules_and_shapes():
    with pytest.raises(TypeError, match="Conv1d/2d/3d"):
        ConvSpec.from_torch(torch.nn.Linear(3, 4), (3,))
    with pytest.raises(ConvAlgebraError, match="in_channels=3"):
        ConvSpec.from_torch(torch.nn.Conv2d(3, 4, 3), (4, 8, 8))
