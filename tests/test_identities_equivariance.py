"""Equivariance checks against independent numeric evaluation (torch, numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from oracle import F, torch, torch_conv
from strategies import conv_specs

import convalgebra as ca
from convalgebra.identities import check, equivariant_kernels
from convalgebra.operators import conv_matrix
from convalgebra.symbolic import weight_symbols


def np_shift(x: np.ndarray, delta, circular: bool) -> np.ndarray:
    """Independent shift of the trailing axes: np.roll, or pad-and-crop with zeros."""
    nd = len(delta)
    axes = tuple(range(x.ndim - nd, x.ndim))
    if circular:
        return np.roll(x, delta, axis=axes)
    pads = [(0, 0)] * (x.ndim - nd) + [(max(d, 0), max(-d, 0)) for d in delta]
    padded = np.pad(x, pads)
    index = [slice(None)] * (x.ndim - nd) + [
        slice(max(-d, 0), max(-d, 0) + n) for d, n in zip(delta, x.shape[x.ndim - nd :])
    ]
    return padded[tuple(index)]


def layer(spec, x, w):
    if spec.transposed:
        return (conv_matrix(spec, w) @ x.ravel()).reshape(spec.output_shape)
    return torch_conv(spec, x, w).numpy()


@st.composite
def shifted_specs(draw, transposed=False):
    spec = draw(conv_specs(ndims=(1, 2), transposed=transposed, max_size=6, max_channels=3))
    n = spec.input_shape[1:]
    assume(max(n) > 1)
    axis = draw(st.integers(0, spec.ndim - 1))
    assume(n[axis] > 1)
    amount = draw(st.integers(-(n[axis] - 1), n[axis] - 1).filter(bool))
    return spec, amount, axis


@settings(max_examples=80)
@given(shifted_specs(transposed=None), st.integers(0, 2**31))
@example((ca.ConvSpec((1, 6, 8), 1, (1, 4), transposed=True, flip=True), 4, 1), 8)
def test_translation_verdict_matches_random_instances(case, seed):
    spec, amount, axis = case
    r = check("translation_equivariance", spec, shift=amount, axis=axis)
    circ = spec.padding_mode == "circular"
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape)
    w = rng.standard_normal(spec.weight_shape)
    delta = [0] * spec.ndim
    delta[axis] = amount
    lhs = layer(spec, np_shift(x, delta, circ), w)
    s = spec.stride[axis]
    if r.counterexample is not None:
        ce = r.counterexample
        assert np.allclose(
            layer(spec, np_shift(ce.inputs["x"], delta, circ), ce.inputs["weight"]), ce.lhs
        )
        if ce.position is not None:
            assert not np.isclose(ce.lhs[ce.position], ce.rhs[ce.position])
    out_delta = list(delta)
    out_delta[axis] = amount * s if spec.transposed else amount // s
    if not spec.transposed and amount % s:
        if not r.holds:  # the counterexample matches no translate of the output
            ce = r.counterexample
            y = layer(spec, ce.inputs["x"], ce.inputs["weight"])
            shifts = range(-y.shape[axis + 1] + 1, y.shape[axis + 1])
            assert all(
                not np.allclose(
                    ce.lhs, np_shift(y, [d if a == axis else 0 for a in range(spec.ndim)], circ)
                )
                for d in shifts
            )
            return
        out_delta = list(r.evidence["output shift"])  # degenerate: e.g. everything shifted out
    rhs = np_shift(layer(spec, x, w), out_delta, circ)
    # absolute tolerance only: a failing output may differ by a small product x[i] w[t]
    differs = {tuple(p) for p in np.argwhere(~np.isclose(lhs, rhs, rtol=0, atol=1e-9))}
    assert r.holds == (not differs)
    assert set(r.failing_positions or ()) == differs


@settings(max_examples=40)
@given(shifted_specs())
def test_spatial_fast_path_equals_full_tables(case):
    spec, amount, axis = case
    fast = check("translation_equivariance", spec, shift=amount, axis=axis)
    full = check(
        "translation_equivariance", spec, shift=amount, axis=axis, weight=weight_symbols(spec)
    )
    assert fast.holds == full.holds
    assert fast.failing_positions == full.failing_positions


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_failing_outputs_touch_the_border(mode):
    spec = ca.ConvSpec((1, 8, 8), 2, 3, padding=1, padding_mode=mode)
    r = check("translation_equivariance", spec, shift=1, axis=1)
    cols = {p[2] for p in r.failing_positions}
    assert 0 in cols and cols <= {0, 1, 7}  # reflect also breaks column 1
    assert {p[0] for p in r.failing_positions} == {0, 1}
    n = len(r.failing_positions) // 2
    assert r.evidence["failing outputs that read either"] == f"{n} of {n}"


def _window_reads(spec, delta):
    """Per output position (numpy pad + explicit windows): reads padding? reads a moved line?"""
    n = spec.input_shape[1:]
    inside = np.pad(np.ones(n, dtype=bool), spec.padding, constant_values=False)
    np_mode = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge"}
    moved = np.zeros(n, dtype=bool)
    for axis, d in enumerate(delta):
        if d:
            index = np.moveaxis(np.indices(n), 0, -1)[..., axis]
            moved |= (index < abs(d)) | (index >= n[axis] - abs(d))
    pad_kw = {"constant_values": False} if spec.padding_mode == "zeros" else {}
    moved = np.pad(moved, spec.padding, mode=np_mode[spec.padding_mode], **pad_kw)
    pads, lines = [], []
    for o in np.ndindex(*spec.output_shape[1:]):
        window = tuple(
            slice(s * q, s * q + dl * (k - 1) + 1, dl)
            for q, s, dl, k in zip(o, spec.stride, spec.dilation, spec.kernel_size)
        )
        pads.append(not inside[window].all())
        lines.append(bool(moved[window].any()))
    return np.array(pads), np.array(lines)


@settings(max_examples=40)
@given(shifted_specs())
def test_border_counts_against_explicit_windows(case):
    spec, amount, axis = case
    r = check("translation_equivariance", spec, shift=amount, axis=axis)
    assume(not r.holds and "output shift" not in r.evidence and r.failing_positions)
    delta = [0] * spec.ndim
    delta[axis] = amount
    pads, lines = _window_reads(spec, delta)
    assert r.evidence["outputs whose receptive field reads padding"] == pads.sum()
    assert (
        r.evidence["outputs whose receptive field reads an input line the shift moves in or out"]
        == lines.sum()
    )
    failing = np.unique(
        [np.ravel_multi_index(p[1:], spec.output_shape[1:]) for p in r.failing_positions]
    )
    either = (pads | lines)[failing].sum()
    assert r.evidence["failing outputs that read either"] == f"{either} of {failing.size}"


def test_border_counts_5x5_padding_1_shift_1():
    # 5×5, k=3, p=1, shift 1 along axis 0: the 16 border outputs read padding, rows 0, 1, 3, 4
    # (20 outputs) read input row 0 or 4, which the shift moves in or out
    r = check("translation_equivariance", ca.ConvSpec((1, 5, 5), 1, 3, padding=1), shift=1)
    assert r.evidence["outputs whose receptive field reads padding"] == 16
    assert (
        r.evidence["outputs whose receptive field reads an input line the shift moves in or out"]
        == 20
    )


@pytest.mark.parametrize("stride, amount", [(1, 1), (1, -2), (2, 2), (2, -4), (3, 3)])
def test_translation_step_shows_two_index_expressions(stride, amount):
    import sympy

    spec = ca.ConvSpec((1, 9), 1, 3, stride=stride, padding=1)
    r = check("translation_equivariance", spec, shift=amount)
    step = r.steps[1]
    lhs, rhs = step.statement.lhs, step.statement.rhs
    assert lhs != rhs  # not a tautology on the page
    o, k = sympy.symbols("o k", integer=True)
    x = sympy.IndexedBase("x")
    (li,), (ri,) = (e.atoms(sympy.Indexed) - {sympy.IndexedBase("w")[k]} for e in (lhs, rhs))
    # both sides read the same input once evaluated (1-based o, k; padding P = 1 before):
    # s(o − 1) + (k − 1) + 1 − P − δ = s(o − δ/s − 1) + (k − 1) + 1 − P
    want = stride * (o - 1) + (k - 1) + 1 - 1 - amount
    assert sympy.expand(li.indices[0].doit() - want) == 0
    assert sympy.expand(ri.indices[0].doit() - want) == 0
    assert str(li.indices[0]) != str(ri.indices[0])
    assert li.base == ri.base == x


def test_circular_is_exact_for_every_shift():
    spec = ca.ConvSpec((2, 5, 6), 3, 3, padding=1, padding_mode="circular")
    for d in [(1, 0), (0, -2), (3, 5), (-4, 1)]:
        assert check("translation_equivariance", spec, shift=d).holds


def test_stride_multiples_shift_output_by_quotient():
    assert check("translation_equivariance", ca.ConvSpec((1, 12), 1, 3, stride=3), shift=3).holds
    spec = ca.ConvSpec((1, 12), 1, 3, stride=3, padding=2)
    r = check("translation_equivariance", spec, shift=3)
    assert not r.holds and r.failing_positions == ((0, 4),)  # x[9] shifted out, padding in
    r2 = check("translation_equivariance", spec, shift=2)
    assert not r2.holds and r2.failing_positions is None and "stride" in r2.reason


def test_non_multiple_counterexample_matches_no_translate():
    spec = ca.ConvSpec((1, 9), 1, 3, stride=2, padding=1, padding_mode="circular")
    r = check("translation_equivariance", spec, shift=1)
    ce = r.counterexample
    y = torch_conv(spec, ce.inputs["x"], ce.inputs["weight"]).numpy()
    ys = torch_conv(spec, np.roll(ce.inputs["x"], 1, axis=-1), ce.inputs["weight"]).numpy()
    assert all(not np.allclose(ys, np.roll(y, d, axis=-1)) for d in range(y.shape[-1]))


@st.composite
def square_specs(draw):
    n = draw(st.integers(2, 6))
    k = draw(st.integers(1, min(n, 4)))
    mode = draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    p = draw(st.integers(0, min(k, n - 1)))
    stride = draw(st.integers(1, 2))
    c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    try:
        return ca.ConvSpec(
            (c_in, n, n),
            c_out,
            k,
            padding=p,
            stride=stride,
            padding_mode=mode,
            flip=draw(st.booleans()),
        )
    except ca.ConvAlgebraError:
        assume(False)


@settings(max_examples=60)
@given(square_specs(), st.integers(1, 3), st.integers(0, 2**31))
def test_rotation_verdict_and_solution_space(spec, k, seed):
    r = check("rotation_equivariance", spec, k=k)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape)
    w = rng.standard_normal(spec.weight_shape)
    lhs = torch_conv(spec, np.rot90(x, k, axes=(1, 2)).copy(), w).numpy()
    rhs = np.rot90(torch_conv(spec, x, w).numpy(), k, axes=(1, 2))
    # absolute tolerance only: a failing output may differ by a small product x[i] w[t]
    differs = {tuple(p) for p in np.argwhere(~np.isclose(lhs, rhs, rtol=0, atol=1e-9))}
    assert r.holds == (not differs)
    assert set(r.failing_positions or ()) == differs
    general = r.evidence.get("those kernels")
    if general is not None:  # every kernel of the solved family makes the layer equivariant
        params = sorted(general.free_symbols, key=str)
        vals = dict(zip(params, rng.integers(-3, 4, len(params)).tolist()))
        wk = np.array(general.subs(vals).tolist(), dtype=float)
        lhs = torch_conv(spec, np.rot90(x, k, axes=(1, 2)).copy(), wk).numpy()
        rhs = np.rot90(torch_conv(spec, x, wk).numpy(), k, axes=(1, 2))
        assert np.allclose(lhs, rhs)
        assert check("rotation_equivariance", spec, k=k, weight=wk).holds


@pytest.mark.parametrize(
    "transform, kernel, dim",
    [
        ("rotation", 3, 3),
        ("rotation", 2, 1),
        ("rotation", 5, 7),
        ("flip", 3, 6),
        ("transposition", 3, 6),
        ("dihedral", 3, 3),
        ("dihedral", 5, 6),
    ],
    ids=str,
)
def test_equivariant_kernel_dimensions(transform, kernel, dim):
    assert equivariant_kernels(ca.ConvSpec((1, 7, 7), 1, kernel), transform).dimension == dim


@pytest.mark.parametrize("perm", [[1, 2, 3, 0], [3, 0, 1, 2], [1, 0, 3, 2]], ids=str)
def test_channel_representation_matches_layer_level(perm):
    """Kernel-level constraint solution == layer-level solution on a circular grid."""
    spec = ca.ConvSpec((4, 5, 5), 4, 3, padding=1, padding_mode="circular", bias=False)
    ek = equivariant_kernels(spec, "rotation", in_perm=perm, out_perm=perm)
    layer_level = check("rotation_equivariance", spec, in_perm=perm, out_perm=perm)
    assert (
        ek.dimension
        == layer_level.evidence["dimension of the kernels for which it holds (this size)"]
    )
    assert ek.grid_symmetric and ek.grid_dimension == ek.dimension
    rng = np.random.default_rng(0)
    vals = dict(
        zip(sorted(ek.general.free_symbols, key=str), rng.integers(-3, 4, ek.dimension).tolist())
    )
    w = np.array(ek.general.subs(vals).tolist(), dtype=float)
    x = rng.standard_normal(spec.input_shape)
    gx = np.rot90(x[perm], 1, axes=(1, 2)).copy()
    y = torch_conv(spec, x, w).numpy()
    assert np.allclose(torch_conv(spec, gx, w).numpy(), np.rot90(y[perm], 1, axes=(1, 2)))
    assert ek.contains(w)
    assert check("rotation_equivariance", spec, weight=w, in_perm=perm, out_perm=perm).holds


@pytest.mark.parametrize("direction, factor", [("up", 2), ("up", 3), ("down", 2)])
def test_scaling_fails_with_verified_counterexample(direction, factor):
    spec = ca.ConvSpec((1, 6, 6), 1, 3, padding="same")
    r = check("scale_equivariance", spec, factor=factor, direction=direction)
    assert not r.holds
    ce = r.counterexample
    x, w = ce.inputs["x"], ce.inputs["weight"]
    if direction == "up":
        sx = x.repeat(factor, 1).repeat(factor, 2)
        big = ca.ConvSpec((1, 6 * factor, 6 * factor), 1, 3, padding="same")
        lhs = torch_conv(big, sx, w).numpy()
        rhs = torch_conv(spec, x, w).numpy().repeat(factor, 1).repeat(factor, 2)
    else:
        sx = x[:, ::factor, ::factor]
        small = ca.ConvSpec((1, 3, 3), 1, 3, padding="same")
        lhs = torch_conv(small, sx, w).numpy()
        rhs = torch_conv(spec, x, w).numpy()[:, ::factor, ::factor]
    assert not np.allclose(lhs, rhs)
    assert np.allclose(lhs, ce.lhs) and np.allclose(rhs, ce.rhs)


def test_one_by_one_kernel_is_scale_equivariant():
    assert check("scale_equivariance", ca.ConvSpec((2, 4, 4), 3, 1), factor=2).holds


@settings(max_examples=40)
@given(
    st.integers(1, 3),
    st.integers(4, 8),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2**31),
)
def test_max_pool_fraction_against_torch(c, n, k, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, (c, n, n)).astype(float)
    r = check("max_pool_invariance", x, k, shift=d % n, axis=-1)
    xs = np_shift(x, (0, d % n), False)
    a = F.max_pool2d(torch.as_tensor(x)[None], k)[0].numpy()
    b = F.max_pool2d(torch.as_tensor(xs)[None], k)[0].numpy()
    assert r.evidence["fraction unchanged"] == pytest.approx(float(np.mean(a == b)))
    assert r.holds == bool(np.all(a == b))
    if not r.holds:  # the printed position is 1-based and is one torch sees change
        at = r.counterexample.position
        assert a[at] != b[at]
        assert f"at {tuple(i + 1 for i in at)} (1-based)" in r.counterexample.description


@pytest.mark.parametrize("law", ["max_pool_invariance", "avg_pool_equivariance"])
@pytest.mark.parametrize("bad", [ca.ConvSpec((1, 8, 8), 1, 3), "abc", None])
def test_pooling_laws_name_what_they_take(law, bad):
    with pytest.raises((TypeError, ca.ConvAlgebraError), match="x must|input_shape must"):
        check(law, bad)


@pytest.mark.parametrize("k, s, p, shift", [(2, 2, 0, 2), (2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 1, 2)])
def test_avg_pool_equivariance_against_torch(k, s, p, shift):
    r = check("avg_pool_equivariance", (2, 8, 8), k, s, p, shift=shift, axis=1)
    spec, w = ca.identities.avg_pool_spec((2, 8, 8), k, s, p)
    x = np.random.default_rng(0).standard_normal((2, 8, 8))
    pool = lambda v: F.avg_pool2d(torch.as_tensor(v)[None], k, s, p)[0].numpy()  # noqa: E731
    assert np.allclose(pool(x), (conv_matrix(spec, w) @ x.ravel()).reshape(spec.output_shape))
    if shift % s:
        assert not r.holds
        return
    lhs, rhs = pool(np_shift(x, (0, shift), False)), np_shift(pool(x), (0, shift // s), False)
    differs = {tuple(q) for q in np.argwhere(~np.isclose(lhs, rhs))}
    assert r.holds == (not differs) and set(r.failing_positions or ()) == differs


def test_symmetry_needs_square_grids():
    with pytest.raises(ca.ConvAlgebraError, match="square"):
        check("rotation_equivariance", ca.ConvSpec((1, 4, 5), 1, 3))


@pytest.mark.parametrize("amount, axis", [(4, -1), (9, -1), (-4, 0), ((0, 5), -1), ((4, 0), -1)])
def test_max_pool_rejects_shift_as_large_as_the_input(amount, axis):
    x = np.arange(16.0).reshape(1, 4, 4)
    with pytest.raises(ca.ConvAlgebraError, match="smaller than the input size"):
        check("max_pool_invariance", x, 2, shift=amount, axis=axis)
    # the largest valid shift is still answered, and agrees with torch
    r = check("max_pool_invariance", x, 2, shift=3, axis=-1)
    pool = lambda v: F.max_pool2d(torch.as_tensor(v)[None], 2)[0].numpy()  # noqa: E731
    same = pool(np_shift(x, (0, 3), False)) == pool(x)
    assert r.evidence["fraction unchanged"] == pytest.approx(float(same.mean()))


def test_bad_shift_is_rejected():
    with pytest.raises(ca.ConvAlgebraError, match="smaller than the input size"):
        check("translation_equivariance", ca.ConvSpec((1, 4), 1, 3), shift=4)
    with pytest.raises(TypeError, match="shift"):
        check("translation_equivariance", ca.ConvSpec((1, 4), 1, 3), shift=1.5)


@pytest.mark.parametrize(
    "spec",
    [
        ca.ConvSpec((1, 8), 1, 3, tile=2, padding=1, padding_mode="circular"),
        ca.ConvSpec((2, 6, 6), 3, 3, tile=(2, 3), padding=1),
        ca.ConvSpec(
            (3, 7), 2, 3, channel_table=((1, 0, 1), (0, 1, 1)), padding=1, padding_mode="reflect"
        ),
    ],
    ids=["tiled-circular", "tiled-2d", "channel-table"],
)
@pytest.mark.parametrize("amount", [1, 2, 3])
def test_tiled_and_table_layers_against_matrices(spec, amount):
    r = check("translation_equivariance", spec, shift=amount, axis=0)
    circ = spec.padding_mode == "circular"
    rng = np.random.default_rng(amount)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    m = conv_matrix(spec, w)
    delta = (amount,) + (0,) * (spec.ndim - 1)
    lhs = (m @ np_shift(x, delta, circ).ravel()).reshape(spec.output_shape)
    rhs = np_shift((m @ x.ravel()).reshape(spec.output_shape), delta, circ)
    differs = {tuple(p) for p in np.argwhere(~np.isclose(lhs, rhs))}
    assert set(r.failing_positions or ()) == differs
    if spec.tile is not None and amount % spec.tile[0]:
        assert not r.holds  # the tiles rotate under a shift that is not a multiple


def test_symbolic_family_kernel_gets_numeric_counterexample():
    spec = ca.ConvSpec((1, 5, 5), 1, 3, padding=1)
    flip_family = equivariant_kernels(spec, "flip").general
    r = check("rotation_equivariance", spec, weight=flip_family)
    assert not r.holds
    ce = r.counterexample
    lhs = torch_conv(
        spec, np.rot90(ce.inputs["x"], axes=(1, 2)).copy(), ce.inputs["weight"]
    ).numpy()
    rhs = np.rot90(torch_conv(spec, ce.inputs["x"], ce.inputs["weight"]).numpy(), axes=(1, 2))
    assert not np.allclose(lhs, rhs)
    assert check(
        "rotation_equivariance", spec, weight=equivariant_kernels(spec, "dihedral").general
    ).holds


def test_rotation_in_a_plane_of_a_volume():
    spec = ca.ConvSpec((1, 4, 4, 4), 1, 3, padding=1, padding_mode="circular")
    assert equivariant_kernels(spec, "rotation", axes=(0, 2)).dimension == 9
    r = check("rotation_equivariance", spec, axes=(1, 2))
    assert r.evidence["dimension of the kernels for which it holds (this size)"] == 9
