"""The ``convalgebra`` command.

:mod:`.main` builds the parser and runs a subcommand; :mod:`.args` parses the layer flags;
:mod:`.layer_commands` (``matrix``, ``grad``, ``check``, ``derive``) and
:mod:`.network_commands` (``analyze``, ``rf``, ``params``) turn parsed arguments into a
:class:`~convalgebra.cli.common.Result`; :mod:`.common` holds what they share. Nothing in the
library imports this package.
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
