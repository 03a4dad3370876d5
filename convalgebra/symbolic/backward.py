r"""The backward pass of a convolution as equations, instantiated and in general form.

:func:`symbolic_backward` writes, for one concrete layer, the forward equations
``z1 = w1*a1 + …``, every kernel gradient ``dL/dw_k`` as a sum over outputs (eq. 9.11 of the
Deep Learning book, instantiated) and every input gradient ``dL/da_i`` as a sum over kernel
taps (eq. 9.13, instantiated), all read off the layer's triple table in O(nnz).
:func:`general_formulas` gives the book's index formulas (eq. 9.8, 9.11, 9.13) as sympy
``Sum``/``Indexed`` expressions, and :func:`check_general_formulas` expands them for the
layer's sizes and compares them with the instantiated equations.

Symbols
-------
* ``w1 … w9``, ``a1 … a25``, ``z1 … z4``, ``b1 …`` (1-based, row-major) for single-channel
  tensors; ``w_{o,i,m,n}``, ``a_{c,m,n}``, ``z_{c,m,n}`` (1-based) with several channels
  (see :mod:`convalgebra.symbolic`).
* Upstream and computed gradients are :class:`GradSymbol`\ s named ``dL/d<symbol>``:
  ``dL/dz1`` prints as ``dL/dz1`` and renders in LaTeX as
  ``\frac{\partial L}{\partial z_{1}}``. Build one with :func:`grad_symbol`.
* In the general formulas the book's tensors are ``IndexedBase``\ s ``V`` (input), ``K``
  (kernel stack), ``Z`` (output), ``G`` (upstream gradient), ``g`` (kernel gradient) and
  ``h`` (input gradient), with 1-based indices as in the book.

The book's eq. 9.8 is a cross-correlation (the kernel is not flipped), like PyTorch and like
``ConvSpec``'s default. It covers every forward spec once ``V`` is read as the *padded* input
(zeros, or the copies a circular/reflect/replicate mode makes) and ``K`` as the dense kernel
stack (zeros between dilated taps and between channels a group does not connect, reversed
when ``flip=True``). :func:`check_general_formulas` makes exactly these substitutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from .. import budget
from ..budget import DEFAULT_MAX_TERMS, require_symbolic
from ..connectivity import layer_rows_cols, triples
from ..display import short_repr, summary_html
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from .exprs import as_expr
from .matrix import input_symbols, output_symbols, symbol_array, weight_symbols

__all__ = [
    "GeneralFormulas",
    "GradSymbol",
    "SymbolicBackward",
    "check_general_formulas",
    "general_formulas",
    "grad_symbol",
    "symbolic_backward",
]


class GradSymbol(sympy.Symbol):
    r"""A symbol ``dL/d<var>``: prints as ``dL/dz1``, LaTeX ``\frac{\partial L}{\partial z_{1}}``.

    Examples
    --------
    >>> g = grad_symbol(sympy.Symbol("z1"))
    >>> g, sympy.latex(g)
    (dL/dz1, '\\frac{\\partial L}{\\partial z_{1}}')
    """

    PREFIX = "dL/d"

    @property
    def variable(self) -> sympy.Symbol:
        """The symbol this is the gradient with respect to (``z1`` for ``dL/dz1``)."""
        return sympy.Symbol(self.name[len(self.PREFIX) :])

    def _latex(self, printer) -> str:
        return rf"\frac{{\partial L}}{{\partial {printer._print(self.variable)}}}"


def grad_symbol(variable) -> GradSymbol:
    """The gradient symbol ``dL/d<variable>`` of a sympy symbol (or of a name)."""
    name = variable.name if isinstance(variable, sympy.Symbol) else str(variable)
    return GradSymbol(GradSymbol.PREFIX + name)


def _grad_array(symbols: np.ndarray) -> np.ndarray:
    out = np.empty(symbols.size, dtype=object)
    out[:] = [grad_symbol(s) for s in symbols.ravel()]
    return out.reshape(symbols.shape)


@dataclass(frozen=True, eq=False)
class SymbolicBackward:
    """Forward and backward equations of one layer (result of :func:`symbolic_backward`).

    Attributes
    ----------
    spec : ConvSpec
    weight, input, output, bias : ndarray of sympy.Symbol
        ``w``, ``a``, ``z`` and ``b`` symbols in the layer's shapes (``bias`` is empty when the
        equations carry no bias).
    grad_output : ndarray of GradSymbol
        ``dL/dz`` symbols in ``spec.output_shape``.
    forward : tuple of sympy.Eq
        ``z_o = sum w*a (+ b)``, one per output in C order.
    weight_gradient : tuple of sympy.Eq
        ``dL/dw_k = sum over outputs of a * dL/dz`` (eq. 9.11), one per weight in C order.
    input_gradient : tuple of sympy.Eq
        ``dL/da_i = sum over taps of w * dL/dz`` (eq. 9.13), one per input in C order; ``0``
        for inputs no output reads.
    bias_gradient : tuple of sympy.Eq
        ``dL/db_c = sum of dL/dz over channel c``.

    sympy sorts the terms of a sum by name; :meth:`factors` keeps the natural order (outputs
    in C order, taps in C order) for printing as a textbook would.
    """

    spec: ConvSpec
    weight: np.ndarray
    input: np.ndarray
    output: np.ndarray
    bias: np.ndarray
    grad_output: np.ndarray
    # (left sides, ordered factor pairs) per kind; the sympy equations are built on first use,
    # so a caller that prints a few of them pays for those only
    _pairs: dict = field(default_factory=dict, repr=False)
    _factors: dict = field(default_factory=dict, repr=False)
    _index: dict = field(default_factory=dict, init=False, repr=False)
    _built: dict = field(default_factory=dict, init=False, repr=False)

    def _counts(self) -> dict[str, int]:
        """Equations of each kind, counted without building them."""
        return {kind: int(np.size(self.left_sides(kind))) for kind in self._pairs}

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in self._counts().items())
        return short_repr("SymbolicBackward", f"{self.spec.describe()}: {counts} equations")

    def _repr_html_(self) -> str:
        items: dict[str, object] = {"layer": self.spec.describe()}
        items.update({f"{kind} equations": n for kind, n in self._counts().items()})
        return summary_html("SymbolicBackward", items)

    def _kind(self, kind: str) -> tuple:
        if kind not in self._built:
            lhs, pairs = self._pairs[kind]
            self._built[kind] = _equations(lhs, pairs)
        return self._built[kind]

    def left_sides(self, kind: str) -> np.ndarray:
        """Left-side symbols of ``kind`` (``"forward"``, ``"weight"``, ``"input"``, ``"bias"``) in layer shape.

        Examples
        --------
        >>> symbolic_backward(ConvSpec((1, 3), 1, 2), bias=False).left_sides("weight").tolist()
        [[[dL/dw1, dL/dw2]]]
        """
        if kind not in self._pairs:
            raise ConvAlgebraError(f"kind must be one of {tuple(self._pairs)}, got {shown(kind)}")
        return self._pairs[kind][0]

    @property
    def forward(self) -> tuple:
        """``z_o = sum w*a (+ b)``, one per output in C order."""
        return self._kind("forward")

    @property
    def weight_gradient(self) -> tuple:
        """``dL/dw_k = sum over outputs of a * dL/dz`` (eq. 9.11), one per weight in C order."""
        return self._kind("weight")

    @property
    def input_gradient(self) -> tuple:
        """``dL/da_i = sum over taps of w * dL/dz`` (eq. 9.13), one per input in C order."""
        return self._kind("input")

    @property
    def bias_gradient(self) -> tuple:
        """``dL/db_c = sum of dL/dz over channel c``."""
        return self._kind("bias")

    @property
    def equations(self) -> tuple:
        """All equations: forward, kernel, bias and input gradients, in that order."""
        return self.forward + self.weight_gradient + self.bias_gradient + self.input_gradient

    def __getitem__(self, lhs) -> sympy.Eq:
        """The equation whose left side is ``lhs`` (a symbol or its name, e.g. ``"dL/da13"``)."""
        if not self._index:
            self._index.update({str(eq.lhs): eq for eq in self.equations})
        try:
            return self._index[str(lhs)]
        except KeyError:
            raise KeyError(
                f"no equation for {lhs!s}; left sides are the output symbols and dL/d<symbol> "
                f"for weights, biases and inputs, e.g. {self.equations[0].lhs}"
            ) from None

    def factors(self, lhs) -> tuple:
        """The terms of ``lhs``'s equation in natural order, each as a pair of factors.

        ``(w, a)`` for a forward equation, ``(a, dL/dz)`` for a kernel gradient, ``(w, dL/dz)``
        for an input gradient, ``(1, dL/dz)`` for a bias gradient (bias terms: ``(1, b)``).
        """
        key = str(lhs)
        if key not in self._factors:
            self[lhs]  # raises a KeyError naming the valid left sides
        return self._factors[key]

    def general(self) -> GeneralFormulas:
        """The book's general formulas for this spec (:func:`general_formulas`)."""
        return general_formulas(self.spec)

    def check_general(self, formulas: GeneralFormulas | None = None) -> bool:
        """:func:`check_general_formulas` of these equations."""
        return check_general_formulas(self, formulas)


def _layer_triples(spec: ConvSpec) -> tuple[list, list, list]:
    t = triples(spec)
    rows, cols = layer_rows_cols(spec, t)
    return rows.tolist(), cols.tolist(), t.weight_index.tolist()


def _equations(lhs: np.ndarray, pairs: list[list]) -> tuple:
    """One ``Eq(lhs, sum of products)`` per left side."""
    return tuple(
        sympy.Eq(left, sympy.Add(*(x * y for x, y in parts)), evaluate=False)
        for left, parts in zip(lhs.ravel(), pairs)
    )


def symbolic_backward(
    spec: ConvSpec, *, bias: bool | None = None, max_terms: int = DEFAULT_MAX_TERMS
) -> SymbolicBackward:
    """Forward equations and every gradient of a layer, as sympy equations.

    Parameters
    ----------
    spec : ConvSpec
        Any spec; the equations follow its matrix (transposed specs included).
    bias : bool, optional
        Add the bias ``b_c`` to the forward equations and give ``dL/db``; default
        ``spec.bias``.
    max_terms : int
        Refuse layers with more products than this (symbolic work is for small layers).

    Returns
    -------
    SymbolicBackward
        The forward equations ``z = ...`` and the gradient equations ``dL/dw``, ``dL/da``
        (and ``dL/db``) as sympy equations, indexed by their left-hand side (``bw["dL/dw1"]``).

    Examples
    --------
    The Deep Learning course example (5×5 input, 3×3 kernel, stride 2):

    >>> bw = symbolic_backward(ConvSpec((1, 5, 5), 1, 3, stride=2), bias=False)
    >>> bw.forward[0]
    Eq(z1, a1*w1 + a11*w7 + a12*w8 + a13*w9 + a2*w2 + a3*w3 + a6*w4 + a7*w5 + a8*w6)
    >>> bw["dL/dw1"]
    Eq(dL/dw1, dL/dz1*a1 + dL/dz2*a3 + dL/dz3*a11 + dL/dz4*a13)
    >>> bw["dL/da13"]
    Eq(dL/da13, dL/dz1*w9 + dL/dz2*w7 + dL/dz3*w3 + dL/dz4*w1)
    >>> bw.factors("dL/da13")
    ((w9, dL/dz1), (w7, dL/dz2), (w3, dL/dz3), (w1, dL/dz4))
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    if bias is not None and not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"bias must be a bool or None (default: spec.bias), got {shown(bias)}")
    with_bias = spec.bias if bias is None else bool(bias)
    require_symbolic(spec, "the symbolic backward pass", max_terms)
    w, a, z = weight_symbols(spec), input_symbols(spec), output_symbols(spec)
    b = symbol_array("b", (spec.out_channels,)) if with_bias else np.empty(0, dtype=object)
    g = _grad_array(z)
    flat_w, flat_a, flat_g = w.ravel(), a.ravel(), g.ravel()
    fwd: list[list[tuple[Any, Any]]] = [[] for _ in range(z.size)]
    dw: list[list[tuple[Any, Any]]] = [[] for _ in range(w.size)]
    da: list[list[tuple[Any, Any]]] = [[] for _ in range(a.size)]
    for r, c, k in zip(*_layer_triples(spec)):
        fwd[r].append((flat_w[k], flat_a[c]))
        dw[k].append((flat_a[c], flat_g[r]))
        da[c].append((flat_w[k], flat_g[r]))
    one = sympy.Integer(1)
    per_channel = math.prod(spec.output_shape[1:])
    if with_bias:
        for r in range(z.size):
            fwd[r].append((one, b[r // per_channel]))
    db = [[(one, v) for v in g[c].ravel()] for c in range(spec.out_channels)] if with_bias else []
    kinds = {
        "forward": (z, fwd),
        "weight": (_grad_array(w), dw),
        "input": (_grad_array(a), da),
        "bias": (_grad_array(b), db),
    }
    factors = {
        str(left): tuple(parts)
        for lhs, pairs in kinds.values()
        for left, parts in zip(lhs.ravel(), pairs)
    }
    return SymbolicBackward(
        spec=spec,
        weight=w,
        input=a,
        output=z,
        bias=b,
        grad_output=g,
        _pairs=kinds,
        _factors=factors,
    )


# ------------------------------------------------------------------ general formulas
_SUFFIXES = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}


def _letters(ndim: int, book: tuple[str, str], stem: str) -> tuple[sympy.Symbol, ...]:
    """The book's 2-D index letters, the first of them in 1-D, ``stem_1 …`` in 3-D."""
    names = (
        book
        if ndim == 2
        else book[:1]
        if ndim == 1
        else tuple(f"{stem}_{a + 1}" for a in range(ndim))
    )
    return tuple(sympy.Symbol(n, integer=True, positive=True) for n in names)


class _Indicator(sympy.Function):
    """``[x == y]``: 1 or 0 once both sides are numbers (a delta Sum.doit does not solve)."""

    @classmethod
    def eval(cls, x, y):
        if x.is_number and y.is_number:
            return sympy.S.One if x == y else sympy.S.Zero
        return None


@dataclass(frozen=True, eq=False)
class GeneralFormulas:
    """The book's general index formulas for a layer's sizes (1-based, as in the book).

    Attributes
    ----------
    forward : sympy.Eq
        Eq. 9.8, ``Z[i, j, k] = Sum(V[l, (j-1)*s + m, (k-1)*s + n] * K[i, l, m, n], …)``.
    weight_gradient : sympy.Eq
        Eq. 9.11, ``g[i, j, k, l] = Sum(G[i, m, n] * V[j, (m-1)*s + k, (n-1)*s + l], …)``.
    input_gradient : sympy.Eq
        Eq. 9.13, ``h[i, j, k] = Sum(KroneckerDelta((l-1)*s + m, j) *
        KroneckerDelta((n-1)*s + p, k) * K[q, i, m, p] * G[q, l, n], …)`` -- the book's
        "such that" conditions written as Kronecker deltas.
    sizes : dict
        Values of the size symbols for the spec: ``s`` (or ``s_h, s_w``) the stride,
        ``C_{in}``, ``C_{out}``, ``k_h, k_w`` the (dilated) kernel extents, ``H_{out},
        W_{out}`` the output and ``H_{pad}, W_{pad}`` the padded input sizes (``d, h, w``
        suffixes in 3-D, ``w`` in 1-D).
    """

    forward: sympy.Eq
    weight_gradient: sympy.Eq
    input_gradient: sympy.Eq
    sizes: dict

    # cache of summed and compiled right sides; init=False so dataclasses.replace starts afresh
    _summed: dict = field(default_factory=dict, init=False, repr=False)

    def summed(self, which: str) -> sympy.Expr:
        """Right side of ``which`` with the sizes substituted and every sum done (``.doit()``).

        ``which`` is ``"forward"``, ``"weight_gradient"`` or ``"input_gradient"``. The free
        indices stay symbolic, so eq. 9.13's "such that" conditions (Kronecker deltas) stay as
        indicators ``_Indicator(j, m + s*(l - 1))`` until an index is given; cached.
        """
        if which not in ("forward", "weight_gradient", "input_gradient"):
            raise ConvAlgebraError(
                f"which must be 'forward', 'weight_gradient' or 'input_gradient', got {shown(which)}"
            )
        if which not in self._summed:
            rhs = getattr(self, which).rhs.xreplace(self.sizes)
            # Sum.doit solves a Kronecker delta for the summation variable without checking
            # that the solution is an integer (delta(j, 2*l - 1) gives l = (j + 1)/2 even for
            # even j); as a plain indicator every term is expanded and tested exactly.
            rhs = rhs.replace(sympy.KroneckerDelta, _Indicator)
            self._summed[which] = rhs.doit()
        return self._summed[which]

    def evaluate(self, which: str, index, values: dict | None = None) -> sympy.Expr:
        """:meth:`summed` at a 1-based index tuple of the left side.

        Parameters
        ----------
        which : {"forward", "weight_gradient", "input_gradient"}
        index : tuple of int
            1-based values of the left side's indices (e.g. ``(i, j, k)``).
        values : dict, optional
            ``{"V": table, "K": table, "G": table}``, each table mapping 1-based index tuples
            to what that entry stands for; default the ``Indexed`` entries themselves. An
            entry missing from a table (an index out of range or not an integer) raises
            ``KeyError``.

        Examples
        --------
        >>> f = general_formulas(ConvSpec((1, 5, 5), 1, 3, stride=2))
        >>> f.evaluate("input_gradient", (1, 3, 3))
        G[1, 1, 1]*K[1, 1, 3, 3] + G[1, 1, 2]*K[1, 1, 3, 1] + G[1, 2, 1]*K[1, 1, 1, 3] + G[1, 2, 2]*K[1, 1, 1, 1]
        """
        free = getattr(self, which).lhs.indices
        if len(index) != len(free):
            raise ConvAlgebraError(
                f"index must have {len(free)} entries {free}, got {shown(index)}"
            )
        tensors = [
            _Lookup(sympy.IndexedBase(name), None if values is None else values[name])
            for name in "VKG"
        ]
        return as_expr(self._compiled(which)(*(int(v) for v in index), *tensors), "values")

    def _compiled(self, which: str):
        """:meth:`summed` as a Python function of the free indices and the tensors V, K, G."""
        key = "compiled " + which
        if key not in self._summed:
            bases = [sympy.IndexedBase(name) for name in "VKG"]
            self._summed[key] = sympy.lambdify(
                [*getattr(self, which).lhs.indices, *bases],
                self.summed(which),
                modules=[{"_Indicator": lambda x, y: int(x == y)}, "math"],
            )
        return self._summed[key]


class _Lookup:
    """Entries of a book tensor for compiled formulas: a table, or the Indexed symbols."""

    def __init__(self, base: sympy.IndexedBase, table: dict | None):
        self.base, self.table = base, table

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        return self.base[index] if self.table is None else self.table[index]


def _book_scope(spec: ConvSpec) -> None:
    if spec.transposed or spec.tile is not None:
        kind = "transposed" if spec.transposed else "tiled/locally connected"
        raise ConvAlgebraError(
            f"eq. 9.8, 9.11 and 9.13 describe a forward convolution with one shared kernel; "
            f"{spec.describe()} is {kind}"
            + (
                " (its matrix is the transpose of transpose_spec(spec)'s)"
                if spec.transposed
                else ""
            )
        )


def _size_symbols(spec: ConvSpec) -> dict[str, tuple]:
    suffix = _SUFFIXES[spec.ndim]
    pos = {"integer": True, "positive": True}
    uniform = len(set(spec.stride)) == 1
    strides = tuple(sympy.Symbol("s" if uniform else f"s_{x}", **pos) for x in suffix)
    return {
        "s": strides,
        "k": tuple(sympy.Symbol(f"k_{x}", **pos) for x in suffix),
        "out": tuple(sympy.Symbol(f"{x.upper()}_{{out}}", **pos) for x in suffix),
        "pad": tuple(sympy.Symbol(f"{x.upper()}_{{pad}}", **pos) for x in suffix),
        "c_in": sympy.Symbol("C_{in}", **pos),
        "c_out": sympy.Symbol("C_{out}", **pos),
    }


def _size_values(spec: ConvSpec, sym: dict) -> dict:
    extent = [d * (k - 1) + 1 for k, d in zip(spec.kernel_size, spec.dilation)]
    padded = [n + b + a for n, (b, a) in zip(spec.input_shape[1:], spec.padding)]
    values = {sym["c_in"]: spec.in_channels, sym["c_out"]: spec.out_channels}
    for axis in range(spec.ndim):
        values[sym["s"][axis]] = spec.stride[axis]
        values[sym["k"][axis]] = extent[axis]
        values[sym["out"][axis]] = spec.output_shape[axis + 1]
        values[sym["pad"][axis]] = padded[axis]
    return {k: sympy.Integer(v) for k, v in values.items()}


def general_formulas(spec: ConvSpec) -> GeneralFormulas:
    """Eq. 9.8, 9.11 and 9.13 of the Deep Learning book as sympy ``Sum``/``Indexed``.

    Written for the spec's number of spatial dimensions and per-axis strides; ``V`` is the
    padded input and ``K`` the dense kernel stack (see the module notes).

    Examples
    --------
    >>> f = general_formulas(ConvSpec((1, 5, 5), 1, 3, stride=2))
    >>> f.forward
    Eq(Z[i, j, k], Sum(K[i, l, m, n]*V[l, m + s*(j - 1), n + s*(k - 1)], (l, 1, C_{in}), (m, 1, k_h), (n, 1, k_w)))
    >>> f.weight_gradient
    Eq(g[i, j, k, l], Sum(G[i, m, n]*V[j, k + s*(m - 1), l + s*(n - 1)], (m, 1, H_{out}), (n, 1, W_{out})))
    """
    _book_scope(spec)
    n = spec.ndim
    sym = _size_symbols(spec)
    s, ext, out = sym["s"], sym["k"], sym["out"]
    V, K, G, Z = (sympy.IndexedBase(x) for x in ("V", "K", "G", "Z"))
    i, j, l, q = (sympy.Symbol(x, integer=True, positive=True) for x in "ijlq")
    # eq. 9.8
    J, M = _letters(n, ("j", "k"), "j"), _letters(n, ("m", "n"), "m")
    term = V[(l, *((jj - 1) * sa + mm for jj, sa, mm in zip(J, s, M)))] * K[(i, l, *M)]
    forward = sympy.Eq(
        Z[(i, *J)], sympy.Sum(term, (l, 1, sym["c_in"]), *((mm, 1, e) for mm, e in zip(M, ext)))
    )
    # eq. 9.11
    KK = _letters(n, ("k", "l"), "k")
    term = G[(i, *M)] * V[(j, *((mm - 1) * sa + kk for mm, sa, kk in zip(M, s, KK)))]
    weight = sympy.Eq(
        sympy.IndexedBase("g")[(i, j, *KK)], sympy.Sum(term, *((mm, 1, o) for mm, o in zip(M, out)))
    )
    # eq. 9.13 -- taps first: each delta is then solved for a unit-coefficient variable
    L, P = _letters(n, ("l", "n"), "l"), _letters(n, ("m", "p"), "m")
    deltas = sympy.Mul(
        *(sympy.KroneckerDelta((ll - 1) * sa + pp, jj) for ll, sa, pp, jj in zip(L, s, P, J))
    )
    term = deltas * K[(q, i, *P)] * G[(q, *L)]
    inputs = sympy.Eq(
        sympy.IndexedBase("h")[(i, *J)],
        sympy.Sum(
            term,
            *((pp, 1, e) for pp, e in zip(P, ext)),
            *((ll, 1, o) for ll, o in zip(L, out)),
            (q, 1, sym["c_out"]),
        ),
    )
    return GeneralFormulas(forward, weight, inputs, _size_values(spec, sym))


# ------------------------------------------------- general against instantiated
def _padded_inputs(spec: ConvSpec) -> np.ndarray:
    """Flat input index (per channel) read at each padded position; -1 for a zero."""
    from ..taps import map_padded

    tables = [
        map_padded(np.arange(-b, n + a), n, spec.padding_mode)
        for n, (b, a) in zip(spec.input_shape[1:], spec.padding)
    ]
    grids = np.meshgrid(*tables, indexing="ij")
    valid = np.logical_and.reduce([g >= 0 for g in grids])
    flat = np.ravel_multi_index(tuple(np.maximum(g, 0) for g in grids), spec.input_shape[1:])
    return np.where(valid, flat, -1)


def _dense_kernel(spec: ConvSpec, weight: np.ndarray) -> np.ndarray:
    """The book's ``K``: (C_out, C_in, *extent) of weights or 0 (dilation holes, groups)."""
    c_out, c_in = spec.out_channels, spec.in_channels
    dense = budget.zeros(
        (c_out, c_in, *(d * (k - 1) + 1 for k, d in zip(spec.kernel_size, spec.dilation))),
        dtype=object,
    )
    reverse: tuple[Any, ...] = (Ellipsis, *(slice(None, None, -1),) * spec.ndim)
    taps = weight[reverse] if spec.flip else weight
    holes = tuple(slice(None, None, d) for d in spec.dilation)
    if spec.channel_table is not None:
        table = np.asarray(spec.channel_table, dtype=bool)
        dense[(slice(None), slice(None), *holes)] = np.where(
            table[(...,) + (None,) * spec.ndim], taps, 0
        )
        return dense
    per_out, per_in = c_out // spec.groups, c_in // spec.groups
    for group in range(spec.groups):
        rows, cols = (
            slice(group * per_out, (group + 1) * per_out),
            slice(group * per_in, (group + 1) * per_in),
        )
        dense[(rows, cols, *holes)] = taps[rows]
    return dense


def _tables(bw: SymbolicBackward) -> dict:
    """What ``V[..]``, ``K[..]`` and ``G[..]`` (1-based) stand for in this layer."""
    spec = bw.spec
    flat_a = bw.input.reshape(spec.in_channels, -1)
    one_based = lambda idx: tuple(p + 1 for p in idx)  # noqa: E731
    padded = _padded_inputs(spec)
    return {
        "V": {
            (c + 1, *one_based(pos)): flat_a[c, src] if src >= 0 else 0
            for c in range(spec.in_channels)
            for pos, src in np.ndenumerate(padded)
        },
        "K": {one_based(i): v for i, v in np.ndenumerate(_dense_kernel(spec, bw.weight))},
        "G": {one_based(i): v for i, v in np.ndenumerate(bw.grad_output)},
    }


def _evaluate(formulas: GeneralFormulas, which: str, index: tuple, tables: dict):
    """The formula at a 0-based index, or None when it reads outside the tensors."""
    try:
        return formulas.evaluate(which, tuple(int(p) + 1 for p in index), tables)
    except (KeyError, IndexError, TypeError):
        return None


def _same(left, right) -> bool:
    return sympy.expand(left - right) == 0


def check_general_formulas(
    backward: SymbolicBackward, formulas: GeneralFormulas | None = None
) -> bool:
    """Expand the general formulas for the layer's sizes and compare with the equations.

    Each output's eq. 9.8, each kernel entry's eq. 9.11 and each input's eq. 9.13 are
    summed out with ``.doit()``, ``V``/``K``/``G`` replaced by the layer's symbols (padded
    input, dense kernel), and compared with ``backward``'s instantiated equations (bias
    terms aside). For eq. 9.13 the gradients of the padded positions that copy one input
    are added up (the chain rule through the padding).

    Parameters
    ----------
    backward : SymbolicBackward
    formulas : GeneralFormulas, optional
        Default :func:`general_formulas` of ``backward.spec``; pass altered formulas to see
        a wrong one rejected.

    Returns
    -------
    bool
        True when every equation agrees.

    Examples
    --------
    >>> bw = symbolic_backward(ConvSpec((1, 5, 5), 1, 3, stride=2))
    >>> check_general_formulas(bw)
    True
    >>> from dataclasses import replace
    >>> f = general_formulas(bw.spec)
    >>> wrong = replace(f, forward=f.forward.subs(sympy.Symbol("s", integer=True, positive=True), 1))
    >>> check_general_formulas(bw, wrong)
    False
    """
    spec = backward.spec
    _book_scope(spec)
    formulas = general_formulas(spec) if formulas is None else formulas
    tables = _tables(backward)
    no_bias = {b: 0 for b in backward.bias.ravel()}
    for idx, eq in zip(np.ndindex(*spec.output_shape), backward.forward):
        got = _evaluate(formulas, "forward", idx, tables)
        if got is None or not _same(got, eq.rhs.xreplace(no_bias)):
            return False
    return _check_weight_gradient(backward, formulas, tables) and _check_input_gradient(
        backward, formulas, tables
    )


def _check_weight_gradient(bw: SymbolicBackward, formulas: GeneralFormulas, tables: dict) -> bool:
    """Eq. 9.11 at the position of each weight in the dense kernel ``K``."""
    numbers = np.arange(1, bw.weight.size + 1).reshape(bw.spec.weight_shape)
    for idx, number in np.ndenumerate(_dense_kernel(bw.spec, numbers)):
        if number == 0:
            continue  # a dilation hole or an unconnected channel pair: not a parameter
        got = _evaluate(formulas, "weight_gradient", idx, tables)
        if got is None or not _same(got, bw.weight_gradient[number - 1].rhs):
            return False
    return True


def _check_input_gradient(bw: SymbolicBackward, formulas: GeneralFormulas, tables: dict) -> bool:
    """Eq. 9.13 at each padded position, summed onto the input each one copies."""
    spec = bw.spec
    padded = _padded_inputs(spec)
    acc = [[0] * math.prod(spec.input_shape[1:]) for _ in range(spec.in_channels)]
    for c in range(spec.in_channels):
        for pos, src in np.ndenumerate(padded):
            if src >= 0:
                h = _evaluate(formulas, "input_gradient", (c, *pos), tables)
                if h is None:
                    return False
                acc[c][src] += h
    flat = [value for row in acc for value in row]
    return all(_same(got, eq.rhs) for got, eq in zip(flat, bw.input_gradient))
