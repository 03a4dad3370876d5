"""Textbook derivations rendered from the objects that compute the numbers.

``derive(what, obj, **options)`` returns a :class:`Derivation`: a title and ordered steps,
each a statement, displayed equations and a justification, rendered as LaTeX
(:meth:`Derivation.to_latex`, a fragment or a standalone document), Markdown with ``$…$`` math
(:meth:`Derivation.to_markdown`) and plain text (:meth:`Derivation.to_text`). Every displayed
expression keeps the value the library computed, and :meth:`Derivation.verify` parses the
printed form back and compares (see :mod:`convalgebra.derive.verify`).

Examples
--------
>>> import convalgebra as ca
>>> d = ca.derive("forward", ca.ConvSpec((1, 3), 1, 2, bias=False))
>>> print(d.to_text().splitlines()[0])
Forward equations of Conv1d(1, 1, kernel_size=(2,), stride=(1,), padding=((0, 0),), bias=False) on input (1, 3)
>>> for line in d.to_text().splitlines():
...     if line.startswith("    z"):
...         print(line.strip())
z1 = w1*a1 + w2*a2
z2 = w1*a2 + w2*a3
>>> d.verify() > 0
True
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import ConvAlgebraError, shown
from .model import Derivation, Equation, Expr, Grid, Step, Table, combine

__all__ = ["derive", "Derivation", "Step", "Equation", "Expr", "Grid", "Table", "KINDS", "combine"]


def _registry() -> dict[str, Callable[..., Derivation]]:
    from .equations import derive_backward, derive_forward
    from .matrices import derive_matrix
    from .networks import derive_params, derive_receptive_field
    from .shapes import derive_output_size
    from .checks import derive_check

    return {
        "output_size": derive_output_size,
        "matrix": derive_matrix,
        "forward": derive_forward,
        "backward": derive_backward,
        "params": derive_params,
        "receptive_field": derive_receptive_field,
        "check": derive_check,
    }


#: The kinds of derivation :func:`derive` knows.
KINDS = ("output_size", "matrix", "forward", "backward", "params", "receptive_field", "check")


def derive(what: Any, obj: Any = None, **options: Any) -> Derivation:
    """Derive ``what`` for ``obj``, step by step.

    Parameters
    ----------
    what : str or CheckResult
        One of :data:`KINDS`: ``"output_size"``, ``"matrix"``, ``"forward"``, ``"backward"``
        (a :class:`~convalgebra.spec.ConvSpec`), ``"params"`` (a spec, a list of specs or a
        ``LayerGraph``), ``"receptive_field"`` (a ``LayerGraph`` or a list of specs),
        ``"check"`` (a ``CheckResult``). A ``CheckResult`` passed alone derives itself.
    obj : object
        What to derive it for.
    **options
        Passed to the derivation, e.g. ``max_rows``/``max_cols`` for ``"matrix"``,
        ``weight``/``x`` (numbers) for ``"forward"``.

    Returns
    -------
    Derivation

    Raises
    ------
    ConvAlgebraError
        Unknown ``what``, or an object that kind of derivation does not accept.

    Examples
    --------
    >>> import convalgebra as ca
    >>> ca.derive("output_size", ca.ConvSpec((3, 32, 32), 10, 5, padding=2)).result
    (10, 32, 32)
    """
    if not isinstance(what, str):
        if hasattr(what, "holds") and obj is None:
            what, obj = "check", what
        else:
            raise TypeError(f"what must be one of {KINDS} or a CheckResult, got {shown(what)}")
    registry = _registry()
    if what not in registry:
        raise ConvAlgebraError(f"what must be one of {KINDS}, got {shown(what)}")
    if obj is None:
        raise ConvAlgebraError(f"derive({shown(what)}, obj) needs an object to derive it for, got None")
    return registry[what](obj, **options)


class _CallableModule(__import__("types").ModuleType):
    """``convalgebra.derive`` is both this package and the function :func:`derive`.

    Importing a submodule (``convalgebra.derive.verify``) binds the package to the name
    ``derive`` on ``convalgebra``; making the package callable keeps ``ca.derive(...)`` working
    whichever of the two the name holds.
    """

    def __call__(self, what: Any, obj: Any = None, **options: Any) -> Derivation:
        return derive(what, obj, **options)


__import__("sys").modules[__name__].__class__ = _CallableModule
