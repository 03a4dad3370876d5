"""Identity checks: equivariance, commutativity, composition and the other laws of convolution."""

from __future__ import annotations

from .equivariance import (
    flip_equivariance,
    rotation_equivariance,
    scale_equivariance,
    translation_equivariance,
    transposition_equivariance,
)
from .kernels import EquivariantKernels, equivariant_kernels
from .result import CheckResult, Counterexample, Step

__all__ = ["check", "CheckResult", "Counterexample", "Step", "equivariant_kernels",
           "EquivariantKernels", "LAWS"]

LAWS = {
    "translation_equivariance": translation_equivariance,
    "rotation_equivariance": rotation_equivariance,
    "flip_equivariance": flip_equivariance,
    "transposition_equivariance": transposition_equivariance,
    "scale_equivariance": scale_equivariance,
}


def check(law, *specs, **options):
    return LAWS[law](*specs, **options)
