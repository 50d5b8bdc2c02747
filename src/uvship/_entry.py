"""The `uvship` program: `--version` and an unchanged rebuild (answered from its stamp,
_nochange) before the command line's framework and the build are imported; anything else
goes to the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # click's answer, without importing click
        from ._version import version

        sys.stdout.write(f"uvship, version {version()}\n")
        sys.exit(0)
    from . import _nochange

    if _nochange.replay(sys.argv):
        sys.exit(0)
    from .cli import main as cli

    cli()
