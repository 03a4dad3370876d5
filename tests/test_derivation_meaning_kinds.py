"""What is printed is what was computed, for the kinds that count and size: ``output_size``,
``params`` (a layer and a network), ``receptive_field``, ``cost`` (a block and a network), ``spectrum`` and ``lecture``
(tests/test_lecture_torch.py), each request drawn over its options, rendered, read back and
evaluated on values PyTorch computed: output shapes by running the op, parameters and buffers
by counting torch's tensors, MACs by torch's flop counter, fields and jumps by gradient probes,
singular values as the norms of the torch layer's Jacobian on the Fourier vectors.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from oracle import torch, torch_conv, torch_jacobian
from strategies import conv_specs

import convalgebra as ca
from convalgebra.derivations.cost import standard_conv
from convalgebra.derivations.oracle import Meaning

nn = torch.nn
from test_lecture_torch import networks  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torch_probe import dispatch_macs, positive_copy, probe_boxes  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))

#: Evaluations per kind over the run (the closing figures of the property test).
CHECKED: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print("\nevaluations per kind:", dict(sorted(CHECKED.items())))  # seen with -s


def _check(kind, derivation, meaning):
    n = derivation.verify(meaning)
    CHECKED[kind] += n
    assert n > 0


def _ints(rng, shape):
    return rng.integers(-3, 4, shape).astype(float)


def _torch_run(spec, seed=0):
    """(output shape, MACs counted by torch) of ``spec``'s op on random integers."""
    rng = np.random.default_rng(seed)
    w, a = _ints(rng, spec.weight_shape), _ints(rng, spec.input_shape)
    counter = FlopCounterMode(display=False)
    with counter:
        z = torch_conv(spec, a, w)
    return tuple(z.shape), counter.get_total_flops() // 2


def _torch_layer(spec):
    """The torch module of a plain spec (its parameters are counted)."""
    cls = getattr(nn, f"Conv{'Transpose' if spec.transposed else ''}{spec.ndim}d")
    return cls(
        spec.in_channels, spec.out_channels, spec.kernel_size, groups=spec.groups, bias=spec.bias
    )


def _counts(spec):
    """(weights, parameters) of torch's module for ``spec``."""
    module = _torch_layer(spec)
    return module.weight.numel(), sum(p.numel() for p in module.parameters())


def _runs(spec) -> bool:
    try:
        _torch_run(spec)
    except (ValueError, RuntimeError):
        return False
    return True


# ---------------------------------------------------------------------- output size
@SETTINGS
@given(conv_specs(transposed=None, symmetric=True, max_size=9, max_channels=3))
@example(ca.ConvSpec((3, 224, 224), 64, 7, stride=2, padding=3))
def test_output_size_reads_back_as_torch_computes(spec):
    assume(_runs(spec))
    shape, _ = _torch_run(spec)
    meaning = {f"O_{a + 1}": shape[1 + a] for a in range(spec.ndim)}
    _check("output_size", ca.derive("output_size", spec), meaning)


# -------------------------------------------------------------------------- params
@SETTINGS
@given(conv_specs(transposed=None, symmetric=True, max_size=6, max_channels=4, bias=None))
@example(ca.ConvSpec((3, 32, 32), 10, 5, padding=2))
def test_layer_params_read_back_as_torch_counts(spec):
    assume(spec.tile is None and spec.channel_table is None and _runs(spec))
    weights, params = _counts(spec)
    _, macs = _torch_run(spec)
    meaning = {
        "weights": weights,
        "layer": params,
        "per filter": weights // spec.out_channels + 1,
        "MACs": macs,
    }
    _check("params", ca.derive("params", spec), meaning)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(networks())
def test_network_params_read_back_as_torch_counts(case):
    model, size = case
    try:
        torch.no_grad()(model)(torch.rand(1, *size))
    except RuntimeError:
        return
    graph = ca.from_torch(model, size)
    meaning = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "MACs": dispatch_macs(model, size),
    }
    _check("params (network)", ca.derive("params", graph), meaning)


def _outputs(model, size) -> dict:
    """Each named module's (input, output) of one forward pass, by forward hooks."""
    seen: dict = {}
    hooks = [
        module.register_forward_hook(
            lambda m, i, o, n=name: seen.__setitem__(n, (i[0].detach(), o.detach()))
        )
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(torch.rand(1, *size))
    finally:
        for h in hooks:
            h.remove()
    return seen


def torch_cost_meaning(model, size, graph, dtype_bytes) -> dict:
    """The network cost derivation's names valued by torch alone (the graph gives only the
    rows): per row the output shape (hooks), parameters and buffers (the modules' tensors),
    MACs (torch's flop counter on the row's convolution) and output bytes; the totals by
    counting the model's tensors and the dispatch flop counter."""
    from convalgebra.network.tabulate import layer_rows

    modules, seen = dict(model.named_modules()), _outputs(model, size)
    meaning: dict = {"shape_0": tuple(size), "output bytes_0": math.prod(size) * dtype_bytes}
    kept = [math.prod(size)]
    for i, row in enumerate(layer_rows(graph)[1:], 1):
        mods = [modules[n] for n in row.nodes if n in modules]
        meaning[f"parameters_{i}"] = sum(p.numel() for m in mods for p in m.parameters())
        meaning[f"buffers_{i}"] = sum(b.numel() for m in mods for b in m.buffers())
        lead = modules.get(row.lead)
        meaning[f"MACs_{i}"] = 0
        if isinstance(lead, nn.Conv2d):
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                lead(seen[row.lead][0])
            meaning[f"MACs_{i}"] = counter.get_total_flops() // 2
        if len(mods) == len(row.nodes):  # every node a module: its output seen by torch
            outputs = [seen[n][1].numel() for n in row.nodes]
            meaning[f"shape_{i}"] = tuple(seen[row.last][1].shape[1:])
            meaning[f"output bytes_{i}"] = sum(outputs) * dtype_bytes
            kept += outputs
        else:
            kept.append(None)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    macs = dispatch_macs(model, size)
    meaning.update(
        {
            "parameters": params,
            "buffers": buffers,
            "MACs": macs,
            "FLOPs": 2 * macs,
            "parameter bytes": (params + buffers) * dtype_bytes,
        }
    )
    if None not in kept:
        meaning["activation bytes"] = sum(kept) * dtype_bytes
    return meaning


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(networks(), st.sampled_from([1, 2, 4]))
def test_network_cost_reads_back_as_torch_counts(case, dtype_bytes):
    """Every row of the network cost derivation (shape, parameters, buffers, MACs, output
    bytes) and every total, read back and evaluated on torch's counts."""
    model, size = case
    try:
        torch.no_grad()(model)(torch.rand(1, *size))
    except RuntimeError:
        return
    graph = ca.from_torch(model, size)
    meaning = torch_cost_meaning(model, size, graph, dtype_bytes)
    d = ca.derive("cost", graph, dtype_bytes=dtype_bytes)
    _check("cost (network)", d, meaning)
    assert d.result["params"] == meaning["parameters"] and d.result["macs"] == meaning["MACs"]


# ------------------------------------------------------------------ receptive field
@st.composite
def stacks(draw):
    """One to three zero-padded convolutions (1-D or 2-D) on a large input, each output wide
    enough that the probe's centre unit never reads padding: its field is then unclipped."""
    nd = draw(st.sampled_from([1, 2]))
    shape = (1, *(draw(st.integers(40, 90)) for _ in range(nd)))
    specs = []
    for _ in range(draw(st.integers(1, 3))):
        k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
        s = tuple(draw(st.integers(1, 2)) for _ in range(nd))
        d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
        p = tuple(draw(st.integers(0, 2)) for _ in range(nd))
        try:
            spec = ca.ConvSpec(shape, 1, k, stride=s, dilation=d, padding=p)
        except ca.ConvAlgebraError:
            break
        reach = [dd * (kk - 1) + 1 + 2 * pp for kk, dd, pp in zip(k, d, p, strict=True)]
        if any(n < 3 * r for n, r in zip(spec.output_shape[1:], reach, strict=True)):
            break  # the centre unit's window would reach the padding of some layer
        specs.append(spec)
        shape = spec.output_shape
    assume(specs)
    return specs


def _torch_stack(specs):
    layers = []
    for spec in specs:
        cls = getattr(nn, f"Conv{spec.ndim}d")
        layers.append(
            cls(
                1,
                1,
                spec.kernel_size,
                spec.stride,
                tuple(b for b, _ in spec.padding),
                spec.dilation,
            )
        )
    return nn.Sequential(*layers).eval()


@SETTINGS
@given(stacks())
@example([ca.ConvSpec((1, 32, 32), 1, 3, padding=1)] * 3)
def test_receptive_field_reads_back_as_torch_probes(specs):
    model = _torch_stack(specs)
    size = specs[0].input_shape
    nd = len(size) - 1
    meaning = {}
    for l, spec in enumerate(specs, 1):
        out = spec.output_shape[1:]
        boxes = []
        for shift in [(0,) * nd] + [tuple(int(b == a) for b in range(nd)) for a in range(nd)]:
            pos = tuple((n - 1) // 2 + t for n, t in zip(out, shift, strict=True))
            if any(q >= n for q, n in zip(pos, out, strict=True)):
                boxes.append(None)
                continue
            axes = tuple(range(1, nd + 1))
            boxes.append(
                probe_boxes(positive_copy(model), size, {str(l - 1): (axes, pos)})[str(l - 1)]
            )
        box = boxes[0]
        if box is None or not all(
            0 < a and b < n - 1 for (a, b), n in zip(box, size[1:], strict=True)
        ):
            break  # clipped by the border: later layers read through it
        for a in range(nd):
            sup = f"^({a + 1})" if nd > 1 else ""
            meaning[f"r_{l}{sup}"] = box[a][1] - box[a][0] + 1
            if boxes[1 + a] is not None:
                meaning[f"j_{l}{sup}"] = boxes[1 + a][a][0] - box[a][0]
    assume(meaning)
    _check("receptive_field", ca.derive("receptive_field", specs), meaning)


# ---------------------------------------------------------------------------- cost
@st.composite
def blocks(draw):
    """A chain of one or two 2-D convolutions, or a depthwise-separable pair."""
    c = draw(st.integers(1, 4))
    shape = (c, draw(st.integers(4, 9)), draw(st.integers(4, 9)))
    if draw(st.booleans()):
        k = draw(st.integers(1, 3))
        dw = ca.ConvSpec(shape, c, k, padding=k // 2, groups=c, bias=False)
        return [dw, ca.ConvSpec(dw.output_shape, draw(st.integers(1, 6)), 1, bias=False)]
    specs = []
    for _ in range(draw(st.integers(1, 2))):
        o = draw(st.integers(1, 4))
        k = draw(st.integers(1, 3))
        spec = ca.ConvSpec(
            shape, o, k, padding=k // 2, stride=draw(st.integers(1, 2)), bias=draw(st.booleans())
        )
        specs.append(spec)
        shape = spec.output_shape
    return specs


@SETTINGS
@given(blocks(), st.booleans())
def test_cost_reads_back_as_torch_counts(block, batchnorm):
    meaning: dict = {}
    totals = [0, 0]
    for n, spec in enumerate(block, 1):
        _, params = _counts(spec)
        _, macs = _torch_run(spec)
        meaning[f"params_{n}"], meaning[f"MACs_{n}"] = params, macs
        totals[0] += params
        totals[1] += macs
        bn = nn.BatchNorm2d(spec.out_channels)
        meaning[f"BN params_{n}"] = sum(p.numel() for p in bn.parameters())
        meaning[f"BN buffers_{n}"] = sum(b.numel() for b in bn.buffers())
    std = standard_conv(block)
    _, std_params = _counts(std)
    _, std_macs = _torch_run(std)
    meaning.update(
        {
            "params_std": std_params,
            "MACs_std": std_macs,
            "params": totals[0],
            "MACs": totals[1],
            "params ratio": Fraction(totals[0], std_params),
            "MACs ratio": Fraction(totals[1], std_macs),
            "ratio": Fraction(totals[1], std_macs),
        }
    )
    # the separable ratio's general form: channels, taps and output positions, read off torch
    first, last = _torch_layer(block[0]), _torch_layer(block[-1])
    out_shape, _ = _torch_run(block[-1])
    meaning.update(
        {
            "C_in": first.in_channels,
            "C_out": last.out_channels,
            "K": first.weight[0, 0].numel(),
            "H": out_shape[1],
            "W": out_shape[2],
        }
    )
    _check("cost", ca.derive("cost", block, batchnorm=batchnorm), meaning)


# ------------------------------------------------------------------------ spectrum
@SETTINGS
@given(st.integers(2, 9), st.integers(1, 4), st.integers(1, 2), st.integers(0, 2**16))
@example(7, 2, 2, 0)  # cos(2*pi/7) in the printed text: the parser now reads cos and sin
def test_spectrum_reads_back_as_torch_computes(n, k, d, seed):
    """One-channel circular layers: the printed singular value of frequency ξ is the norm
    of the torch layer's Jacobian applied to the ξ-th Fourier vector."""
    p = d * (k - 1) // 2
    assume(d * (k - 1) % 2 == 0 and p <= n)
    spec = ca.ConvSpec((1, n), 1, k, padding=p, dilation=d, padding_mode="circular", bias=False)
    w = np.random.default_rng(seed).integers(-3, 4, spec.weight_shape).astype(float)
    m = torch_jacobian(spec, w)
    grids = {}
    for xi in range(n):
        f = np.exp(-2j * np.pi * xi * np.arange(n) / n) / math.sqrt(n)
        grids[f"sigma_{xi}"] = float(np.linalg.norm(m @ f))
    meaning = Meaning({"w": w.reshape(-1)}, grids)
    _check("spectrum", ca.derive("spectrum", spec), meaning)


# --------------------------------------------------------------------------- check
def _shift(x, shift, cyclic):
    """``x`` (channels first) moved by ``shift`` along the spatial axes, torch's way."""
    t = torch.as_tensor(x, dtype=torch.float64)
    dims = tuple(range(1, t.dim()))
    if cyclic:
        return torch.roll(t, shift, dims)
    out = t
    for dim, s in zip(dims, shift, strict=True):
        out = torch.roll(out, s, dim)
        index = [slice(None)] * out.dim()
        index[dim] = slice(0, s) if s > 0 else slice(out.shape[dim] + s, None)
        out[tuple(index)] = 0
    return out


@SETTINGS
@given(
    conv_specs(ndims=(1, 2), modes=("zeros", "circular"), max_size=6, max_channels=2),
    st.integers(1, 2),
)
@example(ca.ConvSpec((1, 6), 1, 3, padding=1), 1)
def test_check_counterexample_reads_back_as_torch_computes(spec, shift):
    """A translation-equivariance counterexample: the printed left and right sides at the
    failing position, evaluated by torch on the printed input and kernel."""
    assume(max(spec.stride) == 1 and spec.tile is None and spec.channel_table is None)
    assume(shift < min(spec.input_shape[1:]))
    result = ca.check("translation_equivariance", spec, shift)
    cx = result.counterexample
    assume(cx is not None and cx.position is not None)
    x, w = cx.inputs["x"], cx.inputs["weight"]
    cyclic = "cyclic" in result.claim
    moved = (shift,) + (0,) * (spec.ndim - 1)
    lhs = torch_conv(spec, _shift(x, moved, cyclic).numpy(), w)
    rhs = _shift(torch_conv(spec, x, w), moved, cyclic)
    shown = tuple(int(i) + 1 for i in cx.position)
    meaning = {
        f"left side at {shown}": float(lhs[cx.position]),
        f"right side at {shown}": float(rhs[cx.position]),
    }
    _check("check", ca.derive(result), meaning)
