"""What the command-line scripts share."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from absl import app

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")


def run(argv: Sequence[str], main: Callable) -> None:
    """`absl.app.run(main)`, except that asking for help exits with status 0 (absl's is 1)."""
    try:
        app.run(main, argv=list(argv))
    except SystemExit as exit_:
        asked = any(a in HELP_FLAGS for a in argv[1:])
        sys.exit(0 if asked and exit_.code == 1 else exit_.code)
