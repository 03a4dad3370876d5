"""Benchmark: ``from_torch`` on torchvision's ResNet-50 against a forward pass with hooks.

Everything runs on one thread (``torch.set_num_threads(1)``), so that the ratios compare
the work done. Prints, in one run and best of several repeats:
1. a forward pass at 224x224 on the CPU with a hook on every leaf module counting
   parameters and conv/linear MACs (what torchinfo, thop and ptflops do);
2. ``from_torch(resnet50, (3, 224, 224))`` followed by the parameter count, the MACs and
   the receptive field of every node, with the ratio to (1) (target >= 10x);
3. the built-in ``zoo.resnet50()`` with the same analysis (target >= 50x);
4. (1) and (2) in a fresh process (the first call: imports done, nothing warm), from
   subprocesses started here.

Run: ``python examples/benchmarks/bench_from_torch.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import types

STUB = (
    "import sys, types; sys.modules.setdefault('torchvision._meta_registrations', "
    "types.ModuleType('torchvision._meta_registrations'))"
)


def resnet50():
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    import torchvision

    return torchvision.models.resnet50(weights=None).eval()


def hook_count(model, shape) -> tuple[int, int]:
    """Parameters and conv/linear MACs from a forward pass with a hook on every leaf."""
    import torch

    counts = [0, 0]

    def hook(module, inputs, output):
        counts[0] += sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, torch.nn.Conv2d):
            k = module.weight[0].numel()
            counts[1] += output.numel() * k
        elif isinstance(module, torch.nn.Linear):
            counts[1] += output.numel() * module.in_features

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape)))
    finally:
        for h in handles:
            h.remove()
    return counts[0], counts[1]


def analyse(model, shape) -> tuple[int, int]:
    """from_torch, then parameters, MACs and the receptive field of every node."""
    from convalgebra import from_torch, macs, param_count

    g = from_torch(model, shape)
    for node in g.nodes:
        g.receptive_field(node)
    return param_count(g), macs(g)


def analyse_zoo() -> tuple[int, int]:
    """The built-in ResNet-50, then parameters, MACs and the receptive field of every node."""
    from convalgebra import macs, param_count, zoo

    g = zoo.resnet50()
    for node in g.nodes:
        g.receptive_field(node)
    return param_count(g), macs(g)


def best_of(fn, repeat: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


COLD = (
    STUB
    + """
import time, torch, torchvision
torch.set_num_threads(1)
import convalgebra.interop.torch
from convalgebra import graph
model = torchvision.models.resnet50(weights=None).eval()
start = time.perf_counter()
{call}
print(time.perf_counter() - start)
"""
)


def cold(call: str) -> float:
    code = COLD.format(call=call)
    sys.path.insert(0, ".")
    out = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path[:0] = " + repr(sys.path[:2]) + "\n" + code],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    torch.set_num_threads(1)
    shape = (3, 224, 224)
    model = resnet50()
    hooks_answer, ours_answer = hook_count(model, shape), analyse(model, shape)
    assert hooks_answer == ours_answer == analyse_zoo(), (hooks_answer, ours_answer)
    print(
        f"resnet50 at {shape}, {torch.get_num_threads()} thread: params "
        f"{ours_answer[0]:,}, MACs {ours_answer[1]:,} (equal all three ways)"
    )
    # wall clock, and CPU time of this process (steadier when other work shares the cores)
    for label, clock in (("wall", time.perf_counter), ("cpu", time.process_time)):
        hooks = best_of(lambda: hook_count(model, shape), 7, clock)
        ours = best_of(lambda: analyse(model, shape), 15, clock)
        built = best_of(analyse_zoo, 30, clock)
        print(
            f"[{label}] forward pass with hooks {1e3 * hooks:8.1f} ms; from_torch + params "
            f"+ MACs + every RF {1e3 * ours:6.2f} ms -> {hooks / ours:.1f}x (target >= 10x); "
            f"zoo.resnet50() + the same {1e3 * built:5.2f} ms -> {hooks / built:.0f}x "
            f"(target >= 50x)"
        )
    cold_hooks = cold(
        "from examples.benchmarks.bench_from_torch import hook_count; "
        "hook_count(model, (3, 224, 224))"
    )
    cold_ours = cold(
        "from examples.benchmarks.bench_from_torch import analyse; analyse(model, (3, 224, 224))"
    )
    print(
        f"first call in a fresh process: hooks {1e3 * cold_hooks:.1f} ms, from_torch "
        f"{1e3 * cold_ours:.1f} ms -> {cold_hooks / cold_ours:.1f}x"
    )


if __name__ == "__main__":
    main()
