"""uv-managed CPythons: one exact version chosen from uv's download list, then found or installed.

The version never depends on what happens to be installed: the request (--python, else
.python-version, else requires-python) is turned into the newest stable CPython that uv's
download list offers for the target, and exactly that one is used. uv's list is fixed for
one uv version and one download configuration, so the choice is remembered under both.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .. import cache, uv
from ..cache import key_of
from ..errors import CommandError, InputError
from ..progress import Progress
from ..project.plan import Plan
from ..project.workspace import Workspace

# Bumped when the rule that picks a version changes: remembered choices are forgotten.
_RULE = 1
_VERSION_REQUEST = re.compile(r"^(?:cpython|python)?[-@]?(\d+)(?:\.(\d+))?(?:\.(\d+))?$", re.I)
_STABLE = re.compile(r"^\d+\.\d+\.\d+$")
_PRERELEASE = re.compile(r"\d(?:a|b|rc)\d")
# What decides uv's download list besides uv itself (uv 0.13): these environment variables
# and these settings of its configuration files.
_DOWNLOAD_ENV = ("UV_PYTHON_DOWNLOADS_JSON_URL", "UV_PYTHON_INSTALL_MIRROR",
                 "UV_PYPY_INSTALL_MIRROR", "UV_CONFIG_FILE", "UV_NO_CONFIG")
_DOWNLOAD_SETTINGS = ("python-downloads-json-url", "python-install-mirror",
                      "pypy-install-mirror")


@dataclass(frozen=True)
class Wanted:
    """What a build asks of a uv-managed CPython, and where each part comes from."""

    request: str | None  # a version request ("3.12", ">=3.11"); None: requires-python decides
    origin: str  # what made the request, for messages: "--python 3.12", a .python-version
    requires_python: SpecifierSet | None
    machine: str  # x86_64, aarch64
    libc: str  # glibc, musl
    target: str  # the target as messages name it: linux/arm64, linux/amd64 (musl)

    @property
    def flavour(self) -> str:
        """The libc as uv's keys name it: gnu or musl."""
        return "gnu" if self.libc == "glibc" else self.libc

    def describe(self) -> str:
        spec = f" within requires-python {self.requires_python}" if (
            self.request and self.requires_python is not None and str(self.requires_python)
        ) else ""
        return f"{self.origin}{spec}"


@dataclass(frozen=True)
class Choice:
    """One exact CPython of uv's download list."""

    key: str  # uv's name of the download and of its install: cpython-3.12.1-linux-x86_64-gnu
    version: str  # 3.12.1

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def choose(wanted: Wanted, cwd: Path) -> Choice:
    """The newest stable CPython in uv's download list for ``wanted``'s machine and C
    library that satisfies its request and requires-python.

    Remembered under everything the answer depends on (uv's version, the request,
    requires-python, the target, uv's download configuration), so a rebuild runs no uv.
    """
    if wanted.request:  # refused early, with no uv run, when no release could satisfy it
        check_request_compatible(wanted.request, wanted.requires_python, wanted.origin)
    key = key_of(_RULE, uv.uv_bin(), uv.uv_version(), wanted.request,
                 str(wanted.requires_python or ""), wanted.machine, wanted.flavour,
                 download_config(cwd))
    known = cache.read_record("python-choices", key)
    if known is not None:
        return Choice(**known)
    offered = _offered(wanted, wanted.request, cwd)
    fits = [e for e in offered if wanted.requires_python is None
            or wanted.requires_python.contains(e["version"], prereleases=True)]
    if not fits:
        # what the list does offer for the target, to say so
        raise _none_fits(wanted, offered if not wanted.request else _offered(wanted, None, cwd),
                         cwd)
    best = max(fits, key=lambda e: (_version(e["version"]), e["key"]))
    choice = Choice(key=best["key"], version=best["version"])
    cache.write_record("python-choices", key, {"key": choice.key, "version": choice.version})
    return choice


def why(choice: Choice, wanted: Wanted) -> str:
    """Why the build gets ``choice``, as the progress note says it."""
    return (f"Python {choice.version} ({choice.key}): the newest stable CPython in uv "
            f"{uv.uv_version()}'s download list for {wanted.describe()}")


def find_or_install(choice: Choice, wanted: Wanted, cwd: Path, progress: Progress) -> Path:
    """The executable of exactly ``choice`` among uv's managed installs, installed by uv
    when it is not there (never another patch or minor version)."""
    exe = _installed(choice, install_dir())
    if exe is not None:
        return exe
    with progress.step(f"installing CPython {choice.version} with uv"):
        try:
            uv.run(["python", "install", "--no-bin", choice.key], cwd=cwd,
                   what="uv python install")
        except CommandError as exc:
            native = choice.key.endswith(f"-linux-{os.uname().machine}-{wanted.flavour}")
            raise InputError(
                f"no interpreter for {wanted.target}: uv could not install Python "
                f"{choice.version} ({choice.key}), the newest stable CPython in uv "
                f"{uv.uv_version()}'s download list for {wanted.describe()} (expected an "
                f"install; uv said:\n{exc.stderr.strip()})",
                hint=f"install it (uv python install {choice.version if native else choice.key}"
                "), ask for another version with --python X.Y, or give a local CPython with "
                "--python PATH") from exc
    exe = _installed(choice, install_dir()) or _installed(choice, _uv_python_dir(cwd))
    if exe is None:
        raise InputError(f"{choice.key}: uv reports it installed, but it is not in "
                         f"{install_dir()} (expected bin/python{choice.minor} there)")
    return exe


def host_glibc() -> bool:
    """Whether this host's C library is glibc."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def install_dir() -> Path:
    """Where uv keeps its managed Pythons, by uv's rule (`uv python dir` without running it)."""
    return Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or (
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "uv/python"))


def _installed(choice: Choice, root: Path | None) -> Path | None:
    if root is None:
        return None
    for name in (f"python{choice.minor}", "python3"):
        exe = root / choice.key / "bin" / name
        if exe.is_file():
            return exe
    return None


def _uv_python_dir(cwd: Path) -> Path | None:
    try:
        out = uv.run(["python", "dir"], cwd=cwd, what="uv python dir").stdout.strip()
    except CommandError:
        return None
    return Path(out) if out else None


# ---------------------------------------------------------------------- the download list
def _offered(wanted: Wanted, request: str | None, cwd: Path) -> list[dict]:
    """uv's downloads of CPython for the target that satisfy ``request`` (stable releases,
    unless the request names a pre-release; the default build unless it names a variant)."""
    args = ["python", "list", "--only-downloads", "--output-format", "json", "--all-versions",
            "--all-platforms", "--all-arches", "--python-preference", "only-managed"]
    try:
        out = uv.run([*args, *([request] if request else [])], cwd=cwd,
                     what="uv python list").stdout
    except CommandError as exc:
        raise InputError(
            f"{wanted.origin}: expected a Python request uv accepts, found {request!r} "
            f"({_last_line(exc.stderr)})",
            hint="ask for a version such as 3.12 or a specifier such as >=3.11") from exc
    entries = [e for e in json.loads(out or "[]")
               if e.get("implementation") == "cpython" and e.get("os") == "linux"
               and e.get("arch") == wanted.machine and e.get("libc") == wanted.flavour]
    entries = [e for e in entries if e.get("variant") == "default"] or entries
    stable = [e for e in entries if _STABLE.match(e["version"])]
    if not stable and request and _PRERELEASE.search(request):
        return entries
    return stable


def _none_fits(wanted: Wanted, offered: list[dict], cwd: Path) -> InputError:
    versions = sorted({e["version"] for e in offered}, key=_version)
    source = download_source(cwd)
    return InputError(
        f"no interpreter for {wanted.target}: uv {uv.uv_version()}'s download list"
        f"{f' ({source})' if source else ''} has no CPython for "
        f"linux-{wanted.machine}-{wanted.flavour} that satisfies {wanted.describe()} "
        f"(expected one; found {', '.join(versions) if versions else 'none'})",
        hint="give a local CPython with --python PATH, or make one installable by uv: "
        "`uvship pack-python PATH -o DIR`, then set UV_PYTHON_DOWNLOADS_JSON_URL="
        "DIR/downloads.json")


def check_requires_python(version: str, spec: SpecifierSet | None, what: str) -> None:
    """Refuse an interpreter version outside the project's requires-python."""
    if spec is not None and not spec.contains(version, prereleases=True):
        raise InputError(
            f"{what}: Python {version} is outside the project's requires-python {spec} "
            f"(expected a version that satisfies {spec})",
            hint=f"ask for a version that satisfies {spec}, e.g. --python {_suggest(spec)}",
        )


def _suggest(spec: SpecifierSet) -> str:
    """The oldest 3.x minor version (from 3.8) that ``spec`` allows."""
    for minor in range(8, 30):
        if any(spec.contains(f"3.{minor}.{p}") for p in range(0, 30)):
            return f"3.{minor}"
    return "3.12"


def check_request_compatible(request: str, spec: SpecifierSet | None, what: str) -> None:
    """Refuse early a version request that no release could satisfy against requires-python."""
    m = _VERSION_REQUEST.match(request.strip())
    if spec is None or not m or m.group(2) is None:
        return
    major, minor, patch = m.group(1), m.group(2), m.group(3)
    candidates = (
        [f"{major}.{minor}.{patch}"] if patch else [f"{major}.{minor}.{p}" for p in range(0, 40)]
    )
    if not any(spec.contains(c, prereleases=True) for c in candidates):
        check_requires_python(candidates[0] if patch else f"{major}.{minor}", spec, what)


def _version(v: str) -> Version:
    try:
        return Version(v)
    except InvalidVersion:
        return Version("0")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------- download configuration
def download_config(cwd: Path) -> dict:
    """Everything besides uv's version that decides uv's download list, read without running
    uv: the environment variables, the download settings of every configuration file uv
    may read from ``cwd``, and the identity of a download list that is a local file."""
    env = {k: os.environ.get(k) for k in _DOWNLOAD_ENV}
    files = {} if _truthy(env["UV_NO_CONFIG"]) else {
        str(f): s for f in config_files(cwd) if (s := _download_settings(f))}
    urls = [env["UV_PYTHON_DOWNLOADS_JSON_URL"],
            *(s.get("python-downloads-json-url") for s in files.values())]
    return {"env": env, "files": files,
            "lists": {u: _file_identity(u, cwd) for u in urls if isinstance(u, str) and u}}


def download_source(cwd: Path) -> str | None:
    """The download list uv reads when it is not its built-in one (for messages)."""
    lists = download_config(cwd)["lists"]
    return next(iter(lists), None)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def config_files(cwd: Path) -> list[Path]:
    """uv's configuration files, project ones (every directory up from ``cwd``), the user's
    and the system's, and UV_CONFIG_FILE: those that exist."""
    return [p for p in config_candidates(cwd) if p.is_file()]


def config_candidates(cwd: Path) -> list[Path]:
    """Every place uv looks for configuration from ``cwd``, whether a file is there or not."""
    candidates = []
    if os.environ.get("UV_CONFIG_FILE"):
        candidates.append(Path(os.environ["UV_CONFIG_FILE"]))
    for d in (cwd, *cwd.parents):
        candidates += [d / "uv.toml", d / "pyproject.toml"]
    user = os.environ.get("XDG_CONFIG_HOME")
    candidates.append((Path(user) if user else Path.home() / ".config") / "uv" / "uv.toml")
    for d in (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":"):
        if d:
            candidates.append(Path(d) / "uv" / "uv.toml")
    candidates.append(Path("/etc/uv/uv.toml"))
    return candidates


def _download_settings(path: Path) -> dict:
    """The download settings of one configuration file (the whole text when it cannot be
    parsed: uv would fail on it too, and a fix must not reuse a stale choice)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        try:
            return {"unparsed": key_of(path.read_bytes().hex())}
        except OSError:
            return {}
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("uv", {})
    return {k: data[k] for k in _DOWNLOAD_SETTINGS if k in data} if isinstance(data, dict) else {}


def _file_identity(url: str, cwd: Path) -> list | None:
    """A local download list's identity (path, size, mtime, inode); None for a remote one."""
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(url).path))
    elif "://" in url:
        return None
    else:
        path = Path(url) if os.path.isabs(url) else cwd / url
    try:
        st = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), st.st_size, st.st_mtime_ns, st.st_ino]


def wanted_by(ws: Workspace, plan: Plan) -> Wanted:
    """What ``plan`` asks of a uv-managed CPython (README: Which Python): the request of
    --python, .python-version or requires-python, for the target's machine and C library."""
    from ..project.plan import machine_of

    request, origin = ws.python_request(plan.python)
    libc = plan.libc or ("glibc" if host_glibc() else "musl")
    return Wanted(request, origin, ws.requires_python, machine_of(plan.platform), libc,
                  plan.target)
