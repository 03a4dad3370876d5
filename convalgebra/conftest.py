"""Doctests of modules that need an optional extra are skipped when that extra is missing."""

from __future__ import annotations

import importlib.util

_NEEDS = {
    "plot.py": "matplotlib",
    "interop/torch": "torch",
    "interop/trace_ops.py": "torch",
    "interop/trace_handlers.py": "torch",
    "interop/__init__.py": "torchvision",
    "lipschitz.py": "torch",
}

collect_ignore = [path for path, extra in _NEEDS.items() if importlib.util.find_spec(extra) is None]
