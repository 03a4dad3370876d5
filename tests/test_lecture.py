"""The whole-network lecture: every printed number read back against the graph's own
computations, every zoo model, the command line, and the printed PDF (pdflatex, pdftotext).
The comparison with PyTorch is tests/test_lecture_torch.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import convalgebra as ca
from convalgebra.cli import main
from convalgebra.derivations.lecture import lecture_meaning
from convalgebra.derivations.verify import RoundTripError
from convalgebra.network import zoo
from convalgebra.network.tabulate import folded_name, layer_rows


@pytest.fixture(scope="module")
def resnet18():
    return zoo.get("resnet18")


def test_resnet18_lecture_verifies_on_the_graph(resnet18):
    d = ca.derive("lecture", resnet18)
    assert d.verify() > 300
    assert d.result == {"params": 11_689_512, "macs": 1_814_073_344, "layers": 32}


def test_a_graph_alone_derives_its_lecture(resnet18):
    assert ca.derive(resnet18).to_text() == ca.derive("lecture", resnet18).to_text()


def test_the_table_lists_layers_with_batch_norm_and_relu_folded(resnet18):
    text = ca.derive("lecture", resnet18).to_text()
    assert "conv1 + BN + ReLU" in text and "layer1.0.add + ReLU" in text
    assert "layer2.0.downsample.0 + BN" in text
    rows = layer_rows(resnet18)
    assert len(rows) == 33  # the input and 32 layers, from 70 nodes
    assert not any(resnet18.layer(r.lead).kind == "batch_norm" for r in rows)


def test_recurrences_print_formula_numbers_and_value(resnet18):
    lines = [line.strip() for line in ca.derive("lecture", resnet18).to_text().splitlines()]
    assert (
        "n_1 = floor((n_0 - k_1 + 2*p_1)/s_1) + 1 = floor((224 - 7 + 2*3)/2) + 1 = floor(223/2) + 1 = 112"
        in lines
    )
    assert "r_2 = r_1 + (k_2 - 1)*j_1 = 7 + (3 - 1)*2 = 11" in lines
    assert "j_2 = j_1*s_2 = 2*2 = 4" in lines
    assert "P_1 = 64*3*7*7 + 2*64 = 9,536" in lines
    assert "MACs_1 = 64*112*112*3*7*7 = 118,013,952" in lines
    # the residual merge: the main path's field and the shortcut's share their centre
    assert "r_5 = Max(r_4, r_2) = Max(27, 11) = 27" in lines


@pytest.mark.parametrize("key", ["P_3", "n_2", "r_4", "j_9", "MACs_1", "shape_7", "P"])
def test_a_wrong_number_does_not_verify(resnet18, key):
    d = ca.derive("lecture", resnet18)
    meaning = lecture_meaning(resnet18)
    value = meaning[key]
    meaning[key] = tuple(v + 1 for v in value) if isinstance(value, tuple) else value + 1
    with pytest.raises(RoundTripError):
        d.verify(meaning)


def test_a_wrong_table_cell_does_not_verify(resnet18):
    """The summary table is read back too: a row whose field differs fails."""
    d = ca.derive("lecture", resnet18)
    meaning = lecture_meaning(resnet18)
    meaning["r_31"] = 5  # flatten's field is global; only the table prints it
    with pytest.raises(RoundTripError, match="table row 31"):
        d.verify(meaning)


def test_non_square_input_prints_each_axis():
    g = zoo.get("resnet18", (3, 64, 96))
    d = ca.derive("lecture", g)
    assert d.verify() > 0
    lines = [line.strip() for line in d.to_text().splitlines()]
    assert (
        "n_1,1 = floor((n_0,1 - k_1,1 + 2*p_1,1)/s_1,1) + 1 = floor((64 - 7 + 2*3)/2) + 1 "
        "= floor(63/2) + 1 = 32"
    ) in lines
    assert any(line.startswith("n_1,2 = ") and line.endswith(" = 48") for line in lines)


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_model_lecture_verifies(name):
    assert ca.derive("lecture", zoo.get(name)).verify() > 0


def test_lecture_refuses_what_is_not_a_network():
    with pytest.raises(ca.ConvAlgebraError, match="LayerGraph"):
        ca.derive("lecture", ca.ConvSpec((1, 8, 8), 1, 3))


def test_cli_lecture_writes_latex(tmp_path):
    out = tmp_path / "lenet.tex"
    code = main(
        [
            "derive",
            "lecture",
            "--model",
            "lenet5",
            "--format",
            "latex",
            "--standalone",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    source = out.read_text("utf-8")
    assert "\\usepackage{tikz}" in source and "\\begin{tikzpicture}" in source


def test_cli_lecture_markdown_has_the_drawing(capsys):
    assert main(["derive", "lecture", "--model", "lenet5", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "```" in out and "| 6 | fc1 + sigmoid |" in out


def test_cli_lecture_needs_a_model(capsys):
    assert main(["derive", "lecture", "--in", "1x8x8", "-k", "3"]) == 2
    assert "LayerGraph" in capsys.readouterr().err


# ------------------------------------------------------------------- printed PDF
_MISSING = [
    (tool, package)
    for tool, package in (("pdflatex", "texlive-latex-base"), ("pdftotext", "poppler-utils"))
    if shutil.which(tool) is None
]


def _pdf_text(tmp_path: Path, name: str, source: str) -> tuple[str, str]:
    """Compile ``source`` with pdflatex; (the PDF's text, the log)."""
    (tmp_path / f"{name}.tex").write_text(source, "utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    text = subprocess.run(
        ["pdftotext", "-layout", f"{name}.pdf", "-"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return text, (tmp_path / f"{name}.log").read_text("latin-1")


def _overfull(log: str) -> list[str]:
    import re

    return [
        m.group(0)
        for m in re.finditer(r"Overfull \\hbox \((\d+\.?\d*)pt too wide\)", log)
        if float(m.group(1)) > 1.0
    ]


@pytest.mark.skipif(
    bool(_MISSING),
    reason="needs " + ", ".join(f"{t} (Debian package {p})" for t, p in _MISSING) + " to print",
)
@pytest.mark.parametrize("kind", ["lecture", "params", "receptive_field", "cost"])
def test_resnet18_pdf_holds_every_layer_row(tmp_path, resnet18, kind):
    """pdflatex then pdftotext: every layer of the table is in the PDF's text, no line
    runs off the page (a longtable breaks across pages)."""
    text, log = _pdf_text(tmp_path, kind, ca.derive(kind, resnet18).to_latex(standalone=True))
    assert _overfull(log) == []
    # the table only (the lecture's steps name every layer too)
    words = text[max(text.rfind("Summary"), 0) :].split()
    for row in layer_rows(resnet18)[1:]:
        name = folded_name(resnet18, row)
        assert _in_order(words, name.split()), name
    if kind == "lecture":
        pages = int(log.split("Output written on")[1].split("(")[1].split(" page")[0])
        print(f"\nresnet18 lecture: {pages} pages")
        assert 0 < pages <= 12


def _in_order(words: list[str], wanted: list[str], reach: int = 40) -> bool:
    """``wanted`` occurs in ``words`` in order, its first word exactly and the others within
    ``reach`` words (a cell that wraps interleaves with the other columns of its row)."""
    for start, word in enumerate(words):
        if word != wanted[0]:
            continue
        k = 1
        for other in words[start + 1 : start + reach]:
            if k < len(wanted) and other == wanted[k]:
                k += 1
        if k == len(wanted):
            return True
    return False


def test_the_order_check_finds_a_missing_row():
    assert _in_order("a x conv1 + BN y + ReLU".split(), "conv1 + BN + ReLU".split())
    assert not _in_order("a conv1 + BN".split(), "conv1 + BN + ReLU".split())
    assert not _in_order("conv10 + BN + ReLU".split(), "conv1 + BN + ReLU".split())
