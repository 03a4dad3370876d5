"""Benchmark: a certified Lipschitz bound of ResNet-18 at 224x224 against torch's own estimate.

In one run, one thread each:
1. ``lipschitz_bound(resnet18, (3, 224, 224))``: the certified upper bound (every conv by the
   circulant that contains it, computed from tap-pair Grams) and the power-iteration lower
   bound, with the time of each part (target: under 60 s in all);
2. the route a researcher writes by hand: power iteration in torch (float64, ``conv2d`` and
   ``conv_transpose2d``, 30 steps) on every conv, recomposed through the same graph. It is an
   estimate from below of every conv's norm, not a bound: the ratio of the two upper values
   shows what certification costs in tightness, the ratio of the times what it costs in time.

Times are given as wall time and as this process's CPU time (``time.process_time``): on a
shared, loaded machine the CPU time is what the computation itself costs, and the ratios are
taken on it.

Run: python examples/benchmarks/bench_lipschitz.py [--quick]   (--quick: 112x112)
"""

from __future__ import annotations

import os

# one BLAS thread, set before numpy loads its BLAS
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402


def resnet18():
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def torch_conv_norm(conv, shape, steps=30) -> float:
    """Power iteration on ``A^T A`` of one conv (its padding, stride, groups), float64."""
    import torch
    import torch.nn.functional as F

    w = conv.weight.detach().double()
    kwargs = {"stride": conv.stride, "padding": conv.padding, "groups": conv.groups}
    x = torch.randn((1, *shape), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    norm = 0.0
    for _ in range(steps):
        x = x / x.norm()
        y = F.conv2d(x, w, **kwargs)
        norm = float(y.norm())
        out = (shape[1] + 2 * conv.padding[0] - conv.kernel_size[0]) % conv.stride[0]
        x = F.conv_transpose2d(y, w, output_padding=out, **kwargs)
    return norm


def recomposed(net, graph, bound, shape):
    """The same composition with every conv constant replaced by its torch estimate."""
    convs = dict(net.named_modules())
    values: dict[str, float] = {}
    start = time.process_time()
    for entry in bound.nodes:
        srcs = graph.nx.nodes[entry.node]["inputs"]
        if entry.kind == "input":
            values[entry.node] = 1.0
        elif entry.kind == "add":
            values[entry.node] = sum(values[s] for s in srcs)
        elif entry.kind == "conv":
            conv = convs[entry.node.split("#")[0]]
            own = torch_conv_norm(conv, graph.shape(srcs[0]))
            values[entry.node] = own * values[srcs[0]]
        else:
            values[entry.node] = entry.layer * values[srcs[0]]
    return math.sqrt(sum(values[o] ** 2 for o in bound.outputs)), time.process_time() - start


def main(size: int) -> None:
    import torch

    torch.set_num_threads(1)
    import convalgebra as ca
    from convalgebra.interop.torch import from_torch

    net, shape = resnet18(), (3, size, size)
    marks: dict[str, tuple[float, float]] = {}

    def progress(what, done, total):
        marks[what if what == "power iteration" else "nodes"] = (
            time.perf_counter(),
            time.process_time(),
        )

    wall, cpu = time.perf_counter(), time.process_time()
    bound = ca.lipschitz_bound(net, shape, callback=progress)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    end_wall, end_cpu = time.perf_counter(), time.process_time()
    nodes_wall = wall - (end_wall - marks["nodes"][0])
    nodes_cpu = cpu - (end_cpu - marks["nodes"][1])
    print(f"ResNet-18 at {size}x{size}, 1 thread")
    print(
        f"  lipschitz_bound: {wall:.1f} s wall, {cpu:.1f} s CPU (import, conv constants and the "
        f"composition {nodes_cpu:.1f} s CPU / {nodes_wall:.1f} s wall; lower bound "
        f"{cpu - nodes_cpu:.1f} s CPU): upper {bound.upper:.6g}, lower {bound.lower:.6g}"
    )
    graph = from_torch(net, shape)
    value, seconds = recomposed(net, graph, bound, shape)
    print(
        f"  torch power iteration per conv, recomposed: {seconds:.1f} s CPU, value {value:.6g} "
        "(an estimate, not a bound)"
    )
    print(
        f"  CPU time ratio (whole certified bound / torch estimates of the convs): "
        f"{cpu / seconds:.2f}x; (certified constants / torch estimates): {nodes_cpu / seconds:.2f}x; "
        f"certified upper / recomposed estimate: {bound.upper / value:.3f}x"
    )


if __name__ == "__main__":
    main(112 if "--quick" in sys.argv else 224)
