"""SBOMs in OCI layouts: kept in blobs/, named by an annotation of the image's index.json
entry (index.json lists images only, so skopeo and podman read `oci:DIR` with no tag)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._fs import atomic_file
from ..errors import InputError
from ..oci.types import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    canonical_json,
    check_digest,
    sha256_digest,
)
from .artifact import EMPTY, artifact_manifest, pick_sbom, referrer_descriptor, sbom_layer
from .cyclonedx import CDX_MEDIA_TYPE

# index.json lists images only: skopeo and podman read `oci:DIR` (no tag) only when it has
# one entry. So an SBOM artifact lives in blobs/ unlisted, and the entry of the image (or of
# the index holding it) names the artifact's manifest in this annotation, comma-separated
# when an index has one SBOM per platform. Other tools ignore it; the image digest is kept.
LAYOUT_ANNOTATION = "dev.uvship.sbom"


def layout_parts(sboms: Iterable[tuple[Mapping[str, Any], bytes]]
                 ) -> tuple[dict[str, str], list[bytes]]:
    """What ``oci.write_layout`` needs to keep SBOMs in a layout: the index.json annotation
    and the blobs (each artifact's manifest, the empty config and the SBOM).

    ``sboms`` pairs each image's descriptor (the artifact's subject) with its SBOM.
    """
    digests: list[str] = []
    blobs: list[bytes] = []
    for subject, data in sboms:
        manifest = artifact_manifest(data, subject)
        digests.append(sha256_digest(manifest))
        blobs += [EMPTY, data, manifest]
    return ({LAYOUT_ANNOTATION: ",".join(digests)} if digests else {}), blobs


def add_to_layout(layout: Path, sbom: bytes, *, tag: str | None = None,
                  platform: str | None = None) -> str:
    """Put ``sbom`` into an OCI layout as an artifact whose subject is the image ``tag`` (or
    the only one; of an index, the one for ``platform``); returns the artifact's digest.

    Every index.json entry of the image, or of an index holding it, names the artifact in
    its annotation instead of an earlier SBOM of that image; an older layout's referrer
    entry for the image leaves index.json (its blobs stay). Under the layout's writer lock.
    """
    from ..oci.layout import layout_lock

    root = Path(layout)
    _layout_image(root, tag, platform)  # a layout, before its lock file is made there
    with layout_lock(root):  # a read-modify-write of index.json, as write_layout's
        return _add_to_layout(root, sbom, tag, platform)


def _add_to_layout(root: Path, sbom: bytes, tag: str | None, platform: str | None) -> str:
    image = _layout_image(root, tag, platform)
    manifest = artifact_manifest(sbom, image)
    digest = sha256_digest(manifest)
    for data in (EMPTY, sbom, manifest):
        _put_blob(root, data)
    index = _layout_index(root)
    subject = image["digest"]
    entries = []
    for d in index["manifests"]:
        if d.get("artifactType") and _subject_of(root, d.get("digest")) == subject:
            continue  # an older layout's referrer entry: the annotation says it now
        if not d.get("artifactType") and _holds(root, d, subject):
            keep = [x for x in _named(d) if _subject_of(root, x) != subject]
            d = {**d, "annotations": {**(d.get("annotations") or {}),
                                      LAYOUT_ANNOTATION: ",".join([*keep, digest])}}
        entries.append(d)
    if entries != index["manifests"]:
        with atomic_file(root / "index.json") as f:
            f.write(canonical_json({**index, "manifests": entries}))
    return digest


def read_from_layout(layout: str | os.PathLike[str], tag: str | None = None,
                     platform: str | None = None) -> bytes:
    """The SBOM of the image ``tag`` (or the only image; of an index, the one for
    ``platform``) of an OCI layout: an artifact index.json's annotation names, or one it
    lists as a referrer (as oras and earlier uvship versions write them).

    The SBOM the tag's own entry names comes first: one image under several tags may have
    been written with several SBOMs."""
    root = Path(layout)
    image = _layout_image(root, tag, platform)["digest"]
    index = _layout_index(root)
    named = [x for d in index["manifests"] for x in _named(d)]
    own = [x for d in index["manifests"] if tag is not None
           and (d.get("annotations") or {}).get(ANNOTATION_REF_NAME) == tag for x in _named(d)]
    listed = [d["digest"] for d in index["manifests"]
              if d.get("artifactType") == CDX_MEDIA_TYPE and isinstance(d.get("digest"), str)]
    found: dict[str, bytes] = {}
    missing = [x for x in named if not _blob_file(root, x).is_file()]
    for candidates in (own, [*named, *listed]):
        for digest in dict.fromkeys(candidates):
            if _subject_of(root, digest) == image:
                found[digest] = _read_blob(root, digest)
        if found:
            break
    chosen = pick_sbom(referrer_descriptor(m) for m in found.values())
    if chosen is None:
        if missing:
            raise InputError(
                f"OCI layout {root}: index.json names the SBOM {missing[0]}, whose blob is "
                f"missing (expected {_blob_file(root, missing[0])})",
                hint="tools that delete the blobs index.json does not list (umoci gc) remove "
                     "it; build the image again")
        raise InputError(f"OCI layout {root}: no SBOM refers to the image {image}",
                         hint="uvship build writes one into the layouts it makes")
    where = f"OCI layout {root}: SBOM {chosen['digest']}"
    return _read_blob(root, sbom_layer(found[chosen["digest"]], where)["digest"])


def _layout_image(root: Path, tag: str | None, platform: str | None) -> dict[str, Any]:
    """The descriptor (media type, digest, size) of the image an SBOM of the layout is for."""
    from ..oci.layout import read_layout

    img = read_layout(root, tag, platform)  # an SBOM of a corrupt image is refused
    return {"mediaType": img.media_type, "digest": img.digest,
            "size": len(img.manifest_bytes())}


def _layout_index(root: Path) -> dict[str, Any]:
    try:
        index = json.loads((root / "index.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"OCI layout {root}: expected a readable index.json ({exc})") from exc
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list) or not all(
            isinstance(d, dict) for d in index["manifests"]):
        raise InputError(f"OCI layout {root}: index.json: expected a 'manifests' list of "
                         "descriptors")
    return index


def _named(entry: Mapping[str, Any]) -> list[str]:
    """The SBOM artifacts an index.json entry names in its annotation."""
    value = (entry.get("annotations") or {}).get(LAYOUT_ANNOTATION)
    return [x for x in value.split(",") if x] if isinstance(value, str) else []


def _holds(root: Path, entry: Mapping[str, Any], digest: str) -> bool:
    """Whether an index.json entry is the image ``digest``, or an index that lists it."""
    if entry.get("digest") == digest:
        return True
    if entry.get("mediaType") not in INDEX_TYPES:
        return False
    try:
        inner = json.loads(_read_blob(root, str(entry.get("digest")))).get("manifests")
    except (InputError, ValueError, AttributeError):
        return False
    return any(isinstance(m, dict) and m.get("digest") == digest for m in inner or [])


def _subject_of(root: Path, digest: object) -> str | None:
    """The image the CycloneDX artifact ``digest`` refers to; None for other blobs, and
    gone ones."""
    try:
        doc = json.loads(_read_blob(root, str(digest)))
    except (InputError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("artifactType") != CDX_MEDIA_TYPE:
        return None
    return (doc.get("subject") or {}).get("digest")


def _blob_file(root: Path, digest: str) -> Path:
    check_digest(digest, f"OCI layout {root}: index.json")  # never a path outside blobs/
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _read_blob(root: Path, digest: str) -> bytes:
    try:
        data = _blob_file(root, digest).read_bytes()
    except OSError as exc:
        raise InputError(f"OCI layout {root}: the blob {digest} is missing") from exc
    if sha256_digest(data) != digest:
        raise InputError(f"OCI layout {root}: the blob {digest} does not match its digest",
                         hint="the layout is corrupt; write it again")
    return data


def _put_blob(root: Path, data: bytes) -> None:
    path = _blob_file(root, sha256_digest(data))
    if not path.is_file():
        with atomic_file(path) as f:
            f.write(data)


