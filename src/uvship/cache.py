"""The local content-addressed cache: outputs stored under the hash of their inputs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """$UVSHIP_CACHE_DIR, else $XDG_CACHE_HOME/uvship, else ~/.cache/uvship."""
    env = os.environ.get("UVSHIP_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "uvship"


def key_of(*parts: Any) -> str:
    """A stable hash of JSON-able inputs: the cache key of whatever they produce."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def tempdir(kind: str) -> Path:
    """A fresh private directory inside the cache (same filesystem, so renames are atomic).

    Its name carries this process's id, so an interrupted process can find and remove
    what it left even when the interruption came between creating and using it.
    """
    base = cache_root() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=base))


def remove_own_temps() -> None:
    """Remove every temporary directory this process made in the cache (after Ctrl-C)."""
    base = cache_root() / "tmp"
    if base.is_dir():
        for d in base.glob(f"*-{os.getpid()}-*"):
            shutil.rmtree(d, ignore_errors=True)
    for f in (cache_root() / "blobs" / "sha256").glob(f".layer-{os.getpid()}-*"):
        f.unlink(missing_ok=True)


def cached_dir(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The directory cached under (kind, key), built by ``build(tmpdir)`` on a miss.

    Safe when two builds race: each builds in its own temporary directory, the first
    rename wins and the loser discards its copy.
    """
    final = cache_root() / kind / key
    if (final / ".complete").is_file():
        return final
    work = tempdir(kind)
    try:
        out = work / "out"
        out.mkdir()
        build(out)
        (out / ".complete").write_text("")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(out, final)
        except OSError:
            if not (final / ".complete").is_file():
                # a stale incomplete entry (an interrupted build): replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
