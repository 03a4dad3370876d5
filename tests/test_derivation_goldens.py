"""Golden files: the checked-in seed-example derivations are exactly what the library generates
now, every equation in them round-trips, and their LaTeX compiles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from seeds import SEEDS, filename

from convalgebra.derivations.render import PREAMBLE
from convalgebra.derivations.verify import verify

HERE = Path(__file__).resolve().parent.parent / "examples" / "derivations"

_CACHE: dict = {}


def _build(number: int):
    if number not in _CACHE:
        _, _, builder = next(s for s in SEEDS if s[0] == number)
        _CACHE[number] = builder()
    return _CACHE[number]


def test_every_seed_example_has_a_derivation():
    assert [s[0] for s in SEEDS] == list(range(1, 27))


@pytest.mark.parametrize(
    "number, slug", [(n, s) for n, s, _ in SEEDS], ids=[s for _, s, _ in SEEDS]
)
def test_golden_file_is_up_to_date(number, slug):
    path = HERE / filename(number, slug)
    assert path.exists(), f"{path.name} is missing: run python examples/derivations/generate.py"
    assert path.read_text(encoding="utf-8") == _build(number).to_markdown(), (
        f"{path.name} is stale: run python examples/derivations/generate.py and review the diff"
    )


@pytest.mark.parametrize("number", [n for n, _, _ in SEEDS], ids=[s for _, s, _ in SEEDS])
def test_golden_equations_round_trip(number):
    assert verify(_build(number)) > 0


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_all_seed_derivations_compile_as_one_document(tmp_path):
    body = "\n".join(_build(n).to_latex() for n, _, _ in SEEDS)
    (tmp_path / "seeds.tex").write_text(
        f"{PREAMBLE}\n\\begin{{document}}\n{body}\\end{{document}}\n", "utf-8"
    )
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "seeds.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.parametrize(
    "number, expected",
    [
        (1, ["floor(4/3) + 1 = 2", "7/3 ≈ 2.33", "(1-based): 7."]),
        (4, ["input sizes 7 (output_padding=0), 8 (output_padding=1) all give output size 3"]),
        (6, ["per filter = 5*5*3 + 1 = 76", "layer = 10*76 = 760"]),
        (
            8,
            [
                "MACs = 32*32*32*200*5*5 = 163,840,000",
                "MACs = 3,276,800 + 13,107,200 = 16,384,000",
                "parameters = 3,200 + 12,800 = 16,000",
            ],
        ),
        (9, ["parameters = 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706"]),
        (
            11,
            [
                "m*n = 89600*89320 = 8,003,072,000",
                "nnz(M) = 2*280*319 = 178,640",
                "flops = 89320*(2*2 - 1) = 267,960",
            ],
        ),
        (14, ["Z =\n        [4 3 4]\n        [2 4 3]\n        [2 3 4]"]),
        (15, ["Z =\n        [19 25]\n        [37 43]"]),
        (
            17,
            [
                "z1 = w1*a1 + w2*a2 + w3*a3 + w4*a6",
                "dL/da13 = w9*dL/dz1 + w7*dL/dz2 + w3*dL/dz3 + w1*dL/dz4",
            ],
        ),
    ],
    ids=lambda v: str(v)[:12],
)
def test_golden_values_from_the_course(number, expected):
    text = _build(number).to_text()
    for fragment in expected:
        assert fragment in text
