"""Sphinx configuration: the convalgebra reference (numpydoc, pydata theme), built offline."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
numpydoc_validation_checks: set[str] = set()

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
