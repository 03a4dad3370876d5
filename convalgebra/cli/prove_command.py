"""``convalgebra prove "LHS == RHS" --x 1xN --w 1x1x3``: an identity decided for every size.

The identity is read by :func:`convalgebra.ops.parse.parse_identity` (a fixed set of syntax
nodes, nothing run). Every other ``--NAME SHAPE`` declares a name: a shape with ``N`` (``1xN``,
``3xNxN``) is a signal of every size, a shape of integers (``1x1x3``) a symbolic kernel.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from ..errors import ConvAlgebraError, shown
from .common import Result
from .progress import Progress

__all__ = ["prove", "PROVE_HELP"]

PROVE_HELP = """
convalgebra prove "conv(x, w, stride=2) == subsample(conv(x, w), 2)" --x 1xN --w 1x1x3
convalgebra prove "conv(x, w, dilation=2) == conv(x, dilate_kernel(w, 2))" --x 1xNxN --w 1x1x3x3
convalgebra prove "conv(x, w, padding=1) == conv(x, w, padding=1, padding_mode='circular')" --x 1xN --w 1x1x3
convalgebra prove "avg_pool(x, 2) == conv(x, constant([[[1/2, 1/2]]]), stride=2)" --x 1xN
convalgebra prove "conv(conv(x, v), w) == conv(x, kernel_conv(v, w))" --x 1xN --v 1x1x2 --w 1x1x3 --format latex
convalgebra prove "conv(x, w, padding=1) == conv(pad(x, (1, 1)), w)" --x 1xN --w 1x1x3 --sizes 1:64"""

_SHAPE = re.compile(r"^\d+(?:x(?:\d+|[nN]))+$")
_OPTIONS = ("--size", "--sizes", "--format")


def _declarations(rest: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    from .. import ops

    names: dict[str, Any] = {}
    options: dict[str, str] = {}
    items = iter(rest)
    for flag in items:
        if "=" in flag and flag.startswith("--"):
            flag, value = flag.split("=", 1)
        else:
            value = next(items, None)  # type: ignore[assignment]
        if not flag.startswith("--") or value is None:
            raise ConvAlgebraError(
                f"expected --NAME SHAPE (e.g. --x 1xN --w 1x1x3), got {shown(flag)}"
            )
        name = flag[2:]
        if flag in _OPTIONS:
            options[name] = value
            continue
        if not name.isidentifier() or not name.isascii():
            raise ConvAlgebraError(f"{shown(flag)} does not declare a name (--x 1xN, --w 1x1x3)")
        if not _SHAPE.match(value):
            raise ConvAlgebraError(
                f"--{name} takes a shape like 1xN (a signal) or 1x1x3 (a kernel), got {shown(value)}"
            )
        parts = value.split("x")
        if any(p in "nN" for p in parts[1:]):
            if not all(p in "nN" for p in parts[1:]):
                raise ConvAlgebraError(f"a signal's spatial sizes are all N, got {shown(value)}")
            names[name] = ops.signal(int(parts[0]), len(parts) - 1, name)
        else:
            names[name] = ops.kernel(name, tuple(int(p) for p in parts))
    return names, options


def _sizes(options: dict[str, str], ndim: int) -> dict[str, Any]:
    if "size" in options and "sizes" in options:
        raise ConvAlgebraError("give --size or --sizes, not both")
    if "size" in options:
        return {"size": _one(options["size"], ndim)}
    if "sizes" in options:
        match = re.fullmatch(r"(\d{1,9}):(\d{1,9})", options["sizes"])
        if not match or int(match[1]) < 1 or int(match[2]) < int(match[1]):
            raise ConvAlgebraError(
                f"--sizes takes FIRST:LAST, e.g. 1:64, got {shown(options['sizes'])}"
            )
        if int(match[2]) - int(match[1]) >= 20_000:
            raise ConvAlgebraError(
                f"--sizes lists more than 20,000 sizes: {shown(options['sizes'])}"
            )
        return {"sizes": [(n,) * ndim for n in range(int(match[1]), int(match[2]) + 1)]}
    return {}


def _one(text: str, ndim: int) -> tuple[int, ...]:
    if not re.fullmatch(r"\d{1,9}(x\d{1,9})*", text):
        raise ConvAlgebraError(f"--size takes a size like 8 or 8x8, got {shown(text)}")
    values = tuple(int(v) for v in text.split("x"))
    return values * ndim if len(values) == 1 else values


def _json(proof: Any) -> str:
    ce = proof.counterexample
    data = {
        "identity": proof.claim,
        "holds": proof.holds,
        "sizes": str(proof.sizes),
        "defined": str(proof.defined),
        "failing": str(proof.failing),
        "threshold": list(proof.thresholds),
        "period": list(proof.periods),
        "counterexample": None
        if ce is None
        else {
            "size": list(ce.size),
            "inputs": {k: v.tolist() for k, v in ce.inputs.items()},
            "kernels": {k: v.tolist() for k, v in ce.kernels.items()},
            "lhs": [str(v) for v in ce.lhs.ravel()],
            "rhs": [str(v) for v in ce.rhs.ravel()],
            "positions": [list(p) for p in ce.positions],
        },
    }
    return json.dumps(data, indent=2)


def prove(ns: argparse.Namespace) -> Result:
    """``convalgebra prove``: 0 when the identity holds, 1 when it fails, 2 for bad input."""
    from ..ops import prove as decide
    from ..ops.parse import parse_identity

    names, options = _declarations(list(ns.declarations))
    lhs, rhs = parse_identity(ns.identity, names)
    with Progress("prove", "size") as bar:
        proof = decide(lhs, rhs, **_sizes(options, lhs.ndim), callback=bar.update)
    fmt = options.get("format", "text")
    render = {
        "text": proof.to_text,
        "markdown": proof.to_markdown,
        "latex": proof.to_latex,
        "json": lambda: _json(proof),
    }
    if fmt not in render:
        raise ConvAlgebraError(f"--format is one of {', '.join(render)}, got {shown(fmt)}")
    return Result(render[fmt](), exit_code=0 if proof.holds else 1)
