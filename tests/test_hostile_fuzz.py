"""Fuzzing the public API and the command line with hostile arguments.

Every call either returns or raises the error family (``ConvAlgebraError`` or ``TypeError``)
with a short message, within the time cap of :mod:`hostile`; every accepted numeric call equals
torch. Every command line exits 0 or 2 (1 only for a law that fails under ``check``; 3 is an
internal error), prints exactly one printable ``error:`` line on bad input and writes no file
then. Example counts scale with the hypothesis profile (``ci``: a few thousand calls;
``nightly``: ten times more). ``TALLY`` counts outcomes by type (printed with ``-s``).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile

import numpy as np
import pytest
from hostile import MESSAGE_LIMIT, TALLY, BadRepr, Hang, LyingInt, capped, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st
from oracle import torch_conv, torch_grads
from strategies import conv_specs

import convalgebra as ca
from convalgebra.cli import main


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nhostile fuzz tally:", dict(sorted(TALLY.items())))


CODE = [
    "__import__('os').system('touch PWNED')",
    "lambda: 1",
    "x.__class__",
    "１",
    "²",
    "1e999",
    "nan",
    "-0",
    "w1",
    "1/0",
    "a" * 300,
]
HUGE = [0, -1, 2**31, 2**62, 2**63, 2**70, 10**9, 10**12]
DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.uint8,
    np.int64,
    np.bool_,
    np.complex64,
    np.complex128,
    object,
    "U3",
]


@st.composite
def arrays(draw, shape=None):
    shape = shape or tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
    dtype = draw(st.sampled_from(DTYPES))
    values = np.arange(math.prod(shape)).reshape(shape) % 5 - 2
    return values.astype(dtype)


def _grad_tensor(value):
    """A torch tensor that requires grad (numpy cannot read it without detach)."""
    import torch

    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


ODD = st.one_of(
    st.builds(BadRepr),
    st.integers(1, 9).map(LyingInt),
    st.sampled_from(["x" * 10**5, "\x1b[2J", "a\nerror: forged", "9**9**9**9"]),
    st.floats(-3, 3, allow_nan=False).map(_grad_tensor),
)
SCALARS = st.one_of(
    ODD,
    st.none(),
    st.booleans(),
    st.integers(-3, 9),
    st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(CODE),
    st.complex_numbers(max_magnitude=5),
)
HOSTILE = st.one_of(
    SCALARS,
    arrays(),
    st.lists(SCALARS, max_size=4),
    st.lists(SCALARS, max_size=4).map(tuple),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
    st.lists(st.lists(st.integers(-2, 9), max_size=3), max_size=3),
)


def _outcome(call):
    """Run ``call``; return ``(True, value)`` or ``(False, error)`` for the error family.

    Tallied: inputs, clear (the family), and what fails the test: wrong type (another
    exception), hang (past the time cap), memory (MemoryError)."""
    TALLY["inputs"] += 1
    try:
        with capped():
            value = call()
            if hasattr(value, "__next__"):
                value = list(value)
    except Hang:
        TALLY["hang"] += 1
        raise
    except MemoryError:
        TALLY["memory"] += 1
        raise
    except (ca.ConvAlgebraError, TypeError) as exc:
        TALLY["clear"] += 1
        TALLY[type(exc).__name__] += 1
        assert "repr is broken" not in str(exc), "a broken repr leaked into the message"
        assert len(str(exc)) <= MESSAGE_LIMIT, str(exc)[:300]
        assert str(exc).strip(), "an error without a message"
        return False, exc
    except Exception:
        TALLY["wrong type"] += 1
        raise
    TALLY["accepted"] += 1
    return True, value


@contextlib.contextmanager
def _tallied_value():
    """A comparison with torch; a mismatch is tallied as a wrong value (and fails)."""
    try:
        yield
    except AssertionError:
        TALLY["wrong value"] += 1
        raise


# --------------------------------------------------------------------- ConvSpec itself
SPEC_FIELDS = {
    "stride": st.integers(1, 3),
    "padding": st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid", "full"])),
    "dilation": st.integers(1, 2),
    "groups": st.sampled_from([1, 2]),
    "padding_mode": st.sampled_from(["zeros", "circular", "reflect", "replicate"]),
    "transposed": st.booleans(),
    "flip": st.booleans(),
    "bias": st.booleans(),
    "output_padding": st.integers(0, 1),
    "tile": st.one_of(st.none(), st.integers(1, 2)),
}


@st.composite
def spec_arguments(draw):
    """Plausible values for every argument; in half of the draws one or two are hostile."""
    nd = draw(st.integers(1, 2))
    shape = draw(st.tuples(st.sampled_from([1, 2]), *[st.integers(1, 7)] * nd))
    out = draw(st.sampled_from([1, 2]))
    kernel = draw(st.integers(1, 3))
    chosen = draw(st.lists(st.sampled_from(sorted(SPEC_FIELDS)), max_size=4, unique=True))
    options = {k: draw(SPEC_FIELDS[k]) for k in chosen}
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        slot = draw(st.sampled_from(["shape", "out", "kernel", *sorted(SPEC_FIELDS)]))
        value = draw(HOSTILE)
        if slot == "shape":
            shape = value
        elif slot == "out":
            out = value
        elif slot == "kernel":
            kernel = value
        else:
            options[slot] = value
    return shape, out, kernel, options


def _small(spec: ca.ConvSpec) -> bool:
    from convalgebra.budget import triple_count

    return (
        math.prod(spec.input_shape) <= 400
        and math.prod(spec.output_shape) <= 4000
        and triple_count(spec) <= 20_000
    )


def _torch_ok(spec: ca.ConvSpec) -> bool:
    plain = spec.tile is None and spec.channel_table is None
    return plain and (
        not spec.transposed
        or (spec.padding_mode == "zeros" and all(b == a for b, a in spec.padding))
    )


@fuzz_settings(4)
@given(spec_arguments(), st.integers(0, 2**32 - 1))
def test_convspec_accepts_or_refuses_and_accepted_specs_equal_torch(args, seed):
    shape, out, kernel, options = args
    ok, spec = _outcome(lambda: ca.ConvSpec(shape, out, kernel, **options))
    if not ok:
        return
    # answered, or (listing 2**31 positions of a huge padding) refused within the error family
    _outcome(
        lambda: (
            spec.output_shape,
            spec.n_params,
            spec.macs,
            spec.describe(),
            spec.unread_inputs,
            spec.unwritten_outputs,
        )
    )
    if not (_small(spec) and _torch_ok(spec)):
        return
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, spec.weight_shape).astype(float)
    x = rng.integers(-3, 4, spec.input_shape).astype(float)
    got = ca.conv_matrix(spec, w) @ x.ravel()
    with _tallied_value():
        np.testing.assert_array_equal(got, torch_conv(spec, x, w).numpy().ravel())
    TALLY["equal to torch"] += 1


# --------------------------------------------------------------- public functions
SPEC = ca.ConvSpec((2, 5, 4), 2, (2, 3), padding=1, stride=(1, 2))
W = np.arange(24, dtype=float).reshape(SPEC.weight_shape) % 5 - 2
X = np.arange(40, dtype=float).reshape(SPEC.input_shape) % 7 - 3
G = np.arange(math.prod(SPEC.output_shape), dtype=float).reshape(SPEC.output_shape) % 3 - 1


def _graph():
    return ca.zoo.get("lenet5")


CALLS = {
    # name: (function, valid arguments, valid keyword arguments)
    "conv_matrix": (ca.conv_matrix, (SPEC, W), {"max_bytes": 2**30}),
    "conv_operator": (
        lambda s, w: ca.conv_operator(s, w) @ np.ones(math.prod(s.input_shape)),
        (SPEC, W),
        {},
    ),
    "conv_matrix_blocks": (ca.conv_matrix_blocks, (SPEC, W), {"block_rows": 3}),
    "kernel_jacobian": (ca.kernel_jacobian, (SPEC, X), {"max_bytes": 2**30}),
    "input_gradient": (ca.input_gradient, (SPEC, W, G), {"method": "matrix"}),
    "weight_gradient": (ca.weight_gradient, (SPEC, X, G), {"method": "operator"}),
    "bias_gradient": (ca.bias_gradient, (SPEC, G), {}),
    "triples": (ca.triples, (SPEC,), {}),
    "symbolic_matrix": (ca.symbolic_matrix, (SPEC, None), {"max_terms": 5000}),
    "symbolic_backward": (ca.symbolic_backward, (SPEC,), {"bias": True, "max_terms": 5000}),
    "colliding_input_sizes": (ca.colliding_input_sizes, (SPEC,), {}),
    "transpose_spec": (ca.transpose_spec, (SPEC, (5, 4)), {}),
    "matrix_structure": (ca.matrix_structure, (SPEC, W), {}),
    "avg_pool_matrix": (ca.avg_pool_matrix, ((2, 4, 4), 2), {}),
    "max_pool_selection": (ca.max_pool_selection, (X, 2), {"stride": 1, "padding": 1}),
    "check": (ca.check, ("translation_equivariance", SPEC), {"shift": 1}),
    "derive": (ca.derive, ("output_size", SPEC), {}),
    "param_count": (ca.param_count, (_graph(),), {}),
    "macs": (ca.macs, (_graph(),), {}),
    "receptive_field": (ca.receptive_field, (_graph(), "conv1"), {}),
    "equivariant_kernels": (ca.equivariant_kernels, (ca.ConvSpec((1, 5, 5), 1, 3), "rotation"), {}),
    "from_spec": (
        ca.LayerGraph.from_spec,
        ({"input": [1, 8, 8], "layers": [{"kind": "conv", "out_channels": 2, "kernel_size": 3}]},),
        {},
    ),
    "from_json": (ca.LayerGraph.from_json, ('{"input": [1, 8], "layers": []}',), {}),
}


@st.composite
def hostile_calls(draw):
    name = draw(st.sampled_from(sorted(CALLS)))
    func, args, kwargs = CALLS[name]
    args, kwargs = list(args), dict(kwargs)
    slots = [("arg", i) for i in range(len(args))] + [("kw", k) for k in kwargs]
    for kind, key in draw(st.lists(st.sampled_from(slots), min_size=1, max_size=2, unique=True)):
        valid = args[key] if kind == "arg" else kwargs[key]
        hostile = draw(st.sampled_from([False, False, True]))
        if isinstance(valid, np.ndarray) and not hostile:  # the right shape, another dtype
            value = draw(arrays(valid.shape))
        elif isinstance(valid, ca.ConvSpec) and not hostile:
            value = draw(conv_specs(transposed=None, max_size=5, max_channels=2))
        else:
            value = draw(HOSTILE)
        if kind == "arg":
            args[key] = value
        else:
            kwargs[key] = value
    return name, func, args, kwargs


@fuzz_settings(6)
@given(hostile_calls())
def test_public_functions_raise_only_the_error_family(call):
    name, func, args, kwargs = call
    ok, value = _outcome(lambda: func(*args, **kwargs))
    if ok and name in ("conv_matrix", "input_gradient", "weight_gradient"):
        _equal_to_torch(name, args, kwargs, value)


def test_lists_holding_tensors_that_require_grad_are_data():
    """Found by the fuzz above: numpy cannot read such a list; the library detaches each."""
    torch = pytest.importorskip("torch", reason="needs the [torch] extra")
    t = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1.0, -2.0, 3.0)]
    spec = ca.ConvSpec((1, 3), 1, 1, bias=True)
    np.testing.assert_array_equal(ca.bias_gradient(spec, [t]), [2.0])
    selection = ca.max_pool_selection([t], 2, stride=1, padding=1)
    expected = ca.max_pool_selection([[1.0, -2.0, 3.0]], 2, stride=1, padding=1)
    assert (selection != expected).nnz == 0


def _equal_to_torch(name, args, kwargs, value):
    """An accepted call with hostile values (e.g. float16, int8, bool arrays) equals torch."""
    spec = args[0]
    if not isinstance(spec, ca.ConvSpec) or not (_small(spec) and _torch_ok(spec)):
        return
    if name == "conv_matrix":
        w = np.asarray(args[1]).astype(np.float64)
        x = np.arange(math.prod(spec.input_shape)).reshape(spec.input_shape) % 5 - 2.0
        expected = torch_conv(spec, x, w).numpy().ravel()
        with _tallied_value():
            np.testing.assert_allclose(value @ x.ravel(), expected, rtol=1e-3, atol=1e-3)
    else:
        w, x, g = (
            (W, np.asarray(args[1]), np.asarray(args[2]))
            if name == "weight_gradient"
            else (np.asarray(args[1]), X, np.asarray(args[2]))
        )
        gx, gw, _ = torch_grads(
            spec,
            x.astype(complex if np.iscomplexobj(x) else float),
            w.astype(complex if np.iscomplexobj(w) else float),
            np.zeros(spec.out_channels),
            g.astype(complex if np.iscomplexobj(g) else float),
        )
        with _tallied_value():
            np.testing.assert_allclose(
                value, gx if name == "input_gradient" else gw, rtol=1e-3, atol=1e-3
            )
    TALLY["equal to torch"] += 1


# ------------------------------------------------------------------- command line
COMMANDS = ["matrix", "grad", "check", "derive", "rf", "params", "analyze"]
FLAGS = [
    "--in",
    "-k",
    "-s",
    "-p",
    "--out",
    "--mode",
    "--weight",
    "--transposed",
    "--groups",
    "-d",
    "--save",
    "-o",
    "--force",
    "--unit",
    "--format",
    "--node",
    "--input",
    "--debug",
    "--shift",
    "--output-padding",
    "--law",
    "--flip",
    "--figure",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "1x5",
            "2x6x6",
            "1x4x4",
            "3",
            "2",
            "1",
            "0",
            "-1",
            "same",
            "full",
            "1:2",
            "circular",
            "reflect",
            "lenet5",
            "resnet18",
            "translation_equivariance",
            "adjoint",
            "output_size",
            "matrix",
            "backward",
            "json",
            "random",
            "1,0,-1",
            "out.npz",
            "m.mtx",
            "d.txt",
            "-",
            "1x1",
            "１x５",
            "1x99999999999",
            f"1x{2**70}",
            "64x224x224",
            "/dev/null",
            "no/such/dir/f.txt",
            "x" * 300,
            'os:system("touch PWNED")',
            "builtins:exec(\"open('PWNED', 'w')\")",
            'subprocess:getoutput("touch PWNED")',
            'torch:save(1, "PWNED")',
            "d.tex",
            "sub/../d.txt",
            "\x1b[2J",
            "a\nerror: forged",
        ]
    ),
    st.sampled_from(CODE),
    st.text(max_size=8),
)


BASES = [
    ["matrix", "--in", "1x5", "-k", "3"],
    ["matrix", "--in", "2x4x4", "--out", "2", "-k", "2", "--weight", "random", "--save", "m.mtx"],
    ["grad", "--in", "1x5x5", "-k", "3", "-s", "2"],
    ["grad", "--in", "1x6", "-k", "2", "--weight", "1,-1"],
    ["check", "translation_equivariance", "--in", "1x6", "-k", "3"],
    ["derive", "output_size", "--in", "1x7", "-k", "3", "-o", "d.txt"],
    ["derive", "matrix", "--in", "1x4", "-k", "2", "--format", "latex"],
    ["rf", "lenet5"],
    ["rf", "--in", "1x7x7", "-k", "3", "--unit", "1x1"],
    ["params", "lenet5", "--format", "json"],
    ["analyze", "lenet5"],
    ["analyze", 'os:system("touch PWNED")', "--in", "1x4"],
    ["params", "builtins:exec(\"open('PWNED', 'w')\")", "--in", "1x4"],
    ["export", 'subprocess:getoutput("touch PWNED")', "--in", "1x4"],
    ["derive", "output_size", "--in", "1x7", "-k", "3", "-o", "d.tex", "--figure", "d.tex"],
]


@st.composite
def command_lines(draw):
    """A valid command line, then up to three edits: a flag and value added, a value replaced
    by a hostile one, or a token dropped."""
    argv = list(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["add", "replace", "drop"]))
        if edit == "add":
            argv += [draw(st.sampled_from(FLAGS))] + [draw(VALUES)] * draw(st.integers(0, 1))
        elif edit == "replace" and len(argv) > 1:
            argv[draw(st.integers(1, len(argv) - 1))] = draw(VALUES)
        elif len(argv) > 1:
            del argv[draw(st.integers(1, len(argv) - 1))]
    return argv


@fuzz_settings(3)
@given(command_lines())
@example(["analyze", 'os:system("touch PWNED")', "--in", "1x4"])
@example(["params", "builtins:exec(\"open('PWNED', 'w')\")", "--in", "1x4"])
@example(["export", 'subprocess:getoutput("touch PWNED")', "--in", "1x4"])
@example(["derive", "output_size", "--in", "1x7", "-k", "3", "-o", "d.tex", "--figure", "d.tex"])
@example(
    ["derive", "output_size", "--in", "1x7", "-k", "3", "-o", "d.tex", "--figure", "x/../d.tex"]
)
@example(["rf", "--in", "1x7x7", "-k", "3", "--unit", "x".join(["1"] * 30_000)])
@example(["rf", "--in", "1x7x7", "-k", "3", "--unit", "1x1", "--node", "\x1b[2J"])
def test_command_lines_exit_0_or_2_with_one_line_and_write_nothing_on_error(argv):
    """0 success, 2 bad input (one line, no file), 1 only for a law that fails under check."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        out, err = io.StringIO(), io.StringIO()
        try:
            with capped(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv))
        finally:
            os.chdir(cwd)
        left = os.listdir(folder)
    TALLY["inputs"] += 1
    TALLY[f"cli exit {code}"] += 1
    # exit 1 is a verdict only: `check` when the law fails (stdout says so, stderr is empty)
    verdict = code == 1 and argv[0] == "check" and ": FAILS" in out.getvalue()
    assert code in (0, 2) or (verdict and not err.getvalue()), (argv, err.getvalue()[-500:])
    if code == 2 and "--debug" not in argv:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, lines[:3])
        assert len(lines[0]) <= MESSAGE_LIMIT and lines[0].isprintable()
        assert left == [], (argv, left)
    if code == 0:
        TALLY["cli files written"] += len(left)
    assert "PWNED" not in left
    assert "\x1b" not in out.getvalue() + err.getvalue()
