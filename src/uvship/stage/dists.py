"""What a tier holds, read from the files uv installed: the distributions (from their
dist-info), the console scripts it added to bin/, and the facts of its ELF files."""

from __future__ import annotations

import csv
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from ..python.elf import ElfInfo


@dataclass(frozen=True)
class Distribution:
    """An installed distribution: name, version, tier and its files (relative to the env root)."""

    name: str
    version: str
    tier: str
    files: tuple[str, ...]


def new_scripts(env: Path, added: list[str]) -> list[str]:
    """The Python console scripts among ``added`` (paths relative to ``env``): names in bin/."""
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


def distributions(env: Path, site: str, added: list[str], tier: str
                  ) -> tuple[Distribution, ...]:
    """The distributions whose dist-info directory is among ``added``, each with the files
    its RECORD lists (relative to ``env``)."""
    out = []
    added_set = set(added)
    for dist_info in sorted((env / site).glob("*.dist-info")):
        if f"{site}/{dist_info.name}" not in added_set:
            continue
        meta = metadata_headers((dist_info / "METADATA").read_bytes())
        name = canonicalize_name(meta.get("Name", dist_info.name.split("-")[0]))
        files = set()
        record = dist_info / "RECORD"
        if record.is_file():
            for row in csv.reader(io.StringIO(record.read_text())):
                if row:
                    files.add(os.path.normpath(os.path.join(site, row[0])))
        out.append(Distribution(name, meta.get("Version", "?"), tier, tuple(sorted(files))))
    return tuple(out)


def source_of_bytecode(rel: str) -> str | None:
    """The module a byte-compiled file was made from: a/__pycache__/m.cpython-312.pyc -> a/m.py."""
    head, sep, name = rel.rpartition("/__pycache__/")
    if not sep or not name.endswith(".pyc"):
        return None
    return f"{head}/{name.split('.', 1)[0]}.py"


def metadata_headers(data: bytes) -> dict[str, str]:
    """The first value of each header of a METADATA file's ``data`` (no email parser:
    cheap)."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        k, sep, v = line.partition(":")
        if sep and k not in out:
            out[k] = v.strip()
    return out


def needed(elves: dict[str, ElfInfo]) -> list[str]:
    """DT_NEEDED of the ELF files a tier added (extension modules, bundled libraries)."""
    return sorted({n for info in elves.values() for n in info.needed})


def elf_facts(env: Path, added: list[str]) -> dict[str, ElfInfo]:
    """The ELF files a tier added: shared objects (by name) and programs (by their mode),
    relative path -> what the loader reads of them (DT_NEEDED, RPATH, RUNPATH...)."""
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
        try:  # the magic first: most candidates are scripts, and pyelftools costs an import
            with open(p, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
        except OSError:
            continue
        from ..python import elf

        info = elf.read_elf(p)
        if info is not None:
            out[rel] = info
    return out

