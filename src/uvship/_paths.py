"""Where uvship keeps its cache, as a string: the one rule, readable by the no-change path
without importing pathlib (cache.cache_root is the Path of it); and what identifies a
file's contents without reading them, for the cache's blob checks and the no-change path."""

from __future__ import annotations

import os


def cache_dir() -> str:
    """$UVSHIP_CACHE_DIR, else $XDG_CACHE_HOME/uvship, else ~/.cache/uvship."""
    env = os.environ.get("UVSHIP_CACHE_DIR")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "uvship")


def record_file(kind: str, key: str, suffix: str = ".json") -> str:
    """Where the record ``key`` of ``kind`` lives in the cache (``kind/key.json``)."""
    return os.path.join(cache_dir(), kind, key + suffix)


def identity(path: str | os.PathLike[str]) -> list[int] | None:
    """The file's inode, size, mtime and ctime; None when it is missing. Any write to the
    file, or a copy or restore over it, changes one of these."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
