"""The command line's group: `uvship` and its commands, parsed by click."""

from __future__ import annotations

import importlib

import click

from .._version import version
from .output import set_debug

# Each command's module is imported when that command runs (click's lazy subcommands): a
# build does not pay for importing the doctor, the audit or the bundle writer.
_COMMANDS = {"audit": ("sbom", "audit"), "build": ("build", "build"),
             "bundle": ("bundle", "bundle"), "dockerfile": ("docker", "dockerfile_cmd"),
             "doctor": ("docker", "doctor_cmd"), "inspect": ("inspect", "inspect_cmd"),
             "pack-python": ("pack", "pack_python"), "sbom": ("sbom", "sbom")}


class _Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[cmd_name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version(), prog_name="uvship")
@click.option("--debug", is_flag=True, envvar="UVSHIP_DEBUG",
              help="On an error, show its traceback and causes too.")
def main(debug: bool) -> None:
    """Ship uv projects: relocatable bundles and daemonless, reproducible OCI images."""
    set_debug(debug)


if __name__ == "__main__":
    main()
