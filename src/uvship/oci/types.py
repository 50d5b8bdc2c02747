"""OCI value types: media types, digests, descriptors, platforms and canonical JSON."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

# OCI image-spec media types: what uvship writes.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Docker image manifest v2 schema 2: read (base images often use it), never written.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# Docker layer types have an OCI twin; a manifest uvship writes uses the OCI one.
TO_OCI = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_CONFIG: OCI_CONFIG,
          DOCKER_MANIFEST: OCI_MANIFEST, DOCKER_MANIFEST_LIST: OCI_INDEX}
LAYER_COMPRESSION = {OCI_LAYER: "none", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
                     DOCKER_LAYER_GZIP: "gzip", DOCKER_FOREIGN_LAYER: "gzip"}
MEDIA_TYPE_OF_COMPRESSION = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def sha256_digest(data: bytes) -> str:
    """The OCI digest string (``sha256:<hex>``) of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(value: object, where: str) -> str:
    """``value`` if it is a sha256 digest (the only algorithm uvship reads), else InputError."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise InputError(f"{where}: expected a digest 'sha256:<64 hex digits>', found {value!r}")
    return value


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable mapping: the storage of JSON objects inside immutable values."""

    __slots__ = ("_d", "_h")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._d = dict(items or {})
        self._h: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(frozenset(self._d.items()))
        return self._h

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


def freeze(obj: Any) -> Any:
    """A deep immutable copy of JSON-like data: dicts become FrozenMaps, lists tuples."""
    if isinstance(obj, Mapping):
        return FrozenMap({str(k): freeze(v) for k, v in obj.items()})
    if isinstance(obj, list | tuple):
        return tuple(freeze(v) for v in obj)
    return obj


def thaw(obj: Any) -> Any:
    """A deep mutable copy of frozen (or plain) JSON-like data."""
    if isinstance(obj, Mapping):
        return {k: thaw(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [thaw(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8. Same value, same bytes."""
    return json.dumps(thaw(obj), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


# The one table of architecture names: `uname -m` (what ELF files, interpreters and wheel
# tags say) -> OCI architecture and variant, and the Debian architecture (package names).
_MACHINES: dict[str, tuple[str, str, str]] = {
    "x86_64": ("amd64", "", "amd64"),
    "aarch64": ("arm64", "", "arm64"),
    "i686": ("386", "", "i386"),
    "armv7": ("arm", "v7", "armhf"),
    "ppc64le": ("ppc64le", "", "ppc64el"),
    "s390x": ("s390x", "", "s390x"),
    "riscv64": ("riscv64", "", "riscv64"),
    "loongarch64": ("loong64", "", "loong64"),
}
_MACHINE_OF_ARCH = {arch: m for m, (arch, _, _) in _MACHINES.items()}
# Spellings of an architecture a user may give (`uname -m` on macOS says arm64).
_ARCH_ALIASES = {**{m: arch for m, (arch, _, _) in _MACHINES.items()}, "x86-64": "amd64"}


@dataclass(frozen=True)
class Platform:
    """An image's target: os, architecture and (for arm) variant, as in OCI descriptors."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, value: str | Platform) -> Platform:
        """``linux/amd64``, ``linux/arm64/v8``; ``x86_64`` and ``aarch64`` are accepted."""
        if isinstance(value, Platform):
            return value
        parts = value.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InputError(f"platform {value!r}: expected OS/ARCH[/VARIANT], "
                             "e.g. 'linux/amd64' or 'linux/arm64/v8'")
        arch = _ARCH_ALIASES.get(parts[1], parts[1])
        return cls(parts[0], arch, parts[2] if len(parts) == 3 else "")

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Platform:
        return cls(str(obj.get("os", "")), str(obj.get("architecture", "")),
                   str(obj.get("variant", "") or ""))

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def of_machine(cls, machine: str, os: str = "linux") -> Platform:
        """The platform of a `uname -m` machine (``x86_64`` -> linux/amd64); an OCI
        architecture name (``arm64``) is taken as it is."""
        arch = _ARCH_ALIASES.get(machine, machine)
        return cls(os, arch, _MACHINES.get(_MACHINE_OF_ARCH.get(arch, ""), ("", "", ""))[1])

    @property
    def machine(self) -> str:
        """The `uname -m` name of the architecture (``aarch64`` for arm64)."""
        return _MACHINE_OF_ARCH.get(self.architecture, self.architecture)

    @property
    def debian_arch(self) -> str:
        """The Debian architecture (``armhf`` for arm/v7), as package names spell it."""
        return _MACHINES.get(self.machine, ("", "", self.architecture))[2]

    def matches(self, other: Platform) -> bool:
        """Same os and architecture; variants compared only when both name one.

        arm64's only variant is v8, so ``linux/arm64`` and ``linux/arm64/v8`` are the same.
        """
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        a, b = _norm_variant(self), _norm_variant(other)
        return not a or not b or a == b

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def _norm_variant(p: Platform) -> str:
    return "" if p.architecture == "arm64" and p.variant == "v8" else p.variant


@dataclass(frozen=True)
class Descriptor:
    """A typed, sized, digest-addressed reference to a blob (OCI image-spec descriptor)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=FrozenMap)
    platform: Platform | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "annotations", FrozenMap(self.annotations))

    @classmethod
    def from_json(cls, obj: object, where: str) -> Descriptor:
        """Parse a descriptor object; ``where`` names it in errors (file and position)."""
        if not isinstance(obj, Mapping):
            raise InputError(f"{where}: expected a descriptor object, found {obj!r}")
        media_type = obj.get("mediaType")
        size = obj.get("size")
        if not isinstance(media_type, str):
            raise InputError(f"{where}: expected a string 'mediaType', found {media_type!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(f"{where}: expected a non-negative integer 'size', found {size!r}")
        annotations = obj.get("annotations") or {}
        platform = obj.get("platform")
        return cls(media_type, check_digest(obj.get("digest"), f"{where}: 'digest'"), size,
                   {str(k): str(v) for k, v in annotations.items()},
                   Platform.from_json(platform) if isinstance(platform, Mapping) else None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @property
    def ref_name(self) -> str | None:
        """The tag an OCI layout's index.json gives this descriptor, if any."""
        return self.annotations.get(ANNOTATION_REF_NAME)
