"""Where the dynamic loader finds the libraries ELF files load, and which it would not find.

The rules are glibc's (ld.so(8)). For each DT_NEEDED of an object, a soname already loaded
in the process is reused; else the loader searches, in order: the DT_RPATH of the object,
then of the object that loaded it, and so on up the chain, then of the program itself,
unless the object has a DT_RUNPATH (which also makes the loader ignore that object's own
DT_RPATH wherever the chain passes through it); LD_LIBRARY_PATH (never set here); the
object's DT_RUNPATH, which applies to its own DT_NEEDED only; then the default directories
(a scratch image has no ld.so.cache). $ORIGIN, $LIB and $PLATFORM are expanded in both.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, UvshipError
from .elf import (
    ElfInfo,
    is_libc_soname,
    path_in_root,
    read_elf,
    sysroot_library_dirs,
    system_library_dirs,
)

# $ORIGIN, ${ORIGIN} and kin; the bare form only before "/" or at the end (glibc's is_dst).
_DST = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?=/|$))")
# $PLATFORM is AT_PLATFORM, which glibc replaces on x86_64 by the CPU's family when it has
# the features ("haswell", "xeon_phi"): each spelling a machine running the image may use.
_PLATFORMS = {"x86_64": ("x86_64", "haswell", "xeon_phi")}
# Python extension modules: loaded by path (dlopen) whatever else loads them.
_EXTENSION = re.compile(r"\.(cpython-\d+[^/]*|abi3)\.so$")


@dataclass(frozen=True)
class Missing:
    """A DT_NEEDED the loader would not find."""

    root: Path  # the file loaded first: a program, or a module loaded by path
    needer: Path  # the file whose DT_NEEDED names it (``root`` or one it loads)
    soname: str
    searched: tuple[str, ...]  # the directories searched, in order
    # the files of that name found but refused by ``keep`` (e.g. this host's, for an image
    # that will not have them)
    refused: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Loads:
    """What loading every root would load, and what it would miss."""

    libraries: dict[str, Path]  # soname -> the file the loader finds first (its real path)
    missing: tuple[Missing, ...]
    # every (soname, real path) loaded, with the (root, needer) that first loaded it: one
    # soname may be found in different places from different roots
    loaded: dict[tuple[str, Path], tuple[Path, Path]] = field(default_factory=dict)


def resolve_closure(
    files: Iterable[Path],
    *,
    extra_dirs: Iterable[Path] = (),
    include_libc: bool = False,
    exclude: Iterable[str] = (),
    sysroot: Path | None = None,
) -> dict[str, Path]:
    """The shared libraries that loading ``files`` loads: soname -> resolved host path.

    As ``resolve_loads``; raises UvshipError naming the first file and soname not found.
    """
    loads = resolve_loads(files, extra_dirs=extra_dirs, include_libc=include_libc,
                          exclude=exclude, sysroot=sysroot)
    if loads.missing:
        raise missing_error(loads.missing[0], sysroot=sysroot)
    return loads.libraries


def missing_error(m: Missing, *, sysroot: Path | None = None) -> UvshipError:
    """The error for one library not found, naming the file, the soname and the search."""
    how = f" (from loading {m.root})" if m.root != m.needer else ""
    return UvshipError(
        f"{m.needer}: needs shared library {m.soname}, which was not found{how} "
        f"(searched {list(m.searched)})",
        hint=f"install the {'' if sysroot is None else 'sysroot '}system package that "
             f"provides {m.soname}")


def resolve_loads(
    files: Iterable[Path],
    *,
    preload: Iterable[Path] = (),
    extra_dirs: Iterable[Path] = (),
    include_libc: bool = False,
    exclude: Iterable[str] = (),
    sysroot: Path | None = None,
    infos: Mapping[Path, ElfInfo] | None = None,
    keep: Callable[[str, Path], bool] | None = None,
) -> Loads:
    """Load ``files`` as the dynamic loader would, and say what it finds and misses.

    Each file that no other one names in DT_NEEDED (a program, a module dlopen()ed by path)
    and each Python extension module is a root: it is loaded first, in a process of its own
    (a program) or in the process of the programs among ``files`` and in ``preload`` (the
    interpreter that imports a module), whose libraries it reuses. What a root loads is
    looked up through the chain of objects that load it (DT_RPATH is inherited down that
    chain), so a library is judged where it is really loaded. ``extra_dirs`` are searched
    after DT_RUNPATH and before the system's directories; a candidate of another machine or
    ELF class is skipped, as the loader skips it. With ``include_libc`` False, the C
    library's own sonames are left out (and not followed); True adds them and the programs'
    PT_INTERP loader. ``exclude`` names more sonames to leave out. With ``sysroot`` (the root
    of another system), absolute entries and the loader are looked up inside it, and its
    library directories replace this host's. ``infos`` gives the ELF facts of files already
    read; ``keep(soname, path)`` False refuses a candidate (a file the target will not have),
    which is then reported in ``Missing.refused``.
    """
    root = Path(sysroot).absolute() if sysroot is not None else None
    return _Loader(root, [str(d) for d in extra_dirs], include_libc, set(exclude),
                   dict(infos or {}), keep).run([Path(p) for p in files],
                                                [Path(p) for p in preload])


class _Loader:
    def __init__(self, root: Path | None, extra: list[str], include_libc: bool,
                 skip: set[str], infos: dict[Path, ElfInfo],
                 keep: Callable[[str, Path], bool] | None) -> None:
        self.root = root
        self.extra = extra
        self.include_libc = include_libc
        self.skip = skip
        self.infos = infos
        self.keep = keep
        self.sysdirs = sysroot_library_dirs(root) if root is not None else system_library_dirs()
        self.found: dict[str, Path] = {}
        self.loaded: dict[tuple[str, Path], tuple[Path, Path]] = {}
        self.missing: list[Missing] = []
        self._lookups: dict[tuple, tuple[Path | None, tuple[Path, ...]]] = {}

    def info(self, path: Path) -> ElfInfo | None:
        if path not in self.infos:
            got = read_elf(path)
            if got is None:
                return None
            self.infos[path] = got
        return self.infos[path]

    def real(self, path: Path) -> Path:
        if self.root is not None and path.is_relative_to(self.root):
            return path_in_root(self.root, "/" + str(path.relative_to(self.root)))
        return path.resolve()

    def run(self, files: list[Path], preload: list[Path]) -> Loads:
        for f in [*files, *preload]:
            if self.info(f) is None:
                raise InputError(f"{f}: is not an ELF file; expected a program or shared library")
        programs = [f for f in sorted(files) if _is_program(self.infos[f])]
        # the process a module is loaded into: the programs' libraries, the program's RPATH
        process: dict[str, Path] = {}
        main_rpath: list[str] = []
        for prog in [*preload, *programs]:
            loaded = self.load(prog, {}, ())
            process.update({k: v for k, v in loaded.items() if k not in process})
            info = self.infos[prog]
            if not info.runpath:
                main_rpath += self.expand(info.rpath, prog.parent, info)
        named = {n for f in files for n in self.infos[f].needed}
        for f in sorted(files):
            info = self.infos[f]
            if f in programs or (_names(f, info) & named and not _EXTENSION.search(f.name)):
                continue  # loaded by what names it, and judged there
            self.load(f, process, tuple(main_rpath))
        return Loads(dict(sorted(self.found.items())), tuple(self.missing),
                     dict(sorted(self.loaded.items())))

    def load(self, first: Path, process: dict[str, Path], main_rpath: tuple[str, ...]
             ) -> dict[str, Path]:
        """Load ``first`` into a process that has ``process`` loaded: what is loaded then."""
        info = self.infos[first]
        loaded = dict(process)
        for name in _names(first, info):
            loaded.setdefault(name, first)
        if info.interpreter:  # the loader is loaded, under its soname
            interp = (path_in_root(self.root, info.interpreter) if self.root
                      else Path(info.interpreter))
            loaded.setdefault(os.path.basename(info.interpreter), interp)
            if self.include_libc and interp.exists():
                name = os.path.basename(info.interpreter)
                self.found.setdefault(name, self.real(interp))
                self.loaded.setdefault((name, self.real(interp)), (first, first))
        if _is_program(info):
            main_rpath = () if info.runpath else tuple(self.expand(info.rpath, first.parent,
                                                                   info))
        seen = {self.real(first)}
        # (object, the DT_RPATH directories of the objects that loaded it, nearest first)
        queue: deque[tuple[Path, ElfInfo, tuple[str, ...]]] = deque([(first, info, ())])
        while queue:
            path, pinfo, chain = queue.popleft()
            # an object with DT_RUNPATH has its DT_RPATH ignored, here and down the chain
            own = () if pinfo.runpath else tuple(self.expand(pinfo.rpath, path.parent, pinfo))
            for soname in pinfo.needed:
                if soname in loaded or soname in self.skip:
                    continue
                if not self.include_libc and is_libc_soname(soname):
                    continue
                rpath = () if pinfo.runpath else (*own, *chain, *main_rpath)
                runpath = self.expand(pinfo.runpath, path.parent, pinfo)
                hit, refused = self.lookup(soname, path, pinfo, [*rpath, *runpath])
                if hit is None:
                    searched = tuple(dict.fromkeys([*rpath, *runpath, *self.extra,
                                                    *self.sysdirs]))
                    self.missing.append(Missing(first, path, soname, searched, refused))
                    continue
                hinfo = self.infos[hit]
                loaded[soname] = hit
                for name in _names(hit, hinfo):
                    loaded.setdefault(name, hit)
                real = self.real(hit)
                self.found.setdefault(soname, real)
                self.loaded.setdefault((soname, real), (first, path))
                if real not in seen:
                    seen.add(real)
                    queue.append((hit, hinfo, (*own, *chain)))
        return loaded

    def expand(self, entries: tuple[str, ...], origin: Path, info: ElfInfo) -> list[str]:
        out: list[str] = []
        for entry in entries:
            for got in _expand(entry, origin, info, self.root):
                if self.root is not None and not _has_origin(entry):
                    got = str(path_in_root(self.root, got))
                out.append(got)
        return out

    def lookup(self, soname: str, path: Path, info: ElfInfo, dirs: list[str]
               ) -> tuple[Path | None, tuple[Path, ...]]:
        if "/" in soname:  # a DT_NEEDED with a slash is a path, not searched for
            cand = Path(soname) if os.path.isabs(soname) else path.parent / soname
            if self.root is not None and cand.is_absolute():
                cand = path_in_root(self.root, cand)
            if cand.is_file() and self.info(cand) is not None:
                return cand, ()
            return None, ()
        key = (soname, info.machine, info.bits, tuple(dirs))
        if key not in self._lookups:
            self._lookups[key] = self._search(soname, info, [*dirs, *self.extra, *self.sysdirs])
        return self._lookups[key]

    def _search(self, soname: str, info: ElfInfo, dirs: list[str]
                ) -> tuple[Path | None, tuple[Path, ...]]:
        refused: list[Path] = []
        for d in dict.fromkeys(dirs):
            cand = Path(d, soname)
            if not cand.is_file():
                continue
            cinfo = self.info(cand)
            if cinfo is None or (cinfo.machine, cinfo.bits) != (info.machine, info.bits):
                continue
            if self.keep is not None and not self.keep(soname, cand):
                if all(self.real(r) != self.real(cand) for r in refused):
                    refused.append(cand)
                continue
            return cand, ()
        return None, tuple(refused)


def _is_program(info: ElfInfo) -> bool:
    """A program (it names a loader and is no shared library), run in a process of its own."""
    return info.interpreter is not None and info.soname is None


def _names(path: Path, info: ElfInfo) -> set[str]:
    """The names a loaded object answers to: its file name and its DT_SONAME."""
    return {path.name, info.soname} if info.soname else {path.name}


def _has_origin(entry: str) -> bool:
    return "$ORIGIN" in entry or "${ORIGIN}" in entry


def _expand(entry: str, origin: Path, info: ElfInfo, root: Path | None) -> list[str]:
    """The directories one DT_RPATH/DT_RUNPATH entry names; none for a relative one (it
    depends on the working directory at run time) or an unknown $ substitution."""
    values = {"ORIGIN": (str(origin),), "LIB": (_lib_dir(info, root),),
              "PLATFORM": _PLATFORMS.get(info.machine, (info.machine,))}
    out = [""]
    pos = 0
    for m in _DST.finditer(entry):
        name = m.group(1) or m.group(2)
        out = [o + entry[pos:m.start()] + v for o in out for v in values[name]]
        pos = m.end()
    out = [o + entry[pos:] for o in out]
    return [os.path.normpath(o) for o in out if "$" not in o and os.path.isabs(o)]


def _lib_dir(info: ElfInfo, root: Path | None) -> str:
    """$LIB: the loader's own library directory, "lib/x86_64-linux-gnu" on Debian's
    multiarch layout, else "lib64" (64-bit) or "lib"."""
    base = root or Path("/")
    multiarch = f"lib/{info.machine}-linux-gnu"
    if (base / multiarch).is_dir():
        return multiarch
    return "lib64" if info.bits == 64 and (base / "lib64").is_dir() else "lib"
