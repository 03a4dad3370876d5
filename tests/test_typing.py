"""The public API is typed: mypy sees every lazily loaded name with its real signature."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import time
from pathlib import Path

import pytest

import convalgebra as ca

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "convalgebra" / "__init__.py"

# third-party packages are not followed: the check is about convalgebra's own names, and
# skipping numpy/scipy/sympy internals keeps one run to a few seconds
MYPY_INI = """\
[mypy]
python_version = 3.11
ignore_missing_imports = True
[mypy-sympy.*,scipy.*,torch.*,torchvision.*,matplotlib.*,networkx.*,yaml.*,PIL.*]
follow_imports = skip
"""


def _type_checking_imports() -> tuple[dict[str, str], dict[str, str]]:
    """(public name -> module, submodule attribute -> module path) imported under
    ``if TYPE_CHECKING:`` in ``convalgebra/__init__.py``, in the lazy tables' form."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, "one `if TYPE_CHECKING:` block in convalgebra/__init__.py"
    names, submodules = {}, {}
    for stmt in blocks[0].body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1, ast.dump(stmt)
        for alias in stmt.names:
            assert alias.asname is not None, f"{alias.name}: re-export it as `x as x`"
            path = f"{stmt.module}.{alias.name}" if stmt.module else alias.name
            if inspect.ismodule(getattr(ca, alias.asname)):
                submodules[alias.asname] = path
            else:
                names[alias.asname] = stmt.module or ""
    return names, submodules


def test_type_checking_block_mirrors_the_lazy_tables():
    # the library never imports the command line, not even for the type checker
    submodules = {k: v for k, v in ca._SUBMODULES.items() if k != "cli"}
    assert _type_checking_imports() == (ca._LAZY, submodules)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One mypy cache for this file's runs: the package is analysed once."""
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(tmp_path: Path, code: str, cache: Path) -> tuple[str, float]:
    pytest.importorskip(
        "mypy", reason="mypy is installed by the [test] extra: pip install '.[test]'"
    )
    (tmp_path / "mypy.ini").write_text(MYPY_INI)
    snippet = tmp_path / "snippet.py"
    snippet.write_text(code)
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(cache),
            "--no-error-summary",
            str(snippet),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # seconds on a loaded 2-core machine; about 3 s alone
    )
    assert out.stderr == ""
    return out.stdout, time.perf_counter() - started


def test_mypy_catches_a_misspelt_public_name(tmp_path, cache):
    code = (
        "import convalgebra as ca\n"
        "spec = ca.ConvSpec((1, 4), 1, 2)\n"
        "ca.conv_matrix(spec, [[[1, 2]]])\n"
        "ca.conv_matrx(spec, [[[1, 2]]])\n"
        "ca.zoo.lenet5\n"
        "ca.zoo.lenet_five\n"
        "reveal_type(ca.receptive_field)\n"
    )
    out, seconds = _mypy(tmp_path, code, cache)
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert errors == [
        f'{tmp_path / "snippet.py"}:4: error: Module has no attribute "conv_matrx"  [attr-defined]',
        f'{tmp_path / "snippet.py"}:6: error: Module has no attribute "lenet_five"  [attr-defined]',
    ], out
    # a real signature, not Any
    assert "graph: convalgebra.network.graph.LayerGraph" in out, out
    assert seconds < 240  # about 3 s alone; the bound catches a type check of the whole world


def test_mypy_checks_arguments_of_a_public_function(tmp_path, cache):
    out, _ = _mypy(tmp_path, "import convalgebra as ca\nca.param_count(3)\n", cache)
    assert 'Argument 1 to "param_count" has incompatible type "int"' in out, out
