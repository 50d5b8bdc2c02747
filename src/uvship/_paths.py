"""Where uvship keeps its cache, as a string: the one rule, readable by the no-change path
without importing pathlib (cache.cache_root is the Path of it)."""

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
