"""Printers for :class:`~convalgebra.derivations.model.Derivation`: LaTeX, Markdown, plain text.

The LaTeX document needs only ``amsmath`` (part of every LaTeX installation). Markdown uses
``$…$`` inline and ``$$…$$`` display math, which GitHub and Jupyter both render.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from .model import Derivation, Equation, Step, Table
from .printing import tex_to_text

__all__ = ["to_latex", "to_markdown", "to_text", "PREAMBLE"]

PREAMBLE = "\n".join([
    r"\documentclass[10pt]{article}",
    r"\usepackage{amsmath}",
    r"\usepackage{amssymb}",
    r"\setcounter{MaxMatrixCols}{40}",
    r"\allowdisplaybreaks",
    r"\setlength{\parindent}{0pt}",
    r"\addtolength{\textwidth}{4cm}",
    r"\addtolength{\oddsidemargin}{-2cm}",
])

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "→": r"$\to$", "×": r"$\times$", "·": r"$\cdot$", "…": r"\ldots{}", "−": "-",
    "≤": r"$\le$", "≥": r"$\ge$", "∂": r"$\partial$", "⌊": r"$\lfloor$", "⌋": r"$\rfloor$",
    "ᵀ": r"$^{\top}$", "²": r"$^2$", "≠": r"$\ne$", "Σ": r"$\Sigma$", "—": "---", "–": "--",
    "’": "'", "“": "``", "”": "''", "⋮": r"$\vdots$", "°": r"$^\circ$",
}


_UNICODE_MATH = {
    "⊗": r"\otimes", "⋯": r"\cdots", "∘": r"\circ", "⋆": r"\star", "∗": r"\ast", "′": "'", "≈": r"\approx",
    "∈": r"\in", "∑": r"\sum", "∏": r"\prod", "√": r"\surd", "∞": r"\infty", "±": r"\pm", "⇒": r"\Rightarrow",
    "↦": r"\mapsto", "⊂": r"\subset", "∪": r"\cup", "∩": r"\cap", "⌈": r"\lceil", "⌉": r"\rceil", "≡": r"\equiv",
    "⋱": r"\ddots", "⊙": r"\odot", "∇": r"\nabla", "⁻": "^{-}", "¹": "^{1}", "³": "^{3}", "⊤": r"\top",
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
        letter = {"lamda": "lambda", "sigma": "sigma"}.get(name.split()[-1].lower(), name.split()[-1].lower())
        letter = letter.capitalize() if "CAPITAL" in name else letter
        letter = "varsigma" if "FINAL SIGMA" in name else letter
        return rf"$\{letter}$"
    ascii_form = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return ascii_form or "?"


def _split_math(prose: str) -> list[tuple[bool, str]]:
    """Split prose at ``$`` into (is_math, piece) segments."""
    parts = prose.split("$")
    return [(i % 2 == 1, p) for i, p in enumerate(parts) if p]


def _tex_prose(prose: str) -> str:
    out = []
    for is_math, piece in _split_math(prose):
        if is_math:
            out.append(f"${piece}$")
        else:
            out.append("".join(_unicode_tex(ch) if ch in _TEX_SPECIAL or ord(ch) > 127 else ch for ch in piece))
    return "".join(out)


def _md_prose(prose: str) -> str:
    out = []
    for is_math, piece in _split_math(prose):
        out.append(f"${piece}$" if is_math else re.sub(r"([*_|<>])", r"\\\1", piece))
    return "".join(out)


def _text_prose(prose: str) -> str:
    return "".join(tex_to_text(p) if m else p for m, p in _split_math(prose))


# --------------------------------------------------------------------------- equations
def _side_tex(side: Any) -> str:
    return side.tex


_TEX_REL = {"=": "=", "<=": r"\le", ">=": r"\ge", "!=": r"\ne", "approx": r"\approx", "<": "<", ">": ">"}
_TEXT_REL = {"approx": "≈", "<=": "≤", ">=": "≥", "!=": "≠"}


def _relations(eq: Equation) -> list[str]:
    n = len(eq.sides) - 1
    return [eq.relation] * n if isinstance(eq.relation, str) else list(eq.relation)


def _equation_tex(eq: Equation, align: bool) -> str:
    sides = [_side_tex(s) for s in eq.sides]
    amp = "&" if align else ""
    rels = [_TEX_REL.get(r, r) for r in _relations(eq)]
    body = sides[0] + "".join(f" {amp if i == 0 else ''}{rel} {s}" for i, (rel, s) in enumerate(zip(rels, sides[1:])))
    if eq.label:
        body += r" \qquad (" + _math_label(eq.label) + ")"
    return body


def _math_label(label: str) -> str:
    """Prose with ``$…$`` as math-mode LaTeX (``\\text{…}`` pieces), which MathJax also renders."""
    return "".join(piece if is_math else rf"\text{{{_tex_prose(piece)}}}" for is_math, piece in _split_math(label))


def _equation_text(eq: Equation) -> str:
    rels = [_TEXT_REL.get(r, r) for r in _relations(eq)]
    texts = [s.text for s in eq.sides]
    label = f"    ({_text_prose(eq.label)})" if eq.label else ""
    if any("\n" in t for t in texts):
        lines = [texts[0]]
        for rel, t in zip(rels, texts[1:]):
            lines[-1] += f" {rel}"
            lines.extend("  " + line for line in t.splitlines())
        lines[0] += label
        return "\n".join(lines)
    return texts[0] + "".join(f" {rel} {t}" for rel, t in zip(rels, texts[1:])) + label


def _groups(items: Iterable[Any]) -> list[tuple[str, Any]]:
    """Group consecutive equations into one display; tables stand alone."""
    groups: list[tuple[str, Any]] = []
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
def _table_tex(table: Table) -> str:
    cols = len(table.header)
    lines = [r"\begin{center}", rf"\begin{{tabular}}{{{'l' * cols}}}", r"\hline"]
    lines.append(" & ".join(_tex_prose(h) for h in table.header) + r" \\ \hline")
    for row in table.rows:
        cells = [f"${_equation_tex(c, False)}$" if isinstance(c, Equation) else _tex_prose(str(c)) for c in row]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{center}"]
    if table.caption:
        lines.insert(0, _tex_prose(table.caption) + r"\par")
    return "\n".join(lines)


def _step_tex(step: Step) -> list[str]:
    lines = [r"\item " + _tex_prose(step.statement)]
    for kind, group in _groups(step.math):
        if kind == "eq":
            body = " \\\\\n".join(_equation_tex(eq, True) for eq in group)
            lines += [r"\begin{align*}", body, r"\end{align*}"]
        else:
            lines.append(_table_tex(group))
    if step.justification:
        lines.append(r"\emph{Why:} " + _tex_prose(step.justification))
    if step.substeps:
        lines.append(r"\begin{enumerate}")
        for sub in step.substeps:
            lines += _step_tex(sub)
        lines.append(r"\end{enumerate}")
    return lines


def to_latex(derivation: Derivation, standalone: bool = False) -> str:
    lines = [rf"\section*{{{_tex_prose(derivation.title)}}}"]
    if derivation.intro:
        lines.append(_tex_prose(derivation.intro) + r"\par")
    lines.append(r"\begin{enumerate}")
    for step in derivation.steps:
        lines += _step_tex(step)
    lines.append(r"\end{enumerate}")
    body = "\n".join(lines) + "\n"
    if not standalone:
        return body
    return PREAMBLE + "\n" + r"\begin{document}" + "\n" + body + r"\end{document}" + "\n"


# -------------------------------------------------------------------------- Markdown
def _table_md(table: Table) -> str:
    def cell(c: Any) -> str:
        return f"${_equation_tex(c, False)}$" if isinstance(c, Equation) else _md_prose(str(c))

    lines = []
    if table.caption:
        lines += [_md_prose(table.caption), ""]
    lines.append("| " + " | ".join(_md_prose(h) for h in table.header) + " |")
    lines.append("|" + "---|" * len(table.header))
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _step_md(step: Step, number: str) -> list[str]:
    lines = [f"**{number}.** " + _md_prose(step.statement), ""]
    for kind, group in _groups(step.math):
        if kind == "eq":
            body = " \\\\\n".join(_equation_tex(eq, True) for eq in group)
            lines += ["$$", r"\begin{aligned}", body, r"\end{aligned}", "$$", ""]
        else:
            lines += [_table_md(group), ""]
    if step.justification:
        lines += ["*Why:* " + _md_prose(step.justification), ""]
    for i, sub in enumerate(step.substeps, 1):
        lines += _step_md(sub, f"{number}.{i}")
    return lines


def to_markdown(derivation: Derivation) -> str:
    lines = [f"## {_md_prose(derivation.title)}", ""]
    if derivation.intro:
        lines += [_md_prose(derivation.intro), ""]
    for i, step in enumerate(derivation.steps, 1):
        lines += _step_md(step, f"Step {i}")
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------ text
def _table_text(table: Table) -> str:
    def cell(c: Any) -> str:
        return _equation_text(c) if isinstance(c, Equation) else _text_prose(str(c))

    rows = [[_text_prose(h) for h in table.header]] + [[cell(c) for c in row] for row in table.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(table.header))]
    fmt = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    fmt.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([_text_prose(table.caption)] if table.caption else []) + fmt)


def _indent(text: str, prefix: str) -> list[str]:
    return [prefix + line for line in text.splitlines()]


def _step_text(step: Step, number: str, depth: int) -> list[str]:
    pad = "  " * depth
    lines = [f"{pad}{number}. " + _text_prose(step.statement)]
    for item in step.math:
        text = _equation_text(item) if isinstance(item, Equation) else _table_text(item)
        lines += _indent(text, pad + "    ")
    if step.justification:
        lines.append(f"{pad}   because: " + _text_prose(step.justification))
    for i, sub in enumerate(step.substeps, 1):
        lines += _step_text(sub, f"{number}.{i}", depth + 1)
    return lines


def to_text(derivation: Derivation) -> str:
    title = _text_prose(derivation.title)
    lines = [title, "=" * min(len(title), 78)]
    if derivation.intro:
        lines.append(_text_prose(derivation.intro))
    for i, step in enumerate(derivation.steps, 1):
        lines += _step_text(step, str(i), 0)
    return "\n".join(lines)

