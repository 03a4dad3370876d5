"""``convalgebra analyze``, ``rf`` and ``params``: networks and single layers from the shell."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from convalgebra.cli import main

LENET_YAML = """\
name: lenet
input: [1, 28, 28]
layers:
  - {name: conv1, kind: conv, out_channels: 6, kernel_size: 5, padding: 2}
  - {kind: sigmoid}
  - {name: pool1, kind: avg_pool, kernel_size: 2, stride: 2}
  - {name: conv2, kind: conv, out_channels: 16, kernel_size: 5}
  - {kind: sigmoid}
  - {name: pool2, kind: avg_pool, kernel_size: 2, stride: 2}
  - {kind: flatten}
  - {name: fc1, kind: linear, out_features: 120}
  - {kind: sigmoid}
  - {name: fc2, kind: linear, out_features: 84}
  - {kind: sigmoid}
  - {name: fc3, kind: linear, out_features: 10}
"""


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def lenet_file(tmp_path):
    pytest.importorskip("yaml", reason="the [yaml] extra is not installed: pip install '.[test]'")
    path = tmp_path / "lenet.yaml"
    path.write_text(LENET_YAML)
    return path


# ---------------------------------------------------------------------------- analyze
def test_no_arguments_analyses_resnet18(capsys):
    code, out, err = run(capsys)
    assert code == 0 and err == ""
    assert out.startswith("resnet18 on input 3x224x224")
    # torchvision's published count and the 1.814 GMACs of its model card
    assert "parameters: 11,689,512 learnable" in out
    assert "MACs: 1,814,073,344" in out
    assert "receptive field of 'features': 435/32 x 435/32" in out


def test_analyze_yaml_file_reproduces_lenet_seed_example(capsys, lenet_file):
    code, out, _ = run(capsys, "analyze", str(lenet_file))
    assert code == 0
    assert "parameters: 61,706 learnable" in out  # seed example 9
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["conv2"][2] == "16x10x10" and rows["pool2"][2] == "16x5x5"


def test_analyze_csv_and_json_are_machine_readable(capsys, lenet_file):
    code, out, _ = run(capsys, "analyze", str(lenet_file), "--format", "csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert table[-1]["node"] == "total" and int(table[-1]["params"]) == 61706
    code, out, _ = run(capsys, "analyze", str(lenet_file), "--format", "json")
    document = json.loads(out)
    assert document["totals"]["params"] == 61706 and document["input"] == "1x28x28"
    assert [row["node"] for row in document["layers"]][:2] == ["input", "conv1"]


def test_analyze_markdown(capsys):
    code, out, _ = run(capsys, "analyze", "lenet5", "--format", "markdown")
    assert code == 0
    assert out.startswith("**lenet5 on input 1x28x28")
    assert "| conv1 " in out and "|--" in out


def test_analyze_input_shape_changes_the_table(capsys, lenet_file):
    code, out, _ = run(capsys, "analyze", str(lenet_file), "--input", "1x32x32", "--format", "json")
    assert code == 0
    layers = {row["node"]: row for row in json.loads(out)["layers"]}
    assert layers["conv1"]["output"] == [6, 32, 32]


def test_analyze_list(capsys):
    code, out, _ = run(capsys, "analyze", "--list")
    assert code == 0 and {"resnet18", "lenet5", "vgg16"} <= set(out.split())


@pytest.mark.parametrize(
    "content, suffix, needle",
    [
        ("input: [1, 8, 8]\nlayers: !!python/object:os.system {}\n", ".yaml", "no Python tags"),
        ("!!python/object/apply:os.system ['echo hi']\n", ".yml", "no Python tags"),
        ("{bad json", ".json", "cannot parse"),
        (
            '{"input": [1, 8, 8], "layers": [{"kind": "conv", "out_channels": 2, "kernel_size": 9}]}',
            ".json",
            "kernel extent 9",
        ),
        ('{"input": [1, 8, 8], "layers": [{"kind": "warp"}]}', ".json", "unknown layer kind"),
        (b"\xff\xfe\x00\x81", ".yaml", "not a text file"),
    ],
    ids=["python-tag", "python-apply", "bad-json", "too-small", "unknown-kind", "binary"],
)
def test_bad_graph_files_are_one_line_exit_2(capsys, tmp_path, content, suffix, needle):
    if needle != "not a text file" and suffix != ".json":
        pytest.importorskip(
            "yaml", reason="the [yaml] extra is not installed: pip install '.[test]'"
        )
    path = tmp_path / f"net{suffix}"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = run(capsys, "analyze", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["analyze", "resnet19"], "unknown model 'resnet19'"),
        (["analyze", "missing.yaml"], "no such file"),
        (["analyze", "lenet5", "--input", "1x3x3"], "kernel extent"),
        (["analyze", "lenet5", "--input", "1x-3x3"], "expected a shape"),
        (["rf"], "needs a model"),
        (["rf", "lenet5", "--in", "1x5", "-k", "3"], "not both"),
        (["rf", "lenet5", "--node", "nope"], "no node named 'nope'"),
        (["rf", "lenet5", "--node", "conv1", "--unit", "40x0"], "outside node"),
        (["params", "--in", "1x5"], "needs both --in SHAPE and -k K"),
    ],
    ids=[
        "unknown-model",
        "missing-file",
        "collapsing-input",
        "bad-input",
        "rf-nothing",
        "rf-both",
        "rf-node",
        "rf-unit",
        "params-no-kernel",
    ],
)
def test_network_bad_input_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


# --------------------------------------------------------------------------------- rf
def test_rf_three_3x3_layers_grow_3_5_7(capsys, tmp_path):
    """Seed example 7: three stacked 3x3 convolutions see 7x7, like one 7x7."""
    path = tmp_path / "stack.json"
    path.write_text(
        json.dumps(
            {
                "input": [8, 32, 32],
                "layers": [
                    {
                        "name": f"c{i}",
                        "kind": "conv",
                        "out_channels": 8,
                        "kernel_size": 3,
                        "padding": 1,
                    }
                    for i in (1, 2, 3)
                ],
            }
        )
    )
    code, out, _ = run(capsys, "rf", str(path), "--format", "csv")
    assert code == 0
    sizes = {row["node"]: row["RF size"] for row in csv.DictReader(io.StringIO(out))}
    assert [sizes[n] for n in ("c1", "c2", "c3")] == ["3 x 3", "5 x 5", "7 x 7"]


def _torch_box(spec, unit):
    """Bounding box of the input-gradient support of one unit (torch autograd oracle)."""
    from oracle import torch_jacobian

    row = np.ravel_multi_index((0, *unit), spec.output_shape)
    support = torch_jacobian(spec, np.ones(spec.weight_shape))[row].reshape(spec.input_shape)
    idx = np.nonzero(support.any(axis=0))
    return tuple((int(a.min()), int(a.max())) for a in idx)


@pytest.mark.parametrize(
    "flags, unit",
    [
        (["--in", "1x9x9", "-k", "3", "-s", "2", "-p", "1"], (0, 2)),
        (["--in", "2x10x7", "--out", "2", "-k", "3x2", "-d", "2x1", "-p", "0:2x1"], (3, 1)),
        (["--in", "1x12", "-k", "4", "-s", "3", "-p", "2"], (3,)),
    ],
    ids=["strided", "dilated-asymmetric", "1d"],
)
def test_rf_unit_of_a_layer_matches_torch_gradient_support(capsys, flags, unit):
    pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")
    from convalgebra.cli import build_parser
    from convalgebra.cli.args import (
        parse_padding,  # noqa: F401 - flags parsed by main below
        spec_from_args,
    )

    spec = spec_from_args(build_parser().parse_args(["rf", *flags]))
    code, out, _ = run(capsys, "rf", *flags, "--unit", "x".join(map(str, unit)))
    assert code == 0
    box = _torch_box(spec, unit)
    expected = ", ".join(f"axis {a}: {lo}..{hi}" for a, (lo, hi) in enumerate(box))
    assert f"reads input box {expected}" in out


def test_rf_unit_json(capsys):
    code, out, _ = run(capsys, "rf", "resnet18", "--unit", "0x0", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["node"] == "features" and document["box"] == [[0, 217], [0, 217]]
    assert document["size"] == [218, 218]


def test_rf_plots_growth_and_unit(capsys, tmp_path, lenet_file):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    from test_plot import assert_real_png

    growth, unit, layer = tmp_path / "g.png", tmp_path / "u.png", tmp_path / "l.png"
    assert run(capsys, "rf", "resnet18", "--plot", str(growth))[0] == 0
    assert (
        run(capsys, "rf", str(lenet_file), "--node", "conv2", "--unit", "0x0", "--plot", str(unit))[
            0
        ]
        == 0
    )
    assert (
        run(
            capsys,
            "rf",
            "--in",
            "1x7x7",
            "-k",
            "3",
            "-s",
            "2",
            "-p",
            "1",
            "--unit",
            "1x1",
            "--plot",
            str(layer),
        )[0]
        == 0
    )
    for path in (growth, unit, layer):
        assert_real_png(path.read_bytes())


# ----------------------------------------------------------------------------- params
def test_params_of_a_layer_seed_example_6(capsys):
    code, out, _ = run(capsys, "params", "--in", "3x32x32", "--out", "10", "-k", "5", "-p", "2")
    assert code == 0
    assert "weights: 750 (10x3x5x5) + biases: 10 = 760 parameters" in out
    assert "MACs: 768,000" in out


def test_params_bottleneck_seed_example_8(capsys):
    code, out, _ = run(
        capsys,
        "params",
        "--in",
        "200x32x32",
        "--out",
        "32",
        "-k",
        "5",
        "-p",
        "same",
        "--no-bias",
        "--format",
        "json",
    )
    assert code == 0
    (row,) = json.loads(out)
    assert row["MACs"] == 163_840_000 and row["params"] == 160_000


def test_params_of_a_network(capsys):
    code, out, _ = run(capsys, "params", "lenet5", "--format", "csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["params"]) for r in table] == [156, 2416, 48120, 10164, 850, 61706]


def test_rf_table_marks_phase_dependent_sizes_as_analyze_does(capsys, tmp_path):
    """A stride-2 transposed conv after a stride-2 conv: its units' reach depends on the
    phase, so the recurrence's 3 + 2 = 5 is marked "~" in both tables."""
    path = tmp_path / "updown.json"
    path.write_text(
        json.dumps(
            {
                "input": [1, 32],
                "layers": [
                    {
                        "name": "down",
                        "kind": "conv",
                        "out_channels": 1,
                        "kernel_size": 3,
                        "stride": 2,
                    },
                    {
                        "name": "up",
                        "kind": "conv",
                        "out_channels": 1,
                        "kernel_size": 3,
                        "stride": 2,
                        "transposed": True,
                    },
                ],
            }
        )
    )
    code, out, _ = run(capsys, "rf", str(path), "--format", "csv")
    sizes = {row["node"]: row["RF size"] for row in csv.DictReader(io.StringIO(out))}
    assert code == 0 and (sizes["down"], sizes["up"]) == ("3", "~5")
    code, out, _ = run(capsys, "analyze", str(path), "--format", "csv")
    fields = {row["node"]: row["RF"] for row in csv.DictReader(io.StringIO(out))}
    assert code == 0 and (fields["down"], fields["up"]) == ("3/2", "~5/1")


def test_rf_of_a_model_takes_in_as_its_input_shape(capsys):
    """``--in`` with a model (and no kernel) is the model's input, as ``--input``:
    resnet18 divides 32 by 32 (stride 2 five times) into a 1x1 feature map."""
    code, by_in, err = run(capsys, "rf", "resnet18", "--in", "3x32x32", "--node", "features")
    assert code == 0, err
    code, by_input, _ = run(capsys, "rf", "resnet18", "--input", "3x32x32", "--node", "features")
    assert code == 0 and by_in == by_input and "512x1x1" in by_in
    code, _, err = run(capsys, "rf", "resnet18", "--in", "3x32x32", "--input", "3x64x64")
    assert code == 2 and "--in and --input" in err


def test_a_cycle_in_a_graph_file_exits_2_naming_the_cycle(capsys, tmp_path):
    path = tmp_path / "cycle.json"
    path.write_text(
        json.dumps(
            {
                "input": [1, 8, 8],
                "layers": [
                    {
                        "name": "a",
                        "kind": "conv",
                        "out_channels": 1,
                        "kernel_size": 3,
                        "inputs": ["b"],
                    },
                    {"name": "b", "kind": "relu", "inputs": ["a"]},
                ],
            }
        )
    )
    code, _, err = run(capsys, "analyze", str(path))
    assert code == 2 and "cycle through" in err and "not in the graph" not in err
