"""PyTorch models on the command line, ``export``/``to_file``, and the torchinfo-style table
options (``--batch``, ``--dtype``, ``--depth``, ``--percent``), against torch itself."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
nn = torch.nn

import convalgebra as ca  # noqa: E402
from convalgebra.cli import main  # noqa: E402
from convalgebra.cli.python_models import is_python_target, parse_target  # noqa: E402
from convalgebra.errors import ConvAlgebraError  # noqa: E402

MODEL_PY = """
import torch.nn as nn


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class Net(nn.Module):
    def __init__(self, width=4, classes=10):
        super().__init__()
        self.stem = block(3, width)
        self.body = nn.Sequential(block(width, width), nn.MaxPool2d(2), block(width, 2 * width))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes))

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


def make(width, classes=10):
    return Net(width, classes)


tied = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
tied.append(tied[0])


class Spare(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.unused = nn.Linear(5, 6)

    def forward(self, x):
        return self.conv(x)


spare = Spare()
"""


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(MODEL_PY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _torch_net(width=4, classes=10):
    namespace: dict = {}
    exec(compile(MODEL_PY, "nets.py", "exec"), namespace)  # the test's own fixture code
    return namespace["Net"](width, classes)


# ------------------------------------------------------------------ targets
@pytest.mark.parametrize(
    "text, expected",
    [
        ("nets.py:Net", ("nets.py", "Net", (), (), False)),
        ("a/b/nets.py:make(8)", ("a/b/nets.py", "make", (8,), (), True)),
        ("nets.py:make(8, classes=3)", ("nets.py", "make", (8,), (("classes", 3),), True)),
        ("pkg.mod:Net.build()", ("pkg.mod", "Net.build", (), (), True)),
        (
            "nets.py:f([1, 2], s='x', d={'a': None})",
            ("nets.py", "f", ([1, 2],), (("s", "x"), ("d", {"a": None})), True),
        ),
    ],
    ids=["file", "args", "kwargs", "module-dotted", "containers"],
)
def test_targets_are_parsed(text, expected):
    t = parse_target(text)
    assert (t.source, t.attr, t.args, t.kwargs, t.called) == expected


@pytest.mark.parametrize(
    "text",
    [
        "nets.py:make(open('x'))",
        "nets.py:make(1 + __import__('os').getpid())",
        "nets.py:make(*[1])",
        "nets.py:make(**{'a': 1})",
        "nets.py:make(x)",
        "nets.py:make(1",
    ],
    ids=["call", "expression", "star", "double-star", "name", "unclosed"],
)
def test_arguments_are_literals_only(text):
    with pytest.raises(ConvAlgebraError, match="arguments"):
        parse_target(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("resnet18", False),
        ("net.yaml", False),
        ("nets.py:Net", True),
        ("torchvision.models:vgg", True),
        ("my-dir/x.yaml:y", False),
    ],
)
def test_python_targets_are_told_from_zoo_names_and_files(text, expected):
    assert is_python_target(text) == expected


def test_analyze_a_python_file_equals_from_torch(capsys, model_dir):
    code, out, err = run(
        capsys, "analyze", "nets.py:make(6, classes=5)", "--in", "3x16x16", "--format", "json"
    )
    assert code == 0, err
    doc = json.loads(out)
    net = _torch_net(6, 5)
    assert doc["totals"]["params"] == sum(p.numel() for p in net.parameters())
    assert doc["totals"]["buffers"] == sum(b.numel() for b in net.buffers())
    expected = ca.from_torch(net.eval(), (3, 16, 16))
    assert [r["node"] for r in doc["layers"][:-1]] == expected.nodes


def test_module_target_is_imported_from_the_current_folder(capsys, model_dir):
    code, out, err = run(capsys, "params", "nets:Net", "--in", "3x8x8")
    assert code == 0, err
    assert f"nets:Net: {sum(p.numel() for p in _torch_net().parameters()):,} parameters" in out


def test_rf_of_a_python_model_uses_the_default_node(capsys, model_dir):
    code, out, err = run(capsys, "rf", "nets.py:Net", "--in", "3x16x16", "--format", "json")
    assert code == 0, err
    rows = {r["node"]: r for r in json.loads(out)}
    g = ca.from_torch(_torch_net().eval(), (3, 16, 16))
    assert g.default_node() == "body.2.2"  # the last feature map, before the global pool
    assert rows["body.2.2"]["RF size"] == "10 x 10"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["analyze", "nets.py:Net"], "needs its input shape, e.g. --in 3x224x224"),
        (["analyze", "missing.py:Net", "--in", "3x8x8"], "no such file"),
        (["analyze", "nets.py:Nope", "--in", "3x8x8"], "has no attribute 'Nope'"),
        (["analyze", "nets.py:tied(3)", "--in", "3x8x8"], "already a module instance"),
        (["analyze", "nets.py:block(1)", "--in", "3x8x8"], "calling nets.py:block failed"),
        (["analyze", "no_such_module_xyz:Net", "--in", "3x8x8"], "cannot import module"),
        (["analyze", "nets.py:MODEL", "--in", "3x8x8"], "has no attribute"),
    ],
    ids=["no-shape", "no-file", "no-attr", "instance-called", "bad-call", "no-module", "no-attr2"],
)
def test_python_target_errors_are_one_line(capsys, model_dir, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


# ------------------------------------------------------------------ export
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_export_round_trips_shared_and_unused_parameters(capsys, model_dir, suffix):
    pytest.importorskip("yaml", reason="the [yaml] extra is not installed: pip install '.[test]'")
    for attr, module in (("tied", None), ("spare", None), ("Net", _torch_net())):
        code, out, err = run(
            capsys, "export", f"nets.py:{attr}", "--in", "3x8x8", "-o", f"{attr}{suffix}"
        )
        assert code == 0, err
        back = ca.LayerGraph.from_file(model_dir / f"{attr}{suffix}")
        namespace: dict = {}
        exec(compile(MODEL_PY, "nets.py", "exec"), namespace)
        original = ca.from_torch((module or namespace[attr]).eval(), (3, 8, 8))
        assert back.nodes == original.nodes
        assert back.summary() == original.summary()
        assert back.table() == original.table()
    assert ca.LayerGraph.from_file(model_dir / f"tied{suffix}").param_count() == 84
    assert ca.LayerGraph.from_file(model_dir / f"spare{suffix}").unused_parameters() == {
        "unused.bias": 6,
        "unused.weight": 30,
    }


def test_export_without_output_prints_json_every_command_reads(capsys, model_dir):
    code, out, _ = run(capsys, "export", "lenet5")
    assert code == 0
    (model_dir / "lenet.json").write_text(out)
    assert run(capsys, "analyze", "lenet.json")[1] == run(capsys, "analyze", "lenet5")[1].replace(
        "lenet5", "lenet.json", 1
    )


def test_export_refuses_other_suffixes(capsys, model_dir):
    code, _, err = run(capsys, "export", "lenet5", "-o", "net.txt")
    assert code == 2 and "-o must name a .json or .yaml or .yml file" in err


def test_to_file_round_trips_zoo_graphs(tmp_path):
    g = ca.zoo.get("resnet18", (3, 64, 64))
    back = ca.LayerGraph.from_file(g.to_file(tmp_path / "r.json"))
    assert back.table() == g.table() and back.nodes == g.nodes
    with pytest.raises(ConvAlgebraError, match="unknown graph file type 'txt'"):
        g.to_file(tmp_path / "r.txt")


# ------------------------------------------------------------------ memory and folding
def _hook_bytes(module, shape, batch, dtype):
    """Output bytes of every leaf module in one forward pass (all, and those with params)."""
    sizes: list = []

    def hook(m, _, out):
        sizes.append((out.numel() * out.element_size(), any(True for _ in m.parameters(False))))

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    with torch.no_grad():
        module.to(dtype).eval()(torch.zeros((batch, *shape), dtype=dtype))
    for h in handles:
        h.remove()
    return sum(s for s, _ in sizes), sum(s for s, p in sizes if p)


@st.composite
def sequential_nets(draw):
    layers, c = [], 3
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "bn", "relu", "pool"]))
        if kind == "conv":
            out = draw(st.integers(1, 4))
            layers.append(
                nn.Conv2d(c, out, draw(st.integers(1, 3)), padding=1, bias=draw(st.booleans()))
            )
            c = out
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(c))
        elif kind == "relu":
            layers.append(nn.ReLU())
        else:
            layers.append(nn.AvgPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@settings(max_examples=30)
@given(
    net=sequential_nets(),
    batch=st.integers(1, 4),
    dtype=st.sampled_from(sorted(DTYPES)),
    size=st.integers(4, 9),
)
def test_memory_equals_forward_hooks(net, batch, dtype, size):
    from convalgebra.cli.network_commands import DTYPE_BYTES

    g = ca.from_torch(net, (3, size, size))
    s = g.summary(dtype_bytes=DTYPE_BYTES[dtype], batch=batch)
    outputs, trained = _hook_bytes(net, (3, size, size), batch, DTYPES[dtype])
    assert s["activation_bytes"] - s["input_bytes"] == outputs
    assert s["forward_backward_bytes"] == 2 * trained  # torchinfo: x2 for gradients
    assert s["input_bytes"] == batch * 3 * size * size * DTYPE_BYTES[dtype]


@st.composite
def nested_nets(draw, depth=0):
    children = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 2 and draw(st.booleans()):
            children.append(draw(nested_nets(depth + 1)))
        else:
            children.append(
                draw(
                    st.sampled_from(
                        [
                            lambda: nn.Conv2d(2, 2, 3, padding=1),
                            lambda: nn.BatchNorm2d(2),
                            lambda: nn.ReLU(),
                            lambda: nn.Conv2d(2, 2, 1, bias=False),
                        ]
                    )
                )()
            )
    return nn.Sequential(*children)


@settings(max_examples=30)
@given(net=nested_nets(), depth=st.integers(1, 3), batch=st.integers(1, 3))
def test_folded_rows_equal_the_torch_submodules(net, depth, batch):
    g = ca.from_torch(net, (2, 6, 6))
    rows = json.loads(g.table("json", depth=depth, batch=batch, percent=True))
    total = rows[-1]
    params = dict(net.named_parameters())
    for row in rows[:-1]:
        name = row["node"]
        prefix = "" if name.startswith("input") else name
        want = sum(
            p.numel() for k, p in params.items() if k == prefix or k.startswith(prefix + ".")
        )
        if prefix:
            assert row["params"] == want, name
        assert row["params %"] == (
            round(100 * row["params"] / total["params"], 1) if total["params"] else None
        )
        assert len(name.split(".")) <= depth or name.startswith("input")
    assert (
        sum(r["params"] for r in rows[:-1])
        == total["params"]
        == sum(p.numel() for p in net.parameters())
    )
    assert sum(r["MACs"] for r in rows[:-1]) == total["MACs"] == batch * ca.macs(g)
    assert sum(r["act_bytes"] for r in rows[:-1]) == total["act_bytes"]


def test_analyze_options_reach_the_table_and_totals(capsys):
    code, out, _ = run(
        capsys,
        "analyze",
        "resnet18",
        "--depth",
        "1",
        "--percent",
        "--batch",
        "4",
        "--dtype",
        "float16",
        "--format",
        "csv",
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["node"] for r in rows][:6] == ["input", "conv1", "bn1", "relu", "maxpool", "layer1"]
    assert rows[-1]["params %"] == "100.0" and rows[-1]["MACs"] == str(4 * 1_814_073_344)
    assert rows[0]["act_bytes"] == str(4 * 2 * 3 * 224 * 224)
    code, out, _ = run(capsys, "analyze", "lenet5", "--batch", "2", "--dtype", "float64")
    assert "memory (float64 for a batch of 2): activations of a forward pass" in out
    g = ca.zoo.get("lenet5")
    assert f"{g.summary(dtype_bytes=8, batch=2)['activation_bytes'] / 1e6:,.2f} MB" in out
    code, _, err = run(capsys, "analyze", "lenet5", "--batch", "0")
    assert code == 2 and "expected a positive integer, got '0'" in err


def test_params_folds_and_shows_percentages(capsys):
    code, out, _ = run(
        capsys, "params", "resnet18", "--depth", "1", "--percent", "--format", "json"
    )
    rows = {r["node"]: r for r in json.loads(out)}
    assert rows["layer4"]["params"] == 8_393_728 and rows["layer4"]["params %"] == 71.8
    assert rows["total"]["params"] == 11_689_512


def test_receptive_field_without_a_node_is_the_default_node():
    g = ca.zoo.get("resnet18")
    assert ca.receptive_field(g) == ca.receptive_field(g, "features")
    bare = ca.LayerGraph.sequential((4,), [ca.layers.Linear(3)])
    with pytest.raises(ConvAlgebraError, match="no node with a spatial output"):
        ca.receptive_field(bare)
    assert math.prod(g.shape(g.default_node())[1:]) > 1
