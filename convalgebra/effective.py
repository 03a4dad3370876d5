"""Effective receptive fields (Luo, Li, Urtasun & Zemel, NeurIPS 2016), exactly.

The theoretical receptive field says which input pixels *can* reach a unit; the effective one
says how much each does: the gradient of the unit with respect to the input, for the network
taken as linear. :func:`effective_receptive_field` computes it exactly by one backward pass
through the graph's own axis maps (:mod:`convalgebra.network.linearised`), with uniform weights:

- a convolution or linear layer has every weight equal to ``1 / fan_in`` and no bias (as
  PyTorch's fan-in: ``C_in / groups`` times the kernel volume), so it averages its inputs;
- activations, dropout and normalisation layers are the identity;
- a max pool averages its window like ``avg_pool(count_include_pad=False)`` (a dilated one:
  the mean of its ``k`` taps, padding counted as zeros); adaptive pools average;
- a multiplicative gate from a globally pooled branch (squeeze-and-excitation) is held at 1.

With these weights every channel of a layer carries the same gradient, so the pass runs on
the spatial axes alone, one small matrix per axis (the layers act on each axis separately):
it costs about what one forward pass of a one-channel image costs. With the model's own
weights (``weights=model.state_dict()``) the pass carries every channel and goes through each
convolution's matrix-free operator transposed. The *effective size* is
the diameter ``2 r`` of the smallest disc around the field's centre of mass holding ``mass``
(95 %) of the absolute gradient.

Notes
-----
For a layer ``y = A x`` (per axis ``A_a``, a channel gain ``γ``), the backward pass is
``g_x = γ (A_1ᵀ ⊗ ... ⊗ A_nᵀ) g_y``; a convolution with uniform weights has
``γ = (C_out / groups) / fan_in`` and ``A_a[o, i]`` = number of taps of unit ``o`` landing on
``i`` (padding modes mapped as PyTorch does); branches add their gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import budget
from .display import short_repr, summary_html
from .errors import ConvAlgebraError
from .network.linearised import input_gradients

__all__ = ["EffectiveField", "effective_receptive_field"]


@dataclass(frozen=True)
class EffectiveField:
    """The effective receptive field of one unit (see :func:`effective_receptive_field`).

    Attributes
    ----------
    node, position : the unit (spatial position, 0-based)
    gradient : ndarray
        ``d unit / d input`` for the linearised network, shape of the graph input
        ``(C, *spatial)``; the unit is the sum of the node's channels at ``position``.
    weights : ndarray
        The absolute gradient summed over channels, normalised to sum 1 (spatial shape).
    box : tuple of (first, last) pairs
        The theoretical field of the unit, clipped to the input.
    centre : tuple of float
        Centre of mass of ``weights``.
    radius : float
        Smallest distance from ``centre`` within which the pixels hold ``mass`` of the weight.
    mass : float
    """

    node: str
    position: tuple[int, ...]
    gradient: np.ndarray
    weights: np.ndarray
    box: tuple[tuple[int, int], ...] | None
    centre: tuple[float, ...]
    radius: float
    mass: float

    @property
    def size(self) -> float:
        """Effective size: the diameter ``2 * radius``."""
        return 2 * self.radius

    @property
    def theoretical_size(self) -> tuple[int, ...]:
        """Extent of the theoretical (clipped) box per axis."""
        return tuple(b - a + 1 for a, b in self.box) if self.box else ()

    def __repr__(self) -> str:
        return short_repr("EffectiveField", self.describe(), limit=400)

    def _repr_html_(self) -> str:
        box = "x".join(map(str, self.theoretical_size)) or "none"
        return summary_html(
            f"EffectiveField of unit {self.position} of {self.node!r}",
            {
                "effective size (diameter of the disc holding "
                f"{self.mass:.0%} of the weight)": f"{self.size:.2f} px",
                "centre": ", ".join(f"{c:.2f}" for c in self.centre),
                "theoretical box": f"{box} {self.box}",
                "weights": f"array of shape {self.weights.shape}",
            },
        )

    def _repr_png_(self) -> bytes | None:
        """The picture of :func:`~convalgebra.plot.plot_effective_field` (None without
        matplotlib: the notebook then shows the HTML summary)."""
        try:
            from .plot import plot_effective_field, to_png

            return to_png(plot_effective_field(self), dpi=80)
        except ImportError:  # MissingExtraError, or matplotlib's own modules absent
            return None

    def describe(self) -> str:
        """One line: effective size against the theoretical box."""
        box = "x".join(map(str, self.theoretical_size)) or "none"
        return (
            f"unit {self.position} of {self.node!r}: effective size {self.size:.2f} px "
            f"(radius {self.radius:.2f} around ({', '.join(f'{c:.2f}' for c in self.centre)})"
            f" holds {self.mass:.0%} of the weight); theoretical box {box}"
        )


def effective_receptive_field(
    graph: Any,
    node: str | None = None,
    position: Any = None,
    *,
    weights: str = "uniform",
    mass: float = 0.95,
) -> EffectiveField:
    """The exact effective receptive field of one unit of ``node`` (Luo et al., 2016).

    Parameters
    ----------
    graph : LayerGraph
        The network.
    node : str, optional
        Default: ``graph.default_node()`` (``"features"``, else the last feature map).
    position : sequence of int, optional
        The unit's spatial position (default: the central unit).
    weights : "uniform" or mapping
        ``"uniform"``: every convolution and linear layer averages its inputs (weights
        ``1 / fan_in``). A mapping from parameter names to arrays (a model's
        ``state_dict()``; names as the graph keys them, ``"<node>.weight"`` for a graph
        built by hand) uses the model's own convolution weights through the layers'
        matrix-free operators (:func:`~convalgebra.operators.conv_operator`, its
        ``rmatvec``), its linear weights, and its batch norms as the inference affine maps
        ``γ / sqrt(running_var + eps)``; biases do not change a gradient. Layers it does not
        name keep uniform weights.
    mass : float
        The share of the weight the effective radius must hold (default 0.95).

    Returns
    -------
    EffectiveField
        ``gradient`` (``d unit / d input``), ``weights`` (its absolute value summed over
        channels, normalised to sum 1), ``box`` (the theoretical field, clipped), ``centre``
        (of mass) and ``radius`` (holding ``mass`` of the weight).

    Raises
    ------
    ConvAlgebraError
        An ancestor of ``node`` is not linear once linearised (a product of two feature maps,
        an opaque op, a flatten that is not the identity, a concatenation along a spatial
        axis), a given weight has the wrong shape, or the arguments are out of range.

    Notes
    -----
    Two 3-tap averages give the triangle ``[1, 2, 3, 2, 1] / 9``: the weight concentrates
    at the centre as layers are stacked (a Gaussian in the limit), while the theoretical
    field grows linearly.

    Examples
    --------
    >>> from convalgebra.network.graph import LayerGraph
    >>> from convalgebra.network.layers import Conv
    >>> g = LayerGraph.sequential((1, 9), [Conv(1, 3), Conv(1, 3)])
    >>> f = effective_receptive_field(g, "conv2", (2,))
    >>> (f.weights * 9).tolist()
    [0.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0, 0.0]
    >>> f.box, f.radius
    (((2, 6),), 2.0)
    """
    own = _own_weights(weights)
    if not 0 < mass <= 1:
        raise ConvAlgebraError(f"mass must be in (0, 1], got {mass!r}")
    if node is None:
        node = graph.default_node()
        if node is None:
            raise ConvAlgebraError(f"{graph!r} has no node with a spatial output")
    node = graph.resolve(node)  # a module path or an alias names its output node
    shape, n = graph.shape(node), graph.spatial_ndim
    if len(shape) != n + 1 or not n:
        raise ConvAlgebraError(f"node {node!r} of shape {shape} has no spatial axes")
    unit = graph.unit_receptive_field(node, position, gates="ignore")
    grads = input_gradients(graph, node, unit.position, own)
    return _summarise(graph, node, unit, grads, mass)


def _own_weights(weights: Any) -> dict | None:
    if isinstance(weights, str):
        if weights != "uniform":
            raise ConvAlgebraError(
                f"weights must be 'uniform' or a mapping of parameter names "
                f"to arrays (e.g. a state_dict), got {weights!r}"
            )
        return None
    if not hasattr(weights, "items"):
        raise TypeError(
            f"weights must be 'uniform' or a mapping of parameter names to arrays, "
            f"got {type(weights).__name__}"
        )
    return {str(k): v for k, v in weights.items()}


def _summarise(graph: Any, node: str, unit: Any, grads: dict, mass: float) -> EffectiveField:
    name = graph.inputs[0]
    shape = graph.shape(name)
    gradient = np.broadcast_to(grads.get(name, budget.zeros((1, *shape[1:]))), shape).copy()
    weights = np.abs(gradient).sum(0)
    total = weights.sum()
    if total == 0:
        return EffectiveField(
            node, unit.position, gradient, weights, unit.box, (math.nan,) * weights.ndim, 0.0, mass
        )
    weights = weights / total
    grid = np.indices(weights.shape).reshape(weights.ndim, -1).astype(float)
    flat = weights.ravel()
    centre = grid @ flat
    distance = np.sqrt(((grid - centre[:, None]) ** 2).sum(0))
    order = np.argsort(distance, kind="stable")
    held = np.cumsum(flat[order])
    radius = float(distance[order][np.searchsorted(held, mass - 1e-9)])  # float sums
    return EffectiveField(
        node,
        unit.position,
        gradient,
        weights,
        unit.box,
        tuple(float(c) for c in centre),
        radius,
        mass,
    )
