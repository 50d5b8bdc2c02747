"""The target platform as uv and wheel tags name it: the native Python uv stages with for an
interpreter this host cannot run, uv's --python-platform, and the glibc levels of manylinux
tags."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..project.plan import Plan
from ..python.interpreter import Interpreter

# the machine names a wheel's platform tag ends with, for each target platform
ARCH_TAGS = {"linux/amd64": ("x86_64",), "linux/arm64": ("aarch64", "arm64")}
_LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def native_stager(interp: Interpreter) -> Path | None:
    """The native Python that uv stages with for an interpreter of another platform, or
    None when uv runs the interpreter itself.

    One that this host cannot run needs it. One it runs through qemu-user (inside a
    sysroot) is staged natively too when a native Python of its minor version exists:
    uv would otherwise start it under emulation for every staging environment.
    """
    from ..python.bytecode import native_compiler

    if interp.sysroot:
        return native_compiler(interp.minor)
    if interp.native:
        return None
    found = native_compiler(interp.minor)
    if found is None:
        raise InputError(
            f"the interpreter ({interp.origin}) is for {interp.machine} ({interp.libc}): this "
            f"host cannot run it, and has no Python {interp.minor} of its own for uv to "
            "install its packages with", hint=f"install one: uv python install {interp.minor}")
    return found


# The manylinux levels uv's --python-platform names (2_18..2_27 have none of their own)
_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)


def uv_python_platform(plan: Plan, interp: Interpreter) -> str | None:
    """uv's --python-platform, or None when uv asks the interpreter itself.

    musllinux for a musl interpreter this host cannot run; manylinux up to the base's glibc
    when a base tells it (wheels for a newer glibc than the base's would not load there),
    else up to the interpreter's own floor for an interpreter this host cannot run.
    """
    runs = plan.mode == "system" or native_stager(interp) is None
    if interp.libc == "musl":
        return None if runs else f"{interp.machine}-unknown-linux-musl"
    glibc = plan.glibc
    if glibc is None:
        if runs:
            return None
        glibc = interp.min_glibc or "2.17"
    level = max((n for n in _MANYLINUX if n <= glibc_minor(glibc)), default=17)
    return f"{interp.machine}-manylinux_2_{level}"


def glibc_minor(version: str) -> int:
    """The minor of a glibc version ("2.36" -> 36); 17 (manylinux2014's) when unreadable."""
    parts = version.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 17


def glibc_fits(tag: str, glibc: str | None) -> bool:
    """Whether a manylinux platform tag's glibc floor is at most ``glibc`` (None: any)."""
    if glibc is None:
        return True
    m = re.match(r"manylinux_2_(\d+)_", tag)
    need = int(m.group(1)) if m else _LEGACY_MANYLINUX.get(tag.split("_", 1)[0], 0)
    return need <= glibc_minor(glibc)
