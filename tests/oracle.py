"""The independent oracle: PyTorch's CPU build (float64), applied as PyTorch users would."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
F = torch.nn.functional

from convalgebra import ConvSpec  # noqa: E402

__all__ = ["torch", "F", "torch_conv", "torch_jacobian", "torch_grads"]


def _pad_pairs(spec: ConvSpec) -> list[int]:
    pads: list[int] = []
    for before, after in reversed(spec.padding):
        pads += [before, after]
    return pads


def _dtype(*values):
    """complex128 when any argument is complex, else float64."""
    complex_ = any(
        (v.is_complex() if isinstance(v, torch.Tensor) else np.iscomplexobj(v))
        for v in values
        if v is not None
    )
    return torch.complex128 if complex_ else torch.float64


def torch_conv(spec: ConvSpec, x, w, bias=None):
    """PyTorch's own op for ``spec`` on a (C, *spatial) tensor, returned without batch axis."""
    dtype = _dtype(x, w, bias)
    xt = torch.as_tensor(x, dtype=dtype)[None]
    # a copy: read-only numpy views (e.g. broadcast tiles) are not valid torch storage
    wt = w if isinstance(w, torch.Tensor) else torch.tensor(np.array(w), dtype=dtype)
    wt = wt.to(dtype)
    bt = None if bias is None else torch.as_tensor(bias, dtype=dtype)
    nd = spec.ndim
    if spec.flip:
        wt = torch.flip(wt, dims=list(range(2, 2 + nd)))
    if spec.transposed:
        op = getattr(F, f"conv_transpose{nd}d")
        if spec.padding_mode != "zeros" or any(b != a for b, a in spec.padding):
            raise ValueError("torch has no such transposed convolution; use the adjoint oracle")
        return op(
            xt,
            wt,
            bt,
            stride=spec.stride,
            padding=tuple(b for b, _ in spec.padding),
            output_padding=spec.output_padding,
            groups=spec.groups,
            dilation=spec.dilation,
        )[0]
    mode = "constant" if spec.padding_mode == "zeros" else spec.padding_mode
    xt = F.pad(xt, _pad_pairs(spec), mode=mode)
    op = getattr(F, f"conv{nd}d")
    return op(xt, wt, bt, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)[0]


def torch_jacobian(spec: ConvSpec, w) -> np.ndarray:
    """Dense Jacobian of torch's op with respect to the input, (n_out, n_in)."""
    wt = torch.as_tensor(w, dtype=torch.float64)
    x0 = torch.zeros(spec.input_shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda x: torch_conv(spec, x, wt), x0)
    n_out = int(np.prod(spec.output_shape))
    return jac.reshape(n_out, -1).numpy()


def torch_grads(spec: ConvSpec, x, w, b, grad_output):
    """(input, weight, bias) gradients of <conv(x, w) + b, grad_output> from torch autograd."""
    dtype = _dtype(x, w, b, grad_output)
    xt = torch.as_tensor(x, dtype=dtype).requires_grad_()
    wt = torch.as_tensor(w, dtype=dtype).requires_grad_()
    bt = torch.as_tensor(b, dtype=dtype).requires_grad_()
    out = torch_conv(spec, xt, wt, bt)
    gx, gw, gb = torch.autograd.grad(out, (xt, wt, bt), torch.as_tensor(grad_output, dtype=dtype))
    return gx.numpy(), gw.numpy(), gb.numpy()
