"""The zoo: published numbers, torch-executed shapes/FLOPs, gradient-support receptive fields."""

from __future__ import annotations

import re

import networkx as nx
import pytest

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)

from test_graph_oracle import TorchGraph, check_shapes, flop_count, gradient_boxes

from convalgebra import ConvAlgebraError, macs, param_count, zoo
from convalgebra.network.graph import LayerGraph, buffer_count

# torchvision's published parameter counts and GFLOPS (which are multiply-accumulates)
PUBLISHED = {
    "alexnet": (61_100_840, 0.714),
    "vgg16": (138_357_544, 15.470),
    "resnet18": (11_689_512, 1.814),
    "resnet50": (25_557_032, 4.089),
    "resnet152": (60_192_808, 11.514),
    "mobilenet_v2": (3_504_872, 0.301),
    "inception_v3": (27_161_264, 5.713),
}

# Araujo, Norris & Sim (Distill 2019), table of receptive field sizes
ARAUJO = {"alexnet": 195, "vgg16": 212, "inception_v3": 1311, "mobilenet_v2": 491}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_params_equal_torchvision_published(name):
    assert param_count(zoo.get(name)) == PUBLISHED[name][0]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_macs_equal_torchvision_published_gflops(name):
    g = zoo.get(name)
    # torchvision measures inception_v3 in eval mode: the auxiliary head does not run
    total = sum(g.facts(n).macs for n in g.nodes if not n.startswith("AuxLogits"))
    assert round(total / 1e9, 3) == PUBLISHED[name][1]
    assert g.summary()["flops"] == 2 * macs(g)


@pytest.mark.parametrize("name", sorted(ARAUJO))
def test_receptive_fields_equal_araujo_et_al(name):
    rf = zoo.get(name).receptive_field("features")
    assert [f.size for f in rf] == [ARAUJO[name]] * 2


def test_resnet_receptive_fields_follow_torchvision_stride_placement():
    # stride in the 3x3 of the first unit (torchvision); TF-Slim's v1 (483) differs
    assert zoo.resnet50().receptive_field("features")[0].size == 427
    assert zoo.resnet18().receptive_field("features")[0].size == 435
    assert zoo.resnet18().receptive_field("features")[0].jump == 32


@pytest.mark.parametrize(
    "name, shape",
    [
        ("lenet5", (16, 5, 5)),
        ("alexnet", (256, 6, 6)),
        ("vgg16", (512, 7, 7)),
        ("resnet18", (512, 7, 7)),
        ("resnet50", (2048, 7, 7)),
        ("resnet152", (2048, 7, 7)),
        ("mobilenet_v2", (1280, 7, 7)),
        ("inception_v3", (2048, 8, 8)),
        ("unet", (64, 388, 388)),
    ],
)
def test_features_node_holds_the_last_spatial_map(name, shape):
    assert zoo.get(name).shape("features") == shape


def test_inception_has_its_auxiliary_classifier():
    g = zoo.inception_v3()
    assert g.shape("AuxLogits.fc") == (1000,)
    assert sorted(g.outputs) == ["AuxLogits.fc", "fc"]
    assert g.receptive_field("AuxLogits.conv1.relu")[0].is_global is False


def test_unet_paper_shapes_and_phase_dependent_field():
    g = zoo.unet()
    assert g.shape("down4.relu2") == (1024, 28, 28)
    assert g.shape("head") == (2, 388, 388)
    assert param_count(g) == 31_030_658
    assert not g.receptive_field("head")[0].exact
    assert g.receptive_field("head", exact=True)[0].size == 204


SMALL = [
    ("lenet5", None),
    ("alexnet", (3, 67, 67)),
    ("vgg16", (3, 32, 32)),
    ("resnet18", (3, 64, 64)),
    ("resnet50", (3, 48, 48)),
    ("mobilenet_v2", (3, 48, 48)),
    ("inception_v3", (3, 75, 75)),
]


def _small(name, shape):
    if name == "inception_v3":  # the auxiliary head needs about 299x299 inputs
        return zoo.inception_v3(shape, aux_logits=False)
    return zoo.get(name, shape)


def _up_to_features(g):
    """The subgraph that computes "features" (skips the huge classifiers in torch tests)."""
    features = g.resolve("features")
    keep = nx.ancestors(g.nx, features) | {features}
    return LayerGraph.from_nx(g.nx.subgraph(keep).copy())


@pytest.mark.parametrize("name, shape", SMALL, ids=[n for n, _ in SMALL])
def test_torch_execution_agrees_on_shapes_params_buffers_and_flops(name, shape):
    g = _small(name, shape)
    with torch.device("meta"):
        model = TorchGraph(g)
    assert model.param_count() == param_count(g)
    assert model.buffer_count() == buffer_count(g)
    head = g if name in ("lenet5", "resnet18", "mobilenet_v2") else _up_to_features(g)
    check_shapes(head)
    assert flop_count(head) == 2 * macs(head)


def _probe_nodes(g, count=3):
    spatial = [n for n in g.nodes[1:] if len(g.shape(n)) == 3 and g.shape(n)[1] > 1]
    step = max(1, len(spatial) // count)
    return spatial[step - 1 :: step][:count]


# vgg16 and resnet50 repeat the blocks of alexnet and resnet18 (and cost the most to run)
GRADIENT = [s for s in SMALL if s[0] not in ("vgg16", "resnet50")]


@pytest.mark.parametrize("name, shape", GRADIENT, ids=[n for n, _ in GRADIENT])
def test_unit_boxes_equal_gradient_support_on_zoo_models(name, shape):
    g = _up_to_features(_small(name, shape))
    queries = []
    for node in _probe_nodes(g):
        h, w = g.shape(node)[1:]
        queries += [(node, (0, w - 1)), (node, (h // 2, w // 3))]
    expected = gradient_boxes(g, queries)
    assert [g.unit_receptive_field(n, p).box for n, p in queries] == expected


def test_unet_unit_boxes_equal_gradient_support():
    g = zoo.unet((1, 252, 252), width=2)
    assert g.shape("head") == (2, 68, 68)
    positions = [(0, 0), (30, 30), (34, 31), (40, 41), (67, 10)]
    expected = gradient_boxes(g, [("head", p) for p in positions])
    got = [g.unit_receptive_field("head", p).box for p in positions]
    assert got == expected
    sizes = {b[1] - b[0] + 1 for b, _ in expected if 0 < b[0] and b[1] < 251}
    assert sizes == {188, 204}


def test_get_and_names():
    assert zoo.names() == sorted(
        [
            "lenet5",
            "alexnet",
            "vgg16",
            "resnet18",
            "resnet50",
            "resnet152",
            "mobilenet_v2",
            "inception_v3",
            "unet",
        ]
    )
    assert zoo.get("resnet18", (3, 64, 64)).shape("features") == (512, 2, 2)
    with pytest.raises(ConvAlgebraError, match="unknown model 'resnet19'"):
        zoo.get("resnet19")


def test_small_inputs_that_collapse_name_the_layer():
    with pytest.raises(ConvAlgebraError, match="layer 'features' \\(max_pool\\)"):
        zoo.alexnet((3, 32, 32))


@pytest.mark.parametrize("name", zoo.names())
@pytest.mark.parametrize(
    "shape", [(3, 224), (3, 64, 64, 64), (224, 224)], ids=["1d", "3d", "no-channels"]
)
def test_a_zoo_model_at_the_wrong_rank_is_refused(name, shape):
    with pytest.raises(
        ConvAlgebraError,
        match=rf"{name} takes an image input \(C, H, W\).*"
        rf"got {re.escape(str(shape))}",
    ):
        zoo.get(name, shape)


def test_cli_refuses_a_1d_input_for_an_image_model(capsys):
    from convalgebra.cli import main

    assert main(["analyze", "resnet18", "--input", "3x224"]) == 2
    assert "resnet18 takes an image input" in capsys.readouterr().err
