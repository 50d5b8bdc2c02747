"""`uvship inspect`: each layer of an image, what it holds and why it changed."""

from __future__ import annotations

from typing import Any

import click

from .output import emit, errors, size


@click.command("inspect")
@click.argument("image")
@click.option("--insecure-registry", "insecure", multiple=True,
              help="A registry reached without TLS verification (repeatable).")
@click.option("--platform", help="Of a multi-platform image, only this platform "
              "[default: every platform].")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
def inspect_cmd(image: str, insecure: tuple[str, ...], platform: str | None,
                as_json: bool) -> None:
    """Show each layer of IMAGE: size, what it holds, why it changed since the last build."""
    with errors():
        from ..inspect import inspect

        data = inspect(image, insecure, platform)
    if as_json:
        emit(data, True, "")
        return
    head = (f"{image}: {len(data['platforms'])} platforms: {', '.join(data['platforms'])}\n\n"
            if "images" in data else "")
    click.echo(head + "\n\n".join(_inspect_text(d) for d in data.get("images", [data])))


def _inspect_text(data: dict[str, Any]) -> str:
    lines = [f"{data['digest']}  {data['platform']}  {len(data['layers'])} layers, "
             f"{size(data['size'])}"]
    for n, layer in enumerate(data["layers"], 1):
        lines.append(f"{n:>2}  {size(layer['size']):>9}  {layer['role']:<12} "
                     f"{layer['created_by']}")
        biggest = sorted(layer["holds"].items(), key=lambda kv: -kv[1])[:5]
        holds = ", ".join(f"{k} {size(v)}" for k, v in biggest)
        lines.append(f"      holds: {holds}")
        if layer["changed"] is not None:
            lines.append(f"      since the last build: {layer['changed']}")
    return "\n".join(lines)
