"""`uvship build`: an OCI image, written to outputs, local engines and registries."""

from __future__ import annotations

from typing import Any

import click

from .._nochange import remember_call
from .options import build_options


@click.command()
@click.argument("project", default=".", type=click.Path())
@click.option("-o", "--output", "outputs", multiple=True,
              help="oci:DIR[:TAG], docker-archive:FILE (- for stdout), or straight into a local "
              "engine: docker-daemon:NAME[:TAG] or containers-storage:NAME[:TAG] (repeatable).")
@click.option("--push", "push_refs", multiple=True,
              help="Push to a registry reference, e.g. registry.example/app:1.0 (repeatable).")
@click.option("--cache-repo", help="A registry repository that shares built layers "
              "between machines.")
@click.option("--insecure-registry", "insecure", multiple=True,
              help="A registry reached without TLS verification (repeatable).")
@click.option("-t", "--tag", "tags", multiple=True,
              help="Image name:tag for docker-archive outputs, tag for OCI layouts.")
@click.option("--base", default=None,
              help="scratch (default), oci:DIR[:TAG], docker-archive:FILE or a registry "
              "reference.")
@click.option("--entrypoint", help="The program to run, resolved as --command's first word "
              "[default: the package's console script].")
@click.option("--cmd", multiple=True, help="Default arguments after the command (the image's "
              "Cmd; repeatable); `podman run IMAGE ARGS` replaces them.")
@click.option("--env", "env_vars", multiple=True, help="KEY=VALUE in the image's env.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE label.")
@click.option("--user", help="The user the image runs as [default: 65532:65532].")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]), default=None,
              help="Layer compression [default: gzip].")
@build_options
def build(**params: Any) -> None:
    """Build an OCI image of PROJECT without a container engine.

    Every option can also be set in [tool.uvship] of pyproject.toml (same names); the
    command line wins.
    """
    from .run_build import run

    remember_call("build", params)
    run(**params)
