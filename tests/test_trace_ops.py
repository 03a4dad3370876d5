"""PyTorch functions traced into ``ops`` expressions, and ``ca.prove`` on functions.

Every supported operation is traced and proved equal, for every size, to the hand-written
expression; random chains of torch calls (every operation and option) are traced and the
expression, evaluated by the independent torch oracle (tests/ops_oracle.py), must equal the
function itself at every size where it is defined; the showcase identities' size sets are
held against torch at every size up to far past the threshold, and their counterexamples are
rerun in torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
F = torch.nn.functional

from ops_oracle import OracleUndefined, evaluate  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra import ops  # noqa: E402
from convalgebra.errors import ConvAlgebraError  # noqa: E402
from convalgebra.interop.trace_ops import trace  # noqa: E402

_SETTINGS = settings(
    max_examples=max(10, settings().max_examples // 4),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Thousands of tiny torch calls: threads only contend on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


X1, X2, X3 = (2, "n"), (2, "n", "n"), (1, "n", "n", "n")
x1 = ops.signal(2, 1)
x2 = ops.signal(2, 2)
x3 = ops.signal(1, 3)


def _k(name: str, shape: tuple) -> ops.Kernel:
    return ops.kernel(name, shape)


# ------------------------------------------------------------------ one operation at a time
# (id, function, shapes, the hand-written expression)
CASES = [
    (
        "conv1d",
        lambda x, w: F.conv1d(x, w, None, 2, 1, 2),
        dict(x=X1, w=(3, 2, 3)),
        ops.conv(x1, _k("w", (3, 2, 3)), stride=2, padding=1, dilation=2),
    ),
    (
        "conv1d-groups",
        lambda x, w: F.conv1d(x, w, groups=2, padding="same"),
        dict(x=X1, w=(2, 1, 4)),
        ops.conv(x1, _k("w", (2, 1, 4)), groups=2, padding="same"),
    ),
    (
        "conv2d",
        lambda x, w: F.conv2d(x, w, padding=(1, 0), stride=(1, 2)),
        dict(x=X2, w=(1, 2, 3, 2)),
        ops.conv(x2, _k("w", (1, 2, 3, 2)), padding=(1, 0), stride=(1, 2)),
    ),
    (
        "conv3d",
        lambda x, w: F.conv3d(x, w, padding="valid"),
        dict(x=X3, w=(1, 1, 2, 1, 2)),
        ops.conv(x3, _k("w", (1, 1, 2, 1, 2))),
    ),
    (
        "conv_transpose1d",
        lambda x, w: F.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1),
        dict(x=X1, w=(2, 1, 3)),
        ops.conv_transpose(x1, _k("w", (2, 1, 3)), stride=2, padding=1, output_padding=1),
    ),
    (
        "conv_transpose2d",
        lambda x, w: F.conv_transpose2d(x, w, None, 1, 0, 0, 2, 2),
        dict(x=X2, w=(2, 1, 2, 2)),
        ops.conv_transpose(x2, _k("w", (2, 1, 2, 2)), groups=2, dilation=2),
    ),
    (
        "conv_transpose3d",
        lambda x, w: F.conv_transpose3d(x, w, stride=(1, 2, 1)),
        dict(x=X3, w=(1, 1, 1, 2, 2)),
        ops.conv_transpose(x3, _k("w", (1, 1, 1, 2, 2)), stride=(1, 2, 1)),
    ),
    (
        "avg_pool1d",
        lambda x: F.avg_pool1d(x, 3, 2, 1, True, False),
        dict(x=X1),
        ops.avg_pool(x1, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    ),
    (
        "avg_pool2d",
        lambda x: F.avg_pool2d(x, 2, divisor_override=3),
        dict(x=X2),
        ops.avg_pool(x2, 2, divisor_override=3),
    ),
    (
        "avg_pool3d",
        lambda x: F.avg_pool3d(x, (1, 2, 2), stride=1),
        dict(x=X3),
        ops.avg_pool(x3, (1, 2, 2), stride=1),
    ),
    ("pad", lambda x: F.pad(x, (1, 2)), dict(x=X1), ops.pad(x1, (1, 2))),
    ("pad-crop", lambda x: F.pad(x, (-1, 2)), dict(x=X1), ops.pad(x1, (-1, 2))),
    (
        "pad-reflect",
        lambda x: F.pad(x, (1, 1, 2, 0), mode="reflect"),
        dict(x=X2),
        ops.pad(x2, (1, 1, 2, 0), mode="reflect"),
    ),
    (
        "pad-replicate",
        lambda x: F.pad(x, (0, 2), "replicate"),
        dict(x=X1),
        ops.pad(x1, (0, 2), mode="replicate"),
    ),
    (
        "pad-circular",
        lambda x: F.pad(x, (2, 1), mode="circular", value=0),
        dict(x=X1),
        ops.pad(x1, (2, 1), mode="circular"),
    ),
    (
        "pixel_shuffle",
        lambda x: F.pixel_shuffle(x, 2),
        dict(x=(4, "n", "n")),
        ops.pixel_shuffle(ops.signal(4, 2), 2),
    ),
    (
        "pixel_unshuffle",
        lambda x: F.pixel_unshuffle(x, 2),
        dict(x=X2),
        ops.pixel_unshuffle(x2, 2),
    ),
    (
        "interpolate",
        lambda x: F.interpolate(x, scale_factor=3),
        dict(x=X1),
        ops.upsample_nearest(x1, 3),
    ),
    (
        "interpolate-exact",
        lambda x: F.interpolate(x, scale_factor=(2.0, 1), mode="nearest-exact"),
        dict(x=X2),
        ops.upsample_nearest(x2, (2, 1)),
    ),
    (
        "cat",
        lambda x: torch.cat([x, torch.flip(x, (2,))], dim=1),
        dict(x=X1),
        ops.cat([x1, ops.flip(x1, 1)]),
    ),
    (
        "cat-negative-dim",
        lambda x: torch.concat((x, x), -3),
        dict(x=X2),
        ops.cat([x2, x2]),
    ),
    ("split", lambda x: torch.split(x, 1, dim=1)[1], dict(x=X1), x1[1:2]),
    ("split-method", lambda x: x.split([1, 1], 1)[0], dict(x=X1), x1[0:1]),
    ("chunk", lambda x: torch.chunk(x, 2, 1)[1], dict(x=X1), x1[1:]),
    ("flip", lambda x: torch.flip(x, (1, -1)), dict(x=X2), ops.flip(x2, (0, 2))),
    ("flip-method", lambda x: x.flip(2, 3), dict(x=X2), ops.flip(x2, (1, 2))),
    ("flip-method-tuple", lambda x: x.flip((-1,)), dict(x=X1), ops.flip(x1, 1)),
    ("roll", lambda x: torch.roll(x, 2, -1), dict(x=X1), ops.shift(x1, 2, mode="circular")),
    (
        "roll-2d",
        lambda x: x.roll((1, -2, 1), dims=(2, 3, 2)),
        dict(x=X2),
        ops.shift(x2, (2, -2), mode="circular"),
    ),
    ("rot90", lambda x: torch.rot90(x, 1, (2, 3)), dict(x=X2), ops.rot90(x2, 1, (1, 2))),
    ("rot90-method", lambda x: x.rot90(3, [-1, -2]), dict(x=X2), ops.rot90(x2, 3, (2, 1))),
    ("channels", lambda x: x[:, 1:], dict(x=X1), x1[1:]),
    ("subsample", lambda x: x[..., 1::2], dict(x=X1), ops.subsample(x1, 2, 1)),
    ("crop", lambda x: x[:, :, 1:-2], dict(x=X1), ops.crop(x1, (1, 2))),
    (
        "crop-subsample-2d",
        lambda x: x[:, :1, :-1:2, 1:],
        dict(x=X2),
        ops.subsample(ops.crop(x2[:1], (0, 0, 0, 1)), (2, 1), (0, 1)),
    ),
    ("add", lambda x: x + 2 * x.flip(-1), dict(x=X1), x1 + 2 * ops.flip(x1, 1)),
    ("sub-div", lambda x: x - x / 4, dict(x=X1), x1 * 0.75),
    ("neg", lambda x: -x, dict(x=X1), -x1),
    (
        "torch-add-alpha",
        lambda x: torch.sub(x, torch.roll(x, 1, 2), alpha=3),
        dict(x=X1),
        x1 - 3 * ops.shift(x1, 1, mode="circular"),
    ),
    ("methods", lambda x: x.mul(2).add(x.clone(), alpha=-1), dict(x=X1), x1),
    (
        "kernel-polyphase",
        lambda x, w: F.conv1d(x, w[..., 1::2]),
        dict(x=X1, w=(1, 2, 5)),
        ops.conv(x1, ops.polyphase_kernel(_k("w", (1, 2, 5)), 2, 1)),
    ),
    (
        "kernel-slice",
        lambda x, w: F.conv2d(x, w[:, :, 1:, :-1]),
        dict(x=X2, w=(1, 2, 3, 3)),
        ops.conv(
            x2,
            ops.polyphase_kernel(
                ops.flip_kernel(
                    ops.polyphase_kernel(ops.flip_kernel(_k("w", (1, 2, 3, 3))), 1, (0, 1))
                ),
                1,
                (1, 0),
            ),
        ),
    ),
    (
        "kernel-flip",
        lambda x, w: F.conv1d(x, torch.flip(w, (-1,))),
        dict(x=X1, w=(1, 2, 3)),
        ops.conv(x1, ops.flip_kernel(_k("w", (1, 2, 3)))),
    ),
    (
        "kernel-enlarge",
        lambda x, w: F.conv2d(x, F.pad(w, (1, 1, 1, 1)), padding="same"),
        dict(x=X2, w=(1, 2, 3, 3)),
        ops.conv(x2, _k("w", (1, 2, 3, 3)), padding="same"),
    ),
    (
        "kernel-pad-one-side",
        lambda x, w: F.conv1d(x, F.pad(w, (2, 0))),
        dict(x=X1, w=(1, 2, 3)),
        ops.crop(ops.conv(x1, _k("w", (1, 2, 3))), (2, 0)),
    ),
    (
        "kernel-cat",
        lambda x, v, w: F.conv1d(x, torch.cat([v, w], 0)),
        dict(x=X1, v=(1, 2, 3), w=(2, 2, 3)),
        ops.cat([ops.conv(x1, _k("v", (1, 2, 3))), ops.conv(x1, _k("w", (2, 2, 3)))]),
    ),
    (
        "kernel-cat-inputs",
        lambda x, v, w: F.conv1d(x, torch.cat([v, w], dim=1)),
        dict(x=X1, v=(1, 1, 3), w=(1, 1, 3)),
        ops.conv(x1[:1], _k("v", (1, 1, 3))) + ops.conv(x1[1:], _k("w", (1, 1, 3))),
    ),
    (
        "kernel-sum",
        lambda x, v, w: F.conv1d(x, 2 * v - w / 2),
        dict(x=X1, v=(1, 2, 3), w=(1, 2, 3)),
        2 * ops.conv(x1, _k("v", (1, 2, 3))) - ops.conv(x1, _k("w", (1, 2, 3))) * 0.5,
    ),
    (
        "default-argument",
        lambda x, w, stride=2: F.conv1d(x, w, stride=stride),
        dict(x=X1, w=(1, 2, 3)),
        ops.conv(x1, _k("w", (1, 2, 3)), stride=2),
    ),
]


@pytest.mark.parametrize(
    ("f", "shapes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_traced_operation_is_the_expression(f, shapes, expected):
    traced = trace(f, **shapes)
    proof = ops.prove(traced, expected)
    assert proof.holds, proof.counterexample.description
    assert not proof.sizes.empty


def test_trace_names_signals_and_kernels_after_parameters():
    e = trace(lambda inp, weight: F.conv1d(inp, weight), inp=(1, "n"), weight=(1, 1, 2))
    assert e.formula() == "conv(inp, weight)"


# ------------------------------------------------------------------ refused, with the reason
class _Shuffle(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shuffle = torch.nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(x)


ERRORS = [
    ("relu", lambda x: F.relu(x), dict(x=X1), "F.relu cannot be expressed"),
    ("affine", lambda x: x + 1, dict(x=X1), "affine"),
    ("product", lambda x: x * x, dict(x=X1), "not linear"),
    (
        "bias",
        lambda x, w, b: F.conv1d(x, w, b),
        dict(x=X1, w=(1, 2, 1), b=(1, 1, 1)),
        "bias",
    ),
    ("shape", lambda x: x[..., : x.shape[-1] // 2], dict(x=X1), "size of a tensor"),
    ("batch-flip", lambda x: torch.flip(x, (0,)), dict(x=X1), "batch axis"),
    ("batch-slice", lambda x: x[1:], dict(x=X1), "batch axis"),
    ("integer-index", lambda x: x[:, 0], dict(x=X1), "not a slice"),
    ("fixed-length", lambda x: x[..., :3], dict(x=X1), "fixed number of positions"),
    ("tail", lambda x: x[..., -2:], dict(x=X1), "fixed number of positions"),
    ("reversed", lambda x: x[..., ::-1], dict(x=X1), "backwards"),
    ("spatial-cat", lambda x: torch.cat([x, x], -1), dict(x=X1), "spatial dim"),
    ("roll-flat", lambda x: torch.roll(x, 1), dict(x=X1), "flattened"),
    ("roll-channels", lambda x: torch.roll(x, 1, 1), dict(x=X1), "channels"),
    ("interp-size", lambda x: F.interpolate(x, size=8), dict(x=X1), "fixes the output size"),
    (
        "interp-linear",
        lambda x: F.interpolate(x, scale_factor=2, mode="linear"),
        dict(x=X1),
        "mode",
    ),
    (
        "interp-infinite",
        lambda x: F.interpolate(x, scale_factor=float("inf")),
        dict(x=X1),
        "integer",
    ),
    ("interp-fraction", lambda x: F.interpolate(x, scale_factor=1.5), dict(x=X1), "integer"),
    ("pad-value", lambda x: F.pad(x, (1, 1), value=2.0), dict(x=X1), "affine"),
    ("shuffle-1d", lambda x: F.pixel_shuffle(x, 2), dict(x=(4, "n")), "last two dims"),
    ("wrong-ndim", lambda x, w: F.conv2d(x, w), dict(x=X1, w=(1, 2, 3)), "2-D signal"),
    ("weight-from-x", lambda x: F.conv1d(x, x), dict(x=X1), "weights must be parameters"),
    (
        "kernel-overcrop",
        lambda x, w: F.conv1d(x, F.pad(w, (2, -2))),
        dict(x=X1, w=(1, 2, 1)),
        "crops more than the weight",
    ),
    (
        "kernel-huge-pad",
        lambda x, w: F.conv1d(x, F.pad(w, (10**9, 0))),
        dict(x=X1, w=(1, 2, 1)),
        "pad by less",
    ),
    ("kernel-channels", lambda x, w: F.conv1d(x, w[:1]), dict(x=X1, w=(2, 2, 3)), "channel"),
    (
        "kernel-partial-flip",
        lambda x, w: F.conv2d(x, w.flip(2)),
        dict(x=X2, w=(1, 2, 2, 2)),
        "every spatial dim",
    ),
    (
        "kernel-reflect",
        lambda x, w: F.conv1d(x, F.pad(w, (1, 1), "reflect")),
        dict(x=X1, w=(1, 2, 3)),
        "zeros only",
    ),
    ("control-flow", lambda x: x if x.sum() > 0 else -x, dict(x=X1), "cannot trace"),
    ("no-shape", lambda x, w: F.conv1d(x, w), dict(x=X1), "parameter 'w' has no shape"),
    ("stray-shape", lambda x: x, dict(x=X1, v=(1, 1, 3)), "name no parameter"),
    ("numeric-size", lambda x: x, dict(x=(1, 8)), "symbolic"),
    ("returns-weight", lambda x, w: w, dict(x=X1, w=(1, 1, 3)), "must return one tensor"),
    (
        "constant-weight",
        lambda x: F.conv1d(x, torch.ones(1, 2, 3)),
        dict(x=X1),
        "tensor constant or attribute",
    ),
    (
        "module-call",
        _Shuffle(),
        dict(x=(4, "n", "n")),
        "module call",
    ),
    ("add-weight", lambda x, w: x + w, dict(x=X1, w=(1, 2, 3)), "cannot be added"),
]


@pytest.mark.parametrize(
    ("f", "shapes", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_inexpressible_operation_is_refused_by_name(f, shapes, message):
    with pytest.raises(ConvAlgebraError, match=message):
        trace(f, **shapes)


class _Strided(torch.nn.Module):
    def forward(self, x, w):
        return F.conv1d(x, w, stride=2)


def test_module_forward_is_traced_like_a_function():
    e = trace(_Strided(), x=(1, "n"), w=(1, 1, 3))
    assert ops.prove(e, ops.conv(ops.signal(), _k("w", (1, 1, 3)), stride=2)).holds


def test_prove_mixes_a_function_and_an_expression():
    w = _k("w", (1, 1, 3))
    r = ca.prove(
        lambda x, w: F.conv1d(x, w, stride=2),
        ops.subsample(ops.conv(ops.signal(), w), 2),
        x=(1, "n"),
        w=(1, 1, 3),
    )
    assert r.holds and str(r.sizes) == "every n >= 3"


def test_prove_refuses_what_is_neither_expression_nor_function():
    with pytest.raises(TypeError, match="rhs must be an ops expression or a function"):
        ca.prove(x1, 3)


def test_prove_refuses_shapes_for_expressions():
    with pytest.raises(ConvAlgebraError, match="name no parameter"):
        ca.prove(x1, x1, x=X1)


def test_prove_of_expressions_is_ops_prove():
    w = _k("w", (1, 1, 3))
    x = ops.signal()
    r = ca.prove(ops.conv(x, w, stride=2), ops.subsample(ops.conv(x, w), 2))
    assert r.holds and str(r.sizes) == "every n >= 3"


# ------------------------------------------------------------------ showcase, held against torch
def _torch_inputs(shapes: dict, size: tuple[int, ...], rng) -> dict:
    out = {}
    for name, shape in shapes.items():
        if isinstance(shape[1], str):
            dims = (1, shape[0], *size)
        else:
            dims = shape
        out[name] = torch.as_tensor(rng.integers(-3, 4, dims), dtype=torch.float64)
    return out


def _run(f, inputs: dict):
    try:
        y = f(**inputs)
    except (RuntimeError, IndexError, ValueError):
        return None
    return None if y.numel() == 0 else y


def _brute_sizes(f, g, shapes: dict, sizes: list) -> tuple[set, set]:
    """(sizes where torch runs both sides, sizes where they also agree on random integers)."""
    rng = np.random.default_rng(7)
    defined, equal = set(), set()
    for size in sizes:
        agree = True
        for _ in range(3):
            inputs = _torch_inputs(shapes, size, rng)
            a, b = _run(f, inputs), _run(g, inputs)
            if a is None or b is None:
                break
            agree &= a.shape == b.shape and torch.allclose(a, b, atol=1e-9, rtol=0)
        else:
            defined.add(size)
            if agree:
                equal.add(size)
    return defined, equal


def _held_against_torch(f, g, shapes: dict):
    proof = ca.prove(f, g, **shapes)
    ndim = len(shapes["x"]) - 1
    top = 4 * max(proof.thresholds) + 2 * max(proof.periods)
    if ndim == 1:
        sizes = [(n,) for n in range(1, top + 1)]
    else:
        sizes = [(n, m) for n in range(1, 11) for m in (n, n + 1)]
    defined, equal = _brute_sizes(f, g, shapes, sizes)
    for size in sizes:
        if size in proof.defined:  # ops may refuse degenerate sizes torch runs (empty slices)
            assert size in defined, size
            assert (size in proof.sizes) == (size in equal), size
    ce = proof.counterexample
    if ce is not None:
        inputs = {
            k: torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for k, v in ce.inputs.items()
        }
        inputs.update(
            {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in ce.kernels.items()}
        )
        a, b = f(**inputs)[0], g(**inputs)[0]
        assert a.shape != b.shape or not torch.equal(a, b)
        assert np.array_equal(a.numpy(), np.asarray(ce.lhs, dtype=np.float64))
        assert np.array_equal(b.numpy(), np.asarray(ce.rhs, dtype=np.float64))
    return proof


def test_showcase_strided_conv_is_conv_then_slice():
    proof = _held_against_torch(
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        lambda x, w: F.conv2d(x, w, padding=1)[..., ::2, ::2],
        dict(x=(1, "n", "n"), w=(2, 1, 3, 3)),
    )
    assert proof.holds and proof.defined.everything


def test_showcase_pad_then_conv_is_conv_with_padding():
    proof = _held_against_torch(
        lambda x, w: F.conv1d(F.pad(x, (2, 2)), w, dilation=2),
        lambda x, w: F.conv1d(x, w, padding=2, dilation=2),
        dict(x=(2, "n"), w=(1, 2, 3)),
    )
    assert proof.holds and str(proof.sizes) == "every n"


def test_showcase_polyphase_decomposition_with_weight_slicing():
    proof = _held_against_torch(
        lambda x, w: F.conv1d(x, w, stride=2),
        lambda x, w: F.conv1d(x[..., :-1:2], w[..., ::2]) + F.conv1d(x[..., 1::2], w[..., 1::2]),
        dict(x=(1, "n"), w=(1, 1, 4)),
    )
    assert proof.holds and str(proof.sizes) == "every n >= 4"


def test_showcase_enlarged_kernel_under_same_padding():
    proof = _held_against_torch(
        lambda x, w: F.conv2d(x, w, padding="same"),
        lambda x, w: F.conv2d(x, F.pad(w, (1, 1, 1, 1)), padding="same"),
        dict(x=(1, "n", "n"), w=(1, 1, 2, 3)),
    )
    assert proof.holds


def test_showcase_grouped_conv_is_cat_of_convs():
    proof = _held_against_torch(
        lambda x, v, w: F.conv1d(x, torch.cat([v, w]), groups=2, padding=1),
        lambda x, v, w: torch.cat(
            [F.conv1d(x[:, :1], v, padding=1), F.conv1d(x[:, 1:], w, padding=1)], 1
        ),
        dict(x=(2, "n"), v=(1, 1, 3), w=(1, 1, 3)),
    )
    assert proof.holds


def test_showcase_circular_padding_is_not_zero_padding():
    proof = _held_against_torch(
        lambda x, w: F.conv1d(F.pad(x, (1, 1), mode="circular"), w),
        lambda x, w: F.conv1d(x, w, padding=1),
        dict(x=(1, "n"), w=(1, 1, 3)),
    )
    assert not proof.holds and str(proof.sizes) == "no n"
    assert proof.counterexample.size == (1,)


def test_showcase_flip_commutes_with_a_strided_conv_at_some_sizes():
    proof = _held_against_torch(
        lambda x, w: torch.flip(F.conv1d(x, w, stride=2), (-1,)),
        lambda x, w: F.conv1d(torch.flip(x, (-1,)), torch.flip(w, (-1,)), stride=2),
        dict(x=(1, "n"), w=(1, 1, 3)),
    )
    assert not proof.holds and str(proof.sizes) == "n >= 3 and n odd"
    assert proof.counterexample.size == (4,)


# ------------------------------------------------------------------ random chains of torch calls
def _kernel_map(w, ktr, d: int):
    """A weight map written in torch: the function under trace applies it."""
    spatial = tuple(range(2, 2 + d))
    kind, *a = ktr
    if kind == "poly":
        return w[(Ellipsis, *[slice(a[1], None, a[0])] * d)]
    if kind == "slice":
        return w[(Ellipsis, *[slice(a[0], -a[1] if a[1] else None)] * d)]
    if kind == "flip":
        return torch.flip(w, spatial)
    if kind == "pad":
        return F.pad(w, (a[0], a[1]) * d)
    if kind == "sum":
        return w + 2 * torch.flip(w, spatial)
    if kind == "catout":
        return torch.cat([w, -w], 0)
    if kind == "catin":
        return torch.cat([w, 3 * w], dim=1)
    return w


def _apply(y, step, ks: dict, d: int):  # noqa: C901 - one branch per operation
    kind, *a = step
    if kind == "conv":
        name, ktr, stride, padding, dilation, groups = a
        fn = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
        w = _kernel_map(ks[name], ktr, d)
        return fn(y, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if kind == "convT":
        name, ktr, stride, padding, out_pad, dilation = a
        fn = (F.conv_transpose1d, F.conv_transpose2d)[d - 1]
        w = _kernel_map(ks[name], ktr, d)
        return fn(y, w, None, stride, padding, out_pad, 1, dilation)
    if kind == "avg":
        k, s, p, ceil, cip, div = a
        if d == 1:
            return F.avg_pool1d(y, k, s, p, ceil, cip)
        return F.avg_pool2d(y, k, s, p, ceil, cip, divisor_override=div)
    if kind == "pad":
        return F.pad(y, a[0], mode=a[1])
    if kind == "interp":
        return F.interpolate(y, scale_factor=a[0], mode=a[1])
    if kind == "shuffle":
        return F.pixel_shuffle(torch.cat([y, 2 * y, y.flip(-1), -y], 1), 2)
    if kind == "unshuffle":
        return torch.chunk(F.pixel_unshuffle(y, 2), 4, dim=1)[a[0]]
    if kind == "cat":
        return torch.cat([y, y.roll(1, -1)], dim=1)
    if kind == "split":
        return torch.split(y, 1, dim=1)[-1] if a[0] else y[:, 1:]
    if kind == "flip":
        return torch.flip(y, a[0]) if a[1] else y.flip(*a[0])
    if kind == "roll":
        return torch.roll(y, a[0], a[1])
    if kind == "rot90":
        return torch.rot90(y, a[0], a[1])
    if kind == "slice":
        start, items = a
        return y[
            (
                slice(None),
                slice(start, None),
                *[slice(o, -e if e else None, f) for o, e, f in items],
            )
        ]
    if kind == "arith":
        if a[0] == 0:
            return y + 2 * y.flip(-1)
        if a[0] == 1:
            return torch.sub(y, y.roll(1, -1), alpha=3)
        return -y / 2
    raise AssertionError(kind)


def _final_size(base: int, ktr) -> int:
    kind, *a = ktr
    if kind == "poly":
        return len(range(a[1], base, a[0]))
    if kind == "slice":
        return base - a[0] - a[1]
    if kind == "pad":
        return base + a[0] + a[1]
    return base


@st.composite
def _weight(draw, out: int, in_pg: int, d: int, channel_maps: bool):
    """A base weight shape and a map of it with ``out`` x ``in_pg`` channels."""
    maps = [("id",), ("flip",), ("sum",)]
    maps += [("poly", draw(st.integers(1, 2)), draw(st.integers(0, 1)))]
    maps += [("slice", draw(st.integers(0, 1)), draw(st.integers(0, 1)))]
    maps += [("pad", draw(st.integers(-1, 2)), draw(st.integers(-1, 2)))]
    if channel_maps and out % 2 == 0:
        maps.append(("catout",))
    if channel_maps and in_pg % 2 == 0:
        maps.append(("catin",))
    ktr = draw(st.sampled_from(maps))
    base = draw(st.integers(1, 4))
    while _final_size(base, ktr) < 1:
        base += 1
    shape = (
        out // 2 if ktr[0] == "catout" else out,
        in_pg // 2 if ktr[0] == "catin" else in_pg,
        *(base,) * d,
    )
    return ktr, shape


@st.composite
def _step(draw, c: int, d: int, name: str):
    """One torch call on a ``c``-channel ``d``-D tensor: (step, channels after, weight shape)."""
    kinds = ["conv", "convT", "avg", "pad", "interp", "flip", "roll", "slice", "arith"]
    kinds += (
        ["cat"] * (c <= 2) + ["split"] * (c >= 2) + ["shuffle", "unshuffle", "rot90"] * (d == 2)
    )
    kind = draw(st.sampled_from(kinds))
    axes = st.lists(
        st.sampled_from([*range(1, d + 2), *range(-d - 1, 0)]),
        min_size=1,
        max_size=d + 1,
        unique_by=lambda v: v % (d + 2),
    )
    if kind == "conv":
        out = draw(st.integers(1, 2))
        groups = draw(st.sampled_from([1, c])) if out % c == 0 else 1
        ktr, shape = draw(_weight(out, c // groups, d, True))
        stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        padding = draw(st.sampled_from([0, 1, 2, "same", "valid"]))
        padding = 1 if padding == "same" and stride > 1 else padding
        return ("conv", name, ktr, stride, padding, dilation, groups), out, shape
    if kind == "convT":
        out = draw(st.integers(1, 2))
        ktr, shape = draw(_weight(c, out, d, False))
        stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        out_pad = min(draw(st.integers(0, 2)), max(stride, dilation) - 1)
        return ("convT", name, ktr, stride, draw(st.integers(0, 2)), out_pad, dilation), out, shape
    if kind == "avg":
        k = draw(st.integers(1, 3))
        div = draw(st.sampled_from([None, 1, 3])) if d == 2 else None
        step = ("avg", k, draw(st.integers(1, 3)), draw(st.integers(0, k // 2)))
        return step + (draw(st.booleans()), draw(st.booleans()), div), c, None
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
        low = -1 if mode == "constant" else 0
        n = 2 * d if mode != "constant" else 2 * draw(st.integers(1, d))
        return ("pad", tuple(draw(st.integers(low, 2)) for _ in range(n)), mode), c, None
    if kind == "interp":
        factor = draw(st.one_of(st.integers(1, 2), st.tuples(*[st.integers(1, 2)] * d)))
        return ("interp", factor, draw(st.sampled_from(["nearest", "nearest-exact"]))), c, None
    if kind == "flip":
        return ("flip", tuple(draw(axes)), draw(st.booleans())), c, None
    if kind == "roll":
        dims = draw(st.lists(st.sampled_from([*range(2, d + 2), -1]), min_size=1, max_size=2))
        return ("roll", tuple(draw(st.integers(-3, 3)) for _ in dims), tuple(dims)), c, None
    if kind == "rot90":
        return (
            ("rot90", draw(st.integers(-1, 4)), draw(st.sampled_from([(2, 3), (-1, -2)]))),
            c,
            None,
        )
    if kind == "slice":
        start = draw(st.integers(0, c - 1))
        items = [
            (draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 3)))
            for _ in range(d)
        ]
        return ("slice", start, items), c - start, None
    if kind == "arith":
        return ("arith", draw(st.integers(0, 2))), c, None
    if kind == "cat":
        return ("cat",), 2 * c, None
    if kind == "split":
        return ("split", draw(st.booleans())), (1 if c else c), None
    if kind == "shuffle":
        return ("shuffle",), c, None
    return ("unshuffle", draw(st.integers(0, 3))), c, None


@st.composite
def chains(draw):
    d = draw(st.sampled_from([1, 1, 2]))
    c = draw(st.integers(1, 2))
    steps, shapes = [], {"x": (c, *("n",) * d)}
    channels = c
    for i in range(draw(st.integers(1, 3))):
        step, after, shape = draw(_step(channels, d, f"k{i}"))
        steps.append(step)
        if step[0] == "split" and not step[1]:
            after = channels - 1
        shapes[f"k{i}"] = shape or (1, 1, *(1,) * d)
        channels = after
    for i in range(len(steps), 3):
        shapes[f"k{i}"] = (1, 1, *(1,) * d)
    return d, steps, shapes


def _chain_function(d: int, steps: list):
    def f(x, k0, k1, k2):
        ks = {"k0": k0, "k1": k1, "k2": k2}
        for step in steps:
            x = _apply(x, step, ks, d)
        return x

    return f


def _sizes(d: int, steps: list) -> list[tuple[int, ...]]:
    if d == 1:
        return [(n,) for n in range(1, 13)]
    square = any(s[0] == "rot90" for s in steps)
    return [(n, n) for n in range(1, 8)] + ([] if square else [(n, n + 1) for n in range(1, 7)])


@_SETTINGS
@given(chains())
@example(
    (
        1,
        [("conv", "k0", ("pad", 2, 0), 2, 0, 1, 1)],
        {"x": (1, "n"), "k0": (1, 1, 3), "k1": (1, 1, 1), "k2": (1, 1, 1)},
    )
)
@example(
    (
        2,
        [("rot90", 1, (2, 3)), ("slice", 0, [(1, 1, 2), (0, 2, 1)])],
        {"x": (2, "n", "n"), "k0": (1, 1, 1, 1), "k1": (1, 1, 1, 1), "k2": (1, 1, 1, 1)},
    )
)
def test_traced_chain_computes_what_torch_computes(case):
    """At every size, the traced expression (evaluated by the oracle) equals the function."""
    d, steps, shapes = case
    f = _chain_function(d, steps)
    expr = trace(f, **shapes)
    rng = np.random.default_rng(len(steps))
    both = 0
    for size in _sizes(d, steps):
        inputs = _torch_inputs(shapes, size, rng)
        want = _run(f, inputs)
        kernels = {k: v.numpy() for k, v in inputs.items() if k != "x"}
        try:
            got = evaluate(expr, {"x": inputs["x"][0].numpy()}, kernels)
        except OracleUndefined:
            continue
        if got.numel() == 0:  # an empty output: outside the expression's domain
            continue
        assert want is not None, (size, expr)  # where the expression is defined, so is f
        assert tuple(got.shape) == tuple(want.shape[1:]), (size, expr)
        assert torch.allclose(got, want[0], atol=1e-9, rtol=0), (size, expr)
        both += 1
    assume(both > 0)  # a chain defined at no small size says nothing


@st.composite
def weight_chains(draw):
    """A weight and 1-3 maps of it (every weight operation, random options)."""
    d = draw(st.integers(1, 2))
    base = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *[draw(st.integers(1, 4))] * d)
    out, inp, size = base[0], base[1], base[2]
    maps = []
    for _ in range(draw(st.integers(1, 3))):
        choices = [("flip",), ("sum",), ("catout",), ("catin",)]
        choices.append(("poly", draw(st.integers(1, 3)), draw(st.integers(0, size - 1))))
        a = draw(st.integers(0, size - 1))
        choices.append(("slice", a, draw(st.integers(0, size - 1 - a))))
        b = draw(st.integers(-size + 1, 2))
        low = max(-size - b + 1, -2, -size - min(b, 0))  # torch crops at most the weight
        choices.append(("pad", b, draw(st.integers(low, 2))))
        m = draw(st.sampled_from(choices))
        maps.append(m)
        out, inp = out * (2 if m[0] == "catout" else 1), inp * (2 if m[0] == "catin" else 1)
        size = _final_size(size, m)
    return d, maps, {"x": (inp, *("n",) * d), "w": base}


@_SETTINGS
@given(weight_chains())
@example((1, [("slice", 0, 1)], {"x": (1, "n"), "w": (1, 1, 3)}))
@example((2, [("pad", -1, 2), ("poly", 2, 1)], {"x": (1, "n", "n"), "w": (1, 1, 3, 3)}))
def test_traced_weight_maps_compute_what_torch_computes(case):
    """A convolution with a mapped weight, traced, equals the function at every size."""
    d, maps, shapes = case

    def f(x, w):
        for m in maps:
            w = _kernel_map(w, m, d)
        return (F.conv1d, F.conv2d)[d - 1](x, w, padding=1)

    expr = trace(f, **shapes)
    rng = np.random.default_rng(len(maps))
    checked = 0
    for size in _sizes(d, []):
        inputs = _torch_inputs(shapes, size, rng)
        want = _run(f, inputs)
        try:
            got = evaluate(expr, {"x": inputs["x"][0].numpy()}, {"w": inputs["w"].numpy()})
        except OracleUndefined:
            assert want is None, (size, expr)
            continue
        assert want is not None, (size, expr)
        assert torch.equal(got, want[0]), (size, expr)
        checked += 1
    assert checked, expr  # padding 1: a kernel of size k is defined from n = k - 2 on
