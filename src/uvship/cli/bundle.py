"""`uvship bundle`: the environment and its Python, laid out for their final paths."""

from __future__ import annotations

from typing import Any

import click

from .._nochange import remember_call
from .options import build_options


@click.command()
@click.argument("project", default=".", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A directory, or a FILE.tar.gz (reproducible). With several --platform "
              "values, one per platform: {platform} in it is replaced, else -linux-ARCH is "
              "added (app.tar.gz -> app-linux-arm64.tar.gz).")
@click.option("--relocatable", is_flag=True, default=None,
              help="A bundle that runs wherever it is unpacked, by any user: DIR/bin/python "
              "is the environment's interpreter and DIR/bin/<script> its console scripts "
              "(the layout Spark's --archives, conda-pack and venv-pack use); no project "
              "files, no fixed paths.")
@build_options
def bundle(**params: Any) -> None:
    """Bundle PROJECT's environment and its Python, laid out for their final paths."""
    from .run_bundle import run

    remember_call("bundle", params)
    run(**params)
