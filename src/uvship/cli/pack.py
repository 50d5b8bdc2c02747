"""`uvship pack-python`: a local CPython as a uv-managed Python download."""

from __future__ import annotations

from pathlib import Path

import click

from .output import RichProgress, emit, errors


@click.command("pack-python")
@click.argument("python", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Directory for the archive and downloads.json.")
@click.option("--strip", is_flag=True, help="Strip the interpreter's binaries.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
def pack_python(python: str, output: str, strip: bool, as_json: bool) -> None:
    """Make a local CPython relocatable and pack it as a uv-managed Python download.

    Point UV_PYTHON_DOWNLOADS_JSON_URL (or uv's python-downloads-json-url setting) at
    the downloads.json it writes, and uv installs that Python with no network.
    """
    from ..python.pack import pack

    with errors(), RichProgress().step(f"packing {python}"):
        res = pack(Path(python), Path(output), strip=strip)
    emit({"archive": str(res.archive), "downloads_json": str(res.downloads_json),
           "key": res.key, "version": res.version}, as_json, str(res.downloads_json))
