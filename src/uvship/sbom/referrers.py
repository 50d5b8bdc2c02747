"""SBOMs in registries: attached to a pushed image through the referrers API, or the
referrers tag schema (`sha256-<digest>`) where a registry has no such API; and found again."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..oci.types import OCI_INDEX, OCI_MANIFEST, sha256_digest
from .artifact import (
    EMPTY,
    artifact_manifest,
    index_bytes,
    pick_sbom,
    referrer_descriptor,
    sbom_layer,
)

if TYPE_CHECKING:
    from ..registry import Reference, Registry


@dataclass(frozen=True)
class Attached:
    """An SBOM artifact in a registry: its manifest digest and how it is found."""

    digest: str
    via: str  # "referrers" (the registry's API) or "tag" (the referrers tag schema)
    tag: str | None = None


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``digest``: ``sha256-<hex>`` (OCI distribution 1.1)."""
    return digest.replace(":", "-", 1)


def attach_to_registry(reg: Registry, ref: str | Reference, image_digest: str,
                       sbom: bytes) -> Attached:
    """Push ``sbom`` as an artifact referring to ``image_digest`` in ``ref``'s repository.

    A registry with the referrers API lists it by itself; for one without (distribution
    2.8 answers 404), the index tagged ``sha256-<hex>`` gets it, as the OCI distribution
    spec's referrers tag schema says. (Two clients updating that tag at once can lose one
    entry: the schema has no locking; a rebuild attaches again.)
    """
    r = reg.ref_of(ref)
    data, media_type, digest = reg.get_manifest(r.context(digest=image_digest))
    manifest = artifact_manifest(sbom, {"mediaType": media_type, "digest": digest,
                                        "size": len(data)})
    for blob in (EMPTY, sbom):
        reg.push_blob(r.repository, blob)
    art = sha256_digest(manifest)
    if reg.head_manifest(r.context(digest=art)) != art:
        reg.put_manifest(r.context(digest=art), manifest, OCI_MANIFEST)
    if _referrers_api(reg, r.repository, image_digest) is not None:
        return Attached(art, "referrers")
    tag = fallback_tag(image_digest)
    listed = _fallback_index(reg, r.context(tag=tag))
    if all(d.get("digest") != art for d in listed):
        reg.put_manifest(r.context(tag=tag), index_bytes([*listed,
                                                          referrer_descriptor(manifest)]),
                         OCI_INDEX)
    return Attached(art, "tag", tag)


def find_sbom(ref: str | Reference, *, insecure: Iterable[str] = (),
              registry: Registry | None = None) -> bytes:
    """The SBOM of the image ``ref`` names: through the referrers API, else the fallback tag."""
    from ..registry import Reference as _Reference
    from ..registry import Registry as _Registry

    r = _Reference.parse(ref)
    if registry is None:
        with _Registry(r.registry, insecure=insecure) as reg:
            return find_sbom(r, registry=reg)
    reg = registry
    _, _, digest = reg.get_manifest(r)
    listed = _referrers_api(reg, r.repository, digest)
    if listed is None:
        listed = _fallback_index(reg, r.context(tag=fallback_tag(digest)))
    chosen = pick_sbom(listed)
    if chosen is None:
        raise InputError(f"image {r}: no SBOM refers to {digest} (neither the referrers API "
                         f"nor the tag {fallback_tag(digest)} lists one)",
                         hint="`uvship build --push` attaches one to the images it pushes")
    manifest, _, _ = reg.get_manifest(r.context(digest=chosen["digest"]))
    layer = sbom_layer(manifest, f"image {r}: SBOM {chosen['digest']}")
    return _get_blob(reg, r.repository, layer["digest"])


def _referrers_api(reg: Registry, repo: str, digest: str) -> list[dict[str, Any]] | None:
    """What the referrers API lists for ``digest``, or None when the registry lacks it."""
    from ..registry.auth import repository_scope

    def once() -> list[dict[str, Any]] | None:
        resp = reg.send("GET", reg.url(f"/v2/{repo}/referrers/{digest}"),
                        ok=(200, 400, 404, 405), headers={"Accept": OCI_INDEX},
                        scopes=[repository_scope(repo, "pull")])
        if resp.status_code != 200:
            return None
        try:
            doc = resp.json()
        except ValueError:
            return None
        listed = doc.get("manifests") if isinstance(doc, dict) else None
        return listed if isinstance(listed, list) else None

    return reg.retry.run(once)


def _fallback_index(reg: Registry, ref: Reference) -> list[dict[str, Any]]:
    from ..registry import RegistryError

    try:
        data, _, _ = reg.get_manifest(ref, accept=(OCI_INDEX,))
    except RegistryError as exc:
        if exc.status == 404:
            return []
        raise
    listed = json.loads(data).get("manifests")
    return listed if isinstance(listed, list) else []


def _get_blob(reg: Registry, repo: str, digest: str) -> bytes:
    from ..registry.auth import repository_scope

    def once() -> bytes:
        url = reg.url(f"/v2/{repo}/blobs/{digest}")
        data = reg.send("GET", url, follow=True,
                        scopes=[repository_scope(repo, "pull")]).content
        if sha256_digest(data) != digest:
            raise InputError(f"GET {url}: expected blob {digest}, found other content")
        return data

    return reg.retry.run(once)
