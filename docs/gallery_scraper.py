"""Show the library's figures in the gallery.

convalgebra draws with matplotlib's object-oriented API on the Agg canvas, never through
pyplot, so sphinx-gallery's matplotlib scraper (which reads pyplot's open figures) does not
see them. This scraper picks up every figure an example holds in a top-level name (directly,
or inside a dict, list or tuple) after each code block, once.
"""

from __future__ import annotations

from typing import Any

from sphinx_gallery.scrapers import figure_rst

_SHOWN = "_gallery_shown"


def _figures(value: Any, depth: int = 0) -> list[Any]:
    from matplotlib.figure import Figure

    if isinstance(value, Figure):
        return [value]
    if depth < 2 and isinstance(value, dict):
        value = list(value.values())
    if depth < 2 and isinstance(value, (list, tuple)):
        return [fig for item in value for fig in _figures(item, depth + 1)]
    return []


def library_figures(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
    """Save the example's new pyplot-free figures and return their reST."""
    found = []
    for value in list(block_vars["example_globals"].values()):
        for fig in _figures(value):
            # pyplot's figures are the matplotlib scraper's
            if getattr(fig.canvas, "manager", None) is None and not getattr(fig, _SHOWN, False):
                if all(fig is not other for other in found):
                    found.append(fig)
    paths = []
    for fig, path in zip(found, block_vars["image_path_iterator"]):
        fig.savefig(path, dpi=100)
        setattr(fig, _SHOWN, True)
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
