"""The one runner for the uv binary: find it, run it, turn its failures into clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from . import _proc
from .errors import InputError


@cache
def uv_bin() -> str:
    """The uv binary: the `uv` package's, then $UV, then PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    env_uv = os.environ.get("UV")
    if env_uv and Path(env_uv).is_file():
        return env_uv
    found = shutil.which("uv")
    if found:
        return found
    raise InputError(
        "uv: no uv binary found (looked in the `uv` Python package, $UV and PATH)",
        hint="install uvship with its dependencies, e.g. `pip install uvship`",
    )


@cache
def uv_version() -> str:
    """The version of the uv binary in use, e.g. '0.13.9' (remembered by the binary's stat)."""
    from .cache import key_of, read_record, write_record

    st = os.stat(uv_bin())
    key = key_of(uv_bin(), st.st_size, st.st_mtime_ns)
    known = read_record("uv-versions", key)
    if isinstance(known, str):
        return known
    out = run(["--version"], what="uv --version").stdout.split()
    version = out[1] if len(out) > 1 else out[0]
    write_record("uv-versions", key, version)
    return version


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    hint: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `uv ARGS`; a failure raises CommandError carrying uv's stderr."""
    env = {"UV_NO_PROGRESS": "1", "NO_COLOR": "1", **(env or {})}
    return _proc.run([uv_bin(), *args], cwd=cwd, env=env, what=what or "uv", hint=hint)
