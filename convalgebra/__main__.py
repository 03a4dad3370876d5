"""``python -m convalgebra``: the command line (same as the ``convalgebra`` command)."""

import sys

from .cli import main

sys.exit(main())
