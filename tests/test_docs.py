"""The reference site: every public name has a page, and ``sphinx-build -W`` passes offline.

Build by hand: ``pip install '.[docs]'`` then ``python -m sphinx -W -b html docs docs/_build``.
"""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import convalgebra as ca

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_api_page_lists_every_public_name_once():
    listed = re.findall(r"^   (\w+)$", (DOCS / "api.rst").read_text(encoding="utf-8"), re.M)
    assert sorted(listed) == sorted(ca.__all__)


def test_every_public_name_passes_the_numpydoc_checks_the_site_enforces():
    validate = pytest.importorskip(
        "numpydoc.validate", reason="numpydoc is not installed: pip install '.[docs]'"
    )
    conf = runpy.run_path(str(DOCS / "conf.py"))
    checks = conf["numpydoc_validation_checks"]
    # documented parameters and returns, a summary, runnable examples: at least these
    assert {"GL08", "SS01", "PR01", "PR07", "RT01", "EX01"} <= checks
    # methods and attributes are excluded; every public name itself is held to the checks
    excluded = [re.compile(p) for p in conf["numpydoc_validation_exclude"]]
    assert not any(p.search(f"convalgebra.{name}") for p in excluded for name in ca.__all__)
    assert all(p.search("convalgebra.LayerGraph.add") for p in excluded)
    failures = [
        f"{name} {code}: {message}"
        for name in ca.__all__
        for code, message in validate.validate(f"convalgebra.{name}")["errors"]
        if code in checks
    ]
    assert failures == []


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    for module in ("sphinx", "numpydoc", "pydata_sphinx_theme", "myst_parser", "sphinx_gallery"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install '.[docs]'")
    out = tmp_path / "html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    for name in ca.__all__:
        page = out / "generated" / f"convalgebra.{name}.html"
        assert page.is_file(), name
    tour = (out / "readme.html").read_text(encoding="utf-8")
    assert "A tour" in tour and "The matrix a layer is" in tour
    # the gallery: every script of examples/ ran, with its figures; the benchmarks never run
    gallery = out / "auto_examples"
    scripts = sorted(p.stem for p in (DOCS.parent / "examples").glob("*.py"))
    assert sorted(p.stem for p in gallery.glob("*.html") if p.stem != "index") == scripts
    assert not list(out.rglob("bench_*"))
    figures = {
        "draw_pictures": 5,
        "receptive_field": 3,
        "analyze_network": 1,
        "inspect_matrix": 1,
    }
    for stem, count in figures.items():
        page = (gallery / f"{stem}.html").read_text(encoding="utf-8")
        shown = re.findall(rf'<img src="../_images/sphx_glr_{stem}_\d+\.png"', page)
        assert len(shown) == count, stem
    for image in (out / "_images").glob("sphx_glr_*.png"):
        assert image.stat().st_size > 5_000, image.name
    # nothing the pages load comes from elsewhere (links out are fine)
    pages = [p.read_text(encoding="utf-8") for p in out.rglob("*.html")]
    assert not any(re.search(r'<(?:script|img|link)[^>]+(?:src|href)="https?:', p) for p in pages)
