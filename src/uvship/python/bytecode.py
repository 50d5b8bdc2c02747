"""Byte-compilation for the paths files will have in the target, reproducibly, never twice."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .. import _proc

_WORKER = Path(__file__).with_name("_compile_worker.py")


def compile_files(python: Path, files: Iterable[Path], *, strip: Path, prefix: str,
                  emulator=None) -> int:
    """Compile ``files`` with ``python`` (the target's version) for the path they will have.

    ``prefix`` replaces ``strip`` in co_filename. Existing hash-based pycs are kept and
    timestamp ones get a checked-hash header (no recompilation), so a tree that ships its
    bytecode (python-build-standalone does) costs a read, not a compile. Returns how many
    files did not compile (e.g. templates named .py, modules for another Python).
    """
    paths = sorted(str(f) for f in files if str(f).endswith(".py"))
    if not paths:
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".lst", delete=False, encoding="utf-8") as f:
        f.write("\n".join(paths) + "\n")
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
