"""Pulling: a reference resolved to an image for one platform, layers fetched when asked."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import InputError
from ..oci.image import Image, Layer, image_from_parts
from ..oci.types import (
    CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Platform,
)
from .reference import Reference
from .session import Session

DEFAULT_PLATFORM = Platform("linux", "amd64")
CONFIG_LIMIT = 8 << 20  # image configs are small; a huge one is not an image config


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: expected JSON, found invalid data ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{where}: expected a JSON object")
    return doc


def index_platforms(reg: Session, ref: Reference) -> list[Platform]:
    """The platforms of the images ``ref`` names: several for an index, else none."""
    data, media_type, digest = reg.get_manifest(ref)
    if media_type not in INDEX_TYPES:
        return []
    doc = _json(data, f"image {ref}: index {digest}")
    entries = [Descriptor.from_json(d, f"image {ref}: index {digest}: manifests[{i}]")
               for i, d in enumerate(doc.get("manifests") or [])]
    return [d.platform for d in entries if d.media_type in MANIFEST_TYPES and d.platform
            and d.platform.os != "unknown"]


def resolve_image(reg: Session, ref: Reference, platform: str | Platform | None) -> Image:
    want = Platform.parse(platform) if platform is not None else None
    data, media_type, digest = reg.get_manifest(ref)
    where = f"image {ref}"
    if media_type in INDEX_TYPES:
        doc = _json(data, f"{where}: index {digest}")
        entries = [Descriptor.from_json(d, f"{where}: index {digest}: manifests[{i}]")
                   for i, d in enumerate(doc.get("manifests") or [])]
        choose = want or DEFAULT_PLATFORM
        # entries without a platform (or unknown/unknown) are attestations, not images
        images = [d for d in entries if d.media_type in MANIFEST_TYPES and d.platform
                  and d.platform.os != "unknown"]
        match = [d for d in images if d.platform is not None and d.platform.matches(choose)]
        if not match:
            found = ", ".join(sorted({str(d.platform) for d in images})) or "none"
            raise InputError(f"{where}: no image for platform {choose}; found platforms: "
                             f"{found}", hint="choose one of the platforms found")
        child = ref.context(digest=match[0].digest)
        data, media_type, digest = reg.get_manifest(child)
        where = f"image {child}"
    elif media_type not in MANIFEST_TYPES:
        raise InputError(f"{where}: expected an image manifest or index, found media type "
                         f"{media_type or 'none'!r}")
    image = _image(reg, ref, data, where)
    if want is not None and not image.platform.matches(want):
        raise InputError(f"{where}: no image for platform {want}; found platforms: "
                         f"{image.platform}", hint="choose one of the platforms found")
    return image


def _image(reg: Session, ref: Reference, raw_manifest: bytes, where: str) -> Image:
    m = _json(raw_manifest, f"{where}: manifest")
    if m.get("schemaVersion") != 2:
        raise InputError(f"{where}: expected an image manifest with schemaVersion 2, found "
                         f"{m.get('schemaVersion')!r}", hint="schema 1 images are not read")
    cfg_desc = Descriptor.from_json(m.get("config"), f"{where}: config")
    if cfg_desc.media_type not in CONFIG_TYPES:
        raise InputError(f"{where}: expected an image config media type, found "
                         f"{cfg_desc.media_type!r}")
    if cfg_desc.size > CONFIG_LIMIT:
        raise InputError(f"{where}: expected a config of at most {CONFIG_LIMIT} bytes, found "
                         f"{cfg_desc.size}")
    blobs = reg.blob_store()
    cfg_path = blobs.path(cfg_desc.digest)
    if not blobs.ok(cfg_path, cfg_desc.digest, cfg_desc.size):
        reg.get_blob(ref.repository, cfg_desc.digest, cfg_path, size=cfg_desc.size)
        blobs.checked(cfg_path, cfg_desc.digest)  # get_blob verified it
    raw_config = cfg_path.read_bytes()
    config = _json(raw_config, f"{where}: config {cfg_desc.digest}")
    return image_from_parts(m, raw_manifest, config, raw_config, where,
                            lambda d: blobs.path(d.digest))


def pull_layers(reg: Session, ref: Reference, image: Image) -> Image:
    """``image``'s layers in the cache, fetched when missing or no longer what their digest
    says (the cache verifies what it reads back)."""
    blobs = reg.blob_store()
    missing = {layer.digest: layer for layer in image.layers if layer.path is not None
               and not blobs.ok(layer.path, layer.digest, layer.size)}
    if not missing:
        return image

    def fetch(layer: Layer) -> None:
        assert layer.path is not None
        reg.get_blob(ref.repository, layer.digest, layer.path, size=layer.size)
        blobs.checked(layer.path, layer.digest)  # get_blob verified it

    with ThreadPoolExecutor(max_workers=min(reg.jobs, len(missing)),
                            thread_name_prefix="uvship-pull") as pool:
        for future in [pool.submit(fetch, layer) for layer in missing.values()]:
            future.result()
    return image
