"""Exact integers or a clear refusal: matrices, im2col matrices and gradients of integer arrays
equal the exact sums (Python integers over torch's one-hot matrices) or are refused with the
bound they could exceed; numbers a float cannot hold are refused, not changed; a padding word
must describe the padding.

The oracle: for every weight ``k``, torch's convolution with the one-hot kernel ``e_k`` applied
to every one-hot input gives ``E_k``, the count of triples ``(o, i, k)``; the exact matrix is
``sum_k w_k E_k`` in Python integers, which never wrap.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oracle import F, torch
from strategies import conv_specs

import convalgebra as ca
from convalgebra.budget import FLOAT64_EXACT, INT64_MAX, entry_multiplicity, max_abs
from convalgebra.cli.args import make_array
from convalgebra.connectivity import entry_count, weight_uses
from convalgebra.errors import ConvAlgebraError

SPECS = conv_specs(ndims=(1, 2), max_size=5, max_channels=3)
#: One-hot oracles cost a torch call per weight: a fifth of the profile's examples (40 in CI).
ORACLE = settings(
    max_examples=max(10, settings.default.max_examples // 5),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def onehot_matrices(spec: ca.ConvSpec) -> np.ndarray:
    """``E[k, o, i]``: torch's layer with the one-hot kernel ``e_k`` on the one-hot input ``e_i``."""
    n_in, n_w = math.prod(spec.input_shape), math.prod(spec.weight_shape)
    xs = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *spec.input_shape)
    pads: list[int] = []
    for before, after in reversed(spec.padding):
        pads += [before, after]
    mode = "constant" if spec.padding_mode == "zeros" else spec.padding_mode
    xs = F.pad(xs, pads, mode=mode)
    conv = getattr(F, f"conv{spec.ndim}d")
    out = []
    for wk in torch.eye(n_w, dtype=torch.float64).reshape(n_w, *spec.weight_shape):
        if spec.flip:
            wk = torch.flip(wk, dims=list(range(2, 2 + spec.ndim)))
        y = conv(xs, wk, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
        out.append(y.reshape(n_in, -1).T.numpy())
    return np.rint(np.stack(out)).astype(np.int64)


def exact_matrix(e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_k w_k E_k`` in Python integers."""
    weights = np.array([int(v) for v in w.ravel()], dtype=object)
    return np.tensordot(weights, e.astype(object), axes=(0, 0))


@st.composite
def big_ints(draw, shape, dtype):
    """Integers of ``dtype`` up to a drawn magnitude 2**b, b up to the dtype's width."""
    bits = draw(st.integers(0, 64 if dtype == np.uint64 else 63))
    lo = 0 if dtype == np.uint64 else -(2 ** min(bits, 63))
    hi = min(2**bits, np.iinfo(dtype).max)
    n = math.prod(shape)
    values = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    return np.array(values, dtype=dtype).reshape(shape)


def _small(spec: ca.ConvSpec) -> bool:
    return math.prod(spec.weight_shape) <= 18 and math.prod(spec.input_shape) <= 40


@given(spec=SPECS, data=st.data())
@example(spec=ca.ConvSpec((1, 2), 1, 1), data=None).via("unsigned above 2**63 wrapped")
@example(spec=ca.ConvSpec((1, 1), 1, 3, padding=1, padding_mode="circular"), data=None).via(
    "three 2**62 summed wrapped"
)
@ORACLE
def test_integer_matrix_is_exact_or_refused(spec, data):
    if data is None:  # the pinned reproducers
        big = 2**63 + 5 if spec.kernel_size == (1,) else 2**62
        w = np.full(spec.weight_shape, big, dtype=np.uint64 if big > INT64_MAX else np.int64)
    else:
        if not _small(spec):
            return
        w = data.draw(
            big_ints(spec.weight_shape, data.draw(st.sampled_from([np.int64, np.uint64])))
        )
    try:
        m = ca.conv_matrix(spec, w)
    except ConvAlgebraError as exc:
        assert max_abs(w) * entry_multiplicity(spec) > INT64_MAX, exc
        assert "2**63" in str(exc)
        return
    exact = exact_matrix(onehot_matrices(spec), w)
    got = np.array([[int(v) for v in row] for row in m.toarray()], dtype=object)
    assert m.dtype == np.int64 and (got == exact).all()


@given(spec=SPECS, data=st.data())
@ORACLE
def test_integer_im2col_matrix_is_exact_or_refused(spec, data):
    if not _small(spec):
        return
    x = data.draw(big_ints(spec.input_shape, data.draw(st.sampled_from([np.int64, np.uint64]))))
    try:
        j = ca.kernel_jacobian(spec, x)
    except ConvAlgebraError:
        assert max_abs(x) * entry_multiplicity(spec) > INT64_MAX
        return
    e = onehot_matrices(spec).astype(object)  # J[:, k] = E_k x
    exact = np.stack(
        [e[k] @ np.array([int(v) for v in x.ravel()], dtype=object) for k in range(len(e))], axis=1
    )
    got = np.array([[int(v) for v in row] for row in j.toarray()], dtype=object)
    assert (got == exact).all()


@given(spec=SPECS, data=st.data())
@example(spec=ca.ConvSpec((1, 2), 1, 1), data=None).via("gradients of 2**40 weights rounded")
@ORACLE
def test_integer_gradients_are_exact_or_refused(spec, data):
    if data is None:
        w = np.full(spec.weight_shape, 2**40)
        x, g = np.full(spec.input_shape, 3), np.full(spec.output_shape, 2**20 + 1)
    else:
        if not _small(spec):
            return
        dtype = data.draw(st.sampled_from([np.int64, np.uint64]))
        w = data.draw(big_ints(spec.weight_shape, dtype))
        x = data.draw(big_ints(spec.input_shape, dtype))
        g = data.draw(big_ints(spec.output_shape, dtype))
    e = onehot_matrices(spec).astype(object)
    ints = [np.array([int(v) for v in a.ravel()], dtype=object) for a in (w, x, g)]
    try:
        gx = ca.input_gradient(spec, w, g)
    except ConvAlgebraError as exc:
        assert "2**53" in str(exc) or "2**63" in str(exc)
    else:
        exact = exact_matrix(e, w).T @ ints[2]  # M^T g
        assert [int(v) for v in gx.ravel()] == list(exact)
        assert max(map(abs, exact), default=0) <= FLOAT64_EXACT
    try:
        gw = ca.weight_gradient(spec, x, g)
    except ConvAlgebraError as exc:
        assert "2**53" in str(exc) or "2**63" in str(exc)
    else:
        exact = [ints[2] @ (e[k] @ ints[1]) for k in range(len(e))]  # g . (E_k x)
        assert [int(v) for v in gw.ravel()] == exact


@given(spec=SPECS)
@example(spec=ca.ConvSpec((1, 3), 1, 3, padding=1, padding_mode="circular"))
@example(spec=ca.ConvSpec((2, 6), 2, 3, padding=2, padding_mode="reflect", flip=True))
@ORACLE
def test_entry_count_and_weight_uses_match_the_one_hot_matrices(spec):
    if not _small(spec):
        return
    e = onehot_matrices(spec)
    assert entry_count(spec) == int((e.sum(axis=0) != 0).sum())
    assert weight_uses(spec).tolist() == e.reshape(len(e), -1).sum(axis=1).tolist()


NUMBERS = st.from_regex(r"\A[+-]?[0-9]{1,3}(\.[0-9]{0,3})?[eE][+-]?[0-9]{1,4}\Z")


@given(text=NUMBERS)
@example(text="1e999").via("became inf")
@example(text="1e-999").via("became 0.0")
@example(text="0e-999")
@example(text="1e-320")
def test_numbers_a_float_cannot_hold_are_refused(text):
    exact = Decimal(text)
    value = float(text)
    lost = math.isinf(value) or (value == 0 and exact != 0)
    try:
        got = make_array(text, (1,), name="weight")
    except ConvAlgebraError as exc:
        assert lost and "outside the range of a float" in str(exc) and "weight" in str(exc)
        return
    assert not lost and got.tolist() == [value]


@pytest.mark.parametrize("content", ["1e999\n", "1e-999\n", "nan\n", "2 -inf\n"])
def test_text_weight_files_out_of_float_range_are_refused(content, tmp_path):
    path = tmp_path / "w.txt"
    path.write_text(content)
    with pytest.raises(ConvAlgebraError, match="outside the range of a float"):
        make_array(str(path), (len(content.split()),))


@given(
    kernel=st.integers(1, 5),
    dilation=st.integers(1, 3),
    padding=st.integers(0, 6),
    word=st.sampled_from(["same", "valid", "full", "SAME", "bogus", 3]),
)
@example(kernel=3, dilation=1, padding=0, word="same").via("accepted unvalidated")
@example(kernel=4, dilation=3, padding=1, word="valid")
def test_a_padding_word_must_describe_the_padding(kernel, dilation, padding, word):
    try:
        spec = ca.ConvSpec(
            (1, 40), 1, kernel, padding=padding, dilation=dilation, padding_word=word
        )
    except ConvAlgebraError as exc:
        assert "padding_word" in str(exc)
        if isinstance(word, str) and word.lower() in ("same", "valid", "full"):
            written = ca.ConvSpec((1, 40), 1, kernel, padding=word.lower(), dilation=dilation)
            assert written.padding != ((padding, padding),)
        return
    written = ca.ConvSpec((1, 40), 1, kernel, padding=word.lower(), dilation=dilation)
    assert written.padding == spec.padding and spec.padding_word == word.lower()
