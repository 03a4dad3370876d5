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
    ("operators", "products"),
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
    "products",
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


# ------------------------------------------------------------------ allocations and dense work
# Every array whose size grows with the input is created through the estimator: outside
# convalgebra/budget.py no direct np.empty/zeros/ones/full on a shape computed from the problem,
# no .toarray()/.todense(), no dense FFT and no SVD or dense eigendecomposition. Those go through
# convalgebra.budget (budget.zeros(...), budget.dense(...), budget.fftn(...), budget.svd(...)),
# which refuse above a limit before allocating. A shape is not computed from the problem when it
# is a literal or the size of an array that already exists (len(x), x.size, x.shape, x.shape[i],
# arithmetic on those): such an array is no larger than memory already held. ALLOWED lists the
# few calls guarded another way, each with its reason.

ALLOCATORS = {"empty", "zeros", "ones", "full"}
ARRAY_MODULES = {"np", "numpy", "torch"}
FFT = {
    "fft",
    "ifft",
    "fft2",
    "ifft2",
    "fftn",
    "ifftn",
    "rfft",
    "irfft",
    "rfft2",
    "irfft2",
    "rfftn",
    "irfftn",
    "hfft",
    "ihfft",
}
DECOMPOSITIONS = {"svd", "svdvals", "eig", "eigh", "eigvals", "eigvalsh"}
DENSIFY = {"toarray", "todense"}

#: Files edited in parallel with their own budget calls before every dense spectrum.
OWN_BUDGET = "guarded in spectra/lipschitz by their own budget calls"

#: (file, enclosing function, callee) -> why the call needs no budget helper.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("spectra/bounds.py", "*", "*"): OWN_BUDGET,
    ("spectra/circulant.py", "*", "*"): OWN_BUDGET,
    ("spectra/norms.py", "*", "*"): OWN_BUDGET,
    ("lipschitz.py", "*", "*"): OWN_BUDGET,
    ("budget.py", "*", "*"): "the estimator itself",
    ("interop/torch/importer.py", "*", "empty"): "meta-device tensors: shapes only, no memory",
    ("interop/torch/values.py", "*", "empty"): "meta-device tensors: shapes only, no memory",
    ("interop/torch/tracing.py", "example_inputs", "zeros"): (
        "torch tensors (budget allocates numpy): guarded by require_array just before"
    ),
    ("taps.py", "read_mask", "zeros"): (
        "taps sits below budget in the layers; guarded by _require_listed (MAX_LISTED) just before"
    ),
    ("taps.py", "written_mask", "ones"): (
        "taps sits below budget in the layers; guarded by _require_listed (MAX_LISTED) just before"
    ),
}


def _callee(node: ast.Call) -> tuple[str | None, str | None]:
    """(object the attribute is read from, attribute name) of a call ``a.b.c(...)``."""
    func = node.func
    if not isinstance(func, ast.Attribute):
        return None, None
    value = func.value
    if isinstance(value, ast.Name):
        return value.id, func.attr
    if isinstance(value, ast.Attribute):
        return value.attr, func.attr
    return "", func.attr


def _existing_size(node: ast.AST) -> bool:
    """A literal, or the size of an array that already exists (and arithmetic on those)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_existing_size(e) for e in node.elts)
    if isinstance(node, ast.Starred):
        return _existing_size(node.value)
    if isinstance(node, ast.UnaryOp):
        return _existing_size(node.operand)
    if isinstance(node, ast.BinOp):
        return _existing_size(node.left) and _existing_size(node.right)
    if isinstance(node, ast.Attribute):
        return node.attr in ("size", "shape")
    if isinstance(node, ast.Subscript):
        return _existing_size(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "len"
    return False


def _violations(package: Path = PACKAGE) -> list[tuple[str, str, str, int]]:
    """(file, enclosing function, callee, line) of every direct growing allocation."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for scope in [tree, *ast.walk(tree)]:
            if scope is not tree and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            name = "<module>" if scope is tree else scope.name
            for node in _own_nodes(scope):
                if not isinstance(node, ast.Call):
                    continue
                owner, attr = _callee(node)
                if attr is None:
                    continue
                shape = node.args[0] if node.args else None
                flagged = (
                    (owner in ARRAY_MODULES and attr in ALLOCATORS and not _existing_size(shape))
                    if shape is not None
                    else False
                )
                flagged |= attr in DENSIFY
                flagged |= owner == "fft" and attr in FFT
                flagged |= owner in ("linalg",) and attr in DECOMPOSITIONS
                if flagged:
                    found.append((rel, name, attr, node.lineno))
    return found


def _own_nodes(scope: ast.AST):
    """Nodes of ``scope`` that are not inside a nested function (those are scanned as scopes)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _allowed(rel: str, func: str, attr: str) -> bool:
    return any((rel, f, a) in ALLOWED for f in (func, "*") for a in (attr, "*"))


def test_growing_arrays_go_through_the_estimator():
    offending = [
        f"{rel}:{line} in {func}(): {attr}"
        for rel, func, attr, line in _violations()
        if not _allowed(rel, func, attr)
    ]
    assert offending == [], "\n".join(offending)


def test_every_allowance_is_still_needed():
    used = {
        key
        for rel, func, attr, _ in _violations()
        for key in ALLOWED
        if key[0] == rel and key[1] in (func, "*") and key[2] in (attr, "*")
    }
    stale = sorted(set(ALLOWED) - used - {("budget.py", "*", "*")})
    assert stale == []


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import numpy as np\ndef f(n):\n    return np.zeros(n)", True),
        ("import numpy as np\ndef f(n):\n    return np.full((n, 2), 1.0)", True),
        ("import numpy as np\ndef f():\n    return np.zeros((3, 2))", False),
        ("import numpy as np\ndef f(x):\n    return np.ones(x.size + 1)", False),
        ("import numpy as np\ndef f(x):\n    return np.empty((len(x), x.shape[1]))", False),
        ("def f(m):\n    return m.toarray()", True),
        ("import numpy as np\ndef f(a):\n    return np.fft.fftn(a)", True),
        ("import numpy as np\ndef f(a):\n    return np.linalg.svd(a)", True),
        ("import scipy.linalg\ndef f(a):\n    return scipy.linalg.svdvals(a)", True),
    ],
)
def test_the_allocation_scan_sees_each_kind(source, flagged, tmp_path):
    (tmp_path / "mod.py").write_text(source)
    assert bool(_violations(tmp_path)) is flagged
