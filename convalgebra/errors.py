"""The exception family of convalgebra."""

from __future__ import annotations

__all__ = ["ConvAlgebraError", "GraphCycleError", "MissingExtraError", "shown", "SHOWN_CHARS"]

#: Longest rendering of a user value inside an error message.
SHOWN_CHARS = 200


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


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters.

    Messages name the value they refuse; a huge value (a YAML alias bomb, a long list) is cut
    in the middle so that the message stays one short line. Containers are not rendered whole
    first: numpy arrays print a summary, other objects are cut after ``repr``.

    Examples
    --------
    >>> shown([1, 2])
    '[1, 2]'
    >>> shown(list(range(10**4)))
    'list of 10,000 items: [0, 1, 2, 3, 4, 5, 6, 7, ...]'
    >>> len(shown("x" * 10**6))
    200
    """
    if isinstance(value, (list, tuple, dict, set)) and _too_big(value, limit):
        text = f"{type(value).__name__} of {len(value):,} items: " + _head(value, limit)
    else:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
            text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    if len(text) > limit:
        half = (limit - 5) // 2
        text = f"{text[:half]} ... {text[len(text) - (limit - 5 - half) :]}"
    return text


def _too_big(value, limit: int) -> bool:
    """True when a container holds more than ``limit`` leaves (counted without rendering)."""
    seen, stack = 0, [value]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, (list, tuple, set)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


def _head(value, limit: int) -> str:
    """The first items of a big container, each itself shortened."""
    items = list(value.values() if isinstance(value, dict) else value)[:8]
    return "[" + ", ".join(_leaf(v, limit // 8) for v in items) + ", ...]"


def _leaf(value, limit: int) -> str:
    """One item of a big container: a scalar's repr, or a nested container's type and size."""
    if isinstance(value, (list, tuple, dict, set)):
        return f"<{type(value).__name__} of {len(value):,}>"
    return shown(value, max(limit, 10))
