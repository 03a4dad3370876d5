"""Singular values and operator norms against the SVD of torch's dense matrix.

The brute force is independent of the library: the dense matrix is torch's own convolution
applied to every one-hot input (a batch of the identity), and ``numpy.linalg.svd`` of it.
Tolerance: ``1e-9 * sigma_max`` for the FFT and dense routes, ``1e-6 * sigma_max`` for
Lanczos (ARPACK at ``tol=1e-10`` on ``M^H M``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import conv_specs

from convalgebra import ConvAlgebraError, ConvSpec
from convalgebra.spectra import fft_applies, operator_norm, singular_values, upper_bounds

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
F = torch.nn.functional

EXACT = 1e-9
LANCZOS = 1e-6
# every example builds and decomposes a dense matrix: fewer examples than the profile's
FEW = settings(max_examples=min(settings.default.max_examples, 30))
# tiling circular specs are drawn partly by rejection (the output must tile the input)
FILTERED = settings(FEW, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def torch_dense(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    """Torch's layer applied to every one-hot input: the dense matrix, (n_out, n_in)."""
    if spec.transposed and (spec.padding_mode != "zeros" or any(b != a for b, a in spec.padding)):
        # the definition of such a transposed layer: the transpose of its forward's matrix,
        # restricted to the forward outputs it has (output_padding can leave some out)
        fwd = spec.forward
        dense = torch_dense(fwd, w).reshape(*fwd.output_shape, -1)
        keep = (slice(None), *(slice(0, o) for o in spec.forward_output_spatial))
        return dense[keep].reshape(-1, dense.shape[-1]).T
    n_in = math.prod(spec.input_shape)
    x = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *spec.input_shape)
    wt = torch.tensor(np.array(w), dtype=torch.float64)
    if spec.flip:
        wt = torch.flip(wt, dims=list(range(2, 2 + spec.ndim)))
    if spec.channel_table is not None:
        mask = torch.tensor(spec.channel_table, dtype=torch.float64)
        wt = wt * mask.reshape(*mask.shape, *(1,) * spec.ndim)
    nd = spec.ndim
    if spec.transposed:
        y = getattr(F, f"conv_transpose{nd}d")(
            x,
            wt,
            stride=spec.stride,
            padding=tuple(b for b, _ in spec.padding),
            output_padding=spec.output_padding,
            groups=spec.groups,
            dilation=spec.dilation,
        )
    else:
        pads = [p for b, a in reversed(spec.padding) for p in (b, a)]
        mode = "constant" if spec.padding_mode == "zeros" else spec.padding_mode
        y = getattr(F, f"conv{nd}d")(
            F.pad(x, pads, mode=mode),
            wt,
            stride=spec.stride,
            dilation=spec.dilation,
            groups=spec.groups,
        )
    return y.reshape(n_in, -1).T.numpy()


def brute_singular_values(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    return np.linalg.svd(torch_dense(spec, w), compute_uv=False)


@st.composite
def tiling_circular_specs(draw, transposed: bool | None = None, table: bool = False):
    """Circular specs whose output tiles the input: out = n / gcd(stride, n) on every axis."""
    nd = draw(st.sampled_from([1, 2, 3]))
    groups = 1 if table else draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3 if nd < 3 else 2))
    cout = groups * draw(st.integers(1, 3 if nd < 3 else 2))
    sizes, kernel, stride, dilation, padding = [], [], [], [], []
    for _ in range(nd):
        # out = N, n = N*g, stride g*m with gcd(m, N) = 1, so gcd(stride, n) = g
        big = 4 if nd < 3 else 2
        out, g = draw(st.integers(1, big)), draw(st.integers(1, 3))
        n = out * g
        m = draw(st.sampled_from([1, 2] if math.gcd(2, out) == 1 else [1]))
        s = g * m
        k, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        lo = (out - 1) * s + d * (k - 1) + 1 - n  # total padding b + a for `out` outputs
        total = draw(st.integers(max(0, lo), max(0, lo) + s - 1))
        assume(total <= 2 * n)
        b = draw(st.integers(max(0, total - n), min(n, total)))
        sizes.append(n), kernel.append(k), stride.append(s), dilation.append(d)
        padding.append((b, total - b))
    is_t = draw(st.booleans()) if transposed is None else transposed
    channel_table = None
    if table:
        rows = draw(
            st.lists(
                st.lists(st.booleans(), min_size=cin, max_size=cin), min_size=cout, max_size=cout
            )
        )
        channel_table = [[v or j == i % cin for j, v in enumerate(r)] for i, r in enumerate(rows)]
    try:
        spec = ConvSpec(
            (cin, *sizes),
            cout,
            tuple(kernel),
            stride=tuple(stride),
            padding=tuple(padding),
            dilation=tuple(dilation),
            groups=groups,
            padding_mode="circular",
            flip=draw(st.booleans()),
            channel_table=channel_table,
        )
    except ConvAlgebraError:
        assume(False)
    assume(fft_applies(spec))
    if is_t:
        extra = tuple(
            (n + b + a - d * (k - 1) - 1) % s
            for n, (b, a), k, d, s in zip(sizes, padding, kernel, dilation, stride, strict=True)
        )
        try:
            spec = ConvSpec(
                spec.output_shape,
                spec.in_channels,
                spec.kernel_size,
                spec.stride,
                spec.padding,
                spec.dilation,
                spec.groups,
                "circular",
                transposed=True,
                output_padding=extra,
                flip=spec.flip,
            )
        except ConvAlgebraError:
            assume(False)
        assume(spec.forward.input_shape[1:] == tuple(sizes) and fft_applies(spec))
    return spec


def weights(draw, spec: ConvSpec) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal(spec.weight_shape)


def assert_close(got: np.ndarray, want: np.ndarray, rel: float) -> None:
    assert got.shape == want.shape
    scale = max(float(want.max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(got, want, rtol=0, atol=rel * scale)


# ----------------------------------------------------------------------- FFT route
@FILTERED
@given(st.data())
def test_fft_route_equals_dense_svd(data):
    spec = data.draw(tiling_circular_specs())
    w = weights(data.draw, spec)
    got = singular_values(spec, w)
    assert np.all(np.diff(got) <= 0)
    assert_close(got, brute_singular_values(spec, w), EXACT)


@FILTERED
@given(st.data())
def test_fft_route_with_channel_table(data):
    spec = data.draw(tiling_circular_specs(transposed=False, table=True))
    w = weights(data.draw, spec)
    assert_close(singular_values(spec, w), brute_singular_values(spec, w), EXACT)


@FILTERED
@given(st.data())
def test_fft_route_complex_weights(data):
    spec = data.draw(tiling_circular_specs(transposed=False))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    w = rng.standard_normal(spec.weight_shape) + 1j * rng.standard_normal(spec.weight_shape)
    from convalgebra import conv_matrix

    want = np.linalg.svd(conv_matrix(spec, w).toarray(), compute_uv=False)
    assert_close(singular_values(spec, w), want, EXACT)


@FILTERED
@given(st.data())
def test_transposed_has_the_forward_values(data):
    spec = data.draw(tiling_circular_specs(transposed=True))
    w = weights(data.draw, spec)
    assert_close(singular_values(spec, w), singular_values(spec.forward, w), EXACT)


@FILTERED
@given(st.data())
def test_fft_k_largest_and_norm(data):
    spec = data.draw(tiling_circular_specs())
    w = weights(data.draw, spec)
    want = brute_singular_values(spec, w)
    k = data.draw(st.integers(1, want.size))
    assert_close(singular_values(spec, w, k=k), want[:k], EXACT)
    norm = operator_norm(spec, w)
    assert norm.method == "fft"
    assert abs(float(norm) - want[0]) <= EXACT * want[0]
    # tiling circular layers: the circulant bound is the exact norm
    assert abs(norm.bounds[0].value - want[0]) <= EXACT * want[0]


# ------------------------------------------------------------------ general routes
@FEW
@given(st.data())
def test_every_spec_all_values_equal_dense_svd(data):
    spec = data.draw(conv_specs(transposed=None, max_size=5, max_channels=3))
    assume(math.prod(spec.input_shape) * math.prod(spec.output_shape) < 40_000)
    w = weights(data.draw, spec)
    assert_close(singular_values(spec, w), brute_singular_values(spec, w), EXACT)


@FEW
@given(st.data())
def test_lanczos_k_largest_equal_dense_svd(data):
    spec = data.draw(conv_specs(transposed=None, max_size=6, max_channels=3))
    want = None
    limit = min(math.prod(spec.input_shape), math.prod(spec.output_shape))
    assume(limit >= 10 and math.prod(spec.input_shape) * math.prod(spec.output_shape) < 60_000)
    w = weights(data.draw, spec)
    want = brute_singular_values(spec, w)
    k = data.draw(st.integers(1, 3))
    assert_close(singular_values(spec, w, k=k), want[:k], LANCZOS)


@FEW
@given(st.data())
def test_exact_norm_and_bounds_every_spec(data):
    spec = data.draw(conv_specs(transposed=None, max_size=6, max_channels=3))
    assume(math.prod(spec.input_shape) * math.prod(spec.output_shape) < 60_000)
    w = weights(data.draw, spec)
    top = brute_singular_values(spec, w)[0]
    norm = operator_norm(spec, w)
    assert abs(float(norm) - top) <= LANCZOS * top
    if norm.interval is not None:
        lo, hi = norm.interval
        assert lo - EXACT * top <= top <= hi + EXACT * top
    assert [b.name for b in norm.bounds] == ["circulant", "gram", "taps"]
    for bound in norm.bounds:
        assert bound.value >= top * (1 - EXACT), bound
    circulant, gram, _ = norm.bounds
    assert gram.value >= circulant.value * (1 - EXACT)
    best = operator_norm(spec, w, method="bound")
    assert float(best) == min(b.value for b in norm.bounds)


def test_tiled_layer_exact_norm_by_lanczos():
    from convalgebra import conv_matrix, tiled

    spec = tiled((2, 9, 9), 3, 3, tile=2, padding=1)
    w = np.random.default_rng(1).standard_normal(spec.weight_shape)
    top = np.linalg.norm(conv_matrix(spec, w).toarray(), 2)
    norm = operator_norm(spec, w)
    assert norm.method == "lanczos" and norm.bounds == ()
    assert abs(float(norm) - top) <= LANCZOS * top
    with pytest.raises(ConvAlgebraError, match="tiled"):
        operator_norm(spec, w, method="bound")


def test_hand_checked_circular_values():
    # circulant of [1, 2, 1] on 4 points: |1 + 2 w + w^2| = |1 + w|^2 = 4, 2, 0, 2
    spec = ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular")
    np.testing.assert_allclose(singular_values(spec, [[[1.0, 2.0, 1.0]]]), [4, 2, 2, 0], atol=1e-12)


# ------------------------------------------------------------------------ errors
def test_dense_budget_refusal_names_size_and_alternatives():
    spec = ConvSpec((4, 30, 30), 4, 3, padding=1)
    with pytest.raises(ConvAlgebraError, match=r"3,600 x 3,600.*k=.*circular"):
        singular_values(spec, np.ones(spec.weight_shape), max_bytes=10**6)


@pytest.mark.parametrize(
    "k, error",
    [(0, ConvAlgebraError), (99, ConvAlgebraError), (1.5, TypeError), (True, TypeError)],
    ids=["zero", "too-many", "float", "bool"],
)
def test_bad_k(k, error):
    spec = ConvSpec((1, 5), 1, 3)
    with pytest.raises(error, match="k must be"):
        singular_values(spec, np.ones(spec.weight_shape), k=k)


def test_bad_method_and_spec():
    spec = ConvSpec((1, 5), 1, 3)
    with pytest.raises(ConvAlgebraError, match="method must be"):
        operator_norm(spec, np.ones(spec.weight_shape), method="fast")
    with pytest.raises(TypeError, match="spec must be a ConvSpec"):
        singular_values("conv", np.ones(3))
    with pytest.raises(ConvAlgebraError, match="weight must have shape"):
        upper_bounds(spec, np.ones(3))


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"tol": -1.0}, ConvAlgebraError, "tol must be in"),
        ({"tol": "small"}, TypeError, "tol must be a real"),
        ({"max_bytes": 0}, ConvAlgebraError, "max_bytes must be"),
        ({"max_bytes": 1.5}, TypeError, "max_bytes must be"),
    ],
    ids=["negative-tol", "text-tol", "zero-bytes", "float-bytes"],
)
def test_bad_options(options, error, message):
    spec = ConvSpec((1, 5), 1, 3)
    with pytest.raises(error, match=message):
        singular_values(spec, np.ones(spec.weight_shape), **options)
