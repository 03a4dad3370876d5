"""A :class:`~convalgebra.ops.prove.Proof` as a document of the one renderer: the identity,
the normal forms, the threshold argument, the verdict per class of sizes, the counterexample.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..render.formats import Document
from ..render.model import DataTable, Equation, Expr, Step

__all__ = ["proof_document", "size_classes", "printed_identity"]


def size_classes(proof: Any) -> list[tuple[str, tuple[int, ...], str, tuple]]:
    """``(class, representative size, status, members)`` for every class of sizes decided.

    ``members`` are the sizes the printed class stands for and that were decided (a run of
    sizes below the threshold, or the one representative of a residue class).

    In one dimension the sizes below the threshold ``T`` are listed one by one and the sizes
    from ``T`` on by residue modulo ``P``; in more dimensions (or for listed sizes) the classes
    are the decided sizes themselves.
    """
    ndim = proof.lhs.ndim
    rows: list[tuple[str, tuple[int, ...], str, tuple]] = []
    if proof.restricted or len(proof.thresholds) > 1:
        for cell in itertools.product(
            *(range(t + p - 1) for t, p in zip(proof.thresholds, proof.periods))
        ):
            size = tuple(c + 1 for c in cell)
            full = size * ndim if proof.square else size
            if proof.restricted and full not in (proof.sizes.explicit or ()):
                continue
            rows.append((str(full if ndim > 1 else full[0]), full, _status(proof, full), (full,)))
        return rows
    t, p = proof.thresholds[0], proof.periods[0]
    start = 1
    for n in range(1, t):  # runs of one verdict below the threshold
        full = (n,) * ndim if proof.square else (n,)
        status = _status(proof, full)
        last = (n + 1,) * ndim if proof.square else (n + 1,)
        if n + 1 < t and _status(proof, last) == status:
            continue
        label = f"n = {n}" if start == n else f"{start} <= n <= {n}"
        members = tuple((m,) * ndim if proof.square else (m,) for m in range(start, n + 1))
        rows.append((label, full, status, members))
        start = n + 1
    for r in range(p):
        n = t + r
        full = (n,) * ndim if proof.square else (n,)
        label = f"n >= {t}" if p == 1 else f"n >= {t}, n ≡ {n % p} (mod {p})"
        rows.append((label, full, _status(proof, full), (full,)))
    return rows


def _words(text: str) -> str:
    """Relations as the symbols every renderer prints (``>=`` would not survive LaTeX)."""
    return text.replace(">=", "≥").replace("<=", "≤")


def _status(proof: Any, size: tuple[int, ...]) -> str:
    if size not in proof.defined:
        return "not defined"
    return "holds" if size in proof.sizes else "fails"


def _theorem(proof: Any) -> str:
    axes = "per axis " if len(proof.thresholds) > 1 else ""
    square = " The signal is square (one size n for every axis)." if proof.square else ""
    return (
        "Threshold theorem: each operator maps positions affinely up to a bounded window, except "
        "within a bounded distance of either end; inserting one period of P positions far from "
        "both ends inserts whole periods at every node and changes no other row. So from size T on, "
        "whether the identity holds depends only on the size modulo P. Here "
        f"{axes}T = {_tuple(proof.thresholds)} and P = {_tuple(proof.periods)}, computed from the "
        f"expressions' rates, boundaries and windows.{square}"
    )


def _tuple(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(values) == 1 else str(values)


def _tt(text: str) -> str:
    escaped = "".join("\\" + c if c in "_{}#%&$" else c for c in text)
    return r"\texttt{" + escaped + "}"


def _names(proof: Any) -> dict[str, Any]:
    from .expressions import Signal, walk
    from .kernels import kernel

    names: dict[str, Any] = {}
    for node in walk(proof.lhs) + walk(proof.rhs):
        if isinstance(node, Signal):
            names[node.name] = node
        for k in node.kernels():
            for name, shape in k.symbols().items():
                names[name] = kernel(name, shape)
    return names


def printed_identity(proof: Any, rows: list, decide: Any) -> Equation:
    """The identity as printed, with a check that reads the printed formulas back, decides
    them again at every printed class and at the counterexample, and compares."""
    lhs_text, rhs_text = proof.lhs.formula(), proof.rhs.formula()

    def check() -> int:
        from .parse import parse_identity

        lhs, rhs = parse_identity(f"{lhs_text} == {rhs_text}", _names(proof))
        sizes = [m for *_, members in rows for m in members]
        ce = proof.counterexample
        again = decide(lhs, rhs, sizes=sizes + ([ce.size] if ce is not None else []))
        for label, _, status, members in rows:
            for m in members:  # every size the printed class stands for
                found = _status(again, m)
                assert found == status, f"{label}: printed {status!r}, decided {found!r} at {m}"
        if ce is not None:
            assert ce.size in again.failing, "the counterexample's size holds"
        return len(sizes) + (ce is not None)

    return Equation(
        (Expr(_tt(lhs_text), lhs_text), Expr(_tt(rhs_text), rhs_text)),
        defines=False,
        chain=False,
        check=check,
    )


def proof_document(proof: Any, decide: Any, max_rows: int = 40) -> Document:
    """The proof of :func:`~convalgebra.ops.prove` as a document (text, Markdown, LaTeX);
    ``decide`` is ``prove`` itself, which the printed identity's check calls again."""
    rows = size_classes(proof)
    kernels = ", ".join(proof.symbols[:6]) + (", …" if len(proof.symbols) > 6 else "")
    steps = [
        Step(
            "Claim: as linear maps of the signal, for every value of the kernels"
            + (f" ({kernels})" if proof.symbols else "")
            + ",",
            (printed_identity(proof, rows, decide),),
            rule="claim",
        ),
        Step(
            "Normal forms: at each size both sides lower to tables of terms "
            "y[o] += c · m(w) · x[i] (m a monomial in the kernel entries); the sides are one map "
            "for every kernel exactly when the tables agree after like terms are summed.",
            rule="method",
        ),
    ]
    if proof.restricted:
        steps.append(Step(f"Sizes decided: {proof.decided}, as listed (sizes=).", rule="sizes"))
    else:
        steps.append(Step(_theorem(proof), rule="theorem"))
    shown_rows = rows if len(rows) <= max_rows else rows[: max_rows - 1]
    table = DataTable(
        ("sizes", "verdict"),
        tuple((_words(label), status) for label, _, status, _ in shown_rows)
        + ((f"… {len(rows) - len(shown_rows)} more classes", ""),) * (len(rows) > len(shown_rows)),
        caption="The verdict per class of sizes",
    )
    steps.append(Step("Each class decided at its representative size:", (table,), rule="classes"))
    steps.append(
        Step(
            _words(
                f"Both sides are defined for {proof.defined}; the identity holds for {proof.sizes}."
            ),
            rule="sizes",
        )
    )
    if proof.counterexample is not None:
        steps.append(
            Step(
                f"Smallest counterexample: {proof.counterexample.description}.",
                rule="counterexample",
            )
        )
    verdict = "holds at every size where both sides are defined" if proof.holds else "fails"
    steps.append(Step(f"Verdict: the identity {verdict}.", rule="verdict"))
    title = f"Identity {'HOLDS' if proof.holds else 'FAILS'}"
    return Document(title, tuple(steps), intro="", result=proof, level="paragraph")
