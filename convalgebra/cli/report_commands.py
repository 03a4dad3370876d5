"""``convalgebra report``: the interactive HTML report of a network, one offline file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Result, check_suffix, library_module, load_model, model_names

__all__ = ["report"]


def _default_output(model: str) -> Path:
    """``resnet18`` -> ``resnet18.html``; ``nets/my.py:make(3)`` -> ``make.html``."""
    name = model.rsplit(":", 1)[-1].split("(")[0] if ":" in model else Path(model).stem
    return Path(f"{name or 'report'}.html")


def report(ns: argparse.Namespace) -> Result:
    """Write the report of ``ns.model`` (a zoo name, graph file or PyTorch model)."""
    if getattr(ns, "list", False):
        return Result("\n".join(model_names()))
    model = ns.model or "resnet18"
    output = ns.output if ns.output is not None else _default_output(model)
    check_suffix(output, (".html", ".htm"), "-o")
    graph = load_model(model, ns.input)
    htmlreport = library_module("network.htmlreport", "report")
    page = htmlreport.graph_html(
        graph, name=model, max_units=ns.max_units, max_field_entries=ns.max_field_entries
    )
    summary = graph.summary()
    text = (
        f"wrote {output}: {len(graph)} nodes, {summary['params']:,} parameters, "
        f"{summary['macs']:,} MACs; open it in a browser (it loads nothing from the network)"
    )
    return Result(text, {output: page.encode("utf-8")})
