"""The `dockerfile` and `doctor` commands; cli.py registers them with main.add_command.

cli.py's helpers are imported inside the commands, so cli.py may import this module at any
point without an import cycle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..doctor.report import Report


@click.command("dockerfile")
@click.argument("project", default=".", type=click.Path())
@click.option("--package", multiple=True, help="Workspace package to ship (repeatable).")
@click.option("--all-packages", is_flag=True, default=None, help="Ship every workspace member.")
@click.option("--extra", multiple=True, help="Include an optional extra (repeatable).")
@click.option("--all-extras", is_flag=True, default=None, help="Include every extra.")
@click.option("--group", multiple=True,
              help="Include a dependency group (repeatable); dev is left out by default.")
@click.option("--variant", type=click.Choice(["venv", "system", "managed-python"]),
              default="venv", show_default=True,
              help="venv: the image's Python and a venv copied into the final stage; system: "
                   "install into the image's Python; managed-python: a uv-managed Python "
                   "copied with the venv into a base with no Python.")
@click.option("--python", help="The Python version (X.Y) [default: .python-version, else the "
              "minor version of the CPython `build` chooses for requires-python]; sets "
              "UV_PYTHON in the Dockerfile.")
@click.option("--base-image", help="The final stage's base [default: python:X.Y-slim-bookworm; "
              "debian:bookworm-slim for managed-python].")
@click.option("--builder-image", help="The build stage's base [default: the base image; "
              "debian:bookworm-slim for managed-python].")
@click.option("--uv-image", help="The image uv is copied from [default: "
              "ghcr.io/astral-sh/uv:VERSION, the uv the project requires or uvship runs].")
@click.option("--python-path", help="Where the managed Python is installed [default: "
              "/opt/python]; the image's Python prefix for --variant system [default: /usr/local].")
@click.option("--venv-path", help="Where the venv lives in the image [default: /app/.venv].")
@click.option("--user", help="The user the image runs as [default: 65532:65532].")
@click.option("--entrypoint", help="The program to run [default: the package's console "
              "script].")
@click.option("--command", help="What the image runs, as one command line (the same meaning "
              "as for `uvship build`), e.g. 'gunicorn app.wsgi:application --bind 0.0.0.0:8000'.")
@click.option("--build-step", "build_steps", multiple=True,
              help="A command run in the build stage after the project is installed, in the "
              "project's files (repeatable), e.g. 'python manage.py collectstatic --noinput'.")
@click.option("--project-files/--no-project-files", default=None,
              help="Copy the project's directory into the image [default: for a project "
              "without [build-system]].")
@click.option("--workdir", help="Where the image starts (relative: to the project's files).")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Directory for the files [default: the workspace root, the build context].")
@click.option("--force", is_flag=True, help="Replace files that uvship did not generate.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
def dockerfile_cmd(project: str, variant: str, base_image: str | None,
                   builder_image: str | None, uv_image: str | None, output: str | None,
                   force: bool, as_json: bool, **kw: Any) -> None:
    """Write a Dockerfile, .dockerignore and compose.yaml for PROJECT.

    Multi-stage, uv cached, dependencies in their own layer, non-root, the console script as
    the command. Works with BuildKit and with podman/buildah.
    """
    from .output import emit, errors

    with errors():
        from .. import dockerfile as _df
        from ..project.plan import check_user
        from ..project.workspace import Workspace
        from ..uv import uv_version
        from .running import command_words

        ws = Workspace.open(project)
        kw["command"] = command_words(kw.pop("command"))
        plan, opts = _df.make_docker_plan(ws, variant, **kw)
        dopts = _df.DockerOptions(
            variant=variant, base_image=base_image, builder_image=builder_image,  # type: ignore[arg-type]
            uv_image=uv_image, user=check_user(opts.user or "65532:65532"),
            entrypoint=opts.entrypoint)
        out = Path(output) if output else ws.root
        rendered = _df.render(ws, plan, dopts, uv_version(), out)
        written = _df.write(rendered, out, force=force)
    data = {"files": [str(p) for p in written], "variant": variant, "python": rendered.python,
            "uv_version": rendered.uv_version, "uv_image": rendered.uv_image,
            "builder_image": rendered.builder_image, "base_image": rendered.base_image,
            "entrypoint": rendered.entrypoint, "context": str(ws.root)}
    emit(data, as_json, "\n".join(map(str, written)))
    if not as_json:
        dockerfile = written[0]
        tag = rendered.service
        sys.stderr.write(f"build it: podman build -t {tag} -f {dockerfile} {ws.root}   "
                         f"(or docker build)\n")


@click.command("doctor")
@click.argument("path", default=".", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text",
              show_default=True, help="How to print the findings.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "note"]), default="error",
              show_default=True, help="The lowest level that makes the exit code 1.")
def doctor_cmd(path: str, fmt: str, fail_on: str) -> None:
    """Find known uv-in-Docker mistakes in Dockerfiles, .dockerignore and compose files.

    PATH is a Dockerfile, a compose file, or a directory searched for both. Each finding
    says where (file:line), why it hurts and the fix. Exits 1 when a finding is at
    --fail-on level or above. A directory with no Dockerfile or compose file has nothing to
    check: a warning on stderr says what was searched, and the exit code is 0.

    A note on podman: buildah (seen with 1.28) leaves the contents of RUN bind mounts out
    of its cache key, so a dependency layer built from bind-mounted uv.lock is reused after
    the lock changes (rule UV020); COPY the lock instead.
    """
    from .output import errors

    with errors():
        from ..doctor.report import diagnose

        report = diagnose(Path(path))
    if not report.files:
        _nothing_to_check(report, fmt)
        return
    if fmt == "json":
        click.echo(json.dumps(report_json(report), indent=2))
    elif fmt == "sarif":
        click.echo(report_sarif(report))
    else:
        click.echo(report_text(report))
    levels = ["error", "warning", "note"][: ["error", "warning", "note"].index(fail_on) + 1]
    if any(f.level in levels for f in report.findings):
        sys.exit(1)


def _nothing_to_check(report: Report, fmt: str) -> None:
    """No Dockerfile or compose file: no mistake can be there, so exit 0, but say so (and
    where doctor looked) on stderr, so that a CI job pointed at the wrong place is seen."""
    from ..doctor.parse import LOOKED_FOR, SKIPPED

    click.echo(f"warning: nothing to check: no Dockerfile or compose file in {report.root} or "
               f"below it\nhint: looked for {', '.join(LOOKED_FOR)} in every directory but "
               f"{', '.join(SKIPPED)}; give the directory or file to check", err=True)
    if fmt == "json":
        click.echo(json.dumps(report_json(report), indent=2))
    elif fmt == "sarif":
        click.echo(report_sarif(report))


def report_text(report: Report) -> str:
    lines = []
    for f in report.findings:
        lines.append(f"{f.path}:{f.line}: {f.rule.id} {f.level}: {f.message}")
        lines.append(f"    fix: {f.fix}")
    n = {lvl: report.count(lvl) for lvl in ("error", "warning", "note")}
    if report.findings:
        lines.append(f"{len(report.findings)} finding(s) in {len(report.files)} file(s): "
                     f"{n['error']} error(s), {n['warning']} warning(s), {n['note']} note(s)")
    else:
        lines.append(f"no problems found in {len(report.files)} file(s)")
    return "\n".join(lines)


def report_json(report: Report) -> dict[str, Any]:
    return {
        "files": [str(p) for p in report.files],
        "findings": [{"rule": f.rule.id, "name": f.rule.name, "level": f.level,
                      "file": str(f.path), "line": f.line, "message": f.message,
                      "fix": f.fix} for f in report.findings],
        "summary": {lvl: report.count(lvl) for lvl in ("error", "warning", "note")},
    }


def report_sarif(report: Report) -> str:
    """SARIF 2.1.0 (`uvship.sarif`, as the audit's): one run, every rule described,
    locations relative to the root scanned."""
    from ..doctor.rules import RULES
    from ..sarif import Tool, render

    return render(Tool("uvship doctor", "https://docs.astral.sh/uv/guides/integration/docker/"),
                  report.findings, root=report.root, rules=RULES.values(),
                  artifacts=report.files)
