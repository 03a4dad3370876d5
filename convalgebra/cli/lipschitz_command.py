"""``convalgebra lipschitz``: a certified Lipschitz bound of a PyTorch model, with progress.

The model is imported from ``file.py:factory`` or ``package.module:attr`` (its own weights,
eval mode) and bounded by :func:`~convalgebra.lipschitz.lipschitz_bound`; the bar (on
standard error, :mod:`.progress`) follows its nodes, then the lower bound's power iteration.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import ConvAlgebraError, printable, shown
from .args import parse_shape
from .common import Result, library_module
from .json_output import dumps
from .progress import Progress

__all__ = ["add_parser", "lipschitz"]

EXAMPLES = """
convalgebra lipschitz mymodel.py:Net --in 3x32x32
convalgebra lipschitz 'mymodel.py:make(1, width=2)' --in 1x28x28 --iterations 20 --format json"""


def add_parser(subparsers: Any, sub: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the subcommand; ``sub`` is the command line's one way to make a subparser."""
    p = sub(
        subparsers,
        "lipschitz",
        "a certified upper bound on a PyTorch model's Lipschitz constant",
        "A certified upper bound on ||f(x) - f(y)|| / ||x - y|| (Euclidean norms, eval mode) "
        "of a PyTorch model with its own weights, composed layer by layer (each convolution's "
        "norm by the DFT where it is circular, else its smallest guaranteed bound), and a "
        "lower bound by power iteration through the network.",
        EXAMPLES,
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a PyTorch model: path/to/file.py:factory or package.module:attr, optionally "
        "with literal arguments 'file.py:make(3, width=2)'",
    )
    p.add_argument(
        "--input",
        "--in",
        dest="input",
        type=parse_shape,
        required=True,
        metavar="SHAPE",
        help="input shape without the batch axis, e.g. 3x224x224",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=50,
        metavar="N",
        help="power-iteration steps of the lower bound (default 50; 0 skips it)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=lipschitz)


def lipschitz(ns: argparse.Namespace) -> Result:
    """The bound of ``ns.model`` at ``ns.input``: text (upper, lower, per-node table) or JSON."""
    from .python_models import build_module, is_python_target, parse_target

    if not is_python_target(ns.model):
        raise ConvAlgebraError(
            "lipschitz needs a PyTorch model with its weights (file.py:factory or "
            f"package.module:attr), got {shown(ns.model)}"
        )
    bounds = library_module("lipschitz", "lipschitz")
    module = build_module(parse_target(ns.model)).eval()
    with Progress("lipschitz", "step") as bar:

        def report(what: str, done: int, total: int) -> None:
            stage = "lower bound" if what == "power iteration" else printable(what, limit=40)
            bar.update(done, total, stage)

        bound = bounds.lipschitz_bound(module, ns.input, iterations=ns.iterations, callback=report)
    if ns.format == "json":
        record = {
            "model": ns.model,
            "input_shape": list(ns.input),
            "upper": bound.upper,
            "lower": bound.lower,
            "nodes": [
                {"node": e.node, "kind": e.kind, "layer": e.layer, "bound": e.bound, "how": e.how}
                for e in bound.nodes
            ],
        }
        return Result(dumps(record))
    lower = "" if bound.lower is None else f"; lower bound {bound.lower:.6g} (power iteration)"
    head = f"{ns.model} on {'x'.join(map(str, ns.input))}: upper bound {bound.upper:.6g}{lower}"
    return Result(head + "\n" + bound.table())
