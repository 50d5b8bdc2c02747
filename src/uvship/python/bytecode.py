"""Byte-compilation for the paths files will have in the target, reproducibly, never twice."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .. import _proc
from ..errors import InputError

_WORKER = Path(__file__).with_name("_compile_worker.py")


def compile_files(python: Path, files: Iterable[Path], *, strip: Path, prefix: str,
                  emulator=None, minor: str | None = None, runs_here: bool = True,
                  groups: Iterable[Iterable[Path]] = ()) -> int:
    """Compile ``files`` with ``python`` (the target's version) for the path they will have.

    ``groups`` (one per distribution) are compiled as well, each apart from the rest: a
    file's bytecode depends on what its process compiled before it (see the worker), so a
    group's bytecode is the same whatever is compiled with it.

    ``prefix`` replaces ``strip`` in co_filename. Existing hash-based pycs are kept and
    timestamp ones get a checked-hash header (no recompilation), so a tree that ships its
    bytecode (python-build-standalone does) costs a read, not a compile. Returns how many
    files did not compile (e.g. templates named .py, modules for another Python).

    For a Python of another machine (``emulator``) of version ``minor``, a native Python
    of the same minor version compiles instead when this host has one: bytecode is the same
    on every machine for one minor version, and emulation is 5-50x slower. A ``python``
    that does not run here at all (``runs_here=False``) needs that native Python.
    """
    blocks = [sorted(str(f) for f in g if str(f).endswith(".py"))
              for g in [files, *groups]]
    blocks = [b for b in blocks if b]
    if not blocks:
        return 0
    if (emulator is not None or not runs_here) and minor:
        native = native_compiler(minor)
        if native is not None:
            python, emulator = native, None
        elif not runs_here:
            raise InputError(
                f"{python}: this host cannot run this Python, and has no Python {minor} of its "
                "own to compile its bytecode with",
                hint=f"install one (uv python install {minor}), or build with --no-compile")
    with tempfile.NamedTemporaryFile("w", suffix=".lst", delete=False, encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(b) for b in blocks) + "\n")
        listfile = f.name
    try:
        # -B: the worker's own imports must not drop timestamp pycs into the tree;
        # -s/-E-free: PYTHONHASHSEED must reach it (frozensets are marshalled in hash order).
        cmd = [python, "-B", "-s", str(_WORKER), listfile, str(strip).rstrip("/"),
               prefix.rstrip("/")]
        env = {"PYTHONHASHSEED": "0", "PYTHONPATH": "", "PYTHONHOME": "",
               "PYTHONSTARTUP": "", "PYTHONDONTWRITEBYTECODE": "1"}
        if emulator is not None:  # a Python of another machine, run through qemu-user
            cmd = emulator.command(cmd)
            env |= emulator.env
        out = _proc.run(cmd, env=env, what="byte-compiling")
    finally:
        os.unlink(listfile)
    return int(out.stdout.split()[1])


def python_files(roots: Iterable[Path]) -> list[Path]:
    """Every .py file under ``roots`` (files or directories), sorted."""
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            out.append(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            out.extend(Path(dirpath, n) for n in filenames if n.endswith(".py"))
    return sorted(out)


@functools.cache
def native_compiler(minor: str) -> Path | None:
    """A Python of this host with version ``minor`` ("3.11"): the one running uvship, else
    the one uv finds (uv only finds Pythons this host runs natively); None if none."""
    import sys

    if f"{sys.version_info[0]}.{sys.version_info[1]}" == minor:
        return Path(sys.executable)
    from .. import uv
    from ..errors import CommandError

    try:
        out = uv.run(["python", "find", "--no-project", "--no-python-downloads", minor],
                     what="uv python find").stdout.strip()
    except CommandError:
        return None
    return Path(out) if out else None


def compiler_id(minor: str) -> list[object]:
    """What identifies the native compiler for ``minor`` (for cache keys): its path and
    binary; its exact version decides the bytes of the code objects."""
    exe = native_compiler(minor)
    if exe is None:
        return []
    st = Path(exe).resolve().stat()
    return [str(exe), st.st_size, st.st_mtime_ns]
