"""An SBOM as an OCI 1.1 artifact: a manifest whose ``subject`` is the image it describes,
the empty config, and the document as its one layer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InputError
from ..oci.types import OCI_INDEX, OCI_MANIFEST, canonical_json, sha256_digest
from .cyclonedx import CDX_MEDIA_TYPE

# OCI 1.1's empty descriptor: the config of an artifact that has none.
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
TITLE = "sbom.cdx.json"
_ANN_TITLE = "org.opencontainers.image.title"
_ANN_CREATED = "org.opencontainers.image.created"


def artifact_manifest(sbom: bytes, subject: Mapping[str, Any]) -> bytes:
    """The OCI 1.1 artifact manifest of ``sbom`` referring to ``subject`` (a descriptor)."""
    from ..oci import default_created

    return canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": CDX_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": sha256_digest(EMPTY),
                   "size": len(EMPTY), "data": "e30="},
        "layers": [{"mediaType": CDX_MEDIA_TYPE, "digest": sha256_digest(sbom),
                    "size": len(sbom), "annotations": {_ANN_TITLE: TITLE}}],
        "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
        # the image's time (SOURCE_DATE_EPOCH or the epoch): referrer lists sort on it
        "annotations": {_ANN_CREATED: default_created()},
    })


def referrer_descriptor(manifest: bytes) -> dict[str, Any]:
    """How an index (a layout's index.json, a referrers list) lists an artifact manifest."""
    doc = json.loads(manifest)
    out = {"mediaType": OCI_MANIFEST, "digest": sha256_digest(manifest), "size": len(manifest),
           "artifactType": doc["artifactType"]}
    if doc.get("annotations"):
        out["annotations"] = doc["annotations"]
    return out


def index_bytes(manifests: list[dict[str, Any]]) -> bytes:
    return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


def pick_sbom(descriptors: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest CycloneDX referrer (by its created annotation, then its place in the list)."""
    found = [(str((d.get("annotations") or {}).get(_ANN_CREATED, "")), i, d)
             for i, d in enumerate(descriptors) if d.get("artifactType") == CDX_MEDIA_TYPE]
    return max(found, key=lambda t: t[:2])[2] if found else None


def sbom_layer(manifest: bytes, where: str) -> Mapping[str, Any]:
    doc = json.loads(manifest)
    layers = [x for x in doc.get("layers") or [] if x.get("mediaType") == CDX_MEDIA_TYPE]
    if not layers:
        raise InputError(f"{where}: expected a CycloneDX layer in the SBOM artifact, found none")
    return layers[0]


