"""
The backward pass as matrix transposes
======================================

The backward pass of a convolution, checked three ways::

    python examples/compute_gradients.py

dL/dx = M(w)^T g and dL/dw = J(x)^T g (J the im2col matrix) on integer data; with PyTorch
installed, also compared with torch.autograd. Then the symbolic equations of the strided
example: each dL/dw as a sum over outputs (eq. 9.11), each dL/da over taps (eq. 9.13).
"""

import numpy as np

import convalgebra as ca

# %%
# Gradients as transposes, exactly
# --------------------------------
spec = ca.ConvSpec((2, 6, 6), out_channels=3, kernel_size=3, stride=2, padding=1)
rng = np.random.default_rng(0)
x = rng.integers(-3, 4, size=spec.input_shape).astype(float)
w = rng.integers(-3, 4, size=spec.weight_shape).astype(float)
g = rng.integers(-3, 4, size=spec.output_shape).astype(float)

dx = ca.input_gradient(spec, w, g)
dw = ca.weight_gradient(spec, x, g)
assert np.array_equal(dx.ravel(), ca.conv_matrix(spec, w).T @ g.ravel())
assert np.array_equal(dw.ravel(), ca.kernel_jacobian(spec, x).T @ g.ravel())
print(f"{spec.describe()}")
print(f"dL/dx = M^T g and dL/dw = J^T g: shapes {dx.shape} and {dw.shape}, exact")

# %%
# The same numbers from torch.autograd
# ------------------------------------
try:
    import torch
except ImportError:
    print("(PyTorch not installed: skipping the autograd comparison)")
else:
    xt = torch.tensor(x[None], requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, stride=2, padding=1)
    out.backward(torch.tensor(g[None]))
    same = np.array_equal(xt.grad[0].numpy(), dx) and np.array_equal(wt.grad.numpy(), dw)
    print(f"equal to torch.autograd: {same}")

# %%
# The symbolic equations of the strided example
# ---------------------------------------------
bw = ca.symbolic_backward(ca.ConvSpec((1, 5, 5), 1, 3, stride=2), bias=False)
for lhs in ("z1", "dL/dw1", "dL/dw9", "dL/da13"):
    print(f"  {bw[lhs]}")
