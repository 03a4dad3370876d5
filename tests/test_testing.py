"""dottest: the adjoint test itself, and every conv_operator path at sizes never stored."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator

import convalgebra as ca
from convalgebra.testing import DotTestResult, dottest
from convalgebra.transpose import transpose_spec


def _broken(matrix, wrong):
    return LinearOperator(
        matrix.shape, matvec=lambda v: matrix @ v, rmatvec=lambda v: wrong.T @ v, dtype=matrix.dtype
    )


# ------------------------------------------------------------------------ the test itself
@pytest.mark.parametrize(
    "op",
    [
        np.arange(12.0).reshape(3, 4),
        sp.random(30, 20, density=0.2, random_state=1, format="csr"),
        aslinearoperator(np.arange(6.0).reshape(2, 3)),
    ],
    ids=["dense", "sparse", "linear-operator"],
)
def test_true_adjoint_passes(op):
    result = dottest(op)
    assert isinstance(result, DotTestResult) and result and len(result.forward) == 3
    assert max(result.errors) < 1e-12


def test_wrong_adjoint_fails_and_says_so():
    m = np.arange(6.0).reshape(2, 3)
    wrong = m.copy()
    wrong[0, 0] += 1e-3  # one entry of the "transpose" off by a little
    with pytest.raises(AssertionError, match="dot test FAILED for a 2x3 operator"):
        dottest(_broken(m, wrong))
    assert not dottest(_broken(m, wrong), raise_error=False)


def test_complex_operator_uses_conjugate_transpose():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((4, 5)) + 1j * rng.standard_normal((4, 5))
    assert dottest(m)
    # a plain transpose (no conjugation) is not the adjoint of a complex matrix
    assert not dottest(_broken(m, m), raise_error=False)


def test_single_precision_gets_a_looser_default_tolerance():
    m = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)
    result = dottest(m)
    assert result.rtol == 1e-4


def test_seed_makes_trials_reproducible():
    m = np.arange(12.0).reshape(3, 4)
    assert dottest(m, seed=3).forward == dottest(m, seed=3).forward
    assert dottest(m, seed=3).forward != dottest(m, seed=4).forward


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"n_trials": 0}, ca.ConvAlgebraError, "n_trials must be a positive integer"),
        ({"rtol": -1.0}, ca.ConvAlgebraError, "rtol and atol must be non-negative"),
    ],
    ids=["n_trials", "rtol"],
)
def test_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        dottest(np.eye(2), **kwargs)


def test_non_operator_is_a_type_error():
    with pytest.raises(TypeError, match="op must be a scipy LinearOperator"):
        dottest("not an operator")


def test_operator_returning_wrong_length_is_reported():
    op = LinearOperator((3, 2), matvec=lambda v: np.ones(3), rmatvec=lambda v: np.ones(5))
    with pytest.raises(ca.ConvAlgebraError, match="rmatvec must return a vector of length 2"):
        dottest(op)


def test_str_reports_the_worst_error():
    assert "passed" in str(dottest(np.eye(3)))


# -------------------------------------------- every conv_operator path, large and unstored
def _large(**options):
    shape = options.pop("input_shape", (3, 256, 256))
    return ca.ConvSpec(
        shape, options.pop("out_channels", 8), options.pop("kernel_size", 3), **options
    )


LARGE = {
    "zeros": _large(padding=1),
    "circular": _large(padding=1, padding_mode="circular"),
    "reflect": _large(padding=(2, 1), padding_mode="reflect", kernel_size=(5, 3)),
    "replicate": _large(padding=((1, 2), (0, 1)), padding_mode="replicate"),
    "stride-dilation": _large(stride=(2, 3), dilation=(2, 1), padding=2),
    "groups": _large(input_shape=(6, 256, 256), out_channels=9, groups=3, padding=1),
    "flip": _large(padding="same", flip=True),
    "1d": _large(input_shape=(3, 65536), kernel_size=5, stride=2, padding=2),
    "3d": _large(input_shape=(3, 40, 40, 40), kernel_size=3, padding=1, padding_mode="circular"),
    "transposed": _large(
        input_shape=(8, 128, 128),
        out_channels=3,
        stride=2,
        padding=1,
        output_padding=1,
        transposed=True,
    ),
    "transposed-reflect": transpose_spec(_large(stride=2, padding=1, padding_mode="reflect")),
    "tiled": _large(input_shape=(3, 64, 64), tile=2, padding=1),
}


@pytest.mark.parametrize("name", list(LARGE))
def test_conv_operator_passes_dottest_at_large_size(name):
    spec = LARGE[name]
    w = np.random.default_rng(0).standard_normal(spec.weight_shape)
    result = dottest(ca.conv_operator(spec, w), n_trials=2)
    assert result, str(result)


def _kernel_jacobian_operator(spec, x):
    """``w -> conv(x, w)`` matrix-free, with ``weight_gradient`` as its claimed adjoint."""
    n_out, n_w = int(np.prod(spec.output_shape)), int(np.prod(spec.weight_shape))
    return LinearOperator(
        (n_out, n_w),
        matvec=lambda w: ca.conv_operator(spec, w.reshape(spec.weight_shape)) @ x.ravel(),
        rmatvec=lambda g: ca.weight_gradient(spec, x, g.reshape(spec.output_shape)).ravel(),
        dtype=np.float64,
    )


@pytest.mark.parametrize("name", list(LARGE))
def test_weight_gradient_is_the_adjoint_of_the_kernel_jacobian_at_large_size(name):
    spec = LARGE[name]
    x = np.random.default_rng(1).standard_normal(spec.input_shape)
    assert dottest(_kernel_jacobian_operator(spec, x), n_trials=2)


def test_dottest_of_the_kernel_jacobian_catches_a_wrong_weight_gradient():
    spec = LARGE["zeros"]
    x = np.random.default_rng(1).standard_normal(spec.input_shape)
    good = _kernel_jacobian_operator(spec, x)
    flipped = LinearOperator(
        good.shape,
        matvec=good.matvec,
        dtype=np.float64,
        rmatvec=lambda g: good.rmatvec(g).reshape(spec.weight_shape)[..., ::-1, :].ravel(),
    )
    assert not dottest(flipped, raise_error=False)
