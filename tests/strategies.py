"""Hypothesis strategies for random but valid convolution configurations."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from convalgebra import ConvAlgebraError, ConvSpec

__all__ = ["conv_specs", "int_arrays"]


@st.composite
def conv_specs(
    draw,
    ndims=(1, 2, 3),
    modes=("zeros", "circular", "reflect", "replicate"),
    transposed: bool | None = False,
    max_size: int = 7,
    max_channels: int = 4,
    symmetric: bool = False,
    bias: bool | None = True,
):
    """A valid ConvSpec over every option (channels, groups, stride, dilation, padding...).

    ``bias=None`` draws it (with and without a bias); the default keeps ``bias=True``.
    """
    nd = draw(st.sampled_from(ndims))
    small = nd == 3
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, max(1, max_channels // groups)))
    cout = groups * draw(st.integers(1, max(1, max_channels // groups)))
    is_t = draw(st.booleans()) if transposed is None else transposed
    mode = "zeros" if is_t else draw(st.sampled_from(modes))
    kernel = tuple(draw(st.integers(1, 3 if small else 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    limit = 4 if small else max_size
    size = tuple(draw(st.integers(1, limit + 3)) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    if symmetric or (is_t and draw(st.booleans())):
        padding = tuple((p, p) for p, _ in padding)
    elif not is_t and draw(st.integers(0, 4)) == 0:
        padding = draw(st.sampled_from(["valid", "same", "full"]))
        if padding == "same":
            stride = (1,) * nd
    output_padding = 0
    if is_t:
        output_padding = tuple(
            draw(st.integers(0, max(0, max(s, d) - 1))) for s, d in zip(stride, dilation)
        )
    flip = draw(st.booleans())
    has_bias = draw(st.booleans()) if bias is None else bias
    try:
        spec = ConvSpec(
            (cin, *size),
            cout,
            kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            padding_mode=mode,
            transposed=is_t,
            output_padding=output_padding,
            flip=flip,
            bias=has_bias,
        )
    except ConvAlgebraError:
        assume(False)
    return spec


def int_arrays(draw, shape, lo=-3, hi=3):
    """Integer-valued float64 array drawn by a hypothesis ``data`` object."""
    import numpy as np

    n = int(np.prod(shape))
    values = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    return np.array(values, dtype=np.float64).reshape(shape)
