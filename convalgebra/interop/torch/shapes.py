"""Handlers: shape and axis ops (views, permutes, flatten, splits, slices, concatenation,
stacking, pixel shuffles, shape queries)."""

from __future__ import annotations

from typing import Any

from ...network.layers import (
    Concat,
    Flatten,
    Permute,
    Reshape,
    Select,
    Slice,
    Take,
)
from .values import (
    SIG,
    Builder,
    Const,
    Data,
    Pieces,
    Unknown,
    bind,
    need_data,
    prod,
    sizes_of,
    unbatch,
)

__all__ = [
    "cat_op",
    "stack_op",
    "pixel_shuffle_op",
    "view_op",
    "flatten_op",
    "unsqueeze_op",
    "permute_op",
    "split_op",
    "slice_op",
    "getattr_op",
    "expand_op",
]


def cat_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    items = [imp.piece(x, i) for i in range(len(x.bounds))] if isinstance(x, Pieces) else list(x)
    dim = bind(rest, kw, SIG["cat"]).get("dim", 0)
    data = [v for v in items if isinstance(v, Data)]
    rank = len(data[0].shape) + 1
    values = [v if isinstance(v, Data) else imp.materialise(v, rank - 1) for v in items]
    if not all(isinstance(v, Data) for v in values):
        raise Unknown("cat of values that are not tensors")
    return imp.add(imp.name_of(node, fname), Concat(unbatch(dim, rank)), values)


def stack_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    """``torch.stack``: each tensor gets a new axis ``dim``, then they are concatenated."""
    items = [imp.piece(x, i) for i in range(len(x.bounds))] if isinstance(x, Pieces) else list(x)
    data = [v for v in items if isinstance(v, Data)]
    if not data or len(data) != len(items) and not all(isinstance(v, Const) for v in items):
        raise Unknown("stack of values that are not tensors")
    rank = len(data[0].shape) + 1
    dim = bind(rest, kw, SIG["cat"]).get("dim", 0) % (rank + 1)
    if dim == 0:
        raise Unknown("stack along the batch axis")
    name = imp.name_of(node, fname)
    parts = []
    for k, v in enumerate(items):
        v = v if isinstance(v, Data) else imp.materialise(v, rank - 1)
        shape = list(v.shape)
        shape.insert(dim - 1, 1)
        parts.append(imp.add(imp.unique(f"{name}.{k}"), Reshape(tuple(shape)), [v]))
    return imp.add(name, Concat(dim - 1), parts)


def pixel_shuffle_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    """``pixel_shuffle``/``pixel_unshuffle`` (2-D): the view, permute and view torch runs."""
    x = need_data(x, fname)
    factor = rest[0] if rest else kw.get("upscale_factor", kw.get("downscale_factor"))
    if len(x.shape) != 3 or not isinstance(factor, int):
        raise Unknown(f"{fname} of a tensor that is not (C, H, W)")
    (c, h, w), r = x.shape, factor
    if "unshuffle" in fname.lower():
        steps = [(c, h // r, r, w // r, r), (0, 2, 4, 1, 3), (c * r * r, h // r, w // r)]
    else:
        steps = [(c // (r * r), r, r, h, w), (0, 3, 1, 4, 2), (c // (r * r), h * r, w * r)]
    name = imp.name_of(node, fname)
    split = imp.add(imp.unique(f"{name}.view"), Reshape(steps[0]), [x])
    moved = imp.add(imp.unique(f"{name}.permute"), Permute(steps[1]), [split])
    return imp.add(name, Reshape(steps[2]), [moved])


def view_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    x = need_data(x, fname)
    base = fname.removeprefix("aten.")
    shape = sizes_of(rest if rest else (kw.get("shape") or kw.get("size"),))
    full = (1, *x.shape)
    numel = prod(full)
    if shape.count(-1) == 1:
        known = prod(tuple(v for v in shape if v != -1))
        shape = tuple(numel // max(known, 1) if v == -1 else v for v in shape)
    if not shape or shape[0] != 1 or prod(shape) != numel:
        raise Unknown(f"{base} to {shape} (moves the batch axis)")
    return imp.add(imp.name_of(node, fname), Reshape(tuple(int(v) for v in shape[1:])), [x])


def flatten_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    x = need_data(x, fname)
    b = bind(rest, kw, SIG["flatten"])
    rank = len(x.shape) + 1
    start, end = b.get("start_dim", 0) % rank, b.get("end_dim", -1) % rank
    if start == 0:
        raise Unknown("flatten over the batch axis")
    return imp.add(imp.name_of(node, fname), Flatten(start - 1, end - 1), [x])


def unsqueeze_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    x = need_data(x, fname)
    base = fname.removeprefix("aten.")
    dims: Any = rest[0] if rest else kw.get("dim")
    shape = [1, *x.shape]
    if base == "unsqueeze":
        shape.insert(dims % (len(shape) + 1), 1)
    else:
        todo = (
            range(len(shape)) if dims is None else ([dims] if isinstance(dims, int) else list(dims))
        )
        drop = {d % len(shape) for d in todo if shape[d % len(shape)] == 1}
        if 0 in drop:
            drop.discard(0)
        shape = [s for k, s in enumerate(shape) if k not in drop]
    if shape[0] != 1:
        raise Unknown(f"{base} of the batch axis")
    return imp.add(imp.name_of(node, fname), Reshape(tuple(shape[1:])), [x])


def permute_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    x = need_data(x, fname)
    base = fname.removeprefix("aten.")
    rank = len(x.shape) + 1
    if base in ("transpose", "swapaxes", "swapdims"):
        b = bind(rest, kw, SIG["transpose"])
        d0, d1 = b["dim0"] % rank, b["dim1"] % rank
        dims = list(range(rank))
        dims[d0], dims[d1] = dims[d1], dims[d0]
    else:
        dims = [d % rank for d in sizes_of(rest if rest else (kw.get("dims"),))]
    if dims[0] != 0:
        raise Unknown(f"{base} moving the batch axis")
    return imp.add(imp.name_of(node, fname), Permute(tuple(d - 1 for d in dims[1:])), [x])


def split_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    x = need_data(x, fname)
    base = fname.removeprefix("aten.")
    rank = len(x.shape) + 1
    name = imp.name_of(node, fname)
    if base in ("split", "split_with_sizes"):
        b = bind(rest, kw, ("split_size_or_sections", "dim"))
        size: Any = b.get("split_size_or_sections", kw.get("split_size", kw.get("split_sizes")))
        dim = unbatch(b.get("dim", 0), rank)
        n = x.shape[dim]
        sizes = (
            list(size)
            if isinstance(size, (list, tuple))
            else [min(size, n - k) for k in range(0, n, size)]
        )
    elif base == "chunk":
        b = bind(rest, kw, SIG["chunk"])
        dim = unbatch(b.get("dim", 0), rank)
        n = x.shape[dim]
        step = -(-n // b["chunks"])
        sizes = [min(step, n - k) for k in range(0, n, step)]
    elif base == "unbind":
        dim = unbatch(bind(rest, kw, SIG["unbind"]).get("dim", 0), rank)
        return Pieces(x, dim, [(k, k + 1) for k in range(x.shape[dim])], True, name)
    elif base == "narrow":
        b = bind(rest, kw, SIG["narrow"])
        dim = unbatch(b["dim"], rank)
        start = b["start"] % x.shape[dim]
        return imp.add(name, Slice(dim, start, start + b["length"]), [x])
    else:  # index_select
        b = bind(rest, kw, SIG["index_select"])
        index = b["index"]
        count = index.meta.numel() if isinstance(index, Const) else None
        if count is None:
            raise Unknown("index_select with an index computed from data")
        return imp.add(name, Take(unbatch(b["dim"], rank), count), [x])
    bounds, start = [], 0
    for s in sizes:
        bounds.append((start, start + s))
        start += s
    return Pieces(x, dim, bounds, False, name)


def slice_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    """``aten.slice`` / ``aten.select`` (indexing on the export route)."""
    x = need_data(x, fname)
    rank = len(x.shape) + 1
    if fname.endswith("select"):
        b = bind(rest, kw, ("dim", "index"))
        return imp.add(imp.name_of(node, fname), Select(unbatch(b["dim"], rank), b["index"]), [x])
    b = bind(rest, kw, ("dim", "start", "end", "step"))
    dim = b.get("dim", 0) % rank
    size = 1 if dim == 0 else x.shape[dim - 1]
    start, stop, step = slice(b.get("start"), b.get("end"), b.get("step", 1)).indices(size)
    if (start, stop, step) == (0, size, 1):
        return x
    if dim == 0:
        raise Unknown("slicing the batch axis")
    return imp.add(imp.name_of(node, fname), Slice(dim - 1, start, stop, step), [x])


def getattr_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    torch = imp.torch
    shape = torch.Size((x.batch, *x.shape))
    values = {
        "shape": shape,
        "ndim": len(shape),
        "dtype": imp.dtype,
        "device": torch.device("meta"),
        "is_cuda": False,
        "requires_grad": False,
    }
    if node.op == "call_method":
        attr = fname
    else:
        attr = rest[0]
    if attr in ("size", "shape"):
        dim = (rest[0] if rest else kw.get("dim")) if node.op == "call_method" else None
        return shape if dim is None else shape[dim]
    if attr in ("dim", "ndimension"):
        return len(shape)
    if attr == "numel":
        return prod(tuple(shape))
    if attr not in values:
        raise Unknown(f"attribute {attr}")
    return values[attr]


def expand_op(imp: Builder, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Data:
    raise Unknown(f"{fname} of data")
