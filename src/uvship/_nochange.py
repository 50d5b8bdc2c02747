"""The no-change path of `uvship build`: the same command line, in the same directory and
environment, over inputs whose files are all as they were, writing outputs that still hold
what the last run wrote, is answered from a stamp without importing the rest of uvship.

A stamp is written only after a successful build whose outputs are all files this host
can check (an OCI layout, a docker-archive): a registry or a local engine may have moved
on without us. It holds the identity (inode, size, mtime, ctime) of every file the build
read or may read, every directory whose listing decides what it read (a file added to the
project changes its directory's mtime), and every file it wrote; inputs are taken before
the build starts, so an edit made while it ran is seen next time. Any difference, a
missing stamp or a stamp of another format means a real build, which decides for itself
what is up to date (the cache).

Only what Python has loaded at start-up is imported for a replay (os, marshal, hashlib):
this runs before the command line is parsed, and an unchanged rebuild should cost little
more than Python's start. The stamp is marshalled (no json, whose import costs more than
reading it): it is only ever read by the uvship that wrote it (the code is watched).

A stamp also keeps the command's parameters as click parsed them. When an input changed
but uvship's code did not, the same command line in the same directory and environment
parses the same way, so the build runs with the kept parameters without importing the
command line's framework (cli/run_build.py, cli/run_bundle.py never import click).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from collections.abc import Iterable

from ._paths import identity, record_file

FORMAT = 3
# Never inputs of a build: environments, VCS data (its state is watched through HEAD and
# refs below), caches, and what tools write into a project.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules",
                       ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox"})
# Variables that change between shells without changing what a build does.
_VOLATILE = frozenset({"_", "OLDPWD", "PWD", "SHLVL", "TERM", "COLUMNS", "LINES", "TERM_PROGRAM",
                       "TERM_PROGRAM_VERSION", "TERM_SESSION_ID", "WINDOWID", "SSH_TTY",
                       "SSH_CLIENT", "SSH_CONNECTION", "PYTEST_CURRENT_TEST", "UVSHIP_DEBUG"})

Identity = list[int] | None


def stamp_key(argv: list[str]) -> str:
    """The command line, the directory and the environment (values hashed, never kept)."""
    env = sorted((k, v) for k, v in os.environ.items() if k not in _VOLATILE)
    # repr, not marshal: marshal's bytes depend on reference counts (shared objects)
    blob = repr((FORMAT, sys.version, list(argv), os.getcwd(), env))
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()


def _stamp(key: str) -> str:
    return record_file("no-change", key, ".marshal")


# The commands a stamp's parameters can be replayed into: name -> click-free module.
COMMANDS = {"build": "uvship.cli.run_build", "bundle": "uvship.cli.run_bundle"}
# The command and parameters of this run, kept in its stamp (remember_call).
_call: list | None = None


def remember_call(command: str, params: dict) -> None:
    """The command click parsed, with its parameters, for this run's stamp."""
    global _call
    _call = [command, dict(params)]


def replay(argv: list[str]) -> bool | tuple[str, dict]:
    """Answer ``uvship ARGV`` from its stamp when nothing it depends on changed: its
    output printed again (stdout) and a note (stderr). Otherwise False (the command line
    must be parsed), or the command's module and kept parameters (an input changed, the
    code did not: the parse is the same)."""
    if len(argv) < 2 or argv[1] not in COMMANDS or os.environ.get("UVSHIP_NO_STAMP"):
        return False
    try:
        with open(_stamp(stamp_key(argv[1:])), "rb") as f:
            stamp = marshal.load(f)
    except (OSError, ValueError, EOFError, TypeError):
        return False
    if not isinstance(stamp, dict) or stamp.get("format") != FORMAT:
        return False
    for path, ident in stamp["files"]:
        if identity(path) != ident:
            if os.environ.get("UVSHIP_DEBUG"):
                sys.stderr.write(f"uvship: building: {path} changed since the last build\n")
                return False  # --debug's flag is click's to parse
            return _parsed(stamp, argv[1])
    sys.stdout.write(stamp["stdout"])
    sys.stdout.flush()
    sys.stderr.write(f"✓ no change since the last build of {', '.join(stamp['outputs'])} "
                     f"({len(stamp['files'])} files checked)\n")
    return True


def _parsed(stamp: dict, command: str) -> bool | tuple[str, dict]:
    call = stamp.get("call")
    if not (isinstance(call, list) and len(call) == 2 and call[0] == command
            and isinstance(call[1], dict)):
        return False
    for path, ident in stamp.get("code", ()):
        if identity(path) != ident:  # another uvship may parse the same line otherwise
            return False
    remember_call(command, call[1])
    return COMMANDS[command], call[1]


class Watch:
    """What a build reads, snapshotted before it runs; ``save`` adds what it wrote."""

    def __init__(self, argv: list[str]) -> None:
        self.key = stamp_key(argv[1:])
        self.files: dict[str, Identity] = {}
        self.code_files: list[str] = []

    def tree(self, root: str | os.PathLike[str], *,
             skip: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
        """Every file and directory under ``root`` (its VCS state through HEAD and refs);
        returns them."""
        root = os.fspath(root)
        skipped = {os.fspath(p) for p in skip}
        seen = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                                 and os.path.join(dirpath, d) not in skipped)
            seen.append(dirpath)
            seen += [p for n in filenames if (p := os.path.join(dirpath, n)) not in skipped]
        for p in seen:
            self.add(p)
        git = os.path.join(root, ".git")
        if os.path.isdir(git):
            for rel in ("HEAD", "index", "packed-refs"):
                self.add(os.path.join(git, rel))
            for dirpath, _dirs, filenames in os.walk(os.path.join(git, "refs")):
                self.add(dirpath)
                for n in filenames:
                    self.add(os.path.join(dirpath, n))
        return seen

    def add(self, path: str | os.PathLike[str]) -> None:
        path = os.fspath(path)
        if path not in self.files:
            self.files[path] = identity(path)

    def code(self) -> None:
        """uvship's own code: an upgrade or an edit (a development install) rebuilds,
        and the parse of the command line kept in the stamp is not replayed."""
        self.code_files = self.tree(os.path.dirname(os.path.abspath(__file__)))

    def save(self, outputs: list[str], written: Iterable[str], stdout: str,
             state: Iterable[str | os.PathLike[str]] = ()) -> None:
        """Write the stamp: the inputs as they were before the build, then ``written``
        (the files of the outputs) and ``state`` (what the build itself may change, such
        as the directory of uv's Pythons) as they are now."""
        files = dict(self.files)
        for p in (*written, *state):
            files[os.fspath(p)] = identity(os.fspath(p))
        from pathlib import Path

        from .cache import write_atomically

        write_atomically(Path(_stamp(self.key)), marshal.dumps({
            "format": FORMAT, "outputs": outputs, "stdout": stdout,
            "files": sorted(files.items()), "call": _call,
            "code": [(p, self.files[p]) for p in self.code_files]}))

