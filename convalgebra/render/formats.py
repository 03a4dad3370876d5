"""The one renderer of documents (derivations and proofs): LaTeX, Markdown, plain text.

A LaTeX fragment compiles in a plain ``article`` with the packages ``amsmath``, ``amssymb``
and ``longtable`` (texlive-latex-base) and nothing else: tables break across pages,
matrices wider than ten columns are arrays (no ``MaxMatrixCols`` setting), and the fragment
allows display breaks itself. Markdown uses ``$…$`` inline and ``$$…$$`` display math, which GitHub, Jupyter
and pandoc all read (no word glued to a closing ``$``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from .model import DataTable, Equation, Expr, Figure, Grid, Step
from .printing import is_notation, sympy_expr, tex_to_text

__all__ = [
    "Document",
    "to_latex",
    "to_markdown",
    "to_text",
    "PREAMBLE",
    "PACKAGES",
    "FIGURE_PACKAGES",
    "step_math",
    "displayed",
]

#: The packages a LaTeX fragment needs (``\usepackage{…}`` in the including document).
PACKAGES = ("amsmath", "amssymb", "longtable")
#: The package a fragment holding a :class:`~convalgebra.render.model.Figure` needs too
#: (texlive-pictures); a standalone document loads it itself.
FIGURE_PACKAGES = ("tikz",)

PREAMBLE = "\n".join(
    [
        r"\documentclass[10pt]{article}",
        r"\usepackage{amsmath}",
        r"\usepackage{amssymb}",
        r"\usepackage{longtable}",
        r"\setcounter{MaxMatrixCols}{40}",
        r"\allowdisplaybreaks",
        r"\setlength{\parindent}{0pt}",
        r"\addtolength{\textwidth}{4cm}",
        r"\addtolength{\oddsidemargin}{-2cm}",
    ]
)

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "→": r"$\to$",
    "×": r"$\times$",
    "·": r"$\cdot$",
    "…": r"\ldots{}",
    "−": "-",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "∂": r"$\partial$",
    "⌊": r"$\lfloor$",
    "⌋": r"$\rfloor$",
    "ᵀ": r"$^{\top}$",
    "²": r"$^2$",
    "≠": r"$\ne$",
    "Σ": r"$\Sigma$",
    "—": "---",
    "–": "--",
    "’": "'",
    "“": "``",
    "”": "''",
    "⋮": r"$\vdots$",
    "°": r"$^\circ$",
    "|": r"$|$",
}


_UNICODE_MATH = {
    "⊗": r"\otimes",
    "⋯": r"\cdots",
    "∘": r"\circ",
    "⋆": r"\star",
    "∗": r"\ast",
    "′": "'",
    "≈": r"\approx",
    "∈": r"\in",
    "∑": r"\sum",
    "∏": r"\prod",
    "√": r"\surd",
    "∞": r"\infty",
    "±": r"\pm",
    "⇒": r"\Rightarrow",
    "↦": r"\mapsto",
    "⊂": r"\subset",
    "∪": r"\cup",
    "∩": r"\cap",
    "⌈": r"\lceil",
    "⌉": r"\rceil",
    "≡": r"\equiv",
    "⋱": r"\ddots",
    "⊙": r"\odot",
    "∇": r"\nabla",
    "⁻": "^{-}",
    "¹": "^{1}",
    "³": "^{3}",
    "⊤": r"\top",
}


def _unicode_tex(ch: str) -> str:
    """A LaTeX rendering of a non-ASCII character that the base LaTeX install can typeset."""
    import unicodedata

    if ch in _TEX_SPECIAL:
        return _TEX_SPECIAL[ch]
    if ch in _UNICODE_MATH:
        return f"${_UNICODE_MATH[ch]}$"
    name = unicodedata.name(ch, "")
    if name.startswith("GREEK "):
        letter = {"lamda": "lambda", "sigma": "sigma"}.get(
            name.split()[-1].lower(), name.split()[-1].lower()
        )
        letter = letter.capitalize() if "CAPITAL" in name else letter
        letter = "varsigma" if "FINAL SIGMA" in name else letter
        return rf"$\{letter}$"
    ascii_form = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return ascii_form or "?"


def _split_math(prose: str) -> list[tuple[bool, str]]:
    """Split prose at ``$`` into (is_math, piece) segments."""
    parts = prose.split("$")
    return [(i % 2 == 1, p) for i, p in enumerate(parts) if p]


_SUPERSCRIPTS = str.maketrans("⁻¹²³⁰⁴⁵⁶⁷⁸⁹", "-1230456789")


def _superscripts(prose: str) -> str:
    """A run of superscript characters (``F⁻¹``) as one inline superscript (``F$^{-1}$``)."""
    return re.sub(
        "[⁻¹²³⁰⁴⁵⁶⁷⁸⁹]+", lambda m: "$^{" + m.group(0).translate(_SUPERSCRIPTS) + "}$", prose
    )


def _tex_prose(prose: str) -> str:
    out = []
    for is_math, piece in _split_math(_superscripts(prose)):
        if is_math:
            out.append(f"${piece}$")
        else:
            out.append(
                "".join(
                    _unicode_tex(ch) if ch in _TEX_SPECIAL or ord(ch) > 127 else ch for ch in piece
                )
            )
    return "".join(out)


def _md_prose(prose: str) -> str:
    out = []
    for is_math, piece in _split_math(_superscripts(prose)):
        escaped = re.sub(r"([*|<>])", r"\\\1", piece)
        # math symbols in prose (s·o, λ, 1×7) become inline math, as in the LaTeX rendering
        escaped = "".join(
            "$-$"
            if ch == "−"
            else _unicode_tex(ch)
            if ord(ch) > 127 and _unicode_tex(ch).startswith("$")
            else ch
            for ch in escaped
        )
        # GitHub Markdown reads an underscore inside a word (output_padding) literally
        out.append(
            f"${piece}$"
            if is_math
            else re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", escaped)
        )
    # adjacent inline formulas merge into one (also once a glued word joined the first)
    return _pandoc_math("".join(out).replace("$$", " ")).replace("$$", " ")


def _pandoc_math(markdown: str) -> str:
    r"""Inline math pandoc reads as math: a word glued to a closing ``$`` moves inside it.

    Pandoc does not close inline math at a ``$`` followed by a digit (``3$\times$3``).

    Examples
    --------
    >>> print(_pandoc_math(r"3$\times$3 and 64$\to$64, $\lambda$s"))
    3$\times 3$ and 64$\to 64$, $\lambda\text{s}$
    """
    parts = markdown.split("$")
    if len(parts) % 2 == 0:  # an unpaired $: leave the text as it is
        return markdown
    for k in range(1, len(parts) - 1, 2):
        glued = re.match(r"[A-Za-z0-9]+", parts[k + 1])
        if glued:
            word = glued.group(0)
            parts[k] += f" {word}" if word.isdigit() else rf"\text{{{word}}}"
            parts[k + 1] = parts[k + 1][len(word) :]
    return "$".join(parts)


def _text_prose(prose: str) -> str:
    return "".join(tex_to_text(p) if m else p for m, p in _split_math(prose))


_RELATIONS = {
    "Equality": "=",
    "Unequality": "!=",
    "LessThan": "<=",
    "GreaterThan": ">=",
    "StrictLessThan": "<",
    "StrictGreaterThan": ">",
}


def _side(value: Any) -> Expr:
    """A statement's side: checked against its value, unless it holds LaTeX notation symbols."""
    import sympy

    e = sympy_expr(value)
    if any(is_notation(s) for s in getattr(value, "atoms", lambda *_: ())(sympy.Symbol)):
        return Expr(e.tex, tex_to_text(e.tex))
    return e


def step_math(step: Step) -> tuple[str, tuple]:
    """Prose and displayed items of a step; a sympy statement becomes a displayed equation.

    Its sides keep their sympy values (the text rendering parses back to them); the two sides
    are not compared (``chain=False``): that the statement holds is the checker's verdict.
    A sympy statement's sentence is its justification (see :func:`step_parts`).
    """
    if step.is_prose:
        return step.statement, cast(
            tuple, step.math
        )  # __post_init__ moved a str math to justification
    value = step.statement
    relation = _RELATIONS.get(type(value).__name__)
    sides = (value.lhs, value.rhs) if relation is not None else (value,)
    eq = Equation(
        tuple(_side(s) for s in sides), defines=False, relation=relation or "=", chain=False
    )
    return "", (eq,) + tuple(step.math)


def step_parts(step: Step) -> tuple[str, tuple, str]:
    """``(sentence, displayed items, why)``: every step is led by a sentence.

    A proof step given as a sympy statement and its reason reads "Reason:" then the equation.
    """
    prose, math = step_math(step)
    why = step.justification
    if not prose and why:
        prose, why = why[:1].upper() + why[1:].rstrip(". ") + ":", ""
    return prose, math, why


@dataclass(frozen=True)
class Document:
    """A titled, ordered list of steps that renders as LaTeX, Markdown and text.

    ``level`` is ``"section"`` for a document that stands alone (a derivation) and
    ``"paragraph"`` for one that is part of a larger text (the result of a check).
    """

    title: str
    steps: tuple[Step, ...]
    intro: str = ""
    result: Any = field(default=None, compare=False)
    level: str = "section"

    def walk(self) -> Iterator[Step]:
        """Every step, depth first."""
        for step in self.steps:
            yield from step.walk()

    def equations(self) -> Iterator[Equation]:
        """Every displayed equation, including those inside tables and sympy statements."""
        for step in self.walk():
            for item in step_math(step)[1]:
                if isinstance(item, Equation):
                    yield item
                elif isinstance(item, DataTable):
                    yield from item.equations()

    def to_latex(self, standalone: bool = False) -> str:
        """LaTeX: a fragment (heading + steps) or, with ``standalone``, a document."""
        return to_latex(self, standalone)

    def to_markdown(self) -> str:
        """Markdown with ``$…$``/``$$…$$`` math, for GitHub and Jupyter."""
        return to_markdown(self)

    def to_text(self) -> str:
        """Plain text, for terminals."""
        return to_text(self)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


# --------------------------------------------------------------------------- equations
def _side_tex(side: Any) -> str:
    return side.tex


_TEX_REL = {
    "=": "=",
    "<=": r"\le",
    ">=": r"\ge",
    "!=": r"\ne",
    "approx": r"\approx",
    "<": "<",
    ">": ">",
}
_TEXT_REL = {"approx": "≈", "<=": "≤", ">=": "≥", "!=": "≠"}


def _relations(eq: Equation) -> list[str]:
    n = len(eq.sides) - 1
    return [eq.relation] * n if isinstance(eq.relation, str) else list(eq.relation)


#: Printed characters that fit on one line of a displayed equation (10 pt, the preamble's width).
LINE = 64


def width(tex: str) -> int:
    r"""Printed characters of a LaTeX formula, roughly: commands and braces do not print.

    Examples
    --------
    >>> width(r"w_{1} a_{1} + \frac{\partial L}{\partial z_{1}}")
    13
    """
    tex = re.sub(
        r"\\frac\{([^{}]*)\}\{([^{}]*)\}", lambda m: max(m.group(1), m.group(2), key=len), tex
    )
    tex = re.sub(r"\\(left|right|quad|qquad|,|;|!|begin\{[a-z]*\}|end\{[a-z]*\})", "", tex)
    tex = re.sub(r"\\[A-Za-z]+", "x", tex)
    # a subscript prints small, but each comma of a multi-index takes its full space
    tex = re.sub(
        r"[_^]\{([^{}]*)\}",
        lambda m: "s" * max(1, (len(m.group(1)) * 2) // 3 + m.group(1).count(",")),
        tex,
    )
    return len(re.sub(r"[{}_^&\s]", "", tex)) + tex.count(" + ") * 2 + tex.count(" = ") * 2


_OPENERS = ("{", r"\left", r"\begin")
_CLOSERS = ("}", r"\right", r"\end")


def top_level_terms(tex: str) -> list[str]:
    r"""Split a LaTeX sum at its top-level `` + ``/`` - `` (the sign stays with the next term).

    Examples
    --------
    >>> top_level_terms(r"a_{1 + 2} + \left(b - c\right) - d")
    ['a_{1 + 2}', '+ \\left(b - c\\right)', '- d']
    """
    terms, depth, start, i = [], 0, 0, 0
    while i < len(tex):
        if tex.startswith(_OPENERS, i) or tex.startswith(_CLOSERS, i):
            depth += 1 if tex.startswith(_OPENERS, i) else -1
            i += 1
            continue
        if depth == 0 and tex.startswith((" + ", " - "), i) and tex[start:i].strip():
            terms.append(tex[start:i].strip())
            start = i + 1
        i += 1
    terms.append(tex[start:].strip())
    return terms


def _broken(eq: Equation, sides: list[str], rels: list[str]) -> list[str]:
    """Lines of an aligned chain: each side on the line while it fits, long sums broken after a ``+``."""
    lines = [sides[0] + " &"]
    used = width(sides[0])
    for rel, side in zip(rels, sides[1:], strict=False):
        pieces = [side] if isinstance(side, str) and "\\begin" in side else top_level_terms(side)
        if used + width(side) + 3 > LINE and used > width(sides[0]):
            lines.append("&")
            used = width(sides[0])
        lines[-1] += f"{rel} " if lines[-1].endswith("&") else f" {rel} "
        used += 2
        for k, piece in enumerate(pieces):
            need = width(piece) + 1
            if k and used + need > LINE:
                lines.append(r"&\quad " + piece)
                used = width(sides[0]) + 4 + need
            else:
                lines[-1] += ("" if k == 0 else " ") + piece
                used += need
    return lines


def _equation_tex(eq: Equation, align: bool) -> str:
    sides = [_side_tex(s) for s in eq.sides]
    rels = [_TEX_REL.get(r, r) for r in _relations(eq)]
    label = r" \qquad (" + _math_label(eq.label) + ")" if eq.label else ""
    if not align:
        return (
            sides[0]
            + "".join(f" {rel} {s}" for rel, s in zip(rels, sides[1:], strict=False))
            + label
        )
    if len(sides) == 1:
        return sides[0] + label
    lines = _broken(eq, sides, rels)
    if label and width(lines[-1]) + width(label) > LINE:
        lines.append("&" + label)
    else:
        lines[-1] += label
    return " \\\\\n".join(lines)


def _math_label(label: str) -> str:
    """Prose with ``$…$`` as math-mode LaTeX (``\\text{…}`` pieces), which MathJax also renders."""
    return "".join(
        piece if is_math else rf"\text{{{_tex_prose(piece)}}}"
        for is_math, piece in _split_math(label)
    )


def _equation_text(eq: Equation) -> str:
    rels = [_TEXT_REL.get(r, r) for r in _relations(eq)]
    texts = [s.text for s in eq.sides]
    label = f"    ({_text_prose(eq.label)})" if eq.label else ""
    if any("\n" in t for t in texts):
        lines = [texts[0]]
        for rel, t in zip(rels, texts[1:], strict=False):
            lines[-1] += f" {rel}"
            lines.extend("  " + line for line in t.splitlines())
        lines[0] += label
        return "\n".join(lines)
    return (
        texts[0] + "".join(f" {rel} {t}" for rel, t in zip(rels, texts[1:], strict=False)) + label
    )


def _grid_width(grid: Grid) -> int:
    """Printed characters of a matrix: each column as wide as its widest cell, plus the space
    between columns."""
    widths = [
        max((width(c.tex) if isinstance(c, Expr) else 1) for c in column)
        for column in zip(*grid.cells)
    ]
    return sum(widths) + (3 * len(widths)) // 2  # the column gap is about 1.5 characters


def _span(cols: tuple[int | None, ...]) -> str:
    """The 1-based columns a narrowed matrix shows, in words: ``columns 1–7, 27``."""
    runs: list[list[int]] = []
    for c in cols:
        if c is None:
            continue
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return "columns " + ", ".join(
        f"{r[0] + 1}–{r[-1] + 1}" if len(r) > 1 else f"{r[0] + 1}" for r in runs
    )


#: Most non-zero entries a matrix too wide for the line lists one by one (else it is cut).
ENTRIES = 40


def displayed(eq: Equation) -> list[Equation]:
    """``eq`` as the LaTeX and Markdown renderings print it.

    A matrix too wide for the line shows fewer columns (the first ones, an ellipsis, the
    last), labelled with the columns it shows (1-based, as indexed in the full matrix). When
    that would hide most of a small matrix (long entries), its non-zero entries are listed
    instead, each named by its true row and column: ``(1, 2) = …``.

    Examples
    --------
    >>> cells = (tuple(Expr(f"w_{{{j}}}", f"w{j}") for j in range(60)),)
    >>> [eq] = displayed(Equation((Expr("M", "M"), Grid(cells, rows=(0,), cols=tuple(range(60))))))
    >>> eq.label, eq.sides[1].cols[-2:]
    ('columns 1–15, 60 shown', (None, 59))
    >>> long = Expr(" + ".join(f"w_{{{k}}} a_{{{k}}}" for k in range(9)), "…")
    >>> cells = ((long, Expr("0", "0", 0), long),)
    >>> [e.sides[0].text for e in displayed(Equation((Expr("Z", "Z"), Grid(cells, rows=(0,), cols=(0, 1, 5)))))]
    ['Z, its non-zero entries (row, column):', 'Z[1,1]', 'Z[1,6]']
    """
    grid = eq.sides[-1]
    if len(eq.sides) != 2 or not isinstance(grid, Grid) or not grid.cells:
        return [eq]
    room = LINE - width(eq.sides[0].tex) - 2
    n = len(grid.cells[0])
    keep, narrow = n, grid
    while _grid_width(narrow) > room and keep > 3:
        keep -= 1
        narrow = grid.narrowed(keep)
    fits = _grid_width(narrow) <= room
    if fits and narrow is grid:
        return [eq]
    entries = [c for c in grid.exprs() if c.value is None or c.value != 0]
    known = bool(grid.rows and grid.cols)
    if known and (not fits or (2 * (keep - 1) <= n and len(entries) <= ENTRIES)):
        return _nonzero_entries(eq.sides[0], grid)
    if narrow is grid:
        return [eq]
    label = _span(narrow.cols) + " shown" if narrow.cols else ""
    return [
        Equation((eq.sides[0], narrow), eq.defines, eq.subs, eq.relation, label, eq.check, eq.chain)
    ]


def _nonzero_entries(name: Expr, grid: Grid) -> list[Equation]:
    """The non-zero shown entries of a matrix, one equation each, named by true row and column."""
    heading = ", its non-zero entries (row, column):"
    out = [Equation((Expr(rf"&{name.tex} \text{{{heading}}}", f"{name.text}{heading}"),))]
    for r, row in zip(grid.rows, grid.cells, strict=True):
        for c, cell in zip(grid.cols, row, strict=True):
            if r is None or c is None or not isinstance(cell, Expr) or cell.value == 0:
                continue
            # named by (row, column) alone: z_{1,2} would read as a symbol of the layer
            label = Expr(f"({r + 1}, {c + 1})", f"{name.text}[{r + 1},{c + 1}]")
            out.append(Equation((label, cell), defines=False, chain=False))
    return out


def _groups(items: Iterable[Any]) -> list[tuple[str, Any]]:
    """Group consecutive equations into one display; tables stand alone."""
    groups: list[tuple[str, Any]] = []
    items = [
        e for item in items for e in (displayed(item) if isinstance(item, Equation) else [item])
    ]
    for item in items:
        if isinstance(item, Equation):
            if groups and groups[-1][0] == "eq":
                groups[-1][1].append(item)
            else:
                groups.append(("eq", [item]))
        else:
            groups.append(("table", item))
    return groups


# ----------------------------------------------------------------------------- LaTeX
def _table_tex(table: DataTable) -> str:
    def cell(c: Any) -> str:
        return f"${_equation_tex(c, False)}$" if isinstance(c, Equation) else _tex_prose(str(c))

    if table.layout == "pairs":  # name: value lines that wrap like prose
        items = [rf"\item[] \emph{{{cell(name)}}}: {cell(value)}" for name, value in table.rows]
        return "\n".join([r"\begin{itemize}", *items, r"\end{itemize}"])

    # a longtable breaks across pages (a network lists every layer) and repeats its header
    def printed(c: Any) -> str:  # what a cell prints (an equation's LaTeX, not its repr)
        return _equation_tex(c, False) if isinstance(c, Equation) else _tex_prose(str(c))

    natural = [
        max(width(printed(c)) for c in column) + 1 for column in zip(table.header, *table.rows)
    ]
    if sum(natural) + 2 * len(natural) > LINE:  # wrap the cells in columns sharing the line
        words = [
            max(width(w) for c in column for w in (printed(c).split() or [""])) + 4
            for column in zip(table.header, *table.rows)
        ]
        weights = [max(min(n, LINE // 3), w + 2) for n, w in zip(natural, words, strict=True)]
        spec = "".join(
            rf"p{{\dimexpr {0.99 * w / sum(weights):.3f}\linewidth - 2\tabcolsep\relax}}"
            for w in weights
        )
    else:
        spec = "l" * len(natural)
    lines = [rf"\begin{{longtable}}{{{spec}}}", r"\hline"]
    lines.append(" & ".join(_tex_prose(h) for h in table.header) + r" \\ \hline")
    lines.append(r"\endhead")
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\hline", r"\end{longtable}"]
    if spec.startswith("p"):  # many columns: a smaller type keeps their words whole
        lines = [r"{\footnotesize", *lines, "}"]
    if table.caption:
        lines.insert(0, _tex_prose(table.caption) + r"\par")
    return "\n".join(lines)


def _step_tex(step: Step) -> list[str]:
    prose, math, why = step_parts(step)
    lines = [r"\item " + _tex_prose(prose)]
    for kind, group in _groups(math):
        if kind == "eq":
            body = " \\\\\n".join(_equation_tex(eq, True) for eq in group)
            lines += [r"\begin{align*}", body, r"\end{align*}"]
        elif isinstance(group, Figure):
            lines += [r"\begin{center}", group.tikz]
            if group.caption:
                lines += [r"\par\smallskip", _tex_prose(group.caption)]
            lines.append(r"\end{center}")
        else:
            lines.append(_table_tex(group))
    if why:
        lines.append(r"\emph{Why:} " + _tex_prose(why))
    if step.substeps:
        lines.append(r"\begin{enumerate}")
        for sub in step.substeps:
            lines += _step_tex(sub)
        lines.append(r"\end{enumerate}")
    return lines


def to_latex(derivation: Document, standalone: bool = False) -> str:
    if derivation.level == "paragraph":  # a run-in heading: the intro continues its line
        lines = [
            rf"\paragraph{{{_tex_prose(derivation.title)}}} "
            + _tex_prose(derivation.intro)
            + r"\par"
        ]
    else:
        lines = [rf"\section*{{{_tex_prose(derivation.title)}}}"]
        if derivation.intro:
            lines.append(_tex_prose(derivation.intro) + r"\par")
    lines.append(r"\begin{enumerate}")
    for step in derivation.steps:
        lines += _step_tex(step)
    lines.append(r"\end{enumerate}")
    if any(line == r"\begin{align*}" for line in lines):
        # long derivations break across pages: the fragment says so itself (amsmath)
        lines.insert(1, r"\allowdisplaybreaks")
    body = "\n".join(lines) + "\n"
    if not standalone:
        return body
    preamble = PREAMBLE + "".join(
        f"\n\\usepackage{{{p}}}" for p in FIGURE_PACKAGES if _has_figure(derivation)
    )
    return preamble + "\n" + r"\begin{document}" + "\n" + body + r"\end{document}" + "\n"


def _has_figure(document: Document) -> bool:
    return any(isinstance(item, Figure) for step in document.walk() for item in step_math(step)[1])


# -------------------------------------------------------------------------- Markdown
def _table_md(table: DataTable) -> str:
    def cell(c: Any) -> str:
        return f"${_equation_tex(c, False)}$" if isinstance(c, Equation) else _md_prose(str(c))

    lines = []
    if table.caption:
        lines += [_md_prose(table.caption), ""]
    if table.layout == "pairs":
        return "\n".join(lines + [f"- {cell(name)}: {cell(value)}" for name, value in table.rows])
    lines.append("| " + " | ".join(_md_prose(h) for h in table.header) + " |")
    lines.append("|" + "---|" * len(table.header))
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _step_md(step: Step, number: str) -> list[str]:
    prose, math, why = step_parts(step)
    lines = [f"**{number}.** " + _md_prose(prose), ""]
    for kind, group in _groups(math):
        if kind == "eq":
            body = " \\\\\n".join(_equation_tex(eq, True) for eq in group)
            lines += ["$$", r"\begin{aligned}", body, r"\end{aligned}", "$$", ""]
        elif isinstance(group, Figure):
            lines += ["```", group.drawing, "```", ""]
            lines += [_md_prose(group.caption), ""] if group.caption else []
        else:
            lines += [_table_md(group), ""]
    if why:
        lines += ["*Why:* " + _md_prose(why), ""]
    for i, sub in enumerate(step.substeps, 1):
        lines += _step_md(sub, f"{number}.{i}")
    return lines


def to_markdown(derivation: Document) -> str:
    title = _md_prose(derivation.title)
    if derivation.level == "paragraph":
        lines = [f"**{title}** — {_md_prose(derivation.intro)}".rstrip(" —"), ""]
    else:
        lines = [f"## {title}", ""] + (
            [_md_prose(derivation.intro), ""] if derivation.intro else []
        )
    for i, step in enumerate(derivation.steps, 1):
        lines += _step_md(step, f"Step {i}")
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------ text
def _table_text(table: DataTable) -> str:
    def cell(c: Any) -> str:
        return _equation_text(c) if isinstance(c, Equation) else _text_prose(str(c))

    if table.layout == "pairs":
        return "\n".join(
            ([_text_prose(table.caption)] if table.caption else [])
            + [f"{cell(name)}: {cell(value)}" for name, value in table.rows]
        )
    rows = [[_text_prose(h) for h in table.header]] + [[cell(c) for c in row] for row in table.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(table.header))]
    fmt = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    fmt.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([_text_prose(table.caption)] if table.caption else []) + fmt)


def _indent(text: str, prefix: str) -> list[str]:
    return [prefix + line for line in text.splitlines()]


def _step_text(step: Step, number: str, depth: int) -> list[str]:
    pad = "  " * depth
    prose, math, why = step_parts(step)
    lines = [f"{pad}{number}. " + _text_prose(prose)]
    for item in math:
        if isinstance(item, Figure):
            text = item.drawing + ("\n" + _text_prose(item.caption) if item.caption else "")
        else:
            text = _equation_text(item) if isinstance(item, Equation) else _table_text(item)
        lines += _indent(text, pad + "    ")
    if why:
        lines.append(f"{pad}   because: " + _text_prose(why))
    for i, sub in enumerate(step.substeps, 1):
        lines += _step_text(sub, f"{number}.{i}", depth + 1)
    return lines


def to_text(derivation: Document) -> str:
    title = _text_prose(derivation.title)
    if derivation.level == "paragraph":
        lines = [f"{title} -- {_text_prose(derivation.intro)}" if derivation.intro else title]
    else:
        lines = [title, "=" * min(len(title), 78)]
        if derivation.intro:
            lines.append(_text_prose(derivation.intro))
    for i, step in enumerate(derivation.steps, 1):
        lines += _step_text(step, str(i), 0)
    return "\n".join(lines)
