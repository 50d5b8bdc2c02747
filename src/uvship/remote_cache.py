"""The layer cache kept in a registry (--cache-repo): tiers shared by every machine that builds.

Each tier is stored as a small OCI artifact tagged `uvship-tier-<input hash>`: its layer
blob plus a JSON record of what the tier holds. A machine whose local cache lacks a tier
fetches it, lays the layer out as a staged environment again and never runs uv for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from . import cache, oci
from .cache import cached_dir
from .errors import UvshipError
from .oci._blobs import open_decompressed
from .project.plan import Plan
from .python.interpreter import Interpreter
from .stage.venv import Tier, load_tier

RECORD_TYPE = "application/vnd.uvship.tier.v1+json"
ARTIFACT_TYPE = "application/vnd.uvship.cache.v1"
TAG_PREFIX = "uvship-tier-"


class RemoteCache:
    """Tiers in a registry repository, keyed by their input hashes."""

    def __init__(self, ref: str, insecure: tuple[str, ...] = ()) -> None:
        from .registry import Reference

        self.ref = Reference.parse(ref)
        self.insecure = insecure
        self.fetched: list[str] = []
        self.stored: list[str] = []

    def _client(self):
        from .registry import Registry

        return Registry(self.ref.registry, insecure=self.insecure)

    def _tag(self, key: str):
        return self.ref.context(tag=TAG_PREFIX + key)

    # ------------------------------------------------------------------ fetch
    def fetch(self, name: str, key: str, plan: Plan, interp: Interpreter,
              prev: Tier | None) -> Tier | None:
        """The tier from the registry, restored into the local cache; None when absent."""
        with self._client() as reg:
            if reg.head_manifest(self._tag(key)) is None:
                return None
            data, _, _ = reg.get_manifest(self._tag(key))
            manifest = json.loads(data)
            config, layer_desc = manifest["config"], manifest["layers"][0]
            record_path = reg.get_blob(self.ref, config["digest"],
                                       cache.blob_path(config["digest"]), size=config["size"])
            layer_path = reg.get_blob(self.ref, layer_desc["digest"],
                                      cache.blob_path(layer_desc["digest"]),
                                      size=layer_desc["size"])
        record = json.loads(record_path.read_text())

        def build(out: Path) -> None:
            env = out / "env"
            if plan.mode == "system" and prev is None:
                shutil.copytree(interp.root, env, symlinks=True)
            elif prev is not None:
                shutil.copytree(prev.root, env, symlinks=True, copy_function=os.link)
            else:
                env.mkdir()
            media = layer_desc["mediaType"]
            _extract(layer_path, oci.types.LAYER_COMPRESSION.get(media, "gzip"), env,
                     plan.env_path.strip("/") + "/")
            if plan.mode == "venv" and prev is None:
                _point_at_host_interpreter(env, interp)
            (out / "tier.json").write_text(json.dumps(record["tier"], sort_keys=True))

        cached_dir("tiers", key, build)
        self.fetched.append(name)
        tier = load_tier(name, key)
        if tier is None:  # pragma: no cover - cached_dir guarantees it
            raise UvshipError(f"cache repo {self.ref}: tier {key[:12]} could not be restored")
        _remember_layer(key, record["layer"], layer_path)
        return tier

    # ------------------------------------------------------------------ store
    def store(self, tier: Tier, built: Any) -> None:
        """Upload a tier's layer and record unless the registry has them already."""
        from .oci.types import OCI_MANIFEST, canonical_json, sha256_digest

        meta = json.loads((tier.root.parent / "tier.json").read_text())
        layer = built.layer
        record = canonical_json({"tier": meta, "layer": {
            "digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size,
            "media_type": layer.media_type, "role": built.role, "created_by": built.created_by,
            "contents": built.contents, "inputs": built.inputs}})
        manifest = canonical_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": RECORD_TYPE, "digest": sha256_digest(record),
                       "size": len(record)},
            "layers": [{"mediaType": layer.media_type, "digest": layer.digest,
                        "size": layer.size}],
        })
        with self._client() as reg:
            if reg.head_manifest(self._tag(tier.key)) is not None:
                return
            reg.push_blob(self.ref, layer)
            reg.push_blob(self.ref, record)
            reg.put_manifest(self._tag(tier.key), manifest, OCI_MANIFEST)
        self.stored.append(tier.name)


def _extract(blob: Path, compression: str, dest: Path, prefix: str) -> None:
    """The layer's files under ``prefix`` (the environment's final path) into ``dest``."""
    with open_decompressed(blob, compression) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            name = m.name.rstrip("/")
            if not name.startswith(prefix):
                continue
            rel = name[len(prefix):]
            target = dest / rel
            if ".." in Path(rel).parts:
                raise UvshipError(f"{blob}: layer member {m.name!r} leaves its directory")
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.exists():
                    target.unlink()
                os.symlink(m.linkname, target)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    target.unlink()  # a hard link into another tier: never write through it
                src = tar.extractfile(m)
                assert src is not None
                with target.open("wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(target, m.mode & 0o777)


def _point_at_host_interpreter(env: Path, interp: Interpreter) -> None:
    """Undo the final-path layout of pyvenv.cfg and bin/python, for uv on this host."""
    cfg = env / "pyvenv.cfg"
    lines = [f"home = {interp.exe.parent}" if ln.split("=", 1)[0].strip() == "home" else ln
             for ln in cfg.read_text().splitlines()]
    cfg.write_text("\n".join(lines) + "\n")
    link = env / "bin" / "python"
    link.unlink()
    os.symlink(interp.exe, link)


def _remember_layer(key: str, layer: dict[str, Any], blob: Path) -> None:
    """Record the fetched layer locally, so the build reuses the blob instead of re-making it."""
    from .image.assemble import tier_layer_key

    cache.write_record("layers", tier_layer_key(key, layer["media_type"]), layer)
