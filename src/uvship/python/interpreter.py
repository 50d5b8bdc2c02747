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

from .. import _proc, uv
from ..cache import cache_root, cached_dir, key_of
from ..errors import CommandError, InputError
from ..progress import NullProgress, Progress
from .bytecode import compile_files, compiler_id, python_files

_VERSION_REQUEST = re.compile(r"^(?:cpython|python)?[-@]?(\d+)(?:\.(\d+))?(?:\.(\d+))?$", re.I)
# Bumped when the way an interpreter tree is prepared changes, to invalidate caches.
_PREPARE_VERSION = 8


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


def check_requires_python(version: str, spec: SpecifierSet | None, what: str) -> None:
    """Refuse an interpreter version outside the project's requires-python."""
    if spec is not None and not spec.contains(version, prereleases=True):
        raise InputError(
            f"{what}: Python {version} is outside the project's requires-python {spec} "
            f"(expected a version that satisfies {spec})",
            hint=f"ask for a version that satisfies {spec}, e.g. --python {_suggest(spec)}",
        )


def _suggest(spec: SpecifierSet) -> str:
    for minor in range(20, 7, -1):
        if any(spec.contains(f"3.{minor}.{p}") for p in range(0, 30)):
            return f"3.{minor}"
    return "3.12"


def check_request_compatible(request: str, spec: SpecifierSet | None, what: str) -> None:
    """Refuse early a version request that no release could satisfy against requires-python."""
    m = _VERSION_REQUEST.match(request.strip())
    if spec is None or not m or m.group(2) is None:
        return
    major, minor, patch = m.group(1), m.group(2), m.group(3)
    candidates = (
        [f"{major}.{minor}.{patch}"] if patch else [f"{major}.{minor}.{p}" for p in range(0, 40)]
    )
    if not any(spec.contains(c, prereleases=True) for c in candidates):
        check_requires_python(candidates[0] if patch else f"{major}.{minor}", spec, what)


def triple_request(request: str | None, spec: SpecifierSet | None, machine: str,
                   libc: str) -> str | None:
    """A uv request for a managed CPython of one target: ``cpython-3.12-linux-x86_64-musl``.

    ``request`` is a version ("3.12") or None (any version requires-python allows); any
    other request is passed on as it is.
    """
    flavour = "gnu" if libc == "glibc" else libc
    if not request:  # uv reads a version specifier in this place too
        version = str(spec).replace(" ", "") if spec is not None and str(spec) else "any"
        return f"cpython-{version}-linux-{machine}-{flavour}"
    m = _VERSION_REQUEST.match(request.strip())
    if not m:
        return request
    check_request_compatible(request, spec, f"--python {request}")
    version = ".".join(g for g in m.groups() if g)
    return f"cpython-{version}-linux-{machine}-{flavour}"


def resolve(
    request: str | None,
    *,
    project_dir: Path,
    requires_python: SpecifierSet | None,
    python_path: str,
    compile_bytecode: bool,
    strip: bool = False,
    progress: Progress | None = None,
) -> Interpreter:
    """The interpreter for ``request``: a path means a local CPython, else a uv-managed one."""
    progress = progress or NullProgress()
    if request and is_path_request(request):
        return _local(
            Path(request), requires_python, python_path, compile_bytecode, strip, progress
        )
    what = f"--python {request}" if request else f"the Python requested by {project_dir}"
    if request:
        check_request_compatible(request, requires_python, what)
    exe = _find_or_install_managed(request, project_dir, progress)
    return _managed(exe, requires_python, python_path, compile_bytecode, what, progress)


# ---------------------------------------------------------------------- uv-managed
def _find_managed(request: str | None, project_dir: Path) -> Path | None:
    """`uv python find --managed-python`, remembered until the managed installs change."""
    install_dir = Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or (
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "uv/python"))
    pins = [(d / ".python-version").read_text() if (d / ".python-version").is_file() else None
            for d in (project_dir, *project_dir.parents)]
    try:
        stamp = install_dir.stat().st_mtime_ns
    except OSError:
        stamp = None
    rec = cache_root() / "python-finds" / key_of(request, str(project_dir), pins, str(install_dir),
                                                 stamp, os.environ.get("UV_PYTHON"))
    if stamp is not None and rec.is_file():
        found = Path(rec.read_text())
        if found.exists():
            return found
    foreign = _foreign_triple(request)
    exe = (_find_installed(install_dir, *foreign) if foreign
           else _run_find(request, project_dir))
    if exe is not None and stamp is not None:
        rec.parent.mkdir(parents=True, exist_ok=True)
        rec.write_text(str(exe))
    return exe


_TRIPLE = re.compile(r"^cpython-(?P<version>.+)-linux-(?P<machine>x86_64|aarch64)-"
                     r"(?P<libc>gnu|musl)$")
_INSTALL = re.compile(r"^cpython-(\d+\.\d+\.\d+)-linux-(x86_64|aarch64)-(gnu|musl)$")


def _foreign_triple(request: str | None) -> tuple[str, str, str] | None:
    """(version, machine, libc) of a request for another platform than this host's."""
    m = _TRIPLE.match(request or "")
    if not m:
        return None
    host = (os.uname().machine, "gnu" if _host_glibc() else "musl")
    if (m["machine"], m["libc"]) == host:
        return None
    return m["version"], m["machine"], m["libc"]


def _host_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def _find_installed(install_dir: Path, version: str, machine: str, libc: str) -> Path | None:
    """The newest managed install for another platform that matches ``version``.

    uv installs Pythons of other platforms but its `python find` skips them ("not
    supported by current platform"), so their directories are read here, as uv names them.
    """
    from packaging.specifiers import InvalidSpecifier

    if version == "any":
        spec = SpecifierSet()
    elif version[0].isdigit():
        spec = SpecifierSet(f"=={version}.*" if version.count(".") < 2 else f"=={version}")
    else:
        try:
            spec = SpecifierSet(version)
        except InvalidSpecifier:
            return None
    found = []
    for d in install_dir.glob(f"cpython-*-linux-{machine}-{libc}"):
        m = _INSTALL.match(d.name)
        if m and spec.contains(m[1], prereleases=True) and not d.is_symlink():
            major_minor = m[1].rsplit(".", 1)[0]
            exe = d / "bin" / f"python{major_minor}"
            if exe.is_file():
                found.append((tuple(int(x) for x in m[1].split(".")), exe))
    return max(found)[1] if found else None


def _run_find(request: str | None, project_dir: Path) -> Path | None:
    args = ["python", "find", "--managed-python", "--no-python-downloads"]
    if request:
        args.append(request)
    try:
        out = uv.run(args, cwd=project_dir, what="uv python find").stdout.strip()
    except CommandError:
        return None
    return Path(out) if out else None


def _find_or_install_managed(request: str | None, project_dir: Path, progress: Progress) -> Path:
    exe = _find_managed(request, project_dir)
    if exe is not None:
        return exe
    args = ["python", "install", "--no-bin"]
    if request:
        args.append(request)
    with progress.step(f"installing a uv-managed Python {request or ''}".rstrip()):
        try:
            uv.run(args, cwd=project_dir, what="uv python install")
        except CommandError as exc:
            raise InputError(
                f"--python {request or '(project default)'}: no uv-managed Python found and "
                f"uv could not install one\n{exc.stderr.strip()}",
                hint="set UV_PYTHON_INSTALL_MIRROR or UV_PYTHON_DOWNLOADS_JSON_URL for an "
                "offline machine, or give a local interpreter with --python /path/to/python",
            ) from None
    exe = _find_managed(request, project_dir)
    if exe is None:
        raise InputError(f"--python {request}: uv installed a Python but cannot find it")
    return exe


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
# interactive help texts, pip's bootstrap wheels, the 2to3 converter, tests, headers and
# build files for compiling extensions, and the programs that go with them.
_TRIM_STDLIB = ("ensurepip", "idlelib", "tkinter", "turtledemo", "lib2to3", "pydoc_data",
                "test", "__phello__", "turtle.py")
_TRIM_TREE = ("BUILD", "include", "share", "lib/pkgconfig", "bin/idle3*", "bin/pydoc3*",
              "bin/2to3*", "bin/python3*-config", "lib/python3*/lib-dynload/_tkinter*",
              "lib/python3*/__pycache__/turtle.*", "lib/python3*/config-3*")
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
    if m and m[2] == os.uname().machine and m[3] == ("gnu" if _host_glibc() else "musl"):
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
    rec = cache_root() / "python-versions" / key_of(str(exe), st.st_size, st.st_mtime_ns)
    if rec.is_file():
        return rec.read_text()
    out = _proc.run(
        [exe, "-I", "-S", "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        what=f"{exe} --version",
    )
    version = out.stdout.strip()
    rec.parent.mkdir(parents=True, exist_ok=True)
    rec.write_text(version)
    return version
