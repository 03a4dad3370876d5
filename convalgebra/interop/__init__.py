"""Bridges to other frameworks (optional dependencies, imported lazily)."""

from __future__ import annotations

__all__: list[str] = []
