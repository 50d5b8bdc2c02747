"""ELF facts of files and trees: machine, libc flavour, needed libraries, minimum glibc."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InputError, UvshipError

if TYPE_CHECKING:
    from elftools.elf.dynamic import DynamicSection, DynamicSegment
    from elftools.elf.elffile import ELFFile

ELF_MAGIC = b"\x7fELF"

LibcFlavour = Literal["glibc", "musl"]

# `uname -m` spelling, the one uv's and python-build-standalone's target triples use.
_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_386": "i686",
    "EM_ARM": "armv7",
    "EM_PPC64": "ppc64",  # ppc64le when little-endian, see _machine()
    "EM_S390": "s390x",
    "EM_RISCV": "riscv64",
    "EM_LOONGARCH": "loongarch64",
}

# glibc's own libraries. Not here on purpose: libcrypt.so.1 (libxcrypt since glibc 2.38 and
# on Debian long before), libnsl.so.2 (libnsl2) and libnss_nis*/libnss_nisplus (split out):
# a system with only glibc does not have them, so they must be bundled.
_GLIBC_SONAMES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libmvec.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libanl.so.1",
        "libnsl.so.1",
        "libBrokenLocale.so.1",
        "libthread_db.so.1",
        "libc_malloc_debug.so.0",
        "libmemusage.so",
        "libpcprofile.so",
        "libnss_files.so.2",
        "libnss_dns.so.2",
        "libnss_compat.so.2",
        "libnss_hesiod.so.2",
        "libnss_db.so.2",
    }
)
# Dynamic loaders: ld-linux-x86-64.so.2, ld-linux-aarch64.so.1, ld-linux.so.2 (i386),
# ld-linux-armhf.so.3, ld-linux-riscv64-lp64d.so.1, ld64.so.2 (ppc64le), ld64.so.1 (s390x).
_GLIBC_LOADER = re.compile(r"^(ld-linux[-\w.]*\.so\.\d+|ld64\.so\.\d+)$")
# musl's libc is its loader; programs name it "libc.so" in DT_NEEDED
_MUSL = re.compile(r"^(ld-musl-[\w]+\.so\.1|libc\.musl-[\w]+\.so\.1|libc\.so)$")
_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader reads from one ELF file."""

    machine: str
    bits: int
    interpreter: str | None
    needed: tuple[str, ...]
    runpath: tuple[str, ...]  # DT_RUNPATH: searched for this file's own DT_NEEDED only
    soname: str | None
    glibc_versions: frozenset[str]
    # DT_RPATH, searched for this file's DT_NEEDED and for those of what it loads, unless
    # a DT_RUNPATH is present, which makes the loader ignore it (see resolve_loads)
    rpath: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The facts as JSON values, for a cache record (``from_json`` reads them back)."""
        return {"machine": self.machine, "bits": self.bits, "interpreter": self.interpreter,
                "needed": list(self.needed), "runpath": list(self.runpath),
                "rpath": list(self.rpath), "soname": self.soname,
                "glibc_versions": sorted(self.glibc_versions)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ElfInfo:
        return cls(machine=d["machine"], bits=d["bits"], interpreter=d["interpreter"],
                   needed=tuple(d["needed"]), runpath=tuple(d["runpath"]),
                   soname=d["soname"], glibc_versions=frozenset(d["glibc_versions"]),
                   rpath=tuple(d["rpath"]))


def is_glibc_soname(name: str) -> bool:
    """True for a library that every glibc system has (libc, libm, libpthread, the loader...)."""
    return name in _GLIBC_SONAMES or bool(_GLIBC_LOADER.match(name))


def is_libc_soname(name: str) -> bool:
    """True for a library that comes with the C library itself, glibc's or musl's."""
    return is_glibc_soname(name) or bool(_MUSL.match(name))


def _machine(elf: ELFFile) -> str:
    em = elf["e_machine"]
    name = _MACHINES.get(em, str(em).removeprefix("EM_").lower())
    if name == "ppc64" and elf.little_endian:
        return "ppc64le"
    return name


def read_elf(path: str | os.PathLike[str]) -> ElfInfo | None:
    """The ELF facts of ``path``, or None when it is not an ELF file (magic checked first)."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(4) != ELF_MAGIC:
            return None
        f.seek(0)
        # pyelftools is imported on first use: a build whose changed layers hold no ELF
        # file (a source edit) never pays for its ~15 ms of imports.
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        try:
            return _parse(ELFFile(f))
        except (ELFError, ValueError, KeyError) as exc:
            raise InputError(
                f"{path}: has an ELF header but cannot be read as ELF: {exc}"
            ) from exc


def _parse(elf: ELFFile) -> ElfInfo:
    from elftools.elf.dynamic import DynamicSection, DynamicSegment
    from elftools.elf.gnuversions import GNUVerNeedSection

    interpreter = None
    dynamic: DynamicSection | DynamicSegment | None = None
    versions: set[str] = set()
    # One pass over the sections: pyelftools builds a DynamicSegment by scanning every
    # section, so going through the program headers would cost a second pass per file.
    for sec in elf.iter_sections():
        if isinstance(sec, DynamicSection):
            dynamic = sec
        elif isinstance(sec, GNUVerNeedSection):
            for _verneed, auxes in sec.iter_versions():
                for aux in auxes:
                    m = _GLIBC_VERSION.match(aux.name)
                    if m:
                        versions.add(m.group(1))
        elif sec.name == ".interp":
            interpreter = sec.data().rstrip(b"\0").decode()
    if elf.num_sections() == 0:  # section headers stripped (sstrip): only segments remain
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interpreter = seg.get_interp_name()
            elif isinstance(seg, DynamicSegment):
                dynamic = seg
    needed: list[str] = []
    runpath: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    soname = None
    if dynamic is not None:
        for tag in dynamic.iter_tags():
            kind = tag.entry.d_tag
            if kind == "DT_NEEDED":
                needed.append(tag.needed)
            elif kind == "DT_RUNPATH":
                runpath += tuple(p for p in tag.runpath.split(":") if p)
            elif kind == "DT_RPATH":
                rpath += tuple(p for p in tag.rpath.split(":") if p)
            elif kind == "DT_SONAME":
                soname = tag.soname
    return ElfInfo(
        machine=_machine(elf),
        bits=elf.elfclass,
        interpreter=interpreter,
        needed=tuple(needed),
        runpath=runpath,
        soname=soname,
        glibc_versions=frozenset(versions),
        rpath=rpath,
    )


def iter_elf_files(paths: Path | Iterable[Path]) -> Iterator[tuple[Path, ElfInfo]]:
    """Every ELF file among ``paths`` and under those that are directories, in sorted order.

    Symbolic links inside directories are skipped: their targets are counted where they live.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [Path(paths)]
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise InputError(f"{p}: does not exist; expected a file or directory to scan for ELF")
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for name in sorted(filenames):
                    f = Path(dirpath, name)
                    if f.is_symlink() or not f.is_file():
                        continue
                    info = read_elf(f)
                    if info is not None:
                        yield f, info
        else:
            info = read_elf(p)
            if info is not None:
                yield p, info


def _flavour_of(info: ElfInfo) -> LibcFlavour | None:
    names = [os.path.basename(info.interpreter)] if info.interpreter else []
    names += info.needed
    for name in names:
        if _MUSL.match(name):
            return "musl"
        if name == "libc.so.6" or _GLIBC_LOADER.match(name):
            return "glibc"
    return None


def libc_flavour(info_or_tree: ElfInfo | Path) -> LibcFlavour | None:
    """ "glibc" or "musl" for one ELF file or a whole tree; None when nothing links a libc.

    A tree holding both (e.g. a musllinux wheel in a glibc environment) is an error.
    """
    if isinstance(info_or_tree, ElfInfo):
        return _flavour_of(info_or_tree)
    seen: dict[str, Path] = {}
    for path, info in iter_elf_files(Path(info_or_tree)):
        flavour = _flavour_of(info)
        if flavour is not None:
            seen.setdefault(flavour, path)
    if len(seen) > 1:
        raise UvshipError(
            f"{info_or_tree}: mixes C libraries: {seen['glibc']} links glibc, "
            f"{seen['musl']} links musl; expected one",
            hint="install wheels for a single target platform (manylinux or musllinux)",
        )
    return next(iter(seen), None)  # type: ignore[return-value]


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def min_glibc(paths: Path | Iterable[Path]) -> str | None:
    """The oldest glibc that can run every ELF file under ``paths``, e.g. "2.35"; None if no
    file asks for a glibc symbol version.

    That is the highest GLIBC_x.y any file requires through .gnu.version_r.
    """
    return min_glibc_of(info for _, info in iter_elf_files(paths))


def min_glibc_of(infos: Iterable[ElfInfo]) -> str | None:
    """min_glibc for ELF facts already read."""
    versions = {v for info in infos for v in info.glibc_versions}
    return max(versions, key=_version_key) if versions else None


def tree_machines(root: Path) -> set[str]:
    """The machines ("x86_64", "aarch64", ...) of all ELF files under ``root``."""
    return {info.machine for _, info in iter_elf_files(Path(root))}


# --- shared-library closure ---------------------------------------------------------------

_DEFAULT_LIB_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")


def _parse_ld_so_conf(conf: Path, seen: set[Path], *, root: Path | None = None) -> list[str]:
    """The directories ``conf`` lists; with ``root``, absolute includes are inside it (the
    directories returned stay as the loader there spells them)."""
    if conf in seen or not conf.is_file():
        return []
    seen.add(conf)
    dirs: list[str] = []
    for raw in conf.read_text(errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            for pattern in line.split()[1:]:
                if not os.path.isabs(pattern):
                    pattern = str(conf.parent / pattern)
                elif root is not None:
                    pattern = str(root) + pattern
                for inc in sorted(glob.glob(pattern)):
                    dirs += _parse_ld_so_conf(Path(inc), seen, root=root)
        elif line.startswith("hwcap"):
            continue
        else:
            dirs.append(line)
    return dirs


@lru_cache(maxsize=4)
def system_library_dirs(conf: str = "/etc/ld.so.conf") -> tuple[str, ...]:
    """The directories the host's loader searches after RUNPATH: ld.so.conf, then defaults.

    Read from the files rather than ``ldconfig -p`` so that it also works where ldconfig or
    its cache is missing (musl, minimal containers); cached for the process.
    """
    dirs = _parse_ld_so_conf(Path(conf), set()) + list(_DEFAULT_LIB_DIRS)
    return tuple(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def sysroot_library_dirs(sysroot: Path) -> tuple[str, ...]:
    """The directories a loader inside ``sysroot`` searches after RUNPATH, as host paths.

    The sysroot's etc/ld.so.conf (its includes taken inside the sysroot too), or every
    etc/ld.so.conf.d/*.conf when there is none (a root extracted from packages has no
    libc-bin), then the loader's defaults: Debian's multiarch directories come from those
    conf files (libc6 ships one).
    """
    root = Path(sysroot)
    conf = root / "etc/ld.so.conf"
    seen: set[Path] = set()
    if conf.is_file():
        dirs = _parse_ld_so_conf(conf, seen, root=root)
    else:
        dirs = []
        for inc in sorted((root / "etc/ld.so.conf.d").glob("*.conf")):
            dirs += _parse_ld_so_conf(inc, seen, root=root)
    dirs += list(_DEFAULT_LIB_DIRS)
    found = (str(path_in_root(root, d)) for d in dirs)
    return tuple(dict.fromkeys(d for d in found if os.path.isdir(d)))


def path_in_root(root: Path, path: str | os.PathLike[str]) -> Path:
    """Where ``path``, as a program chrooted in ``root`` sees it, is on this host: links
    followed inside ``root``, absolute ones too (/usr/lib/x.py -> /etc/x.py stays in it)."""
    root = Path(root)
    out = root
    parts = [p for p in Path(path).parts if p not in ("/", "")]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            out = out.parent if out != root else root
            continue
        nxt = out / part
        if nxt.is_symlink():
            hops += 1
            if hops > 40:
                return nxt  # a loop: let the caller find nothing there
            target = os.readlink(nxt)
            parts = [p for p in Path(target).parts if p not in ("/", "")] + parts
            if os.path.isabs(target):
                out = root
            continue
        out = nxt
    return out


def has_symbols(path: str | os.PathLike[str]) -> bool:
    """True when the ELF file ``path`` has a symbol table (.symtab): `strip` would shrink it."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        try:
            return ELFFile(f).get_section_by_name(".symtab") is not None
        except (ELFError, ValueError, KeyError) as exc:
            raise InputError(
                f"{path}: has an ELF header but cannot be read as ELF: {exc}"
            ) from exc
