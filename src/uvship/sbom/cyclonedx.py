"""CycloneDX 1.5 JSON of a staged environment: every Python distribution installed (from
the dist-info directories, with the hashes uv.lock holds for them), the interpreter and the
runtime libraries of the scratch base. Its bytes depend only on those: sorted, no random
serial number, no wall-clock time unless asked."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .. import cache
from ..layers import source_date_epoch
from ..oci.types import canonical_json
from ..project.workspace import Workspace
from ..stage.dists import metadata_headers
from ..stage.venv import StagedEnv

if TYPE_CHECKING:
    from email.message import Message

CDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"


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
    code = _code()
    for root, tier in roots:
        for dist_info in sorted(root.glob("*.dist-info")) if root.is_dir() else ():
            comp = _kept_component(dist_info, ws, tiers, tier, code)
            python.setdefault(comp["bom-ref"], comp)
    components = [*python.values(), _interpreter_component(env),
                  *_runtime(runtime_components)]
    top = dict(subject) if subject else _project(ws, env)
    top.setdefault("bom-ref", "subject")
    from .._version import version

    metadata: dict[str, Any] = {
        "component": top,
        "tools": {"components": [{"type": "application", "name": "uvship",
                                  "version": version()}]},
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


def _code() -> str:
    """The hash of this generator: part of every key of what it makes."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _kept_component(dist_info: Path, ws: Workspace, tiers: dict[str, str],
                    tier: str | None, code: str) -> dict[str, Any]:
    """_python_component, kept under the hash of what decides it (the dist-info's METADATA
    and WHEEL, its tier, its lock entries): a rebuild after an edit parses none again."""
    try:
        meta = (dist_info / "METADATA").read_bytes()
        wheel = (dist_info / "WHEEL").read_bytes() if (dist_info / "WHEEL").is_file() else b""
    except OSError:
        return _python_component(dist_info, ws, tiers, tier)
    name = canonicalize_name(metadata_headers(meta).get("Name")
                             or dist_info.name.rsplit("-", 1)[0])
    pkg = ws.packages.get(name)
    key = cache.key_of("sbom-component", code, dist_info.name,
                       hashlib.sha256(meta).hexdigest(), hashlib.sha256(wheel).hexdigest(),
                       tier or tiers.get(name), ws.lock_entries(name),
                       [pkg.is_local, pkg.source] if pkg is not None else None)
    kept = cache.read_record("sbom-components", key)
    if isinstance(kept, dict):
        return kept
    comp = _python_component(dist_info, ws, tiers, tier)
    cache.write_record("sbom-components", key, comp)
    return comp


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


def _read_metadata(path: Path) -> Message:
    """A METADATA or WHEEL file's headers, every value a str.

    Core metadata is UTF-8. Parsed from bytes, compat32 turns any non-ASCII value (pandas'
    License is its whole license text, names with accents included) into a Header object;
    decoded first (an invalid byte replaced), every value stays a str.
    """
    import email.message  # only when an SBOM is made (a rebuild reads the cached one)
    import email.parser
    import email.policy

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


def _licenses(meta: Message) -> list[dict[str, Any]]:
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




def cached_sbom(env: StagedEnv, ws, components: tuple[dict[str, Any], ...]) -> bytes:
    """The image's SBOM, kept under the hash of what decides it: an unchanged rebuild only
    reads it (making it reads every dist-info and the lock again)."""
    key = cache.key_of("sbom", _code(), [t.key for t in env.tiers], env.interpreter.key,
                       env.plan.env_path, env.plan.python_path, env.plan.mode,
                       os.environ.get("SOURCE_DATE_EPOCH"),
                       json.dumps(components, sort_keys=True, default=str))
    kept = cache.read_record("sboms", key)
    if isinstance(kept, str):
        return kept.encode()
    data = sbom_for(env, ws=ws, runtime_components=components)
    cache.write_record("sboms", key, data.decode())
    return data
