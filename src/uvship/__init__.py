"""uvship: ship uv projects as relocatable bundles and daemonless, reproducible OCI images."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs the no-change path ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from .api import Image, Uv, UvBuild, UvWorkspace
    from .errors import CommandError, InputError, UvshipError
    from .publish.bundle import UvVenv

# The API is imported on first use: a command-line run that has nothing to do (an
# unchanged rebuild) should not pay for importing what it does not need.
_LAZY = {"CommandError": "errors", "InputError": "errors", "UvshipError": "errors",
         "Uv": "api", "UvBuild": "api", "UvWorkspace": "api", "UvVenv": "publish.bundle",
         "Image": "api", "MultiPlatformImage": "api"}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._version import version

        return version()
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'uvship' has no attribute {name!r}")


__all__ = ["CommandError", "Image", "InputError", "MultiPlatformImage", "Uv", "UvBuild",
           "UvVenv", "UvWorkspace", "UvshipError", "__version__"]
