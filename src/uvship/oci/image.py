"""Immutable image values: Layer, Image (config + layers -> manifest) and ImageIndex."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InputError
from ..layers import ArchiveInfo, source_date_epoch
from .types import (
    LAYER_COMPRESSION,
    MEDIA_TYPE_OF_COMPRESSION,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    TO_OCI,
    Descriptor,
    FrozenMap,
    Platform,
    canonical_json,
    check_digest,
    freeze,
    sha256_digest,
    thaw,
)


def rfc3339(epoch: int) -> str:
    """``1970-01-01T00:00:00Z``: the form of every timestamp uvship writes."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_created() -> str:
    """The image time: SOURCE_DATE_EPOCH, else the epoch, so rebuilds give the same bytes."""
    return rfc3339(source_date_epoch())


@dataclass(frozen=True)
class Layer:
    """One filesystem layer: its compressed blob (a file or bytes) and its digests."""

    digest: str  # of the blob as stored (compressed)
    diff_id: str  # of the uncompressed tar
    size: int  # of the blob as stored
    media_type: str = MEDIA_TYPE_OF_COMPRESSION["gzip"]
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    # default history entry for Image.with_layer: created_by, comment, created, empty_layer
    history: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("Layer needs exactly one of path= or data=")
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        if self.history is not None:
            object.__setattr__(self, "history", freeze(self.history))

    @classmethod
    def from_archive(cls, info: ArchiveInfo, path: Path,
                     *, history: Mapping[str, Any] | None = None) -> Layer:
        """The layer ``layers.write_tar`` wrote to ``path`` and described as ``info``."""
        return cls(info.digest, info.diff_id, info.size,
                   MEDIA_TYPE_OF_COMPRESSION[info.compression], path=path, history=history)

    @property
    def compression(self) -> str:
        """``gzip``, ``zstd`` or ``none``, from the media type."""
        return LAYER_COMPRESSION.get(self.media_type, "gzip")

    def open(self) -> BinaryIO:
        """The blob's bytes, as stored."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")

    def descriptor(self, *, oci: bool = True) -> Descriptor:
        """The manifest entry for this layer (Docker media types mapped to OCI ones)."""
        mt = TO_OCI.get(self.media_type, self.media_type) if oci else self.media_type
        return Descriptor(mt, self.digest, self.size)


def _config_skeleton(platform: Platform, created: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os,
                           "created": created, "config": {},
                           "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    if platform.variant:
        cfg["variant"] = platform.variant
    return cfg


@dataclass(frozen=True)
class Image:
    """An image: its config (a read-only deep copy) and layers. ``with_*`` return new images.

    ``raw_config`` / ``raw_manifest`` are set by readers to keep a source image's exact
    bytes, and with them its digests; every ``with_*`` drops them, and the bytes are then
    uvship's canonical JSON.
    """

    config: Mapping[str, Any]
    layers: tuple[Layer, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=FrozenMap)
    raw_config: bytes | None = field(default=None, repr=False, compare=False)
    raw_manifest: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", freeze(self.config))
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "annotations", FrozenMap(self.annotations))
        diff_ids = tuple(self.config.get("rootfs", {}).get("diff_ids", ()))
        if diff_ids != tuple(layer.diff_id for layer in self.layers):
            raise InputError(
                f"image config: rootfs.diff_ids lists {len(diff_ids)} layers that do not "
                f"match the {len(self.layers)} layers given")
        if self.raw_config is not None and json.loads(self.raw_config) != thaw(self.config):
            raise ValueError("raw_config does not hold this image's config")
        if self.raw_manifest is not None:
            m = json.loads(self.raw_manifest)
            if (m.get("config", {}).get("digest") != sha256_digest(self.config_bytes())
                    or [d.get("digest") for d in m.get("layers", [])]
                    != [layer.digest for layer in self.layers]):
                raise ValueError("raw_manifest does not reference this image's config and layers")

    # ---- construction -------------------------------------------------------------

    @classmethod
    def scratch(cls, platform: str | Platform = "linux/amd64",
                *, created: str | None = None) -> Image:
        """An empty image (no layers) for ``platform``, created at SOURCE_DATE_EPOCH."""
        return cls(_config_skeleton(Platform.parse(platform), created or default_created()))

    def _edit(self, cfg: dict[str, Any], layers: Iterable[Layer] | None = None) -> Image:
        return replace(self, config=cfg, layers=tuple(self.layers if layers is None else layers),
                       raw_config=None, raw_manifest=None)

    def _edit_config(self, key: str, value: Any) -> Image:
        """A new image with ``config.config[key] = value`` (removed when value is None)."""
        cfg = self.config_dict()
        inner = cfg.setdefault("config", {}) or {}
        cfg["config"] = inner
        if value is None:
            inner.pop(key, None)
        else:
            inner[key] = value
        return self._edit(cfg)

    def with_layer(self, layer: Layer, *, created_by: str | None = None,
                   comment: str | None = None) -> Image:
        """Append ``layer``: its diff_id to rootfs.diff_ids and one history entry."""
        cfg = self.config_dict()
        cfg.setdefault("rootfs", {"type": "layers"}).setdefault("diff_ids", []).append(
            layer.diff_id)
        hist: dict[str, Any] = thaw(layer.history) if layer.history else {}
        hist.pop("empty_layer", None)  # a layer with a blob is never an empty one
        hist.setdefault("created", cfg.get("created") or default_created())
        if created_by is not None:
            hist["created_by"] = created_by
        if comment is not None:
            hist["comment"] = comment
        cfg.setdefault("history", []).append(hist)
        return self._edit(cfg, (*self.layers, layer))

    def with_layers(self, layers: Iterable[Layer]) -> Image:
        img = self
        for layer in layers:
            img = img.with_layer(layer)
        return img

    def with_env(self, key: str, value: str) -> Image:
        """Set ``key`` in config.Env: replaced in place if present, else appended."""
        if not key or "=" in key:
            raise InputError(f"environment variable name {key!r}: expected a name without '='")
        env = list(self.config.get("config", {}).get("Env") or ())
        item = f"{key}={value}"
        for i, e in enumerate(env):
            if e.split("=", 1)[0] == key:
                env[i] = item
                break
        else:
            env.append(item)
        return self._edit_config("Env", env)

    def with_entrypoint(self, entrypoint: Sequence[str] | None,
                        *, keep_cmd: bool = False) -> Image:
        """Set the entrypoint. As in a Dockerfile, this clears an inherited Cmd, which
        would otherwise become the new entrypoint's arguments (``keep_cmd`` to keep it)."""
        img = self._edit_config("Entrypoint", _strings(entrypoint, "entrypoint"))
        return img if keep_cmd else img._edit_config("Cmd", None)

    def with_cmd(self, cmd: Sequence[str] | None) -> Image:
        return self._edit_config("Cmd", _strings(cmd, "cmd"))

    def with_user(self, user: str) -> Image:
        """``name``, ``uid`` or ``uid:gid``; the runtime resolves names in /etc/passwd."""
        return self._edit_config("User", user or None)

    def with_workdir(self, workdir: str) -> Image:
        if workdir and not workdir.startswith("/"):
            raise InputError(f"working directory {workdir!r}: expected an absolute path")
        return self._edit_config("WorkingDir", workdir or None)

    def with_label(self, key: str, value: str) -> Image:
        return self.with_labels({key: value})

    def with_labels(self, labels: Mapping[str, str]) -> Image:
        merged = dict(self.config.get("config", {}).get("Labels") or {})
        merged.update({str(k): str(v) for k, v in labels.items()})
        return self._edit_config("Labels", merged)

    def with_annotations(self, annotations: Mapping[str, str]) -> Image:
        """Add manifest annotations (not labels: those live in the config)."""
        merged = {**self.annotations, **{str(k): str(v) for k, v in annotations.items()}}
        return replace(self, annotations=merged, raw_manifest=None)

    def with_created(self, created: str | int) -> Image:
        """Set the image time (an RFC 3339 string or epoch seconds) on the config and on
        every history entry, as go-containerregistry's mutate.Time does, so that no time
        from the machine that built a base survives into a reproducible image."""
        if isinstance(created, int):
            created = rfc3339(created)
        try:
            datetime.fromisoformat(created)
        except ValueError as exc:
            raise InputError(f"image time {created!r}: expected an RFC 3339 timestamp "
                             "like '1970-01-01T00:00:00Z'") from exc
        cfg = self.config_dict()
        cfg["created"] = created
        for h in cfg.get("history") or []:
            h["created"] = created
        return self._edit(cfg)

    def with_platform(self, os: str, architecture: str, variant: str | None = None) -> Image:
        cfg = self.config_dict()
        cfg["os"], cfg["architecture"] = os, architecture
        if variant:
            cfg["variant"] = variant
        else:
            cfg.pop("variant", None)
        return self._edit(cfg)

    # ---- reading --------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """A mutable deep copy of the config (editing it never changes this image)."""
        return thaw(self.config)

    @property
    def platform(self) -> Platform:
        return Platform.from_json(self.config)

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    @cached_property
    def _config_bytes(self) -> bytes:
        return self.raw_config if self.raw_config is not None else canonical_json(self.config)

    def config_bytes(self) -> bytes:
        return self._config_bytes

    @property
    def config_digest(self) -> str:
        """The digest of the config: the image ID engines show."""
        return sha256_digest(self.config_bytes())

    def config_descriptor(self) -> Descriptor:
        data = self.config_bytes()
        media_type = OCI_CONFIG
        if self.raw_manifest is not None:
            media_type = json.loads(self.raw_manifest)["config"]["mediaType"]
        return Descriptor(media_type, sha256_digest(data), len(data))

    def manifest(self) -> dict[str, Any]:
        """The image manifest as a (fresh, mutable) dict."""
        if self.raw_manifest is not None:
            return json.loads(self.raw_manifest)
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config_descriptor().to_json(),
            "layers": [layer.descriptor().to_json() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @cached_property
    def _manifest_bytes(self) -> bytes:
        if self.raw_manifest is not None:
            return self.raw_manifest
        return canonical_json(self.manifest())

    def manifest_bytes(self) -> bytes:
        return self._manifest_bytes

    @property
    def media_type(self) -> str:
        """The manifest's media type (OCI, unless read from a Docker v2 source unchanged)."""
        if self.raw_manifest is not None:
            return json.loads(self.raw_manifest).get("mediaType", OCI_MANIFEST)
        return OCI_MANIFEST

    @property
    def digest(self) -> str:
        """The image's digest: that of its manifest bytes."""
        return sha256_digest(self.manifest_bytes())

    def descriptor(self, *, annotations: Mapping[str, str] | None = None,
                   platform: bool = True) -> Descriptor:
        """A descriptor of the manifest, with the image's platform unless ``platform=False``."""
        return Descriptor(self.media_type, self.digest, len(self.manifest_bytes()),
                          annotations or {}, self.platform if platform else None)


def _strings(value: Sequence[str] | None, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{what} {value!r}: expected a list of strings (exec form), "
                         "e.g. ['/app/.venv/bin/python', '-m', 'app']")
    return list(value)


@dataclass(frozen=True)
class ImageIndex:
    """Several images of one program, one per platform: an OCI image index."""

    manifests: tuple[tuple[Image, Platform], ...]
    annotations: Mapping[str, str] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        entries = tuple((img, Platform.parse(p) if p is not None else img.platform)
                        for img, p in self.manifests)
        seen: set[str] = set()
        for _, p in entries:
            if str(p) in seen:
                raise InputError(f"image index: two images for platform {p}; "
                                 "expected one image per platform")
            seen.add(str(p))
        object.__setattr__(self, "manifests", entries)
        object.__setattr__(self, "annotations", FrozenMap(self.annotations))

    @classmethod
    def of(cls, images: Iterable[Image]) -> ImageIndex:
        """An index of ``images``, each under the platform its config names."""
        return cls(tuple((img, img.platform) for img in images))

    @property
    def images(self) -> tuple[Image, ...]:
        return tuple(img for img, _ in self.manifests)

    def image(self, platform: str | Platform) -> Image:
        want = Platform.parse(platform)
        for img, p in self.manifests:
            if p.matches(want):
                return img
        found = ", ".join(str(p) for _, p in self.manifests) or "none"
        raise InputError(f"image index: no image for platform {want}; found: {found}")

    def index(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [Descriptor(img.media_type, img.digest, len(img.manifest_bytes()),
                                     platform=p).to_json() for img, p in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @cached_property
    def _index_bytes(self) -> bytes:
        return canonical_json(self.index())

    def index_bytes(self) -> bytes:
        return self._index_bytes

    @property
    def media_type(self) -> str:
        return OCI_INDEX

    @property
    def digest(self) -> str:
        return sha256_digest(self.index_bytes())

    def descriptor(self, *, annotations: Mapping[str, str] | None = None) -> Descriptor:
        return Descriptor(OCI_INDEX, self.digest, len(self.index_bytes()), annotations or {})


def image_from_parts(manifest: Mapping[str, Any], raw_manifest: bytes, config: Any,
                     raw_config: bytes, where: str,
                     layer_path: Callable[[Descriptor], Path]) -> Image:
    """An image read from somewhere (a layout, a registry): its manifest and config checked
    against each other, each layer's blob found by ``layer_path``; the bytes kept as read."""
    if not isinstance(config, dict):
        raise InputError(f"{where}: the config is not a JSON object")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    descs = [Descriptor.from_json(d, f"{where}: layers[{i}]")
             for i, d in enumerate(manifest.get("layers") or [])]
    if len(diff_ids) != len(descs):
        raise InputError(f"{where}: expected as many layers as the config's rootfs.diff_ids "
                         f"({len(diff_ids)}), found {len(descs)}")
    layers = tuple(
        Layer(d.digest, check_digest(diff_id, f"{where}: config rootfs.diff_ids"), d.size,
              d.media_type, path=layer_path(d))
        for d, diff_id in zip(descs, diff_ids, strict=True))
    return Image(config, layers, annotations=dict(manifest.get("annotations") or {}),
                 raw_config=raw_config, raw_manifest=raw_manifest)
