"""Every script under examples/ runs, prints what it promises and writes what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_tested():
    tested = {
        "inspect_matrix.py",
        "verify_identity.py",
        "analyze_network.py",
        "generate_derivation.py",
        "compute_gradients.py",
        "draw_pictures.py",
        "prove_identity.py",
        "receptive_field.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_inspect_matrix(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    out = run_example("inspect_matrix.py", "--plot", "m.png", cwd=tmp_path)
    assert "structure: doubly block circulant" in out
    assert "correlate2d(..., boundary='wrap'): True" in out
    assert "with zero padding instead: doubly block Toeplitz" in out
    assert (tmp_path / "m.png").stat().st_size > 10_000


def test_verify_identity(tmp_path):
    out = run_example("verify_identity.py", cwd=tmp_path).splitlines()
    assert out[0].startswith("translation_equivariance: HOLDS")
    assert out[1].startswith("translation_equivariance: FAILS")
    assert "fails at 12 output positions" in out[2]
    assert "[[[[c1, c2, c1], [c2, c3, c2], [c1, c2, c1]]]]" in out[6]
    assert out[-1].strip() == "numeric check on a random image: True"


def test_analyze_network(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    out = run_example("analyze_network.py", "--plot", "g.png", cwd=tmp_path)
    assert "resnet18: 11,689,512 parameters, 1,814,073,344 MACs" in out
    assert "features       output (512, 7, 7), receptive field 435 (jump 32)" in out
    assert "total                        31,066" in out  # 336 conv + 30,730 fc
    assert (tmp_path / "g.png").exists()


def test_generate_derivation(tmp_path):
    out = run_example("generate_derivation.py", "--latex", "b.tex", cwd=tmp_path)
    assert re.search(r"^\s*O_1 = floor\(\(5 - 3 \+ 2\*0\)/2\) \+ 1 = .*= 2$", out, re.M)
    assert "w_{4} a_{6}" in out  # the slides' typo "w4 a4" does not survive
    tex = (tmp_path / "b.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")


def test_compute_gradients(tmp_path):
    pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")
    out = run_example("compute_gradients.py", cwd=tmp_path)
    assert "equal to torch.autograd: True" in out
    assert "Eq(dL/da13, dL/dz1*w9 + dL/dz2*w7 + dL/dz3*w3 + dL/dz4*w1)" in out


def test_draw_pictures(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    from test_plot import assert_real_png

    out = run_example("draw_pictures.py", "pics", cwd=tmp_path)
    names = sorted(p.name for p in (tmp_path / "pics").iterdir())
    assert names == [
        "matrix_circulant.png",
        "matrix_reflect.png",
        "rf_growth.png",
        "rf_unit.png",
        "rf_unit_resnet18.png",
    ]
    assert out.count("wrote") == 5
    for name in names:
        assert_real_png((tmp_path / "pics" / name).read_bytes())


def test_prove_identity(tmp_path):
    out = run_example("prove_identity.py", cwd=tmp_path)
    assert out.startswith("Identity HOLDS")
    assert "the identity holds for every n ≥ 5" in out
    assert (
        "holds: False; the sides agree for n >= 3 and n odd; they differ for n >= 4 and n even"
        in out
    )
    assert "smallest counterexample: at size 4, with x = [[1, 0, 0, 0]]" in out
    assert out.rstrip().endswith("at n = 4: left [1], right [0]")


def test_receptive_field_example(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    from test_plot import assert_real_png

    out = run_example("receptive_field.py", "--plot", "pics", cwd=tmp_path)
    assert "features     (512, 7, 7)      size 212  jump 32  start 15.5" in out
    assert "unit (0, 0) of 'features' reads rows/cols ((0, 121), (0, 121)) of the image" in out
    assert "theoretical box ((6, 217), (6, 217))" in out
    names = sorted(p.name for p in (tmp_path / "pics").iterdir())
    assert names == ["vgg16_effective.png", "vgg16_rf_growth.png", "vgg16_unit.png"]
    for name in names:
        assert_real_png((tmp_path / "pics" / name).read_bytes())


def test_the_gallery_scripts_write_nothing_without_arguments(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the [plot] extra is not installed: pip install '.[test]'"
    )
    for name in ("draw_pictures.py", "receptive_field.py", "inspect_matrix.py"):
        run_example(name, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
