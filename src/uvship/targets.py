"""Where images are, as users name them: the one parser for the kinds of reference every
command takes (bases, outputs, what inspect and sbom read). Each caller decides which
kinds it accepts; none splits a reference itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .oci import parse_layout_ref

# the kinds a reference may start with, as skopeo names these places
KINDS = ("oci", "docker-archive", "docker-daemon", "containers-storage")


@dataclass(frozen=True)
class Target:
    """A parsed reference. ``kind`` is ``scratch``, one of KINDS, ``registry`` (a name
    with a host, tag or digest) or ``path`` (an existing file or directory, when asked
    for) or ``unknown``; ``spec`` is the reference as given."""

    kind: str
    spec: str
    path: Path | None = None  # oci: the layout directory; docker-archive: the file; path
    tag: str | None = None  # oci: the tag in the layout (None: its only image)
    name: str = ""  # docker-daemon / containers-storage: the image name; registry: spec

    def __str__(self) -> str:
        return self.spec


def parse(spec: str, *, paths: bool = False) -> Target:
    """The target ``spec`` names. With ``paths``, an existing file or directory given
    without a kind is a ``path`` (before it could be taken for a registry reference)."""
    if spec == "scratch":
        return Target("scratch", spec)
    kind, sep, rest = spec.partition(":")
    if sep and kind == "oci":
        path, tag = parse_layout_ref(spec)
        return Target("oci", spec, path=path if rest.partition(":")[0] else None, tag=tag)
    if sep and kind == "docker-archive":
        return Target("docker-archive", spec, path=Path(rest) if rest else None)
    if sep and kind in KINDS:
        return Target(kind, spec, name=rest)
    if paths and spec and Path(spec).exists():
        return Target("path", spec, path=Path(spec))
    if looks_like_reference(spec):
        return Target("registry", spec, name=spec)
    return Target("unknown", spec)


def looks_like_reference(ref: str) -> bool:
    """A registry reference rather than a local path: a name, maybe a host, a tag or digest."""
    return bool(re.fullmatch(r"[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9._-]+)*"
                             r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?",
                             ref)) and ("/" in ref or ":" in ref or "@" in ref)
