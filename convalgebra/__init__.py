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
from typing import TYPE_CHECKING, Any

from .errors import ConvAlgebraError, GraphCycleError, MissingExtraError
from .spec import ConvSpec

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    # matrix form
    "conv_matrix": "operators",
    "conv_operator": "operators",
    "conv_matrix_blocks": "operators",
    "conv_matrix_html": "report",
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


if TYPE_CHECKING:  # what mypy and IDEs read: the lazy tables above (the cli aside)
    from . import budget as budget
    from . import connectivity as connectivity
    from . import derivations as derivations
    from . import figures as figures
    from . import gradients as gradients
    from . import identities as identities
    from . import interop as interop
    from . import lipschitz as lipschitz
    from . import network as network
    from . import operators as operators
    from . import ops as ops
    from . import plot as plot
    from . import render as render
    from . import report as report
    from . import spectra as spectra
    from . import structure as structure
    from . import symbolic as symbolic
    from . import taps as taps
    from . import testing as testing
    from . import transpose as transpose
    from . import variants as variants
    from .connectivity import triples as triples
    from .derivations import Derivation as Derivation
    from .derivations import derive as derive
    from .effective import effective_receptive_field as effective_receptive_field
    from .figures import conv_gif as conv_gif
    from .figures import conv_tikz as conv_tikz
    from .gradients import bias_gradient as bias_gradient
    from .gradients import input_gradient as input_gradient
    from .gradients import weight_gradient as weight_gradient
    from .identities import CheckResult as CheckResult
    from .identities import check as check
    from .identities import equivariant_kernels as equivariant_kernels
    from .interop.torch import UnmodelledOpWarning as UnmodelledOpWarning
    from .interop.torch import from_torch as from_torch
    from .interop.trace_ops import prove as prove
    from .lipschitz import lipschitz_bound as lipschitz_bound
    from .network import graph as graph
    from .network import layers as layers
    from .network import zoo as zoo
    from .network.graph import LayerGraph as LayerGraph
    from .network.graph import macs as macs
    from .network.graph import param_count as param_count
    from .network.graph import receptive_field as receptive_field
    from .network.graph import unit_receptive_field as unit_receptive_field
    from .operators import bias_jacobian as bias_jacobian
    from .operators import conv_matrix as conv_matrix
    from .operators import conv_matrix_blocks as conv_matrix_blocks
    from .operators import conv_operator as conv_operator
    from .operators import kernel_jacobian as kernel_jacobian
    from .report import conv_matrix_html as conv_matrix_html
    from .spectra import operator_norm as operator_norm
    from .spectra import singular_values as singular_values
    from .structure import is_block_circulant as is_block_circulant
    from .structure import is_block_toeplitz as is_block_toeplitz
    from .structure import is_circulant as is_circulant
    from .structure import is_toeplitz as is_toeplitz
    from .structure import matrix_structure as matrix_structure
    from .symbolic import exprs as exprs
    from .symbolic import input_symbols as input_symbols
    from .symbolic import symbolic_backward as symbolic_backward
    from .symbolic import symbolic_matrix as symbolic_matrix
    from .symbolic import weight_symbols as weight_symbols
    from .transpose import colliding_input_sizes as colliding_input_sizes
    from .transpose import transpose_spec as transpose_spec
    from .variants import avg_pool_matrix as avg_pool_matrix
    from .variants import locally_connected as locally_connected
    from .variants import max_pool_selection as max_pool_selection
    from .variants import tiled as tiled
else:

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
