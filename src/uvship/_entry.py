"""The `uvship` program: an unchanged rebuild is answered from its stamp (_nochange) before
the command line's framework and the build are imported; anything else goes to the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    from . import _nochange

    if _nochange.replay(sys.argv):
        sys.exit(0)
    from .cli import main as cli

    cli()
