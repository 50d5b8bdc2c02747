"""Options shared by the commands that build something, and the build they describe."""

from __future__ import annotations

import click


# Options shared by every command that builds something.
def build_options(f):
    for opt in reversed([
        click.option("--package", multiple=True, help="Workspace package to ship (repeatable)."),
        click.option("--all-packages", is_flag=True, default=None,
                     help="Ship every workspace member."),
        click.option("--extra", multiple=True, help="Include an optional extra (repeatable)."),
        click.option("--all-extras", is_flag=True, default=None, help="Include every extra."),
        click.option("--group", multiple=True,
                     help="Include a dependency group (repeatable); dev is left out by default."),
        click.option("--python", help="A Python version request (3.12) or a local CPython path."),
        click.option("--python-path", help="Where the interpreter lives in the target "
                     "[default: /opt/python]."),
        click.option("--venv-path", help="Where the venv lives in the target "
                     "[default: /app/.venv]."),
        click.option("--platform", help="The target: linux/amd64 or linux/arm64 [default: this "
                     "host]. Another machine's interpreter comes from --python PATH (run here "
                     "through qemu-user); its image needs a --base of that platform."),
        click.option("--libc", type=click.Choice(["glibc", "musl"]),
                     help="The target's C library [default: the interpreter's; musl for a "
                     "musl --base]. musl takes a uv-managed musl CPython (or --python PATH) "
                     "and musllinux wheels."),
        click.option("--mode", type=click.Choice(["venv", "system"]),
                     help="venv (default) or system: install into the interpreter's prefix."),
        click.option("--compile/--no-compile", "compile_", default=None,
                     help="Byte-compile for the final paths [default: compile]."),
        click.option("--exclude", multiple=True,
                     help="A .dockerignore-style pattern (relative to site-packages) for files "
                     "of the local packages to leave out, e.g. 'myapp/fixtures/**' "
                     "(repeatable; `!pattern` re-includes)."),
        click.option("--strip/--no-strip", default=None,
                     help="Strip a local interpreter's binaries (--python PATH; uv's "
                     "downloads come stripped) [default: strip]."),
        click.option("--command", "command",
                     help="What runs, as one command line: its first word is `python`, a "
                     "program of the environment's bin/ (a console script), or a file of the "
                     "project; e.g. 'gunicorn app.wsgi:application --bind 0.0.0.0:8000' or "
                     "'python -m app'. No shell runs it."),
        click.option("--build-step", "build_steps", multiple=True,
                     help="A command run on this host in the staged environment, in the "
                     "project's files at the working directory, after the project is "
                     "installed; what it writes ships (repeatable; leading NAME=value words "
                     "set its environment), e.g. 'python manage.py collectstatic --noinput'."),
        click.option("--project-files/--no-project-files", default=None,
                     help="Ship the project's directory to the app directory (chosen by "
                     "its .dockerignore; .git, .venv, caches and secrets never ship) "
                     "[default: for a project without [build-system]]."),
        click.option("--workdir", help="Where the image and the build steps start; relative "
                     "to the project's files [default: the venv's parent, /app]."),
        click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result."),
        click.option("-q", "--quiet", is_flag=True, help="No progress on stderr."),
    ]):
        f = opt(f)
    return f

