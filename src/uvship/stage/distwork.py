"""Work that depends on one installed distribution alone, done once per machine.

A distribution's bytecode (compiled for the final path) and the facts of its ELF files
are decided by its installed files, the interpreter and the path the environment will have:
nothing else in the lock. They are kept in the cache under a hash of exactly that (its
RECORD, which lists every installed file's hash as uv wrote it), so a build that installs
a distribution this machine already compiled for the same interpreter and path - the
first build of another project, a lock that goes back to an earlier version, a cold build
of a project whose uvship cache is gone - links its bytecode in instead of compiling it.

The bytecode is the same either way: each distribution is compiled apart from the rest
(python.bytecode's groups), so what else a build compiles never changes its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import cache
from ..cache import key_of
from ..python.bytecode import compiler_id
from .dists import Distribution, source_of_bytecode

if TYPE_CHECKING:
    from ..project.plan import Plan
    from ..python.interpreter import Interpreter

# Bumped when what is kept, or how it is compiled, changes.
FORMAT = 2
KIND = "dist-work"


@dataclass(frozen=True)
class Unit:
    """A distribution of a tier and the cache key of its work."""

    dist: Distribution
    key: str
    # its modules to byte-compile (relative to the environment's root): those its RECORD
    # alone claims (a module two distributions install, as old-style namespace packages
    # do, is nobody's: it is compiled on its own, never kept)
    sources: tuple[str, ...]


def units(env: Path, dists: tuple[Distribution, ...], plan: Plan, interp: Interpreter
          ) -> list[Unit]:
    """One unit per distribution with a RECORD (the others are never reused)."""
    emulated = interp.sysroot or not interp.native
    common = [FORMAT, interp.key, plan.mode, plan.env_path,
              compiler_id(interp.minor) if emulated else None]
    claims = Counter(f for d in dists for f in set(d.files) if f.endswith(".py"))
    out = []
    for d in dists:
        record = next((f for f in d.files if f.endswith(".dist-info/RECORD")), None)
        if record is None:
            continue
        try:
            digest = hashlib.sha256((env / record).read_bytes()).hexdigest()
        except OSError:
            continue
        out.append(Unit(d, key_of(KIND, *common, digest),
                        tuple(f for f in d.files if f.endswith(".py") and claims[f] == 1)))
    return out


def reuse(env: Path, unit: Unit) -> dict[str, Any] | None:
    """Link the unit's kept bytecode into ``env``; its ELF facts (relative path -> the
    facts as ElfInfo.to_json gives them), or None when nothing is kept (or what is kept
    is damaged: then the unit is compiled and read as if nothing were)."""
    kept = cache.dir_path(KIND, unit.key)
    if not (kept / ".complete").is_file():
        return None
    try:
        facts = json.loads((kept / "facts.json").read_text())
        for rel in facts["bytecode"]:
            dest = env / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link(kept / "files" / rel, dest)
        return facts["elf"]
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(kept, ignore_errors=True)  # kept again, whole, once compiled
        return None


def bytecode_by_source(files: list[str]) -> dict[str, list[str]]:
    """The bytecode among ``files`` (a tier's, after compiling), by the module it was
    compiled from."""
    out: dict[str, list[str]] = {}
    for f in files:
        if "/__pycache__/" in f and (src := source_of_bytecode(f)) is not None:
            out.setdefault(src, []).append(f)
    return out


def keep(env: Path, unit: Unit, bytecode_of: dict[str, list[str]], elf: dict[str, Any]
         ) -> None:
    """Keep the unit's bytecode (``bytecode_of`` its sources, from bytecode_by_source)
    and its ELF facts (among ``elf``, the tier's)."""
    installed = set(unit.dist.files)  # bytecode a wheel ships is uv's to install
    bytecode = sorted(b for s in unit.sources for b in bytecode_of.get(s, ())
                      if b not in installed)
    own = {rel: info for rel, info in elf.items() if rel in installed}

    def build(out: Path) -> None:
        src, dst = str(env), str(out / "files")
        made: set[str] = set()
        for rel in bytecode:
            parent = os.path.dirname(rel)
            if parent not in made:
                os.makedirs(os.path.join(dst, parent), exist_ok=True)
                made.add(parent)
            _link(os.path.join(src, rel), os.path.join(dst, rel))
        (out / "facts.json").write_text(json.dumps({"bytecode": bytecode, "elf": own},
                                                   sort_keys=True))

    cache.cached_dir(KIND, unit.key, build)


def _link(src: str | Path, dest: str | Path) -> None:
    """A hard link (the cache and the tiers share a filesystem), else a copy."""
    if os.path.lexists(dest):
        os.unlink(dest)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
