"""Structure recognition against scipy.linalg's own Toeplitz and circulant constructors."""

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

import convalgebra as ca
from convalgebra.structure import is_multilevel


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31))
def test_scipy_toeplitz_is_recognised_and_a_perturbation_is_not(n, m, seed):
    rng = np.random.default_rng(seed)
    t = sla.toeplitz(rng.integers(1, 9, n), rng.integers(1, 9, m))
    assert ca.is_toeplitz(t)
    if n > 1 and m > 1:
        t[-1, -1] += 1
        assert not ca.is_toeplitz(t)


@given(st.integers(1, 7), st.integers(0, 2**31))
def test_scipy_circulant_is_recognised(n, seed):
    c = sla.circulant(np.random.default_rng(seed).permutation(n) + 1)
    assert ca.is_circulant(c)
    if n > 2:
        assert not ca.is_circulant(np.roll(c, 1, axis=0)[::-1])


@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31))
def test_block_toeplitz_of_toeplitz_blocks(n_blocks, size, seed):
    rng = np.random.default_rng(seed)
    blocks = [
        sla.toeplitz(rng.integers(1, 9, size), rng.integers(1, 9, size))
        for _ in range(2 * n_blocks - 1)
    ]
    grid = [[blocks[j - i + n_blocks - 1] for j in range(n_blocks)] for i in range(n_blocks)]
    m = np.block(grid)
    assert ca.is_block_toeplitz(m, (size, size))
    assert ca.is_block_toeplitz(m, (size, size), inner="free")


@pytest.mark.parametrize(
    "spec, name",
    [
        (ca.ConvSpec((1, 6), 1, 3), "Toeplitz"),
        (ca.ConvSpec((1, 6), 1, 3, padding=1, padding_mode="circular"), "circulant"),
        (ca.ConvSpec((1, 5, 6), 1, 3, padding=1), "doubly block Toeplitz"),
        (ca.ConvSpec((1, 5, 6), 1, (3, 2), padding="valid"), "doubly block Toeplitz"),
        (
            ca.ConvSpec((1, 5, 5), 1, 3, padding=1, padding_mode="circular"),
            "doubly block circulant",
        ),
        (
            ca.ConvSpec((1, 3, 4, 4), 1, 3, padding=1, padding_mode="circular"),
            "triply block circulant",
        ),
        (ca.ConvSpec((2, 5, 5), 3, 3, padding=1), "block matrix of doubly block Toeplitz blocks"),
        (ca.ConvSpec((1, 7), 1, 3, stride=2), "general (strided)"),
        (ca.ConvSpec((1, 7), 1, 3, padding=1, padding_mode="reflect"), "general"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_matrix_structure_names_the_textbook_form(spec, name):
    assert ca.matrix_structure(spec).name == name


def test_doubly_block_toeplitz_blocks_of_a_2d_convolution():
    spec = ca.ConvSpec((1, 4, 5), 1, 3, padding=1)
    m = ca.conv_matrix(spec, np.arange(1, 10).reshape(1, 1, 3, 3))
    assert ca.is_block_toeplitz(m, (5, 5))
    assert not ca.is_block_circulant(m, (5, 5))


def test_multilevel_rejects_mismatched_levels():
    with pytest.raises(ca.ConvAlgebraError, match="does not match levels"):
        is_multilevel(np.eye(4), (2, 3), (2, 2), ("toeplitz", "toeplitz"))
    with pytest.raises(ca.ConvAlgebraError, match="kinds must be among"):
        is_multilevel(np.eye(2), (2,), (2,), ("hankel",))
