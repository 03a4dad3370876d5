"""Models written in Python for the command line: ``file.py:factory`` or ``package.module:attr``.

A target names a Python file or an importable module, then, after a colon, an attribute of it:
a ``torch.nn.Module`` instance, a module class, or a function returning a module. Arguments
for the call may follow in parentheses, as Python literals only (``make(3, width=2)``,
``Net(channels=[16, 32])``): each one is read with :func:`ast.literal_eval`, never evaluated.
The module is imported into a :class:`~convalgebra.network.graph.LayerGraph` with
:func:`~convalgebra.interop.torch.from_torch` at the shape given by ``--in``.

A target is code, and runs as such:

* ``file.py:attr`` executes the file you name, then calls ``attr`` (or takes it, if it is a
  module instance);
* ``package.module:attr`` imports the module (its top-level code runs, as ``import`` runs it;
  a standard-library module is refused before the import, and no name may be a dunder), then
  calls ``attr`` only if it is a ``torch.nn.Module`` subclass or a plain function defined in
  the same top-level package, whose module uses torch, outside ``torch`` and ``convalgebra``
  themselves. Anything else (``os:system``, ``builtins:exec``, ``torch:load``, a function
  re-exported from another package) is refused before anything is called.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConvAlgebraError, MissingExtraError, printable, shown

__all__ = [
    "PythonTarget",
    "parse_target",
    "is_python_target",
    "build_module",
    "load_python_model",
    "load_python_model_and_module",
    "refuse_source",
    "refuse_uncallable",
]

_TARGET = re.compile(
    r"^(?P<source>[^:()]+?):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
    r"\s*(?P<call>\(.*\))?\s*$",
    re.S,
)
_MODULE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class PythonTarget:
    """A parsed ``source:attr(args)`` target (``called`` says whether parentheses were given)."""

    source: str
    attr: str
    args: tuple = ()
    kwargs: tuple = ()
    called: bool = False

    @property
    def is_file(self) -> bool:
        return self.source.endswith(".py")


def is_python_target(text: str) -> bool:
    """Whether ``text`` reads as ``file.py:attr`` or ``package.module:attr`` (with arguments).

    Examples
    --------
    >>> is_python_target("models/net.py:Net"), is_python_target("torchvision.models:resnet18")
    (True, True)
    >>> is_python_target("resnet18"), is_python_target("net.yaml")
    (False, False)
    """
    match = _TARGET.match(text.strip())
    if not match:
        return False
    source = match["source"].strip()
    return source.endswith(".py") or bool(_MODULE.match(source))


def parse_target(text: str) -> PythonTarget:
    """Split a target and read its call arguments as literals.

    Examples
    --------
    >>> parse_target("nets.py:make(3, width=2, sizes=(1, 2))")
    PythonTarget(source='nets.py', attr='make', args=(3,), kwargs=(('width', 2), ('sizes', (1, 2))), called=True)
    >>> parse_target("nets.py:make(__import__('os'))")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the arguments of 'make' must be Python literals (numbers, strings, tuples, lists, dicts, True/False/None), got "__import__('os')"
    """
    match = _TARGET.match(text.strip())
    if not match or not is_python_target(text):
        raise ConvAlgebraError(
            f"expected a model like path/to/file.py:factory or "
            f"package.module:attr, optionally with literal arguments "
            f"'attr(3, width=2)', got {shown(text)}"
        )
    attr, call = match["attr"], match["call"]
    if call is None:
        return PythonTarget(match["source"].strip(), attr)
    try:
        tree = ast.parse(f"f{call}", mode="eval").body
    except SyntaxError:
        raise ConvAlgebraError(
            f"cannot read the arguments {shown(call)} of {shown(attr)}: expected (literal, ..., name=literal)"
        ) from None
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise ConvAlgebraError(f"cannot read the arguments {shown(call)} of {shown(attr)}")
    if any(isinstance(a, ast.Starred) for a in tree.args) or any(
        k.arg is None for k in tree.keywords
    ):
        raise ConvAlgebraError(
            f"the arguments of {shown(attr)} cannot use * or **, got {shown(call)}"
        )
    args = tuple(_literal(a, attr) for a in tree.args)
    kwargs = tuple((k.arg, _literal(k.value, attr)) for k in tree.keywords)
    return PythonTarget(match["source"].strip(), attr, args, kwargs, True)


def _literal(node: ast.expr, attr: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ConvAlgebraError(
            f"the arguments of {shown(attr)} must be Python literals (numbers, strings, tuples, "
            f"lists, dicts, True/False/None), got {shown(ast.unparse(node)[:60])}"
        ) from None


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ConvAlgebraError(f"cannot read model file {shown(str(path))}: no such file")
    name = f"_convalgebra_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConvAlgebraError(f"cannot import {shown(str(path))} as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the file's own imports of its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConvAlgebraError(
            f"importing {shown(str(path))} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _import_module(name: str) -> Any:
    # the current folder first, as ``python -m`` does (a console script would not look there)
    added = "" not in sys.path and os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        if name.split(".")[0] == "torchvision":
            from ..interop import import_torchvision

            import_torchvision()
        return importlib.import_module(name)
    except MissingExtraError:
        raise
    except ModuleNotFoundError as exc:
        raise ConvAlgebraError(f"cannot import module {shown(name)}: {exc}") from None
    except Exception as exc:
        raise ConvAlgebraError(
            f"importing module {shown(name)} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def _resolve(module: Any, target: PythonTarget) -> Any:
    value = module
    for part in target.attr.split("."):
        if not hasattr(value, part):
            raise ConvAlgebraError(f"{shown(target.source)} has no attribute {shown(target.attr)}")
        value = getattr(value, part)
    return value


def build_module(target: PythonTarget) -> Any:
    """The ``torch.nn.Module`` a target names (instance, class or factory, called with its
    literal arguments).

    A module target (``package.module:attr``) calls only a ``torch.nn.Module`` subclass or a
    model factory (see :func:`refuse_uncallable`); what is not one is refused before anything
    is called, and a standard-library module before it is imported.
    """
    torch = _torch()
    refuse_source(target)
    module = _import_file(Path(target.source)) if target.is_file else _import_module(target.source)
    value = _resolve(module, target)
    where = _where(target)
    if isinstance(value, torch.nn.Module):
        if target.called:
            raise ConvAlgebraError(f"{where} is already a module instance: give no arguments")
        return value
    if not callable(value):
        raise ConvAlgebraError(
            f"{where} is a {type(value).__name__}, not a torch.nn.Module, "
            "a module class or a function returning one"
        )
    if not target.is_file:
        refuse_uncallable(value, target, torch)
    try:
        built = value(*target.args, **dict(target.kwargs))
    except Exception as exc:
        raise ConvAlgebraError(f"calling {where} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(built, torch.nn.Module):
        raise ConvAlgebraError(f"{where} returned a {type(built).__name__}, not a torch.nn.Module")
    return built


def _where(target: PythonTarget) -> str:
    return printable(f"{target.source}:{target.attr}")


#: Packages whose functions a module target never calls: the framework itself (``torch.load``
#: unpickles a file, ``torch.hub.load`` runs downloaded code) and this library.
NO_FACTORIES = frozenset({"torch", "convalgebra"})
_RULE = (
    "a module target calls only a torch.nn.Module subclass or a model function defined in the "
    "module's own package (write a file.py:factory to call anything else)"
)


def refuse_source(target: PythonTarget) -> None:
    """Refuse, before any import, a module target in the standard library or a dunder name.

    Examples
    --------
    >>> refuse_source(parse_target('os:system("touch PWNED")'))
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: refusing the model os:system: 'os' is Python's standard library; a module target calls only a torch.nn.Module subclass or a model function defined in the module's own package (write a file.py:factory to call anything else)
    """
    if target.is_file:
        return
    top = target.source.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ConvAlgebraError(
            f"refusing the model {_where(target)}: {shown(top)} is Python's standard library; {_RULE}"
        )
    names = [*target.source.split("."), *target.attr.split(".")]
    if any(name.startswith("__") for name in names):
        raise ConvAlgebraError(
            f"refusing the model {_where(target)}: a module target names no dunder "
            f"(__main__, __class__, ...); {_RULE}"
        )


def refuse_uncallable(value: Any, target: PythonTarget, torch: Any) -> None:
    """Refuse calling ``value`` from a module target unless it is a model class or factory.

    Called are a ``torch.nn.Module`` subclass, and a plain Python function whose defining
    module is in the target's own top-level package (not ``torch`` or ``convalgebra``) and
    uses torch (imports it, or names a module class); a builtin, a callable object, a function
    of another package re-exported here, none of them.
    """
    where = _where(target)
    if isinstance(value, type):
        if issubclass(value, torch.nn.Module):
            return
        raise ConvAlgebraError(
            f"refusing the model {where}: the class {shown(value.__name__)} is not a "
            f"torch.nn.Module subclass; {_RULE}"
        )
    if not inspect.isfunction(value):
        raise ConvAlgebraError(
            f"refusing the model {where}: it is a {type(value).__name__}, not a Python "
            f"function; {_RULE}"
        )
    home = str(getattr(value, "__module__", None) or "?")
    top = target.source.split(".")[0]
    if home.split(".")[0] != top:
        raise ConvAlgebraError(
            f"refusing the model {where}: it is defined in {shown(home)}, not in the package "
            f"{shown(top)}; {_RULE}"
        )
    if top in NO_FACTORIES:
        raise ConvAlgebraError(
            f"refusing the model {where}: functions of {shown(top)} are not model factories; {_RULE}"
        )
    if not _uses_torch(value, torch):
        raise ConvAlgebraError(
            f"refusing the model {where}: its module {shown(home)} does not use torch; {_RULE}"
        )


def _uses_torch(function: Any, torch: Any) -> bool:
    """Whether the function's module imports torch or names a torch.nn.Module class."""
    try:
        namespace = inspect.unwrap(function).__globals__
    except (ValueError, AttributeError):
        return False
    for item in list(namespace.values()):
        if isinstance(item, types.ModuleType):
            if str(getattr(item, "__name__", "")).split(".")[0] == "torch":
                return True
        elif isinstance(item, type) and issubclass(item, torch.nn.Module):
            return True
    return False


def _torch() -> Any:
    from ..errors import require

    return require("torch", "torch")


def load_python_model(text: str, input_shape: tuple[int, ...] | None) -> Any:
    """A LayerGraph from a ``file.py:attr`` or ``package.module:attr`` target at ``input_shape``.

    The module is put in eval mode (batch-norm statistics, dropout) before the import.
    """
    return load_python_model_and_module(text, input_shape)[0]


def load_python_model_and_module(text: str, input_shape: tuple[int, ...] | None) -> tuple:
    """``(graph, module)``: :func:`load_python_model` and the module it imported."""
    target = parse_target(text)
    if input_shape is None:
        raise ConvAlgebraError(f"{text}: a Python model needs its input shape, e.g. --in 3x224x224")
    from ..interop.torch import from_torch
    from .progress import Progress

    with (
        Progress("import", "step") as bar,
        bar.ticking(f"{printable(target.attr, limit=40)}: from_torch"),
    ):
        module = build_module(target)
        return from_torch(module.eval(), input_shape, name=target.attr), module
