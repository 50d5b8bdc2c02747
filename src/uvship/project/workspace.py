"""uv workspaces as uvship reads them: pyproject.toml, uv.lock, members and their local needs."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from ..errors import InputError, Option
from .lock import LockedPackage, locked_packages, manifest_groups, reachable

# Directories never searched for workspaces: environments, VCS data, caches, dependencies.
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox",
              ".mypy_cache", ".pytest_cache", ".ruff_cache", "site-packages"}


def read_toml(path: Path, data: bytes | None = None) -> dict[str, Any]:
    """Parse a TOML file (``data``: its bytes, when they were read already); a syntax error
    names the file and the line."""
    try:
        return tomllib.loads((path.read_bytes() if data is None else data).decode())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (expected a TOML file; byte {exc.start} is "
                         f"0x{exc.object[exc.start]:02x})") from exc


def read_lock(path: Path) -> dict[str, Any]:
    """uv.lock parsed, kept by the hash of its bytes: a large lock (a data-science app's
    holds every wheel of every package) costs tens of ms to parse as TOML on every build,
    its kept parse about one."""
    import hashlib
    import marshal
    import sys

    from .._paths import record_file
    from ..cache import write_atomically

    try:
        data = path.read_bytes()
    except OSError:
        return read_toml(path)  # its error, naming the file
    digest = hashlib.sha256(data).hexdigest()
    # marshal's format is the running Python's: its version is in the key
    kept = Path(record_file("parsed-locks", f"{sys.version_info[0]}.{sys.version_info[1]}-"
                                            f"{_LOCK_PARSE}-{digest}", ".marshal"))
    try:
        value = marshal.loads(kept.read_bytes())
        if isinstance(value, dict):
            return value
    except (OSError, ValueError, EOFError, TypeError):
        pass
    value = read_toml(path, data)
    try:
        blob = marshal.dumps(value)
    except ValueError:  # a TOML date or time: not marshallable, parsed every time
        return value
    if kept.parent.parent.is_dir():  # never the first thing in the cache: a build
        try:                          # refused before any work leaves no cache behind
            write_atomically(kept, blob)
        except OSError:  # a read-only cache: the parse is only a saving
            pass
    return value


# Bump when read_lock's kept values change meaning.
_LOCK_PARSE = 1


def find_workspaces(root: Path) -> list[Path]:
    """Every uv workspace under ``root``: the directories that hold a uv.lock, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (expected a source tree to search)")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        if "uv.lock" in filenames and "pyproject.toml" in filenames:
            found.append(Path(dirpath))
    return sorted(found)


@dataclass(frozen=True)
class Member:
    """A workspace member (or the single project): its name, directory and pyproject.toml."""

    name: str
    path: Path
    pyproject: dict[str, Any] = field(repr=False, compare=False)

    @property
    def scripts(self) -> dict[str, str]:
        """Console scripts declared in `[project.scripts]`."""
        return dict(self.pyproject.get("project", {}).get("scripts", {}))


class Workspace:
    """A uv workspace rooted at a uv.lock; ``project_dir`` is the directory it was opened at."""

    def __init__(self, root: Path, project_dir: Path) -> None:
        self.root = root
        self.project_dir = project_dir
        self.lock_path = root / "uv.lock"
        self.pyproject = read_toml(root / "pyproject.toml")
        self.lock = read_lock(self.lock_path)

    def __repr__(self) -> str:
        return f"Workspace(root={str(self.root)!r}, project_dir={str(self.project_dir)!r})"

    @classmethod
    def open(cls, path: Path | str) -> Workspace:
        """Open the workspace that ``path`` (a project or member directory) belongs to."""
        path = Path(path).absolute()
        if not path.exists():
            raise InputError(f"{path}: no such directory (expected a uv project)")
        if path.is_file() and path.name == "pyproject.toml":
            path = path.parent
        if not (path / "pyproject.toml").is_file():
            raise InputError(
                f"{path}: no pyproject.toml (expected a uv project or workspace member)",
                hint="point uvship at the directory that holds the project's pyproject.toml",
            )
        root = _find_lock_root(path)
        if root is None:
            raise InputError(
                f"{path}: no uv.lock in this directory or its workspace root "
                "(expected a locked uv project)",
                hint="run `uv lock` and keep uv.lock next to pyproject.toml",
            )
        return cls(root, path)

    # ------------------------------------------------------------------ the lock
    @cached_property
    def locked(self) -> dict[str, tuple[LockedPackage, ...]]:
        """Every locked package by canonical name: each version of it the lock holds (a
        forked resolution locks several)."""
        return locked_packages(self.lock)

    @cached_property
    def packages(self) -> dict[str, LockedPackage]:
        """One locked package by canonical name (the last version the lock holds of it)."""
        return {name: versions[-1] for name, versions in self.locked.items()}

    def lock_entries(self, name: str) -> list[dict[str, Any]]:
        """The `[[package]]` tables of ``name`` in uv.lock, as written (every version)."""
        key = canonicalize_name(name)
        return [p for p in self.lock.get("package", []) if canonicalize_name(p["name"]) == key]

    def reachable(
        self,
        roots: Iterable[str],
        *,
        extras: Iterable[str] = (),
        all_extras: bool = False,
        groups: Iterable[str] = (),
    ) -> tuple[str, ...]:
        """Every locked package (local or not) a sync of ``roots`` installs, markers
        ignored: the roots' dependencies, the extras and groups asked of them, and the
        extras each dependency edge names (see lock.reachable)."""
        return reachable(self.locked, roots, extras=extras, all_extras=all_extras,
                         groups=groups, root_groups=manifest_groups(self.lock))

    @property
    def requires_python(self) -> SpecifierSet | None:
        spec = self.lock.get("requires-python")
        if not spec:
            return None
        try:
            return SpecifierSet(spec)
        except InvalidSpecifier as exc:
            raise InputError(f"{self.lock_path}: requires-python {spec!r} is not valid") from exc

    # ------------------------------------------------------------------ members
    @cached_property
    def members(self) -> dict[str, Member]:
        """Workspace members by canonical name (the root project included if it has one)."""
        out: dict[str, Member] = {}
        for name, pkg in self.packages.items():
            src = pkg.source.get("editable") or pkg.source.get("virtual")
            if src is None:
                continue
            d = (self.root / src).resolve()
            if (d / "pyproject.toml").is_file():
                out[name] = Member(name, d, read_toml(d / "pyproject.toml"))
        return out

    @property
    def root_project(self) -> str | None:
        """The name of the project at the workspace root, None for a virtual workspace."""
        name = self.pyproject.get("project", {}).get("name")
        return canonicalize_name(name) if name else None

    @property
    def current_project(self) -> str | None:
        """The project at ``project_dir``: what a bare `uv sync` there installs."""
        if self.project_dir.resolve() == self.root.resolve():
            return self.root_project
        data = read_toml(self.project_dir / "pyproject.toml")
        name = data.get("project", {}).get("name")
        return canonicalize_name(name) if name else None

    def member(self, name: str) -> Member:
        key = canonicalize_name(name)
        if key not in self.members:
            known = ", ".join(sorted(self.members)) or "none"
            raise InputError.of(Option("package", str(name)),
                                f"no such package in the workspace at {self.root} "
                                f"(expected one of: {known})"
            )
        return self.members[key]

    def select(self, packages: Iterable[str] = (), all_packages: bool = False) -> tuple[str, ...]:
        """The member names a sync installs: explicit ones, all, or what a bare `uv sync` does."""
        if all_packages:
            return tuple(sorted(self.members))
        names = tuple(self.member(p).name for p in packages)
        if names:
            return names
        current = self.current_project
        if current is not None:
            return (current,)
        return tuple(sorted(self.members))  # a virtual root syncs every member

    def local_closure(self, roots: Iterable[str], **selection: Any) -> tuple[str, ...]:
        """Local packages (members, path deps) ``roots`` need, transitively, roots included;
        ``selection``: the extras, all_extras and groups asked of them, as for reachable."""
        return tuple(n for n in self.reachable(roots, **selection) if self.packages[n].is_local)

    def python_version_file(self) -> str | None:
        """The request in `.python-version` (project directory first, then the root)."""
        pin = self._python_pin()
        return pin[0] if pin else None

    def _python_pin(self) -> tuple[str, Path] | None:
        for d in (self.project_dir, self.root):
            f = d / ".python-version"
            if f.is_file():
                for line in f.read_text().splitlines():
                    line = line.strip()
                    if line and not line.startswith("#"):
                        return line, f
        return None

    def python_request(self, given: str | None = None) -> tuple[str | None, str]:
        """The Python version request of a build and what it comes from, for messages:
        ``given`` (the python option), else `.python-version`, else (None) requires-python."""
        if given:
            return given, f"--python {given}"
        pin = self._python_pin()
        if pin:
            return pin[0], f"{pin[0]} in {pin[1]}"
        spec = self.requires_python
        return None, (f"requires-python {spec} in {self.lock_path}" if spec is not None
                      else f"any version ({self.lock_path} has no requires-python)")

    def config(self) -> dict[str, Any]:
        """`[tool.uvship]` of the workspace root, overlaid by the opened project's."""
        cfg = dict(self.pyproject.get("tool", {}).get("uvship", {}))
        if self.project_dir.resolve() != self.root.resolve():
            data = read_toml(self.project_dir / "pyproject.toml")
            cfg.update(data.get("tool", {}).get("uvship", {}))
        return cfg


def _find_lock_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding uv.lock beside a pyproject.toml."""
    for d in _ancestors(start):
        if (d / "uv.lock").is_file() and (d / "pyproject.toml").is_file():
            return d
        data = read_toml(d / "pyproject.toml") if (d / "pyproject.toml").is_file() else {}
        if "workspace" in data.get("tool", {}).get("uv", {}):
            return None  # the workspace root has no lock: stop here
    return None


def _ancestors(p: Path) -> Iterator[Path]:
    yield p
    yield from p.parents
