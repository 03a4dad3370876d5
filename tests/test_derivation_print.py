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
from convalgebra.render.formats import PACKAGES

HERE = Path(__file__).resolve().parent.parent / "examples" / "derivations"
sys.path.insert(0, str(HERE))

from seeds import EXTRAS, SEEDS, filename  # noqa: E402

#: The held-out cases of issue 14 beside the seeds: grouped, padded, transposed, dilated layers.
HELD_OUT = {
    "grouped-backward": lambda: ca.derive(
        "backward", ca.ConvSpec((2, 4, 4), 2, 2, groups=2, bias=False)
    ),
    "padded-backward": lambda: ca.derive(
        "backward", ca.ConvSpec((1, 4, 4), 1, 3, padding=1, bias=False)
    ),
    "transposed-matrix": lambda: ca.derive(
        "matrix", ca.ConvSpec((1, 3), 1, 3, stride=2, transposed=True)
    ),
    "dilated-strided-1d": lambda: ca.derive(
        "backward", ca.ConvSpec((1, 9), 1, 3, stride=2, dilation=2)
    ),
    "reflect-flip-forward": lambda: ca.derive(
        "forward", ca.ConvSpec((2, 5), 2, 3, padding=1, padding_mode="reflect", flip=True)
    ),
}


def _overfull(tmp_path: Path, name: str, body: str) -> list[str]:
    (tmp_path / f"{name}.tex").write_text(
        f"{PREAMBLE}\n\\begin{{document}}\n{body}\\end{{document}}\n", "utf-8"
    )
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    log = (tmp_path / f"{name}.log").read_text("latin-1")
    lines = (tmp_path / f"{name}.tex").read_text("utf-8").splitlines()
    found = []
    for m in re.finditer(
        r"Overfull \\hbox \((\d+\.?\d*)pt too wide\)[^\n]*?(\d+)(?:--\d+)?\n", log
    ):
        if float(m.group(1)) > 1.0:
            before = lines[: int(m.group(2))]
            section = next(
                (t for t in reversed(before) if t.startswith(("\\section", "\\paragraph"))), ""
            )
            found.append(f"{m.group(0).strip()} in {section[:80]}")
    return found


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_golden_latex_has_no_overfull_line(tmp_path):
    """All goldens in one document (one pdflatex run); a failure names the section it is in."""
    body = "\n".join(builder().to_latex() for _, _, builder in SEEDS + EXTRAS)
    assert _overfull(tmp_path, "goldens", body) == []


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_held_out_latex_has_no_overfull_line(tmp_path):
    body = "\n".join(HELD_OUT[name]().to_latex() for name in sorted(HELD_OUT))
    assert _overfull(tmp_path, "held_out", body) == []


def _outside_math(markdown: str) -> str:
    text = re.sub(r"^\$\$\n.*?\n\$\$$", "", markdown, flags=re.S | re.M)
    return re.sub(r"\$[^$\n]+\$", "", text)


_MATH = re.compile(r"\\[A-Za-z]+|_\{|\^\{|\$|[^\x00-\x7f…—–’“”]")


@pytest.mark.parametrize(
    "number, slug", [(n, s) for n, s, _ in SEEDS + EXTRAS], ids=[s for _, s, _ in SEEDS + EXTRAS]
)
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
        f"{filename(number, slug)} is stale: run python examples/derivations/generate.py"
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_overfull_check_finds_a_line_that_runs_off_the_page(tmp_path):
    found = _overfull(tmp_path, "bad", "\\section*{Too wide}\n\\mbox{" + "w" * 120 + "}\n")
    assert found and "Too wide" in found[0]


def _compile(tmp_path: Path, name: str, source: str) -> str:
    """pdflatex ``source``; the log's error lines ("" when it compiled cleanly)."""
    (tmp_path / f"{name}.tex").write_text(source, "utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", f"{name}.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (tmp_path / f"{name}.log").read_text("latin-1")
    errors = "\n".join(line for line in log.splitlines() if line.startswith("!"))
    return errors or ("" if run.returncode == 0 else run.stdout[-2000:])


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_fragments_compile_in_a_plain_article(tmp_path):
    """Every golden and held-out derivation as a fragment, in an article that loads only the
    packages the renderer lists (no MaxMatrixCols, no allowdisplaybreaks in the preamble)."""
    builders = [b for _, _, b in SEEDS + EXTRAS] + [HELD_OUT[n] for n in sorted(HELD_OUT)]
    body = "\n".join(build().to_latex() for build in builders)
    source = (
        "\\documentclass{article}\n"
        + "".join(f"\\usepackage{{{p}}}\n" for p in PACKAGES)
        + "\\begin{document}\n"
        + body
        + "\\end{document}\n"
    )
    assert _compile(tmp_path, "fragments", source) == ""


@pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("pandoc") is None,
    reason="pdflatex or pandoc is not installed",
)
@pytest.mark.parametrize(
    "number, slug", [(n, s) for n, s, _ in SEEDS + EXTRAS], ids=[s for _, s, _ in SEEDS + EXTRAS]
)
def test_golden_markdown_converts_with_pandoc_and_compiles(tmp_path, number, slug):
    latex = subprocess.run(
        ["pandoc", "-s", "-f", "markdown", "-t", "latex", str(HERE / filename(number, slug))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert _compile(tmp_path, slug, latex) == ""
