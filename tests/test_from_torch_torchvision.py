"""Every torchvision classification and segmentation model imports exactly.

For each model: parameters equal ``sum(p.numel())`` (minus the auxiliary heads eval never
runs, listed as unused), MACs equal torch's dispatch count of the same forward pass, and
every module output with a finite receptive field reads exactly the box the gradient probe
of the linearised network finds; every module torch calls resolves, by its path, to a node of
the shape of the module's output (of its last call). ``CI_MODELS`` run by default (a representative subset:
channel shuffle, channels-last blocks, squeeze-and-excitation, dense concatenation,
inception branches, interpolation, attention); ``CONVALGEBRA_TORCHVISION=all`` runs all, at
the smallest input each model takes (``torchvision_models.small``).
"""

from __future__ import annotations

import os
import warnings

import pytest

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)

import torchvision_models as tvm  # noqa: E402
from torch_probe import dispatch_macs, positive_copy, probe_boxes  # noqa: E402

from convalgebra import from_torch, macs, param_count  # noqa: E402
from convalgebra.errors import ConvAlgebraError  # noqa: E402

FULL = os.environ.get("CONVALGEBRA_TORCHVISION") == "all"
MODELS = list(tvm.ALL) if FULL else tvm.CI_MODELS
tvm.load()
# module kinds that change a field (the others keep their input's; probed with
# CONVALGEBRA_PROBE=all)
PROBE_ALL = os.environ.get("CONVALGEBRA_PROBE") == "all"
_REACH = ("Conv", "MaxPool", "AvgPool", "Adaptive", "Upsampl", "Linear", "LayerNorm")


def _probe_requests(g, model):
    modules = dict(model.named_modules())
    requests = {}
    for node in g.nodes:
        axes = g.axes(node)
        rf = g.receptive_field(node)
        if node not in modules or not axes or None in axes or any(f.is_global for f in rf):
            continue
        if not PROBE_ALL and not type(modules[node]).__name__.startswith(_REACH):
            continue
        shape = g.shape(node)
        requests[node] = (axes, tuple(shape[t] // 3 for t in axes))
    return requests


@pytest.fixture(scope="module", params=MODELS)
def imported(request):
    name = request.param
    torch.manual_seed(0)
    model = tvm.build(name)
    shape = tvm.small(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = from_torch(model, shape)
    return name, model, g, caught, shape


def test_parameters_equal_torch(imported):
    name, model, g, _, shape = imported
    total = sum(p.numel() for p in model.parameters())
    unused = g.unused_parameters()
    assert all(k.startswith(("aux", "AuxLogits")) for k in unused), unused
    assert param_count(g) + sum(unused.values()) == total


def test_macs_equal_the_dispatch_count(imported):
    name, model, g, _, shape = imported
    assert macs(g) == dispatch_macs(model, shape)


def test_finite_receptive_fields_equal_the_gradient_probe(imported):
    name, model, g, _, shape = imported
    requests = _probe_requests(g, model)
    assert requests  # every model has convolutions with a finite field
    boxes = probe_boxes(positive_copy(model), shape, requests)
    for node, (_axes, pos) in requests.items():
        assert g.unit_receptive_field(node, pos).box == boxes[node], node


def test_nothing_is_unmodelled(imported):
    name, _, g, caught, _ = imported
    if name.startswith("swin"):  # its window attention is one fx-wrapped function
        assert {op for _, op in g.nx.graph["unmodelled"]} <= {
            "function shifted_window_attention",
            "function _patch_merging_pad",
        }
    else:
        assert g.nx.graph["unmodelled"] == [] and not caught


def _called_outputs(model, shape) -> dict:
    """Module path -> output shape (no batch axis) of its last call, for every module torch
    calls in one forward pass (forward hooks)."""
    seen: dict = {}

    def hook(path):
        def keep(module, inputs, result):
            first = result
            while isinstance(first, (tuple, list)) and first:
                first = first[0]
            if isinstance(first, dict) and first:
                first = next(iter(first.values()))
            seen[path] = tuple(first.shape[1:]) if isinstance(first, torch.Tensor) else None

        return keep

    hooks = [m.register_forward_hook(hook(p)) for p, m in model.named_modules() if p]
    try:
        with torch.no_grad():
            model(torch.rand(1, *shape))
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_every_called_module_path_resolves_to_its_output(imported):
    name, model, g, _, shape = imported
    called = _called_outputs(model, shape)
    assert len(called) > 10
    wrong = {}
    for path, out in called.items():
        try:
            node = g.resolve(path)
        except ConvAlgebraError as exc:
            wrong[path] = str(exc)
            continue
        if out is not None and g.shape(node) != out:
            wrong[path] = (node, g.shape(node), out)
    assert wrong == {}
