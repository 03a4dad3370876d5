"""Channel-wise laws decided on one channel pair equal the whole layer's decision.

The reduced route (the 1 -> 1 layer, expanded to every channel pair) is compared with the full
route (:func:`convalgebra.identities.channelwise.full_route`) on random multi-channel layers
over every option, and its counterexample is evaluated on the whole layer twice: exactly by
the law's own expressions at full size, and by torch (its own convolution and tensor ops).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch", reason="the [torch] extra is not installed: pip install '.[test]'")

from brute_identities import assert_sides_differ, batched_conv  # noqa: E402
from oracle import torch  # noqa: E402
from strategies import conv_specs  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra import ops  # noqa: E402
from convalgebra.identities.channelwise import (  # noqa: E402
    decided_spec,
    full_route,
    single_channel,
)

LAWS = ("translation", "rotation", "flip", "transposition", "scale")


@st.composite
def cases(draw):
    """A multi-channel layer (groups, every padding mode, stride, dilation, transposed, bias)
    and a channel-wise law with its options."""
    law = draw(st.sampled_from(LAWS))
    ndims = (2, 3) if law in ("rotation", "transposition") else (1, 2)
    spec = draw(conv_specs(ndims=ndims, transposed=None, max_size=5, max_channels=4, bias=None))
    if spec.transposed:
        assume(all(b == a for b, a in spec.padding))
    assume(spec.in_channels * spec.out_channels > 1)
    assume(math.prod(spec.weight_shape) <= 72 and math.prod(spec.input_shape) <= 150)
    nd = spec.ndim
    pair = draw(st.sampled_from([(a, b) for a in range(nd) for b in range(nd) if a < b] or [()]))
    if law in ("rotation", "transposition"):
        spec = _square(spec, *pair)
    n = spec.input_shape[1:]
    if law == "translation":
        delta = tuple(draw(st.integers(-(m - 1), m - 1)) for m in n)
        options = {"shift": delta, "boundary": draw(st.sampled_from([None, "zeros", "circular"]))}
    elif law == "rotation":
        options = {"k": draw(st.integers(1, 3)), "axes": pair}
    elif law == "flip":
        options = {"axis": draw(st.integers(0, nd - 1))}
    elif law == "transposition":
        options = {"axes": pair}
    else:
        options = {
            "factor": draw(st.integers(1, 3)),
            "direction": draw(st.sampled_from(["up", "down"])),
        }
    return f"{law}_equivariance", spec, options


def _square(spec, a, b):
    """``spec`` with axis ``b`` made like axis ``a`` (size and every option), so that the
    symmetries swapping them map both grids onto themselves."""

    def same(values):
        values = list(values)
        values[b] = values[a]
        return tuple(values)

    try:
        return replace(
            spec,
            input_shape=(spec.in_channels, *same(spec.input_shape[1:])),
            kernel_size=same(spec.kernel_size),
            stride=same(spec.stride),
            padding=same(spec.padding),
            dilation=same(spec.dilation),
            output_padding=same(spec.output_padding),
        )
    except ca.ConvAlgebraError:
        assume(False)


def _run(law, spec, options):
    try:
        return ca.check(law, spec, **options)
    except ca.ConvAlgebraError as exc:
        return exc


def _same(reduced, full) -> None:
    if isinstance(full, Exception):
        assert type(reduced) is type(full) and str(reduced) == str(full)
        return
    assert not isinstance(reduced, Exception), reduced
    assert reduced.holds == full.holds
    assert reduced.failing_positions == full.failing_positions
    assert reduced.claim == full.claim and reduced.reason == full.reason
    assert reduced.evidence == full.evidence
    assert (reduced.counterexample is None) == (full.counterexample is None)


def _torch_transform(law, spec, options, side):
    """The law's transformation of a batch (N, C, *spatial), in torch; ``side`` is "in" or
    "out" (a translation moves the output by the shift over the stride)."""
    nd = spec.ndim
    if law == "translation_equivariance":
        delta = options["shift"]
        if side == "out":
            delta = tuple(
                d * s if spec.transposed else d // s
                for d, s in zip(delta, spec.stride, strict=True)
            )
        circular = (options["boundary"] or spec.padding_mode) == "circular"

        def shift(e):
            for a, d in enumerate(delta):
                e = torch.roll(e, d, dims=2 + a)
                if d and not circular:
                    cut = slice(0, d) if d > 0 else slice(d, None)
                    e[(slice(None),) * (2 + a) + (cut,)] = 0
            return e

        return shift
    if law == "rotation_equivariance":
        a, b = options["axes"]
        return lambda e: torch.rot90(e, options["k"], dims=(2 + a, 2 + b))
    if law == "flip_equivariance":
        return lambda e: torch.flip(e, dims=(2 + options["axis"],))
    if law == "transposition_equivariance":
        a, b = options["axes"]
        return lambda e: e.transpose(2 + a, 2 + b)
    f = options["factor"]

    def scale(e):
        for a in range(nd):
            if options["direction"] == "up":
                e = torch.repeat_interleave(e, f, dim=2 + a)
            else:
                e = e[(slice(None),) * (2 + a) + (slice(None, None, f),)]
        return e

    return scale


def _check_counterexample_on_whole_layer(law, spec, options, r) -> None:
    ce = r.counterexample
    x, w = np.asarray(ce.inputs["x"]), np.asarray(ce.inputs["weight"])
    assert x.shape == spec.input_shape and w.shape == spec.weight_shape
    # exactly, by the law's own expressions lowered at the whole layer's size
    lhs, rhs = ops.evaluate_sides(*r.identity, spec.input_shape[1:], {"x": x}, {"weight": w})
    assert_sides_differ(ce, np.asarray(lhs, float), np.asarray(rhs, float))
    # and by torch
    t_in, t_out = (_torch_transform(law, spec, options, s) for s in ("in", "out"))
    xt = torch.tensor(x[None], dtype=torch.float64)
    wt = torch.tensor(w, dtype=torch.float64)
    moved = t_in(xt.clone())
    left = replace(spec, input_shape=(spec.in_channels, *moved.shape[2:]))
    brute_lhs = batched_conv(left, moved, wt)[0].numpy()
    brute_rhs = t_out(batched_conv(spec, xt, wt))[0].numpy()
    assert_sides_differ(ce, brute_lhs, brute_rhs)


@settings(max_examples=40)
@given(cases())
def test_reduced_route_equals_full_route(case):
    law, spec, options = case
    reduced = _run(law, spec, options)
    with full_route():
        full = _run(law, spec, options)
    _same(reduced, full)
    if isinstance(reduced, Exception) or reduced.counterexample is None:
        return
    if reduced.identity is not None:  # else a shift no output shift matches: no one identity
        assert reduced.counterexample.position is not None
        _check_counterexample_on_whole_layer(law, spec, options, reduced)


@settings(max_examples=20)
@given(cases(), st.data())
def test_given_kernels_keep_the_full_route(case, data):
    law, spec, options = case
    assume(law != "scale_equivariance")
    w = np.array(
        data.draw(
            st.lists(
                st.integers(-2, 2),
                min_size=math.prod(spec.weight_shape),
                max_size=math.prod(spec.weight_shape),
            )
        ),
        dtype=float,
    ).reshape(spec.weight_shape)
    assert decided_spec(law, spec, {"weight": w}) == spec
    reduced = _run(law, spec, {**options, "weight": w})
    with full_route():
        full = _run(law, spec, {**options, "weight": w})
    _same(reduced, full)


def test_large_layers_are_decided_on_one_pair():
    spec = ca.ConvSpec((64, 56, 56), 64, 3, padding=1)
    with pytest.raises(ca.ConvAlgebraError, match="max_products"):
        ca.check("translation_equivariance", spec, weight=np.ones(spec.weight_shape))
    r = ca.check("translation_equivariance", spec)
    one = ca.check("translation_equivariance", single_channel(spec))
    assert not r.holds and len(r.failing_positions) == 64 * len(one.failing_positions)
    assert {p[1:] for p in r.failing_positions} == {p[1:] for p in one.failing_positions}
    assert (
        r.evidence["residual terms at this size"]
        == 64 * 64 * one.evidence["residual terms at this size"]
    )
    ce = r.counterexample
    assert ce.inputs["x"].shape == spec.input_shape
    assert ce.lhs[ce.position] != ce.rhs[ce.position]
    circular = replace(spec, input_shape=(16, 32, 32), out_channels=16, padding_mode="circular")
    assert ca.check("translation_equivariance", circular).holds
