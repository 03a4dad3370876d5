"""Command-line value parsing: shapes, per-axis integers, padding, weights, and the spec flags.

Every parser turns a string typed by a person into the value the library takes, or raises
:class:`argparse.ArgumentTypeError` with a message that says what was expected and what was
received (``"expected a shape like 3x32x32 ..., got '3x-2x5'"``).
"""

from __future__ import annotations

import argparse
import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import budget
from ..errors import ConvAlgebraError, shown
from ..spec import PADDING_MODES, ConvSpec

__all__ = [
    "parse_shape",
    "parse_ints",
    "parse_padding",
    "parse_unit",
    "parse_shift",
    "add_spec_arguments",
    "spec_from_args",
    "parse_spec_string",
    "make_weight",
    "WEIGHT_CHOICES",
]

_SEP = re.compile(r"[x×,]")
WEIGHT_CHOICES = ("symbolic", "arange", "ones", "random")


def _digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts ``"１"``, ``"²"`` and other scripts)."""
    return re.fullmatch(r"[0-9]+", text) is not None


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(text: str) -> float:
    """An ASCII decimal number (``float`` alone also reads ``"１"``, ``"nan"`` and ``"1_0"``).

    A number a float cannot hold (``1e999`` overflows to infinity, ``1e-999`` underflows to
    zero) is refused rather than changed.
    """
    if len(text) > 100 or not _NUMBER.fullmatch(text):
        raise ValueError(text)
    value = float(text)
    mantissa = re.split("[eE]", text)[0]
    if math.isinf(value) or (value == 0.0 and any(c in "123456789" for c in mantissa)):
        raise ConvAlgebraError(
            f"{shown(text)} is outside the range of a float (magnitudes from about 5e-324 to "
            "1.8e308); write it in that range"
        )
    return value


def _split(text: str) -> list[str]:
    return [part.strip() for part in _SEP.split(text.strip())]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3x32x32"`` (or ``"3,32,32"``) -> ``(3, 32, 32)``: channels, then 1-3 spatial sizes.

    Examples
    --------
    >>> parse_shape("3x32x32")
    (3, 32, 32)
    >>> parse_shape("3x-2x5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a shape like 3x32x32 (channels x 1-3 spatial sizes, positive integers), got '3x-2x5'
    """
    parts = _split(text)
    if not 2 <= len(parts) <= 4 or not all(_digits(p) and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            "expected a shape like 3x32x32 (channels x 1-3 spatial sizes, positive integers), "
            f"got {shown(text)}"
        )
    return tuple(int(p) for p in parts)


def parse_ints(text: str) -> int | tuple[int, ...]:
    """``"3"`` -> ``3``; ``"3x5"`` or ``"3,5"`` -> ``(3, 5)`` (one integer per spatial axis).

    Examples
    --------
    >>> parse_ints("3"), parse_ints("1x2")
    (3, (1, 2))
    """
    parts = _split(text)
    if not all(re.fullmatch(r"[0-9]+", p) for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer or one per axis like 3x5, got {shown(text)}"
        )
    values = tuple(int(p) for p in parts)
    return values[0] if len(values) == 1 else values


def parse_padding(text: str) -> Any:
    """Padding: ``same``/``valid``/``full``, ``1``, per axis ``1x2``, asymmetric ``0:1``.

    ``B:A`` is ``B`` before and ``A`` after; a single item applies to every axis, several items
    (separated by ``x`` or ``,``) give one per axis, e.g. ``0:1x1:0``.

    Examples
    --------
    >>> parse_padding("same"), parse_padding("2"), parse_padding("1x0"), parse_padding("0:1x2")
    ('same', 2, (1, 0), ((0, 1), (2, 2)))
    >>> parse_padding("0:1")
    ('broadcast', (0, 1))
    """
    word = text.strip().lower()
    if word in ("same", "valid", "full"):
        return word
    items = []
    for part in _split(text):
        match = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", part)
        if not match:
            raise argparse.ArgumentTypeError(
                "expected padding as same|valid|full, an integer, one per axis like 1x2, or "
                f"before:after pairs like 0:1 or 0:1x1:0, got {shown(text)}"
            )
        before, after = match.group(1), match.group(2)
        items.append(int(before) if after is None else (int(before), int(after)))
    if len(items) == 1:
        return items[0] if isinstance(items[0], int) else ("broadcast", items[0])
    if all(isinstance(i, int) for i in items):
        return tuple(items)
    return tuple(i if isinstance(i, tuple) else (i, i) for i in items)


def parse_unit(text: str) -> tuple[int, ...]:
    """An output unit's spatial index, ``"2x3"`` or ``"2,3"`` -> ``(2, 3)`` (0-based).

    Examples
    --------
    >>> parse_unit("2x3")
    (2, 3)
    """
    parts = _split(text)
    if not all(_digits(p) for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected an output position like 2x3 (0-based, one index per axis), got {shown(text)}"
        )
    return tuple(int(p) for p in parts)


def parse_shift(text: str) -> int | tuple[int, ...]:
    """A translation: ``"1"`` -> ``1`` (along ``--axis``), ``"0x-1"`` -> ``(0, -1)``.

    Examples
    --------
    >>> parse_shift("-2"), parse_shift("0x-1"), parse_shift("1,2")
    (-2, (0, -1), (1, 2))
    >>> parse_shift("1.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a shift like 1, -2 (along --axis) or 0x-1 (one signed integer per spatial axis), got '1.5'
    """
    parts = _split(text)
    if not all(re.fullmatch(r"[+-]?[0-9]+", p) for p in parts):
        raise argparse.ArgumentTypeError(
            "expected a shift like 1, -2 (along --axis) or 0x-1 (one signed integer per "
            f"spatial axis), got {shown(text)}"
        )
    values = tuple(int(p) for p in parts)
    return values[0] if len(values) == 1 else values


def add_spec_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add the PyTorch-style layer flags (``--in --out -k -s -p -d -g --mode ...``)."""
    group = parser.add_argument_group(
        "layer (PyTorch's Conv/ConvTranspose arguments)",
        "SHAPE is C x spatial sizes, e.g. 3x32x32; per-axis values are written 3x5 or 3,5.",
    )
    group.add_argument(
        "--in",
        dest="input_shape",
        type=parse_shape,
        required=required,
        metavar="SHAPE",
        help="input shape C_in x spatial, e.g. 1x5x5 or 3x32x32",
    )
    group.add_argument(
        "--out",
        dest="out_channels",
        type=int,
        default=1,
        metavar="C",
        help="output channels (default 1)",
    )
    group.add_argument(
        "-k",
        "--kernel",
        dest="kernel_size",
        type=parse_ints,
        required=required,
        metavar="K",
        help="kernel size, e.g. 3 or 3x5",
    )
    group.add_argument(
        "-s",
        "--stride",
        type=parse_ints,
        default=None,
        metavar="S",
        help="stride (default 1; for pooling laws, the window)",
    )
    group.add_argument(
        "-p",
        "--padding",
        type=parse_padding,
        default=0,
        metavar="P",
        help="same|valid|full, 1, 1x2 per axis, 0:1 (before:after), 0:1x1:0",
    )
    group.add_argument("-d", "--dilation", type=parse_ints, default=1, metavar="D")
    group.add_argument("-g", "--groups", type=int, default=1, metavar="G")
    group.add_argument(
        "--mode",
        dest="padding_mode",
        choices=PADDING_MODES,
        default="zeros",
        help="padding mode (default zeros)",
    )
    group.add_argument("--transposed", action="store_true", help="transposed convolution")
    group.add_argument(
        "--output-padding",
        type=parse_ints,
        default=0,
        metavar="OP",
        help="extra output size of a transposed convolution",
    )
    group.add_argument(
        "--flip",
        action="store_true",
        help="true convolution (flipped kernel) instead of cross-correlation",
    )
    group.add_argument("--no-bias", dest="bias", action="store_false", help="no bias term")
    group.add_argument(
        "--tile",
        type=parse_ints,
        default=None,
        metavar="T",
        help="tiled convolution with T kernels per axis (eq. 9.10)",
    )


def spec_from_args(ns: argparse.Namespace) -> ConvSpec:
    """Build the :class:`ConvSpec` the spec flags describe (errors are ConvAlgebraError)."""
    padding = ns.padding
    if isinstance(padding, tuple) and padding and padding[0] == "broadcast":
        padding = (padding[1],) * (len(ns.input_shape) - 1)
    stride = 1 if ns.stride is None else ns.stride
    return ConvSpec(
        ns.input_shape,
        ns.out_channels,
        ns.kernel_size,
        stride=stride,
        padding=padding,
        dilation=ns.dilation,
        groups=ns.groups,
        padding_mode=ns.padding_mode,
        bias=ns.bias,
        transposed=ns.transposed,
        output_padding=ns.output_padding,
        flip=ns.flip,
        tile=ns.tile,
    )


def parse_spec_string(text: str, default_input: tuple[int, ...]) -> ConvSpec:
    """A second layer given as one quoted string of spec flags, e.g. ``"-k 3 --mode circular"``.

    ``--in`` defaults to ``default_input`` (the first layer's output shape).

    Examples
    --------
    >>> parse_spec_string("-k 2 --out 3", (1, 5)).output_shape
    (3, 4)
    """
    import shlex

    parser = _QuietParser(prog="layer", add_help=False)
    add_spec_arguments(parser, required=False)
    try:
        ns = parser.parse_args(shlex.split(text))
    except ValueError as exc:
        raise ConvAlgebraError(f"second layer {shown(text)}: {exc}") from None
    if ns.kernel_size is None:
        raise ConvAlgebraError(f"second layer {shown(text)}: the kernel size -k is required")
    if ns.input_shape is None:
        ns.input_shape = tuple(default_input)
    return spec_from_args(ns)


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str):  # raise instead of printing usage and exiting
        raise ConvAlgebraError(message)


def make_weight(
    text: str, spec: ConvSpec, seed: int = 0, name: str = "weight"
) -> np.ndarray | None:
    """A numeric array of ``spec.weight_shape`` (or ``None`` for ``symbolic``).

    ``arange`` is 1, 2, ..., n (entry k is weight number k, so the matrix shows which weight
    sits where); ``ones``; ``random`` small integers -3..3 from ``seed``; a list of numbers
    ``"1,0,-1"``; or a ``.npy``/text file.

    Examples
    --------
    >>> make_weight("arange", ConvSpec((1, 4), 1, 2)).tolist()
    [[[1, 2]]]
    >>> make_weight("1,-1", ConvSpec((1, 4), 1, 2)).tolist()
    [[[1.0, -1.0]]]
    """
    return make_array(text, spec.weight_shape, seed, name)


def make_array(text: str, shape: tuple[int, ...], seed: int = 0, name: str = "weight"):
    """Like :func:`make_weight` for any shape (input data, upstream gradients)."""
    word = text.strip().lower()
    if word == "symbolic":
        return None
    n = budget.require_array(
        f"{name} of shape {shape}", shape, 8, budget.DEFAULT_ARRAY_BYTES, "use smaller sizes"
    )
    if word == "arange":
        return np.arange(1, n + 1).reshape(shape)
    if word == "ones":
        return budget.ones(shape, dtype=np.int64)
    if word == "random":
        return np.random.default_rng(seed).integers(-3, 4, size=shape)
    if Path(text).suffix in (".npy", ".txt", ".csv"):
        values = _load_array(Path(text), name)
    else:
        try:
            values = np.array([_number(v) for v in re.split(r"[,\s]+", text.strip()) if v])
        except ConvAlgebraError as exc:
            raise ConvAlgebraError(f"{name}: {exc}") from None
        except ValueError:
            raise ConvAlgebraError(
                f"{name} must be one of {WEIGHT_CHOICES}, a list of numbers like 1,0,-1 or a "
                f".npy/.txt file, got {shown(text)}"
            ) from None
    if values.size != n:
        raise ConvAlgebraError(f"{name} needs {n} numbers for shape {shape}, got {values.size}")
    return values.reshape(shape)


def _load_array(path: Path, name: str) -> np.ndarray:
    data = budget.read_regular_file(path, name)
    try:
        if path.suffix == ".npy":
            return np.load(io.BytesIO(data), allow_pickle=False).ravel()
        text = data.decode("utf-8")
        values = np.loadtxt(
            io.StringIO(text), delimiter="," if path.suffix == ".csv" else None
        ).ravel()
    except (OSError, ValueError) as exc:
        raise ConvAlgebraError(f"cannot read {name} from {shown(str(path))}: {exc}") from None
    # "1e999" reads as inf and "1e-999" as 0.0: refuse rather than change a number
    tiny = (values == 0).any() and any(float(t) == 0 for t in _TINY.findall(text))
    if tiny or not np.isfinite(values).all():
        raise ConvAlgebraError(
            f"{name} file {shown(str(path))} holds a number outside the range of a float (inf, "
            "nan, or a non-zero number that rounds to 0)"
        )
    return values


_TINY = re.compile(r"[0-9.]*[1-9][0-9.]*[eE]-[0-9]+")
