"""The command line: the only code that prints or exits (one module per command, and
output.py for what they show)."""

from __future__ import annotations

import click

from .build import build
from .bundle import bundle
from .docker import dockerfile_cmd, doctor_cmd
from .inspect import inspect_cmd
from .output import set_debug
from .pack import pack_python
from .sbom import audit, sbom


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="uvship", prog_name="uvship")
@click.option("--debug", is_flag=True, envvar="UVSHIP_DEBUG",
              help="On an error, show its traceback and causes too.")
def main(debug: bool) -> None:
    """Ship uv projects: relocatable bundles and daemonless, reproducible OCI images."""
    set_debug(debug)


for _command in (bundle, build, inspect_cmd, pack_python, dockerfile_cmd, doctor_cmd, audit,
                 sbom):
    main.add_command(_command)

if __name__ == "__main__":
    main()
