"""The frozen description of one build; everything downstream reads it, nothing re-derives it."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from packaging.utils import canonicalize_name

from .errors import InputError
from .workspace import Workspace

if TYPE_CHECKING:
    from .python.managed import Wanted

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
    # image options (`uvship build`)
    base: str | None = None
    entrypoint: str | None = None
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # KEY=VALUE
    label: tuple[str, ...] = ()  # KEY=VALUE
    user: str | None = None
    workdir: str | None = None
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
            values[name] = _coerce(value, known[name].default, f"{source}: [tool.uvship] {key}")
        return cls(**values)

    def override(self, **cli: Any) -> Options:
        """These options with every CLI value that was given (not None, not empty) applied."""
        given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cli.items()
                 if v is not None and v != () and v != []}
        return replace(self, **given)


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
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"linux/{arch}"


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

    @property
    def target(self) -> str:
        """The target as messages name it: linux/arm64, linux/amd64 (musl)."""
        return f"{self.platform} ({self.libc})" if self.libc == "musl" else self.platform

    @property
    def env_path(self) -> str:
        """Where the installed packages live in the target: the venv, or the interpreter."""
        return self.python_path if self.mode == "system" else self.venv_path


def _abs_posix(value: str, what: str) -> str:
    p = PurePosixPath(value)
    if not p.is_absolute() or ".." in p.parts or str(p) == "/":
        raise InputError(f"{what} {value!r}: expected an absolute path such as /app/.venv")
    return str(p)


def make_plan(ws: Workspace, opts: Options) -> Plan:
    """Check ``opts`` against the workspace and freeze them into a Plan."""
    if opts.mode not in ("venv", "system"):
        raise InputError(f"--mode {opts.mode!r}: expected 'venv' or 'system'")
    python_path = _abs_posix(opts.python_path, "--python-path")
    venv_path = _abs_posix(opts.venv_path, "--venv-path")
    if opts.mode == "venv" and (
        PurePosixPath(venv_path).is_relative_to(python_path)
        or PurePosixPath(python_path).is_relative_to(venv_path)
    ):
        raise InputError(
            f"--venv-path {venv_path} and --python-path {python_path}: expected two separate "
            "directories, found one inside the other"
        )
    selected = ws.select(opts.package, opts.all_packages)
    extras = tuple(canonicalize_name(e) for e in opts.extra)
    groups = tuple(canonicalize_name(g) for g in opts.group)
    closure = ws.local_closure(selected, extras=extras, all_extras=opts.all_extras, groups=groups)
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
        platform=_platform_of(opts.platform),
        exclude=opts.exclude,
        libc=libc_of(opts.libc),
    )


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
        raise InputError(f"--libc {value}: expected glibc or musl")
    return v


_PLATFORMS = ("linux/amd64", "linux/arm64")


def _platform_of(value: str | None) -> str:
    if not value:
        return host_platform()
    p = value.strip().lower().replace("linux/aarch64", "linux/arm64").replace(
        "linux/x86_64", "linux/amd64").removesuffix("/v8")
    if p not in _PLATFORMS:
        raise InputError(f"--platform {value}: expected one of {', '.join(_PLATFORMS)}")
    return p


MACHINE_OF = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def python_wanted(ws: Workspace, plan: Plan) -> Wanted:
    """What ``plan`` asks of a uv-managed CPython (README: Which Python): the request of
    --python, .python-version or requires-python, for the target's machine and C library."""
    from .python.managed import Wanted, host_glibc

    request, origin = ws.python_request(plan.python)
    libc = plan.libc or ("glibc" if host_glibc() else "musl")
    return Wanted(request, origin, ws.requires_python, MACHINE_OF[plan.platform], libc,
                  plan.target)
