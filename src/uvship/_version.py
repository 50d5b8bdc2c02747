"""uvship's own version: the one place it is written (pyproject.toml reads it from here,
through hatchling's version source), for every place that names it: bundles, SBOMs,
generated Dockerfiles, SARIF reports, --version. A constant, not the installed metadata:
importlib.metadata costs ~40 ms to import, on every build that writes an SBOM."""

from __future__ import annotations

__version__ = "0.1.0"


def version() -> str:
    return __version__
