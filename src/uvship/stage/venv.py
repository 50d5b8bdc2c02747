"""Staging the environment in tiers (dependencies, local members, project), cached by inputs.

uv syncs each tier into a copy of the previous tier's venv; uvship records which files
the tier added, byte-compiles only those for the final path, and keeps the result under
the hash of the tier's inputs. A code-only change re-runs only the project tier.

The parts: the tiers' cache keys (`keys`), the checks before staging (`checks`), the
target as uv names it (`platforms`), uv's work on a tier (`sync`), what is taken out of
it (`tidy`), what it holds (`dists`), and the bytecode and ELF facts kept per distribution
for every later tier that installs it (`distwork`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import cache, layers
from ..cache import cached_dir, clean_stale
from ..progress import NullProgress, Progress
from ..project.plan import Plan
from ..project.workspace import Workspace
from ..python.bytecode import compile_files
from ..python.interpreter import Interpreter
from . import distwork
from .dists import Distribution, distributions, elf_facts, needed, new_scripts
from .keys import environment_key, tier_keys
from .platforms import native_stager, uv_python_platform
from .sync import (
    check_venv,
    link_tree,
    new_env,
    shadow_tree,
    stable_place,
    sync_tier,
    tidy_build_records,
)
from .tidy import (
    NEVER_IN_PACKAGES,
    exclude_data_files,
    fix_shebangs,
    forget_bytecode,
    relocatable_shebangs,
    remove_junk,
    remove_orphans,
)

if TYPE_CHECKING:
    from ..python.elf import ElfInfo
    from .files import AppFiles

TIERS = ("dependencies", "local", "project")


@dataclass(frozen=True)
class Tier:
    """One tier of a staged environment, as kept in the cache."""

    name: str
    key: str
    # where the tier was staged (valid on this host): the third-party tier, or any tier of
    # a system-mode install, is the whole environment so far; a later venv tier holds its
    # own files and, linked from below, the venv's files, bin/ and every dist-info
    root: Path
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
            return elf_facts(self.root, list(self.files))
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
        """The last tier's staging directory: the venv's files, bin/ and every dist-info
        of the environment (for what runs and the SBOM); the packages' files are each in
        the root of the tier that installed them (``copy_to`` puts them together)."""
        return self.tiers[-1].root

    def copy_to(self, dest: Path) -> None:
        """A copy of the complete environment at ``dest``: files copied, never linked (a
        build step writes there, and a tier's files are links into the caches)."""
        first = self.tiers[0] if self.plan.mode == "venv" else self.tiers[-1]
        shutil.copytree(first.root, dest, symlinks=True)
        for t in self.tiers[1:] if self.plan.mode == "venv" else ():
            for rel in t.files:  # sorted: a directory before what it holds
                src, dst = t.root / rel, dest / rel
                if src.is_symlink():
                    if not os.path.lexists(dst):
                        os.symlink(os.readlink(src), dst)
                elif src.is_dir():
                    dst.mkdir(exist_ok=True)
                else:
                    shutil.copy2(src, dst)

    @property
    def final_path(self) -> str:
        return self.plan.env_path

    @property
    def distributions(self) -> tuple[Distribution, ...]:
        return tuple(d for t in self.tiers for d in t.distributions)

    @property
    def scripts(self) -> tuple[str, ...]:
        return tuple(sorted({s for t in self.tiers for s in t.scripts}))

    def tier_entries(self, tier: Tier, files: tuple[str, ...] | None = None
                     ) -> list[layers.Entry]:
        """The tier's files (or ``files`` of them) at their final paths; venv files that
        name the host are rewritten."""
        prefix = self.final_path.strip("/")
        out = []
        for rel in tier.files if files is None else files:
            src = tier.root / rel
            # a relocatable bundle's prefix is its own root ("/"): paths stay relative
            path = f"{prefix}/{rel}" if prefix else rel
            override = self._final_form(rel)
            if override is not None:
                out.append(layers.Entry(path, **override))
                continue
            st = src.lstat()
            if os.path.islink(src):
                out.append(layers.Entry(path, "symlink", 0o777, target=os.readlink(src)))
            elif src.is_dir():
                out.append(layers.Entry(path, "dir", layers.DIR_MODE))
            else:
                mode = layers.EXEC_MODE if st.st_mode & 0o111 else layers.FILE_MODE
                out.append(layers.Entry(path, "file", mode, source=src))
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
    """The tier kept in the cache under ``key``, or None when there is none (yet)."""
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

    site = f"lib/python{interp.minor}/site-packages"

    def build(out: Path) -> None:
        env = out / "env"
        donor = _donor(plan, interp, key) if prev is None else None
        if donor is not None:
            link_tree(donor.root, env)
            modules = {rel: (env / rel).stat().st_ino for rel in donor.files
                       if rel.endswith(".py") and rel.startswith(site)}
            elf_known = {rel: ((env / rel).lstat().st_ino, info)
                         for rel, info in (donor.elf or {}).items()}
        elif prev is None:
            new_env(ws, plan, interp, env)
        elif plan.mode == "venv":
            shadow_tree(prev.root, env, site)
        else:  # an interpreter's prefix: uv runs the Python inside it
            link_tree(prev.root, env)
        before = set(_listing(env))
        python = env / interp.executable if plan.mode == "system" else interp.exe
        if plan.mode == "venv":  # a system-mode env is the interpreter's own prefix
            python = native_stager(interp) or python
        inside = python.is_relative_to(env)  # a system-mode env's own interpreter
        ident = cache.key_of(interp.key, plan.mode, "env" if inside else str(python))
        with stable_place(env, ident) as place:
            # the interpreter as uv sees it, the one it writes into the scripts' shebangs
            synced = place / python.relative_to(env) if inside else python
            args = (ws, plan, synced, place, name, interp.run_env(),
                    uv_python_platform(plan, interp))
            sync_tier(*args, source_key=key)
            if name != "dependencies" and not tidy_build_records(place, site, key):
                sync_tier(*args, source_key=key, reinstall=True)
        if plan.mode == "venv" and prev is None:
            check_venv(env, interp)
        if donor is not None:
            remove_orphans(env, site, before)
        remove_junk(env, site, plan.mode, before)
        left_out: list[str] = []
        if name != "dependencies":  # a build backend puts whatever the package dir holds
            left_out = exclude_data_files(env, site, before, (*NEVER_IN_PACKAGES,
                                                              *plan.exclude))
        # the venv's own files (pyvenv.cfg, bin/python, activate) belong to the first tier
        base = set() if prev is None and plan.mode == "venv" else before
        added = sorted(set(_listing(env)) - base)
        scripts = new_scripts(env, added)
        if plan.relocatable:  # wherever the bundle is unpacked: the python beside them
            relocatable_shebangs(env, site, scripts, synced)
        elif plan.mode == "system":
            fix_shebangs(env, site, scripts, synced, plan.python_path)
        def read_elves(files: list[str], known: dict[str, Any]) -> dict[str, ElfInfo]:
            """The ELF facts of ``files``: ``known`` ones (relative path -> to_json) as they
            are, those of files uv left as the donor had them from the donor (reading
            every ELF file of a scientific stack costs seconds), the rest read."""
            from ..python.elf import ElfInfo

            kept = dict(known)
            if donor is not None and elf_known:
                kept |= {rel: info for rel, (ino, info) in elf_known.items()
                         if _inode(env / rel) == ino}
            return {**{rel: ElfInfo.from_json(info) for rel, info in kept.items()},
                    **elf_facts(env, [f for f in files if f not in kept])}

        # compiling adds only bytecode: the dist-infos, and what their RECORDs list, stay
        dists = distributions(env, site, added, name)
        units: list[distwork.Unit] = []
        if plan.compile:
            py = [env / f for f in added if f.endswith(".py") and f.startswith(site)]
            if donor is not None:  # only what uv installed: the rest has its bytecode
                py = [f for f in py if modules.get(_rel(f, env)) != f.stat().st_ino]
                forget_bytecode(py, interp.minor)
            pending = {_rel(f, env) for f in py}
            groups: list[list[Path]] = []
            known: dict[str, Any] = {}
            skip: set[str] = set()
            if name == "dependencies":
                # each distribution compiled apart (its bytecode the same whatever else
                # is compiled), or linked from a build that compiled it before
                for unit in distwork.units(env, dists, plan, interp):
                    sources = [s for s in unit.sources if s in pending]
                    if donor is not None and not sources:
                        continue  # the donor's, as it was
                    pending.difference_update(sources)
                    facts = distwork.reuse(env, unit)
                    if facts is None:  # compiled (when it has modules), then kept
                        if sources:
                            groups.append([env / s for s in sources])
                        units.append(unit)
                    else:
                        known |= facts
                        skip.update(unit.dist.files)
                # a module no one distribution owns: alone
                groups += [[env / s] for s in sorted(pending)]
                pending.clear()
            # the ELF files are read while the compiler (another process) works: bytecode
            # is never ELF, so the files before compiling are the ones to read
            with ThreadPoolExecutor(1, thread_name_prefix="uvship-elf") as pool:
                reading = pool.submit(read_elves, [f for f in added if f not in skip], known)
                compile_files(python, [env / s for s in pending], strip=env,
                              prefix=plan.env_path, emulator=interp.emulator(),
                              minor=interp.minor, groups=groups)  # native: above
                elves = reading.result()
            added = sorted(set(_listing(env)) - base)
        else:
            elves = read_elves(added, {})
        elf = {rel: info.to_json() for rel, info in elves.items()}
        if units:
            bytecode_of = distwork.bytecode_by_source(added)
            for unit in units:
                distwork.keep(env, unit, bytecode_of, elf)
        needs = needed(elves)
        made.update(files=added, distributions=dists, needed=needs, scripts=scripts)
        (out / "tier.json").write_text(json.dumps({
            "files": added, "needed": needs, "scripts": scripts, "left_out": left_out,
            "elf": elf,
            "distributions": [{"name": d.name, "version": d.version, "tier": d.tier,
                               "files": list(d.files)} for d in dists],
        }, sort_keys=True))

    cached_dir("tiers", key, build)
    loaded = load_tier(name, key)
    assert loaded is not None
    if name == "dependencies":
        cache.write_record("dependency-donor", environment_key(plan, interp), key)
    return loaded


def _donor(plan: Plan, interp: Interpreter, key: str) -> Tier | None:
    """The third-party tier staged last for the same interpreter, paths and selection (a
    lock before this one): the new tier starts as its hard-linked copy, so uv installs
    only what changed and only that is byte-compiled; the result is the tier a fresh
    environment would give (tests/test_layers_split.py builds both). Only for a venv: a
    system-mode tier is told apart from the interpreter's own files by what was there
    before uv ran."""
    if plan.mode != "venv":
        return None
    known = cache.read_record("dependency-donor", environment_key(plan, interp))
    if not known or known == key:
        return None
    return load_tier("dependencies", known)


def _inode(path: Path) -> int | None:
    try:
        return path.lstat().st_ino
    except OSError:
        return None


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _listing(root: Path) -> Iterator[str]:
    """Every path under ``root`` (files, links and directories), relative."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames + filenames:
            yield n if rel == "." else f"{rel}/{n}"

