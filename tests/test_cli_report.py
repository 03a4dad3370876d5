"""``convalgebra report``: the HTML report from the command line."""

from __future__ import annotations

import json
import re

import pytest

import convalgebra as ca
from convalgebra.cli import main
from convalgebra.network import zoo
from convalgebra.network.htmlreport import report_data

MODEL_PY = """
import torch.nn as nn


def make(width=2):
    return nn.Sequential(nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(width, width, 3, dilation=2))
"""


def _data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_report_writes_the_page_of_a_zoo_model(tmp_path, capsys):
    out = tmp_path / "net.html"
    assert main(["report", "lenet5", "-o", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    g = zoo.lenet5()
    assert stdout.startswith(f"wrote {out}: 13 nodes, {ca.param_count(g):,} parameters")
    assert stderr == ""
    assert _data(out.read_text(encoding="utf-8")) == json.loads(
        json.dumps(report_data(g, name="lenet5"))
    )


def test_report_takes_another_input_shape(tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", "resnet18", "--in", "3x64x64", "-o", str(out)]) == 0
    data = _data(out.read_text(encoding="utf-8"))
    assert data["input"] == [3, 64, 64]
    node = {n["node"]: n for n in data["nodes"]}["layer1.0.conv1"]
    g = zoo.resnet18((3, 64, 64))
    unit = ca.unit_receptive_field(g, "layer1.0.conv1", (3, 5))
    assert [node["boxes"][0][3], node["boxes"][1][5]] == [list(b) for b in unit.box]


def test_report_of_a_python_model(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "small.py").write_text(MODEL_PY)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "small.py:make(3)", "--in", "1x16x16"]) == 0
    data = _data((tmp_path / "make.html").read_text(encoding="utf-8"))
    assert [n["output"] for n in data["nodes"]][-1] == "3x4x4"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "{tmp}/x.txt"], "-o must name a .html or .htm file"),
        (["-o", "{tmp}/old.html"], "exists (use --force"),
        (["-o", "{tmp}/dir.html", "--force"], "dir.html"),
        (["--max-units", "5", "-o", "{tmp}/y.html"], "more than max_units=5"),
        (["no_such_model", "-o", "{tmp}/z.html"], "no_such_model"),
    ],
    ids=["suffix", "exists", "folder", "budget", "unknown-model"],
)
def test_report_refuses_bad_input_with_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "old.html").write_text("keep me")
    (tmp_path / "dir.html").mkdir()
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0].startswith("-"):
        argv = ["lenet5", *argv]
    assert main(["report", *argv]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: ") and message in stderr
    assert (tmp_path / "old.html").read_text() == "keep me"


def test_report_force_replaces_a_page(tmp_path):
    out = tmp_path / "old.html"
    out.write_text("old")
    assert main(["report", "lenet5", "-o", str(out), "--force"]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_embeds_no_field_above_max_field_entries(tmp_path, capsys):
    out = tmp_path / "net.html"
    assert main(["report", "lenet5", "-o", str(out), "--max-field-entries", "5"]) == 0
    field = _data(out.read_text(encoding="utf-8"))["field"]
    assert list(field) == ["omitted"]
    assert "more than max_field_entries=5" in field["omitted"]
    capsys.readouterr()
