"""Every large-size reproducer of the hostile-input review, each under a memory cap and a time
limit in its own process: a quick refusal naming the size and the alternative, or a bounded,
correct answer.

Each row runs ``python -c`` with ``resource.setrlimit(RLIMIT_AS)`` at 1.5 GiB (numpy, scipy and
sympy load well below it) and a wall-clock limit; the child prints ``refused: <message>`` or
``ok: <value>`` and the test checks which, and the message's key words.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMORY_CAP = 3 * 2**29  # 1.5 GiB of address space for the child
TIME_LIMIT = 40.0  # seconds, imports included, on a loaded 2-core machine

CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
import numpy as np
import convalgebra as ca
BIG = ca.ConvSpec((512, 224, 224), 512, 3, padding=1)
try:
    value = {expr}
except (ca.ConvAlgebraError, TypeError) as exc:
    print("refused:", exc)
else:
    print("ok:", value)
"""

ROWS = [
    # id, expression, expected outcome, words the output must contain
    (
        "conv_matrix 512x224x224",
        "ca.conv_matrix(BIG, np.ones(BIG.weight_shape))",
        "refused",
        ["non-zeros", "conv_operator", "max_bytes="],
    ),
    (
        "conv_matrix padding 10**12",
        "ca.conv_matrix(ca.ConvSpec((4, 8, 8), 6, 3, padding=10**12), np.ones((6, 4, 3, 3)))",
        "refused",
        ["2**62"],
    ),
    (
        "conv_matrix_blocks default",
        "next(iter(ca.conv_matrix_blocks(BIG, np.ones(BIG.weight_shape))))[0]",
        "ok",
        ["slice(0, "],
    ),
    (
        "conv_matrix_blocks 65536 rows",
        "list(ca.conv_matrix_blocks(BIG, np.ones(BIG.weight_shape), 65536))",
        "refused",
        ["block", "max_bytes="],
    ),
    (
        "symbolic_matrix k31",
        "ca.symbolic_matrix(ca.ConvSpec((1, 64, 64), 1, 31))",
        "refused",
        ["max_terms="],
    ),
    ("symbolic_backward 512", "ca.symbolic_backward(BIG)", "refused", ["max_terms="]),
    ("derive matrix 512", "ca.derive('matrix', BIG)", "refused", ["max_products="]),
    ("derive forward 512", "ca.derive('forward', BIG)", "refused", ["max_products="]),
    ("derive backward 512", "ca.derive('backward', BIG)", "refused", ["max_products="]),
    ("check adjoint 512", "ca.check('adjoint', BIG)", "refused", ["max_products="]),
    (
        "check rotation 64^3",
        "ca.check('rotation_equivariance', ca.ConvSpec((1, 64, 64, 64), 1, 3))",
        "refused",
        ["max_products="],
    ),
    (
        "equivariant_kernels 64x64x64",
        "ca.equivariant_kernels(ca.ConvSpec((64, 64, 64), 64, 3))",
        "refused",
        ["max_products="],
    ),
    (
        "unread_inputs dilation 10**9",
        "ca.ConvSpec((1, 5), 1, 3, padding='full', dilation=10**9).unread_inputs",
        "ok",
        ["((),)"],
    ),
    ("dilation 2**70", "ca.ConvSpec((1, 5), 1, 1, dilation=2**70)", "refused", ["2**62"]),
    (
        "colliding sizes stride 10**8",
        "len(ca.colliding_input_sizes(ca.ConvSpec((1, 10**9), 1, 3, stride=10**8)).axes[0].input_sizes)",
        "ok",
        ["100000000"],
    ),
    (
        "conv_operator 10**9 positions",
        "ca.conv_operator(ca.ConvSpec((1, 10**9), 1, 3), np.ones((1, 1, 3)))",
        "refused",
        ["spatial table", "GiB"],
    ),
    (
        "kernel_jacobian 512",
        "ca.kernel_jacobian(BIG, np.ones(BIG.input_shape, np.float32))",
        "refused",
        ["max_bytes="],
    ),
]


def _run(code: str, timeout: float) -> tuple[str, float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, time.monotonic() - start


@pytest.mark.parametrize("expr, outcome, words", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_large_sizes_are_refused_quickly_or_bounded(expr, outcome, words):
    out, seconds = _run(CHILD.format(cap=MEMORY_CAP, expr=expr), TIME_LIMIT)
    assert out.startswith(f"{outcome}:"), out[:500]
    for word in words:
        assert word in out, (word, out[:500])
    assert len(out) < 2000 and seconds < TIME_LIMIT


CLI_ROWS = [
    ("grad transposed 2x3000x3000", ["grad", "--in", "2x3000x3000", "-k", "3", "--transposed"]),
    ("matrix 512x224x224", ["matrix", "--in", "512x224x224", "--out", "512", "-k", "3"]),
    (
        "derive backward 512",
        ["derive", "backward", "--in", "512x224x224", "--out", "512", "-k", "3"],
    ),
    ("unicode digits", ["matrix", "--in", "１x５", "-k", "1"]),
]


@pytest.mark.parametrize("argv", [r[1] for r in CLI_ROWS], ids=[r[0] for r in CLI_ROWS])
def test_large_command_lines_exit_2_with_one_line(argv, tmp_path):
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP}))
        from convalgebra.cli import main
        sys.exit(main({argv!r}))
    """)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stderr[-1000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 1500
    assert done.stdout == "" and list(tmp_path.iterdir()) == []
    assert time.monotonic() - start < TIME_LIMIT


def test_yaml_alias_bomb_and_deep_json_are_refused_with_short_messages(tmp_path):
    pytest.importorskip("yaml", reason="the [yaml] extra is not installed: pip install '.[test]'")
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(levels + ["layers: *a8", "input: *a8"]) + "\n")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for name in ("bomb.yaml", "deep.json"):
        code = textwrap.dedent(f"""
            import resource, sys
            resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP}))
            from convalgebra.cli import main
            sys.exit(main(["analyze", {name!r}]))
        """)
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=TIME_LIMIT,
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1 and len(lines[0]) < 300, lines[:2]


# ------------------------------------------------------------ every door: size, time, integers
# Each call runs in its own process under the 1.5 GiB address-space cap, after the heavy modules
# are imported (so the clock measures the call): a refusal naming the size and the way out, or
# the exact value, well inside CALL_LIMIT (about a second or less on an idle laptop).
CALL_LIMIT = 10.0  # seconds for the call alone, on a loaded 2-core machine

DOOR_CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
import numpy as np
import convalgebra as ca
import convalgebra.derivations, convalgebra.identities, convalgebra.figures, convalgebra.testing
from convalgebra import ConvSpec
from convalgebra.network.graph import LayerGraph
from convalgebra.network.layers import Conv
start = time.monotonic()
try:
    value = {expr}
except (ca.ConvAlgebraError, TypeError) as exc:
    print("refused:", exc)
else:
    print("ok:", value)
print("seconds:", time.monotonic() - start)
"""

PAD = "ConvSpec((1, 4, 4), 1, 3, padding=30000)"
DOOR_ROWS = [
    (
        "check composition of a pair over budget",
        "ca.check('composition', ConvSpec((8, 800), 8, 9), ConvSpec((8, 792), 8, 9))",
        ["32,845,824 paths", "max_products="],
    ),
    (
        "check layer_commutativity of a pair over budget",
        "ca.check('layer_commutativity', ConvSpec((8, 800), 8, 9), ConvSpec((8, 792), 8, 9))",
        ["paths", "max_products="],
    ),
    ("derive matrix padding 30000", f"ca.derive('matrix', {PAD})", ["max_products="]),
    ("derive im2col padding 30000", f"ca.derive('im2col', {PAD})", ["max_products="]),
    ("matrix_structure padding 30000", f"ca.matrix_structure({PAD})", ["max_bytes="]),
    ("conv_tikz padding 30000", f"ca.conv_tikz({PAD})", ["60004 x 60004", "smaller"]),
    (
        "effective receptive field 1x60000",
        "ca.effective_receptive_field(LayerGraph.sequential((1, 60000), [Conv(1, 3)]))",
        ["59,998 x 60,000", "smaller input"],
    ),
    (
        "dottest 10**7 trials",
        "ca.testing.dottest(ca.conv_operator(ConvSpec((1, 4), 1, 2), np.ones((1, 1, 2))), "
        "n_trials=10**7)",
        ["10,000,000 trials", "fewer"],
    ),
    (
        "uint64 weight above 2**63",
        "ca.conv_matrix(ConvSpec((1, 2), 1, 1), np.array([[[2**63 + 5]]], np.uint64))",
        ["2**63 - 1", "9,223,372,036,854,775,813"],
    ),
    (
        "int64 circular duplicates summed",
        "ca.conv_matrix(ConvSpec((1, 1), 1, 3, padding=1, padding_mode='circular'), "
        "np.full((1, 1, 3), 2**62))",
        ["2**63 - 1", "3 terms"],
    ),
    (
        "kernel_jacobian of uint64 input",
        "ca.kernel_jacobian(ConvSpec((1, 2), 1, 1), np.array([[2**63 + 5, 1]], np.uint64))",
        ["2**63 - 1"],
    ),
    (
        "gradient of uint64 upstream",
        "ca.input_gradient(ConvSpec((1, 2), 1, 1), [[[1]]], np.array([[2**64 - 1, 1]], np.uint64))",
        ["2**63 - 1"],
    ),
    (
        "padding_word same on padding 0",
        "ConvSpec((1, 5), 1, 3, padding=0, padding_word='same')",
        ["padding_word='same' does not describe padding=0"],
    ),
]


@pytest.mark.parametrize("expr, words", [r[1:] for r in DOOR_ROWS], ids=[r[0] for r in DOOR_ROWS])
def test_each_door_refuses_in_one_line_under_the_caps(expr, words):
    out, _ = _run(DOOR_CHILD.format(cap=MEMORY_CAP, expr=expr), TIME_LIMIT)
    verdict, seconds = out.rstrip("\n").rsplit("\n", 1)
    assert verdict.startswith("refused:") and "\n" not in verdict, out[:800]
    for word in words:
        assert word in verdict, (word, verdict[:800])
    assert float(seconds.split()[1]) < CALL_LIMIT


def _cli(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP}))
        from convalgebra.cli import main
        sys.exit(main({argv!r}))
    """)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    return done, time.monotonic() - start


DOOR_CLI_ROWS = [
    ("grad numeric 1x150000000", ["grad", "--numeric", "--in", "1x150000000", "-k", "1"], "GiB"),
    (
        "check adjoint with an arange weight of 3.6e9 entries",
        ["check", "adjoint", "--in", "60000x1", "--out", "60000", "-k", "1", "--weight", "arange"],
        "26.8 GiB",
    ),
    (
        "check max_pool_invariance 1x60000x60000",
        ["check", "max_pool_invariance", "--in", "1x60000x60000"],
        "26.8 GiB",
    ),
    (
        "derive output_size GIF of 324 frames",
        ["derive", "output_size", "--in", "1x20x20", "-k", "3", "--figure", "f.gif"],
        "324 frames",
    ),
    ("weight 1e999", ["matrix", "--in", "1x2", "-k", "1", "--weight", "1e999"], "range"),
    ("weight 1e-999", ["matrix", "--in", "1x2", "-k", "1", "--weight", "1e-999"], "range"),
    ("weight file a FIFO", ["matrix", "--in", "1x2", "-k", "1", "--weight", "w.txt"], "FIFO"),
    (
        "weight file a link to /dev/zero",
        ["matrix", "--in", "1x2", "-k", "1", "--weight", "zero.txt"],
        "character device",
    ),
    (
        "weight file uint64 above 2**63",
        ["matrix", "--in", "1x2", "-k", "1", "--weight", "u64.npy"],
        "2**63 - 1",
    ),
]


@pytest.mark.parametrize(
    "argv, word", [r[1:] for r in DOOR_CLI_ROWS], ids=[r[0] for r in DOOR_CLI_ROWS]
)
def test_each_door_on_the_command_line_exits_2_in_one_line(argv, word, tmp_path):
    os.mkfifo(tmp_path / "w.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    np.save(tmp_path / "u64.npy", np.array([[[2**63 + 5]]], np.uint64))
    before = set(tmp_path.iterdir())
    done, seconds = _cli(argv, tmp_path)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-1000:]
    assert lines[0].startswith("error: ") and word in lines[0], lines[0]
    assert done.stdout == "" and set(tmp_path.iterdir()) == before
    assert seconds < TIME_LIMIT


def test_the_matrix_corner_of_a_large_layer_is_printed_from_its_first_rows(tmp_path):
    # k = 1: the matrix is W ⊗ I, so its 17 x 17 corner is w1 times the identity
    done, seconds = _cli(["matrix", "--in", "2x2200x2200", "--out", "2", "-k", "1"], tmp_path)
    assert done.returncode == 0, done.stderr[-1000:]
    rows = [line for line in done.stdout.splitlines() if line.endswith(" …")]
    expected = [" ".join("1" if c == r else "·" for c in range(16)) + " …" for r in range(16)]
    assert rows == expected
    assert "19,360,000 non-zeros" in done.stdout and "used 4840000 times" in done.stdout
    assert seconds < TIME_LIMIT
