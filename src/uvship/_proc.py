"""The one subprocess runner: captures output, raises CommandError with the details on failure."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import CommandError


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    hint: str | None = None,
    input: str | None = None,
    inherit_env: bool = True,
    merge_output: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; return it completed, or raise CommandError naming ``what`` failed.

    ``env`` entries are added to (not replacing) the current environment, or make the whole
    environment when ``inherit_env`` is False; a value of ``""`` for a key removes it.
    ``merge_output`` sends stderr into stdout (one stream, in order: a user's own command).
    """
    args = [os.fspath(c) for c in cmd]
    full_env = None
    if env is not None or not inherit_env:
        full_env = dict(os.environ) if inherit_env else {}
        for k, v in (env or {}).items():
            if v == "":
                full_env.pop(k, None)
            else:
                full_env[k] = v
    try:
        proc = _run_killable(args, cwd, full_env, input, merge_output)
    except FileNotFoundError as exc:
        raise CommandError(
            f"{what or args[0]}: cannot run {args[0]!r}: not found",
            command=args,
            returncode=127,
            stderr=str(exc),
            hint=hint,
        ) from exc
    if proc.returncode != 0:
        stderr = (proc.stdout if merge_output else proc.stderr).strip()
        raise CommandError(
            f"{what or 'command'} failed (exit {proc.returncode}): {shlex.join(args)}"
            + (f"\n{stderr}" if stderr else ""),
            command=args,
            returncode=proc.returncode,
            stderr=stderr,
            hint=hint,
        )
    return proc


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, when it can set a parent-death signal (Debian 10 and later)."""
    found = shutil.which("setpriv")
    if found is None:
        return None
    try:
        out = subprocess.run([found, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return found if "--pdeathsig" in out.stdout else None


def _dies_with_us(args: list[str], env) -> list[str]:
    """``args`` run so that the kernel kills them when uvship dies, even by kill -9 (no
    handler runs then): setpriv sets PR_SET_PDEATHSIG and execs them."""
    setpriv = _setpriv()
    path = (env or os.environ).get("PATH")
    if setpriv is None or shutil.which(args[0], path=path) is None:
        return args  # a missing program fails as itself (FileNotFoundError), not in setpriv
    return [setpriv, "--pdeathsig", "KILL", "--", *args]


class _GroupPopen(subprocess.Popen):
    """Popen whose child, started in a process group of its own, is killed whole when the
    parent is interrupted while starting it or while it runs: Ctrl-C can land after the
    fork and before Popen returns, or before the caller's own handler is in place, and
    Popen's exit would then only wait a moment for the child (as on a terminal, where the
    child got the same Ctrl-C) and leave it running, unseen, into a removed directory: a
    `uv venv` finishing after the cleanup wrote a whole venv back into a staging directory
    already removed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            if getattr(self, "pid", None):
                _kill_group(self)
            raise

    def _execute_child(self, *args: Any, **kwargs: Any) -> None:
        try:
            super()._execute_child(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            if getattr(self, "pid", None):
                _kill_group(self)
            raise

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
        if exc_type is not None and self.returncode is None:
            _kill_group(self)
        super().__exit__(exc_type, value, traceback)


def _kill_group(p: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(p.pid, 0)
    _wait_for_group(p.pid)


def _run_killable(args: list[str], cwd, env, input,
                  merge_output: bool = False) -> subprocess.CompletedProcess[str]:
    """subprocess.run in a process group of its own, killed whole when we are interrupted,
    and by the kernel when we die.

    uv and the byte-compiler start children of their own; on Ctrl-C they must all be gone
    before the staging directory they write into is removed, or they write into it again.
    """
    with _GroupPopen(_dies_with_us(args, env), cwd=cwd, env=env, text=True, errors="replace",
                     start_new_session=True,
                     stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                     stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT if merge_output else subprocess.PIPE) as p:
        try:
            out, err = p.communicate(input)
        except BaseException:
            _kill_group(p)
            p.wait()
            raise
    return subprocess.CompletedProcess(args, p.returncode, out, err)


def _wait_for_group(pgid: int, timeout: float = 5.0) -> None:
    """Until every process of the killed group has exited: SIGKILL is delivered at once, but
    a process busy in a system call on another core finishes it first, and p.wait() waits
    for the group's leader only; a write that lands after the caller removed the staging
    directory would leave it behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)
