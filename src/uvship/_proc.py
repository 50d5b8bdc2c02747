"""The one subprocess runner: captures output, raises CommandError with the details on failure."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import CommandError


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    hint: str | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; return it completed, or raise CommandError naming ``what`` failed.

    ``env`` entries are added to (not replacing) the current environment; a value of
    ``""`` for a key removes it.
    """
    args = [os.fspath(c) for c in cmd]
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        for k, v in env.items():
            if v == "":
                full_env.pop(k, None)
            else:
                full_env[k] = v
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(
            f"{what or args[0]}: cannot run {args[0]!r}: not found",
            command=args,
            returncode=127,
            stderr=str(exc),
            hint=hint,
        ) from None
    if proc.returncode != 0:
        stderr = proc.stderr.strip()
        raise CommandError(
            f"{what or 'command'} failed (exit {proc.returncode}): {shlex.join(args)}"
            + (f"\n{stderr}" if stderr else ""),
            command=args,
            returncode=proc.returncode,
            stderr=proc.stderr,
            hint=hint,
        )
    return proc
