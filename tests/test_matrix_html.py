"""The HTML page of a layer's matrix (``conv_matrix_html``, ``matrix --html``): its triples
are PyTorch's, its budget refuses early, it loads nothing. The page in a browser:
test_matrix_html_browser.py."""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
from hypothesis import given, settings
from oracle import torch, torch_conv
from strategies import conv_specs

import convalgebra as ca
from convalgebra import ConvSpec
from convalgebra.cli import main
from convalgebra.report import conv_matrix_html, matrix_page_data


def _embedded(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def _torch_matrix(spec: ConvSpec, kernel: np.ndarray) -> np.ndarray:
    """PyTorch's dense matrix of the layer: column c is the layer applied to the one-hot e_c."""
    n_in = math.prod(spec.input_shape)
    inputs = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *spec.input_shape)
    weight = torch.tensor(np.asarray(kernel, dtype=np.float64))
    columns = torch.vmap(lambda x: torch_conv(spec, x, weight))(inputs)
    return columns.reshape(n_in, -1).T.numpy()


def _torch_triples(spec: ConvSpec) -> list[tuple[int, int, int]]:
    """(row, column, weight) wherever PyTorch's matrix of the one-hot kernel e_w is non-zero,
    each as many times as the entry counts (two taps of one weight on one input)."""
    n = math.prod(spec.weight_shape)
    found = []
    for w in range(n):
        dense = _torch_matrix(spec, np.eye(n)[w].reshape(spec.weight_shape))
        for r, c in np.argwhere(dense != 0):
            found += [(int(r), int(c), w)] * int(dense[r, c])
    return sorted(found)


@settings(max_examples=30, deadline=None)
@given(conv_specs(ndims=(1, 2), max_size=5, max_channels=2))
def test_embedded_triples_are_pytorchs_one_hot_matrices(spec):
    data = _embedded(conv_matrix_html(spec))
    embedded = list(zip(data["rows"], data["cols"], data["weights"]))
    assert embedded == _torch_triples(spec)
    kernel = np.arange(1, math.prod(spec.weight_shape) + 1).reshape(spec.weight_shape)
    dense = np.zeros(data["shape"])
    np.add.at(dense, (data["rows"], data["cols"]), kernel.ravel()[data["weights"]])
    assert np.array_equal(dense, _torch_matrix(spec, kernel))  # entries: sums of their weights
    assert data["shape"] == [math.prod(spec.output_shape), math.prod(spec.input_shape)]
    assert data["weight_shape"] == list(spec.weight_shape)


@settings(max_examples=15, deadline=None)
@given(
    conv_specs(
        ndims=(1, 2), transposed=True, modes=("zeros",), symmetric=True, max_size=4, max_channels=2
    )
)
def test_transposed_layers_are_in_the_layers_orientation(spec):
    data = matrix_page_data(spec)
    assert list(zip(data["rows"], data["cols"], data["weights"])) == _torch_triples(spec)


def test_the_page_loads_nothing_from_anywhere(tmp_path):
    page = conv_matrix_html(ConvSpec((2, 4, 4), 3, 3, padding=1), tmp_path / "m.html")
    assert (tmp_path / "m.html").read_text(encoding="utf-8") == page
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == ["data:,"]
    assert "default-src 'none'" in page and "fetch(" not in page and "url(" not in page


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_triples": 100}, r"would take 900 triples, more than max_triples=100; use a "),
        ({"max_cells": 1000}, r"the HTML grid of the 48 x 48 matrix .* 2,304 cells, more than"),
    ],
    ids=["triples", "cells"],
)
def test_the_budget_names_the_size_and_the_way_out(options, message):
    with pytest.raises(ca.ConvAlgebraError, match=message) as info:
        conv_matrix_html(ConvSpec((3, 4, 4), 3, 3, padding=1), **options)
    assert "use a smaller input" in str(info.value)


def test_a_large_layer_is_refused_in_milliseconds():
    started = time.perf_counter()
    with pytest.raises(ca.ConvAlgebraError, match="max_cells=4,194,304"):
        conv_matrix_html(ConvSpec((64, 224, 224), 64, 3, padding=1))
    assert time.perf_counter() - started < 0.5


def test_matrix_html_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "layer.html"
    argv = ["matrix", "--in", "2x5x5", "--out", "2", "-k", "3", "-p", "1", "--html"]
    assert main([*argv, "-o", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {out}")
    spec = ConvSpec((2, 5, 5), 2, 3, padding=1)
    assert out.read_text(encoding="utf-8") == conv_matrix_html(spec)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "m.html"], "-o names the page of --html; add --html"),
        (["--html", "-o", "m.png"], "-o must"),
        (["--in", "1x3000", "--html"], "max_cells"),
    ],
    ids=["o-without-html", "suffix", "budget"],
)
def test_matrix_html_bad_input_exits_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    layer = [] if "--in" in argv else ["--in", "1x4x4"]
    assert main(["matrix", *layer, "-k", "3", *argv]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("chromium", "no headless browser: apt-get install chromium chromium-driver"),
        ("selenium", "selenium is not installed: pip install 'convalgebra[browser]'"),
    ],
)
def test_the_browser_tests_skip_naming_what_is_missing(tmp_path, missing, reason):
    """Without chromium (or its driver) or selenium, the browser tests skip and say which."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVALGEBRA_CHROM")}
    if missing == "chromium":
        env["CONVALGEBRA_CHROMIUM"] = str(tmp_path / "no-chromium")
        env["CONVALGEBRA_CHROMEDRIVER"] = ""  # falls back to PATH, emptied of chromedriver
        env["PATH"] = str(Path(sys.executable).parent)
    else:  # a selenium that cannot be imported shadows the installed one
        (tmp_path / "selenium").mkdir()
        (tmp_path / "selenium" / "__init__.py").write_text("raise ImportError('absent')\n")
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    tests = Path(__file__).parent
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(tests / "test_matrix_html_browser.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tests.parent,
        timeout=300,
    )
    # a module skipped whole collects no test: pytest's exit code 5, not a failure (1)
    assert out.returncode == 5, out.stdout + out.stderr
    assert "skipped" in out.stdout and reason in out.stdout and "passed" not in out.stdout
