"""Print-ready derivations: every golden compiles with pdflatex without an overfull line, and
its Markdown holds no mathematics outside ``$…$``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import convalgebra as ca
from convalgebra.render import PREAMBLE

HERE = Path(__file__).resolve().parent.parent / "examples" / "derivations"
sys.path.insert(0, str(HERE))

from seeds import EXTRAS, SEEDS, filename  # noqa: E402

#: The held-out cases of issue 14 beside the seeds: grouped, padded, transposed, dilated layers.
HELD_OUT = {
    "grouped-backward": lambda: ca.derive("backward", ca.ConvSpec((2, 4, 4), 2, 2, groups=2, bias=False)),
    "padded-backward": lambda: ca.derive("backward", ca.ConvSpec((1, 4, 4), 1, 3, padding=1, bias=False)),
    "transposed-matrix": lambda: ca.derive("matrix", ca.ConvSpec((1, 3), 1, 3, stride=2, transposed=True)),
    "dilated-strided-1d": lambda: ca.derive("backward", ca.ConvSpec((1, 9), 1, 3, stride=2, dilation=2)),
    "reflect-flip-forward": lambda: ca.derive("forward", ca.ConvSpec((2, 5), 2, 3, padding=1,
                                                                     padding_mode="reflect", flip=True)),
}


def _overfull(tmp_path: Path, name: str, body: str) -> list[str]:
    (tmp_path / f"{name}.tex").write_text(f"{PREAMBLE}\n\\begin{{document}}\n{body}\\end{{document}}\n", "utf-8")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    log = (tmp_path / f"{name}.log").read_text("latin-1")
    return [m.group(0) for m in re.finditer(r"Overfull \\hbox \((\d+\.?\d*)pt too wide\)[^\n]*", log)
            if float(m.group(1)) > 1.0]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize("number", [n for n, _, _ in SEEDS + EXTRAS], ids=[s for _, s, _ in SEEDS + EXTRAS])
def test_golden_latex_has_no_overfull_line(tmp_path, number):
    _, slug, builder = next(s for s in SEEDS + EXTRAS if s[0] == number)
    assert _overfull(tmp_path, slug, builder().to_latex()) == []


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize("name", sorted(HELD_OUT))
def test_held_out_latex_has_no_overfull_line(tmp_path, name):
    assert _overfull(tmp_path, name, HELD_OUT[name]().to_latex()) == []


def _outside_math(markdown: str) -> str:
    text = re.sub(r"^\$\$\n.*?\n\$\$$", "", markdown, flags=re.S | re.M)
    return re.sub(r"\$[^$\n]+\$", "", text)


_MATH = re.compile(r"\\[A-Za-z]+|_\{|\^\{|\$|[^\x00-\x7f…—–’“”]")


@pytest.mark.parametrize("number, slug", [(n, s) for n, s, _ in SEEDS + EXTRAS], ids=[s for _, s, _ in SEEDS + EXTRAS])
def test_golden_markdown_has_no_math_outside_dollars(number, slug):
    stray = _MATH.findall(_outside_math((HERE / filename(number, slug)).read_text("utf-8")))
    assert stray == []


@pytest.mark.parametrize("name", sorted(HELD_OUT))
def test_held_out_markdown_has_no_math_outside_dollars(name):
    assert _MATH.findall(_outside_math(HELD_OUT[name]().to_markdown())) == []


def test_the_check_finds_stray_math():
    assert _MATH.findall(_outside_math("a $x$ and \\ast and λ")) == ["\\ast", "λ"]


@pytest.mark.parametrize("number, slug, builder", EXTRAS, ids=[s for _, s, _ in EXTRAS])
def test_new_kind_goldens_are_up_to_date_and_verify(number, slug, builder):
    d = builder()
    assert d.verify() > 0
    assert (HERE / filename(number, slug)).read_text("utf-8") == d.to_markdown(), (
        f"{filename(number, slug)} is stale: run python examples/derivations/generate.py")
