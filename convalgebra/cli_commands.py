"""The subcommands of the ``convalgebra`` command: each turns parsed arguments into a Result.

A handler never prints and never writes: it returns the text to print and the files to write
(as bytes), and :func:`convalgebra.cli.main` writes them only once everything succeeded.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cli_args import make_array, make_weight, spec_from_args
from .errors import ConvAlgebraError
from .spec import ConvSpec

__all__ = ["Result", "NotAvailableError", "analyze", "matrix", "grad", "check", "derive", "rf",
           "params", "MAIN_EPILOG"]

MAIN_EPILOG = """examples:
  convalgebra                                   # analyse resnet18 at 3x224x224
  convalgebra analyze vgg16 --format markdown
  convalgebra matrix --in 1x4x4 -k 3 -p 1 --mode circular --plot circulant.png
  convalgebra grad --in 1x5x5 -k 3 -s 2
  convalgebra check translation_equivariance --in 1x6x6 -k 3 -p 1
  convalgebra derive backward --in 1x5x5 -k 3 -s 2 --format latex -o backward.tex
  convalgebra rf resnet18 --plot rf.png
  convalgebra params --in 3x32x32 --out 10 -k 5 -p 2

layer flags (PyTorch's names): --in 3x32x32 --out 16 -k 3 -s 2 -p 1 -d 1 -g 1
  --mode zeros|circular|reflect|replicate --transposed --output-padding 1 --flip --no-bias
  padding: -p same|valid|full, -p 1, one per axis -p 1x2, before:after -p 0:1 or -p 0:1x1:0

exit codes: 0 success, 1 failure, 2 bad input (one line on stderr; --debug for the traceback)"""


@dataclass
class Result:
    """What a subcommand produced: text for stdout and files to write (path -> bytes)."""

    text: str = ""
    files: dict[Path, bytes] = field(default_factory=dict)


class NotAvailableError(RuntimeError):
    """A subcommand whose library module is not part of this installation."""


def _module(name: str, command: str):
    """Import ``convalgebra.<name>`` or say that ``command`` is not available."""
    if importlib.util.find_spec(f"convalgebra.{name}") is None:
        raise NotAvailableError(
            f"'convalgebra {command}' is not available: this installation has no "
            f"convalgebra.{name} module"
        )
    return importlib.import_module(f"convalgebra.{name}")


def _spec(ns: argparse.Namespace, command: str) -> ConvSpec:
    if ns.input_shape is None or ns.kernel_size is None:
        raise ConvAlgebraError(
            f"{command} needs a layer: give at least --in SHAPE and -k K (see convalgebra "
            f"{command} --help)"
        )
    return spec_from_args(ns)


# ----------------------------------------------------------------------------- matrix
def _matrix_bytes(spec: ConvSpec, weight, path: Path) -> bytes:
    import scipy.io
    import scipy.sparse

    from .operators import conv_matrix

    if weight is None:
        weight = np.arange(1, math.prod(spec.weight_shape) + 1).reshape(spec.weight_shape)
    m = conv_matrix(spec, weight)
    buffer = io.BytesIO()
    if path.suffix == ".npz":
        scipy.sparse.save_npz(buffer, scipy.sparse.csr_matrix(m))
    else:
        scipy.io.mmwrite(buffer, scipy.sparse.coo_matrix(m),
                         comment=f" {spec.describe()}")
    return buffer.getvalue()


def _check_suffix(path: Path | None, allowed: tuple[str, ...], option: str) -> None:
    if path is not None and path.suffix.lower() not in allowed:
        raise ConvAlgebraError(
            f"{option} must name a {' or '.join(allowed)} file, got {str(path)!r}"
        )


def matrix(ns: argparse.Namespace) -> Result:
    """``convalgebra matrix``: the report of :func:`convalgebra.report.matrix_report`."""
    from .report import matrix_report

    _check_suffix(ns.save, (".npz", ".mtx"), "--save")
    _check_suffix(ns.plot, (".png",), "--plot")
    if ns.max_size < 1:
        raise ConvAlgebraError(f"--max-size must be a positive integer, got {ns.max_size}")
    spec = _spec(ns, "matrix")
    weight = make_weight(ns.weight or "symbolic", spec, ns.seed)
    text = matrix_report(spec, weight, symbolic=weight is None, max_size=ns.max_size)
    files: dict[Path, bytes] = {}
    if ns.save is not None:
        files[ns.save] = _matrix_bytes(spec, weight, ns.save)
    if ns.plot is not None:
        from .plot import plot_matrix, to_png

        files[ns.plot] = to_png(plot_matrix(spec, weight))
    return Result(text + "".join(f"\nwrote {p}" for p in files), files)


# ---------------------------------------------------------------------------- analyze
def analyze(ns: argparse.Namespace) -> Result:
    """``convalgebra analyze``: the per-layer table of a network and its totals."""
    if importlib.util.find_spec("convalgebra.graph") is None:
        # until the layer-graph module exists: the matrix report of the book's 2-D example
        from .report import matrix_report

        return Result(matrix_report(ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular")))
    raise NotAvailableError("'convalgebra analyze' is not wired yet")


def grad(ns: argparse.Namespace) -> Result:
    """``convalgebra grad``: the backward pass of a layer."""
    _module("gradients", "grad")
    raise NotAvailableError("'convalgebra grad' is not wired yet")


def check(ns: argparse.Namespace) -> Result:
    """``convalgebra check``: verify an identity."""
    _module("identities", "check")
    raise NotAvailableError("'convalgebra check' is not wired yet")


def derive(ns: argparse.Namespace) -> Result:
    """``convalgebra derive``: a derivation as LaTeX, Markdown or text."""
    _module("derive", "derive")
    raise NotAvailableError("'convalgebra derive' is not wired yet")


def rf(ns: argparse.Namespace) -> Result:
    """``convalgebra rf``: receptive fields."""
    _module("graph", "rf")
    raise NotAvailableError("'convalgebra rf' is not wired yet")


def params(ns: argparse.Namespace) -> Result:
    """``convalgebra params``: parameters and MACs."""
    _module("graph", "params")
    raise NotAvailableError("'convalgebra params' is not wired yet")
