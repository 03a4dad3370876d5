"""The subcommands of the ``convalgebra`` command: each turns parsed arguments into a Result.

A handler never prints and never writes: it returns the text to print and the files to write
(as bytes), and :func:`convalgebra.cli.main` writes them only once everything succeeded.
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np

from .. import budget
from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from .args import make_array, make_weight, parse_spec_string, spec_from_args
from .common import PICTURE_SUFFIXES, Result, check_suffix, library_module, load_model
from .json_output import check_record, dumps

__all__ = ["MAIN_EPILOG", "check", "derive", "grad", "matrix", "spectrum"]

MAIN_EPILOG = """examples:
  convalgebra                                   # analyse resnet18 at 3x224x224
  convalgebra analyze vgg16 --format markdown
  convalgebra matrix --in 1x4x4 -k 3 -p 1 --mode circular --plot circulant.png
  convalgebra grad --in 1x5x5 -k 3 -s 2
  convalgebra check translation_equivariance --in 1x6x6 -k 3 -p 1
  convalgebra derive backward --in 1x5x5 -k 3 -s 2 --format latex -o backward.tex
  convalgebra rf resnet18 --plot rf.svg
  convalgebra report resnet18 -o resnet18.html    # interactive page, offline
  convalgebra params --in 3x32x32 --out 10 -k 5 -p 2
  convalgebra spectrum --in 16x32x32 --out 16 -k 3 -p 1 --mode circular --plot spectrum.png

layer flags (PyTorch's names): --in 3x32x32 --out 16 -k 3 -s 2 -p 1 -d 1 -g 1
  --mode zeros|circular|reflect|replicate --transposed --output-padding 1 --flip --no-bias
  padding: -p same|valid|full, -p 1, one per axis -p 1x2, before:after -p 0:1 or -p 0:1x1:0

exit codes: 0 success (check: the law holds), 1 only when check finds that the law fails,
  2 bad input (one line on stderr: a malformed flag, an unknown model, an unreadable or
  unwritable file, a size over the budget, a missing optional extra with its install hint),
  3 internal error (a bug: please report it; --debug shows the traceback)"""


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

    from ..operators import conv_matrix

    if weight is None:
        weight = np.arange(1, math.prod(spec.weight_shape) + 1).reshape(spec.weight_shape)
    m = conv_matrix(spec, weight)
    buffer = io.BytesIO()
    if path.suffix == ".npz":
        scipy.sparse.save_npz(buffer, scipy.sparse.csr_matrix(m))
    else:
        scipy.io.mmwrite(buffer, scipy.sparse.coo_matrix(m), comment=f" {spec.describe()}")
    return buffer.getvalue()


MATRIX_MAX_TERMS = 20_000_000  # non-zeros of the largest matrix `convalgebra matrix` builds
SYMBOLIC_MAX_TERMS = 50_000  # above this, entries are shown as weight numbers


def matrix(ns: argparse.Namespace) -> Result:
    """``convalgebra matrix``: the report of :func:`convalgebra.report.matrix_report`."""
    from ..report import matrix_report

    check_suffix(ns.save, (".npz", ".mtx"), "--save")
    check_suffix(ns.plot, PICTURE_SUFFIXES, "--plot")
    page = _html_target(ns)
    if ns.max_size < 1:
        raise ConvAlgebraError(f"--max-size must be a positive integer, got {ns.max_size}")
    spec = _spec(ns, "matrix")
    if spec.macs > MATRIX_MAX_TERMS:
        raise ConvAlgebraError(
            f"the matrix of {spec.describe()} has about {spec.macs:,} non-zeros, more than the "
            f"{MATRIX_MAX_TERMS:,} this command builds; try a smaller --in"
        )
    html_page = None
    if page is not None:  # the page's budget refuses before the report is built
        from ..report import conv_matrix_html

        html_page = conv_matrix_html(spec).encode("utf-8")
    weight = make_weight(ns.weight or "symbolic", spec, ns.seed)
    note = ""
    if weight is None and spec.macs > SYMBOLIC_MAX_TERMS:
        weight = make_weight("arange", spec)
        note = (
            f"\n(entries are weight numbers: k stands for w{{k}}; symbolic entries are "
            f"shown for layers up to {SYMBOLIC_MAX_TERMS:,} MACs)"
        )
    text = matrix_report(spec, weight, symbolic=weight is None, max_size=ns.max_size) + note
    files: dict[Path, bytes] = {}
    if ns.save is not None:
        files[ns.save] = _matrix_bytes(spec, weight, ns.save)
    if ns.plot is not None:
        from ..plot import figure_format, plot_matrix, to_image

        files[ns.plot] = to_image(plot_matrix(spec, weight), figure_format(ns.plot))
    if page is not None and html_page is not None:
        files[page] = html_page
    return Result(text + "".join(f"\nwrote {p}" for p in files), files)


def _html_target(ns: argparse.Namespace) -> Path | None:
    """The page ``--html`` writes (``-o``, default ``matrix.html``); None without ``--html``."""
    if not ns.html:
        if ns.output is not None:
            raise ConvAlgebraError("matrix: -o names the page of --html; add --html")
        return None
    page = ns.output if ns.output is not None else Path("matrix.html")
    check_suffix(page, (".html", ".htm"), "-o")
    return page


# ------------------------------------------------------------------------------- grad
GRAD_SECTIONS = ("forward", "weight", "bias", "input")


def _product(pair) -> str:
    left, right = pair
    return str(right) if left == 1 else f"{left}*{right}"


def _equation_lines(bw, equations, limit: int) -> list[str]:
    lines = []
    for eq in equations[: limit or None]:
        terms = bw.factors(eq.lhs)
        lines.append(f"  {eq.lhs} = " + (" + ".join(map(_product, terms)) if terms else "0"))
    if limit and len(equations) > limit:
        lines.append(f"  … {len(equations) - limit} more (--max-equations 0 shows all)")
    return lines


def _equation_records(bw, equations, limit: int) -> list[dict]:
    """The equations :func:`_equation_lines` prints, as data (terms in the printed order)."""
    return [
        {
            "lhs": str(eq.lhs),
            "rhs": " + ".join(map(_product, bw.factors(eq.lhs))) or "0",
            "terms": [[str(c), str(f)] for c, f in bw.factors(eq.lhs)],
        }
        for eq in equations[: limit or None]
    ]


def _symbolic_grad(spec: ConvSpec, ns: argparse.Namespace) -> str:
    from ..symbolic import symbolic_backward

    bw = symbolic_backward(spec)
    if getattr(ns, "format", "text") == "json":
        return _symbolic_grad_json(spec, bw, ns)
    titles = {
        "forward": ("forward", bw.forward, "each output as a sum of products (eq. 9.7/9.8)"),
        "weight": (
            "kernel gradient",
            bw.weight_gradient,
            "dL/dw = J(a)^T dL/dz: a sum over outputs (eq. 9.11)",
        ),
        "bias": ("bias gradient", bw.bias_gradient, "dL/db = sum of dL/dz over its channel"),
        "input": (
            "input gradient",
            bw.input_gradient,
            "dL/da = M^T dL/dz: a sum over kernel taps (eq. 9.13)",
        ),
    }
    lines = [spec.describe()]
    for key in ns.show:
        title, equations, note = titles[key]
        if equations:
            lines += ["", f"{title}: {note}", *_equation_lines(bw, equations, ns.max_equations)]
    if ns.general:
        formulas = bw.general()
        verdict = "agree" if bw.check_general(formulas) else "DISAGREE"
        lines += [
            "",
            "general formulas (1-based, as in the book):",
            f"  eq. 9.8:  {formulas.forward}",
            f"  eq. 9.11: {formulas.weight_gradient}",
            f"  eq. 9.13: {formulas.input_gradient}",
            f"  instantiated at these sizes, they {verdict} with the equations above",
        ]
    return "\n".join(lines)


def _symbolic_grad_json(spec: ConvSpec, bw, ns: argparse.Namespace) -> str:
    kinds = {
        "forward": bw.forward,
        "weight": bw.weight_gradient,
        "bias": bw.bias_gradient,
        "input": bw.input_gradient,
    }
    record: dict = {"layer": spec.describe(), "symbolic": True}
    for key in ns.show:
        record[key] = _equation_records(bw, kinds[key], ns.max_equations)
        record[f"{key}_count"] = len(kinds[key])
    if ns.general:
        formulas = bw.general()
        record["general"] = {
            "forward": formulas.forward,
            "weight_gradient": formulas.weight_gradient,
            "input_gradient": formulas.input_gradient,
            "agree": bool(bw.check_general(formulas)),
        }
    return dumps(record)


def _numeric_grad(spec: ConvSpec, ns: argparse.Namespace) -> str:
    from ..gradients import bias_gradient, input_gradient, weight_gradient

    # x, g, the two gradients and the operator's temporaries, each about as large as x or g
    sizes = (math.prod(spec.input_shape), math.prod(spec.output_shape))
    budget.require_array(
        f"the numeric backward pass of {spec.describe()}",
        3 * sum(sizes),
        8,
        budget.DEFAULT_ARRAY_BYTES,
        "use smaller sizes",
    )
    weight = make_weight(ns.weight or "random", spec, ns.seed)
    if weight is None:
        raise ConvAlgebraError("--numeric needs a numeric --weight, got 'symbolic'")
    x = make_array(ns.data, spec.input_shape, ns.seed + 1, "--data")
    g = make_array(ns.grad_output, spec.output_shape, ns.seed + 2, "--grad-output")
    if x is None or g is None:
        raise ConvAlgebraError("--numeric needs numeric --data and --grad-output")
    blocks = {
        "weight": ("dL/dw = J(x)^T g", weight_gradient(spec, x, g)),
        "bias": ("dL/db", bias_gradient(spec, g) if spec.bias else None),
        "input": ("dL/dx = M(w)^T g", input_gradient(spec, weight, g)),
    }
    if getattr(ns, "format", "text") == "json":
        record = {"layer": spec.describe(), "symbolic": False, "weight": weight, "x": x, "g": g}
        record.update(
            {
                f"{key}_gradient": blocks[key][1]
                for key in ns.show
                if key in blocks and blocks[key][1] is not None
            }
        )
        return dumps(record)
    lines = [
        spec.describe(),
        "",
        f"weight {spec.weight_shape}:",
        _array(weight),
        f"x {spec.input_shape}:",
        _array(x),
        f"g = dL/dz {spec.output_shape}:",
        _array(g),
    ]
    for key in ns.show:
        if key in blocks:
            label, value = blocks[key]
            if value is not None:
                lines += ["", f"{label}:", _array(value)]
    return "\n".join(lines)


def _array(a: np.ndarray) -> str:
    with np.printoptions(precision=4, suppress=True, linewidth=100, threshold=400):
        return np.array2string(np.asarray(a), prefix="")


def grad(ns: argparse.Namespace) -> Result:
    """``convalgebra grad``: the backward pass of a layer, symbolic or numeric."""
    spec = _spec(ns, "grad")
    return Result(_numeric_grad(spec, ns) if ns.numeric else _symbolic_grad(spec, ns))


# ------------------------------------------------------------------------------ check
_FLAGS = {
    "k": "--turns",
    "shift": "--shift",
    "axis": "--axis",
    "factor": "--factor",
    "direction": "--direction",
    "weight": "--weight",
    "weight1": "--weight",
}
PROOF_LAWS = ("translation_equivariance", "commutativity")  # all-size proofs without a layer
POOL_LAWS = ("max_pool_invariance", "avg_pool_equivariance")


def _law_options(ns: argparse.Namespace, law, spec: ConvSpec | None) -> dict:
    import inspect

    accepted = inspect.signature(law).parameters
    given = {
        "shift": ns.shift,
        "axis": ns.axis,
        "k": ns.turns,
        "factor": ns.factor,
        "direction": ns.direction,
    }
    options = {k: v for k, v in given.items() if v is not None}
    if ns.weight is not None and spec is not None:
        options["weight1" if "weight1" in accepted else "weight"] = make_weight(
            ns.weight, spec, ns.seed
        )
    refused = sorted({_FLAGS[k] for k in options if k not in accepted})
    if refused:
        raise ConvAlgebraError(f"{law.__name__} does not take {', '.join(refused)}")
    return options


def _pool_arguments(ns: argparse.Namespace, law) -> tuple[list, dict]:
    """Pooling laws take an input (or its shape) and the window, not a ConvSpec."""
    if ns.input_shape is None:
        raise ConvAlgebraError(f"{law.__name__} needs --in SHAPE (and -k, -s, -p for the window)")
    first = (
        make_array(ns.data or "random", ns.input_shape, ns.seed, "--data")
        if law.__name__ == "max_pool_invariance"
        else ns.input_shape
    )
    options = {"kernel_size": ns.kernel_size or 2, "stride": ns.stride, "padding": ns.padding}
    if ns.padding in ("same", "valid", "full") or isinstance(ns.padding, tuple):
        raise ConvAlgebraError("pooling laws take an integer padding -p N")
    options.update({k: v for k, v in (("shift", ns.shift), ("axis", ns.axis)) if v is not None})
    return [first], options  # stride None: PyTorch's default, the window size


def check(ns: argparse.Namespace) -> Result:
    """``convalgebra check``: verify an identity, with its evidence or a counterexample."""
    identities = library_module("identities", "check")
    laws = identities.LAWS
    if ns.list:
        return Result("\n".join(sorted(laws)))
    if not ns.law:
        raise ConvAlgebraError("check needs a LAW (see convalgebra check --list)")
    if ns.law not in laws:
        raise ConvAlgebraError(
            f"unknown law {shown(ns.law)}; the laws are: {', '.join(sorted(laws))}"
        )
    law = laws[ns.law]
    if ns.law in POOL_LAWS:
        args, options = _pool_arguments(ns, law)
    elif ns.input_shape is None and ns.kernel_size is None and ns.law in PROOF_LAWS:
        args, options = [], {}  # the index-level proof for every size
    else:
        specs = [_spec(ns, "check")]
        for text in ns.second:
            specs.append(parse_spec_string(text, specs[-1].output_shape))
        args, options = specs, _law_options(ns, law, specs[0])
    result = identities.check(ns.law, *args, **options)
    render = {
        "text": result.to_text,
        "markdown": result.to_markdown,
        "latex": result.to_latex,
        "json": lambda: dumps(check_record(result)),
    }
    return Result(render[ns.format](), exit_code=0 if result.holds else 1)


# ----------------------------------------------------------------------------- derive
def derive(ns: argparse.Namespace) -> Result:
    """``convalgebra derive``: a derivation as LaTeX, Markdown or text (``-o`` writes a file)."""
    derive_module = library_module("derivations", "derive")
    if ns.model is not None:
        if ns.input_shape is not None or ns.kernel_size is not None:
            raise ConvAlgebraError("derive: give --model or the layer flags, not both")
        obj = load_model(ns.model, ns.input)
    else:
        obj = _spec(ns, "derive")
    limits = {
        k: v for k, v in (("max_rows", ns.max_rows), ("max_cols", ns.max_cols)) if v is not None
    }
    if limits and ns.what not in ("matrix", "backward"):
        raise ConvAlgebraError(
            f"derive: --max-rows/--max-cols apply to matrix and backward, not {shown(ns.what)}"
        )
    if ns.figure is not None and isinstance(obj, ConvSpec):  # refuse before deriving
        from ..figures import require_figure

        require_figure(obj, animated=ns.figure.suffix.lower() == ".gif")
    derivation = derive_module.derive(ns.what, obj, **limits)
    if ns.format == "latex":
        text = derivation.to_latex(standalone=ns.standalone)
    else:
        text = derivation.to_markdown() if ns.format == "markdown" else derivation.to_text()
    files = _figure(ns, obj) if ns.figure is not None else {}
    if ns.output is None:
        return Result(text, files)
    data = text if text.endswith("\n") else text + "\n"
    return Result(
        f"wrote {ns.output} ({ns.format}, {len(data.splitlines())} lines)",
        {ns.output: data.encode("utf-8"), **files},
    )


def _figure(ns: argparse.Namespace, obj) -> dict:
    """``--figure``: the layer's conv-arithmetic picture as TikZ (.tex) or an animated GIF (.gif)."""
    from ..figures import conv_gif, conv_tikz

    if not isinstance(obj, ConvSpec):
        raise ConvAlgebraError(
            "derive: --figure draws one layer; give the layer flags, not --model"
        )
    suffix = ns.figure.suffix.lower()
    if suffix == ".tex":
        return {ns.figure: (conv_tikz(obj) + "\n").encode("utf-8")}
    if suffix == ".gif":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return {ns.figure: conv_gif(obj, Path(tmp) / "figure.gif").read_bytes()}
    raise ConvAlgebraError(
        f"derive: --figure must end in .tex or .gif, got {shown(ns.figure.name)}"
    )


# --------------------------------------------------------------------------- spectrum
def _values_line(values: np.ndarray, shown: int) -> str:
    head = ", ".join(f"{v:.6g}" for v in values[:shown])
    return head + (f", ... ({values.size - shown:,} more)" if values.size > shown else "")


def spectrum(ns: argparse.Namespace) -> Result:
    """``convalgebra spectrum``: singular values, operator norm and its bounds of a layer."""
    spectra = library_module("spectra", "spectrum")
    check_suffix(ns.plot, PICTURE_SUFFIXES, "--plot")
    if ns.largest is not None and ns.largest < 1:
        raise ConvAlgebraError(f"--largest must be a positive integer, got {ns.largest}")
    spec = _spec(ns, "spectrum")
    weight = make_weight(ns.weight or "random", spec, ns.seed)
    if weight is None:
        raise ConvAlgebraError(
            "spectrum needs numbers: --weight random, arange, ones, 1,0,-1 or a file (not symbolic)"
        )
    values = spectra.singular_values(spec, weight, k=ns.largest)
    route = (
        "DFT blocks (circular, output tiles the input)"
        if spectra.fft_applies(spec)
        else "Lanczos on the matrix-free operator"
        if ns.largest
        else "dense SVD"
    )
    rows, cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    lines = [
        spec.describe(),
        f"matrix {rows:,} x {cols:,}; {values.size:,} singular values by {route}",
        f"largest: {_values_line(values, ns.show)}",
    ]
    if ns.largest is None:
        smallest = float(values[-1])
        cond = float(values[0]) / smallest if smallest > 0 else math.inf
        lines.append(f"smallest {smallest:.6g}, condition number {cond:.6g}")
    if spec.tile is None:
        norm = spectra.operator_norm(spec, weight, method="bound")
        lines += [f"upper bounds on ||M||_2 = {values[0]:.10g}:"]
        lines += [f"  {b.name:<9} {b.value:.10g}  {b.guarantee}" for b in norm.bounds]
    files: dict[Path, bytes] = {}
    if ns.plot is not None:
        from ..plot import figure_format, plot_spectrum, to_image

        files[ns.plot] = to_image(
            plot_spectrum(values, title=spec.describe()), figure_format(ns.plot)
        )
    if getattr(ns, "format", "text") == "json":
        return Result(_spectrum_json(spectra, spec, weight, values, route, ns), files)
    return Result("\n".join(lines) + "".join(f"\nwrote {p}" for p in files), files)


def _spectrum_json(spectra, spec: ConvSpec, weight, values: np.ndarray, route: str, ns) -> str:
    record: dict = {
        "layer": spec.describe(),
        "matrix_shape": [math.prod(spec.output_shape), math.prod(spec.input_shape)],
        "route": route,
        "singular_values": values,
    }
    if ns.largest is None:
        smallest = float(values[-1])
        record["smallest"] = smallest
        record["condition_number"] = float(values[0]) / smallest if smallest > 0 else "inf"
    if spec.tile is None:
        norm = spectra.operator_norm(spec, weight, method="bound")
        record["norm_bounds"] = [
            {"name": b.name, "value": b.value, "guarantee": b.guarantee} for b in norm.bounds
        ]
    record["files"] = [str(p) for p in ([ns.plot] if ns.plot is not None else [])]
    return dumps(record)
