"""Solve for equivariant kernels from the layer's own constraint.

The layer ``M(theta)`` is equivariant to a grid symmetry with gathers ``P_in``, ``P_out``
(including channel representations) when

    P_out M(theta) = M(theta) P_in,

and ``M`` is linear in ``theta`` through the triple table, so this is a sparse integer system
on the kernel (:mod:`.constraints`), built and solved exactly without a dense matrix. Its
solutions depend on the layer, not only on the kernel grid: an asymmetric padding or a stride
that samples the grid off-centre removes solutions, reflected or padding-only taps add some.

For comparison the grid constraint ``W[rho_out(o), c, t] = W[o, rho_in^{-1}(c), g^{-1}(t)]``
(the kernel symmetric on its own grid, as in EMLP's constraint solving) is solved too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .. import budget, ops
from ..budget import CHECK_MAX_PRODUCTS, require_table, require_terms
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from ..symbolic.exprs import as_expr_array
from .constraints import (
    SparseSystem,
    annihilates,
    general_form,
    integer_nullspace,
    sympy_basis,
)
from .decide import decide, grid_op, kernel_system, layer, permuted, spec_kernel
from .transforms import GridTransform, flip, rotation, transposition

__all__ = [
    "EquivariantKernels",
    "equivariant_kernels",
    "blind_kernels",
    "grid_kernels",
    "TRANSFORMS",
]

TRANSFORMS = ("rotation", "flip", "transposition", "dihedral")


@dataclass(frozen=True)
class EquivariantKernels:
    """The kernels of a layer that make it commute with a symmetry, exactly.

    Attributes
    ----------
    dimension : int
        Dimension of ``{theta : P_out M(theta) = M(theta) P_in}``.
    basis : list of sympy.ImmutableDenseNDimArray
        Integer basis kernels, each of ``weight_shape``.
    general : sympy.ImmutableDenseNDimArray
        ``sum c_k basis_k`` in parameters ``c1, c2, ...``.
    blind : list of sympy.ImmutableDenseNDimArray
        Basis of the kernels giving the zero layer (taps that only read padding, taps whose
        contributions cancel on collisions): they solve every constraint.
    grid_symmetric : bool
        True when every kernel symmetric on its own grid (``grid_dimension``) makes this layer
        equivariant; False when the layer's sampling grid or padding breaks the symmetry, or
        the kernel grid is not mapped onto itself.
    grid_dimension : int or None
        Dimension of the kernels symmetric on the kernel grid: ``W[o, c, t] =
        W[out_perm[o], in_perm[c], src[t]]`` for every generator, ``src`` its gather on the
        kernel grid. ``None`` when a generator permutes no kernel grid (``src`` has a zero fill
        or repeats a tap, as a zero-fill shift or a rescaling does, or changes the kernel's
        shape), or the layer has groups, tiles or a channel table.
    vectors, blind_vectors, grid_vectors : scipy.sparse.csr_matrix
        The bases as integer rows over the flat kernel.
    constraint : scipy.sparse.csr_matrix
        The layer's constraint rows (one per residual entry).
    """

    spec: ConvSpec
    transform: str
    vectors: sp.csr_matrix
    constraint: sp.csr_matrix
    blind_vectors: sp.csr_matrix
    grid_vectors: sp.csr_matrix | None
    grid_symmetric: bool

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def grid_dimension(self) -> int | None:
        return None if self.grid_vectors is None else int(self.grid_vectors.shape[0])

    @cached_property
    def basis(self) -> list:
        return sympy_basis(self.vectors, self.spec.weight_shape)

    @cached_property
    def general(self):
        return general_form(self.vectors, self.spec.weight_shape)

    @cached_property
    def blind(self) -> list:
        return sympy_basis(self.blind_vectors, self.spec.weight_shape)

    @cached_property
    def grid_general(self):
        """The grid-symmetric kernels' general form (``None`` when not defined)."""
        if self.grid_vectors is None:
            return None
        return general_form(self.grid_vectors, self.spec.weight_shape)

    def contains(self, weight) -> bool:
        """True when ``weight`` satisfies every constraint exactly (numbers or sympy)."""
        import sympy

        w = as_expr_array(weight, self.spec.weight_shape, "weight").ravel()
        exact = np.empty(w.size, dtype=object)  # floats exactly, as the rationals they are
        exact[:] = [sympy.Rational(v) if isinstance(v, sympy.Float) else v for v in w.tolist()]
        coo = self.constraint.tocoo()
        residual = np.array([0] * coo.shape[0], dtype=object)
        np.add.at(residual, coo.row, coo.data.astype(object) * exact[coo.col])
        return all(sympy.expand(v) == 0 for v in residual.tolist())

    def to_text(self) -> str:
        n = self.constraint.shape[1]
        lines = [
            f"kernels of {self.spec.describe()} equivariant to {self.transform}: "
            f"dimension {self.dimension} of {n}"
        ]
        if n <= 400:
            lines.append(f"general form: {self.general.tolist()}")
        if self.blind_vectors.shape[0]:
            lines.append(
                f"of which {self.blind_vectors.shape[0]} blind (kernels giving the zero layer)"
            )
        if self.grid_dimension is not None and (
            not self.grid_symmetric or self.grid_dimension != self.dimension
        ):
            lines.append(
                f"kernels symmetric on the kernel grid: dimension {self.grid_dimension}"
                + (
                    ""
                    if self.grid_symmetric
                    else ", not all of them equivariant on this layer's grid"
                )
            )
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        import sympy

        return (
            f"**{self.dimension}-dimensional** space of kernels equivariant to "
            f"{self.transform}: ${sympy.latex(self.general)}$"
        )

    __str__ = to_text


def _generators(spec: ConvSpec, transform, options: dict) -> list[GridTransform]:
    nd = spec.ndim
    if isinstance(transform, GridTransform):
        return [transform]
    if (
        isinstance(transform, (list, tuple))
        and transform
        and all(isinstance(t, GridTransform) for t in transform)
    ):
        return list(transform)
    if not isinstance(transform, str):
        raise TypeError(
            f"transform must be one of {TRANSFORMS}, a GridTransform or a list of "
            f"them, got {shown(transform)}"
        )
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


def _grid_system(spec: ConvSpec, g: GridTransform, in_perm, out_perm) -> SparseSystem:
    """Rows ``e[rho_out(o), c, t] - e[o, rho_in^{-1}(c), g^{-1}(t)]`` for every kernel entry."""
    k = tuple(spec.kernel_size)
    gather = g.gather(k) if g.out_shape(k) == k else None
    if gather is None or not np.array_equal(np.sort(gather), np.arange(math.prod(k))):
        # a zero fill or a collision: W = g(W) is then no symmetry of the kernel grid
        raise ConvAlgebraError(f"the {g.name} does not map a kernel of size {k} onto itself")
    if spec.groups != 1 or spec.tile is not None or spec.channel_table is not None:
        raise ConvAlgebraError("grid kernels need groups=1, no tiles and no channel table")
    c_out, c_in = spec.weight_shape[-spec.ndim - 2], spec.weight_shape[-spec.ndim - 1]
    if spec.transposed:
        c_out, c_in = c_in, c_out
    taps = math.prod(k)
    rho_out, rho_in = _perm(out_perm, c_out, "out_perm"), _perm(in_perm, c_in, "in_perm")
    tap_src = np.argsort(gather)  # the inverse of the grid permutation
    o, c, t = np.meshgrid(np.arange(c_out), np.arange(c_in), np.arange(taps), indexing="ij")
    inv_in = np.argsort(rho_in)
    lhs = (rho_out[o] * c_in + c) * taps + t
    rhs = (o * c_in + inv_in[c]) * taps + tap_src[t]
    if spec.transposed:  # weight layout (C_in, C_out, *k): swap the channel roles
        lhs = (c * c_out + rho_out[o]) * taps + t
        rhs = (inv_in[c] * c_out + o) * taps + tap_src[t]
    n = c_out * c_in * taps
    r = np.arange(n)
    return SparseSystem(
        np.concatenate((r, r)),
        np.concatenate((lhs.ravel(), rhs.ravel())),
        np.concatenate((budget.ones(n), -budget.ones(n))).astype(np.int64),
        n,
    )


def grid_kernels(
    spec: ConvSpec, generators: list[GridTransform], in_perm=None, out_perm=None
) -> sp.csr_matrix:
    """Basis of the kernels symmetric on their own grid (the kernel-level constraint only).

    Raises ``ConvAlgebraError`` when a generator does not map the kernel grid onto itself.

    Examples
    --------
    >>> grid_kernels(ConvSpec((1, 6, 6), 1, 2), [rotation(1)]).toarray().tolist()
    [[1, 1, 1, 1]]
    """
    n = math.prod(spec.weight_shape)
    return integer_nullspace(
        SparseSystem.stack([_grid_system(spec, g, in_perm, out_perm) for g in generators], n)
    )


def blind_kernels(spec: ConvSpec) -> sp.csr_matrix:
    """Basis of the kernels ``theta`` with ``M(theta) = 0`` (integer rows, CSR).

    Without collisions (no pixel read twice by one output) these are the taps that only
    ever read padding; with reflect/replicate/circular collisions, combinations whose
    contributions cancel.

    Examples
    --------
    >>> blind_kernels(ConvSpec((1, 3), 1, 3, padding=2)).toarray().tolist()
    []
    >>> blind_kernels(ConvSpec((1, 2), 1, 3, padding=2, dilation=2)).toarray().tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    x, w = ops.signal(spec.in_channels, spec.ndim), spec_kernel("weight", spec)
    d = decide(layer(x, w, spec), layer(x, 0 * w, spec), spec)  # the residual is M(w)
    return integer_nullspace(kernel_system(d, "weight", math.prod(spec.weight_shape)))


def _layer_system(spec: ConvSpec, g: GridTransform, in_perm, out_perm) -> SparseSystem:
    """The equations on the kernel of ``M(w) G_in = G_out M(w)``: the residual of the
    identity between operator expressions, decided by ops.prove at the layer's size."""
    x, w = ops.signal(spec.in_channels, spec.ndim), spec_kernel("weight", spec)
    lhs = layer(grid_op(permuted(x, in_perm, "in_perm"), g), w, spec)
    rhs = grid_op(permuted(layer(x, w, spec), out_perm, "out_perm"), g)
    return kernel_system(decide(lhs, rhs, spec), "weight", math.prod(spec.weight_shape))


def _check_grids(spec: ConvSpec, generators: list[GridTransform]) -> None:
    n_in, n_out = spec.input_shape[1:], spec.output_shape[1:]
    for g in generators:
        if g.out_shape(n_in) != n_in or g.out_shape(n_out) != n_out:
            raise ConvAlgebraError(
                f"the {g.name} must map the layer's grids onto themselves; input {n_in} and "
                f"output {n_out} must be square in the transformed axes"
            )


def equivariant_kernels(
    spec: ConvSpec, transform="rotation", *, in_perm=None, out_perm=None, **options
) -> EquivariantKernels:
    """Solve for the kernels that make the layer equivariant to ``transform``, exactly.

    Parameters
    ----------
    spec : ConvSpec
        Any layer (stride, dilation, asymmetric padding, every padding mode, groups,
        transposed, tiles, channel tables); the symmetry must map its input and output grids
        onto themselves.
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
        ``.dimension``, ``.basis``, ``.general``, ``.blind``, ``.grid_symmetric``,
        ``.grid_dimension``, ``.contains``.

    Notes
    -----
    Solves ``P_out M(theta) = M(theta) P_in`` for every generator: both sides are operator
    expressions with a symbolic kernel, and the entries of their residual
    (:func:`convalgebra.ops.prove`) are integer equations on ``theta``. For a layer that
    reads no pixel twice, each equation is ``theta[a] = theta[b]`` or ``theta[a] = 0``, and
    the solutions are orbit indicators (union-find, linear time); otherwise the equations
    left after that pass are eliminated exactly.

    Examples
    --------
    >>> ek = equivariant_kernels(ConvSpec((1, 5, 5), 1, 3), "rotation")
    >>> ek.dimension, ek.grid_symmetric
    (3, True)
    >>> ek.general.tolist()
    [[[[c1, c2, c1], [c2, c3, c2], [c1, c2, c1]]]]
    >>> equivariant_kernels(ConvSpec((2, 5, 5), 2, 1), "flip", in_perm=[1, 0], out_perm=[1, 0]).dimension
    2

    An asymmetric "same" padding (1 before, 2 after) centres the symmetric kernels on one tap:

    >>> ek = equivariant_kernels(ConvSpec((1, 6, 6), 1, 4, padding="same"), "rotation")
    >>> ek.dimension, ek.grid_dimension, ek.grid_symmetric
    (3, 4, False)

    A zero-fill shift moves taps off the kernel grid: no grid symmetry is defined.

    >>> from convalgebra.identities.transforms import shift
    >>> ek = equivariant_kernels(ConvSpec((1, 6, 6), 1, 3), shift((1, 0)))
    >>> ek.dimension, ek.grid_dimension, ek.grid_symmetric
    (3, None, False)
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    max_products = options.pop("max_products", CHECK_MAX_PRODUCTS)
    require_table(spec, "equivariant_kernels", max_products)
    n = math.prod(spec.weight_shape)
    require_terms(
        spec,
        "the kernel constraints (weights squared)",
        n * n,
        max_products,
        "use fewer channels or a smaller kernel, or a larger max_products=",
        option="max_products",
    )
    gens = _generators(spec, transform, options)
    _check_grids(spec, gens)
    n = math.prod(spec.weight_shape)
    system = SparseSystem.stack([_layer_system(spec, g, in_perm, out_perm) for g in gens], n)
    vectors = integer_nullspace(system)
    try:
        grid = grid_kernels(spec, gens, in_perm, out_perm)
        symmetric = annihilates(system, grid)
    except ConvAlgebraError:
        grid, symmetric = None, False
    name = transform if isinstance(transform, str) else ", ".join(g.name for g in gens)
    return EquivariantKernels(
        spec, name, vectors, system.matrix(), blind_kernels(spec), grid, symmetric
    )
