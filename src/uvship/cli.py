"""The command line: the only code that prints or exits. Results on stdout, progress on stderr."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .errors import UvshipError


class _LazyConsole:
    """rich's Console on stderr, imported on first use (it costs ~60 ms to import)."""

    def __getattr__(self, name: str) -> Any:
        from rich.console import Console

        console = Console(stderr=True, highlight=False)
        globals()["_err"] = console
        return getattr(console, name)


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


_err: Any = _LazyConsole()


class RichProgress:
    """Each long step on stderr: a rich spinner on a terminal, then a line with its time.

    Off a terminal (CI, pipes) the lines are plain text and rich is never imported.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.quiet:
            yield
            return
        t0 = time.perf_counter()
        if self.tty:
            with _err.status(f"{escape(name)} ..."):
                yield
            _err.print(f"[green]✓[/] {escape(name)} [dim]({time.perf_counter() - t0:.2f}s)[/]")
        else:
            yield
            sys.stderr.write(f"✓ {name} ({time.perf_counter() - t0:.2f}s)\n")

    def note(self, message: str) -> None:
        if self.quiet:
            return
        if self.tty:
            _err.print(f"[dim]{escape(message)}[/]")
        else:
            sys.stderr.write(message + "\n")


def _fail(exc: UvshipError) -> None:
    if sys.stderr.isatty():
        _err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
        if exc.hint:
            _err.print(f"[bold cyan]hint:[/] {escape(exc.hint)}", soft_wrap=True)
    else:
        sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
    sys.exit(1)


def _emit(data: dict[str, Any], as_json: bool, text: str, err: bool = False) -> None:
    """The result on stdout; on stderr (``err``) when stdout carries an output itself."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(text, err=err)


def _stdout_output(names: list[str], as_json: bool, what: str) -> bool:
    """Whether one of the outputs ``names`` is stdout; refuses two, and --json with one
    (its result would have to share stdout with the output's bytes)."""
    from .errors import InputError

    if len(names) > 1:
        raise InputError(f"--output {names[1]}: two outputs write to stdout "
                         f"({' and '.join(names)})", hint="give stdout to one of them")
    if names and as_json:
        raise InputError(f"--json: the result goes to stdout, which carries the {what} of "
                         f"--output {names[0]}",
                         hint="write the output to a file to get the JSON result, or leave "
                              "out --json: the result line then goes to stderr")
    return bool(names)


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


def _command_words(text: str | None) -> tuple[str, ...] | None:
    from .plan import command_words

    return command_words(text, "--command") if text is not None else None


def _build_from(project: str, kw: dict[str, Any], **image_options: Any):
    quiet = kw.pop("quiet")
    compile_ = kw.pop("compile_")
    from .api import Uv

    ws = Uv(".").workspace(project)
    b = ws.build(
        list(kw.pop("package")), all_packages=kw.pop("all_packages"),
        extras=kw.pop("extra"), all_extras=kw.pop("all_extras"), groups=kw.pop("group"),
        python=kw.pop("python"), python_path=kw.pop("python_path"),
        venv_path=kw.pop("venv_path"), mode=kw.pop("mode"), compile=compile_,
        strip=kw.pop("strip"), exclude=kw.pop("exclude"), platform=kw.pop("platform"),
        libc=kw.pop("libc"), build_steps=kw.pop("build_steps"),
        project_files=kw.pop("project_files"), workdir=kw.pop("workdir"),
        command=_command_words(kw.pop("command")),
        **image_options,
    )
    return b.with_progress(RichProgress(quiet))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="uvship", prog_name="uvship")
@click.option("--debug", is_flag=True, envvar="UVSHIP_DEBUG",
              help="On an error, show its traceback and causes too.")
def main(debug: bool) -> None:
    """Ship uv projects: relocatable bundles and daemonless, reproducible OCI images."""
    global _DEBUG
    _DEBUG = debug


_DEBUG = False


@main.command()
@click.argument("project", default=".", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A directory, or a FILE.tar.gz (reproducible). With several --platform "
              "values, one per platform: {platform} in it is replaced, else -linux-ARCH is "
              "added (app.tar.gz -> app-linux-arm64.tar.gz).")
@build_options
def bundle(project: str, output: str, **kw: Any) -> None:
    """Bundle PROJECT's environment and its Python, laid out for their final paths."""
    as_json = kw.pop("as_json")
    with _errors():
        from ._fs import is_stream, output_path, output_place

        out = output_path(output)  # `-` is stdout
        to_stdout = _stdout_output(
            [output] if is_stream(out) and output_place(out, f"--output {out}").is_stdout
            else [], as_json, "bundle")
        b = _build_from(project, kw)
        platforms = [p.strip() for p in (b.options.platform or "").split(",") if p.strip()]
        if len(platforms) > 1 and is_stream(out):
            from .errors import InputError

            raise InputError(f"--output {output}: a stream takes one bundle; several "
                             "platforms make one bundle each",
                             hint="give a file name: {platform} in it is replaced")
        if len(platforms) > 1:
            from .plan import _platform_of

            platforms = [_platform_of(p) for p in platforms]
            outs = {p: _per_platform_output(output, p) for p in platforms}
            results = b.bundles(outs)  # type: ignore[arg-type]
            data = {"bundles": [_bundle_data(r) | {"platform": p}
                                for p, r in results.items()]}
            _emit(data, as_json, "\n".join(str(r.output) for r in results.values()))
            return
        if platforms or "=" in (b.options.python or ""):
            b = b.for_platform(platforms[0] if platforms else None)
        res = b.bundle(out)
    _emit(_bundle_data(res), as_json, str(res.output), err=to_stdout)


def _bundle_data(res) -> dict[str, Any]:
    return {"output": str(res.output), "kind": res.kind, "sha256": res.sha256,
            "size": res.size, "files": res.files, "manifest": res.manifest}


def _per_platform_output(output: str, platform: str) -> str:
    """-o for one platform of several: {platform}/{arch} filled in, else -os-arch added
    before the suffix (app.tar.gz -> app-linux-arm64.tar.gz, dist/app -> dist/app-linux-arm64)."""
    os_, arch = platform.split("/")
    if "{platform}" in output or "{arch}" in output:
        return output.replace("{platform}", f"{os_}-{arch}").replace("{arch}", arch)
    p = Path(output)
    suffix = "".join(s for s in p.suffixes[-2:] if s in (".tar", ".gz", ".tgz"))
    stem = p.name[: len(p.name) - len(suffix)] if suffix else p.name
    return str(p.with_name(f"{stem}-{os_}-{arch}{suffix}"))


@main.command()
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
def build(project: str, outputs: tuple[str, ...], push_refs: tuple[str, ...],
          cache_repo: str | None, insecure: tuple[str, ...], tags: tuple[str, ...],
          base: str | None,
          entrypoint: str | None, cmd: tuple[str, ...], env_vars: tuple[str, ...],
          labels: tuple[str, ...], user: str | None,
          compression: str | None, **kw: Any) -> None:
    """Build an OCI image of PROJECT without a container engine.

    Every option can also be set in [tool.uvship] of pyproject.toml (same names); the
    command line wins.
    """
    as_json = kw.pop("as_json")
    with _errors():
        from . import build as _build
        from .images import check_tags, parse_output
        from .plan import env_pairs

        outs = [parse_output(o) for o in outputs]
        b = _build_from(project, kw, base=base, entrypoint=entrypoint, cmd=cmd,
                        env=env_vars, label=labels, user=user,
                        compression=compression, tag=tags, push=push_refs,
                        cache_repo=cache_repo, insecure_registry=insecure)
        o_ = b.options
        check_tags(o_.tag)  # with --tag from pyproject.toml too, before any work
        for o in outs:
            o.check(o_.tag)
        to_stdout = _stdout_output([str(o) for o in outs if o.is_stdout], as_json,
                                   "docker-archive")
        if not outs and not o_.push:
            raise click.UsageError("nothing to write: give --output and/or --push")
        if o_.push:
            from .registry import Reference

            for r in o_.push:
                Reference.parse(r)  # a bad reference fails before any work
        env_vars, label_pairs = env_pairs(o_.env, "--env"), env_pairs(o_.label, "--label")
        if o_.compression not in (None, "gzip", "zstd"):
            raise click.UsageError(f"compression {o_.compression!r}: expected gzip or zstd")
        tags = o_.tag
        spec = _build.ImageSpec(
            entrypoint=o_.entrypoint, cmd=o_.cmd or None, env=env_vars, labels=label_pairs,
            user=o_.user or "65532:65532",
            compression=o_.compression or "gzip",  # type: ignore[arg-type]
        )
        platforms = [p.strip() for p in (o_.platform or "").split(",") if p.strip()]
        if len(platforms) > 1:
            _build_index(b, o_, spec, platforms, outs, as_json)
            return
        platform = platforms[0] if platforms else None
        if platform or "=" in (o_.python or "") or "=" in (o_.base or ""):
            b = b.for_platform(platform)
        base = b.options.base
        image = b.image(base or "scratch", spec)
        written = []
        for o in outs:
            with b.progress.step(f"writing {o}"):
                kw_ = {"note": b.progress.note} if o.kind in ("docker-daemon",
                                                             "containers-storage") else {}
                if o.write(image, tags, **kw_):
                    written.append(str(o))
            _build.remember(image, str(o))
        if outs and not written:
            b.progress.note(f"up to date: {', '.join(map(str, outs))}")
        for r in o_.push:
            outs.append(r)  # type: ignore[arg-type]
        pushed = []
        if o_.push:
            with b.progress.step(f"pushing {', '.join(o_.push)}"):
                pushed = image.publish(*o_.push, insecure=o_.insecure_registry,
                                       progress=b.progress)
            written += list(o_.push)
            for r in o_.push:
                _build.remember(image, r)
        data = {
            "digest": image.digest, "outputs": [str(o) for o in outs], "written": written,
            "pushed": _report_pushed(pushed),
            "platform": str(image.oci.platform), "size": sum(x.size for x in image.oci.layers),
            "layers": [{"digest": x["digest"], "role": x["role"], "created_by": x["created_by"]}
                       for x in image.layer_info],
        }
    _emit(data, as_json, "\n".join(f"{o}@{image.digest}" for o in outs), err=to_stdout)


def _build_index(b, o_, spec, platforms: list[str], outs, as_json: bool) -> None:
    """One image per platform, written and pushed as an OCI image index."""
    from . import build as _build

    for o in outs:
        if o.kind != "oci":
            raise click.UsageError(f"--output {o}: a docker-archive holds one platform; "
                                   "write an image index with oci:DIR or --push")
    multi = b.images(platforms, spec)
    for o in outs:
        with b.progress.step(f"writing {o}"):
            multi.export(str(o), list(o_.tag))
    for target in [*map(str, outs), *o_.push]:
        for img in multi.images:  # for `inspect`: what changed since the last build
            _build.remember(img, f"{target}#{img.oci.platform}")
    pushed = []
    if o_.push:
        with b.progress.step(f"pushing {', '.join(o_.push)}"):
            pushed = multi.publish(*o_.push, insecure=o_.insecure_registry,
                                   progress=b.progress)
    targets = [str(o) for o in outs] + list(o_.push)
    data = {"digest": multi.digest, "outputs": targets, "written": targets,
            "platforms": multi.platforms, "manifests": [img.digest for img in multi.images],
            "pushed": _report_pushed(pushed)}
    _emit(data, as_json, "\n".join(f"{t}@{multi.digest}" for t in targets))


def _report_pushed(pushed) -> list[dict[str, Any]]:
    """Each pushed reference for --json; on stderr, a warning for each whose SBOM is missing.

    The image is in place and works, so the push succeeded (exit 0, its reference on
    stdout): the SBOM is an artifact beside it, attached by running the command again.
    """
    out = []
    for p in pushed:
        error = p.sbom_error
        if error is not None:
            # the error's own hint is about trying again, which this one says for the SBOM
            _warn(f"pushed {p.reference}@{p.digest}, but its SBOM was not attached: "
                  f"{error.message}",
                  "the image is pushed and works without it; run the same command again to "
                  "attach the SBOM (what the registry already has is not sent again)")
        sbom = None if not p.sboms else {
            "attached": error is None, "error": error.message if error else None,
            "artifacts": [{"image": s.image, "digest": s.attached.digest, "via": s.attached.via}
                          for s in p.sboms if s.attached is not None]}
        out.append({"reference": p.reference, "digest": p.digest, "sbom": sbom})
    return out


def _warn(message: str, hint: str) -> None:
    if sys.stderr.isatty():
        _err.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)
        _err.print(f"[bold cyan]hint:[/] {escape(hint)}", soft_wrap=True)
    else:
        sys.stderr.write(f"warning: {message}\nhint: {hint}\n")


@main.command("inspect")
@click.argument("image")
@click.option("--insecure-registry", "insecure", multiple=True,
              help="A registry reached without TLS verification (repeatable).")
@click.option("--platform", help="Of a multi-platform image, only this platform "
              "[default: every platform].")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
def inspect_cmd(image: str, insecure: tuple[str, ...], platform: str | None,
                as_json: bool) -> None:
    """Show each layer of IMAGE: size, what it holds, why it changed since the last build."""
    with _errors():
        from .inspect import inspect

        data = inspect(image, insecure, platform)
    if as_json:
        _emit(data, True, "")
        return
    head = (f"{image}: {len(data['platforms'])} platforms: {', '.join(data['platforms'])}\n\n"
            if "images" in data else "")
    click.echo(head + "\n\n".join(_inspect_text(d) for d in data.get("images", [data])))


def _inspect_text(data: dict[str, Any]) -> str:
    lines = [f"{data['digest']}  {data['platform']}  {len(data['layers'])} layers, "
             f"{_size(data['size'])}"]
    for n, layer in enumerate(data["layers"], 1):
        lines.append(f"{n:>2}  {_size(layer['size']):>9}  {layer['role']:<12} "
                     f"{layer['created_by']}")
        biggest = sorted(layer["holds"].items(), key=lambda kv: -kv[1])[:5]
        holds = ", ".join(f"{k} {_size(v)}" for k, v in biggest)
        lines.append(f"      holds: {holds}")
        if layer["changed"] is not None:
            lines.append(f"      since the last build: {layer['changed']}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@main.command("pack-python")
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
    from .python.pack import pack

    with _errors(), RichProgress().step(f"packing {python}"):
        res = pack(Path(python), Path(output), strip=strip)
    _emit({"archive": str(res.archive), "downloads_json": str(res.downloads_json),
           "key": res.key, "version": res.version}, as_json, str(res.downloads_json))


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        from .cache import remove_own_temps

        remove_own_temps()
        sys.stderr.write("error: cancelled; nothing was written to the output\n")
        sys.exit(130)
    except UvshipError as exc:
        _debug_trace(exc)
        _fail(exc)
    except OSError as exc:  # the machine said no: a full disk, a permission, a missing file
        from .cache import remove_own_temps

        remove_own_temps()
        _debug_trace(exc)
        _fail(_os_error(exc))
    except Exception as exc:
        from .cache import remove_own_temps

        remove_own_temps()
        _debug_trace(exc)
        _fail(UvshipError(
            f"uvship failed unexpectedly: {type(exc).__name__}: {exc}; nothing was written "
            "to the output",
            hint="this is a bug in uvship: please report it with the output of the same "
                 "command run with --debug"))


def _debug_trace(exc: BaseException) -> None:
    if _DEBUG:
        import traceback

        sys.stderr.write("".join(traceback.format_exception(exc)))


def _os_error(exc: OSError) -> UvshipError:
    """One line for an error of the machine, naming the file (or disk) and what it said."""
    import errno
    import shutil

    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        # copytree's list of every file that failed: the first says what happened
        first = exc.args[0][0] if exc.args[0] else ("?", "?", str(exc))
        src, dst, why = [*first, "", "", ""][:3]
        more = f" (and {len(exc.args[0]) - 1} more files)" if len(exc.args[0]) > 1 else ""
        if "No space left on device" in str(why):
            return UvshipError(f"{dst}: no space left on the device that holds it (copying "
                               f"{src}{more})", hint=_space_hint())
        return UvshipError(f"copying {src} to {dst}: {why}{more}")
    where = exc.filename or "uvship"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UvshipError(f"{where}: no space left on the device that holds it (expected room "
                           "to write it)", hint=_space_hint())
    return UvshipError(f"{where}: {exc.strerror or exc}")


def _space_hint() -> str:
    from .cache import cache_root

    return (f"free space on that disk; uvship's cache is at {cache_root()} (move it with "
            "UVSHIP_CACHE_DIR), the outputs are where -o says")


from .cli_docker import dockerfile_cmd, doctor_cmd  # noqa: E402  (they use helpers above)
from .cli_sbom import audit as _audit_cmd  # noqa: E402
from .cli_sbom import sbom as _sbom_cmd  # noqa: E402

main.add_command(dockerfile_cmd)
main.add_command(doctor_cmd)
main.add_command(_audit_cmd)
main.add_command(_sbom_cmd)

if __name__ == "__main__":
    main()
