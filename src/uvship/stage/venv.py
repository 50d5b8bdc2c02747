"""Staging the environment in tiers (dependencies, local members, project), cached by inputs.

uv syncs each tier into a copy of the previous tier's venv; uvship records which files
the tier added, byte-compiles only those for the final path, and keeps the result under
the hash of the tier's inputs. A code-only change re-runs only the project tier.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from .. import cache, layers, uv
from ..cache import cached_dir, clean_stale, key_of
from ..errors import CommandError, InputError
from ..progress import NullProgress, Progress
from ..project.plan import Plan, selection_args
from ..project.workspace import Workspace, read_toml
from ..python.bytecode import compile_files, compiler_id
from ..python.interpreter import Interpreter
from .files import SECRETS

if TYPE_CHECKING:
    from ..python.elf import ElfInfo
    from .files import AppFiles

TIERS = ("dependencies", "local", "project")
# Bumped whenever a change here changes what a tier holds, to invalidate cached tiers.
_FORMAT = 4
# Files uv leaves that are bookkeeping for uv on this machine (times, build-host paths).
_VENV_ROOT_JUNK = (".gitignore", ".lock", "CACHEDIR.TAG")
_DIST_INFO_JUNK = ("uv_cache.json", "direct_url.json")
# Never part of a source tree's identity: environments, VCS data, caches, build output.
_SOURCE_SKIP = {".git", ".hg", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache",
                ".ruff_cache", ".tox", ".nox", "node_modules", "build", "dist"}
# uv's words (0.13) for a lock that no longer matches pyproject.toml
_STALE = "needs to be updated"


@dataclass(frozen=True)
class Distribution:
    """An installed distribution: name, version, tier and its files (relative to the env root)."""

    name: str
    version: str
    tier: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Tier:
    """One tier of a staged environment, as kept in the cache."""

    name: str
    key: str
    root: Path  # the staged environment after this tier (valid on this host)
    files: tuple[str, ...]  # what this tier added, relative to the env root
    distributions: tuple[Distribution, ...]
    needed: tuple[str, ...]  # DT_NEEDED of the tier's ELF files (for a scratch runtime)
    scripts: tuple[str, ...]  # console scripts the tier added to bin/
    left_out: tuple[str, ...] = ()  # secrets in local packages' files, never shipped
    # the tier's ELF files (relative to the root) and what the loader reads of them, as
    # ElfInfo.to_json() gives them (pyelftools is not imported to load a tier); None for a
    # tier cached before they were recorded
    elf: dict[str, dict[str, Any]] | None = field(default=None, compare=False)

    def elf_files(self) -> dict[str, ElfInfo]:
        """The tier's ELF files: relative path -> ELF facts."""
        if self.elf is None:
            return _elf_facts(self.root, list(self.files))
        from ..python.elf import ElfInfo

        return {rel: ElfInfo.from_json(d) for rel, d in self.elf.items()}


@dataclass(frozen=True)
class StagedEnv:
    """The environment of a plan: its tiers, and how its files map to the final path."""

    plan: Plan
    interpreter: Interpreter
    tiers: tuple[Tier, ...]
    # the project's files at the working directory (with what the build steps made)
    app: AppFiles | None = None
    # what runs, resolved in the environment (target paths); None: nothing said
    command: tuple[str, ...] | None = None

    @property
    def root(self) -> Path:
        """The complete environment on this host (the last tier's staging copy)."""
        return self.tiers[-1].root

    @property
    def final_path(self) -> str:
        return self.plan.env_path

    @property
    def distributions(self) -> tuple[Distribution, ...]:
        return tuple(d for t in self.tiers for d in t.distributions)

    @property
    def scripts(self) -> tuple[str, ...]:
        return tuple(sorted({s for t in self.tiers for s in t.scripts}))

    def tier_entries(self, tier: Tier) -> list[layers.Entry]:
        """The tier's files at their final paths; venv files that name the host are rewritten."""
        prefix = self.final_path.strip("/")
        out = []
        for rel in tier.files:
            src = tier.root / rel
            override = self._final_form(rel)
            if override is not None:
                out.append(layers.Entry(f"{prefix}/{rel}", **override))
                continue
            st = src.lstat()
            if os.path.islink(src):
                out.append(layers.Entry(f"{prefix}/{rel}", "symlink", 0o777,
                                        target=os.readlink(src)))
            elif src.is_dir():
                out.append(layers.Entry(f"{prefix}/{rel}", "dir", layers.DIR_MODE))
            else:
                mode = layers.EXEC_MODE if st.st_mode & 0o111 else layers.FILE_MODE
                out.append(layers.Entry(f"{prefix}/{rel}", "file", mode, source=src))
        return out

    def entries(self) -> list[layers.Entry]:
        return [e for t in self.tiers for e in self.tier_entries(t)]

    def _final_form(self, rel: str) -> dict[str, Any] | None:
        if self.plan.mode != "venv":
            return None
        final_exe = f"{self.plan.python_path.rstrip('/')}/{self.interpreter.executable}"
        if rel == "pyvenv.cfg":
            text = self.tiers[0].root.joinpath(rel).read_text()
            fixed = {"home": os.path.dirname(final_exe),
                     # uv records the version of the Python it made the venv with
                     "version_info": self.interpreter.version_str}
            lines = [f"{k} = {fixed[k]}" if (k := ln.split("=", 1)[0].strip()) in fixed
                     else ln for ln in text.splitlines()]
            return {"kind": "file", "mode": layers.FILE_MODE,
                    "data": ("\n".join(lines) + "\n").encode()}
        if rel == "bin/python":
            # Absolute: the venv and the interpreter are placed independently (two venvs
            # can share one interpreter layer); an absolute link survives either move.
            return {"kind": "symlink", "mode": 0o777, "target": final_exe}
        return None


# ---------------------------------------------------------------------- lock checks
def _stale_lock(ws: Workspace) -> InputError:
    return InputError(
        f"{ws.lock_path}: the lock file is out of date with pyproject.toml "
        "(expected a lock that matches the project's requirements)",
        hint="run `uv lock` in the workspace and commit uv.lock",
    )


def check_lock(ws: Workspace, interp: Interpreter) -> None:
    """Fail before staging when uv.lock no longer matches the workspace's pyproject files.

    uv checks with the build's interpreter (the native Python that stages for one this
    host cannot run): given none, it would look for a Python of its own and report a
    missing one. A passed check is remembered under the hash of the lock and every
    member's pyproject.toml, so an unchanged workspace is not checked twice.
    """
    h = hashlib.sha256(ws.lock_path.read_bytes())
    for p in sorted([ws.root / "pyproject.toml", *(m.path / "pyproject.toml"
                                                   for m in ws.members.values())]):
        if p.is_file():
            h.update(str(p.relative_to(ws.root)).encode() + b"\0" + p.read_bytes())
    if cache.read_record("lock-checks", h.hexdigest()) is not None:
        return
    try:
        python = native_stager(interp) or interp.exe
        uv.run(["lock", "--check", "--project", str(ws.root), "--no-python-downloads",
                "--python", str(python)], cwd=ws.root, env=interp.run_env(),
               what="uv lock --check")
    except CommandError as exc:
        if _STALE in exc.stderr:
            raise _stale_lock(ws) from None
        raise
    cache.write_record("lock-checks", h.hexdigest(), True)


# ---------------------------------------------------------------------- tier keys
def tier_keys(ws: Workspace, plan: Plan, interp: Interpreter) -> dict[str, str]:
    """The cache key of each tier: a hash of exactly what decides its bytes."""
    from .. import uv as _uv

    common = key_of("tier", _FORMAT, _uv.uv_version(), interp.key, plan.mode, plan.env_path,
                    plan.python_path, plan.compile, plan.platform, selection_args(plan),
                    plan.exclude, uv_python_platform(plan, interp),
                    compiler_id(interp.minor) if interp.sysroot or not interp.native else None)
    lock_meta = {k: ws.lock.get(k) for k in ("version", "requires-python", "resolution-markers",
                                             "supported-markers", "options")}
    every = ws.local_closure(plan.selected, extras=plan.extras, all_extras=plan.all_extras,
                             groups=plan.groups)
    third_party = _reachable_third_party(ws, plan)
    deps = key_of(common, lock_meta, [_lock_entry(ws, n) for n in third_party])
    local_names = [n for n in every if n not in plan.selected]
    local = key_of(deps, [(n, _lock_entry(ws, n), source_hash(ws, n), build_inputs(ws, n))
                          for n in local_names])
    project = key_of(local, [(n, _lock_entry(ws, n), source_hash(ws, n), build_inputs(ws, n))
                             for n in plan.selected])
    return {"dependencies": deps, "local": local, "project": project}


def _reachable_third_party(ws: Workspace, plan: Plan) -> list[str]:
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


def _lock_entry(ws: Workspace, name: str) -> Any:
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
    from .. import _proc

    try:
        out = _proc.run(["git", "-C", str(root), "describe", "--tags", "--long", "--dirty",
                         "--always", "--abbrev=40"], what="git describe")
    except CommandError:
        return None
    return out.stdout.strip() or None


def _source_root(ws: Workspace, name: str) -> Path:
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


# ---------------------------------------------------------------------- staging
def stage(ws: Workspace, plan: Plan, interp: Interpreter, *,
          progress: Progress | None = None,
          on_tier: Callable[[StagedEnv, Tier], None] | None = None,
          fetch: Callable[[str, str, Tier | None], Tier | None] | None = None,
          on_built: Callable[[StagedEnv, Tier], None] | None = None) -> StagedEnv:
    """Stage every tier of ``plan``, reusing cached tiers; returns the complete environment.

    ``on_tier`` is called as each tier is ready (with the environment so far), so its layer
    can be written while uv works on the next one. ``fetch`` may supply a tier missing from
    the local cache (a shared cache); ``on_built`` hears of each tier uv had to make.
    """
    progress = progress or NullProgress()
    clean_stale()  # what a process killed mid-build left in the cache
    keys = tier_keys(ws, plan, interp)
    tiers: list[Tier] = []
    prev: Tier | None = None
    for name in TIERS:
        if name == "local" and not plan.local_members and prev is not None:
            # nothing local between the dependencies and the project: no uv run needed
            tier = Tier(name, keys[name], prev.root, (), (), (), (), elf={})
        else:
            tier = load_tier(name, keys[name])
        if tier is None and fetch is not None:
            tier = fetch(name, keys[name], prev)
        built = tier is None
        if tier is None:
            with progress.step(_STEP_NAMES[name]):
                tier = _build_tier(ws, plan, interp, name, keys[name], prev)
            if tier.left_out:
                progress.note(f"left out of the {name} tier (secrets are never shipped; an "
                              f"exclude pattern `!PATH` keeps one): {', '.join(tier.left_out)}")
        tiers.append(tier)
        if built and on_built is not None:
            on_built(StagedEnv(plan, interp, tuple(tiers)), tier)
        prev = tier
        if on_tier is not None:
            on_tier(StagedEnv(plan, interp, tuple(tiers)), tier)
    return StagedEnv(plan, interp, tuple(tiers))


_STEP_NAMES = {"dependencies": "installing third-party dependencies",
               "local": "installing local workspace members",
               "project": "installing the project"}


def _meta_path(key: str) -> Path:
    return cache.dir_path("tiers", key) / "tier.json"


def load_tier(name: str, key: str) -> Tier | None:
    meta = _meta_path(key)
    if not (meta.parent / ".complete").is_file():
        return None
    d = json.loads(meta.read_text())
    return Tier(
        name=name, key=key, root=meta.parent / "env", files=tuple(d["files"]),
        distributions=tuple(Distribution(x["name"], x["version"], x["tier"], tuple(x["files"]))
                            for x in d["distributions"]),
        needed=tuple(d["needed"]), scripts=tuple(d["scripts"]),
        left_out=tuple(d.get("left_out", ())),
        elf=d.get("elf"),
    )


def _build_tier(ws: Workspace, plan: Plan, interp: Interpreter, name: str, key: str,
                prev: Tier | None) -> Tier:
    made: dict[str, Any] = {}

    def build(out: Path) -> None:
        env = out / "env"
        if prev is None:
            _new_env(ws, plan, interp, env)
        else:
            _link_tree(prev.root, env)
        before = set(_listing(env))
        python = env / interp.executable if plan.mode == "system" else interp.exe
        if plan.mode == "venv":  # a system-mode env is the interpreter's own prefix
            python = native_stager(interp) or python
        _sync(ws, plan, python, env, name, interp.run_env(), uv_python_platform(plan, interp))
        if plan.mode == "venv" and prev is None:
            _check_venv(env, interp)
        site = f"lib/python{interp.minor}/site-packages"
        _remove_junk(env, site, plan.mode, before)
        left_out: list[str] = []
        if name != "dependencies":  # a build backend puts whatever the package dir holds
            left_out = _exclude_data_files(env, site, before, (*NEVER_IN_PACKAGES,
                                                               *plan.exclude))
        # the venv's own files (pyvenv.cfg, bin/python, activate) belong to the first tier
        base = set() if prev is None and plan.mode == "venv" else before
        added = sorted(set(_listing(env)) - base)
        scripts = _new_scripts(env, added)
        if plan.mode == "system":
            _fix_shebangs(env, scripts, python, plan.python_path)
        if plan.compile:
            py = [env / f for f in added if f.endswith(".py") and f.startswith(site)]
            compile_files(python, py, strip=env, prefix=plan.env_path,
                          emulator=interp.emulator(), minor=interp.minor)  # native: see above
            added = sorted(set(_listing(env)) - base)
        dists = _distributions(plan, env, site, added, name)
        elves = _elf_facts(env, added)
        needed = _needed(elves)
        made.update(files=added, distributions=dists, needed=needed, scripts=scripts)
        (out / "tier.json").write_text(json.dumps({
            "files": added, "needed": needed, "scripts": scripts, "left_out": left_out,
            "elf": {rel: info.to_json() for rel, info in elves.items()},
            "distributions": [{"name": d.name, "version": d.version, "tier": d.tier,
                               "files": list(d.files)} for d in dists],
        }, sort_keys=True))

    cached_dir("tiers", key, build)
    loaded = load_tier(name, key)
    assert loaded is not None
    return loaded


def _new_env(ws: Workspace, plan: Plan, interp: Interpreter, env: Path) -> None:
    if plan.mode == "system":
        if not interp.native:
            raise InputError(
                f"--mode system: the interpreter ({interp.origin}) is for {interp.machine} "
                f"({interp.libc}) and this host cannot run it, so it cannot install into "
                "its own prefix", hint="use --mode venv (the default), or give --python PATH "
                "of an interpreter inside a sysroot that qemu-user can run it from")
        shutil.copytree(interp.root, env, symlinks=True)
        return
    # a venv made with the native stager Python points at it; the layout points it at the
    # target's interpreter (pyvenv.cfg home and version, bin/python)
    python = native_stager(interp) or interp.exe
    uv.run(["venv", "--relocatable", "--quiet", "--no-config", "--python", str(python),
            str(env)], cwd=ws.project_dir, what="uv venv", env=interp.run_env())


def native_stager(interp: Interpreter) -> Path | None:
    """The native Python that uv stages with for an interpreter of another platform, or
    None when uv runs the interpreter itself.

    One that this host cannot run needs it. One it runs through qemu-user (inside a
    sysroot) is staged natively too when a native Python of its minor version exists:
    uv would otherwise start it under emulation for every staging environment.
    """
    from ..python.bytecode import native_compiler

    if interp.sysroot:
        return native_compiler(interp.minor)
    if interp.native:
        return None
    found = native_compiler(interp.minor)
    if found is None:
        raise InputError(
            f"the interpreter ({interp.origin}) is for {interp.machine} ({interp.libc}): this "
            f"host cannot run it, and has no Python {interp.minor} of its own for uv to "
            "install its packages with", hint=f"install one: uv python install {interp.minor}")
    return found


# The manylinux levels uv's --python-platform names (2_18..2_27 have none of their own)
_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)


def uv_python_platform(plan: Plan, interp: Interpreter) -> str | None:
    """uv's --python-platform, or None when uv asks the interpreter itself.

    musllinux for a musl interpreter this host cannot run; manylinux up to the base's glibc
    when a base tells it (wheels for a newer glibc than the base's would not load there),
    else up to the interpreter's own floor for an interpreter this host cannot run.
    """
    runs = plan.mode == "system" or native_stager(interp) is None
    if interp.libc == "musl":
        return None if runs else f"{interp.machine}-unknown-linux-musl"
    glibc = plan.glibc
    if glibc is None:
        if runs:
            return None
        glibc = interp.min_glibc or "2.17"
    level = max((n for n in _MANYLINUX if n <= _glibc_minor(glibc)), default=17)
    return f"{interp.machine}-manylinux_2_{level}"


def _glibc_minor(version: str) -> int:
    parts = version.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 17


def _link_tree(src: Path, dst: Path) -> None:
    """A copy of ``src`` made of hard links: uv and the compiler only ever add new files
    (or replace through a rename), so the cached tier underneath is never written."""
    shutil.copytree(src, dst, symlinks=True, copy_function=os.link)


def _sync(ws: Workspace, plan: Plan, python: Path, env_root: Path, tier: str,
          run_env: dict[str, str], python_platform: str | None = None) -> None:
    args = ["sync", "--locked", "--no-editable", "--link-mode", "copy", "--python", str(python),
            "--no-python-downloads", *selection_args(plan), "--project", str(ws.project_dir)]
    if python_platform:
        args += ["--python-platform", python_platform]
    if tier == "dependencies":
        args.append("--no-install-local")
    elif tier == "local":
        for p in plan.selected:
            args += ["--no-install-package", p]
    elif tier == "project" and plan.local_members:
        # the local members are the tier below, installed from the same lock: left as they
        # are (their dist-info lost uv's records of their source, so uv would reinstall)
        args.append("--inexact")
        for p in plan.local_members:
            args += ["--no-install-package", p]
    # uv keys its wheels of local sources by pyproject.toml and directory times, not by
    # content: an edited module would be installed from the stale wheel. This tier only
    # runs when the sources changed, so rebuild them.
    local = plan.local_members if tier == "local" else plan.selected if tier == "project" else ()
    for p in local:
        args += ["--reinstall-package", p]
    env = {"UV_PROJECT_ENVIRONMENT": str(env_root), "UV_PYTHON": str(python),
           # uv would compile for the staging path: uvship compiles for the final one.
           "UV_COMPILE_BYTECODE": "", **run_env}
    try:
        uv.run(args, cwd=ws.project_dir, env=env, what="uv sync")
    except CommandError as exc:
        if _STALE in exc.stderr:
            raise _stale_lock(ws) from None
        raise


def _check_venv(root: Path, interp: Interpreter) -> None:
    cfg = {}
    for line in (root / "pyvenv.cfg").read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            cfg[k.strip()] = v.strip()
    if cfg.get("relocatable") != "true":
        raise InputError(f"{root}: uv made a venv that is not relocatable (pyvenv.cfg)")
    if not cfg.get("version_info", "").startswith(interp.minor):
        raise InputError(
            f"{root}: uv replaced the venv's interpreter (expected Python {interp.version_str}, "
            f"found {cfg.get('version_info')})")


def _listing(root: Path) -> Iterator[str]:
    """Every path under ``root`` (files, links and directories), relative."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames + filenames:
            yield n if rel == "." else f"{rel}/{n}"


def _remove_junk(root: Path, site: str, mode: str, before: set[str]) -> None:
    if mode == "venv":
        for name in _VENV_ROOT_JUNK:
            (root / name).unlink(missing_ok=True)
    for dist_info in sorted((root / site).glob("*.dist-info")):
        # new in this tier (uv writes them when it installs): they name the build
        # machine's source paths, which must never reach a layer
        removed = [n for n in _DIST_INFO_JUNK if (dist_info / n).is_file()
                   and f"{site}/{dist_info.name}/{n}" not in before]
        if not removed:
            continue
        for n in removed:
            (dist_info / n).unlink()
        _rewrite_record(dist_info, lambda rel, gone=tuple(removed): rel.rsplit("/", 1)[-1]
                        not in gone)


def _rewrite_record(dist_info: Path, keep: Callable[[str], bool]) -> None:
    """RECORD without the rows whose path ``keep`` refuses (written as a new inode: the old
    one may be a hard link into a cached tier)."""
    record = dist_info / "RECORD"
    if not record.is_file():
        return
    rows = [r for r in csv.reader(io.StringIO(record.read_text())) if r and keep(r[0])]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    _replace_text(record, buf.getvalue())


def _replace_text(path: Path, text: str) -> None:
    # write a new inode: the old one may be a hard link into a cached tier
    tmp = path.with_name(path.name + ".uvship-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _new_scripts(env: Path, added: list[str]) -> list[str]:
    out = []
    for rel in added:
        if not rel.startswith("bin/") or rel.count("/") != 1:
            continue
        p = env / rel
        if p.is_file() and not p.is_symlink() and os.access(p, os.X_OK):
            head = p.read_bytes()[:256]
            if head.startswith(b"#!") and b"python" in head:
                out.append(rel[4:])
    return sorted(out)


def _fix_shebangs(env: Path, scripts: list[str], python: Path, python_path: str) -> None:
    """Scripts installed into the interpreter's own bin/ name its final path, not staging."""
    staged = str(python.parent).encode()
    final_bin = f"{python_path.rstrip('/')}/bin"
    for name in scripts:
        p = env / "bin" / name
        data = p.read_bytes()
        if data.startswith(b"#!" + staged):
            first, _, rest = data.partition(b"\n")
            exe_name = first[2:].decode().strip().rsplit("/", 1)[-1]
            tmp = p.with_name(p.name + ".uvship-tmp")
            tmp.write_bytes(f"#!{final_bin}/{exe_name}\n".encode() + rest)
            os.chmod(tmp, 0o755)
            os.replace(tmp, p)


def _distributions(plan: Plan, env: Path, site: str, added: list[str],
                   tier: str) -> tuple[Distribution, ...]:
    out = []
    added_set = set(added)
    for dist_info in sorted((env / site).glob("*.dist-info")):
        if f"{site}/{dist_info.name}" not in added_set:
            continue
        meta = _metadata(dist_info / "METADATA")
        name = canonicalize_name(meta.get("Name", dist_info.name.split("-")[0]))
        files = set()
        record = dist_info / "RECORD"
        if record.is_file():
            for row in csv.reader(io.StringIO(record.read_text())):
                if row:
                    files.add(os.path.normpath(os.path.join(site, row[0])))
        out.append(Distribution(name, meta.get("Version", "?"), tier, tuple(sorted(files))))
    return tuple(out)


def _metadata(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        k, sep, v = line.partition(":")
        if sep and k not in out:
            out[k] = v.strip()
    return out


def _needed(elves: dict[str, ElfInfo]) -> list[str]:
    """DT_NEEDED of the ELF files a tier added (extension modules, bundled libraries)."""
    return sorted({n for info in elves.values() for n in info.needed})


def _elf_facts(env: Path, added: list[str]) -> dict[str, ElfInfo]:
    """The ELF files a tier added: shared objects (by name) and programs (by their mode),
    relative path -> what the loader reads of them (DT_NEEDED, RPATH, RUNPATH...)."""
    from ..python import elf

    out: dict[str, ElfInfo] = {}
    for rel in added:
        p = env / rel
        if rel.endswith(".so") or ".so." in rel.rsplit("/", 1)[-1]:
            if p.is_symlink() or not p.is_file():
                continue
        elif rel.endswith((".py", ".pyc", ".pyi", ".txt", ".json")):
            continue
        else:
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not (stat.S_ISREG(st.st_mode) and st.st_mode & 0o111):
                continue
        info = elf.read_elf(p)
        if info is not None:
            out[rel] = info
    return out


def excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``rel`` (a path in site-packages) is excluded by .dockerignore-style
    ``patterns``; a later `!pattern` re-includes."""
    return _ignore(patterns).excludes(rel)


@functools.lru_cache(maxsize=8)
def _ignore(patterns: tuple[str, ...]):
    from .._glob import IgnoreFile

    return IgnoreFile.of(patterns)


def _exclude_data_files(env: Path, site: str, before: set[str],
                        patterns: tuple[str, ...]) -> list[str]:
    """Remove the files of the newly installed local packages that ``patterns`` exclude
    (never their metadata), and their RECORD lines; the secrets among them (paths in
    site-packages)."""
    site_root = env / site
    left_out: list[str] = []

    def keep(row_path: str, meta: str) -> bool:
        rel = os.path.normpath(row_path)
        # the metadata and the scripts outside site-packages always stay
        if rel.startswith(("..", meta + "/")) or not excluded(rel, patterns):
            return True
        if excluded(rel, SECRETS):
            left_out.append(rel)
        target = site_root / rel
        target.unlink(missing_ok=True)
        for parent in target.parents:  # directories the exclusion emptied go too
            if parent == site_root or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
        return False

    for dist_info in sorted(site_root.glob("*.dist-info")):
        if f"{site}/{dist_info.name}" not in before:
            _rewrite_record(dist_info, lambda rel, meta=dist_info.name: keep(rel, meta))
    return sorted(left_out)


# Never shipped from a local package's files (a build backend takes whatever its directory
# holds): VCS data and secrets; `!pattern` in the exclude option re-includes.
NEVER_IN_PACKAGES = ("**/.git", "**/.hg", "**/.svn", "**/.venv", *SECRETS)


_ARCH_TAGS = {"linux/amd64": ("x86_64",), "linux/arm64": ("aarch64", "arm64")}
_LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def _glibc_fits(tag: str, glibc: str | None) -> bool:
    """Whether a manylinux platform tag's glibc floor is at most ``glibc`` (None: any)."""
    if glibc is None:
        return True
    m = re.match(r"manylinux_2_(\d+)_", tag)
    need = int(m.group(1)) if m else _LEGACY_MANYLINUX.get(tag.split("_", 1)[0], 0)
    return need <= _glibc_minor(glibc)


def check_wheels_for(ws: Workspace, plan: Plan, libc: str = "glibc", *,
                     host: bool = False) -> None:
    """Refuse, before any work, a locked package that has no wheel for another platform or
    C library: building it there would need that target's compilers (and emulation).

    A package locked with no wheel at all is built by uv from its source: for this host's
    platform and C library (``host``) always, a base's glibc notwithstanding; for another
    one only when it builds a pure-Python wheel, which is found by building it here.
    """
    arches = _ARCH_TAGS.get(plan.platform, ())
    musl = libc == "musl"
    missing = []
    too_new = False  # wheels for the machine, but for a newer glibc than the base's
    for name in _reachable_third_party(ws, plan):
        entry = _lock_entry(ws, name) or {}
        wheels = [w.get("url", w.get("path", w.get("filename", ""))) for w in
                  entry.get("wheels", [])]
        tags = [str(w).rsplit("/", 1)[-1].removesuffix(".whl").split("-")[-1] for w in wheels]
        fitting = [t for plat in tags for t in plat.split(".")
                   if t == "any" or (t.startswith(("manylinux", "musllinux", "linux_"))
                                     and ("musllinux" in t) == musl and t.endswith(arches))]
        if any(t == "any" or musl or _glibc_fits(t, plan.glibc) for t in fitting):
            continue
        version = entry.get("version", "?")
        if not wheels:
            if host:
                continue
            built = sdist_wheel_tags(ws, name, entry)
            if built and all(t.endswith("-any") for t in built):
                continue
            what = f"its source builds {', '.join(built)} here" if built else \
                "its source could not be built here to tell whether it is pure Python"
            missing.append(f"{name} {version} (only an sdist is locked; {what})")
            continue
        too_new = too_new or bool(fitting)
        missing.append(f"{name} {version}")
    if missing:
        target = f"{plan.platform} ({libc})" if musl else plan.platform
        kind = "musllinux" if musl else "manylinux"
        if too_new:
            target, kind = f"{target} with glibc {plan.glibc} (the base's)", \
                f"manylinux (glibc {plan.glibc} or older)"
        raise InputError(
            f"{ws.lock_path}: no wheel for {target} of {', '.join(missing)} (expected "
            f"a {kind} wheel for {arches[0]} or a pure-Python one)",
            hint="pin a version that publishes such wheels, or build this package for the "
                 "target elsewhere and serve the wheel from an index uv can reach")


def sdist_wheel_tags(ws: Workspace, name: str, entry: dict[str, Any]) -> list[str]:
    """The tags of the wheel the locked source of ``name`` builds on this host, e.g.
    ["py3-none-any"]; [] when it cannot be built here. Built once by uv, with the Python
    uvship runs on, and remembered by the source's identity."""
    import sys
    import tempfile

    from ..uv import uv_version

    req = _source_requirement(ws, name, entry)
    if req is None:
        return []
    key = key_of("sdist-tags", uv_version(), req)
    known = cache.read_record("sdist-tags", key)
    if known is not None:
        return known
    with tempfile.TemporaryDirectory(prefix="uvship-sdist-") as tmp:
        reqs = Path(tmp, "requirements.txt")
        reqs.write_text(req + "\n")
        target = Path(tmp, "target")
        try:
            # the project's directory: its uv settings (indexes, find-links) serve the build
            uv.run(["pip", "install", "--no-deps", "--no-python-downloads", "--target",
                    str(target), "--python", sys.executable, "-r", str(reqs)],
                   cwd=ws.project_dir, what=f"uv pip install (building {name} to see its tags)")
        except CommandError:
            return []
        wheel = next(target.glob("*.dist-info/WHEEL"), None)
        tags = sorted(line.split(":", 1)[1].strip() for line in
                      (wheel.read_text().splitlines() if wheel else ())
                      if line.startswith("Tag:"))
    cache.write_record("sdist-tags", key, tags)
    return tags


def _source_requirement(ws: Workspace, name: str, entry: dict[str, Any]) -> str | None:
    """A requirement line for exactly the locked source of ``name`` (its hash checked)."""
    sdist = entry.get("sdist") or {}
    source = entry.get("source") or {}
    if "url" in sdist:
        url = sdist["url"]
    elif "path" in sdist:
        url = (ws.root / sdist["path"]).resolve().as_uri()
    elif "url" in source:
        url = source["url"]
    elif "git" in source:  # https://host/repo?rev=...#<commit>
        repo, _, commit = source["git"].partition("#")
        url = f"git+{repo.split('?', 1)[0]}@{commit}" if commit else None
    else:
        url = None
    if url is None:
        return None
    hashed = sdist.get("hash")
    return f"{name} @ {url}" + (f" --hash={hashed}" if hashed and "git" not in source else "")
