"""Writing outputs safely: check the place first, then write beside it and rename into place,
or stream through what cannot be replaced (a FIFO, a character device, stdout)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import InputError, Option

# `-` as an output path means this process's stdout, as for tar -f and most CLIs.
STDOUT = Path("-")
# Names of this process's own descriptors: written through the descriptor, never opened by
# path (/dev/stdout -> /proc/self/fd/1 -> "pipe:[...]" is no path to write a file beside).
_FD_PATH = re.compile(r"/dev/(stdout|stderr|fd/(\d+))|/proc/self/fd/(\d+)")


def output_path(spec: str) -> Path:
    """The path of an output as given: ``-`` alone is stdout (``STDOUT``); a path that only
    normalizes to it (``./-``) is the file of that name."""
    if spec == "-":
        return STDOUT
    path = Path(spec)
    return path.absolute() if path == STDOUT else path


def check_writable_parent(path: Path, label: str | Option) -> None:
    """Fail before any work when the directory that will hold ``path`` is missing or read-only.

    ``label`` names the input in the error (e.g. ``Option("output", "oci:out/app")``).
    """
    parent = path.absolute().parent
    if not parent.is_dir():
        raise InputError.of(label, f"the directory {parent} does not exist",
                            hint="create it first, or choose another output path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".uvship-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError.of(label, f"cannot write in {parent} ({exc.strerror})") from exc


@dataclass(frozen=True)
class Place:
    """Where the bytes of a file output go.

    A regular file (or a new path) is written beside ``target`` and renamed onto it; a
    symlink is followed, so ``target`` is the real file and the link stays. A FIFO, a
    character device or a descriptor of this process (``fd``) is a stream: written through,
    in order, with no rename, and so not atomic.
    """

    path: Path  # as given
    target: Path  # the file renamed into place, or the stream opened
    stream: bool = False
    fd: int | None = None  # written through this descriptor of ours (stdout, /dev/fd/N)

    @property
    def is_stdout(self) -> bool:
        """Whether the stream is this process's stdout (``-``, /dev/stdout, or a path to
        the very pipe or terminal stdout is)."""
        if not self.stream or self.fd == 1:
            return self.stream
        try:
            mine, there = os.fstat(1), os.stat(self.target)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def is_stream(path: Path) -> bool:
    """Whether an output at ``path`` is a stream: written through, not renamed into place."""
    if path == STDOUT or _FD_PATH.fullmatch(str(path)):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket",
          stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO",
          stat.S_IFCHR: "a character device"}


def output_place(path: Path, label: str | Option) -> Place:
    """Where writing ``path`` puts its bytes; raises before any work when they cannot go
    there. Never replaces what is not a regular file: directories, sockets and block
    devices are refused; FIFOs and character devices are written through."""
    if path == STDOUT:
        return Place(path, path, stream=True, fd=1)
    m = _FD_PATH.fullmatch(str(path))
    if m:
        fd = {"stdout": 1, "stderr": 2}.get(m[1]) or int(m[2] or m[3])
        try:
            os.fstat(fd)
        except OSError as exc:
            raise InputError.of(label, f"names the descriptor {fd}, which is not open") from exc
        if os.isatty(fd):  # as tar does: binary data is no use on a terminal
            raise InputError.of(label, "is a terminal; expected a pipe or a file",
                                hint="pipe it into the program that reads it (`| podman load`) "
                                "or redirect it to a file")
        return Place(path, path, stream=True, fd=fd)
    try:
        st = os.stat(path)  # through symlinks: what is written is what they point to
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError.of(label, f"cannot use {path} ({exc.strerror})",
                            hint="a symlink loop, or a directory on the way you cannot enter"
                         ) from exc
    if st is None or stat.S_ISREG(st.st_mode):
        real = Path(os.path.realpath(path))
        check_writable_parent(real, label)
        return Place(path, real)
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        if not os.access(path, os.W_OK):
            raise InputError.of(label, f"cannot write to {path} (permission denied)")
        return Place(path, path, stream=True)
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    raise InputError.of(label, f"is {kind}; expected a regular file (replaced whole), a new "
                        "path, or a FIFO or character device (written through)",
                        hint="choose a file path; uvship never replaces what is not a file")


@contextlib.contextmanager
def output_file(path: Path, label: str | Option, *, what: str = "file",
                mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file output: renamed into place when the block succeeds (nothing left behind on
    failure), or, for a stream, written through as the block goes.

    A stream cannot be taken back: when the block fails after writing into one, the error
    says so, since its reader got a truncated ``what``.
    """
    place = output_place(path, label)
    if not place.stream:
        with atomic_file(place.target, mode) as f:
            yield f
        return
    fd = os.dup(place.fd) if place.fd is not None else os.open(place.target,
                                                               os.O_WRONLY | os.O_CLOEXEC)
    raw = _Counting(fd)
    out = io.BufferedWriter(raw, 1 << 20)
    try:
        yield out  # type: ignore[misc]
        out.flush()
    except Exception as exc:
        if not raw.count and not isinstance(exc, OSError):
            raise  # nothing reached the stream: the error is the whole story
        reason = getattr(exc, "message", None) or getattr(exc, "strerror", None) or (
            str(exc) or type(exc).__name__)
        raise InputError.of(label, f"the stream stopped after {raw.count} bytes ({reason}); "
                            f"its reader got a truncated {what}",
                            hint=getattr(exc, "hint", None) or "a stream cannot be replaced "
                            "atomically: write to a file to get all or nothing") from exc
    finally:
        raw.close()  # on failure without flushing: the buffered writer closes with it


class _Counting(io.RawIOBase):
    """A descriptor written unbuffered, counting the bytes that reached it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        n = os.write(self.fd, data)
        self.count += n
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_prefix(path: Path) -> str:
    """The prefix of a temporary made beside ``path``: ``.NAME.PID.``; what a process that
    died (kill -9) left beside the same path is removed first."""
    lead = f".{path.name}."
    with contextlib.suppress(OSError), os.scandir(path.parent) as it:
        for e in it:
            if not (e.name.startswith(lead) and e.name.endswith(".tmp")):
                continue
            pid = e.name[len(lead):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)
    return f"{lead}{os.getpid()}."


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file written beside ``path`` and renamed onto it only when the block succeeds;
    on any failure (Ctrl-C included) nothing is left behind.

    A symlink is written through (the file it points to is replaced, made if the link
    dangles; the link stays), as cp does; what is not a regular file is never replaced:
    a directory, a FIFO, a socket or a device is refused (``output_file`` streams into
    FIFOs and character devices)."""
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise InputError(f"{path}: cannot use it ({exc.strerror})") from exc
    else:
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: is {_KINDS.get(stat.S_IFMT(st.st_mode), 'special')}; "
                             "expected a regular file to replace, or a new path",
                             hint="uvship never replaces what is not a file")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(real), suffix=".tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        os.unlink(tmp)
        raise
