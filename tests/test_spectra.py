"""Singular values and operator norms against the SVD of torch's dense matrix.

The brute force is independent of the library: the dense matrix is torch's own convolution
applied to every one-hot input (a batch of the identity), and ``numpy.linalg.svd`` of it.
Tolerance: ``1e-9 * sigma_max`` for the FFT and dense routes, ``1e-6 * sigma_max`` for
Lanczos (ARPACK at ``tol=1e-10`` on ``M^H M``). Certified intervals and guaranteed bounds are
compared with no tolerance beyond the brute force's own rounding (``1e-14`` relative).
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
# the brute force's own rounding (numpy SVD of a matrix of at most a few hundred rows)
BRUTE_ROUNDING = 1e-14
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
    assert norm.method == "fft" and norm.exact
    assert abs(float(norm) - want[0]) <= EXACT * want[0]
    assert norm.lower <= want[0] * (1 + BRUTE_ROUNDING) and want[0] <= norm.upper * (
        1 + BRUTE_ROUNDING
    )
    # tiling circular layers: the circulant bound is the exact norm
    circulant = upper_bounds(spec, w)[0]
    assert circulant.name == "circulant"
    assert want[0] * (1 - BRUTE_ROUNDING) <= circulant.value <= want[0] * (1 + EXACT)


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
    # the interval is proven: no tolerance beyond the brute force's own rounding
    assert norm.lower <= top * (1 + BRUTE_ROUNDING) and top <= norm.upper * (1 + BRUTE_ROUNDING)
    assert norm.exact == (
        norm.method in ("fft", "dense") or norm.upper - norm.lower <= 1e-10 * norm.upper
    )
    bounds = upper_bounds(spec, w)
    assert [b.name for b in bounds] == ["circulant", "taps"]
    for bound in bounds:
        assert bound.value >= top * (1 - BRUTE_ROUNDING), bound
    gram = operator_norm(spec, w, method="gram", gram_iterations=data.draw(st.integers(0, 8)))
    assert gram.method == "gram" and gram.lower is None and gram.upper == float(gram)
    assert float(gram) >= bounds[0].value * (1 - EXACT)
    best = operator_norm(spec, w, method="bound")
    assert float(best) == min(b.value for b in bounds)
    if norm.method == "lanczos":
        assert norm.upper == float(best)


def test_tiled_layer_exact_norm_by_lanczos():
    from convalgebra import conv_matrix, tiled

    spec = tiled((2, 9, 9), 3, 3, tile=2, padding=1)
    w = np.random.default_rng(1).standard_normal(spec.weight_shape)
    top = np.linalg.norm(conv_matrix(spec, w).toarray(), 2)
    norm = operator_norm(spec, w)
    assert norm.method == "lanczos" and [b.name for b in norm.bounds] == ["frobenius"]
    assert abs(float(norm) - top) <= LANCZOS * top
    assert norm.lower <= top * (1 + BRUTE_ROUNDING) and top <= norm.upper * (1 + BRUTE_ROUNDING)
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


# ------------------------------------------------------------- rounding and refusals
@FEW
@given(st.data())
def test_float32_weights_bounds_never_below_the_exact_norm(data):
    spec = data.draw(conv_specs(transposed=None, max_size=6, max_channels=3))
    assume(
        spec.tile is None and math.prod(spec.input_shape) * math.prod(spec.output_shape) < 60_000
    )
    w32 = weights(data.draw, spec).astype(np.float32)
    top = brute_singular_values(spec, w32.astype(np.float64))[0]
    for bound in upper_bounds(spec, w32, gram_iterations=4):
        assert bound.value >= top * (1 - BRUTE_ROUNDING), bound
    norm = operator_norm(spec, w32)
    assert norm.lower <= top * (1 + BRUTE_ROUNDING) and top <= norm.upper * (1 + BRUTE_ROUNDING)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_non_finite_weight_is_refused(bad):
    spec = ConvSpec((1, 6), 1, 3, padding=1)
    w = np.ones(spec.weight_shape)
    w[0, 0, 1] = bad
    for call in (operator_norm, singular_values, upper_bounds):
        with pytest.raises(ConvAlgebraError, match="weight must be finite.*index \\(0, 0, 1\\)"):
            call(spec, w)


@pytest.mark.parametrize(
    "iterations, error",
    [(2**61, ConvAlgebraError), (1100, ConvAlgebraError), (-1, ConvAlgebraError), (2.0, TypeError)],
    ids=["2**61", "1100", "negative", "float"],
)
def test_gram_iterations_are_bounded(iterations, error):
    spec = ConvSpec((1, 6), 1, 3, padding=1)
    with pytest.raises(error, match=r"gram_iterations must be an integer in \[0, 64\]"):
        operator_norm(spec, np.ones(spec.weight_shape), method="gram", gram_iterations=iterations)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: singular_values(
                ConvSpec((512, 224, 224), 512, 3, padding=1, padding_mode="circular"),
                np.zeros((512, 512, 3, 3)),
            ),
            "DFT.*GiB.*max_bytes",
        ),
        (
            lambda: singular_values(
                ConvSpec((64, 160, 160), 64, 3, padding=1, padding_mode="circular"),
                np.zeros((64, 64, 3, 3)),
            ),
            "DFT.*GiB.*max_bytes",
        ),
        (
            lambda: singular_values(ConvSpec((1, 4000), 1, 2), np.ones((1, 1, 2))),
            "dense SVD.*max_flops",
        ),
        (
            lambda: operator_norm(
                ConvSpec((512, 224, 224), 512, 3, padding=1, padding_mode="circular"),
                np.zeros((512, 512, 3, 3)),
            ),
            "circulant norm.*max_flops",
        ),
    ],
    ids=["512ch-224-circular", "64ch-160-circular", "dense-1x4000", "norm-512ch-224"],
)
def test_large_spectra_refused_before_allocating(call, match):
    import time

    start = time.perf_counter()
    with pytest.raises(ConvAlgebraError, match=match):
        call()
    assert time.perf_counter() - start < 2.0


def test_lanczos_options_and_progress():
    spec = ConvSpec((2, 12, 12), 2, 3, padding=1)
    w = np.random.default_rng(0).standard_normal(spec.weight_shape)
    seen = []
    norm = operator_norm(spec, w, tol=1e-3, callback=seen.append)
    top = brute_singular_values(spec, w)[0]
    assert seen == list(range(1, norm.products + 1)) and norm.products > 0
    assert norm.lower <= top * (1 + BRUTE_ROUNDING) <= norm.upper * (1 + 2 * BRUTE_ROUNDING)
    text = norm.report()
    assert f"[{norm.lower:.10g}, {norm.upper:.10g}]" in text and "not closed" in text
    assert "circulant" in text and "taps" in text
    short = operator_norm(spec, w, maxiter=1)
    assert short.lower <= top * (1 + BRUTE_ROUNDING)
    with pytest.raises(ConvAlgebraError, match="maxiter"):
        operator_norm(spec, w, maxiter=0)


@settings(FEW, max_examples=min(settings.default.max_examples, 8))
@given(st.data())
def test_wide_layers_take_the_cholesky_certificate(data):
    # more than 16 channels on the Gram's side: the largest eigenvalue is certified by
    # Cholesky factorisations of (mu I - G(f)); symmetric kernels give tied frequencies
    c_in, c_out = data.draw(st.integers(17, 22)), data.draw(st.integers(17, 22))
    size, stride = data.draw(st.integers(4, 6)), data.draw(st.sampled_from([1, 2]))
    mode = data.draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    spec = ConvSpec((c_in, size, size), c_out, 3, stride=stride, padding=1, padding_mode=mode)
    w = weights(data.draw, spec)
    if data.draw(st.booleans()):
        w = w + w[..., ::-1, ::-1]
    top = brute_singular_values(spec, w)[0]
    circulant = upper_bounds(spec, w)[0]
    assert circulant.value >= top * (1 - BRUTE_ROUNDING)
    norm = operator_norm(spec, w, tol=1e-6)
    assert norm.lower <= top * (1 + BRUTE_ROUNDING) and top <= norm.upper * (1 + BRUTE_ROUNDING)
    if fft_applies(spec):
        assert norm.exact and abs(float(norm) - top) <= EXACT * top


@pytest.mark.parametrize(
    "spec, k",
    [
        (
            ConvSpec(
                (3, 1, 4, 3),
                1,
                (1, 2, 3),
                stride=(1, 2, 2),
                padding=((0, 0), (1, 1), (0, 0)),
                transposed=True,
            ),
            3,
        ),
        (
            ConvSpec(
                (2, 5, 4),
                2,
                (1, 1),
                stride=(1, 2),
                padding=((2, 2), (1, 1)),
                groups=2,
                transposed=True,
            ),
            3,
        ),
    ],
    ids=["double-top", "double-top-and-third"],
)
def test_repeated_singular_values_are_all_found(spec, k):
    # found by hypothesis: one Lanczos run at tol=1e-10 returned one copy of a double value;
    # then a Rayleigh quotient of a vector not orthogonal to the others stood in for a value
    w = np.random.default_rng(0).standard_normal(spec.weight_shape)
    want = brute_singular_values(spec, w)
    assert want[0] == pytest.approx(want[1], rel=1e-12)
    assert_close(singular_values(spec, w, k=k), want[:k], LANCZOS)


def test_circulant_over_max_flops_leaves_the_taps_bound():
    spec = ConvSpec((3, 9, 9), 4, 3, padding=1)
    w = np.random.default_rng(3).standard_normal(spec.weight_shape)
    top = brute_singular_values(spec, w)[0]
    cheap = operator_norm(spec, w, method="bound", max_flops=1000)
    assert cheap.method == "taps" and [b.name for b in cheap.bounds] == ["taps"]
    assert top <= cheap.upper * (1 + BRUTE_ROUNDING)
    norm = operator_norm(spec, w, max_flops=1000)
    assert norm.upper == cheap.upper and norm.lower <= top * (1 + BRUTE_ROUNDING)
    with pytest.raises(ConvAlgebraError, match="circulant norm.*max_flops"):
        upper_bounds(spec, w, max_flops=1000)
