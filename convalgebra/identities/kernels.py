"""Solve for equivariant kernels: the nullspace of the stacked symmetry constraints.

For a grid symmetry ``g`` (acting on the kernel's taps by a permutation) and channel
representations ``rho_in``, ``rho_out`` (permutations), the layer is equivariant when

    W[rho_out(o), c, t] = W[o, rho_in^{-1}(c), g^{-1}(t)]     for every o, c, t

-- one linear constraint ``(Q_g - I) vec(W) = 0`` per generator, as in EMLP's constraint
solving. The exact solution space is the rational nullspace of the stacked constraints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..budget import CHECK_MAX_PRODUCTS, require_table, require_terms
from ..errors import ConvAlgebraError, shown
from ..exprs import as_expr_array
from ..spec import ConvSpec
from .engine import rational_nullspace
from .transforms import GridTransform, flip, rotation, transposition

__all__ = ["EquivariantKernels", "equivariant_kernels", "TRANSFORMS"]

TRANSFORMS = ("rotation", "flip", "transposition", "dihedral")


@dataclass(frozen=True)
class EquivariantKernels:
    """The kernels of a spec that commute with a symmetry.

    Attributes
    ----------
    dimension : int
        Dimension of the solution space.
    basis : list of sympy.ImmutableDenseNDimArray
        Integer basis kernels, each of ``weight_shape``.
    general : sympy.ImmutableDenseNDimArray
        ``sum c_k basis_k`` in parameters ``c1, c2, ...``.
    constraint : numpy.ndarray
        The stacked constraint rows ``(Q_g - I)`` (one row per kernel entry and generator).
    """

    spec: ConvSpec
    transform: str
    dimension: int
    basis: list
    general: object
    constraint: np.ndarray

    def contains(self, weight) -> bool:
        """True when ``weight`` satisfies every constraint exactly (numbers or sympy)."""
        import sympy

        w = sympy.Matrix(as_expr_array(weight, self.spec.weight_shape, "weight").ravel().tolist())
        residual = sympy.Matrix(self.constraint.tolist()) * w
        return all(sympy.simplify(v) == 0 for v in residual)

    def to_text(self) -> str:
        return (f"kernels of {self.spec.describe()} equivariant to {self.transform}: "
                f"dimension {self.dimension} of {self.constraint.shape[1]}\n"
                f"general form: {self.general.tolist()}")

    def _repr_markdown_(self) -> str:
        import sympy

        return (f"**{self.dimension}-dimensional** space of kernels equivariant to "
                f"{self.transform}: ${sympy.latex(self.general)}$")

    __str__ = to_text


def _generators(spec: ConvSpec, transform, options: dict) -> list[GridTransform]:
    nd = spec.ndim
    if isinstance(transform, GridTransform):
        return [transform]
    if (isinstance(transform, (list, tuple)) and transform
            and all(isinstance(t, GridTransform) for t in transform)):
        return list(transform)
    if not isinstance(transform, str):
        raise TypeError(f"transform must be one of {TRANSFORMS}, a GridTransform or a list of "
                        f"them, got {shown(transform)}")
    if transform == "rotation":
        return [rotation(options.get("k", 1), options.get("axes", (0, 1)), nd)]
    if transform == "flip":
        return [flip(options.get("axis", 0), nd)]
    if transform == "transposition":
        return [transposition(options.get("axes", (0, 1)), nd)]
    if transform == "dihedral":
        axes = options.get("axes", (0, 1))
        return [rotation(1, axes, nd), flip(axes[0], nd)]
    raise ConvAlgebraError(
        f"transform must be one of {TRANSFORMS} or a GridTransform, got {shown(transform)}"
    )


def _perm(perm, n: int, name: str) -> np.ndarray:
    if perm is None:
        return np.arange(n)
    p = np.asarray(perm, dtype=np.int64)
    if p.shape != (n,) or sorted(p.tolist()) != list(range(n)):
        raise ConvAlgebraError(f"{name} must be a permutation of range({n}), got {list(perm)}")
    return p


def _constraint(spec: ConvSpec, g: GridTransform, in_perm, out_perm) -> np.ndarray:
    """Rows ``e[rho_out(o), c, t] - e[o, rho_in^{-1}(c), g^{-1}(t)]`` for every kernel entry."""
    k = tuple(spec.kernel_size)
    if g.out_shape(k) != k:
        raise ConvAlgebraError(f"the {g.name} does not map a kernel of size {k} onto itself")
    c_out, c_in = spec.weight_shape[-spec.ndim - 2], spec.weight_shape[-spec.ndim - 1]
    if spec.transposed:
        c_out, c_in = c_in, c_out
    if spec.groups != 1 or spec.tile is not None or spec.channel_table is not None:
        raise ConvAlgebraError("equivariant_kernels needs groups=1, no tiles and no channel table")
    taps = math.prod(k)
    rho_out, rho_in = _perm(out_perm, c_out, "out_perm"), _perm(in_perm, c_in, "in_perm")
    tap_src = np.argsort(g.gather(k))   # the inverse of the grid transformation
    o, c, t = np.meshgrid(np.arange(c_out), np.arange(c_in), np.arange(taps), indexing="ij")
    inv_in = np.argsort(rho_in)
    lhs = (rho_out[o] * c_in + c) * taps + t
    rhs = (o * c_in + inv_in[c]) * taps + tap_src[t]
    if spec.transposed:  # weight layout (C_in, C_out, *k): swap the channel roles
        lhs = (c * c_out + rho_out[o]) * taps + t
        rhs = (inv_in[c] * c_out + o) * taps + tap_src[t]
    n = c_out * c_in * taps
    rows = np.zeros((n, n), dtype=np.int64)
    r = np.arange(n)
    np.add.at(rows, (r, lhs.ravel()), 1)
    np.add.at(rows, (r, rhs.ravel()), -1)
    return rows


def equivariant_kernels(spec: ConvSpec, transform="rotation", *, in_perm=None, out_perm=None,
                        **options) -> EquivariantKernels:
    """Solve for the kernels that make the layer equivariant to ``transform``.

    Parameters
    ----------
    spec : ConvSpec
        ``groups=1``; the symmetry must map the kernel grid onto itself.
    transform : {"rotation", "flip", "transposition", "dihedral"} or GridTransform(s)
        ``"rotation"`` is generated by a quarter turn (``k``, ``axes`` options),
        ``"flip"`` mirrors ``axis``, ``"dihedral"`` is quarter turns and a mirror.
    in_perm, out_perm : sequence of int, optional
        Channel representation of the generator, as a gather: channel ``c`` of the
        transformed input is channel ``in_perm[c]`` of the original.
    **options
        ``k``/``axes``/``axis`` of the transform, and ``max_products`` (default 500,000):
        refuse layers with more triples, or kernels whose constraint matrix (weights squared)
        has more entries, before any work.

    Returns
    -------
    EquivariantKernels
        ``.dimension``, ``.basis`` (sympy arrays), ``.general`` (parametrised kernel).

    Examples
    --------
    >>> ek = equivariant_kernels(ConvSpec((1, 5, 5), 1, 3), "rotation")
    >>> ek.dimension
    3
    >>> ek.general.tolist()
    [[[[c1, c2, c1], [c2, c3, c2], [c1, c2, c1]]]]
    >>> equivariant_kernels(ConvSpec((2, 5, 5), 2, 1), "flip", in_perm=[1, 0], out_perm=[1, 0]).dimension
    2
    """
    import sympy

    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    max_products = options.pop("max_products", CHECK_MAX_PRODUCTS)
    require_table(spec, "equivariant_kernels", max_products)
    n = math.prod(spec.weight_shape)
    require_terms(spec, "the kernel constraints (weights squared)", n * n, max_products,
                  "use fewer channels or a smaller kernel, or a larger max_products=",
                  option="max_products")
    gens = _generators(spec, transform, options)
    rows = np.concatenate([_constraint(spec, g, in_perm, out_perm) for g in gens])
    rows = np.unique(rows[np.any(rows != 0, axis=1)], axis=0)
    n = math.prod(spec.weight_shape)
    basis = rational_nullspace(rows, n)
    basis = sorted(basis, key=lambda v: next(i for i, e in enumerate(v) if e != 0))
    params = sympy.symbols(f"c1:{len(basis) + 1}")
    general = sum((p * b for p, b in zip(params, basis)), sympy.zeros(n, 1))
    shape = spec.weight_shape
    arrays = [sympy.ImmutableDenseNDimArray(list(b), shape) for b in basis]
    name = transform if isinstance(transform, str) else ", ".join(g.name for g in gens)
    return EquivariantKernels(spec, name, len(basis), arrays,
                              sympy.ImmutableDenseNDimArray(list(general), shape), rows)
