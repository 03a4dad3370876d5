"""A :class:`~convalgebra.identities.CheckResult` derives itself: claim, proof steps, evidence,
counterexample.

The document is the result's own (:meth:`~convalgebra.identities.CheckResult.document`), so
``derive(result)`` and ``result.to_latex()`` print the same text.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConvAlgebraError
from ..render.grids import array_grid
from .model import Derivation

__all__ = ["derive_check", "array_grid"]


def derive_check(
    result: Any, *, max_positions: int = 12, max_rows: int = 12, max_cols: int = 12
) -> Derivation:
    """The derivation of a :class:`~convalgebra.identities.CheckResult`: claim, proof, evidence, counterexample.

    Examples
    --------
    >>> import convalgebra as ca
    >>> r = ca.check("translation_equivariance", ca.ConvSpec((1, 6), 1, 3, padding=1, padding_mode="circular"))
    >>> print(ca.derive(r).to_text().splitlines()[0])  # doctest: +ELLIPSIS
    translation_equivariance: HOLDS -- conv(S x) = S' conv(x), S the cyclic shift by (1,), ...
    >>> ca.derive(r).to_latex() == r.to_latex()
    True
    """
    if (
        not hasattr(result, "holds")
        or not hasattr(result, "claim")
        or not hasattr(result, "document")
    ):
        raise ConvAlgebraError(f"check derivations need a CheckResult, got {type(result).__name__}")
    doc = result.document(max_positions=max_positions, max_rows=max_rows, max_cols=max_cols)
    return Derivation(doc.title, doc.steps, doc.intro, result=result, level=doc.level)
