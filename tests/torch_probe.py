"""Independent oracles for imported torch modules (used by the from_torch tests).

- :func:`dispatch_macs`: multiply-accumulates counted at dispatch by torch's flop counter
  (convolutions, ``mm``/``addmm``/``bmm``, attention) while the real module runs (with
  gradients enabled, so that ``nn.MultiheadAttention`` takes its unfused path);
- :func:`probe_boxes`: the gradient support of one output unit of a module's output, in the
  linearised network (positive weights, activations as the identity, max pools as average
  pools): the exact input box that unit reads.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)

import torch.nn.functional as F  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

_IDENTITY = {
    "relu",
    "relu_",
    "relu6",
    "hardtanh",
    "hardtanh_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "gelu",
    "silu",
    "silu_",
    "hardswish",
    "hardswish_",
    "hardsigmoid",
    "hardsigmoid_",
    "leaky_relu",
    "leaky_relu_",
    "elu",
    "elu_",
    "softplus",
    "mish",
    "mish_",
    "_hardswish",
}


class Linearise(TorchFunctionMode):
    """Activations become the identity, max pooling becomes average pooling."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _IDENTITY:
            return args[0]
        if "max_pool" in name and "adaptive" not in name:
            keys = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
            b = {
                **dict(zip(keys, args[1:], strict=False)),
                **{k: v for k, v in kwargs.items() if k in keys},
            }
            n = args[0].dim() - 2
            dilation = b.get("dilation", 1)
            if dilation not in (1, (1,) * n, [1] * n) and not b.get("ceil_mode", False):
                return _dilated_mean(args[0], n, b)  # avg_pool has no dilation
            pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
            return pool(
                args[0],
                b["kernel_size"],
                b.get("stride") or None,
                b.get("padding", 0),
                bool(b.get("ceil_mode", False)),
            )
        if "adaptive_max_pool" in name:
            n = args[0].dim() - 2
            size = args[1] if len(args) > 1 else kwargs["output_size"]
            return (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[n - 1](
                args[0], size
            )
        return func(*args, **kwargs)


def _dilated_mean(x, n: int, b: dict):
    """A dilated window's mean, as a depthwise convolution with a constant kernel (its
    gradient reads exactly the dilated taps, as max pooling's window does)."""
    k = b["kernel_size"]
    k = (k,) * n if isinstance(k, int) else tuple(k)
    channels = x.shape[1]
    weight = torch.ones(channels, 1, *k, dtype=x.dtype) / math.prod(k)
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    stride = b.get("stride") or k
    return conv(x, weight, None, stride, b.get("padding", 0), b["dilation"], channels)


def dispatch_macs(model, shape) -> int:
    """MACs of one forward pass at ``(1, *shape)``, counted by torch at dispatch."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    counter = FlopCounterMode(display=False)
    # gradients on and the math attention kernel: the fused paths hide their matmuls
    with counter, sdpa_kernel(SDPBackend.MATH):
        model(torch.rand(1, *shape))
    return int(counter.get_total_flops()) // 2


def positive_copy(model):
    """A float64 copy whose parameters are positive (no cancellation in the probe).

    Weights (mean 1) are divided by their fan-in so that deep networks neither overflow
    nor underflow float64.
    """
    m = copy.deepcopy(model).double().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_((torch.rand(p.shape, generator=gen, dtype=p.dtype) * 0.5 + 0.75) / fan_in)
    return m.requires_grad_(False)  # the probe differentiates with respect to the input only


def _keep_last(seen: dict, name: str):
    """A forward hook keeping a module's output of its last call (a module path names the
    output of the module's last call); returns None: the output is unchanged."""

    def hook(module, inputs, result):
        seen[name] = result

    return hook


def probe_boxes(model, shape, requests: dict, batch: int = 16) -> dict:
    """Input boxes read by ``requests``: ``{module name: (output axes, position)}``.

    The output of a module called several times is the one of its last call.
    ``output axes`` are the tensor axes (without the batch axis) of the module's output that
    hold the spatial axes, ``position`` the unit probed along each. Returns one inclusive
    ``(first, last)`` pair per spatial axis, or None when the unit reads nothing.
    """
    modules = dict(model.named_modules())
    names = list(requests)
    out = {}
    for start in range(0, len(names), batch):
        chunk = names[start : start + batch]
        seen: dict = {}
        hooks = [modules[n].register_forward_hook(_keep_last(seen, n)) for n in chunk]
        x = (torch.rand(len(chunk), *shape, dtype=torch.float64) + 0.5).requires_grad_()
        try:
            with Linearise():
                model(x)
        finally:
            for h in hooks:
                h.remove()
        total = 0
        for i, n in enumerate(chunk):
            axes, pos = requests[n]
            res = seen[n][0] if isinstance(seen[n], tuple) else seen[n]
            index: list = [i] + [slice(None)] * (res.dim() - 1)
            for t, p in zip(axes, pos, strict=False):
                index[t + 1] = p
            total = total + res[tuple(index)].sum()
        total.backward()
        grad = x.grad.abs().sum(1).numpy()
        for i, n in enumerate(chunk):
            nz = np.nonzero(grad[i])
            out[n] = tuple((int(a.min()), int(a.max())) for a in nz) if nz[0].size else None
    return out
