"""What is printed is what was computed: every derivation request, rendered and read back,
evaluated on values PyTorch computed (float64) for the names it prints.

Each request draws a layer over every option its kind accepts, derives it, and verifies it
against a meaning built from torch alone: the inputs the derivation was given (or random
integers for its symbols), torch's outputs, autograd's gradients and torch's Jacobians. A
printed window list, index label, matrix entry or number that disagrees with torch fails.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from oracle import F, torch, torch_conv, torch_grads, torch_jacobian
from strategies import conv_specs

import convalgebra as ca
from convalgebra.derivations.oracle import Meaning
from convalgebra.derivations.verify import RoundTripError
from convalgebra.network.layers import AvgPool, MaxPool

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))

#: Evaluations per kind over the run (the closing figures of the property test).
CHECKED: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print("\nevaluations per kind:", dict(sorted(CHECKED.items())))  # seen with -s


def _ints(rng, shape):
    return rng.integers(-3, 4, shape).astype(float)


def _weight_jacobian(spec, a, w, b):
    wt = torch.as_tensor(w, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: torch_conv(spec, a, v, b), wt)
    return jac.reshape(math.prod(spec.output_shape), -1).numpy()


def torch_meaning(spec, w, a, b, g, own="M"):
    """The names of a convolution derivation, valued by torch."""
    bias = b if spec.bias else None
    z = torch_conv(spec, a, w, bias).numpy()
    gx, gw, gb = torch_grads(spec, a, w, b, g)
    m = torch_jacobian(spec, w)
    arrays = {
        "w": w,
        "a": a,
        "b": b,
        "z": z,
        "dL/dz": g,
        "dL/da": gx,
        "dL/dw": gw,
        "dL/db": gb,
    }
    grids = {"a": a.reshape(-1, a.shape[-1]), "z": z.reshape(-1, z.shape[-1])}
    grids["M"], grids["M^T"] = (m.T, m) if own == "M^T" else (m, m.T)
    channels = z.reshape(spec.out_channels, -1, z.shape[-1])
    if spec.out_channels == 1:
        grids["Z"] = channels[0]
    grids.update({f"Z_{c + 1}": ch for c, ch in enumerate(channels)})
    return Meaning(arrays, grids)


def _given_grids(meaning, spec, w, a, b):
    per = spec.weight_shape[-spec.ndim - 1]
    slices = w.reshape(-1, *spec.weight_shape[-spec.ndim :])
    meaning.grids["w"] = slices[0].reshape(-1, spec.weight_shape[-1])
    for k, piece in enumerate(slices):
        o, c = divmod(k, per)
        meaning.grids[f"w_{o + 1},{c + 1}"] = piece.reshape(-1, spec.weight_shape[-1])
    for k, piece in enumerate(a):
        meaning.grids[f"a_{k + 1}"] = piece.reshape(-1, a.shape[-1])
    meaning.grids["b"] = b.reshape(1, -1)


def _check(kind, derivation, meaning):
    n = derivation.verify(meaning)
    CHECKED[kind] += n
    assert n > 0


# --------------------------------------------------------------------- convolutions
@SETTINGS
@given(
    conv_specs(transposed=None, symmetric=True, max_size=4, max_channels=2, bias=None),
    st.sampled_from(["forward", "forward numbers", "backward", "matrix", "matrix numbers"]),
    st.integers(0, 2**16),
    st.integers(3, 12),
)
@example(ca.ConvSpec((4, 3, 3), 2, 2, padding=1, groups=2), "backward", 0, 12)
@example(ca.ConvSpec((1, 5), 1, 2, stride=2, bias=False), "forward numbers", 1, 3)
def test_conv_derivations_read_back_as_torch_computes(spec, kind, seed, limit):
    rng = np.random.default_rng(seed)
    w, a, g = _ints(rng, spec.weight_shape), _ints(rng, spec.input_shape), None
    b = _ints(rng, (spec.out_channels,)) if spec.bias else np.zeros(spec.out_channels)
    g = _ints(rng, spec.output_shape)
    try:
        torch_conv(spec, a, w)
    except (ValueError, RuntimeError):
        assume(False)  # a layer torch has no op for (e.g. an asymmetric transposed padding)
    numbers = kind.endswith("numbers")
    if kind.startswith("forward"):
        options = dict(weight=w, x=a, bias=b if spec.bias else None) if numbers else {}
        d = ca.derive("forward", spec, max_outputs=limit, **options)
    elif kind == "backward":
        d = ca.derive("backward", spec, max_outputs=limit, max_cols=limit, check_general=False)
    else:
        d = ca.derive("matrix", spec, weight=w if numbers else None, max_rows=limit, max_cols=limit)
    meaning = torch_meaning(spec, w, a, b, g)
    if numbers:
        _given_grids(meaning, spec, w, a, b)
    _check(kind.split()[0], d, meaning)


@SETTINGS
@given(conv_specs(ndims=(1, 2), max_size=4, max_channels=2, modes=("zeros",)), st.integers(0, 99))
def test_im2col_reads_back_as_torch_computes(spec, seed):
    assume(spec.groups == 1 and spec.tile is None)
    rng = np.random.default_rng(seed)
    w, a = _ints(rng, spec.weight_shape), _ints(rng, spec.input_shape)
    b = np.zeros(spec.out_channels)
    d = ca.derive("im2col", spec, x=a)
    meaning = torch_meaning(spec, w, a, b, np.zeros(spec.output_shape))
    n_pos, n_col = math.prod(spec.output_shape[1:]), math.prod(spec.weight_shape[1:])
    meaning.grids["X"] = _weight_jacobian(spec, a, w, None)[:n_pos, :n_col]
    meaning.grids["W"] = w.reshape(spec.out_channels, -1)
    z = torch_conv(spec, a, w).numpy()
    meaning.grids["Z"] = z.reshape(spec.out_channels, -1)
    _check("im2col", d, meaning)


@SETTINGS
@given(conv_specs(ndims=(1, 2), transposed=True, symmetric=True, max_size=3, max_channels=2))
def test_transposed_reads_back_as_torch_computes(spec):
    assume(spec.padding_mode == "zeros")
    try:
        d = ca.derive("transposed", spec)
    except ca.ConvAlgebraError:
        assume(False)
    rng = np.random.default_rng(0)
    w, a = _ints(rng, spec.weight_shape), _ints(rng, spec.input_shape)
    b = np.zeros(spec.out_channels)
    meaning = torch_meaning(spec, w, a, b, np.zeros(spec.output_shape), own="M^T")
    _check("transposed", d, meaning)


# ------------------------------------------------------------------------- pooling
@st.composite
def pooling_requests(draw):
    nd = draw(st.sampled_from([1, 2]))
    kind = draw(st.sampled_from(["max", "avg"]))
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    d = draw(st.integers(1, 3)) if kind == "max" else 1
    size = tuple(draw(st.integers(1, 7)) for _ in range(nd))
    c = draw(st.integers(1, 2))
    span = d * (k - 1) + 1
    assume(all(n + 2 * p >= span for n in size))
    for n in size:  # torch's max-pool backward corrupts memory on a window of padding only
        starts = range(-p, n + p - span + 1, s)
        assume(all(any(0 <= a + d * t < n for t in range(k)) for a in starts))
    x = np.array(
        draw(
            st.lists(st.integers(-4, 4), min_size=c * math.prod(size), max_size=c * math.prod(size))
        )
    )
    layer = (
        MaxPool(k, stride=s, padding=p, dilation=d)
        if kind == "max"
        else AvgPool(k, stride=s, padding=p, count_include_pad=draw(st.booleans()))
    )
    return layer, x.reshape(c, *size).astype(float)


def torch_pooling_meaning(layer, x, g_seed=0):
    nd = x.ndim - 1
    xt = torch.as_tensor(x, dtype=torch.float64)[None].requires_grad_()
    if isinstance(layer, MaxPool):
        y = getattr(F, f"max_pool{nd}d")(
            xt, layer.kernel_size, layer.stride, layer.padding, layer.dilation
        )
    else:
        y = getattr(F, f"avg_pool{nd}d")(
            xt,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            count_include_pad=layer.count_include_pad,
        )
    g = np.random.default_rng(g_seed).integers(-5, 6, tuple(y.shape[1:])).astype(float)
    (gx,) = torch.autograd.grad(y, xt, torch.as_tensor(g)[None])
    yn, gxn = y[0].detach().numpy(), gx[0].numpy()
    arrays = {"x": x, "y": yn, "dL/dy": g, "dL/dx": gxn}
    grids = {"x": x.reshape(-1, x.shape[-1]), "y": yn.reshape(-1, yn.shape[-1])}
    return Meaning(arrays, grids)


@SETTINGS
@given(pooling_requests(), st.integers(4, 40))
@example((MaxPool(2, stride=1, dilation=2), np.arange(25.0).reshape(1, 5, 5)), 16)
def test_pooling_reads_back_as_torch_computes(request, limit):
    layer, x = request
    # distinct values: torch's tie rule among equal maxima is not a documented contract
    if isinstance(layer, MaxPool):
        x = x * 100 + np.arange(x.size).reshape(x.shape) % 97
    d = ca.derive("pooling", layer, x=x, max_outputs=limit, max_inputs=limit)
    _check("pooling " + type(layer).__name__, d, torch_pooling_meaning(layer, x))


def test_dilated_max_pooling_prints_torchs_values():
    """MaxPool(2, stride=1, dilation=2) on 0..24: y1 = max(x1, x3, x11, x13) = 12, as torch."""
    x = np.arange(25).reshape(1, 5, 5)
    text = ca.derive("pooling", MaxPool(2, stride=1, dilation=2), x=x).to_text()
    assert "y1 = Max(x1, x3, x11, x13) = Max(0, 2, 10, 12) = 12" in text
    assert "dilation 2" in text


def test_a_wrong_printed_window_does_not_verify():
    x = np.arange(25.0).reshape(1, 5, 5)
    layer = MaxPool(2, stride=1, dilation=2)
    d = ca.derive("pooling", layer, x=x)
    meaning = torch_pooling_meaning(layer, x)
    meaning.arrays["y"] = meaning.arrays["y"].copy()
    meaning.arrays["y"].flat[0] = 6  # what the undilated window gave
    with pytest.raises(RoundTripError, match="y1"):
        d.verify(meaning)


def test_wide_matrix_entries_carry_their_true_indices():
    """The backward of a grouped 4-channel layer: M^T is cut to fit, never listed entry by
    entry with display-counted labels; every shown entry sits at its true row and column."""
    spec = ca.ConvSpec((4, 3, 3), 2, 2, padding=1, groups=2)
    d = ca.derive("backward", spec, check_general=False)
    latex = d.to_latex()
    assert "entry by entry" not in latex and "= 0 \\\\" not in latex
    rng = np.random.default_rng(0)
    w, a = _ints(rng, spec.weight_shape), _ints(rng, spec.input_shape)
    g = _ints(rng, spec.output_shape)
    assert d.verify(torch_meaning(spec, w, a, np.zeros(2), g)) > 0
