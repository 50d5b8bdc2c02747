"""Software bills of materials: CycloneDX 1.5 JSON of a staged environment, and OCI SBOM artifacts.

An SBOM lists every Python distribution installed (from the dist-info directories, with
the hashes uv.lock holds for them), the interpreter and the runtime libraries of the scratch
base. Its bytes depend only on those: sorted, no random serial number, no wall-clock time
unless asked. In an OCI layout or a registry it is an artifact whose ``subject`` is the
image (OCI 1.1): in a layout, stored in blobs/ and named by an annotation of the image's
index.json entry; registries without the referrers API get the referrers tag schema.
"""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .._fs import atomic_file
from ..errors import InputError
from ..layers import source_date_epoch
from ..oci.types import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    canonical_json,
    check_digest,
    sha256_digest,
)
from ..project.workspace import Workspace
from ..stage.venv import StagedEnv

if TYPE_CHECKING:
    from ..registry import Reference, Registry

CDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
# OCI 1.1's empty descriptor: the config of an artifact that has none.
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
TITLE = "sbom.cdx.json"
BUNDLE_DIR_SBOM = "uvship-bundle.cdx.json"
_ANN_TITLE = "org.opencontainers.image.title"
_ANN_CREATED = "org.opencontainers.image.created"


# ---------------------------------------------------------------------- the document
def sbom_for(env: StagedEnv, *, ws: Workspace | None = None,
             runtime_components: Iterable[Mapping[str, Any]] = (),
             subject: Mapping[str, Any] | None = None, timestamp: bool = False) -> bytes:
    """The CycloneDX 1.5 JSON of ``env``: deterministic bytes for the same environment.

    ``runtime_components`` are ``Runtime.components`` of the scratch base (when the image
    has one); ``subject`` replaces the default ``metadata.component`` (the project), e.g.
    ``{"type": "container", "name": "registry/app", "version": digest}``. The time is
    SOURCE_DATE_EPOCH when set, else left out; ``timestamp=True`` writes the current time.
    """
    ws = ws or Workspace.open(env.plan.project_dir)
    site = f"lib/python{env.interpreter.minor}/site-packages"
    roots = [(env.root / site, None)]
    if env.plan.mode == "venv":  # a venv does not hold what the interpreter ships (pip)
        roots.append((env.interpreter.root / site, "interpreter"))
    tiers = {canonicalize_name(d.name): d.tier for d in env.distributions}
    python: dict[str, dict[str, Any]] = {}
    for root, tier in roots:
        for dist_info in sorted(root.glob("*.dist-info")) if root.is_dir() else ():
            comp = _python_component(dist_info, ws, tiers, tier)
            python.setdefault(comp["bom-ref"], comp)
    components = [*python.values(), _interpreter_component(env),
                  *_runtime(runtime_components)]
    top = dict(subject) if subject else _project(ws, env)
    top.setdefault("bom-ref", "subject")
    from .. import __version__

    metadata: dict[str, Any] = {
        "component": top,
        "tools": {"components": [{"type": "application", "name": "uvship",
                                  "version": __version__}]},
    }
    when = _timestamp(timestamp)
    if when is not None:
        metadata["timestamp"] = when
    doc = {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "metadata": metadata,
        "components": sorted(components, key=lambda c: c["bom-ref"]),
        "dependencies": _dependencies(ws, env, python, top["bom-ref"]),
    }
    # A serial number made from the content: the same BOM always has the same one.
    digest = hashlib.sha256(canonical_json(doc)).digest()
    doc["serialNumber"] = uuid.UUID(bytes=digest[:16], version=5).urn
    # Indented, keys sorted: still deterministic, and two SBOMs diff line by line.
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _timestamp(now: bool) -> str | None:
    if now:
        t = datetime.datetime.now(datetime.UTC)
    elif os.environ.get("SOURCE_DATE_EPOCH"):
        t = datetime.datetime.fromtimestamp(source_date_epoch(), datetime.UTC)
    else:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _project(ws: Workspace, env: StagedEnv) -> dict[str, Any]:
    selected = env.plan.selected
    top: dict[str, Any] = {"type": "application", "name": ", ".join(selected) or "environment"}
    versions = {ws.packages[n].version for n in selected if n in ws.packages}
    if len(versions) == 1 and None not in versions:
        top["version"] = versions.pop()
    return top


def _python_component(dist_info: Path, ws: Workspace, tiers: dict[str, str],
                      tier: str | None) -> dict[str, Any]:
    meta = _read_metadata(dist_info / "METADATA")
    name = meta.get("Name") or dist_info.name.rsplit("-", 1)[0]
    key = canonicalize_name(name)
    version = meta.get("Version") or dist_info.name[:-len(".dist-info")].rsplit("-", 1)[-1]
    comp: dict[str, Any] = {"type": "library", "bom-ref": f"python:{key}", "name": name,
                            "version": version}
    props = [("uvship:tier", tier or tiers.get(key, "unknown"))]
    locked = _lock_entry(ws, key, version)
    if locked is not None and ws.packages[key].is_local:
        # no purl: a local package is not the PyPI project of the same name
        props.append(("uvship:local", "true"))
        # how uv.lock names its place (workspace members read `editable`; uvship installs
        # them non-editable all the same)
        props += [("uvship:lock-source", f"{k}={v}")
                  for k, v in sorted(ws.packages[key].source.items())]
    else:
        comp["purl"] = f"pkg:pypi/{key}@{version}"
        if locked is not None:
            hashes, file = _lock_hashes(locked, _wheel_tags(dist_info / "WHEEL"))
            if hashes:
                comp["hashes"] = [{"alg": "SHA-256", "content": h} for h in hashes]
            if file:
                props.append(("uvship:installed-from", file))
    licenses = _licenses(meta)
    if licenses:
        comp["licenses"] = licenses
    comp["properties"] = [{"name": k, "value": v} for k, v in props]
    return comp


def _read_metadata(path: Path) -> email.message.Message:
    """A METADATA or WHEEL file's headers, every value a str.

    Core metadata is UTF-8. Parsed from bytes, compat32 turns any non-ASCII value (pandas'
    License is its whole license text, names with accents included) into a Header object;
    decoded first (an invalid byte replaced), every value stays a str.
    """
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return email.message.Message()
    return email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)


def _lock_entry(ws: Workspace, name: str, version: str) -> dict[str, Any] | None:
    for p in ws.lock.get("package", []):
        if canonicalize_name(p["name"]) == name and (
                p.get("version") is None or _same_version(p["version"], version)):
            return p
    return None


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)  # "1.0" is "1.0.0"; dist-info may not normalise
    except InvalidVersion:
        return a == b


def _wheel_tags(wheel_file: Path) -> frozenset[str]:
    msg = _read_metadata(wheel_file)
    return frozenset(msg.get_all("Tag") or ())


def _lock_hashes(locked: Mapping[str, Any], installed: frozenset[str]
                 ) -> tuple[list[str], str | None]:
    """The sha256 of the wheel that was installed (the one whose tags are the dist-info's
    WHEEL tags), else every hash the lock holds for the version (an sdist built here)."""
    files = []
    for w in locked.get("wheels", []):
        filename = w.get("filename") or str(w.get("url") or w.get("path") or "")
        filename = filename.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[-1]
        try:
            tags = frozenset(str(t) for t in parse_wheel_filename(filename)[3])
        except InvalidWheelFilename:
            tags = frozenset()
        files.append((filename, tags, w.get("hash", "")))
    if locked.get("sdist"):
        sd = locked["sdist"]
        files.append((str(sd.get("url") or sd.get("path") or "sdist").rsplit("/", 1)[-1],
                      frozenset(), sd.get("hash", "")))
    hexes = [(f, h.removeprefix("sha256:")) for f, _, h in files if h.startswith("sha256:")]
    match = [(f, h.removeprefix("sha256:")) for f, t, h in files
             if installed and t == installed and h.startswith("sha256:")]
    if len(match) == 1:
        return [match[0][1]], match[0][0]
    return sorted({h for _, h in hexes}), None


def _licenses(meta: email.message.Message) -> list[dict[str, Any]]:
    """License-Expression (an SPDX expression), else a short License field, else the
    classifiers: as CycloneDX names, never ids, whose schema admits SPDX ids only."""
    # compat32 gives an email.header.Header, not a str, for a value with non-ASCII bytes
    # (pandas 2.3.2's License holds the whole license text, with a "©")
    expr = str(meta.get("License-Expression") or "").strip()
    if expr:
        return [{"expression": expr}]
    text = str(meta.get("License") or "").strip()
    # Some packages put the whole license text in License: a name is its first line only
    # when that line is all there is.
    if text and text.upper() != "UNKNOWN" and "\n" not in text and len(text) <= 100:
        return [{"license": {"name": text}}]
    names = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or ()
             if c.startswith("License ::") and c.count("::") >= 2]
    return [{"license": {"name": n}} for n in sorted(set(names))]


def _interpreter_component(env: StagedEnv) -> dict[str, Any]:
    i = env.interpreter
    props = [("uvship:source", i.source), ("uvship:path", env.plan.python_path)]
    if i.source == "managed":  # the install's name, never its host path
        props.append(("uvship:managed-install", Path(i.origin).name))
    props += [(f"uvship:{k}", str(v)) for k, v in (("libc", i.libc), ("min-glibc", i.min_glibc),
                                                   ("machine", i.machine)) if v]
    return {"type": "application", "bom-ref": "interpreter:cpython", "name": "cpython",
            "version": i.version_str, "purl": f"pkg:generic/cpython@{i.version_str}",
            "cpe": f"cpe:2.3:a:python:python:{i.version_str}:*:*:*:*:*:*:*",
            "properties": [{"name": k, "value": v} for k, v in props]}


def _runtime(components: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One component per package of the scratch runtime (several libraries come from one
    Debian package), with the files it provides."""
    out: dict[str, dict[str, Any]] = {}
    for c in components:
        purl = c.get("purl")
        key = purl or f"{c['name']}@{c.get('version')}"
        if key not in out:
            name = purl.split("/")[-1].split("@")[0] if purl else c["name"]
            comp = {"type": "library", "bom-ref": f"runtime:{key}", "name": name,
                    "properties": [{"name": "uvship:layer", "value": "runtime"},
                                   {"name": "uvship:source", "value": str(c.get("source"))}]}
            if c.get("version"):
                comp["version"] = str(c["version"])
            if purl:
                comp["purl"] = purl
            elif c["name"] == "glibc" and c.get("version"):
                comp["cpe"] = f"cpe:2.3:a:gnu:glibc:{c['version']}:*:*:*:*:*:*:*"
            out[key] = comp
        if c.get("path"):
            out[key]["properties"].append({"name": "uvship:file", "value": "/" + c["path"]})
    for comp in out.values():
        comp["properties"].sort(key=lambda p: (p["name"], p["value"]))
    return list(out.values())


def _dependencies(ws: Workspace, env: StagedEnv, python: Mapping[str, Any],
                  top: str) -> list[dict[str, Any]]:
    """Who depends on whom among the installed distributions, from uv.lock: plain
    dependencies, and optional ones of the extras that something asks for."""
    raw = {canonicalize_name(p["name"]): p for p in ws.lock.get("package", [])}
    have = {ref.split(":", 1)[1] for ref in python}
    extras: dict[str, set[str]] = {n: set(env.plan.extras) for n in env.plan.selected}
    changed = True
    while changed:  # extras named by dependency entries switch on more entries
        changed = False
        for name in have & raw.keys():
            for dep in _entries(raw[name], extras.get(name, ())):
                new = {canonicalize_name(e) for e in dep.get("extra", [])}
                seen = extras.setdefault(canonicalize_name(dep["name"]), set())
                if not new <= seen:
                    seen |= new
                    changed = True
    out = [{"ref": top, "dependsOn": sorted(f"python:{n}" for n in env.plan.selected
                                            if n in have)}]
    for name in sorted(have):
        deps = {canonicalize_name(d["name"]) for d in _entries(raw.get(name, {}),
                                                               extras.get(name, ()))}
        out.append({"ref": f"python:{name}", "dependsOn": sorted(f"python:{d}"
                                                                 for d in deps & have)})
    return out


def _entries(pkg: Mapping[str, Any], extras: Iterable[str]) -> list[Mapping[str, Any]]:
    out = list(pkg.get("dependencies", []))
    optional = {canonicalize_name(k): v for k, v in pkg.get("optional-dependencies", {}).items()}
    for e in extras:
        out += optional.get(e, [])
    return out


# ---------------------------------------------------------------------- OCI artifacts
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


# ---------------------------------------------------------------------- beside outputs
def write_sbom_beside(path: str | os.PathLike[str], sbom: bytes, *,
                      tag: str | None = None) -> Path:
    """Keep ``sbom`` with an output: returns where it went.

    - an OCI layout: an artifact in the layout (``add_to_layout``), replaced with the
      layout and copied with it; ``tag`` names the image it describes;
    - a bundle ``X.tar.gz``: ``X.tar.gz.cdx.json`` beside it;
    - a bundle directory: ``uvship-bundle.cdx.json`` inside, beside its manifest.
    """
    from ..publish.bundle import MANIFEST_NAME

    p = Path(path)
    if p.is_dir() and (p / "oci-layout").is_file():
        add_to_layout(p, sbom, tag=tag)
        return p
    if p.is_dir() and (p / MANIFEST_NAME).is_file():
        dest = p / BUNDLE_DIR_SBOM
    elif p.is_file():
        dest = p.with_name(p.name + ".cdx.json")
    else:
        raise InputError(f"{p}: expected an OCI layout, a bundle directory or a bundle file "
                         "to write the SBOM beside, found none")
    with atomic_file(dest) as f:
        f.write(sbom)
    return dest



# ---------------------------------------------------------------------- OCI layouts
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
        raise InputError(f"OCI layout {root}: expected a readable index.json ({exc})") from None
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
    except OSError:
        raise InputError(f"OCI layout {root}: the blob {digest} is missing") from None
    if sha256_digest(data) != digest:
        raise InputError(f"OCI layout {root}: the blob {digest} does not match its digest",
                         hint="the layout is corrupt; write it again")
    return data


def _put_blob(root: Path, data: bytes) -> None:
    path = _blob_file(root, sha256_digest(data))
    if not path.is_file():
        with atomic_file(path) as f:
            f.write(data)


# ---------------------------------------------------------------------- registries
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
