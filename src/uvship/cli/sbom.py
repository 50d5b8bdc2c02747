"""The `audit` and `sbom` commands (registered on the main group in cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip the workspaces whose path (relative to PATH) matches, e.g. "
                   "'legacy/**' or '**/tests/**' (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text",
              show_default=True, help="The report on stdout.")
@click.option("--service-url", metavar="URL",
              help="An OSV-compatible vulnerability service [default: uv's, OSV.dev].")
@click.option("--ignore", multiple=True, metavar="ID",
              help="An advisory to ignore, by ID or alias (repeatable).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Workspaces audited at once.")
def audit(path: str, exclude: tuple[str, ...], fmt: str, service_url: str | None,
          ignore: tuple[str, ...], jobs: int) -> None:
    """Audit the locked dependencies of every uv workspace under PATH for known
    vulnerabilities, with uv's audit against an OSV-compatible service.

    Exit status: 0 nothing found, 1 a vulnerability (or an archived, deprecated or
    quarantined project) in some workspace, 2 a workspace that could not be audited.
    """
    from .. import audit as _audit
    from ..errors import InputError
    from .output import errors

    root = Path(path)
    with errors():
        targets = _audit.find_targets(root, exclude)
        if not targets.audit and not targets.excluded:
            raise InputError(f"{root}: no uv workspace found (expected a uv.lock beside a "
                             "pyproject.toml somewhere under it)",
                             hint="run `uv lock` in each project to audit")
        reports = _audit.audit_tree(root, exclude=exclude, service_url=service_url,
                                    ignore=ignore, jobs=jobs)
    for ws in targets.excluded:
        click.echo(f"skipped (excluded): {ws / 'uv.lock'}", err=True)
    render = {"text": _audit.render_text, "json": _audit.render_json,
              "sarif": _audit.render_sarif}[fmt]
    if reports or fmt != "text":
        click.echo(render(reports, root))
    for r in reports:
        if r.error:
            click.echo(f"error: {r.lock}: not audited: {r.error}", err=True)
    if any(r.error for r in reports):
        sys.exit(2)
    if any(r.failed for r in reports):
        sys.exit(1)


@click.command()
@click.argument("image")
@click.option("--insecure-registry", "insecure", multiple=True,
              help="A registry reached without TLS verification (repeatable).")
@click.option("--platform", help="Of a multi-platform OCI layout, the image whose SBOM to "
                                 "print (e.g. linux/arm64).")
def sbom(image: str, insecure: tuple[str, ...], platform: str | None) -> None:
    """Print the CycloneDX SBOM of IMAGE: oci:DIR[:TAG], a registry reference (found
    through the referrers API or the sha256-<hex> tag), or a bundle (FILE.tar.gz, DIR)."""
    from .. import targets
    from ..errors import InputError
    from ..sbom import layout as _layout
    from ..sbom import referrers as _referrers
    from .output import errors

    with errors():
        t = targets.parse(image, paths=True)
        if t.kind == "oci" and t.path is not None:
            data = _layout.read_from_layout(t.path, t.tag, platform)
        elif t.kind == "docker-archive":
            raise InputError(f"{image}: a docker-archive holds no SBOM",
                             hint="read it from the OCI layout or the registry the image "
                                  "was written to")
        elif t.kind == "path" and t.path is not None:
            data = _bundle_sbom(t.path, platform)
        else:
            if platform:
                raise InputError(f"{image}: --platform chooses an image of an OCI layout; "
                                 "expected oci:DIR[:TAG]",
                                 hint="of a registry index, name the platform's image by "
                                      "digest (REPOSITORY@sha256:...)")
            data = _referrers.find_sbom(image, insecure=insecure)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _bundle_sbom(path: Path, platform: str | None) -> bytes:
    from ..errors import InputError
    from ..publish.bundle import BUNDLE_DIR_SBOM

    if (path / "oci-layout").is_file():
        from ..sbom.layout import read_from_layout

        return read_from_layout(path, platform=platform)
    if path.is_dir():
        found = path / BUNDLE_DIR_SBOM
    else:  # beside the file, or beside the file a symlink points to (where uvship puts it)
        found = path.with_name(path.name + ".cdx.json")
        real = path.resolve()
        if not found.is_file() and real.with_name(real.name + ".cdx.json").is_file():
            found = real.with_name(real.name + ".cdx.json")
    if not found.is_file():
        raise InputError(f"{path}: no SBOM beside it (expected {found})",
                         hint="uvship bundle writes one beside the bundles it makes")
    return found.read_bytes()
