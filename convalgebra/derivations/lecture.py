"""A whole network as a lecture: output sizes, receptive fields, parameters and cost, layer by layer.

``derive("lecture", graph)`` (or ``derive(graph)``) writes, for every layer of a
:class:`~convalgebra.network.graph.LayerGraph` (a batch normalisation or an elementwise activation
folded into the layer it follows, see :func:`~convalgebra.network.tabulate.layer_rows`), the
recurrences that give its numbers, each as the formula, the formula with the numbers and the
library's value:

* output size per spatial axis, ``n_l = floor((n_{l'} + p + q - d(k - 1) - 1)/s) + 1``
  (``l'`` the layer read, ``p``/``q`` the padding before/after);
* receptive field ``r_l = r_{l'} + (k - 1) d j_{l'}`` and jump ``j_l = j_{l'} s`` (Araujo et
  al.), the largest of the inputs' fields at a merge whose fields share their centre;
* parameters ``P_l`` and multiply-accumulates ``MACs_l``;

then the conv-arithmetic figure of the first convolution and a summary table. Every printed
name has a value in :func:`lecture_meaning` (computed by the graph); :meth:`Lecture.verify`
evaluates every printed equation and every table cell on it (or on a meaning computed by
PyTorch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConvAlgebraError, shown
from ..network.tabulate import LayerRow, folded_name, layer_rows
from .model import Derivation, Equation, Expr, Step, Table
from .networks import layer_words, row_macs, row_params, sliding_window
from .printing import number
from .shapes import floor_sides
from .verify import RoundTripError

__all__ = ["derive_lecture", "lecture_meaning", "Lecture", "figure_spec"]

#: Largest padded input side (cells) the figure draws as it is; a larger first layer is drawn
#: on a smaller input with the same kernel, stride, padding and dilation.
FIGURE_SIDE = 16


def _symbol(letter: str, layer: int, axis: int | None) -> Any:
    """``r_{5}``, or ``r_{5,2}`` for axis 2 when the axes differ."""
    import sympy

    return sympy.Symbol(f"{letter}_{{{_index(layer, axis)}}}")


def _index(layer: int, axis: int | None) -> str:
    return str(layer) if axis is None else f"{layer},{axis + 1}"


def _name(letter: str, layer: int, axis: int | None) -> str:
    """The text name of a symbol: ``r_5`` or ``r_5,2`` (layer 5, axis 2)."""
    return f"{letter}_{_index(layer, axis)}"


def _named(letter: str, layer: int, axis: int | None) -> Expr:
    return Expr(f"{letter}_{{{_index(layer, axis)}}}", _name(letter, layer, axis))


@dataclass(frozen=True)
class _Axis:
    """What one spatial axis of a layer reads: sizes, window and fields of source and layer."""

    n_in: int
    n_out: int
    window: tuple | None  # (k, s, d, p, q) of a sliding window, else None
    fields: tuple  # AxisRF of the layer and of each source


def _pads(graph, node: str) -> tuple[tuple[int, int], ...] | None:
    facts, layer = graph.facts(node), graph.layer(node)
    if facts.spec is not None:
        return tuple(facts.spec.padding)
    if isinstance(getattr(layer, "padding", None), str):
        return None  # TensorFlow's "same": the sizes are ceil(n / s), not the floor formula
    window = sliding_window(graph, node)
    assert window is not None
    from ..spec import normalize_tuple

    pads = normalize_tuple(layer.padding, len(window[0]), "padding", minimum=0)
    return tuple((p, p) for p in pads)


def _axes(graph, row: LayerRow) -> list[_Axis]:
    node = row.lead
    srcs = graph.nx.nodes[node]["inputs"]
    window = sliding_window(graph, node)
    pads = _pads(graph, node) if window is not None else None
    ceil = getattr(graph.layer(node), "ceil_mode", False)
    out = []
    fields = [graph.receptive_field(row.last)] + [graph.receptive_field(s) for s in srcs]
    for a in range(graph.spatial_ndim):
        n_in = _spatial(graph, srcs[0], a) if srcs else 0
        n_out = _spatial(graph, row.last, a)
        w = None
        if window is not None and pads is not None and not ceil:
            k, s, d = (v[a] for v in window)
            w = (int(k), int(s), int(d), *pads[a])
        out.append(_Axis(n_in, n_out, w, tuple(f[a] for f in fields)))
    return out


def _spatial(graph, node: str, axis: int) -> int:
    axes = graph.axes(node)
    if axis >= len(axes) or axes[axis] is None:
        return 0
    return graph.shape(node)[axes[axis]]


def _size_equation(l: int, src: int, axis: int | None, ax: _Axis) -> Equation | None:
    """``n_l = floor((n_{l'} - k + 2p)/s) + 1 = … = n`` for a forward sliding window."""
    import sympy

    if ax.window is None:
        return None
    k, s, d, p, q = ax.window
    n, K, S, D, P, Q = (
        _symbol(c, i, axis)
        for c, i in (("n", src), ("k", l), ("s", l), ("d", l), ("p", l), ("q", l))
    )
    tn, tk, ts, td, tp, tq = (e.name for e in (n, K, S, D, P, Q))
    xn, xk, xs, xd, xp, xq = (
        _name(c, i, axis) for c, i in (("n", src), ("k", l), ("s", l), ("d", l), ("p", l), ("q", l))
    )
    pad, pad_tex, pad_text = (
        (2 * P, f"2 {tp}", f"2*{xp}") if p == q else (P + Q, f"{tp} + {tq}", f"{xp} + {xq}")
    )
    if d == 1:
        top = n - K + pad
        top_tex, top_text = f"{tn} - {tk} + {pad_tex}", f"{xn} - {xk} + {pad_text}"
    else:
        top = n + pad - D * (K - 1) - 1
        top_tex = rf"{tn} + {pad_tex} - {td} \cdot ({tk} - 1) - 1"
        top_text = f"{xn} + {pad_text} - {xd}*({xk} - 1) - 1"
    if s == 1:
        formula = Expr(f"{top_tex} + 1", f"{top_text} + 1", top + 1)
    else:
        formula = Expr(
            rf"\left\lfloor \frac{{{top_tex}}}{{{ts}}} \right\rfloor + 1",
            f"floor(({top_text})/{xs}) + 1",
            sympy.floor(top / S) + 1,
        )
    subs = ((n, ax.n_in), (K, k), (S, s), (D, d), (P, p), (Q, q))
    name = _named("n", l, axis)
    sides = floor_sides(ax.n_in, k, s, d, p, q)
    return Equation((name, formula, *sides, number(ax.n_out)), subs=subs)


def _field_equations(l: int, srcs: list[int], axis: int | None, ax: _Axis) -> tuple[Equation, ...]:
    """``r_l = r_{l'} + (k - 1) d j_{l'}`` and ``j_l = j_{l'} s`` (a window), ``r_l = max(…)``
    (a merge of fields with one centre and one jump), else ``r_l`` alone."""
    import sympy

    field, inputs = ax.fields[0], ax.fields[1:]
    r_name = Expr(
        f"r_{{{l}}}" + ("" if axis is None else f"^{{({axis + 1})}}"), _name("r", l, axis)
    )
    j_name = Expr(
        f"j_{{{l}}}" + ("" if axis is None else f"^{{({axis + 1})}}"), _name("j", l, axis)
    )
    if field.is_global or not field.exact or not field.aligned:
        return ()
    if len(inputs) == 1 and ax.window is not None and inputs[0].aligned and not inputs[0].is_global:
        k, s, d = ax.window[:3]
        prev = inputs[0]
        R, J, K, S, D = (
            _symbol(c, i, axis)
            for c, i in (("r", srcs[0]), ("j", srcs[0]), ("k", l), ("s", l), ("d", l))
        )
        dil_tex, dil_text, dil = (
            ("", "", 1) if d == 1 else (f" {D.name}", f"*{_name('d', l, axis)}", D)
        )
        xr, xj, xk, xs = (
            _name(c, i, axis) for c, i in (("r", srcs[0]), ("j", srcs[0]), ("k", l), ("s", l))
        )
        r_formula = Expr(
            f"{R.name} + ({K.name} - 1){dil_tex} {J.name}",
            f"{xr} + ({xk} - 1){dil_text}*{xj}",
            R + (K - 1) * dil * J,
        )
        d_num = "" if d == 1 else rf" \cdot {d}"
        r_numbers = Expr(
            rf"{number(prev.size).tex} + ({k} - 1){d_num} \cdot {number(prev.jump).tex}",
            f"{prev.size} + ({k} - 1)" + (f"*{d}" if d != 1 else "") + f"*{prev.jump}",
            sympy.sympify(prev.size) + (k - 1) * d * sympy.sympify(prev.jump),
        )
        j_formula = Expr(f"{J.name} {S.name}", f"{xj}*{xs}", J * S)
        j_numbers = Expr(
            rf"{number(prev.jump).tex} \cdot {s}", f"{prev.jump}*{s}", sympy.sympify(prev.jump) * s
        )
        subs: tuple[tuple[Any, Any], ...] = ((R, prev.size), (J, prev.jump), (K, k), (S, s), (D, d))
        return (
            Equation((r_name, r_formula, r_numbers, number(field.size)), subs=subs),
            Equation((j_name, j_formula, j_numbers, number(field.jump)), subs=subs),
        )
    one_centre = len({f.start for f in inputs}) == 1 and len({f.jump for f in inputs}) == 1
    if len(inputs) > 1 and one_centre and all(f.aligned and not f.is_global for f in inputs):
        Rs = [_symbol("r", i, axis) for i in srcs]
        texts = [_name("r", i, axis) for i in srcs]
        r_formula = Expr(
            r"\max(" + ", ".join(R.name for R in Rs) + ")",
            "Max(" + ", ".join(texts) + ")",
            sympy.Max(*Rs),
        )
        r_numbers = Expr(
            r"\max(" + ", ".join(number(f.size).tex for f in inputs) + ")",
            "Max(" + ", ".join(str(f.size) for f in inputs) + ")",
            sympy.Max(*[sympy.sympify(f.size) for f in inputs]),
        )
        J = _symbol("j", srcs[0], axis)
        subs = tuple(zip(Rs, [f.size for f in inputs], strict=True)) + ((J, inputs[0].jump),)
        return (
            Equation((r_name, r_formula, r_numbers, number(field.size)), subs=subs),
            Equation(
                (j_name, Expr(J.name, _name("j", srcs[0], axis), J), number(field.jump)), subs=subs
            ),
        )
    if len(inputs) == 1 and field == inputs[0]:
        R = _symbol("r", srcs[0], axis)
        subs = ((R, field.size),)
        return (
            Equation(
                (r_name, Expr(R.name, _name("r", srcs[0], axis), R), number(field.size)), subs=subs
            ),
        )
    return (Equation((r_name, number(field.size))),)


def _alike(axes: list[_Axis]) -> bool:
    """Every spatial axis has the same numbers: print them once, without an axis superscript."""
    return len(axes) > 0 and all(
        (a.n_in, a.n_out, a.window, a.fields)
        == (axes[0].n_in, axes[0].n_out, axes[0].window, axes[0].fields)
        for a in axes
    )


def _statement(graph, row: LayerRow, l: int, srcs: list[int], axes: list, shown: list) -> str:
    """``Layer 3, conv2 + BN: Conv2d, …, reading layer 2; output 64 × 56 × 56. Here k = 3, …``"""
    reads = ", ".join(f"layer {i}" for i in srcs)
    shape = " × ".join(map(str, graph.shape(row.last)))
    window = axes[0].window if axes else None
    letters = ""
    if window is not None and shown == [None]:
        k, s, d, p, q = window
        pads = f"$p = {p}$" if p == q else f"$p = {p}$ before, $q = {q}$ after"
        letters = f" Here $k = {k}$, $s = {s}$, $d = {d}$, {pads}."
    elif shown != [None]:
        letters = " The axes differ: a second index names the axis ($n_{l,a}$ along axis $a$)" + (
            "; kernel $k$, stride $s$, dilation $d$, padding $p$ before and $q$ after per axis."
            if window is not None
            else "."
        )
    words = layer_words(graph, row.lead)
    return (
        f"Layer {l}, {folded_name(graph, row)}: {words}, reading {reads}; output {shape}.{letters}"
    )


def _row_step(graph, row: LayerRow, l: int, index: dict[str, int], seen: set) -> tuple[Step, dict]:
    """The step of layer ``l``: its words, then size, field, parameter and MAC equations."""
    node = row.lead
    srcs = [index[s] for s in graph.nx.nodes[node]["inputs"]]
    axes = _axes(graph, row)
    shown_axes: list[int | None] = [None] if _alike(axes) else list(range(len(axes)))
    eqs: list[Equation] = []
    for axis in shown_axes:
        ax = axes[0 if axis is None else axis]
        size = _size_equation(l, srcs[0], axis, ax) if srcs else None
        eqs += [size] if size is not None else []
        eqs += _field_equations(l, srcs, axis, ax)
    params, n_params = row_params(graph, row, seen)
    macs, n_macs = row_macs(graph, row)
    if params is not None:
        eqs.append(Equation((Expr(f"P_{{{l}}}", f"P_{l}"), *params.sides)))
    if macs is not None:
        eqs.append(Equation((Expr(rf"\text{{MACs}}_{{{l}}}", f"MACs_{l}"), *macs.sides)))
    statement = _statement(graph, row, l, srcs, axes, shown_axes)
    fields = [a.fields[0] for a in axes]
    why = ""
    if any(f.is_global for f in fields):
        why = "Every unit reads the whole input: the field is global."
    elif len(srcs) > 1 and not any(
        e.sides[0].text.startswith("r_") and len(e.sides) > 2 for e in eqs
    ):
        why = "The union of the inputs' fields, whose centres or jumps differ: the library's hull."
    elif len(srcs) > 1:
        why = "The inputs' fields share their centre and their jump: the union is the largest."
    numbers = {"P": n_params, "MACs": n_macs}
    return Step(statement, tuple(eqs), why, "layer"), numbers


def lecture_meaning(graph, rows: list[LayerRow] | None = None) -> dict[str, Any]:
    """What the lecture's names stand for, computed by the graph: per layer ``l`` (0 the input)
    the sizes ``n_l``, fields ``r_l`` and jumps ``j_l`` (``n_l,a`` along axis ``a``, and ``n_l``
    when every axis agrees), the window ``k_l``, ``s_l``, ``d_l``, ``p_l``, ``q_l``, the
    shape ``shape_l``, ``P_l``, ``MACs_l``, and the totals ``P`` and ``MACs``.

    A global field is ``"global"``.

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> m = lecture_meaning(zoo.get("resnet18"))
    >>> m["n_1"], m["r_2"], m["j_2"], m["P_1"], m["k_1,2"]
    (112, 11, 4, 9536, 7)
    """
    rows = layer_rows(graph) if rows is None else rows
    meaning: dict[str, Any] = {}
    seen: set = set()
    l = 0
    for row in rows:
        lead_inputs = graph.nx.nodes[row.lead]["inputs"]
        here = l if not lead_inputs else l + 1
        l = here
        axes = _axes(graph, row)
        values: dict[str, list] = {}
        for a, ax in enumerate(axes):
            field = ax.fields[0]
            record = {
                "n": ax.n_out,
                "r": "global" if field.is_global else field.size,
                "j": field.jump,
            }
            if ax.window is not None:
                record.update(zip("ksdpq", ax.window, strict=True))
            for key, value in record.items():
                meaning[_name(key, here, a)] = value
                values.setdefault(key, []).append(value)
        for key, found in values.items():
            if len(found) == len(axes) and len(set(map(str, found))) == 1:
                meaning[_name(key, here, None)] = found[0]
        meaning[f"shape_{here}"] = tuple(graph.shape(row.last))
        meaning[f"P_{here}"] = sum(graph.info(n, _seen=seen).params for n in row.nodes)
        meaning[f"MACs_{here}"] = sum(graph.facts(n).macs for n in row.nodes)
    meaning["P"], meaning["MACs"] = graph.param_count(), graph.macs()
    return meaning


def figure_spec(spec) -> Any:
    """The layer drawn by the lecture: ``spec`` itself when its padded input is at most
    :data:`FIGURE_SIDE` cells a side, else the same kernel, stride, padding and dilation on
    the smallest input at least as large as the dilated kernel with 3 outputs per axis
    (one channel in and out: the picture shows positions).

    Examples
    --------
    >>> from convalgebra.spec import ConvSpec
    >>> figure_spec(ConvSpec((3, 224, 224), 64, 7, stride=2, padding=3)).input_shape
    (1, 7, 7)
    """
    from ..spec import ConvSpec

    sides = []
    for a in range(spec.ndim):
        n = spec.input_shape[1 + a]
        (b, e), k, s, d = spec.padding[a], spec.kernel_size[a], spec.stride[a], spec.dilation[a]
        if n + b + e <= FIGURE_SIDE:
            sides.append(n)
            continue
        reach = d * (k - 1) + 1
        small = max(reach, 1)
        while (small + b + e - reach) // s + 1 < 3:
            small += 1
        sides.append(min(n, small))
    return ConvSpec(
        (1, *sides),
        1,
        spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        padding_mode=spec.padding_mode,
        bias=False,
        transposed=spec.transposed,
        output_padding=spec.output_padding,
    )


def _figure_step(graph, rows: list[LayerRow], index: dict[str, int]) -> Step | None:
    from ..figures import conv_drawing, conv_tikz
    from ..render.model import Figure

    first = next((r for r in rows if graph.facts(r.lead).spec is not None), None)
    if first is None or graph.facts(first.lead).spec.ndim > 2:
        return None
    spec = graph.facts(first.lead).spec
    drawn = figure_spec(spec)
    same = drawn.input_shape[1:] == spec.input_shape[1:]
    where = (
        ""
        if same
        else f" on a {'×'.join(map(str, drawn.input_shape[1:]))} input instead of "
        f"{'×'.join(map(str, spec.input_shape[1:]))} (the same kernel, stride, padding and dilation)"
    )
    caption = (
        f"Layer {index[first.last]}, {first.lead}{where}: the padded input (dashed cells are padding), the "
        f"window of the first output (its taps numbered) and the output."
    )
    return Step(
        f"The arithmetic of the first convolution, {first.lead} ({layer_words(graph, first.lead)}):",
        (
            Figure(
                conv_tikz(drawn, cell=min(0.5, 14 / (_width(drawn) + 1))),
                conv_drawing(drawn),
                caption,
            ),
        ),
        "In the text drawing, # marks the taps and the output they produce, . the padding, o the other cells.",
        "figure",
    )


def _width(spec) -> int:
    from ..figures import figure_layout

    layout = figure_layout(spec)
    return layout["padded"][-1] + 2 + layout["output"][-1]


def _field_cell(fields: list) -> str:
    cells = ["global" if f.is_global else f.describe() for f in fields]
    return cells[0] if len(set(cells)) == 1 else " × ".join(cells)


def _table(graph, rows: list[LayerRow], meaning: dict[str, Any]) -> Table:
    lines = []
    for l, row in enumerate(rows):
        fields = list(graph.receptive_field(row.last))
        lines.append(
            (
                str(l),
                folded_name(graph, row),
                " × ".join(map(str, graph.shape(row.last))),
                _field_cell(fields),
                f"{meaning[f'P_{l}']:,}",
                f"{meaning[f'MACs_{l}']:,}",
            )
        )
    return Table(
        ("$l$", "layer", "output", "$r_l / j_l$", "$P_l$", r"$\text{MACs}_l$"), tuple(lines)
    )


@dataclass(frozen=True)
class Lecture(Derivation):
    """A lecture document: a derivation whose summary table is read back too."""

    def verify(self, meaning: dict | None = None) -> int:
        """Every printed equation (see :meth:`Derivation.verify`), then every cell of the
        summary table, on ``meaning`` (default :func:`lecture_meaning` of the graph).

        Returns the number of checks; raises ``RoundTripError`` on a mismatch.
        """
        meaning = self.meaning() if meaning is None else meaning
        count = super().verify(meaning)
        for step in self.steps:
            for item in step.math if not isinstance(step.math, str) else ():
                if isinstance(item, Table) and step.rule == "summary":
                    count += _check_table(item, meaning)
        return count


def _check_table(table: Table, meaning: dict[str, Any]) -> int:
    """Read every cell of the summary table back and compare it with ``meaning``."""
    count = 0
    for cells in table.rows:
        l = int(cells[0])
        shape = tuple(int(v) for v in cells[2].split(" × "))
        fields = cells[3].split(" × ")
        checks: list[tuple[str, Any, Any]] = [("shape", shape, meaning.get(f"shape_{l}"))]
        checks += [("P", int(cells[4].replace(",", "")), meaning.get(f"P_{l}"))]
        checks += [("MACs", int(cells[5].replace(",", "")), meaning.get(f"MACs_{l}"))]
        for a, cell in enumerate(fields):
            axis = None if len(fields) == 1 else a
            if cell == "global":
                checks.append(("r", "global", meaning.get(_name("r", l, axis))))
                continue
            size, jump = cell.lstrip("~").split("/", 1)
            checks.append(("r", _number(size), meaning.get(_name("r", l, axis))))
            if "|" not in jump:
                checks.append(("j", _number(jump), meaning.get(_name("j", l, axis))))
        for key, printed, want in checks:
            if want is None:
                continue
            if printed != want:
                raise RoundTripError(
                    f"table row {l} ({cells[1]}) prints {key} = {printed}, but it is {want}"
                )
            count += 1
    return count


def _number(text: str) -> Any:
    from fractions import Fraction

    value = Fraction(text.strip("()"))
    return int(value) if value.denominator == 1 else value


def _intro(graph, rows: list[LayerRow]) -> Step:
    eqs = (
        Equation(
            (
                Expr("n_{l}", "n_l"),
                Expr(
                    r"\left\lfloor \frac{n_{l'} + p + q - d (k - 1) - 1}{s} \right\rfloor + 1",
                    "floor((n_l' + p + q - d*(k - 1) - 1)/s) + 1",
                ),
            ),
            label="output size per axis",
        ),
        Equation(
            (Expr("r_{l}", "r_l"), Expr("r_{l'} + (k - 1) d j_{l'}", "r_l' + (k - 1)*d*j_l'")),
            label="field",
        ),
        Equation((Expr("j_{l}", "j_l"), Expr("j_{l'} s", "j_l'*s")), label="jump"),
        Equation(
            (
                Expr("P_{l}", "P_l"),
                Expr(
                    r"C_{out} \frac{C_{in}}{g} \prod k + C_{out} + 2 C_{out}",
                    "C_out*(C_in/g)*prod(k) + C_out + 2*C_out",
                ),
            ),
            label="weights, biases, batch norm",
        ),
        Equation(
            (
                Expr(r"\text{MACs}_{l}", "MACs_l"),
                Expr(
                    r"C_{out} \prod n_{l} \cdot \frac{C_{in}}{g} \prod k",
                    "C_out*prod(n_l)*(C_in/g)*prod(k)",
                ),
            ),
            label="outputs times taps",
        ),
    )
    n = sum(1 for r in rows if graph.nx.nodes[r.lead]["inputs"])
    return Step(
        f"The recurrences, for a layer $l$ reading layer $l'$ with kernel $k$, stride $s$, dilation $d$ and padding "
        f"$p$ before, $q$ after (per spatial axis); the input is layer 0, with $r_0 = 1$ and $j_0 = 1$. A batch "
        f"normalisation or an elementwise activation is folded into the layer it follows (it changes neither size "
        f"nor field; a batch norm's $2 C$ parameters count in that row): {n} layers.",
        eqs,
        "A unit of layer $l$ sees $r_l$ input positions and its neighbour is $j_l$ positions further: each extra "
        "tap reaches one more unit of layer $l'$, $j_{l'}$ positions apart. A convolution without bias has no "
        "$C_{out}$ term, a layer without batch norm no $2 C_{out}$.",
        "recurrence",
    )


def derive_lecture(graph: Any, *, figure: bool = True) -> Lecture:
    """The whole network as a lecture: sizes, fields, parameters and MACs, layer by layer.

    Parameters
    ----------
    graph : LayerGraph
        A network with one input.
    figure : bool
        Draw the conv arithmetic of the first convolution (TikZ in LaTeX; characters in text
        and Markdown).

    Returns
    -------
    Lecture
        ``result`` holds ``params``, ``macs`` and ``layers`` (the rows of the summary).

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> d = derive_lecture(zoo.get("lenet5"))
    >>> d.result
    {'params': 61706, 'macs': 416520, 'layers': 8}
    >>> [l.strip() for l in d.to_text().splitlines() if l.strip().startswith("r_3 ")]
    ['r_3 = r_2 + (k_3 - 1)*j_2 = 6 + (5 - 1)*2 = 14']
    >>> d.verify() > 0
    True
    """
    from functools import partial

    from ..network.graph import LayerGraph

    if not isinstance(graph, LayerGraph):
        raise ConvAlgebraError(f"lecture derivations need a LayerGraph, got {shown(graph)}")
    if len(graph.inputs) != 1:
        raise ConvAlgebraError(
            f"lecture derivations need a network with one input, got {len(graph.inputs)}: {graph.inputs}"
        )
    rows = layer_rows(graph)
    index = {rows[0].last: 0}
    steps = [_intro(graph, rows)]
    seen: set = set()
    totals: dict[str, list] = {"P": [], "MACs": []}
    layer_steps = []
    for l, row in enumerate(rows[1:], 1):
        step, numbers = _row_step(graph, row, l, index, seen)
        index[row.last] = l
        layer_steps.append(step)
        for key, value in numbers.items():
            totals[key] += [number(value)] if value else []
    picture = _figure_step(graph, rows, index) if figure else None
    steps += ([picture] if picture is not None else []) + layer_steps
    meaning = lecture_meaning(graph, rows)
    steps.append(
        Step("Summary, one row per layer:", (_table(graph, rows, meaning),), rule="summary")
    )
    from .networks import total

    steps.append(
        Step(
            "Adding up:",
            (
                Equation((Expr("P", "P"), total(totals["P"]), number(graph.param_count()))),
                Equation(
                    (Expr(r"\text{MACs}", "MACs"), total(totals["MACs"]), number(graph.macs()))
                ),
            ),
            "FLOPs are about twice the MACs (one multiply and one add each).",
            "total",
        )
    )
    name = graph.nx.graph.get("name", "graph")
    shape = "×".join(map(str, graph.shape(rows[0].last)))
    return Lecture(
        f"{name} on {shape}, layer by layer: sizes, receptive fields, parameters and cost",
        tuple(steps),
        result={"params": graph.param_count(), "macs": graph.macs(), "layers": len(rows) - 1},
        meaning=partial(lecture_meaning, graph, rows),
    )
