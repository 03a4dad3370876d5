"""Bridges to other frameworks (optional dependencies, imported lazily)."""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

from ..errors import MissingExtraError

__all__ = ["import_torchvision"]


def import_torchvision() -> Any:
    """Import torchvision's model code on the CPU build of torch, or name the extra to install.

    torchvision's compiled operators are built against another torch build; its Python model
    definitions need none of them. Registering an empty ``torchvision._meta_registrations``
    before the import skips the registrations that would fail, and every model builder works.

    Raises
    ------
    MissingExtraError
        When torchvision (or torch) is not installed: ``pip install 'convalgebra[vision]'``.

    Examples
    --------
    >>> tv = import_torchvision()
    >>> tv.models.resnet18(weights=None).fc.out_features
    1000
    """
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        raise MissingExtraError(
            "torchvision is needed for this feature: pip install 'convalgebra[vision]' "
            "(torch==2.13.0 with torchvision==0.28.0)"
        )
    name = "torchvision._meta_registrations"
    sys.modules.setdefault(name, types.ModuleType(name))
    import torchvision

    return torchvision
