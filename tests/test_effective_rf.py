"""Effective receptive fields against autograd of the linearised torch network.

The oracle is ``TorchGraph(graph, oracle=True)`` (weights 1/fan-in, no bias, activations
removed, max pooling as average pooling over the same window) with two changes that make it
exactly the linearisation :func:`effective_receptive_field` documents: batch normalisation
is the identity (``eps = 0`` on fresh statistics) and every gate (squeeze-and-excitation, a
product with a globally pooled branch) is held at 1.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)

from test_graph_oracle import TorchGraph, _inputs, _one_thread  # noqa: E402
from test_receptive import graphs  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra.cli import main  # noqa: E402
from convalgebra.effective import effective_receptive_field  # noqa: E402
from convalgebra.errors import ConvAlgebraError  # noqa: E402
from convalgebra.network import layers as L  # noqa: E402

FEW = settings(max_examples=int(os.environ.get("GRAPH_EXAMPLES", 60)), deadline=None)


class LinearisedGraph(TorchGraph):
    """The oracle with batch norm as the identity and gates held at 1."""

    def __init__(self, graph):
        super().__init__(graph, oracle=True)
        for m in self.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eps = 0.0

    def _pool(self, layer, x, nd):
        dilation = (layer.dilation,) * nd if isinstance(layer.dilation, int) else layer.dilation
        if isinstance(layer, L.MaxPool) and set(dilation) == {1}:  # also written as (1, 1)
            stride = layer.stride if layer.stride is not None else layer.kernel_size
            return getattr(torch.nn.functional, f"avg_pool{nd}d")(
                x, layer.kernel_size, stride, layer.padding, layer.ceil_mode, False
            )
        return super()._pool(layer, x, nd)

    def _run(self, node, xs):
        kind = self.graph.layer(node).kind
        if kind == "squeeze_excite":
            return xs[0]
        if kind == "mul":
            gates = self.graph.gate_ports(node)
            kept = [x for p, x in enumerate(xs) if p not in gates]
            if len(kept) == 1:  # the gate's value is 1: the product is the kept branch
                out = kept[0]
                shape = (1, *self.graph.shape(node))
                return out.expand(shape) if tuple(out.shape) != shape else out
        return super()._run(node, xs)


def autograd_gradient(graph, node, position) -> np.ndarray:
    with _one_thread():
        model = LinearisedGraph(graph)
        xs = [x.requires_grad_() for x in _inputs(graph)]
        values = model(*xs)
        values[node][(0, slice(None), *position)].sum().backward()
    return xs[0].grad[0].numpy()


@FEW
@given(g=graphs(dag=True), data=st.data())
def test_effective_field_equals_autograd_of_the_linearised_network(g, data):
    spatial = [n for n in g.nodes[1:] if len(g.shape(n)) == g.spatial_ndim + 1]
    assume(spatial)
    node = data.draw(st.sampled_from(spatial))
    position = tuple(data.draw(st.integers(0, s - 1)) for s in g.shape(node)[1:])
    try:
        field = effective_receptive_field(g, node, position)
    except ConvAlgebraError as exc:  # two feature maps multiplied: no linear form
        assert "not linear" in str(exc)
        return
    expected = autograd_gradient(g, node, position)
    np.testing.assert_allclose(field.gradient, expected, rtol=1e-9, atol=1e-12)
    support = np.nonzero(np.abs(expected).sum(0) > 0)
    box = tuple((int(w.min()), int(w.max())) for w in support) if support[0].size else None
    assert field.box == box  # the effective field lives in the theoretical box
    if box is not None:
        assert field.weights.sum() == pytest.approx(1.0)
        held = field.weights[_disc(field.weights.shape, field.centre, field.radius)].sum()
        assert held >= field.mass - 1e-9


def _disc(shape, centre, radius):
    grid = np.indices(shape).astype(float)
    distance = np.sqrt(sum((grid[a] - c) ** 2 for a, c in enumerate(centre)))
    return distance <= radius + 1e-9


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.floats(0, 1), min_size=1, max_size=40).filter(lambda w: sum(w) > 0),
    mass=st.sampled_from([0.5, 0.9, 0.95, 1.0]),
)
def test_radius_is_the_smallest_holding_the_mass(weights, mass):
    """Brute force over every candidate radius (the distances of the pixels)."""
    from convalgebra.effective import _summarise

    w = np.asarray(weights) / np.sum(weights)

    class Unit:
        position, box = (0,), ((0, len(w) - 1),)

    g = ca.LayerGraph.sequential((1, len(w)), [])
    field = _summarise(g, "input", Unit(), {"input": w[None]}, mass)
    distances = np.abs(np.arange(len(w)) - field.centre[0])
    holding = [d for d in distances if w[distances <= d + 1e-12].sum() >= mass - 1e-9]
    assert field.radius == pytest.approx(min(holding))


def test_a_zoo_network_at_small_size_equals_autograd():
    g = ca.zoo.get("resnet18", (3, 40, 40))
    field = effective_receptive_field(g, "layer2.1.relu", (2, 3))
    np.testing.assert_allclose(
        field.gradient, autograd_gradient(g, "layer2.1.relu", (2, 3)), rtol=1e-9, atol=1e-14
    )
    assert field.size < min(field.theoretical_size)  # the effective field is the smaller


def test_stacked_averages_concentrate_like_a_gaussian():
    """Luo et al.: the effective size grows like sqrt(depth), the theoretical one linearly."""
    sizes = []
    for depth in (4, 16):
        g = ca.LayerGraph.sequential((1, 101), [L.Conv(1, 3, padding=1)] * depth)
        f = effective_receptive_field(g, position=(50,))
        sizes.append((f.size, f.theoretical_size[0]))
    (small, box_small), (large, box_large) = sizes
    assert (box_small, box_large) == (9, 33)
    assert large / small == pytest.approx(2.0, rel=0.2)  # sqrt(16 / 4)


def test_default_node_and_gates():
    g = ca.LayerGraph()
    g.add_input("x", (2, 12, 12))
    g.add("conv", L.Conv(2, 3, padding=1), "x")
    g.add("pool", L.AdaptivePool(1), "conv")
    g.add("gate", L.Mul(), ["conv", "pool"])
    f = effective_receptive_field(g)
    assert f.node == "gate" and f.box == ((4, 6), (4, 6))
    np.testing.assert_allclose(f.weights[4:7, 4:7], np.full((3, 3), 1 / 9))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda g: g.add("p", L.Mul(), ["c", "c"]), "not linear"),
        (lambda g: g.add("p", L.Opaque("custom", (2, 8, 8)), ["c"]), "no linear form"),
    ],
    ids=["product", "opaque"],
)
def test_non_linear_ancestors_are_named(build, message):
    g = ca.LayerGraph()
    g.add_input("x", (2, 8, 8))
    g.add("c", L.Conv(2, 1), "x")
    build(g)
    with pytest.raises(ConvAlgebraError, match=message):
        effective_receptive_field(g, "p")


def test_bad_arguments_are_named():
    g = ca.LayerGraph.sequential((1, 8), [L.Conv(1, 3)])
    with pytest.raises(
        ConvAlgebraError, match="weights must be 'uniform' or a mapping .* got 'trained'"
    ):
        effective_receptive_field(g, weights="trained")
    with pytest.raises(ConvAlgebraError, match="mass must be in"):
        effective_receptive_field(g, mass=0)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_rf_effective_on_the_command_line(capsys, tmp_path):
    code, out, err = run(capsys, "rf", "lenet5", "--effective", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    f = effective_receptive_field(ca.zoo.get("lenet5"))
    assert doc["node"] == f.node and doc["effective_size"] == pytest.approx(f.size)
    assert doc["theoretical_box"] == [list(b) for b in f.box]
    code, out, err = run(capsys, "rf", "lenet5", "--effective", "--unit", "1x2", "--node", "conv2")
    assert code == 0, err
    assert out.startswith("unit (1, 2) of 'conv2': effective size")
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    code, out, err = run(capsys, "rf", "lenet5", "--effective", "--plot", str(tmp_path / "e.png"))
    assert code == 0, err
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ the model's own weights
@st.composite
def linear_torch_nets(draw):
    """Signed random weights; convolutions (groups, strides, padding modes, transposed),
    batch norms with random statistics, average pools, residual sums and concatenations."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self, layers, merge):
            super().__init__()
            self.body = nn.Sequential(*layers)
            self.side = nn.Conv2d(2, self.channels(layers), 1) if merge else None
            self.merge = merge

        @staticmethod
        def channels(layers):
            return (
                [m for m in layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][
                    -1
                ].out_channels
                if any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in layers)
                else 2
            )

        def forward(self, x):
            y = self.body(x)
            if self.merge == "add":
                return y + self.side(x)
            if self.merge == "cat":
                return torch.cat([y, self.side(x)], 1)
            return y

    layers, c = [], 2
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "convt", "bn", "pool"]))
        if kind == "conv":
            groups = draw(st.sampled_from([1, 2]))
            out = 2 * draw(st.integers(1, 2))
            k = draw(st.sampled_from([1, 3]))  # odd: "same" size, so branches can merge
            layers.append(
                nn.Conv2d(
                    c,
                    out,
                    k,
                    padding=k // 2,
                    groups=groups,
                    padding_mode=draw(
                        st.sampled_from(["zeros", "reflect", "replicate", "circular"])
                    ),
                )
            )
            c = out
        elif kind == "convt":
            layers.append(nn.ConvTranspose2d(c, 2, draw(st.integers(1, 3)), stride=1))
            c = 2
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(c))
        else:
            layers.append(
                nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=draw(st.booleans()))
            )
    merge = (
        draw(st.sampled_from([None, "add", "cat"]))
        if all(not isinstance(m, nn.ConvTranspose2d) for m in layers)
        else None
    )
    net = Net(layers, merge).double().eval()
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    with torch.no_grad():
        for t in [
            *net.parameters(),
            *[m.running_var for m in net.modules() if isinstance(m, nn.BatchNorm2d)],
        ]:
            t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * 2 - 0.5)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.abs_().add_(0.1)
    return net


@settings(max_examples=30, deadline=None)
@given(net=linear_torch_nets(), data=st.data())
def test_own_weights_equal_autograd_of_the_model(net, data):
    size = (7, 8)
    g = ca.from_torch(net, (2, *size))
    node = g.outputs[-1]
    position = tuple(data.draw(st.integers(0, s - 1)) for s in g.shape(node)[1:])
    field = effective_receptive_field(g, node, position, weights=net.state_dict())
    x = torch.rand((1, 2, *size), dtype=torch.float64, requires_grad=True)
    with _one_thread():
        net(x)[(0, slice(None), *position)].sum().backward()
    np.testing.assert_allclose(field.gradient, x.grad[0].numpy(), rtol=1e-9, atol=1e-12)


def test_own_weights_of_the_wrong_shape_are_named():
    g = ca.LayerGraph.sequential((1, 8), [L.Conv(2, 3)])
    with pytest.raises(ConvAlgebraError, match=r"weights\['conv1.weight'\] has shape \(3,\)"):
        effective_receptive_field(g, weights={"conv1.weight": np.ones(3)})
    with pytest.raises(TypeError, match="weights must be 'uniform' or a mapping"):
        effective_receptive_field(g, weights=3)


def test_uniform_weights_given_explicitly_equal_the_uniform_pass():
    g = ca.zoo.get("resnet18", (3, 32, 32))
    uniform = effective_receptive_field(g, "layer1.1.relu", (3, 4))
    given_ = effective_receptive_field(g, "layer1.1.relu", (3, 4), weights={})
    np.testing.assert_allclose(given_.gradient, uniform.gradient, rtol=1e-9, atol=1e-15)


def test_rf_effective_with_the_models_own_weights(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(
        "import torch\nimport torch.nn as nn\ntorch.manual_seed(3)\n"
        "net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Conv2d(3, 2, 3))\n"
    )
    code, out, err = run(
        capsys,
        "rf",
        "m.py:net",
        "--in",
        "2x9x9",
        "--effective",
        "--weights",
        "model",
        "--unit",
        "2x3",
        "--format",
        "json",
    )
    assert code == 0, err
    import importlib.util

    spec = importlib.util.spec_from_file_location("m_check", tmp_path / "m.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.net.double().eval()
    f = effective_receptive_field(
        ca.from_torch(net, (2, 9, 9)), "2", (2, 3), weights=net.state_dict()
    )
    assert json.loads(out)["effective_size"] == pytest.approx(f.size, abs=1e-5)
    uniform = json.loads(
        run(
            capsys,
            "rf",
            "m.py:net",
            "--in",
            "2x9x9",
            "--effective",
            "--unit",
            "2x3",
            "--format",
            "json",
        )[1]
    )
    assert uniform["theoretical_box"] == json.loads(out)["theoretical_box"]
    code, _, err = run(capsys, "rf", "lenet5", "--effective", "--weights", "model")
    assert code == 2 and "--weights model needs a PyTorch model" in err


def test_an_alias_or_module_path_names_its_output_node():
    from convalgebra.network import zoo

    g = zoo.resnet18((3, 64, 64))
    by_alias = ca.effective_receptive_field(g, "features")
    by_node = ca.effective_receptive_field(g, g.resolve("features"))
    assert by_alias.node == by_node.node == "layer4.1.relu"
    assert np.array_equal(by_alias.weights, by_node.weights) and by_alias.weights.sum() > 0
