"""uvship: ship uv projects as relocatable bundles and daemonless, reproducible OCI images."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import CommandError, InputError, UvshipError

try:
    __version__ = version("uvship")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["CommandError", "InputError", "UvshipError", "__version__"]
