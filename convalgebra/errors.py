"""The exception family of convalgebra."""

from __future__ import annotations

__all__ = [
    "ConvAlgebraError",
    "GraphCycleError",
    "MissingExtraError",
    "shown",
    "printable",
    "missing_extra",
    "require",
    "EXTRAS",
    "SHOWN_CHARS",
]

#: Longest rendering of a user value inside an error message.
SHOWN_CHARS = 200


class ConvAlgebraError(ValueError):
    """A configuration or an argument that convalgebra cannot accept.

    Messages say what was expected and what was received, e.g.
    ``"groups=3 does not divide in_channels=4"``.

    Examples
    --------
    >>> import convalgebra as ca
    >>> try:
    ...     ca.ConvSpec((4, 8), 4, 3, groups=3)
    ... except ca.ConvAlgebraError as error:
    ...     print(error, isinstance(error, ValueError))
    groups=3 does not divide in_channels=4 True
    """


class GraphCycleError(ConvAlgebraError):
    """A layer graph that contains a cycle (data flow must be acyclic).

    Examples
    --------
    >>> from convalgebra import LayerGraph
    >>> from convalgebra.network.layers import Conv
    >>> cyclic = LayerGraph.sequential((1, 8), [Conv(1, 3, padding=1)]).nx.copy()
    >>> cyclic.add_edge("conv1", "input", port=0)
    >>> try:
    ...     LayerGraph.from_nx(cyclic)
    ... except GraphCycleError as error:
    ...     print(error)
    the graph has a cycle through ['input', 'conv1']
    """


class MissingExtraError(ImportError):
    """An optional dependency is needed; the message names the extra to install.

    An ``ImportError``, so ``except ImportError`` around an optional feature catches it.

    Examples
    --------
    >>> try:
    ...     require("convalgebra_no_such_module", "plot")
    ... except MissingExtraError as error:
    ...     print(error)
    convalgebra_no_such_module is needed for this feature: pip install 'convalgebra[plot]'
    """


#: The optional dependencies and the extra that installs each.
EXTRAS = {
    "torch": "torch",
    "torchvision": "vision",
    "matplotlib": "plot",
    "PIL": "plot",
    "yaml": "yaml",
}


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
        raise _missing(module, extra) from exc


def _missing(module: str, extra: str) -> MissingExtraError:
    return MissingExtraError(
        f"{module} is needed for this feature: pip install 'convalgebra[{extra}]'"
    )


def missing_extra(exc: BaseException) -> MissingExtraError | None:
    """The install hint for an import of an optional dependency that failed, else ``None``.

    One rule for every missing extra, however it was imported.

    Examples
    --------
    >>> missing_extra(ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"))
    MissingExtraError("matplotlib is needed for this feature: pip install 'convalgebra[plot]'")
    >>> missing_extra(ValueError("x")) is None
    True
    """
    if isinstance(exc, MissingExtraError) or not isinstance(exc, ModuleNotFoundError):
        return None
    top = (exc.name or "").split(".")[0]
    return _missing(top, EXTRAS[top]) if top in EXTRAS else None


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
    try:
        if isinstance(value, (list, tuple, dict, set)) and _too_big(value, limit):
            text = f"{type(value).__name__} of {len(value):,} items: " + _head(value, limit)
        else:
            text = repr(value)
        text = " ".join(str.__str__(text).split())  # an exact str, even from a str subclass
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    """``text`` cut in the middle to ``limit`` characters."""
    if len(text) > limit:
        half = (limit - 5) // 2
        text = f"{text[:half]} ... {text[len(text) - (limit - 5 - half) :]}"
    return text


def printable(text: object, limit: int = SHOWN_CHARS, keep: str = "") -> str:
    """``str(text)`` safe to print: control and format characters escaped, cut to ``limit``.

    Names from graph files, models and the command line reach the terminal through this one
    helper, so a newline cannot forge an output line and an ANSI escape cannot move the
    cursor. ``keep`` lists characters left as they are (``"\\n"`` for whole documents);
    ``limit=0`` does not cut.

    Examples
    --------
    >>> printable("conv1")
    'conv1'
    >>> printable("a\\nerror: b\\x1b[2J")
    'a\\\\nerror: b\\\\x1b[2J'
    >>> len(printable("x" * 10**6))
    200
    """
    try:
        text = str.__str__(text) if isinstance(text, str) else str(text)
        text = str.__str__(text)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the real error
        text = f"<{type(text).__name__}>"
    if not text.isprintable():
        text = "".join(
            ch if ch.isprintable() or ch == " " or ch in keep else _escape(ch) for ch in text
        )
    return _cut(text, limit) if limit else text


def _escape(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


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
