"""Writing outputs safely: check the place first, write beside it, rename into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import InputError


def check_writable_parent(path: Path, label: str) -> None:
    """Fail before any work when the directory that will hold ``path`` is missing or read-only.

    ``label`` names the input in the error (e.g. ``--output oci:out/app``).
    """
    parent = path.absolute().parent
    if not parent.is_dir():
        raise InputError(f"{label}: the directory {parent} does not exist",
                         hint="create it first, or choose another output path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".uvship-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{label}: cannot write in {parent} ({exc.strerror})") from None


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file written beside ``path`` and renamed onto it only when the block succeeds;
    on any failure (Ctrl-C included) nothing is left behind."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
