"""uvship: ship uv projects as relocatable bundles and daemonless, reproducible OCI images."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import CommandError, InputError, UvshipError

try:
    __version__ = version("uvship")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from .api import Uv, UvBuild, UvWorkspace
from .bundle import UvVenv

__all__ = ["CommandError", "InputError", "Uv", "UvBuild", "UvVenv", "UvWorkspace", "UvshipError",
           "__version__"]
