"""What decides a tier's bytes, hashed into its cache key: the build's settings, the locked
entries of the third-party packages the selection installs, and the sources (files, VCS
state, build environment) of the local ones."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .. import _proc, uv
from ..cache import key_of
from ..errors import CommandError, InputError
from ..project.plan import Plan, selection_args
from ..project.workspace import Workspace, read_toml
from ..python.bytecode import compiler_id
from ..python.interpreter import Interpreter
from .platforms import uv_python_platform

# Bumped whenever a change in staging changes what a tier holds, to invalidate cached tiers.
FORMAT = 4
# Never part of a source tree's identity: environments, VCS data, caches, build output.
_SOURCE_SKIP = {".git", ".hg", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache",
                ".ruff_cache", ".tox", ".nox", "node_modules", "build", "dist"}


def tier_keys(ws: Workspace, plan: Plan, interp: Interpreter) -> dict[str, str]:
    """The cache key of each tier: a hash of exactly what decides its bytes."""
    common = key_of("tier", FORMAT, uv.uv_version(), interp.key, plan.mode, plan.env_path,
                    plan.python_path, plan.compile, plan.platform, selection_args(plan),
                    plan.exclude, uv_python_platform(plan, interp),
                    compiler_id(interp.minor) if interp.sysroot or not interp.native else None)
    lock_meta = {k: ws.lock.get(k) for k in ("version", "requires-python", "resolution-markers",
                                             "supported-markers", "options")}
    every = ws.local_closure(plan.selected, extras=plan.extras, all_extras=plan.all_extras,
                             groups=plan.groups)
    deps = key_of(common, lock_meta, [lock_entry(ws, n) for n in third_party(ws, plan)])
    local_names = [n for n in every if n not in plan.selected]
    local = key_of(deps, [(n, lock_entry(ws, n), source_hash(ws, n), build_inputs(ws, n))
                          for n in local_names])
    project = key_of(local, [(n, lock_entry(ws, n), source_hash(ws, n), build_inputs(ws, n))
                             for n in plan.selected])
    return {"dependencies": deps, "local": local, "project": project}


def third_party(ws: Workspace, plan: Plan) -> list[str]:
    """Every non-local locked package the selection can reach (markers ignored: a superset)."""
    seen: set[str] = set()
    stack = list(plan.selected)
    top = set(plan.selected)
    while stack:
        name = stack.pop()
        if name in seen or name not in ws.packages:
            continue
        seen.add(name)
        pkg = ws.packages[name]
        deps = list(pkg.dependencies)
        for extra, names in pkg.optional.items():
            if plan.all_extras or extra in plan.extras or name not in top:
                deps.extend(names)
        if name in top:
            for group, names in pkg.groups.items():
                if group in plan.groups:
                    deps.extend(names)
        stack.extend(deps)
    return sorted(n for n in seen if not ws.packages[n].is_local)


def lock_entry(ws: Workspace, name: str) -> Any:
    """The first `[[package]]` table of ``name`` in uv.lock, as written."""
    for p in ws.lock.get("package", []):
        if canonicalize_name(p["name"]) == name:
            return p
    return None


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
    root = _source_root(ws, name)
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


def _source_root(ws: Workspace, name: str) -> Path:
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
    root = _source_root(ws, name)
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

