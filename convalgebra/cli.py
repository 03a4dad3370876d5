"""The ``convalgebra`` command line."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Print the matrix report of the book's 2-D example (placeholder until subcommands land)."""
    from .report import matrix_report
    from .spec import ConvSpec

    spec = ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular")
    print(matrix_report(spec))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
