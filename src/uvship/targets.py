"""Where images are, as users name them: one parser for the kinds of reference every
command takes (bases, outputs, what inspect and sbom read)."""

from __future__ import annotations

import re

# the kinds a reference may start with, as skopeo names these places
KINDS = ("oci", "docker-archive", "docker-daemon", "containers-storage")


def kind_of(spec: str) -> tuple[str | None, str]:
    """``(kind, rest)`` of ``KIND:REST`` for a known kind, else ``(None, spec)``."""
    kind, sep, rest = spec.partition(":")
    return (kind, rest) if sep and kind in KINDS else (None, spec)


def looks_like_reference(ref: str) -> bool:
    """A registry reference rather than a local path: a name, maybe a host, a tag or digest."""
    return bool(re.fullmatch(r"[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9._-]+)*"
                             r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?",
                             ref)) and ("/" in ref or ":" in ref or "@" in ref)
