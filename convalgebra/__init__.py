"""convalgebra: convolution layers as exact linear algebra, and back into readable mathematics.

>>> import convalgebra as ca
>>> spec = ca.ConvSpec((1, 4), 1, 2)
>>> ca.conv_matrix(spec, [[[1, 2]]]).toarray()
array([[1, 2, 0, 0],
       [0, 1, 2, 0],
       [0, 0, 1, 2]])

Submodules are imported on first use, so ``import convalgebra`` stays light (no sympy,
networkx or torch until a feature needs them).
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConvAlgebraError, GraphCycleError, MissingExtraError
from .spec import ConvSpec

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    # matrix form
    "conv_matrix": "operators",
    "conv_operator": "operators",
    "conv_matrix_blocks": "operators",
    "kernel_jacobian": "operators",
    "bias_jacobian": "operators",
    "triples": "connectivity",
    "avg_pool_matrix": "variants",
    "max_pool_selection": "variants",
    "locally_connected": "variants",
    "tiled": "variants",
    "matrix_structure": "structure",
    "is_toeplitz": "structure",
    "is_circulant": "structure",
    "is_block_toeplitz": "structure",
    "is_block_circulant": "structure",
    "symbolic_matrix": "symbolic",
    # spectra
    "singular_values": "spectra",
    "operator_norm": "spectra",
    "lipschitz_bound": "lipschitz",
    "weight_symbols": "symbolic",
    "input_symbols": "symbolic",
    # backward passes
    "input_gradient": "gradients",
    "weight_gradient": "gradients",
    "bias_gradient": "gradients",
    "colliding_input_sizes": "transpose",
    "symbolic_backward": "symbolic",
    "transpose_spec": "transpose",
    # identities
    "check": "identities",
    "CheckResult": "identities",
    "equivariant_kernels": "identities",
    "prove": "interop.trace_ops",
    # layer graphs
    "LayerGraph": "network.graph",
    "receptive_field": "network.graph",
    "param_count": "network.graph",
    "macs": "network.graph",
    "unit_receptive_field": "network.graph",
    "effective_receptive_field": "effective",
    "from_torch": "interop.torch",
    "UnmodelledOpWarning": "interop.torch",
    # derivations
    "derive": "derivations",
    "Derivation": "derivations",
    # conv-arithmetic figures
    "conv_tikz": "figures",
    "conv_gif": "figures",
}

# attribute -> submodule path, for ``ca.zoo``, ``ca.graph`` and the other submodules
_SUBMODULES = {
    "budget": "budget",
    "cli": "cli",
    "connectivity": "connectivity",
    "derivations": "derivations",
    "exprs": "symbolic.exprs",
    "figures": "figures",
    "gradients": "gradients",
    "graph": "network.graph",
    "identities": "identities",
    "interop": "interop",
    "layers": "network.layers",
    "lipschitz": "lipschitz",
    "network": "network",
    "operators": "operators",
    "ops": "ops",
    "plot": "plot",
    "render": "render",
    "report": "report",
    "spectra": "spectra",
    "structure": "structure",
    "symbolic": "symbolic",
    "taps": "taps",
    "testing": "testing",
    "transpose": "transpose",
    "variants": "variants",
    "zoo": "network.zoo",
}

__all__ = ["ConvSpec", "ConvAlgebraError", "GraphCycleError", "MissingExtraError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    raise AttributeError(f"module 'convalgebra' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
