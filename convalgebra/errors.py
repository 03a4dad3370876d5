"""The exception family of convalgebra."""

from __future__ import annotations

__all__ = ["ConvAlgebraError", "GraphCycleError", "MissingExtraError"]


class ConvAlgebraError(ValueError):
    """A configuration or an argument that convalgebra cannot accept.

    Messages say what was expected and what was received, e.g.
    ``"groups=3 does not divide in_channels=4"``.
    """


class GraphCycleError(ConvAlgebraError):
    """A layer graph that contains a cycle (data flow must be acyclic)."""


class MissingExtraError(ImportError):
    """An optional dependency is needed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency, or raise a message naming the extra.

    Examples
    --------
    >>> require("math", "none").sqrt(4.0)
    2.0
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f"{module} is needed for this feature: pip install 'convalgebra[{extra}]'"
        ) from exc
