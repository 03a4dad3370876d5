"""The package draws as layers: no import cycles, nothing imports upward, light imports stay light.

Edges are read from the source (every ``import`` statement, lazy ones inside functions
included), so a cycle or an upward import fails here even if no test happens to execute it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "convalgebra"

# Lower layers first; a module may import only from its own layer or from layers below it.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "files"),
    ("display",),
    ("taps",),
    ("spec",),
    ("budget",),
    ("connectivity",),
    ("operators",),
    ("gradients", "variants", "structure", "transpose", "testing", "spectra"),
    ("symbolic",),
    ("render",),
    ("ops",),
    ("identities", "report"),
    ("network",),
    ("derivations", "figures", "interop", "plot", "lipschitz", "effective"),
    ("cli",),
    ("__init__", "__main__", "conftest"),
]
NUMERIC = {
    "taps",
    "spec",
    "connectivity",
    "operators",
    "gradients",
    "variants",
    "structure",
    "transpose",
    "spectra",
}
SYMBOLIC_UNITS = {"symbolic", "render", "identities", "derivations"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    if node.module is None:
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def _imports() -> list[tuple[str, str, ast.stmt, list[str]]]:
    """(importer, imported module, statement, imported names) for every import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.extend((module, a.name, node, []) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names]
                for target in _resolve(module, path.name == "__init__.py", node):
                    found.append((module, target, node, names))
    return found


MODULES = {_module_name(p) for p in PACKAGE.rglob("*.py")}


def _known(target: str) -> str:
    """``from . import __version__`` imports a name, not a module: keep the module part."""
    while target not in MODULES and target.startswith("convalgebra.") and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


IMPORTS = [(a, _known(t), node, names) for a, t, node, names in _imports()]


def _unit(module: str) -> str | None:
    """The room a module belongs to: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    if parts[0] != "convalgebra":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _unit_edges() -> set[tuple[str, str]]:
    edges = set()
    for importer, target, _, _ in IMPORTS:
        a, b = _unit(importer), _unit(target)
        if a and b and a != b and b != "__init__":
            edges.add((a, b))
    return edges


def _layer_of(unit: str) -> int:
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"module or subpackage {unit!r} is not placed in LAYERS")


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    for unit in units:
        _layer_of(unit)


def test_no_import_cycles_between_units():
    graph = nx.DiGraph(_unit_edges())
    assert list(nx.simple_cycles(graph)) == []


def test_no_import_cycles_between_modules():
    graph = nx.DiGraph()
    for importer, target, _, _ in IMPORTS:
        if target in MODULES and importer != target and not importer.startswith(target + "."):
            graph.add_edge(importer, target)
    assert list(nx.simple_cycles(graph)) == []


def test_nothing_imports_upward():
    upward = sorted(
        (a, b) for a, b in _unit_edges() if a != "__init__" and _layer_of(b) > _layer_of(a)
    )
    assert upward == []


def test_spec_never_imports_connectivity():
    assert ("spec", "connectivity") not in _unit_edges()


@pytest.mark.parametrize("unit", sorted(NUMERIC))
def test_numeric_path_never_imports_sympy(unit):
    offending = [
        (importer, target)
        for importer, target, _, _ in IMPORTS
        if _unit(importer) == unit
        and (target.split(".")[0] == "sympy" or _unit(target) in SYMBOLIC_UNITS)
    ]
    assert offending == []


def test_library_never_imports_the_cli():
    offending = [
        (a, t)
        for a, t, _, _ in IMPORTS
        if _unit(t) == "cli" and _unit(a) not in ("cli", "__main__")
    ]
    assert offending == []


def test_no_private_name_imported_across_modules():
    offending = [
        (importer, target, name)
        for importer, target, _, names in IMPORTS
        if _unit(target) is not None
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offending == []


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("convalgebra.network", ("scipy", "torch", "sympy")),
        ("convalgebra.network.graph", ("scipy", "torch", "sympy")),
        ("convalgebra.network.zoo", ("scipy", "torch", "sympy")),
        ("convalgebra", ("scipy", "torch", "sympy", "networkx")),
        ("convalgebra.operators", ("sympy", "torch")),
        ("convalgebra.gradients", ("sympy", "torch")),
    ],
)
def test_light_imports_stay_light(module, forbidden):
    code = (
        f"import sys, {module}\n"
        f"loaded = [m for m in {forbidden!r} if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
