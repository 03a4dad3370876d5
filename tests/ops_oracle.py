"""An independent evaluator of ``convalgebra.ops`` expressions in torch (float64).

Each operator is evaluated with torch's own function where torch has one (conv, conv_transpose,
avg_pool, pad, roll, flip, rot90, pixel_shuffle/unshuffle, interpolate, cat) or by a few lines
of slicing where it has none (zero insertion, zero-filled shift, kernel maps); ``adjoint`` is a
vector-Jacobian product by autograd. Nothing here reads the library's index tables. A size
where torch refuses an operation raises :class:`OracleUndefined`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
F = torch.nn.functional

from convalgebra.ops import expressions as E  # noqa: E402
from convalgebra.ops import kernels as K  # noqa: E402
from convalgebra.ops import layers as L  # noqa: E402


class OracleUndefined(Exception):
    pass


def kernel_value(k, values: dict) -> torch.Tensor:
    """A kernel expression's entries from the symbolic kernels' values."""
    if isinstance(k, K._Symbolic):
        return torch.as_tensor(np.asarray(values[k.name], dtype=np.float64))
    if isinstance(k, K._Constant):
        return torch.tensor([float(v) for v in k.values], dtype=torch.float64).reshape(k.shape)
    if isinstance(k, K._KernelSum) and k.cat:
        ks, dim = k.cat
        return torch.cat([kernel_value(part, values) for part in ks], dim=dim)
    if isinstance(k, K._KernelSum):
        return sum(float(s) * kernel_value(part, values) for part, s in k.parts)
    if isinstance(k, K._KernelConv):
        v, w = kernel_value(k.v, values), kernel_value(k.w, values)
        u = torch.zeros(k.shape, dtype=torch.float64)
        for s in itertools.product(*(range(n) for n in w.shape[2:])):
            for t in itertools.product(*(range(n) for n in v.shape[2:])):
                r = tuple(a + b for a, b in zip(s, t))
                u[(slice(None), slice(None), *r)] += torch.einsum(
                    "om,mi->oi",
                    w[(slice(None), slice(None), *s)],
                    v[(slice(None), slice(None), *t)],
                )
        return u
    if isinstance(k, K._Gathered):
        return _kernel_map(k, kernel_value(k.base, values))
    raise TypeError(f"no oracle for kernel {k!r}")


def _kernel_map(k, w: torch.Tensor) -> torch.Tensor:
    spatial = w.shape[2:]
    if k.kind == "dilate":
        (d,) = k.args
        out = torch.zeros(k.shape, dtype=torch.float64)
        out[(slice(None), slice(None), *(slice(None, None, di) for di in d))] = w
        return out
    if k.kind == "enlarge":
        (size,) = k.args
        flat = []
        for s, n in reversed(list(zip(size, spatial))):  # torch's "same" centring
            before = (s - 1) // 2 - (n - 1) // 2
            flat += [before, s - n - before]
        return F.pad(w, flat)
    if k.kind == "flip":
        return torch.flip(w, tuple(range(2, w.dim())))
    if k.kind == "transpose":
        return w.transpose(0, 1).contiguous()
    if k.kind == "ungroup":
        (g,) = k.args
        c_out, per = w.shape[:2]
        out = torch.zeros(k.shape, dtype=torch.float64)
        for o in range(c_out):
            grp = o // (c_out // g)
            out[o, grp * per : (grp + 1) * per] = w[o]
        return out
    if k.kind == "polyphase":
        f, p = k.args
        return w[(slice(None), slice(None), *(slice(pi, None, fi) for pi, fi in zip(p, f)))]
    raise TypeError(f"no oracle for kernel map {k.kind!r}")


def _conv(x: torch.Tensor, w: torch.Tensor, node) -> torch.Tensor:
    opts = dict(node.options)
    d = x.dim() - 1
    mode = opts.pop("padding_mode", "zeros")
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
    if node.transposed:
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[d]
        pairs = node.probe.padding
        if any(b != a for b, a in pairs):
            raise OracleUndefined("torch's transposed convolution pads symmetrically")
        opts["padding"] = tuple(b for b, _ in pairs)
        return fn(x[None], w, **opts)[0]
    padding = opts.pop("padding", 0)
    if isinstance(padding, str):
        if mode != "zeros":
            raise OracleUndefined("string padding with a padding mode")
        return fn(x[None], w, padding=padding, **opts)[0]
    pairs = node.probe.padding  # the (before, after) pairs the options normalise to
    flat = [v for pair in reversed(pairs) for v in pair]
    if mode == "zeros":
        x = F.pad(x[None], flat)[0]
    else:
        x = F.pad(x[None], flat, mode=mode)[0]
    return fn(x[None], w, **opts)[0]


def _shift(x, s, mode):
    for a, k in enumerate(s):
        axis = 1 + a
        y = torch.roll(x, k, dims=axis)
        if mode == "zeros":
            n = x.shape[axis]
            index = [slice(None)] * x.dim()
            index[axis] = slice(0, min(k, n)) if k >= 0 else slice(max(n + k, 0), n)
            y[tuple(index)] = 0
        x = y
    return x


def evaluate(node, inputs: dict, values: dict) -> torch.Tensor:
    """The expression's value for the given signal values (by name) and kernel values."""
    try:
        return _evaluate(node, inputs, values)
    except RuntimeError as exc:  # torch's refusal of a size
        raise OracleUndefined(str(exc)) from None


def _evaluate(node, inputs, values):  # noqa: C901 - one branch per operator
    ev = lambda n: _evaluate(n, inputs, values)  # noqa: E731
    if isinstance(node, E.Signal):
        value = inputs[node.name]
        if isinstance(value, torch.Tensor):  # the probe of an adjoint, kept for autograd
            return value
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    if isinstance(node, L._Conv):
        return _conv(ev(node.child), kernel_value(node.weight, values), node)
    if isinstance(node, L._AvgPool):
        x = ev(node.child)
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[x.dim() - 1]
        kw = dict(
            kernel_size=node.kernel_size,
            stride=node.stride,
            padding=node.padding,
            ceil_mode=node.ceil_mode,
            count_include_pad=node.count_include_pad,
        )
        if node.divisor_override is not None:
            if x.dim() == 2:
                raise OracleUndefined("avg_pool1d has no divisor_override")
            kw["divisor_override"] = node.divisor_override
        return fn(x[None], **kw)[0]
    if isinstance(node, E._Sum):
        parts = [float(s) * ev(op) for op, s in node.parts]
        if len({p.shape for p in parts}) != 1:
            raise OracleUndefined("shapes of a sum differ")
        return sum(parts)
    if isinstance(node, E._Cat):
        parts = [ev(op) for op in node.parts]
        if len({p.shape[1:] for p in parts}) != 1:
            raise OracleUndefined("shapes of a cat differ")
        return torch.cat(parts, dim=0)
    if isinstance(node, E._Adjoint):
        src = node.source.name
        y_name = node.target.name if node.target is not None else src
        y = torch.as_tensor(np.asarray(inputs[y_name], dtype=np.float64))
        shape = tuple(np.asarray(inputs[src]).shape)
        probe = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        out = _evaluate(node.expr, {**inputs, src: probe}, values)
        if out.shape != y.shape:
            raise OracleUndefined("the adjoint's signal has another shape")
        (grad,) = torch.autograd.grad((out * y).sum(), probe, allow_unused=True)
        return torch.zeros(shape, dtype=torch.float64) if grad is None else grad.detach()
    if isinstance(node, E.Gather):
        return _gather(node, ev(node.child))
    raise TypeError(f"no oracle for {node!r}")


def _gather(node, x):  # noqa: C901 - one branch per operator
    name, args = node.kind, node.args
    if name == "pad":
        pad_, mode = args
        if mode in ("constant", "zeros"):
            return F.pad(x[None], list(pad_))[0]
        if min(pad_) < 0:
            raise OracleUndefined("negative pad")
        return F.pad(x[None], list(pad_), mode=mode)[0]
    if name == "crop":
        out = F.pad(x[None], [-v for v in args[0]])[0]
        if 0 in out.shape:
            raise OracleUndefined("empty crop")
        return out
    if name == "shift":
        return _shift(x.clone(), *args)
    if name == "flip":
        return torch.flip(x, args[0])
    if name == "rot90":
        return torch.rot90(x, args[0], args[1])
    if name == "subsample":
        f, o = args
        out = x[(slice(None), *(slice(oi, None, fi) for oi, fi in zip(o, f)))]
        if 0 in out.shape:
            raise OracleUndefined("empty subsample")
        return out
    if name == "upsample_zeros":
        (f,) = args
        out = torch.zeros((x.shape[0], *(n * fi for n, fi in zip(x.shape[1:], f))), dtype=x.dtype)
        out[(slice(None), *(slice(None, None, fi) for fi in f))] = x
        return out
    if name == "upsample_nearest":
        (f,) = args
        return F.interpolate(x[None], scale_factor=tuple(float(v) for v in f), mode="nearest")[0]
    if name == "pixel_shuffle":
        (r,) = args
        if x.dim() == 3:
            return F.pixel_shuffle(x[None], r)[0]
        return _shuffle_nd(x, r)
    if name == "pixel_unshuffle":
        (r,) = args
        if any(n % r for n in x.shape[1:]):
            raise OracleUndefined("pixel_unshuffle needs divisible sizes")
        if x.dim() == 3:
            return F.pixel_unshuffle(x[None], r)[0]
        return _unshuffle_nd(x, r)
    if name == "channels":
        return x[list(args[0])]
    raise TypeError(f"no oracle for {node.text}")


def _shuffle_nd(x, r):
    d = x.dim() - 1
    c = x.shape[0] // r**d
    n = x.shape[1:]
    g = x.reshape((c,) + (r,) * d + tuple(n))
    order = [0] + [v for a in range(d) for v in (1 + d + a, 1 + a)]
    return g.permute(order).reshape((c, *(s * r for s in n)))


def _unshuffle_nd(x, r):
    d = x.dim() - 1
    c, n = x.shape[0], x.shape[1:]
    g = x.reshape((c,) + tuple(v for s in n for v in (s // r, r)))
    order = [0] + [2 + 2 * a for a in range(d)] + [1 + 2 * a for a in range(d)]
    return g.permute(order).reshape((c * r**d, *(s // r for s in n)))
