"""The frozen description of one build; everything downstream reads it, nothing re-derives it."""

from __future__ import annotations

import os
import platform as _platform
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from packaging.utils import canonicalize_name

from ..errors import InputError, Option
from ..oci import Platform
from .workspace import Workspace

Mode = Literal["venv", "system"]


@dataclass(frozen=True)
class Options:
    """Every option a build takes; `[tool.uvship]` sets them, the command line overrides.

    Field names are the TOML keys with '-' for '_' (``venv-path``) and the CLI long options.
    """

    package: tuple[str, ...] = ()
    all_packages: bool = False
    extra: tuple[str, ...] = ()
    all_extras: bool = False
    group: tuple[str, ...] = ()
    python: str | None = None
    python_path: str = "/opt/python"
    venv_path: str = "/app/.venv"
    mode: Mode = "venv"
    # a bundle that runs wherever it is unpacked: the archive's root is the interpreter's
    # prefix (DIR/bin/python, DIR/lib/python3.X/site-packages), scripts find their python
    # next to themselves (conda-pack's and venv-pack's layout, what Spark's --archives wants)
    relocatable: bool = False
    compile: bool = True
    # strip a local interpreter's binaries, as the python-build-standalone downloads uv
    # installs are: symbols are nearly half its bytes (pyenv's 3.12: 74 MB, stripped 39 MB)
    strip: bool = True
    # .dockerignore-style patterns for files of the local packages (project data files)
    exclude: tuple[str, ...] = ()
    # the target: linux/amd64 or linux/arm64 (default: this host)
    platform: str | None = None
    # the target's C library: glibc or musl (default: the interpreter's, or a musl base's)
    libc: str | None = None
    # what runs: the whole command, its first word resolved in the environment
    command: tuple[str, ...] = ()
    # commands run in the staged environment after the project is installed (collectstatic)
    build_steps: tuple[str, ...] = ()
    # ship the project's directory to the working directory [default: for a project
    # without [build-system], whose code uv does not install]
    project_files: bool | None = None
    # where the image starts (relative: to the project's files) [default: the venv's parent]
    workdir: str | None = None
    # image options (`uvship build`)
    base: str | None = None
    entrypoint: str | None = None
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # KEY=VALUE
    label: tuple[str, ...] = ()  # KEY=VALUE
    user: str | None = None
    compression: str | None = None
    tag: tuple[str, ...] = ()
    # registries
    push: tuple[str, ...] = ()
    cache_repo: str | None = None
    insecure_registry: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: dict[str, Any], source: str) -> Options:
        """Options from a `[tool.uvship]` table; unknown keys and wrong types are errors."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in cfg.items():
            name = key.replace("-", "_")
            if name not in known:
                names = ", ".join(sorted(k.replace("_", "-") for k in known))
                raise InputError(
                    f"{source}: unknown key {key!r} in [tool.uvship] (expected one of: {names})"
                )
            where = f"{source}: [tool.uvship] {key}"
            if name == "command":
                values[name] = command_words(value, where)
            elif name == "project_files":
                values[name] = _coerce(value, False, where)
            else:
                values[name] = _coerce(value, known[name].default, where)
        return cls(**values)

    def override(self, **cli: Any) -> Options:
        """These options with every CLI value that was given (not None, not empty) applied."""
        given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cli.items()
                 if v is not None and v != () and v != []}
        return replace(self, **given)


def command_words(value: Any, where: str) -> tuple[str, ...]:
    """A command as its words: a string is split as a shell would (no shell runs it), a list
    is taken as it is."""
    import shlex

    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise InputError(f"{where} {value!r}: expected a command line ({exc})",
                             hint="close the quote, or give the command as a list of words"
                             ) from exc
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        words = list(value)
    else:
        raise InputError(f"{where}: expected a string or a list of strings, found {value!r}")
    if not words:
        raise InputError(f"{where}: expected a command, found an empty one",
                         hint='e.g. "gunicorn app.wsgi:application --bind 0.0.0.0:8000"')
    return tuple(words)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, found {value!r}")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{where}: expected a string or a list of strings, found {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise InputError(f"{where}: expected a string, found {value!r}")
    return value


def host_platform() -> str:
    """The host as a target: linux/amd64, linux/arm64, ..."""
    return str(Platform.of_machine(_platform.machine().lower()))


@dataclass(frozen=True)
class Plan:
    """One build: which packages, which Python, where things live in the target."""

    workspace_root: Path
    project_dir: Path
    packages: tuple[str, ...]  # as given (empty: what a bare `uv sync` installs)
    all_packages: bool
    selected: tuple[str, ...]  # workspace members the sync installs as projects
    local_members: tuple[str, ...]  # other local packages they need, transitively
    extras: tuple[str, ...]
    all_extras: bool
    groups: tuple[str, ...]
    python: str | None
    python_path: str
    venv_path: str
    mode: Mode
    compile: bool
    strip: bool
    platform: str
    exclude: tuple[str, ...] = ()
    libc: str | None = None  # glibc or musl when the target's C library is decided
    glibc: str | None = None  # the target's glibc version, when a base tells it
    command: tuple[str, ...] = ()  # what runs, as given (resolved against the environment)
    build_steps: tuple[str, ...] = ()
    workdir: str = "/app"  # where the image (and each build step) starts
    app_dir: str = "/app"  # where the project's files go: the venv's parent, or /app
    files_dir: Path | None = None  # the directory shipped to ``app_dir`` (None: none)
    # the interpreter's prefix is the bundle's root, wherever that is unpacked: python_path
    # is "/" (the root), mode "system"; paths in the manifest are relative to the root
    relocatable: bool = False

    @property
    def target(self) -> str:
        """The target as messages name it: linux/arm64, linux/amd64 (musl)."""
        return f"{self.platform} ({self.libc})" if self.libc == "musl" else self.platform

    @property
    def env_path(self) -> str:
        """Where the installed packages live in the target: the venv, or the interpreter."""
        return self.python_path if self.mode == "system" else self.venv_path


def env_pairs(values: tuple[str, ...], what: str) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE options (``env``, ``label``) as pairs; anything else is refused.

    An env key is a name a shell and a program's environment can hold; a label key a
    word (no whitespace); no value holds a newline or NUL (config entries are one line)."""
    what = what.removeprefix("--")
    key_rule = (r"[A-Za-z_][A-Za-z0-9_]*", "a name of letters, digits and _, not starting "
                "with a digit") if what == "env" else (r"[^\s=]+", "a word with no "
                                                      "whitespace")
    out = []
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise InputError.of(Option(what, repr(v)), "expected KEY=VALUE")
        if not re.fullmatch(key_rule[0], k):
            raise InputError.of(Option(what, repr(v)),
                                f"expected the key to be {key_rule[1]}, found {k!r}")
        if "\n" in val or "\r" in val or "\0" in val:
            raise InputError.of(Option(what, f"{k}=..."), "expected a one-line value, found "
                                "a newline or NUL in it")
        out.append((k, val))
    return tuple(out)


_USER = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*\$?|\d+)(:([A-Za-z_][A-Za-z0-9_.-]*\$?|\d+))?")


def check_user(user: str) -> str:
    """``user`` as an image's User: NAME or UID, optionally :GROUP or :GID."""
    if not _USER.fullmatch(user):
        raise InputError.of(Option("user", repr(user)), "expected NAME or UID, optionally "
                            ":GROUP or :GID (e.g. 65532:65532 or app)")
    return user


def _abs_posix(value: str, what: str, root_ok: bool = False) -> str:
    p = PurePosixPath(os.path.normpath(value))
    if not p.is_absolute() or ".." in p.parts or (str(p) == "/" and not root_ok):
        raise InputError.of(Option(what.removeprefix("--").replace("-", "_"), repr(value)),
                            "expected an absolute path such as /app/.venv")
    return str(p)


def make_plan(ws: Workspace, opts: Options) -> Plan:
    """Check ``opts`` against the workspace and freeze them into a Plan."""
    if opts.relocatable:
        return _relocatable_plan(ws, opts)
    if opts.mode not in ("venv", "system"):
        raise InputError.of(Option("mode", repr(opts.mode)), "expected 'venv' or 'system'")
    python_path = _abs_posix(opts.python_path, "--python-path")
    venv_path = _abs_posix(opts.venv_path, "--venv-path")
    if opts.mode == "venv" and (
        PurePosixPath(venv_path).is_relative_to(python_path)
        or PurePosixPath(python_path).is_relative_to(venv_path)
    ):
        raise InputError.of(
            Option("venv_path", venv_path), f"expected a directory apart from the interpreter's "
            f"{python_path}, found one inside the other")
    selected = ws.select(opts.package, opts.all_packages)
    extras = tuple(canonicalize_name(e) for e in opts.extra)
    groups = tuple(canonicalize_name(g) for g in opts.group)
    closure = ws.local_closure(selected, extras=extras, all_extras=opts.all_extras, groups=groups)
    files_dir = project_files_dir(ws, selected, opts.project_files)
    app_dir = str(PurePosixPath(venv_path).parent) if opts.mode == "venv" else "/app"
    if app_dir == "/":
        app_dir = "/app"
    if not opts.workdir:
        workdir = app_dir if opts.mode == "venv" or files_dir else "/"
    else:  # relative to where the project's files are, as WORKDIR is to the one before
        workdir = _abs_posix(str(PurePosixPath(app_dir, opts.workdir)), "--workdir",
                             root_ok=True)
    return Plan(
        workspace_root=ws.root,
        project_dir=ws.project_dir,
        packages=tuple(ws.member(p).name for p in opts.package),
        all_packages=opts.all_packages,
        selected=selected,
        local_members=tuple(n for n in closure if n not in selected),
        extras=extras,
        all_extras=opts.all_extras,
        groups=groups,
        python=opts.python,
        python_path=python_path,
        venv_path=venv_path,
        mode=opts.mode,
        compile=opts.compile,
        strip=opts.strip,
        platform=platform_of(opts.platform),
        exclude=opts.exclude,
        libc=libc_of(opts.libc),
        command=opts.command,
        build_steps=opts.build_steps,
        workdir=workdir,
        app_dir=app_dir,
        files_dir=files_dir,
    )


def _relocatable_plan(ws: Workspace, opts: Options) -> Plan:
    """The plan of a relocatable bundle: the interpreter's prefix at the bundle's root with
    the locked packages installed into it (no venv: pyvenv.cfg's ``home`` is absolute).
    Options that name fixed paths in the target, or need them, are refused."""
    default = Options()
    fixed = [(name, value) for name, value in (
        ("python_path", opts.python_path), ("venv_path", opts.venv_path),
        ("workdir", opts.workdir)) if value != getattr(default, name)]
    if opts.mode != "system" and opts.mode != default.mode:
        fixed.append(("mode", opts.mode))
    if opts.project_files:
        fixed.append(("project_files", "true"))
    if opts.build_steps:
        fixed.append(("build_step", opts.build_steps[0]))
    if fixed:
        name, value = fixed[0]
        raise InputError.of(
            Option(name, str(value)), f"expected no {name.replace('_', '-')} for a "
            "relocatable bundle, which runs wherever it is unpacked (its interpreter at "
            "DIR/bin/python, no project files, nothing at fixed paths)",
            hint="leave it out, or build a bundle for fixed paths without relocatable")
    plan = make_plan(ws, replace(opts, relocatable=False, mode="system",
                                 project_files=False))
    return replace(plan, python_path="/", workdir="/", relocatable=True)


def project_files_dir(ws: Workspace, selected: tuple[str, ...], wanted: bool | None
                      ) -> Path | None:
    """The directory whose files ship to the working directory, or None.

    A project without [build-system] is "virtual": uv installs its dependencies but not its
    code, which runs from its directory (`COPY . /app` in a Dockerfile), so by default that
    directory ships. ``wanted`` True ships the directory uvship was pointed at (a packaged
    project's alembic.ini, templates, scripts), False ships none.
    """
    if wanted is False:
        return None
    if wanted:
        return ws.project_dir
    virtual = [n for n in selected if n in ws.packages and "virtual" in ws.packages[n].source]
    if not virtual:
        return None
    if len(virtual) > 1:
        raise InputError(
            f"{', '.join(virtual)}: several projects without [build-system] selected, whose "
            "code uv does not install (expected one, whose directory ships as files)",
            hint="choose one with --package, or ship none with --no-project-files")
    return ws.members[virtual[0]].path if virtual[0] in ws.members else ws.project_dir


def selection_args(plan: Plan, packages: tuple[str, ...] | None = None) -> list[str]:
    """The `uv sync` selection flags for a plan (``packages``: the --package names, when
    they are not the plan's own)."""
    args: list[str] = []
    if plan.all_packages:
        args.append("--all-packages")
    for p in plan.packages if packages is None else packages:
        args += ["--package", p]
    for e in plan.extras:
        args += ["--extra", e]
    if plan.all_extras:
        args.append("--all-extras")
    for g in plan.groups:
        args += ["--group", g]
    if "dev" not in plan.groups:
        args.append("--no-dev")  # dev tools never ship
    return args


def libc_of(value: str | None) -> str | None:
    """glibc or musl from --libc (gnu is glibc, as uv and target triples name it)."""
    if value is None:
        return None
    v = value.strip().lower()
    v = {"gnu": "glibc"}.get(v, v)
    if v not in ("glibc", "musl"):
        raise InputError.of(Option("libc", str(value)), "expected glibc or musl")
    return v


_PLATFORMS = ("linux/amd64", "linux/arm64")


def platform_of(value: str | None) -> str:
    if not value:
        return host_platform()
    try:
        p = Platform.parse(value.strip().lower())
    except InputError:
        p = None
    name = str(Platform(p.os, p.architecture)) if p and p.variant in ("", "v8") else None
    if name not in _PLATFORMS:
        raise InputError.of(Option("platform", str(value)),
                            f"expected one of {', '.join(_PLATFORMS)}")
    return name


def machine_of(platform: str) -> str:
    """The `uname -m` machine of a target platform: linux/arm64 -> aarch64."""
    return Platform.parse(platform).machine
