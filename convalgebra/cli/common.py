"""What the subcommands share: their Result, optional library modules, output suffixes, models.

A network is a zoo name (:mod:`convalgebra.network.zoo`) or a JSON/YAML graph file
(:meth:`convalgebra.network.graph.LayerGraph.from_file`, safe loading only).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConvAlgebraError, shown

__all__ = [
    "GRAPH_SUFFIXES",
    "PICTURE_SUFFIXES",
    "NotAvailableError",
    "Result",
    "check_suffix",
    "library_module",
    "load_model",
    "model_names",
]

GRAPH_SUFFIXES = (".json", ".yaml", ".yml")
PICTURE_SUFFIXES = (".png", ".svg", ".pdf")  # --plot: the formats of plot.to_image


@dataclass
class Result:
    """What a subcommand produced: text for stdout, files to write (path -> bytes) and the
    exit code (``check``: 1 when the law fails)."""

    text: str = ""
    files: dict[Path, bytes] = field(default_factory=dict)
    exit_code: int = 0


class NotAvailableError(RuntimeError):
    """A subcommand whose library module is not part of this installation."""


def library_module(name: str, command: str) -> Any:
    """Import ``convalgebra.<name>`` or say that ``command`` is not available."""
    try:
        return importlib.import_module(f"convalgebra.{name}")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("convalgebra"):
            raise
        raise NotAvailableError(
            f"'convalgebra {command}' is not available: this installation has no "
            f"convalgebra.{name} module"
        ) from None


def check_suffix(path: Path | None, allowed: tuple[str, ...], option: str) -> None:
    """Refuse an output path whose suffix is not one of ``allowed`` (``-`` is standard output)."""
    if path is not None and str(path) != "-" and path.suffix.lower() not in allowed:
        raise ConvAlgebraError(
            f"{option} must name a {' or '.join(allowed)} file or '-' (standard output), "
            f"got {shown(str(path))}"
        )


def _zoo():
    return library_module("network.zoo", "analyze")


def model_names() -> list[str]:
    """Names of the built-in networks."""
    return list(_zoo().names())


def _graph_module():
    return library_module("network.graph", "analyze")


def _read_graph_file(path: Path):
    LayerGraph = _graph_module().LayerGraph
    try:
        return LayerGraph.from_file(path)
    except OSError as exc:
        raise ConvAlgebraError(
            f"cannot read model file {shown(str(path))}: {exc.strerror or exc}"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConvAlgebraError(f"cannot parse {shown(str(path))} as JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ConvAlgebraError(
            f"cannot read model file {shown(str(path))}: not a text file"
        ) from None
    except Exception as exc:  # noqa: BLE001 - yaml's errors are not ValueErrors
        if type(exc).__module__.split(".")[0] != "yaml":
            raise
        problem = getattr(exc, "problem", None) or str(exc)
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConvAlgebraError(
            f"cannot load {shown(str(path))}{where}: {problem}; only plain YAML data is accepted "
            "(safe loading: no Python tags)"
        ) from None


def _with_input(graph, shape: tuple[int, ...], name: str):
    spec = graph.to_spec()
    if len(spec["inputs"]) != 1:
        raise ConvAlgebraError(
            f"--input needs a graph with one input; {name} has "
            f"{len(spec['inputs'])}: {sorted(spec['inputs'])}"
        )
    spec["inputs"] = {next(iter(spec["inputs"])): list(shape)}
    return type(graph).from_spec(spec)


def load_model(model: str, input_shape: tuple[int, ...] | None = None):
    """A LayerGraph from a zoo name, a graph file or a Python model (``file.py:factory``,
    ``package.module:attr``, see :mod:`convalgebra.cli.python_models`), optionally at another
    input shape (required for a Python model)."""
    from .python_models import is_python_target, load_python_model

    if is_python_target(model) and not Path(model).exists():
        return load_python_model(model, input_shape)
    path = Path(model)
    if path.suffix.lower() in GRAPH_SUFFIXES or path.exists():
        graph = _read_graph_file(path)
        return graph if input_shape is None else _with_input(graph, input_shape, path.name)
    zoo = _zoo()
    names = list(zoo.names())
    if model not in names:
        raise ConvAlgebraError(
            f"unknown model {shown(model)}: the built-in models are {', '.join(names)} "
            "(or give a .json/.yaml graph file, or a Python model as path/to/file.py:factory "
            "or package.module:attr with --in SHAPE)"
        )
    return zoo.get(model, input_shape)
