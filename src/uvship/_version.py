"""uvship's own version, as its installed metadata says (one lookup for every place that
names it: bundles, SBOMs, generated Dockerfiles, SARIF reports, --version)."""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    # importlib.metadata costs ~40 ms to import: only when the version is asked for
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _installed

    try:
        return _installed("uvship")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0.0.0"
