"""Textbook derivations rendered from the objects that compute the numbers.

``derive(what, obj, **options)`` returns a :class:`Derivation`: a title and ordered steps,
each a statement, displayed equations and a justification, rendered as LaTeX
(:meth:`Derivation.to_latex`, a fragment or a standalone document), Markdown with ``$…$`` math
(:meth:`Derivation.to_markdown`) and plain text (:meth:`Derivation.to_text`). Every displayed
expression keeps the value the library computed, and :meth:`Derivation.verify` parses the
printed form back and compares (see :mod:`convalgebra.derivations.verify`).

Examples
--------
>>> import convalgebra as ca
>>> d = ca.derive("forward", ca.ConvSpec((1, 3), 1, 2, bias=False))
>>> print(d.to_text().splitlines()[0])
Forward equations of Conv1d, kernel 2, no bias on 1×3
>>> for line in d.to_text().splitlines():
...     if line.strip().startswith(("z1 ", "z2 ")):
...         print(line.strip())
z1 = w1*a1 + w2*a2
z2 = w1*a2 + w2*a3
>>> d.verify() > 0
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConvAlgebraError, shown
from ..render.grids import display_limit
from .model import Derivation, Equation, Expr, Grid, Step, Table, combine

__all__ = ["derive", "Derivation", "Step", "Equation", "Expr", "Grid", "Table", "KINDS", "combine"]


def _registry() -> dict[str, Callable[..., Derivation]]:
    from .checks import derive_check
    from .cost import derive_cost
    from .equations import derive_backward, derive_forward
    from .lecture import derive_lecture
    from .lowering import derive_im2col, derive_transposed
    from .matrices import derive_matrix
    from .networks import derive_params, derive_receptive_field
    from .pooling import derive_pooling
    from .shapes import derive_output_size
    from .spectrum import derive_spectrum

    return {
        "output_size": derive_output_size,
        "matrix": derive_matrix,
        "forward": derive_forward,
        "backward": derive_backward,
        "params": derive_params,
        "receptive_field": derive_receptive_field,
        "check": derive_check,
        "im2col": derive_im2col,
        "cost": derive_cost,
        "transposed": derive_transposed,
        "pooling": derive_pooling,
        "spectrum": derive_spectrum,
        "lecture": derive_lecture,
    }


#: The kinds of derivation :func:`derive` knows.
KINDS = (
    "output_size",
    "matrix",
    "forward",
    "backward",
    "params",
    "receptive_field",
    "check",
    "im2col",
    "cost",
    "transposed",
    "pooling",
    "spectrum",
    "lecture",
)


def derive(what: Any, obj: Any = None, **options: Any) -> Derivation:
    """Derive ``what`` for ``obj``, step by step.

    Parameters
    ----------
    what : str, CheckResult or LayerGraph
        One of :data:`KINDS`: ``"output_size"``, ``"matrix"``, ``"forward"``, ``"backward"``
        (a :class:`~convalgebra.spec.ConvSpec`), ``"params"`` (a spec, a list of specs or a
        ``LayerGraph``), ``"receptive_field"`` (a ``LayerGraph`` or a list of specs),
        ``"check"`` (a ``CheckResult``), ``"im2col"`` (a spec: the layer as one matrix product), ``"cost"`` (a block of specs
        against the standard convolution it replaces, or a ``LayerGraph`` layer by layer:
        parameters, buffers, MACs and memory), ``"transposed"`` (a transposed spec: zero
        insertion and the equivalent direct convolution), ``"pooling"`` (a ``MaxPool``/``AvgPool`` layer
        with ``x=``: forward values and the routing of gradients), ``"lecture"`` (a
        ``LayerGraph``: sizes, fields, parameters and MACs layer by layer, with the first
        layer's figure). A ``CheckResult`` passed alone derives itself, a ``LayerGraph``
        passed alone its lecture; ``"receptive_field"`` also takes one spec.
    obj : object
        What to derive it for.
    **options
        Passed to the derivation, e.g. ``max_rows``/``max_cols`` for ``"matrix"``,
        ``weight``/``x`` (numbers) for ``"forward"``.

    Returns
    -------
    Derivation
        The steps, renderable as text, Markdown and LaTeX, with ``result`` the value derived
        and ``verify()`` reading the printed equations back.

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
        elif type(what).__name__ == "LayerGraph" and obj is None:
            what, obj = "lecture", what
        else:
            raise TypeError(
                f"what must be one of {KINDS}, a CheckResult or a LayerGraph, got {shown(what)}"
            )
    registry = _registry()
    if what not in registry:
        raise ConvAlgebraError(f"what must be one of {KINDS}, got {shown(what)}")
    if obj is None:
        raise ConvAlgebraError(
            f"derive({shown(what)}, obj) needs an object to derive it for, got None"
        )
    for key in ("max_rows", "max_cols"):
        if key in options:
            options[key] = display_limit(key, options[key])
    return registry[what](obj, **options)
