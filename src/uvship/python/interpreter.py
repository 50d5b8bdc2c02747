"""Choosing the interpreter of a build: a uv-managed Python or a local CPython, ready to ship."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.specifiers import SpecifierSet

from .. import _proc, cache
from ..cache import cached_dir, key_of
from ..progress import NullProgress, Progress
from . import managed
from .bytecode import compile_files, compiler_id, python_files
from .managed import check_requires_python, host_glibc

# Bumped when the way an interpreter tree is prepared changes, to invalidate caches. It is
# part of every interpreter's key, so of every tier, kept distribution and files entry:
# bumped too when the compile worker changes (10: it compiles without py_compile, whose
# imports can change a pyc's bytes; Python 3.13's functools, for one).
_PREPARE_VERSION = 10


@dataclass(frozen=True)
class Interpreter:
    """An interpreter tree on this host, prepared to be placed at its final path.

    ``root`` holds the tree (bin/, lib/); ``executable`` is relative to it.
    """

    root: Path
    executable: str
    version: tuple[int, int, int]
    source: Literal["managed", "local"]
    origin: str  # where it came from: the managed install or the local executable
    libc: str | None
    min_glibc: str | None
    machine: str | None
    key: str  # identity of the tree's bytes, for cache keys downstream
    # for an interpreter of another machine: the sysroot (its loader and glibc) that
    # qemu-user runs it with on this host (QEMU_LD_PREFIX); None when it runs natively
    sysroot: str | None = None
    # False for an interpreter this host cannot run (another machine or C library, and no
    # sysroot): uv stages for it with a native Python of the same minor version and
    # --python-platform, and a native Python compiles its bytecode: it is never run here
    native: bool = True

    def run_env(self) -> dict[str, str]:
        """What a process needs in its environment to run this interpreter here."""
        return {"QEMU_LD_PREFIX": self.sysroot} if self.sysroot else {}

    def emulator(self):
        """How this host runs it (None: natively)."""
        if not self.sysroot:
            return None
        from .portable import emulator_for

        return emulator_for(self.machine or "", Path(self.sysroot))

    @property
    def exe(self) -> Path:
        return self.root / self.executable

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))


def is_path_request(request: str) -> bool:
    return "/" in request or request.startswith(".") or Path(request).is_file()


def resolve(
    source: Path | managed.Wanted,
    *,
    project_dir: Path,
    requires_python: SpecifierSet | None,
    python_path: str,
    compile_bytecode: bool,
    strip: bool = True,
    progress: Progress | None = None,
) -> Interpreter:
    """The interpreter of a build: the local CPython at a path, else the one uv-managed
    CPython that ``source`` chooses from uv's download list, found or installed by uv."""
    progress = progress or NullProgress()
    if isinstance(source, Path):
        return _local(source, requires_python, python_path, compile_bytecode, strip, progress)
    choice = managed.choose(source, project_dir)
    progress.note(managed.why(choice, source))
    exe = managed.find_or_install(choice, source, project_dir, progress)
    return _managed(exe, requires_python, python_path, compile_bytecode, source.origin, progress)


# ---------------------------------------------------------------------- uv-managed
_INSTALL = re.compile(r"^cpython-(\d+\.\d+\.\d+)-linux-(x86_64|aarch64)-(gnu|musl)$")


def _managed(exe: Path, spec, python_path, compile_bytecode, what, progress) -> Interpreter:
    real_exe = exe.resolve()
    src_root = real_exe.parent.parent
    native = runs_here(real_exe)
    # uv names its installs by version: a Python this host cannot run is never started
    m = _INSTALL.match(src_root.name)
    version = _query_version(real_exe) if native or not m else m[1]
    check_requires_python(version, spec, what)
    rel_exe = f"bin/python{version.rsplit('.', 1)[0]}"
    if not (src_root / rel_exe).exists():
        rel_exe = str(real_exe.relative_to(src_root))
    st = real_exe.stat()
    ident = key_of("managed", str(src_root), version, st.st_size, st.st_mtime_ns)

    def build(out: Path) -> None:
        tree = out / "tree"
        shutil.copytree(src_root, tree, symlinks=True)
        _trim(tree)
        rewrite_prefix(tree, [str(src_root), str(exe.parent.parent)], python_path)
        if compile_bytecode:
            compile_files(
                tree / rel_exe, python_files([tree / "lib"]), strip=tree, prefix=python_path,
                minor=minor, runs_here=native,
            )
        _write_facts(out, rel_exe, native=native)

    minor = version.rsplit(".", 1)[0]
    compiler = compiler_id(minor) if not native and compile_bytecode else None
    key = key_of(_PREPARE_VERSION, ident, python_path, compile_bytecode, compiler)
    with progress.step(f"preparing CPython {version} (uv-managed"
                       f"{'' if native else ', for another platform'})"):
        entry = cached_dir("python", key, build)
    return _describe(entry, version, "managed", str(src_root), key)


# Parts of a CPython install a shipped application does not run: GUI toolkits, the
# interactive help texts, pip's bootstrap wheels, the 2to3 converter, tests, build files
# for compiling extensions, and the programs that go with them.
_TRIM_STDLIB = ("ensurepip", "idlelib", "tkinter", "turtledemo", "lib2to3", "pydoc_data",
                "test", "__phello__", "turtle.py")
_TRIM_TREE = ("BUILD", "share", "lib/pkgconfig", "bin/idle3*", "bin/pydoc3*",
              "bin/2to3*", "bin/python3*-config", "lib/python3*/lib-dynload/_tkinter*",
              "lib/python3*/__pycache__/turtle.*", "lib/python3*/config-3*")
# Kept in the prepared tree but never shipped: the C headers uv compiles a locked source
# against (sysconfig names them inside the interpreter's prefix).
BUILD_ONLY = ("include",)
# Where a CPython records its own install prefix: rewritten so that no build-host path
# ends up in a shipped tree (and sysconfig tells the truth about the final path).
_PREFIX_FILES = ("lib/python3*/_sysconfigdata_*.py", "lib/python3*/_sysconfig_vars_*.json")


def rewrite_prefix(tree: Path, old: list[str], new: str) -> None:
    """Replace the install prefixes ``old`` by ``new`` in the files that record them.

    Their bytecode is removed so that it is compiled again from the new text.
    """
    olds = sorted({o.rstrip("/") for o in old if o and o.rstrip("/") not in ("", "/usr",
                                                                             "/usr/local")},
                  key=len, reverse=True)
    if not olds:
        return
    for pattern in _PREFIX_FILES:
        for f in tree.glob(pattern):
            text = f.read_text()
            changed = text
            for o in olds:
                changed = changed.replace(o, new.rstrip("/"))
            if changed != text:
                f.write_text(changed)
                for pyc in f.parent.glob(f"__pycache__/{f.stem}.*.pyc"):
                    pyc.unlink()


def _trim(tree: Path) -> None:
    """Remove what a shipped interpreter does not need (and uv's markers for this machine)."""
    doomed = [*tree.glob("lib/python3*/BUILD"), *tree.glob("lib/python3*/EXTERNALLY-MANAGED")]
    for name in _TRIM_STDLIB:
        doomed += tree.glob(f"lib/python3*/{name}")
    for pattern in _TRIM_TREE:
        doomed += tree.glob(pattern)
    for p in doomed:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


# ---------------------------------------------------------------------- local CPython
def _local(path: Path, spec, python_path, compile_bytecode, strip, progress) -> Interpreter:
    from . import portable

    info = portable.inspect_python(path)
    version = ".".join(map(str, info.version[:3]))
    check_requires_python(version, spec, f"--python {path}")
    real = Path(info.executable).resolve()
    st = real.stat()
    ident = key_of("local", str(real), version, st.st_size, st.st_mtime_ns, strip)

    def build(out: Path) -> None:
        tree = out / "tree"
        pp = portable.make_portable(path, tree, strip=strip)
        _trim(tree)
        rewrite_prefix(tree, [str(info.prefix), str(info.base_prefix)], python_path)
        if compile_bytecode:
            compile_files(
                tree / pp.executable, python_files([tree / "lib"]), strip=tree, prefix=python_path,
                emulator=pp.emulator, minor=minor,
            )
        _write_facts(out, str(pp.executable),
                     sysroot=str(pp.emulator.sysroot) if pp.emulator is not None else None)

    minor = version.rsplit(".", 1)[0]
    # bytecode of another machine's Python is compiled by a native one (see compile_files)
    compiler = compiler_id(minor) if info.emulator is not None and compile_bytecode else None
    key = key_of(_PREPARE_VERSION, ident, python_path, compile_bytecode, compiler)
    with progress.step(f"making CPython {version} at {path} relocatable"):
        entry = cached_dir("python", key, build)
    return _describe(entry, version, "local", str(path), key)


def runs_here(exe: Path) -> bool:
    """Whether this host runs ``exe`` natively: its machine, and its loader present."""
    m = _INSTALL.match(exe.parent.parent.name)  # a uv install names its platform
    if m and m[2] == os.uname().machine and m[3] == ("gnu" if host_glibc() else "musl"):
        return True
    from . import elf

    info = elf.read_elf(exe)
    if info is None:
        return True  # not ELF (a script): let running it tell
    return info.machine == os.uname().machine and (
        not info.interpreter or os.path.exists(info.interpreter))


def _write_facts(out: Path, rel_exe: str, sysroot: str | None = None,
                 native: bool = True) -> None:
    """What the rest of uvship needs to know of a prepared tree, read once from its ELF files."""
    from . import elf

    root = out / "tree"
    elf_files = [p for p in [root / rel_exe, *sorted(root.glob("lib/*.so*")),
                             *sorted(root.glob("lib/python3*/lib-dynload/*.so"))] if p.is_file()]
    exe_info = elf.read_elf((root / rel_exe).resolve())
    facts = {
        "executable": rel_exe,
        "libc": elf.libc_flavour(exe_info) if exe_info else None,
        "min_glibc": elf.min_glibc(elf_files) if elf_files else None,
        "machine": exe_info.machine if exe_info else None,
        "sysroot": sysroot,
        "native": native,
    }
    (out / "facts.json").write_text(json.dumps(facts, sort_keys=True))


def _describe(entry: Path, version: str, source, origin: str, key: str) -> Interpreter:
    facts = json.loads((entry / "facts.json").read_text())
    return Interpreter(
        root=entry / "tree",
        executable=facts["executable"],
        version=tuple(int(x) for x in version.split(".")[:3]),  # type: ignore[arg-type]
        source=source,
        origin=origin,
        libc=facts["libc"],
        min_glibc=facts["min_glibc"],
        machine=facts["machine"],
        key=key,
        sysroot=facts.get("sysroot"),
        native=facts.get("native", True),
    )


def _query_version(exe: Path) -> str:
    """The interpreter's version, remembered by the binary's identity (running it costs)."""
    st = exe.stat()
    key = key_of(str(exe), st.st_size, st.st_mtime_ns)
    known = cache.read_record("python-versions", key)
    if isinstance(known, str):
        return known
    out = _proc.run(
        [exe, "-I", "-S", "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        what=f"{exe} --version",
    )
    version = out.stdout.strip()
    cache.write_record("python-versions", key, version)
    return version
