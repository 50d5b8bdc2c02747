"""Choosing the interpreter of a build: a uv-managed Python or a local CPython, ready to ship."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.specifiers import SpecifierSet

from .. import _proc, uv
from ..cache import cached_dir, key_of
from ..errors import CommandError, InputError
from ..progress import NullProgress, Progress
from . import elf
from .bytecode import compile_files, python_files

_VERSION_REQUEST = re.compile(r"^(?:cpython|python)?[-@]?(\d+)(?:\.(\d+))?(?:\.(\d+))?$", re.I)
# Bumped when the way an interpreter tree is prepared changes, to invalidate caches.
_PREPARE_VERSION = 3


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
    version = _query_version(real_exe)
    check_requires_python(version, spec, what)
    rel_exe = f"bin/python{version.rsplit('.', 1)[0]}"
    if not (src_root / rel_exe).exists():
        rel_exe = str(real_exe.relative_to(src_root))
    st = real_exe.stat()
    ident = key_of("managed", str(src_root), version, st.st_size, st.st_mtime_ns)

    def build(out: Path) -> None:
        tree = out / "tree"
        shutil.copytree(src_root, tree, symlinks=True)
        _remove_uv_markers(tree)
        if compile_bytecode:
            compile_files(
                tree / rel_exe, python_files([tree / "lib"]), strip=tree, prefix=python_path
            )

    with progress.step(f"preparing CPython {version} (uv-managed)"):
        key = key_of(_PREPARE_VERSION, ident, python_path, compile_bytecode)
        root = cached_dir("python", key, build) / "tree"
    return _describe(root, rel_exe, version, "managed", str(src_root), key)


def _remove_uv_markers(tree: Path) -> None:
    # uv-managed installs may carry files that only make sense to uv on this machine.
    for name in ("BUILD", "EXTERNALLY-MANAGED"):
        for p in tree.glob(f"lib/python3*/{name}"):
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

    made: dict[str, str] = {}

    def build(out: Path) -> None:
        tree = out / "tree"
        pp = portable.make_portable(path, tree, strip=strip)
        made["exe"] = str(pp.executable)
        (out / "exe").write_text(str(pp.executable))
        if compile_bytecode:
            compile_files(
                tree / pp.executable, python_files([tree / "lib"]), strip=tree, prefix=python_path
            )

    with progress.step(f"making CPython {version} at {path} relocatable"):
        key = key_of(_PREPARE_VERSION, ident, python_path, compile_bytecode)
        entry = cached_dir("python", key, build)
    rel_exe = (entry / "exe").read_text()
    return _describe(entry / "tree", rel_exe, version, "local", str(path), key)


def _describe(root: Path, rel_exe: str, version: str, source, origin: str, key: str):
    elf_files = [
        root / rel_exe,
        *sorted(root.glob("lib/*.so*")),
        *sorted(root.glob("lib/python3*/lib-dynload/*.so")),
    ]
    infos = [i for i in (elf.read_elf(p) for p in elf_files if p.is_file()) if i is not None]
    exe_info = elf.read_elf((root / rel_exe).resolve())
    return Interpreter(
        root=root,
        executable=rel_exe,
        version=tuple(int(x) for x in version.split(".")[:3]),  # type: ignore[arg-type]
        source=source,
        origin=origin,
        libc=elf.libc_flavour(exe_info) if exe_info else None,
        min_glibc=elf.min_glibc([p for p in elf_files if p.is_file()]) if infos else None,
        machine=exe_info.machine if exe_info else None,
        key=key,
    )


def _query_version(exe: Path) -> str:
    out = _proc.run(
        [exe, "-I", "-S", "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        what=f"{exe} --version",
    )
    return out.stdout.strip()
