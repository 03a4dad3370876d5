"""The command line's file rules are the library's: :mod:`convalgebra.files`.

Every output (``--save``, ``--plot``, ``-o``, ``--figure``) goes through :func:`write_files`;
``-`` is standard output.
"""

from __future__ import annotations

from ..files import STDOUT, check_distinct, check_target, write_files

__all__ = ["STDOUT", "write_files", "check_target", "check_distinct"]
