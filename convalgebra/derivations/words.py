"""A layer described in mathematical words for titles and prose: ``Conv2d, 3×3, stride 2, padding 1 on 1×5×5``.

PyTorch's repr (``Conv2d(1, 1, kernel_size=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)))``)
is what :meth:`~convalgebra.spec.ConvSpec.describe` prints for programmers; a derivation is
read by people, and its title should fit on a line.
"""

from __future__ import annotations

from ..spec import ConvSpec
from .general import ints

__all__ = ["spec_words", "sizes"]


def sizes(values) -> str:
    """``(3, 3)`` as ``3×3``; a single size as itself."""
    return "×".join(str(int(v)) for v in values)


def _per_axis(values, name: str) -> str:
    values = tuple(int(v) for v in values)
    return f"{name} {values[0]}" if len(set(values)) == 1 else f"{name} {sizes(values)}"


def _padding(spec: ConvSpec) -> str:
    pads = spec.padding
    if not any(b or a for b, a in pads):
        return ""
    if all(b == a for b, a in pads):
        return _per_axis([b for b, _ in pads], "padding")
    if len(set(pads)) == 1:  # the same on every axis: said once
        b, a = pads[0]
        where = "(each axis)" if len(pads) > 1 else ""
        return f"padding {b} before, {a} after {where}".rstrip()
    return "padding " + "; ".join(
        f"{b} before, {a} after along axis {k + 1}" for k, (b, a) in enumerate(pads)
    )


def spec_words(spec: ConvSpec) -> str:
    """The layer in words, e.g. ``Conv2d, 3×3, stride 2, padding 1 on 1×5×5``.

    Examples
    --------
    >>> spec_words(ConvSpec((1, 5, 5), 1, 3, stride=2, padding=1))
    'Conv2d, 3×3, stride 2, padding 1 on 1×5×5'
    >>> spec_words(ConvSpec((4, 8), 6, 3, groups=2, dilation=2, padding_mode="circular", padding=2, bias=False))
    'Conv1d, 4→6 channels, kernel 3, dilation 2, 2 groups, circular padding 2, no bias on 4×8'
    >>> spec_words(ConvSpec((1, 6, 6), 1, 4, padding="same"))
    'Conv2d, 4×4, padding 1 before, 2 after (each axis) on 1×6×6'
    """
    kind = f"Conv{'Transpose' if spec.transposed else ''}{spec.ndim}d"
    parts = [kind]
    if spec.in_channels != 1 or spec.out_channels != 1:
        parts.append(f"{spec.in_channels}→{spec.out_channels} channels")
    parts.append(
        sizes(ints(spec.kernel_size)) if spec.ndim > 1 else f"kernel {ints(spec.kernel_size)[0]}"
    )
    if max(ints(spec.stride)) > 1:
        parts.append(_per_axis(ints(spec.stride), "stride"))
    if max(ints(spec.dilation)) > 1:
        parts.append(_per_axis(ints(spec.dilation), "dilation"))
    if spec.groups > 1:
        parts.append(f"{spec.groups} groups")
    padding = _padding(spec)
    if padding:
        parts.append(("" if spec.padding_mode == "zeros" else spec.padding_mode + " ") + padding)
    if any(ints(spec.output_padding)):
        parts.append(_per_axis(ints(spec.output_padding), "output padding"))
    if spec.flip:
        parts.append("flipped kernel")
    if spec.tile is not None:
        parts.append("tiles " + sizes(ints(spec.tile)))
    if spec.channel_table is not None:
        parts.append("channel table")
    if not spec.bias:
        parts.append("no bias")
    return ", ".join(parts) + " on " + sizes(spec.input_shape)
