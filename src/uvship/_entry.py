"""The `uvship` program: `--version` and an unchanged rebuild (answered from its stamp,
_nochange) before the command line's framework and the build are imported, a rebuild of
the same command line with the parse its stamp kept; anything else goes to the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # click's answer, without importing click
        from ._version import version

        sys.stdout.write(f"uvship, version {version()}\n")
        sys.exit(0)
    from . import _nochange

    answer = _nochange.replay(sys.argv)
    if answer is True:
        sys.exit(0)
    if answer:  # an input changed, not the code: the kept parse, without click
        from importlib import import_module

        module, params = answer
        import_module(module).run(**params)
        sys.exit(0)
    from .cli.main import main as cli

    cli()
