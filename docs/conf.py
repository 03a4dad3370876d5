"""Sphinx configuration: the convalgebra reference (numpydoc, pydata theme), built offline."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gallery_scraper

import convalgebra  # noqa: E402

project = "convalgebra"
author = "the convalgebra developers"
copyright = "the convalgebra developers"
release = convalgebra.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
# the README links to files of the repository, which the site does not hold: plain links
myst_all_links_external = True

autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# every public name (convalgebra.NAME) in numpydoc form with a runnable example: a docstring
# (GL08) with a summary (SS01), every parameter documented (PR01), none unknown (PR02), in
# order (PR03), typed (PR04) and described (PR07), a described Returns section (RT01, RT03),
# sections in numpydoc's order (GL07), an Examples section (EX01; pytest runs them). A
# warning under -W, so it cannot regress. Methods and attributes are not held to it.
numpydoc_validation_checks = {
    "GL07",
    "GL08",
    "SS01",
    "PR01",
    "PR02",
    "PR03",
    "PR04",
    "PR07",
    "RT01",
    "RT03",
    "EX01",
}
numpydoc_validation_exclude = {r"^convalgebra\.\w+\.\w+$"}

# the gallery: the scripts of examples/ run at build time (not its subfolders: the seed
# derivations' builders and the benchmarks have no gallery header, so they never run here)
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",
    "ignore_pattern": r"(__init__|bench_\w+)\.py$",
    "image_scrapers": ("matplotlib", "gallery_scraper.library_figures"),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    # the timing pages load scripts from CDNs: the site loads nothing from elsewhere
    "write_computation_times": False,
    "binder": {},
    "jupyterlite": None,
}

templates_path: list[str] = []
exclude_patterns = ["_build", "generated/*.orig"]
html_theme = "pydata_sphinx_theme"
html_title = f"convalgebra {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    # no external resources at build time
    "icon_links": [],
}
html_static_path: list[str] = []
# the build reaches no network: no intersphinx, no remote images
nitpicky = False
