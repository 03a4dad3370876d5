"""Closed-form spectra against the SVD of torch's dense matrix at random integer kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_spectra import tiling_circular_specs, torch_dense

import convalgebra as ca
from convalgebra import ConvAlgebraError, ConvSpec
from convalgebra.symbolic import weight_symbols
from convalgebra.symbolic.spectra import spectrum_blocks, symbolic_singular_values

TOL = 1e-9
# sympy per example: a dozen drawn layers per test (rejection-drawn, as in test_spectra)
FEW = settings(
    max_examples=min(settings.default.max_examples, 12),
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


def small(spec: ConvSpec) -> bool:
    return math.prod(spec.output_shape[1:]) <= 8 and math.prod(spec.weight_shape) <= 12


def tiny(spec: ConvSpec) -> bool:
    return math.prod(spec.output_shape[1:]) <= 4 and math.prod(spec.weight_shape) <= 6


def substitute(spec: ConvSpec, values: np.ndarray) -> dict:
    return dict(zip(weight_symbols(spec).ravel().tolist(), values.ravel().tolist(), strict=True))


@FEW
@given(st.data())
def test_symbolic_blocks_give_the_dense_singular_values(data):
    spec = data.draw(tiling_circular_specs().filter(small))
    w = np.array(
        data.draw(
            st.lists(
                st.integers(-3, 3),
                min_size=math.prod(spec.weight_shape),
                max_size=math.prod(spec.weight_shape),
            )
        ),
        dtype=float,
    ).reshape(spec.weight_shape)
    subs = substitute(spec, w)
    values = []
    for _, blocks in spectrum_blocks(spec):
        for block in blocks:
            numeric = np.array(block.subs(subs).evalf(), dtype=complex)
            values += np.linalg.svd(numeric, compute_uv=False).tolist()
    want = np.linalg.svd(torch_dense(spec, w), compute_uv=False)
    got = np.sort(values)[::-1]
    np.testing.assert_allclose(got, want, atol=TOL * max(want[0], 1.0), rtol=0)
    if all(min(b.shape) == 1 for _, bs in spectrum_blocks(spec) for b in bs):
        closed = [float(v.subs(subs)) for v in symbolic_singular_values(spec)]
        np.testing.assert_allclose(
            np.sort(closed)[::-1], want, atol=TOL * max(want[0], 1.0), rtol=0
        )


@FEW
@given(st.data())
def test_spectrum_derivation_round_trips(data):
    spec = data.draw(tiling_circular_specs(transposed=False).filter(tiny))
    d = ca.derive("spectrum", spec)
    assert d.verify() > 0
    assert "block" in d.to_markdown()


def test_hand_checked_closed_form():
    spec = ConvSpec((1, 4), 1, 2, padding=((0, 1),), padding_mode="circular")
    w1, w2 = weight_symbols(spec).ravel()
    assert symbolic_singular_values(spec) == [
        sympy.Abs(w1 + w2),
        sympy.sqrt(w1**2 + w2**2),
        sympy.Abs(w1 - w2),
        sympy.sqrt(w1**2 + w2**2),
    ]


def test_refusals():
    with pytest.raises(ConvAlgebraError, match="tiles the input"):
        ca.derive("spectrum", ConvSpec((1, 5), 1, 3, padding=1))
    with pytest.raises(ConvAlgebraError, match="no closed form"):
        symbolic_singular_values(ConvSpec((2, 3), 2, 1, padding_mode="circular"))
    with pytest.raises(ConvAlgebraError, match="too many"):
        spectrum_blocks(ConvSpec((1, 10, 10), 1, 3, padding=1, padding_mode="circular"))
