"""Identity checks: equivariance, commutativity, composition and the other laws of convolution.

``check(law, *specs, **options)`` dispatches to one function per law (``LAWS``) and returns a
:class:`CheckResult`: the verdict, the evidence, a verified counterexample when it fails,
the output positions where it fails, and the derivation as :class:`Step` objects.

>>> import convalgebra as ca
>>> spec = ca.ConvSpec((1, 6, 6), 1, 3, padding=1, padding_mode="circular")
>>> ca.check("translation_equivariance", spec, shift=(1, 2)).holds
True
>>> ca.check("commutativity").holds          # no spec: the all-size index proof
True
>>> sorted(LAWS)[:4]
['adjoint', 'avg_pool_equivariance', 'commutativity', 'composition']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..budget import CHECK_MAX_PRODUCTS, require_pair, require_table
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec, plain_array
from .algebra import channel_commutator_condition, commutativity, layer_commutativity
from .channelwise import decided_spec
from .composition import composed_kernel, composed_spec, composition
from .equivariance import (
    flip_equivariance,
    rotation_equivariance,
    scale_equivariance,
    translation_equivariance,
    transposition_equivariance,
)
from .kernels import EquivariantKernels, equivariant_kernels
from .linear import adjoint, adjoint_conv_spec, fully_connected, one_by_one
from .pooling import avg_pool_equivariance, avg_pool_spec, max_pool, max_pool_invariance
from .proofs import commutativity_proof, translation_proof
from .result import CheckResult, Counterexample, Step
from .spectral import convolution_theorem, eigenvalues, separability

__all__ = [
    "check",
    "LAWS",
    "CheckResult",
    "Counterexample",
    "Step",
    "equivariant_kernels",
    "EquivariantKernels",
    "composed_spec",
    "composed_kernel",
    "adjoint_conv_spec",
    "channel_commutator_condition",
    "eigenvalues",
    "max_pool",
    "avg_pool_spec",
]

LAWS: dict[str, Callable[..., CheckResult]] = {
    "translation_equivariance": translation_equivariance,
    "rotation_equivariance": rotation_equivariance,
    "flip_equivariance": flip_equivariance,
    "transposition_equivariance": transposition_equivariance,
    "scale_equivariance": scale_equivariance,
    "max_pool_invariance": max_pool_invariance,
    "avg_pool_equivariance": avg_pool_equivariance,
    "commutativity": commutativity,
    "layer_commutativity": layer_commutativity,
    "composition": composition,
    "adjoint": adjoint,
    "convolution_theorem": convolution_theorem,
    "separability": separability,
    "one_by_one": one_by_one,
    "fully_connected": fully_connected,
}

_ALIASES = {
    "transposition": "transposition_equivariance",
    "scaling_equivariance": "scale_equivariance",
    "associativity": "composition",
    "fc": "fully_connected",
    "1x1": "one_by_one",
}

# laws that, called without a spec, prove the identity for every size
_PROOFS: dict[str, Callable[..., CheckResult]] = {
    "translation_equivariance": translation_proof,
    "commutativity": commutativity_proof,
}


def check(law: str, *specs, **options) -> CheckResult:
    """Check the identity ``law`` for the given spec(s); see ``LAWS`` for the names.

    Parameters
    ----------
    law : str
        A key of ``LAWS`` (e.g. ``"translation_equivariance"``, ``"commutativity"``,
        ``"layer_commutativity"``, ``"composition"``, ``"adjoint"``,
        ``"convolution_theorem"``, ``"separability"``).
    *specs : ConvSpec
        One spec, or two for ``layer_commutativity`` and ``composition``. Without a spec,
        ``translation_equivariance`` and ``commutativity`` give the all-size index proof
        (options ``ndim``, ``flip``, ``circular``).
    **options
        Passed to the law's function (e.g. ``shift``, ``axis``, ``weight``, ``k``), except
        ``max_products`` (default 500,000): layers with more triples are refused before any
        work (:func:`convalgebra.budget.require_table`).

    Returns
    -------
    CheckResult
        The verdict (``holds``, ``bool(result)``), the claim, the reason, the evidence, a
        counterexample when it fails, and the derivation (``to_text()``, ``to_latex()``).


    Raises
    ------
    ConvAlgebraError
        An unknown law, or an option the law does not take.

    Notes
    -----
    The laws are statements about the layer's linear map ``y = M(w) x``: a bias (the affine
    offset ``b``) takes no part, whatever ``spec.bias`` says.

    Examples
    --------
    >>> import convalgebra as ca
    >>> r = ca.check("commutativity", ca.ConvSpec((1, 3), 1, 2))
    >>> r.holds, r.counterexample.position
    (False, (0, 0))
    """
    if not isinstance(law, str):
        raise TypeError(f"law must be a string, got {shown(law)}")
    name = _ALIASES.get(law, law)
    if name not in LAWS:
        raise ConvAlgebraError(f"unknown law {shown(law)}; expected one of {sorted(LAWS)}")
    func = LAWS[name]
    max_products = options.pop("max_products", CHECK_MAX_PRODUCTS)
    options = {key: plain_array(value) for key, value in options.items()}  # tensors detached
    if not specs and name in _PROOFS and not options.keys() - {"ndim", "flip", "circular"}:
        func = _PROOFS[name]
    try:
        inspect.signature(func).bind(*specs, **options)
    except TypeError as exc:
        params = [p for p in inspect.signature(func).parameters]
        raise ConvAlgebraError(
            f"check({shown(law)}, ...): {exc}; this law takes {params}"
        ) from None
    for spec in specs:
        if isinstance(spec, ConvSpec):
            # a channel-wise law lowers only the layer it is decided on
            decided = decided_spec(name, spec, options)
            require_table(decided, f"check({shown(name)})", max_products)
    if len(specs) == 2 and all(isinstance(s, ConvSpec) for s in specs):
        require_pair(specs[0], specs[1], f"check({shown(name)})", max_products)
    return func(*specs, **options)
