"""Write the Markdown derivation of every seed example to ``examples/derivations/NN_<slug>.md``.

Usage::

    python examples/derivations/generate.py           # write the files, print the timings
    python examples/derivations/generate.py --check   # exit 1 if a file is missing or stale

Each derivation is verified (every printed equation parsed back and compared with the value
the library computed) before it is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from seeds import EXTRAS, SEEDS, filename

HERE = Path(__file__).resolve().parent


def build(number: int, slug: str, builder) -> str | None:
    """The verified Markdown of one seed, or None when its API is not available yet."""
    try:
        derivation = builder()
    except LookupError as exc:
        print(f"seed {number:2d} skipped: {exc}", file=sys.stderr)
        return None
    derivation.verify()
    return derivation.to_markdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the files instead of writing"
    )
    args = parser.parse_args(argv)
    stale, start = [], time.perf_counter()
    for number, slug, builder in SEEDS + EXTRAS:
        t0 = time.perf_counter()
        text = build(number, slug, builder)
        if text is None:
            continue
        path = HERE / filename(number, slug)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
        print(f"seed {number:2d} {slug:<26} {time.perf_counter() - t0:6.2f} s")
    print(f"all seeds: {time.perf_counter() - start:.2f} s")
    if stale:
        print("stale or missing: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
