"""Printers for derivations; they live in :mod:`convalgebra.render.formats` (re-exported here)."""

from __future__ import annotations

from ..render.formats import PREAMBLE, to_latex, to_markdown, to_text

__all__ = ["to_latex", "to_markdown", "to_text", "PREAMBLE"]
