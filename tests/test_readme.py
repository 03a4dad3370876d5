"""The README's examples run as written (doctest), when the extras they use are installed."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run_as_written():
    pytest.importorskip(
        "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
    )  # the tour imports a torch model and draws no pictures
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testfile(str(README), module_relative=False, optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
