"""Benchmark: ``convalgebra analyze`` and ``convalgebra rf`` on long JSON chains.

A chain of ``n`` layers (3x3 convolutions and ReLUs alternating) is written as a JSON graph
file, then read and analysed through the command line's ``main(argv)`` in this process, for
n = 1,000, 10,000 and 100,000. The time per node stays flat when the cost grows linearly;
the last column is the time per node relative to the 1,000-layer chain measured in the same
run (a quadratic step would make it grow tenfold per row).

Run: ``python examples/benchmarks/bench_chain_cli.py`` (``--quick`` stops at 10,000).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from convalgebra.cli import main


def write_chain(folder: Path, n: int) -> Path:
    layers = [
        {"kind": "conv", "out_channels": 1, "kernel_size": 3, "padding": 1}
        if i % 2 == 0
        else {"kind": "relu"}
        for i in range(n)
    ]
    path = folder / f"chain{n}.json"
    path.write_text(json.dumps({"input": [1, 32, 32], "layers": layers}))
    return path


def run(argv: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == 0, argv
    return time.perf_counter() - start


def main_() -> None:
    sizes = (1_000, 10_000) if "--quick" in sys.argv else (1_000, 10_000, 100_000)
    with tempfile.TemporaryDirectory() as folder:
        paths = {n: write_chain(Path(folder), n) for n in sizes}
        run(["analyze", str(paths[sizes[0]])])  # warm-up: imports
        print(f"{'command':<8} {'layers':>8} {'seconds':>9} {'us/node':>9} {'vs 1k':>7}")
        for command in ("analyze", "rf"):
            base = None
            for n in sizes:
                seconds = run([command, str(paths[n])])
                per = seconds / n * 1e6
                base = base or per
                print(f"{command:<8} {n:>8,} {seconds:>9.2f} {per:>9.1f} {per / base:>7.2f}")


if __name__ == "__main__":
    main_()
