"""The ``convalgebra`` command line: parsers, error handling and the entry point :func:`main`.

Every subcommand computes its whole answer first (text and any files, as bytes); files are
written only after everything succeeded, each one atomically and only as a regular file
(:mod:`convalgebra.files`; ``--force`` to overwrite one, ``-`` for standard output), so an
error never leaves a partial or stale output behind. Exit codes: 0 success (``check``: the law
holds), 1 only for a law that fails, 2 for bad input (a malformed shape, an unknown model, an
unreadable file, a size over the budget, a missing optional extra: one line on stderr), 3 for
an internal error (anything unexpected); ``--debug`` adds the traceback; 130 after Ctrl-C
(one line; :mod:`.progress`, which also shows the progress of long work on stderr).
Everything printed goes through :func:`~convalgebra.errors.printable`: no control character
from a name reaches the terminal.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from pathlib import Path

from ..errors import ConvAlgebraError, MissingExtraError, missing_extra, printable, shown
from . import layer_commands as commands
from . import lipschitz_command, progress, prove_command, report_commands
from . import network_commands as network
from .args import WEIGHT_CHOICES, add_spec_arguments, parse_shape, parse_shift, parse_unit
from .common import NotAvailableError
from .files import STDOUT, check_distinct, write_files

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A command line argparse could not accept (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _sub(subparsers, name: str, help_: str, description: str, examples: str):
    parser = subparsers.add_parser(
        name,
        help=help_,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback on errors",
    )
    return parser


def _force_argument(parser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing output files (regular files only; '-' writes to standard output)",
    )


def _model_arguments(parser, *, default_model: bool, short_in: bool = False) -> None:
    parser.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL|FILE",
        help="a zoo name (see --list), a JSON/YAML graph file, or a PyTorch model as "
        "path/to/file.py:factory or package.module:attr, optionally with literal arguments "
        "'file.py:make(3, width=2)' (needs --in)"
        + (" (default resnet18)" if default_model else ""),
    )
    flags = ("--input", "--in") if short_in else ("--input",)
    parser.add_argument(
        *flags,
        dest="input",
        type=parse_shape,
        default=None,
        metavar="SHAPE",
        help="input shape, e.g. 3x224x224 (default: the model's own)",
    )
    parser.add_argument("--list", action="store_true", help="list the built-in models and exit")


def _weight_arguments(parser) -> None:
    parser.add_argument(
        "--weight",
        default=None,
        metavar="W",
        help=f"kernel: one of {', '.join(WEIGHT_CHOICES)}, numbers like 1,0,-1, or a .npy/.txt "
        "file (arange = 1, 2, ..., n, so entry k is weight k)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for random data (default 0)")


def _add_analyze(subparsers) -> None:
    p = _sub(
        subparsers,
        "analyze",
        "per-layer shapes, receptive fields, parameters, MACs",
        "Analyse a network statically: per layer the output shape, receptive field "
        "(size/jump), parameters and multiply-accumulates (MACs; FLOPs = 2 MACs), then totals.",
        """
convalgebra analyze                      # resnet18 at 3x224x224
convalgebra analyze vgg16 --format markdown
convalgebra analyze resnet50 --input 3x160x160 --format csv
convalgebra analyze mynet.yaml --format json
convalgebra analyze mymodel.py:Net --in 3x64x64 --depth 1 --percent
convalgebra analyze 'mymodel.py:make(3, width=2)' --in 3x64x64 --batch 32 --dtype float16
convalgebra analyze mymodel:Net --in 3x64x64 --format csv   # package.module:attr
convalgebra analyze --list""",
    )
    _model_arguments(p, default_model=True, short_in=True)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json"), default="text")
    _table_arguments(p)
    p.set_defaults(handler=network.analyze)


def _table_arguments(parser) -> None:
    parser.add_argument(
        "--batch",
        type=_positive_int,
        default=1,
        metavar="N",
        help="batch size for activation memory, MACs and FLOPs (default 1)",
    )
    parser.add_argument(
        "--dtype",
        choices=tuple(network.DTYPE_BYTES),
        default="float32",
        help="element type for memory (default float32)",
    )
    parser.add_argument(
        "--depth",
        type=_positive_int,
        default=None,
        metavar="K",
        help="fold nodes into one row per module path prefix of K parts "
        "(layer4.2.relu -> layer4 at --depth 1)",
    )
    parser.add_argument("--fold", action="store_true", help=FOLD_HELP)
    parser.add_argument(
        "--percent",
        action="store_true",
        help="add each row's share of the total params, MACs and memory",
    )


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {shown(text)}")
    return int(text)


def _add_export(subparsers) -> None:
    p = _sub(
        subparsers,
        "export",
        "write a network as a JSON/YAML graph file",
        "Write a network (zoo name, graph file or PyTorch model) as a declarative graph "
        "file that every command reads back (JSON or YAML by the suffix of -o; without "
        "-o, JSON on stdout).",
        """
convalgebra export resnet18 -o resnet18.yaml
convalgebra export 'mymodel.py:make(3, width=2)' --in 3x64x64 -o mymodel.json
convalgebra export mymodel:Net --in 3x32x32""",
    )
    _model_arguments(p, default_model=False, short_in=True)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="a .json, .yaml or .yml file (default: JSON on stdout)",
    )
    p.set_defaults(handler=network.export)


def _add_matrix(subparsers) -> None:
    p = _sub(
        subparsers,
        "matrix",
        "the matrix a layer is: shape, sparsity, structure, entries",
        "Print the matrix M of a layer (M @ x.ravel() == conv(x).ravel()): its shape, "
        "non-zeros, parameter sharing, structure (Toeplitz, doubly block circulant, ...) "
        "and the entries, symbolic (w1, w2, ...) or numeric, truncated.",
        """
convalgebra matrix --in 1x4x4 -k 3 -p 1 --mode circular
convalgebra matrix --in 1x5x5 -k 3 -s 2 --weight arange --max-size 25
convalgebra matrix --in 3x8x8 --out 4 -k 3 -p same --plot matrix.png
convalgebra matrix --in 1x6 -k 3 -p 0:2 --weight 1,0,-1 --save m.mtx
convalgebra matrix --in 2x6x6 --out 2 -k 3 -p 1 --html -o layer.html""",
    )
    add_spec_arguments(p)
    _weight_arguments(p)
    p.add_argument(
        "--max-size",
        type=int,
        default=16,
        metavar="N",
        help="show at most N rows and columns (default 16)",
    )
    p.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="FILE",
        help="save the numeric matrix as .npz (scipy.sparse) or .mtx (Matrix Market); "
        "with a symbolic kernel the entries are the weight numbers (arange)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE",
        help="draw the matrix with its block boundaries: a .png, .svg or .pdf file "
        "(needs the plot extra)",
    )
    p.add_argument(
        "--html",
        action="store_true",
        help="write one offline HTML page of the matrix where hovering a cell shows its "
        "(output, input, weight) triples (to -o, default matrix.html)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="the page --html writes (default matrix.html)",
    )
    _force_argument(p)
    p.set_defaults(handler=commands.matrix)


def _add_grad(subparsers) -> None:
    p = _sub(
        subparsers,
        "grad",
        "the backward pass: kernel and input gradients as transposes",
        "The backward pass of a layer: each dL/dw as a sum over outputs (eq. 9.11) and each "
        "dL/da as a sum over kernel taps (M^T g, eq. 9.13), symbolic by default; with "
        "--numeric, the gradient arrays for concrete data.",
        """
convalgebra grad --in 1x5x5 -k 3 -s 2            # the book's strided example
convalgebra grad --in 1x4 -k 2 --numeric --weight 1,2 --data 1,2,3,4 --grad-output 1,1,1""",
    )
    add_spec_arguments(p)
    _weight_arguments(p)
    p.add_argument("--numeric", action="store_true", help="numeric gradients instead of symbols")
    p.add_argument(
        "--show",
        type=_sections,
        default=list(commands.GRAD_SECTIONS),
        metavar="PARTS",
        help="which parts, comma separated: forward,weight,bias,input",
    )
    p.add_argument(
        "--max-equations",
        type=int,
        default=12,
        metavar="N",
        help="equations shown per part (default 12, 0 = all)",
    )
    p.add_argument(
        "--general",
        action="store_true",
        help="also print the book's general formulas and check them against these",
    )
    p.add_argument("--data", default="random", metavar="X", help="input data (default random)")
    p.add_argument(
        "--grad-output",
        default="random",
        metavar="G",
        help="upstream gradient dL/dz (default random)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: the equations (or, with --numeric, the arrays) as data",
    )
    p.set_defaults(handler=commands.grad)


def _sections(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in commands.GRAD_SECTIONS]
    if bad or not parts:
        raise argparse.ArgumentTypeError(
            f"expected parts among {','.join(commands.GRAD_SECTIONS)}, got {shown(text)}"
        )
    return parts


def _add_check(subparsers) -> None:
    p = _sub(
        subparsers,
        "check",
        "verify an identity: holds (with the reason) or a counterexample",
        "Check a law for a layer (or two): the verdict with its evidence, or the smallest "
        "exact counterexample. A second layer is given with --with as quoted flags; it "
        "runs on whatever size reaches it (layer_commutativity and composition apply "
        "each layer to the size that arrives, as PyTorch does). Pooling laws read the "
        "window from -k/-s/-p and the input from --in (and --data). Exit status: 0 "
        "when the law holds, 1 when it fails, 2 for bad input, so scripts can use it "
        "like test(1).",
        """
convalgebra check translation_equivariance --in 1x6x6 -k 3 -p 1 --mode circular
convalgebra check translation_equivariance --in 1x6x6 -k 3 -p 1 --shift 0x1
convalgebra check translation_equivariance --in 1x5x5 -k 3 --shift -1 --axis 1
convalgebra check commutativity --in 1x5 -k 3 --flip
convalgebra check commutativity                  # the index proof, for every size
convalgebra check layer_commutativity --in 1x6 -k 3 -p 1 --mode circular --with "-k 2 -p 0:1 --mode circular"
convalgebra check composition --in 1x9 -k 3 -s 2 --with "-k 2"
convalgebra check max_pool_invariance --in 1x8x8 -k 2 --shift 0x1 --seed 3
convalgebra check --list""",
    )
    p.add_argument("law", nargs="?", help="the law to check (see --list)")
    add_spec_arguments(p, required=False)
    p.add_argument(
        "--with",
        dest="second",
        action="append",
        default=[],
        metavar="FLAGS",
        help='another layer as quoted spec flags, e.g. "-k 3 --mode circular"',
    )
    p.add_argument(
        "--shift",
        type=parse_shift,
        default=None,
        metavar="SHIFT",
        help="translation for equivariance laws: signed, one per spatial axis "
        "(0x-1), or one int along --axis (--shift=-1 --axis 1)",
    )
    p.add_argument("--axis", type=int, default=None, help="spatial axis (flip, an int --shift)")
    p.add_argument("--turns", type=int, default=None, help="quarter turns (rotation_equivariance)")
    p.add_argument("--factor", type=int, default=None, help="scale factor (scale_equivariance)")
    p.add_argument(
        "--direction",
        choices=("up", "down"),
        default=None,
        help="scale direction (scale_equivariance)",
    )
    _weight_arguments(p)
    p.add_argument(
        "--data",
        default=None,
        metavar="X",
        help="the input of max_pool_invariance (default random integers)",
    )
    p.add_argument("--format", choices=("text", "markdown", "latex", "json"), default="text")
    p.add_argument("--list", action="store_true", help="list the laws and exit")
    p.set_defaults(handler=commands.check)


# every kind of convalgebra.derivations.KINDS (tests/test_cli_json_help.py keeps them equal)
DERIVE_KINDS = {
    "output_size": "the output size, axis by axis",
    "matrix": "the layer's matrix, entry by entry (--max-rows, --max-cols)",
    "forward": "the forward equations: each output as a sum of products",
    "backward": "kernel and input gradients (eq. 9.11, 9.13)",
    "params": "the parameter count (a layer, or a network with --model)",
    "receptive_field": "the receptive field (a layer, or a network with --model)",
    "check": "the proof of a law, from a check result (from Python: derive(check(...)))",
    "im2col": "the im2col lowering: the kernel Jacobian J(x)",
    "cost": "parameters and MACs, against the standard convolution; with --model a "
    "network's parameters, buffers, MACs and memory layer by layer",
    "transposed": "a transposed convolution as the adjoint (with --transposed)",
    "pooling": "average or max pooling as a linear map at an input (from Python: "
    "derive('pooling', spec, x=...))",
    "spectrum": "closed-form singular values of a circular layer (--mode circular)",
    "lecture": "a whole network layer by layer (--model): sizes, fields, parameters, MACs "
    "and the first layer's figure",
}


def _add_derive(subparsers) -> None:
    p = _sub(
        subparsers,
        "derive",
        "a textbook derivation in LaTeX, Markdown or text",
        "Generate a derivation from the same objects that compute the numbers: output "
        "size, the matrix, forward and backward equations, parameters, receptive field. "
        "WHAT=params/receptive_field/cost also accept a model with --model; WHAT=lecture needs one.\n\nkinds (WHAT):\n"
        + "\n".join(f"  {kind:<16} {text}" for kind, text in DERIVE_KINDS.items()),
        """
convalgebra derive output_size --in 1x7 -k 3 -s 3
convalgebra derive backward --in 1x5x5 -k 3 -s 2 --format latex -o backward.tex
convalgebra derive matrix --in 1x4x4 -k 3 -p 1 --mode circular --format markdown
convalgebra derive receptive_field --model lenet5
convalgebra derive lecture --model resnet18 --format latex --standalone -o resnet18.tex
convalgebra derive spectrum --in 1x8 -k 3 -p 1 --mode circular""",
    )
    p.add_argument(
        "what",
        metavar="WHAT",
        help="what to derive (the kinds are listed below)",
    )
    add_spec_arguments(p, required=False)
    p.add_argument(
        "--model",
        default=None,
        metavar="MODEL|FILE",
        help="derive for a network (zoo name or graph file) instead of one layer",
    )
    p.add_argument(
        "--input",
        type=parse_shape,
        default=None,
        metavar="SHAPE",
        help="the network's input shape (with --model)",
    )
    p.add_argument("--format", choices=("latex", "markdown", "text"), default="text")
    p.add_argument(
        "--standalone", action="store_true", help="a complete LaTeX document (with --format latex)"
    )
    p.add_argument(
        "--max-rows",
        type=int,
        default=None,
        metavar="N",
        help="matrix and backward: show at most N rows (the first N-1 and the last; default 32)",
    )
    p.add_argument(
        "--figure",
        type=Path,
        default=None,
        metavar="FILE",
        help="also draw the layer's conv arithmetic: FILE.tex (TikZ) or FILE.gif (animation, "
        "needs the plot extra)",
    )
    p.add_argument(
        "--max-cols",
        type=int,
        default=None,
        metavar="N",
        help="matrix and backward: show at most N columns (default 12)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write to FILE instead of printing",
    )
    _force_argument(p)
    p.set_defaults(handler=commands.derive)


def _add_rf(subparsers) -> None:
    p = _sub(
        subparsers,
        "rf",
        "receptive fields: of a layer, of every layer of a network",
        "Receptive fields: per layer of a network (size, jump, start), the exact input "
        "region of one output unit (--unit), or of one layer given by its flags.",
        """
convalgebra rf resnet18
convalgebra rf vgg16 --node features --unit 3x3
convalgebra rf resnet18 --plot rf_growth.png
convalgebra rf 'mymodel.py:make(3)' --in 3x64x64
convalgebra rf resnet18 --input 3x64x64 --effective --plot erf.png
convalgebra rf mymodel.py:Net --in 3x32x32 --effective --weights model
convalgebra rf --in 1x7x7 -k 3 -s 2 -p 1 --unit 1x1 --plot rf_unit.png""",
    )
    _model_arguments(p, default_model=False)
    add_spec_arguments(p, required=False)
    p.add_argument(
        "--node",
        default=None,
        help="the layer to look at (default: 'features' or the last spatial one)",
    )
    p.add_argument(
        "--unit",
        type=parse_unit,
        default=None,
        metavar="POS",
        help="an output position, e.g. 3x3 (0-based): print its exact input region",
    )
    p.add_argument("--format", choices=("text", "markdown", "csv", "json"), default="text")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE",
        help="draw the unit's field over the input grid (with --unit), otherwise "
        "the growth of the field along the network: a .png, .svg or .pdf file",
    )
    _force_argument(p)
    p.add_argument(
        "--effective",
        action="store_true",
        help="the effective receptive field of a unit (default the central one): "
        "each input pixel's weight for the network taken as linear (uniform "
        "weights), its size holding 95%% of the weight, and with --plot a picture "
        "beside the theoretical box",
    )
    p.add_argument(
        "--weights",
        choices=("uniform", "model"),
        default="uniform",
        help="with --effective: uniform weights (default), or the PyTorch model's "
        "own weights (a file.py:attr or package.module:attr model)",
    )
    p.set_defaults(handler=network.rf)


FOLD_HELP = (
    "one row per layer: a batch norm, activation or dropout folded into the layer it "
    "follows (conv1 + BN + ReLU)"
)


def _add_params(subparsers) -> None:
    p = _sub(
        subparsers,
        "params",
        "parameters and MACs of a layer or a network",
        "Learnable parameters (weights, biases; buffers apart) and multiply-accumulates.",
        """
convalgebra params --in 3x32x32 --out 10 -k 5 -p 2
convalgebra params resnet50
convalgebra params lenet5 --format markdown
convalgebra params mymodel.py:Net --in 3x32x32 --depth 1 --percent""",
    )
    _model_arguments(p, default_model=False)
    add_spec_arguments(p, required=False)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json"), default="text")
    p.add_argument(
        "--depth",
        type=_positive_int,
        default=None,
        metavar="K",
        help="fold nodes into one row per module path prefix of K parts",
    )
    p.add_argument("--fold", action="store_true", help=FOLD_HELP)
    p.add_argument(
        "--percent", action="store_true", help="add each row's share of the total params and MACs"
    )
    p.set_defaults(handler=network.params)


def _add_spectrum(subparsers) -> None:
    p = _sub(
        subparsers,
        "spectrum",
        "singular values and operator norm of a layer",
        "All singular values of a layer's matrix (by the DFT for circular layers whose "
        "output tiles the input, else a dense SVD, or the --largest by Lanczos), its "
        "condition number and the guaranteed upper bounds on its norm.",
        """
convalgebra spectrum --in 16x32x32 --out 16 -k 3 -p 1 --mode circular
convalgebra spectrum --in 4x8x8 --out 4 -k 3 -p 1 --weight ones --plot spectrum.png
convalgebra spectrum --in 4x20x20 --out 4 -k 3 -p 1 --mode reflect --largest 3""",
    )
    add_spec_arguments(p, required=False)
    _weight_arguments(p)
    p.add_argument(
        "--largest",
        type=int,
        default=None,
        metavar="K",
        help="only the K largest singular values (Lanczos unless circular)",
    )
    p.add_argument(
        "--show", type=int, default=10, metavar="N", help="print the N largest values (default 10)"
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE",
        help="draw the sorted spectrum: a .png, .svg or .pdf file (needs the plot extra)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: every singular value and the norm bounds as data",
    )
    p.set_defaults(handler=commands.spectrum)


def _add_prove(subparsers) -> None:
    p = _sub(
        subparsers,
        "prove",
        "decide an identity for every input size: the sizes where it holds, a counterexample",
        "Decide LHS == RHS, two expressions of the operator language (conv, conv_transpose, "
        "avg_pool, pad, crop, shift, flip, rot90, subsample, upsample_zeros, "
        "upsample_nearest, pixel_shuffle, pixel_unshuffle, cat, split, adjoint, and the "
        "kernel maps constant, delta, dilate_kernel, enlarge_kernel, flip_kernel, "
        "kernel_conv, polyphase_kernel, cat_kernels), for every input size, with symbolic "
        "kernels. Declare every name: --x 1xN (a signal of C=1 channels and every size N), "
        "--w 1x1x3 (a kernel). The text is read, never run. Options: --size 8, "
        "--sizes 1:64, --format text|markdown|latex|json. Exit status: 0 holds, 1 fails, "
        "2 bad input.",
        prove_command.PROVE_HELP,
    )
    p.add_argument("identity", help='the identity, e.g. "conv(x, w, stride=2) == ..."')
    p.add_argument("declarations", nargs=argparse.REMAINDER, help="--NAME SHAPE ... and options")
    p.set_defaults(handler=prove_command.prove)


def _add_report(subparsers) -> None:
    p = _sub(
        subparsers,
        "report",
        "an interactive HTML report of a network (one offline file)",
        "Write one self-contained HTML file: a sortable table of the layers (shape, "
        "receptive field size/jump/start per axis, parameters, MACs, memory), the input "
        "grid where hovering a row draws its unit's exact receptive box, a unit slider per "
        "axis (or a click on the grid) with the unit's exact effective field as a heatmap, "
        "and a CSV download. Nothing is loaded from the network.",
        """
convalgebra report resnet18 -o resnet18.html
convalgebra report 'mymodel.py:make(3)' --in 3x64x64 -o mymodel.html
convalgebra report mynet.yaml --force""",
    )
    _model_arguments(p, default_model=True, short_in=True)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="the page to write (default: the model's name with .html)",
    )
    p.add_argument(
        "--max-units",
        type=_positive_int,
        default=50_000,
        metavar="N",
        help="refuse a report needing more than N unit lookups (default 50,000)",
    )
    p.add_argument(
        "--max-field-entries",
        type=_positive_int,
        default=1_000_000,
        metavar="N",
        help="embed the effective fields only up to N matrix entries and multiply-adds per "
        "unit (default 1,000,000); above, the page draws boxes and says why no heatmap",
    )
    _force_argument(p)
    p.set_defaults(handler=report_commands.report)


def build_parser() -> argparse.ArgumentParser:
    """The ``convalgebra`` argument parser with all its subcommands."""
    from .. import __version__

    parser = _Parser(
        prog="convalgebra",
        description="Convolution layers as exact linear algebra. With no command: analyse "
        "resnet18 at 3x224x224.",
        epilog=commands.MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"convalgebra {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        _add_analyze,
        _add_matrix,
        _add_grad,
        _add_check,
        _add_derive,
        _add_rf,
        _add_params,
        _add_export,
        _add_spectrum,
        _add_prove,
        _add_report,
    ):
        add(subparsers)
    lipschitz_command.add_parser(subparsers, _sub)
    return parser


MAIN_NEXT = (
    "next: convalgebra rf resnet18 | convalgebra report resnet18 -o resnet18.html | "
    "convalgebra derive --help"
)


def _with_default_command(argv: list[str], commands_: set[str]) -> list[str]:
    """No command given (only top-level flags or nothing): run ``analyze``."""
    if any(a in commands_ or a in ("-h", "--help", "--version") for a in argv):
        return argv
    if any(not a.startswith("-") for a in argv):
        return argv  # let argparse report the unknown command
    return [*argv, "analyze"]


def _glue_values(
    argv: list[str], options: tuple[str, ...] = ("--with",), signed: tuple[str, ...] = ("--shift",)
) -> list[str]:
    """``--with "-k 3"`` -> ``--with=-k 3`` and ``--shift -2x1`` -> ``--shift=-2x1``:
    argparse would take a value starting with '-' for an option of its own."""
    out: list[str] = []
    items = iter(argv)
    for a in items:
        out.append(a)
        if a in options or a in signed:
            value = next(items, None)
            if value is None:
                continue
            if a in options or re.fullmatch(r"-\d[\d\s,x×+-]*", value):
                out[-1] = f"{a}={value}"
            else:
                out.append(value)
    return out


#: Longest error line: a message names a few values, each cut to about 200 characters.
LINE_LIMIT = 1000


def _one_line(exc: BaseException) -> str:
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - a message that cannot be rendered still gets a line
        text = ""
    return printable(text, limit=LINE_LIMIT) or type(exc).__name__


def _terminal_safe(path: Path, data: bytes) -> bytes:
    """Text for standard output (``-``) escaped like every printed line; files and binary
    data (a PNG on a pipe) as they are."""
    if str(path) != STDOUT:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return printable(text, limit=0, keep="\n\t").encode("utf-8")


def _is_bad_input(exc: BaseException) -> bool:
    """Bad input (exit 2): the error family, a file the system refuses, a YAML error, a missing
    optional extra. Anything else is internal (exit 3), MemoryError and OverflowError included:
    the estimator refuses sizes before they allocate."""
    if isinstance(exc, (ConvAlgebraError, TypeError, OSError, MissingExtraError)):
        return True
    if isinstance(exc, NotAvailableError):
        return True
    return type(exc).__module__.split(".")[0] == "yaml"  # YAMLError and its subclasses


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommand names (argparse keeps them on its subparsers action)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [name for action in actions for name in action.choices]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 the law fails, 2 bad input,
    3 internal error).

    Examples
    --------
    >>> main(["matrix", "--in", "1x4", "-k", "2"])  # doctest: +ELLIPSIS
    Conv1d(1, 1, kernel_size=(2,), ...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with progress.stopping_on_interrupt():
        try:
            return _run(argv)
        except KeyboardInterrupt:  # Ctrl-C: one line, exit 130, whatever was running
            return progress.interrupted()


def _run(argv: list[str]) -> int:
    debug = "--debug" in argv
    parser = build_parser()
    names = set(_command_names(parser))
    try:
        full = _with_default_command(argv, names)
        ns = parser.parse_args(_glue_values(full))
        check_distinct(v for v in vars(ns).values() if isinstance(v, Path))  # the outputs
        result = ns.handler(ns)
        if len(full) > len(argv) and result.exit_code == 0 and ns.format == "text":
            result.text += "\n\n" + MAIN_NEXT  # the main job points at the next steps
        files = {path: _terminal_safe(path, data) for path, data in result.files.items()}
        write_files(files, force=getattr(ns, "force", False))
        if result.text:
            to_stdout = any(str(p) == STDOUT for p in result.files)
            text = printable(result.text, limit=0, keep="\n\t")
            print(text, file=sys.stderr if to_stdout else sys.stdout)
        return result.exit_code
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. piped into head
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, no traceback
        if debug:
            traceback.print_exc()
        exc = missing_extra(exc) or exc
        if _is_bad_input(exc):
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"internal error ({type(exc).__name__}): {_one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
