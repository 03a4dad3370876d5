"""Fuzzing the doors of size, time and integers: hostile configurations drawn from a seeded
generator, each call run under a 1.5 GiB address-space cap and a per-call alarm, tallied as
clear (a value or a refusal in the error family), wrong type, crash, hang, memory, or wrong
value. Crash, hang, memory and wrong value must stay at zero.

The estimators themselves are held against brute force on small instances: the two-layer path
bound against the paths counted from both triple tables, the figure budget against the cells
counted from the layout, the array budget against the bytes, the file budget against the size.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import conv_specs

import convalgebra as ca
from convalgebra import budget
from convalgebra.connectivity import triples
from convalgebra.errors import ConvAlgebraError
from convalgebra.figures import FIGURE_MAX_CELLS, require_figure

ROOT = Path(__file__).resolve().parents[1]
MEMORY_CAP = 3 * 2**29
SCALE = settings.default.max_examples  # 200 under "ci", 60 under "dev", 2500 under "nightly"
CALL_ALARM = 10  # seconds per call before it counts as a hang

CHILD = r'''
import json, math, resource, signal, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
import numpy as np
import convalgebra as ca
import convalgebra.derivations, convalgebra.identities, convalgebra.figures, convalgebra.testing
from convalgebra import ConvSpec
from convalgebra.network.graph import LayerGraph
from convalgebra.network.layers import Conv

rng = np.random.default_rng({seed})
tally = dict(inputs=0, clear=0, wrong_type=0, crash=0, hang=0, memory=0, wrong_value=0)
worst = dict(seconds=0.0)
failures = []


def alarm(signum, frame):
    raise TimeoutError


signal.signal(signal.SIGALRM, alarm)


def size():
    return int(rng.choice([1, 3, 8, 50, 800, 3000, 30000, 150000]))


def spec1(channels=8):
    k = int(rng.integers(1, 10))
    n = max(size(), k)
    return ConvSpec((int(rng.integers(1, channels + 1)), n), int(rng.integers(1, channels + 1)),
                    k, padding=int(rng.choice([0, 1, 4, 30000])))


def cases():
    pad = int(rng.choice([0, 3, 30, 30000]))
    small = ConvSpec((1, 4, 4), 1, 3, padding=pad)
    a = spec1()
    b = ConvSpec((a.output_shape[0], max(a.output_shape[1], 9)), int(rng.integers(1, 9)),
                 int(rng.integers(1, 10)))
    big = int(rng.choice([2, 2**40, 2**62, 2**63 + 5]))
    dtype = np.uint64 if big > 2**63 - 1 else np.int64
    mode = str(rng.choice(["zeros", "circular", "reflect", "replicate"]))
    n = int(rng.integers(3, 6))
    ispec = ConvSpec((1, n), 1, 3, padding=1, padding_mode=mode)
    w = np.full((1, 1, 3), big, dtype=dtype)
    return [
        ("composition", lambda: ca.check("composition", a, b), None),
        ("layer_commutativity", lambda: ca.check("layer_commutativity", a, b), None),
        ("derive matrix", lambda: ca.derive("matrix", small), None),
        ("derive im2col", lambda: ca.derive("im2col", small), None),
        ("conv_tikz", lambda: ca.conv_tikz(small), None),
        ("effective_receptive_field",
         lambda: ca.effective_receptive_field(LayerGraph.sequential((1, size() + 3), [Conv(1, 3)])),
         None),
        ("dottest", lambda: ca.testing.dottest(
            ca.conv_operator(ConvSpec((1, 4), 1, 2), np.ones((1, 1, 2))),
            n_trials=int(rng.choice([1, 3, 10**3, 10**7, 2**61]))), None),
        ("integer matrix", lambda: ca.conv_matrix(ispec, w), (ispec, w)),
    ]


def exact(spec, w):
    """The exact matrix in Python integers, from the triple table."""
    from convalgebra.connectivity import triples
    t = triples(spec)
    m = {{}}
    for o, i, k in zip(t.out_index.tolist(), t.in_index.tolist(), t.weight_index.tolist()):
        m[(o, i)] = m.get((o, i), 0) + int(w.ravel()[k])
    return m


for _ in range({count}):
    for name, call, check in cases():
        tally["inputs"] += 1
        start = time.monotonic()
        signal.alarm({alarm})
        try:
            value = call()
        except (ca.ConvAlgebraError,) as exc:
            outcome = "clear" if "\n" not in str(exc) and len(str(exc)) < 1500 else "crash"
        except TypeError:
            outcome = "wrong_type"
        except TimeoutError:
            outcome = "hang"
        except MemoryError:
            outcome = "memory"
        except Exception as exc:
            outcome = "crash"
            failures.append(f"{{name}}: {{type(exc).__name__}}: {{str(exc)[:200]}}")
        else:
            outcome = "clear"
            if check is not None:
                got = {{(o, i): int(v) for (o, i), v in value.todok().items()}}
                want = {{key: v for key, v in exact(*check).items() if v}}
                if {{k: v for k, v in got.items() if v}} != want:
                    outcome = "wrong_value"
                    failures.append(f"{{name}}: wrong value")
        finally:
            signal.alarm(0)
        worst["seconds"] = max(worst["seconds"], time.monotonic() - start)
        tally[outcome] += 1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(tally=tally, worst_seconds=worst["seconds"], peak_mib=peak,
                      failures=failures[:10])))
'''


def test_hostile_sizes_and_integers_are_clear_within_the_caps():
    count = max(2, SCALE // 40)  # rounds of every family: 5 under "ci", 62 under "nightly"
    code = CHILD.format(cap=MEMORY_CAP, seed=20261207, count=count, alarm=CALL_ALARM)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60 + count * 8 * CALL_ALARM,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    print("\nhostile doors tally:", report)
    tally = report["tally"]
    assert tally["inputs"] == count * 8
    assert tally["crash"] == tally["hang"] == tally["memory"] == tally["wrong_value"] == 0, report
    assert tally["clear"] + tally["wrong_type"] == tally["inputs"]


# ---------------------------------------------------------------- the estimators, brute force
def _paths(first: ca.ConvSpec, second: ca.ConvSpec) -> int:
    """Paths o <- m <- i of second after first, counted from both triple tables."""
    t1, t2 = triples(first), triples(second)
    n_mid = math.prod(first.output_shape)
    out_of_first = np.bincount(t1.out_index, minlength=n_mid)
    into_second = np.bincount(t2.in_index, minlength=n_mid)
    return int(out_of_first @ into_second)


@settings(max_examples=max(10, SCALE // 2), deadline=None, suppress_health_check=list(HealthCheck))
@given(first=conv_specs(ndims=(1, 2), max_size=6), data=st.data())
def test_the_pair_bound_covers_the_paths_both_ways(first, data):
    nd = first.ndim
    out_c, *spatial = first.output_shape
    k = tuple(data.draw(st.integers(1, n)) for n in spatial)
    mode = data.draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
    pad = tuple(
        data.draw(st.integers(0, max(0, n - 1 if mode == "reflect" else 2))) for n in spatial
    )
    try:
        second = ca.ConvSpec(
            (out_c, *spatial), data.draw(st.integers(1, 3)), k, padding=pad, padding_mode=mode
        )
    except ConvAlgebraError:
        return
    assert second.ndim == nd
    bound = budget.require_pair(first, second, "the pair", 10**9, 2**62)
    assert bound >= _paths(first, second)
    if second.output_shape == first.input_shape:
        assert bound >= _paths(second, first)


@given(shape=st.lists(st.integers(0, 10**6), min_size=1, max_size=4), limit=st.integers(1, 2**24))
@example(shape=[60004, 60004], limit=2**30)
def test_array_budget_refuses_exactly_above_the_limit(shape, limit):
    nbytes = math.prod(shape) * 8
    try:
        array = budget.zeros(tuple(shape), max_bytes=limit)
    except ConvAlgebraError as exc:
        assert nbytes > limit and f"{math.prod(shape):,} entries" in str(exc)
        return
    assert nbytes <= limit and array.shape == tuple(shape) and not array.any()


@given(spec=conv_specs(ndims=(1, 2), max_size=60, transposed=None))
@example(spec=ca.ConvSpec((1, 2), 1, 1, padding=((0, 1),), transposed=True))
def test_figure_budget_counts_the_drawn_cells(spec):
    try:
        cells, frames = require_figure(spec)
    except ConvAlgebraError as exc:
        if "cells" not in str(exc):  # not drawable at all (a transposed crop): nor is the layout
            with pytest.raises(ConvAlgebraError):
                ca.figures.figure_layout(spec)
        return
    layout = ca.figures.figure_layout(spec)
    assert frames == math.prod(layout["output"])
    assert cells == layout["padding"].size + frames <= FIGURE_MAX_CELLS


@given(size=st.integers(0, 5000), limit=st.integers(1, 5000))
def test_file_budget_reads_regular_files_up_to_the_limit(size, limit, tmp_path_factory):
    path = tmp_path_factory.mktemp("f") / "w.bin"
    path.write_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
    try:
        data = budget.read_regular_file(path, "weight", limit)
    except ConvAlgebraError as exc:
        assert size > limit and "max_bytes" in str(exc)
        return
    assert size <= limit and data == path.read_bytes()


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "missing"])
def test_file_budget_refuses_what_is_not_a_regular_file_without_blocking(kind, tmp_path):
    path = tmp_path / "w.txt"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(ConvAlgebraError, match="regular file|cannot read"):
        budget.read_regular_file(path, "weight")
