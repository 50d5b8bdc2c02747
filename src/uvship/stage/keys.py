"""What decides a tier's bytes, hashed into its cache key: the build's settings, the locked
entries of the third-party packages the selection installs, and the sources (files, VCS
state, build environment) of the local ones."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .. import _proc, uv
from ..cache import key_of
from ..errors import CommandError, InputError
from ..project.plan import Plan, selection_args
from ..project.workspace import Workspace, read_toml
from ..python.bytecode import compiler_id
from ..python.interpreter import Interpreter
from .platforms import uv_python_platform

# Bumped whenever a change in staging changes what a tier holds, to invalidate cached tiers.
FORMAT = 6
# Never part of a source tree's identity: environments, VCS data, caches, build output.
_SOURCE_SKIP = {".git", ".hg", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache",
                ".ruff_cache", ".tox", ".nox", "node_modules", "build", "dist"}


def environment_key(plan: Plan, interp: Interpreter) -> str:
    """What decides the bytes of every tier of ``plan`` besides the lock and the sources:
    two locks staged with the same environment key differ only by their packages."""
    return key_of("tier", FORMAT, uv.uv_version(), interp.key, plan.mode, plan.env_path,
                  plan.python_path, plan.compile, plan.platform, selection_args(plan),
                  plan.exclude, uv_python_platform(plan, interp),
                  compiler_id(interp.minor) if interp.sysroot or not interp.native else None,
                  # scripts find their python beside them (added only when true: the keys
                  # of every other build stay as they were)
                  *(["relocatable"] if plan.relocatable else []))


def tier_keys(ws: Workspace, plan: Plan, interp: Interpreter) -> dict[str, str]:
    """The cache key of each tier: a hash of exactly what decides its bytes."""
    common = environment_key(plan, interp)
    lock_meta = {k: ws.lock.get(k) for k in ("version", "requires-python", "resolution-markers",
                                             "supported-markers", "options")}
    installed = _installed(ws, plan)
    local_names = [n for n in installed if ws.packages[n].is_local and n not in plan.selected]
    # every locked version of each (a forked resolution locks several)
    deps = key_of(common, lock_meta, [e for n in third_party(ws, plan)
                                      for e in ws.lock_entries(n)])
    local = key_of(deps, [_local_identity(ws, n) for n in local_names])
    project = key_of(local, [_local_identity(ws, n) for n in plan.selected])
    return {"dependencies": deps, "local": local, "project": project}


def _installed(ws: Workspace, plan: Plan) -> tuple[str, ...]:
    """Every locked package the plan's sync installs, local or not (markers ignored: a
    superset of what uv installs on the target)."""
    return ws.reachable(plan.selected, extras=plan.extras, all_extras=plan.all_extras,
                        groups=plan.groups)


def third_party(ws: Workspace, plan: Plan) -> list[str]:
    """The packages the plan's sync installs that are not built from local sources."""
    return [n for n in _installed(ws, plan) if not ws.packages[n].is_local]


def _local_identity(ws: Workspace, name: str) -> list[Any]:
    """What a local package's installed bytes come from: its lock entries, its source
    tree, and what its build backend reads besides."""
    entries = ws.lock_entries(name)  # one, unless a lock ever holds several
    entry = entries[0] if len(entries) == 1 else entries or None
    return [name, entry, source_hash(ws, name), build_inputs(ws, name)]


def source_hash(ws: Workspace, name: str) -> str:
    """The content of a local package's source tree (nested members excluded)."""
    return key_of(sorted(source_files(ws, name).items()))


# Environment variables that build backends read to decide what they build (the version
# plugins' overrides above all): part of a local package's identity.
_BUILD_ENV_PREFIXES = ("SETUPTOOLS_SCM_", "HATCH_", "PDM_BUILD_SCM_", "POETRY_DYNAMIC_VERSIONING",
                       "UV_DYNAMIC_VERSIONING_", "VERSIONINGIT_", "DUNAMAI_", "PBR_VERSION",
                       "VCS_VERSIONING_")


def build_inputs(ws: Workspace, name: str) -> list[Any]:
    """What a local package's build backend reads besides its files: the environment
    variables above and, for a dynamic version, the checkout's VCS state (hatch-vcs,
    setuptools-scm and their kin derive the version from `git describe`)."""
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(_BUILD_ENV_PREFIXES))
    root = source_root(ws, name)
    pyproject = root / "pyproject.toml"
    dynamic = pyproject.is_file() and "version" in (
        read_toml(pyproject).get("project", {}).get("dynamic") or [])
    return [env, _vcs_state(root) if dynamic else None]


def _vcs_state(root: Path) -> str | None:
    """`git describe` of the checkout holding ``root`` (tag, distance, full commit, dirty),
    or None outside a git checkout."""
    try:
        out = _proc.run(["git", "-C", str(root), "describe", "--tags", "--long", "--dirty",
                         "--always", "--abbrev=40"], what="git describe")
    except CommandError:
        return None
    return out.stdout.strip() or None


def source_root(ws: Workspace, name: str) -> Path:
    """The directory (or archive) a local package is built from."""
    pkg = ws.packages[name]
    rel = next((pkg.source[k] for k in ("editable", "virtual", "directory", "path")
                if k in pkg.source), ".")
    return (ws.root / rel).resolve()


def source_files(ws: Workspace, name: str) -> dict[str, str]:
    """Each file of a local package's source tree (relative path) and its content hash.

    Environments, VCS data, caches and build output are not part of it, nor are the
    directories of other workspace members nested inside it. Symlinks are followed, as
    build backends follow them into a wheel: a link's identity is its target and the
    content behind it, and a directory link's files are walked. A link that leads back to
    a directory above it is refused (a backend would copy forever or fail).
    """
    root = source_root(ws, name)
    if root.is_file():
        return {root.name: _file_hash(root)}
    nested = {m.path for m in ws.members.values() if m.path != root}
    out: dict[str, str] = {}

    def walk(d: Path, rel: str, above: tuple[Path, ...]) -> None:
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"{d}: cannot read this directory of {name} ({exc.strerror})"
                             ) from None
        for e in entries:
            n, p = e.name, d / e.name
            relp = f"{rel}/{n}" if rel else n
            link = os.readlink(p) if e.is_symlink() else None
            if e.is_dir():
                if n in _SOURCE_SKIP or n.endswith(".egg-info") or p in nested:
                    continue
                real = p.resolve()
                if real in above:
                    raise InputError(
                        f"{p} -> {link}: a symlink to a directory above it, in the sources "
                        f"of {name} (expected a tree without loops; a build backend would "
                        "follow it forever)", hint="remove the link, or point it elsewhere")
                if link is not None:
                    out[relp] = "->" + link
                walk(p, relp, (*above, real))
            elif n == "uv.lock" or n.endswith((".pyc", ".pyo")):
                continue
            elif e.is_file():
                out[relp] = _file_hash(p) + (f"<-{link}" if link is not None else "")
            elif link is not None:
                out[relp] = "->" + link + " (dangling)"

    walk(root, "", (root.resolve(),))
    return out


def _file_hash(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()

