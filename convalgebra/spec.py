"""ConvSpec: a frozen, validated convolution configuration with PyTorch's semantics.

A spec holds everything that determines the *structure* of a convolution layer (shapes,
stride, padding, dilation, groups, padding mode, transposition, weight sharing) and nothing
that is data. All shape arithmetic of the library lives here.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import ConvAlgebraError, shown
from .taps import read_mask, written_mask

__all__ = [
    "MAX_SIZE",
    "PADDING_MODES",
    "ConvSpec",
    "normalize_tuple",
    "plain_array",
    "pool_output_size",
    "pool_stride",
]

#: Sizes (and products of sizes) from here on cannot be indexed by the machine: refused.
MAX_SIZE = 2**62

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
PADDING_WORDS = ("valid", "same", "full")

IntOrTuple = int | Sequence[int]


def _is_int(value: Any) -> bool:
    """True for Python and numpy integers (``operator.index`` works), False for bools and floats.

    An array holding more than one integer raises a ``TypeError`` naming the value.
    """
    if isinstance(value, (bool, np.bool_)):
        return False
    try:
        operator.index(value)
    except TypeError:
        size = getattr(value, "size", None)
        if (
            isinstance(size, int)
            and size > 1
            and np.issubdtype(np.asarray(value).dtype, np.integer)
        ):
            raise TypeError(
                f"expected a single integer, got an array of {size} values: {shown(value)}"
            ) from None
        return False
    return True


def plain_array(value: Any) -> Any:
    """A torch tensor as a numpy array (detached from autograd, on the CPU; bfloat16 and the
    other types numpy lacks widened exactly to float32 or complex64); anything else unchanged.

    Every public entry point reads arrays through this, so a tensor that requires grad is data
    like any other (torch itself is never imported here).

    Examples
    --------
    >>> plain_array([1, 2])
    [1, 2]
    """
    if isinstance(value, np.ndarray) or not hasattr(value, "detach"):
        return value
    if type(value).__module__.split(".")[0] != "torch":
        return value
    tensor = value.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:  # a dtype numpy does not have (bfloat16, float8, complex32)
        return (tensor.cfloat() if tensor.is_complex() else tensor.float()).numpy()


def normalize_tuple(value: Any, n: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """Expand an int or check a sequence of ``n`` ints, each at least ``minimum``.

    Examples
    --------
    >>> normalize_tuple(3, 2, "kernel_size")
    (3, 3)
    >>> normalize_tuple((1, 2), 2, "stride")
    (1, 2)
    """
    if _is_int(value):
        items = (operator.index(value),) * n
    elif isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ConvAlgebraError(
                f"{name} must have {n} entries (one per spatial dimension), got {shown(tuple(value))}"
            )
        if not all(_is_int(v) for v in value):
            raise TypeError(f"{name} must hold integers, got {shown(tuple(value))}")
        items = tuple(operator.index(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {shown(value)}")
    bad = [v for v in items if v < minimum]
    if bad:
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConvAlgebraError(f"{name} must be {rule} in every dimension, got {shown(value)}")
    return items


def _normalize_padding(
    padding: Any, kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """Return per-dimension ``(before, after)`` pairs for any accepted padding form."""
    n = len(kernel)
    if isinstance(padding, str):
        word = padding.lower()
        if word not in PADDING_WORDS:
            raise ConvAlgebraError(
                f"padding must be an int, a tuple or one of {PADDING_WORDS}, got {shown(padding)}"
            )
        if word == "valid":
            return ((0, 0),) * n
        total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        if word == "full":
            return tuple((t, t) for t in total)
        # PyTorch puts the odd unit of 'same' padding after (on the right).
        return tuple((t // 2, t - t // 2) for t in total)
    if _is_int(padding):
        p = operator.index(padding)
        if p < 0:
            raise ConvAlgebraError(f"padding must be non-negative, got {shown(padding)}")
        return ((p, p),) * n
    if isinstance(padding, (tuple, list)):
        if len(padding) != n:
            raise ConvAlgebraError(
                f"padding must have {n} entries (one per spatial dimension), got {shown(tuple(padding))}"
            )
        pairs = []
        for entry in padding:
            if _is_int(entry):
                pair = (operator.index(entry), operator.index(entry))
            elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(map(_is_int, entry)):
                pair = (operator.index(entry[0]), operator.index(entry[1]))
            else:
                raise TypeError(
                    f"padding entries must be ints or (before, after) pairs, got {shown(entry)}"
                )
            if min(pair) < 0:
                raise ConvAlgebraError(f"padding must be non-negative, got {shown(tuple(padding))}")
            pairs.append(pair)
        return tuple(pairs)
    raise TypeError(f"padding must be an int, a tuple or a string, got {shown(padding)}")


@dataclass(frozen=True, init=False)
class ConvSpec:
    """A convolution layer's configuration, with PyTorch's names and semantics.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C_in, *spatial)`` with 1, 2 or 3 spatial dimensions (no batch axis).
    out_channels : int
        Number of output channels ``C_out``.
    kernel_size : int or tuple of int
        The kernel's spatial size; an int for every axis.
    stride : int or tuple of int, default 1
        Step between output positions, in input pixels.
    padding : int, tuple, tuple of (before, after) pairs, or {"valid", "same", "full"}
        Stored normalised as ``(before, after)`` pairs in :attr:`padding`.
    dilation : int or tuple of int, default 1
        Step between the taps of the kernel, in input pixels.
    groups : int, default 1
        Must divide both channel counts.
    padding_mode : {"zeros", "circular", "reflect", "replicate"}
        What the padded positions hold (PyTorch's names).
    bias : bool, default True
        Whether the layer adds one learned bias per output channel.
    transposed : bool, default False
        Transposed convolution: the matrix is the transpose of the forward convolution from
        the output shape to the input shape (PyTorch's ``conv_transpose``).
        A transposed spec is the transpose of the matrix of its forward convolution. With a
        non-zero ``padding_mode`` or asymmetric padding it is *defined* that way: PyTorch's
        ConvTranspose has no such option, and ``describe()`` marks the line as such.
    output_padding : int or tuple of int, default 0
        Extra size on one side of a transposed convolution's output (PyTorch semantics).
    flip : bool, default False
        ``True`` is the mathematician's convolution (kernel flipped); ``False`` is
        cross-correlation, what every deep learning library computes.
    tile : int or tuple of int, optional
        Tiled convolution (Deep Learning book eq. 9.10): ``tile`` kernels used in rotation
        along each axis. A tile equal to the output size is a locally connected layer (eq. 9.9).
    channel_table : tuple of tuple of bool, optional
        ``(C_out, C_in)`` table of which output channel reads which input channel
        (restricted connectivity, e.g. LeNet-5's C3). ``groups`` is its block-diagonal case.
    padding_word : {"valid", "same", "full"}, optional
        How the padding was written, kept for descriptions when ``padding`` is given as
        numbers; the padding the word gives must be ``padding``. Set from ``padding`` when it
        is a word.

    Raises
    ------
    ConvAlgebraError
        A ``ValueError`` naming the parameter, the value and the rule it breaks.
    TypeError
        A parameter of the wrong type.

    Examples
    --------
    >>> spec = ConvSpec((3, 32, 32), 16, 3, stride=2, padding=1)
    >>> spec.output_shape
    (16, 16, 16)
    >>> spec.weight_shape
    (16, 3, 3, 3)
    >>> spec.n_params
    448
    >>> ConvSpec((1, 7), 1, 3, stride=3).unread_inputs
    ((6,),)
    """

    # Stored normalised: every per-axis option is a tuple with one entry per spatial axis.
    input_shape: tuple[int, ...]
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] = (1,)
    padding: tuple[tuple[int, int], ...] = ((0, 0),)
    dilation: tuple[int, ...] = (1,)
    groups: int = 1
    padding_mode: str = "zeros"
    bias: bool = True
    transposed: bool = False
    output_padding: tuple[int, ...] = (0,)
    flip: bool = False
    tile: tuple[int, ...] | None = None
    channel_table: tuple[tuple[bool, ...], ...] | None = None
    padding_word: str | None = field(default=None, compare=False, repr=False)

    def __init__(
        self,
        input_shape: Sequence[int],
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Any = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        bias: bool = True,
        transposed: bool = False,
        output_padding: IntOrTuple = 0,
        flip: bool = False,
        tile: IntOrTuple | None = None,
        channel_table: Any = None,
        padding_word: str | None = None,
    ) -> None:
        # Options arrive as ints or tuples (PyTorch's convention) and are stored normalised.
        arguments = dict(locals())
        del arguments["self"]
        for name, value in arguments.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    @classmethod
    def from_torch(cls, module: Any, input_shape: Sequence[int]) -> ConvSpec:
        """The spec of a torch convolution module at ``input_shape`` (``(C, *spatial)``).

        Reads the attributes of ``nn.Conv{1,2,3}d`` and ``nn.ConvTranspose{1,2,3}d``
        (weight-normalised or otherwise parametrised ones too); torch is not imported.

        Examples
        --------
        >>> class Conv2d:  # torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        ...     in_channels, out_channels, kernel_size, stride = 3, 8, (3, 3), (2, 2)
        ...     padding, dilation, groups, padding_mode, bias = (1, 1), (1, 1), 1, "zeros", None
        >>> spec = ConvSpec.from_torch(Conv2d(), (3, 32, 32))
        >>> spec.output_shape, spec.n_params
        ((8, 16, 16), 216)
        """
        kind = type(module).__name__.removeprefix("Parametrized")
        if kind not in {f"Conv{n}d" for n in (1, 2, 3)} | {f"ConvTranspose{n}d" for n in (1, 2, 3)}:
            raise TypeError(
                f"module must be a torch Conv1d/2d/3d or ConvTranspose1d/2d/3d, got {kind}"
            )
        shape = tuple(input_shape)
        if not shape or shape[0] != module.in_channels:
            raise ConvAlgebraError(
                f"input_shape={shown(shape)} must start with the module's in_channels="
                f"{module.in_channels} (shape (C, *spatial), no batch axis)"
            )
        transposed = kind.startswith("ConvTranspose")
        return cls(
            shape,
            module.out_channels,
            tuple(module.kernel_size),
            tuple(module.stride),
            module.padding if isinstance(module.padding, str) else tuple(module.padding),
            tuple(module.dilation),
            module.groups,
            module.padding_mode,
            module.bias is not None,
            transposed,
            tuple(module.output_padding) if transposed else 0,
        )

    def __post_init__(self) -> None:
        shape = self.input_shape
        if not isinstance(shape, (tuple, list)) or not all(_is_int(v) for v in shape):
            raise TypeError(
                f"input_shape must be a tuple of ints (C_in, *spatial), got {shown(shape)}"
            )
        if not 2 <= len(shape) <= 4:
            raise ConvAlgebraError(
                "input_shape must be (C_in, *spatial) with 1, 2 or 3 spatial dimensions, "
                f"got {shown(tuple(shape))}"
            )
        shape = tuple(operator.index(v) for v in shape)  # int(v) could lie, not __index__
        if min(shape) < 1:
            raise ConvAlgebraError(
                f"input_shape must hold positive sizes, got {shown(tuple(shape))}"
            )
        n = len(shape) - 1
        set_ = object.__setattr__
        set_(self, "input_shape", shape)
        set_(self, "out_channels", self._positive_int("out_channels", self.out_channels))
        set_(self, "groups", self._positive_int("groups", self.groups))
        kernel = normalize_tuple(self.kernel_size, n, "kernel_size")
        stride = normalize_tuple(self.stride, n, "stride")
        dilation = normalize_tuple(self.dilation, n, "dilation")
        set_(self, "kernel_size", kernel)
        set_(self, "stride", stride)
        set_(self, "dilation", dilation)
        set_(
            self,
            "output_padding",
            normalize_tuple(self.output_padding, n, "output_padding", minimum=0),
        )
        written = self.padding
        if isinstance(self.padding, str) and self.padding_word is None:
            set_(self, "padding_word", self.padding.lower())
        set_(self, "padding", _normalize_padding(self.padding, kernel, dilation))
        if self.padding_word is not None:
            self._check_padding_word(written, kernel, dilation)
        for flag in ("bias", "transposed", "flip"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, got {shown(getattr(self, flag))}")
        if not isinstance(self.padding_mode, str):
            raise TypeError(
                f"padding_mode must be one of {PADDING_MODES}, got {shown(self.padding_mode)}"
            )
        if self.padding_mode not in PADDING_MODES:
            raise ConvAlgebraError(
                f"padding_mode must be one of {PADDING_MODES}, got {shown(self.padding_mode)}"
            )
        if self.tile is not None:
            set_(self, "tile", normalize_tuple(self.tile, n, "tile"))
        if self.channel_table is not None:
            set_(self, "channel_table", self._normalize_table(self.channel_table))
        self._validate()

    # ----------------------------------------------------------------- validation
    def _check_padding_word(self, written: Any, kernel: tuple, dilation: tuple) -> None:
        """``padding_word`` names how the padding was written: one of the words, and the
        padding it gives must be the padding."""
        word = self.padding_word
        if not isinstance(word, str) or word.lower() not in PADDING_WORDS:
            raise ConvAlgebraError(
                f"padding_word must be None or one of {PADDING_WORDS}, got {shown(word)}"
            )
        object.__setattr__(self, "padding_word", word.lower())
        if _normalize_padding(word, kernel, dilation) != self.padding:
            raise ConvAlgebraError(
                f"padding_word={shown(word)} does not describe padding={shown(written)} "
                f"(it gives {_normalize_padding(word, kernel, dilation)}, the padding is "
                f"{self.padding}); leave padding_word out"
            )

    @staticmethod
    def _positive_int(name: str, value: Any) -> int:
        if not _is_int(value):
            raise TypeError(f"{name} must be an int, got {shown(value)}")
        number = operator.index(value)
        if number < 1:
            raise ConvAlgebraError(f"{name} must be a positive integer, got {shown(value)}")
        return number

    def _normalize_table(self, table: Any) -> tuple[tuple[bool, ...], ...]:
        expected = (self.out_channels, self.input_shape[0])
        try:
            arr = np.asarray(table, dtype=object)
        except ValueError:
            arr = np.empty(0, dtype=object)
        if arr.ndim != 2:
            raise ConvAlgebraError(
                f"channel_table must be a 2-D table of shape (out_channels, in_channels) = "
                f"{expected} of 0/1 or bools, got {shown(table)}"
            )
        ok = all(type(v) in (bool, np.bool_) or (_is_int(v) and int(v) in (0, 1)) for v in arr.flat)
        if not ok:
            raise ConvAlgebraError(
                f"channel_table entries must be 0, 1, True or False, got {shown(table)}"
            )
        if arr.shape != expected:
            raise ConvAlgebraError(
                f"channel_table must have shape (out_channels, in_channels) = {expected}, "
                f"got shape {arr.shape}"
            )
        rows = tuple(tuple(bool(v) for v in row) for row in arr)
        empty = [co for co, r in enumerate(rows) if not any(r)]
        if empty:
            raise ConvAlgebraError(f"channel_table: output channels {empty} read no input channel")
        return rows

    def _validate(self) -> None:
        c_in, g = self.input_shape[0], self.groups
        if c_in % g:
            raise ConvAlgebraError(f"groups={g} does not divide in_channels={c_in}")
        if self.out_channels % g:
            raise ConvAlgebraError(f"groups={g} does not divide out_channels={self.out_channels}")
        if self.channel_table is not None and g != 1:
            raise ConvAlgebraError(
                f"channel_table replaces groups: use groups=1 with a table, got groups={g}"
            )
        if self.transposed:
            self._validate_transposed()
        else:
            if any(self.output_padding):
                raise ConvAlgebraError(
                    f"output_padding={self.output_padding} is only meaningful with transposed=True"
                )
            if self.padding_word == "same" and max(self.stride) > 1:
                raise ConvAlgebraError(
                    f"padding='same' is not supported for strided convolutions "
                    f"(stride={self.stride}), as in PyTorch"
                )
        self._validate_padding(self.forward_input_spatial)
        self._validate_extent(self.forward_input_spatial)
        if self.channel_table is not None and self.transposed:
            raise ConvAlgebraError(
                "channel_table is not supported with transposed=True (the table is indexed "
                "[out_channel, in_channel] of a forward convolution)"
            )
        self._validate_sizes()
        if self.tile is not None:
            if self.transposed:
                raise ConvAlgebraError(
                    "tile (tiled/locally connected) is not supported with transposed=True"
                )
            out = self.output_shape[1:]
            if any(t > o for t, o in zip(self.tile, out)):
                raise ConvAlgebraError(
                    f"tile={self.tile} is larger than the output size {out} on some axis; "
                    f"tile must be <= output size per axis (tile == output size is a "
                    f"locally_connected layer)"
                )

    def _validate_sizes(self) -> None:
        """Every size, padded size and element count below :data:`MAX_SIZE` (2**62)."""
        padded = tuple(n + a + b for n, (a, b) in zip(self.forward_input_spatial, self.padding))
        counts = {
            "input_shape": self.input_shape,
            "output shape": self.output_shape,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "dilation": self.dilation,
            "padded input": padded,
            "output_padding": self.output_padding,
            "input elements": (math.prod(self.input_shape),),
            "output elements": (math.prod(self.output_shape),),
            "weight elements": (math.prod(self.weight_shape),),
            "taps per output": (math.prod(self.kernel_size) * self.in_channels,),
        }
        for name, values in counts.items():
            if max(values) >= MAX_SIZE:
                raise ConvAlgebraError(
                    f"{name} {shown(values)} reaches 2**62: sizes this large cannot be indexed "
                    "(use smaller sizes)"
                )

    def _validate_transposed(self) -> None:
        if self.padding_word in ("same", "full"):
            raise ConvAlgebraError(
                f"padding={shown(self.padding_word)} is not supported with transposed=True; "
                "give the padding as integers, as in PyTorch"
            )
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ConvAlgebraError(
                    f"output_padding={self.output_padding} must be smaller than either stride "
                    f"={self.stride} or dilation={self.dilation} in every dimension"
                )
        spatial = self._transposed_output_spatial()
        if min(spatial) < 1:
            raise ConvAlgebraError(
                f"transposed convolution output size {spatial} is not positive for "
                f"input {self.input_shape[1:]}, kernel {self.kernel_size}, stride {self.stride}, "
                f"padding {self.padding}"
            )

    def _validate_padding(self, spatial: tuple[int, ...]) -> None:
        mode = self.padding_mode
        for axis, (size, (before, after)) in enumerate(zip(spatial, self.padding)):
            if mode == "reflect" and max(before, after) >= size:
                raise ConvAlgebraError(
                    f"reflect padding {(before, after)} must be smaller than the input size "
                    f"{size} along spatial axis {axis}"
                )
            if mode == "circular" and max(before, after) > size:
                raise ConvAlgebraError(
                    f"circular padding {(before, after)} must not exceed the input size "
                    f"{size} along spatial axis {axis} (it would wrap around more than once)"
                )

    def _validate_extent(self, spatial: tuple[int, ...]) -> None:
        for axis, (size, (before, after), k, d) in enumerate(
            zip(spatial, self.padding, self.kernel_size, self.dilation)
        ):
            extent = d * (k - 1) + 1
            if extent > size + before + after:
                raise ConvAlgebraError(
                    f"kernel extent {extent} (kernel_size={k}, dilation={d}) is larger than the "
                    f"padded input {size + before + after} (size {size} + padding "
                    f"{(before, after)}) along spatial axis {axis}"
                )

    # ------------------------------------------------------------ shape arithmetic
    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (1, 2 or 3)."""
        return len(self.input_shape) - 1

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    def _forward_out(self, spatial: Sequence[int]) -> tuple[int, ...]:
        return tuple(
            (size + before + after - d * (k - 1) - 1) // s + 1
            for size, (before, after), k, d, s in zip(
                spatial, self.padding, self.kernel_size, self.dilation, self.stride
            )
        )

    def _transposed_output_spatial(self) -> tuple[int, ...]:
        return tuple(
            (size - 1) * s - before - after + d * (k - 1) + op + 1
            for size, (before, after), k, d, s, op in zip(
                self.input_shape[1:],
                self.padding,
                self.kernel_size,
                self.dilation,
                self.stride,
                self.output_padding,
            )
        )

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(C_out, *spatial)`` of the layer's output (floor, as PyTorch)."""
        if self.transposed:
            return (self.out_channels, *self._transposed_output_spatial())
        return (self.out_channels, *self._forward_out(self.input_shape[1:]))

    @property
    def forward_input_spatial(self) -> tuple[int, ...]:
        """Spatial shape read by the underlying forward convolution.

        For a transposed spec this is its output size: the transposed matrix is the
        transpose of the forward convolution from that size.
        """
        return self.output_shape[1:] if self.transposed else self.input_shape[1:]

    @property
    def forward_output_spatial(self) -> tuple[int, ...]:
        """Spatial shape written by the underlying forward convolution."""
        return self.input_shape[1:] if self.transposed else self.output_shape[1:]

    @property
    def forward(self) -> ConvSpec:
        """The forward convolution whose matrix this spec's matrix transposes (or itself)."""
        if not self.transposed:
            return self
        return replace(
            self,
            input_shape=(self.out_channels, *self.forward_input_spatial),
            out_channels=self.in_channels,
            padding=self.padding,
            padding_word=None,
            transposed=False,
            output_padding=(0,) * self.ndim,
        )

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """PyTorch layout: ``(C_out, C_in/groups, *k)``; transposed ``(C_in, C_out/groups, *k)``.

        Tiled specs prepend the tile shape, ``(*tile, C_out, C_in/groups, *k)``: ``weight[t]``
        is the ordinary kernel used at output positions congruent to ``t``. A channel table
        uses the full ``(C_out, C_in, *k)`` layout; unconnected entries are ignored.
        """
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        base = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        return base if self.tile is None else (*self.tile, *base)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.out_channels,) if self.bias else ()

    @property
    def is_locally_connected(self) -> bool:
        """True when every output position has its own kernel (eq. 9.9)."""
        return self.tile is not None and self.tile == self.output_shape[1:]

    @property
    def n_weights(self) -> int:
        """Number of learnable kernel entries (connected ones only, for a channel table)."""
        if self.channel_table is not None:
            links = sum(map(sum, self.channel_table))
            return links * math.prod(self.kernel_size)
        return math.prod(self.weight_shape)

    @property
    def n_params(self) -> int:
        """Learnable parameters: kernel entries plus ``out_channels`` biases if ``bias``."""
        return self.n_weights + (self.out_channels if self.bias else 0)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass, the dense count (padding taps included).

        A convolution does ``C_in/groups * prod(k)`` per output element; a transposed
        convolution does ``C_out/groups * prod(k)`` per *input* element (it scatters).
        """
        taps = math.prod(self.kernel_size)
        if self.transposed:
            return math.prod(self.input_shape) * (self.out_channels // self.groups) * taps
        if self.channel_table is not None:
            return math.prod(self.output_shape[1:]) * self.n_weights
        return math.prod(self.output_shape) * (self.in_channels // self.groups) * taps

    def _untouched(self, side: str) -> tuple[tuple[int, ...], ...]:
        """Per axis: forward inputs no tap reads (``"in"``) or forward outputs reading only padding."""
        mask = read_mask if side == "in" else written_mask
        result = []
        for a in range(self.ndim):
            try:
                marked = mask(
                    self.forward_input_spatial[a],
                    self.forward_output_spatial[a],
                    self.kernel_size[a],
                    self.stride[a],
                    self.dilation[a],
                    self.padding[a][0],
                    self.padding_mode,
                )
            except ConvAlgebraError as exc:
                raise ConvAlgebraError(f"{self.describe()}, spatial axis {a}: {exc}") from None
            result.append(tuple(np.flatnonzero(~marked).tolist()))
        return tuple(result)

    @property
    def unread_inputs(self) -> tuple[tuple[int, ...], ...]:
        """Per spatial axis, the input positions that no output reads.

        Non-empty when the stride (or dilation) does not tile the input, e.g. input 7,
        kernel 3, stride 3 never reads position 6. Padding modes that copy border values
        (reflect, replicate, circular) count those copies as reads.
        """
        return self._untouched("out" if self.transposed else "in")

    @property
    def unwritten_outputs(self) -> tuple[tuple[int, ...], ...]:
        """Per spatial axis, the output positions that do not depend on the input at all.

        They read only zero padding (or, transposed, no input scatters to them).
        """
        return self._untouched("in" if self.transposed else "out")

    @property
    def tiles_input(self) -> bool:
        """True when every input position is read by some output."""
        return not any(self.unread_inputs)

    def describe(self) -> str:
        """One line in PyTorch's own words, e.g. ``Conv2d(3, 16, kernel_size=(3, 3), ...)``."""
        kind = f"Conv{'Transpose' if self.transposed else ''}{self.ndim}d"
        parts = [
            f"{self.in_channels}, {self.out_channels}",
            f"kernel_size={self.kernel_size}",
            f"stride={self.stride}",
            f"padding={self.padding}",
        ]
        if max(self.dilation) > 1:
            parts.append(f"dilation={self.dilation}")
        if self.groups > 1:
            parts.append(f"groups={self.groups}")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        if any(self.output_padding):
            parts.append(f"output_padding={self.output_padding}")
        if not self.bias:
            parts.append("bias=False")
        if self.flip:
            parts.append("flip=True")
        if self.tile is not None:
            parts.append(f"tile={self.tile}")
        if self.channel_table is not None:
            parts.append("channel_table=...")
        line = f"{kind}({', '.join(parts)}) on input {self.input_shape}"
        if self.transposed and (self.padding_mode != "zeros" or self._asymmetric_padding()):
            line += "  # transpose of the forward conv; no torch equivalent"
        return line

    def _asymmetric_padding(self) -> bool:
        return any(before != after for before, after in self.padding)


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """PyTorch's pooling output size, including its ``ceil_mode`` rule.

    With ``ceil_mode`` the last window must start inside the input or the left padding.

    Examples
    --------
    >>> pool_output_size(5, 2, 2, 0), pool_output_size(5, 2, 2, 0, ceil_mode=True)
    (2, 3)
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_stride(kernel: tuple[int, ...], stride: Any) -> tuple[int, ...]:
    """A pooling layer's stride: ``stride`` per axis, or the kernel size when it is ``None``.

    Examples
    --------
    >>> pool_stride((2, 2), None), pool_stride((3, 3), 1)
    ((2, 2), (1, 1))
    """
    return kernel if stride is None else normalize_tuple(stride, len(kernel), "stride")
