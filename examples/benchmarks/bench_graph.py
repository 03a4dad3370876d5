"""Benchmark: static analysis of layer graphs (shapes, receptive fields, parameters, MACs).

Prints
1. the full analysis time of ResNet-152 (build + receptive fields + totals);
2. a sweep over synthetic chains (conv/relu repeated; and every layer distinct, which defeats
   the per-graph cache of repeated blocks) and random DAGs (30 % add merges) up to 10,000
   nodes, with the time per (node + edge), which stays flat when the cost grows linearly;
3. ResNet-50 analysed statically against the forward-hook approach (torchinfo-style: run the
   torch model at 224x224 on the CPU, on one thread, with a hook on every leaf module), with
   the ratio and the two parameter counts; once with the process-wide caches of layer facts,
   node plans and recurrence steps warm (a model built again) and once emptied (the first
   model in a process). ``bench_from_torch.py`` sets the same figure beside ``from_torch``.

Run: ``python examples/benchmarks/bench_graph.py`` (add ``--quick`` for a shorter sweep).
"""

from __future__ import annotations

import gc
import random
import sys
import time

from convalgebra import LayerGraph, zoo
from convalgebra.network import fields as fields_module
from convalgebra.network import graph as graph_module
from convalgebra.network import layers as L
from convalgebra.network import receptive


def analyse(g: LayerGraph) -> dict:
    """Everything the table reports: receptive fields of every node and the totals."""
    for node in g.nodes:
        g.receptive_field(node)
    return g.summary()


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def chain(n: int) -> LayerGraph:
    layers = []
    for i in range(n):
        layers.append(L.Conv(8, 3, padding=1) if i % 2 == 0 else L.Activation("relu"))
    return LayerGraph.sequential((8, 32, 32), layers, name=f"chain{n}")


def distinct_chain(n: int) -> LayerGraph:
    """Every layer distinct (channel counts grow): no two nodes share their facts."""
    layers = [L.Conv(8 + i, 3 if i % 2 else 1, padding=i % 2) for i in range(n)]
    return LayerGraph.sequential((8, 32, 32), layers, name=f"distinct{n}")


def random_dag(n: int, seed: int = 0) -> LayerGraph:
    rng = random.Random(seed)
    g = LayerGraph(f"dag{n}")
    names = [g.add_input("x", (8, 32, 32))]
    for i in range(1, n):
        if len(names) > 2 and rng.random() < 0.3:
            a, b = rng.sample(names[-50:], 2)
            names.append(g.add(f"add{i}", L.Add(), [a, b]))
        else:
            src = rng.choice(names[-50:])
            k = rng.choice([1, 3, 5])
            names.append(g.add(f"conv{i}", L.Conv(8, k, padding=k // 2), src))
    return g


def _timed(make, n: int) -> tuple[float, float, LayerGraph]:
    start = time.perf_counter()
    g = make(n)
    build = time.perf_counter() - start
    start = time.perf_counter()
    analyse(g)
    return build, time.perf_counter() - start, g


def sweep(sizes: list[int]) -> None:
    """Best of 3 per size; also with Python's cyclic garbage collector paused, which shows
    the algorithmic cost alone (the collector adds a share that steps with heap size)."""
    print(
        f"{'graph':<7}{'nodes':>7}{'edges':>7}{'build s':>9}{'analyse s':>10}{'total s':>9}"
        f"{'us/(n+e)':>10}{'no-GC s':>9}{'us/(n+e)':>10}"
    )
    for kind, make in (("chain", chain), ("unique", distinct_chain), ("dag", random_dag)):
        for n in sizes:
            build, run, g = min((_timed(make, n) for _ in range(3)), key=lambda t: t[0] + t[1])
            gc.disable()
            try:
                quiet = min(sum(_timed(make, n)[:2]) for _ in range(3))
            finally:
                gc.enable()
            size = g.nx.number_of_nodes() + g.nx.number_of_edges()
            print(
                f"{kind:<7}{g.nx.number_of_nodes():>7}{g.nx.number_of_edges():>7}"
                f"{build:>9.3f}{run:>10.3f}{build + run:>9.3f}"
                f"{1e6 * (build + run) / size:>10.1f}{quiet:>9.3f}{1e6 * quiet / size:>10.1f}"
            )


def resnet152_figures() -> None:
    build = best_of(zoo.resnet152, 3)
    total = best_of(lambda: analyse(zoo.resnet152()), 3)
    g = zoo.resnet152()
    print(
        f"resnet152: {len(g)} nodes, build (shapes, params, MACs) {1e3 * build:.1f} ms, "
        f"full analysis incl. receptive fields of every node {1e3 * total:.1f} ms; "
        f"params {g.param_count():,}, MACs {g.macs():,}, RF {g.receptive_field('features')[0].size}"
    )


def torch_resnet50():
    import torch.nn as nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride, down):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
            self.bn3, self.relu = nn.BatchNorm2d(width * 4), nn.ReLU(inplace=True)
            self.downsample = down

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (self.downsample(x) if self.downsample is not None else x))

    layers, cin = (
        [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ],
        64,
    )
    for stage, count in enumerate((3, 4, 6, 3)):
        width = 64 * 2**stage
        for b in range(count):
            stride = 2 if stage and b == 0 else 1
            down = None
            if b == 0:
                down = nn.Sequential(
                    nn.Conv2d(cin, width * 4, 1, stride, bias=False), nn.BatchNorm2d(width * 4)
                )
            layers.append(Bottleneck(cin, width, stride, down))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers).eval()


def hook_summary(model, shape) -> int:
    """A forward-hook summary, as torchinfo does it: run the model, record every leaf."""
    import torch

    records, handles = [], []
    for module in model.modules():
        if not list(module.children()):
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o: records.append(
                        (type(m).__name__, tuple(o.shape), sum(p.numel() for p in m.parameters()))
                    )
                )
            )
    with torch.no_grad():
        model(torch.zeros((1, *shape)))
    for h in handles:
        h.remove()
    return sum(r[2] for r in records)


def torchinfo_summary(model, shape):  # pragma: no cover - optional baseline
    import torchinfo

    return torchinfo.summary(model, (1, *shape), verbose=0)


def versus_hooks() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        print("torch not installed: skipping the forward-hook comparison")
        return
    torch.set_num_threads(1)  # the ratio compares the work done, not the cores used
    shape = (3, 224, 224)
    start = time.perf_counter()
    model = torch_resnet50()
    construct = time.perf_counter() - start
    hook_params = hook_summary(model, shape)  # warm-up run
    hooks = best_of(lambda: hook_summary(model, shape), 7)
    ours = best_of(lambda: analyse(zoo.resnet50()), 7)

    def cold():  # the process-wide caches of layer facts, plans and recurrence steps emptied
        graph_module._FACTS.clear()
        fields_module._PLANS.clear()
        receptive.apply_map.cache_clear()
        analyse(zoo.resnet50())

    first = best_of(cold, 7)
    built = zoo.resnet50()

    def again():
        built._cache = None
        analyse(built)

    analysis_only = best_of(again, 7)
    params = built.param_count()
    print(
        f"resnet50 at {shape}: torch model construction {1e3 * construct:.0f} ms; "
        f"forward pass with a hook on every leaf {1e3 * hooks:.1f} ms "
        f"({torch.get_num_threads()} thread)"
    )
    print(
        f"  convalgebra, zoo build (shapes, params, MACs) + receptive fields of every node "
        f"+ totals: {1e3 * ours:.2f} ms -> {hooks / ours:.0f}x the hooks (target >= 50x)"
    )
    print(
        f"  convalgebra, the same with empty caches (a first model in the process): "
        f"{1e3 * first:.2f} ms -> {hooks / first:.0f}x"
    )
    print(
        f"  convalgebra, the same analysis of an already built graph: "
        f"{1e3 * analysis_only:.2f} ms -> {hooks / analysis_only:.0f}x"
    )
    try:
        info = torchinfo_summary(model, shape)
        tool = best_of(lambda: torchinfo_summary(model, shape), 5)
        print(
            f"  torchinfo.summary {1e3 * tool:.1f} ms -> convalgebra {tool / ours:.0f}x faster; "
            f"torchinfo params {info.total_params:,}, mult-adds {info.total_mult_adds:,}"
        )
    except ImportError:
        print("  (torchinfo not installed: pip install torchinfo to compare with it too)")
    print(
        f"  parameters: hooks {hook_params:,}, convalgebra {params:,}, torch "
        f"{sum(p.numel() for p in model.parameters()):,}; convalgebra MACs {built.macs():,}"
    )


def main() -> None:
    quick = "--quick" in sys.argv
    resnet152_figures()
    sweep([625, 1250, 2500, 5000, 10000] if not quick else [500, 1000, 2000])
    versus_hooks()


if __name__ == "__main__":
    main()
