"""What an image holds, layer by layer, and why each layer changed since the last build."""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import Any

from . import oci, targets
from .cache import blob_dir
from .errors import InputError
from .oci._blobs import open_decompressed
from .publish.history import recorded


def open_image(ref: str, insecure: tuple[str, ...] = (),
               platform: str | None = None) -> oci.Image:
    """`oci:DIR[:TAG]`, `docker-archive:FILE`, or a path (a directory is an OCI layout);
    of an index, the image for ``platform``."""
    t = targets.parse(ref, paths=True)
    layout = _layout_of(t)
    if layout is not None:
        # every layer's digest checked: what `inspect` says must be what the layout holds
        return oci.read_layout(layout[0], layout[1], platform)
    if t.kind in ("docker-archive", "path") and t.path is not None:
        return oci.read_docker_archive(t.path, blob_dir=blob_dir())
    if t.kind == "registry":
        from .image.image import Image

        return Image.from_registry(ref, platform or "linux/amd64", insecure=insecure).oci
    raise InputError(f"{ref}: no such image (expected oci:DIR[:TAG], docker-archive:FILE, "
                     "a registry reference, or the path of a layout or archive)")


def _layout_of(t: targets.Target) -> tuple[Path, str | None] | None:
    """An OCI layout's directory and tag: oci:DIR[:TAG], or a directory named as it is."""
    if t.kind == "oci" and t.path is not None:
        return t.path, t.tag
    return (t.path, None) if t.kind == "path" and t.path and t.path.is_dir() else None


def platforms_of(ref: str, insecure: tuple[str, ...] = ()) -> list[str]:
    """The platforms of a multi-platform image (an index); empty for a single image."""
    t = targets.parse(ref, paths=True)
    layout = _layout_of(t)
    if layout is not None:
        found = oci.layout_platforms(*layout)
    elif t.kind != "registry":
        return []  # one image (an archive), or nothing open_image could read
    else:
        from .registry import Reference, Registry

        r = Reference.parse(ref)
        with Registry(r.registry, insecure=insecure) as reg:
            found = reg.index_platforms(r)
    names = list(dict.fromkeys(str(p) for p in found))
    return names if len(names) > 1 else []





def _layer_holds(layer: oci.Layer, top: int = 6) -> dict[str, int]:
    from .image.assemble import layer_contents

    entries = []
    with open_decompressed(layer.path, layer.compression) as f, \
            tarfile.open(fileobj=f, mode="r|") as tar:
        # a base made by `docker build` or umoci names its members ./usr/...: the same
        # path as usr/... (uvship's own), shown as /usr/...
        entries = [_SizedEntry(posixpath.normpath(m.name).lstrip("/"), m.size)
                   for m in tar if m.isfile()]
    return layer_contents(entries, top)  # type: ignore[arg-type]


class _SizedEntry:
    """An archive member seen only by name and size."""

    kind = "file"

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self._size = size

    def size(self) -> int:
        return self._size


def inspect(ref: str, insecure: tuple[str, ...] = (), platform: str | None = None
            ) -> dict[str, Any]:
    """Each layer: size, role, what made it, what it holds, and what changed since the
    build that last wrote the same output (as this machine's uvship cache remembers).

    Of a multi-platform image with no ``platform`` chosen: every platform's image, under
    "images".
    """
    if platform is None and (platforms := platforms_of(ref, insecure)):
        return {"reference": ref, "platforms": platforms,
                "images": [inspect(ref, insecure, p) for p in platforms]}
    img = open_image(ref, insecure, platform)
    rec = recorded(img.digest)
    prev = recorded(rec.get("previous")) if rec else None
    info = {x["digest"]: x for x in (rec or {}).get("layers", [])}
    prev_by_slot = {_slot(x): x for x in (prev or {}).get("layers", [])}
    history = [h for h in img.config_dict().get("history", []) if not h.get("empty_layer")]
    layers_out = []
    for n, layer in enumerate(img.layers):
        li = info.get(layer.digest)
        created_by = li["created_by"] if li else (
            history[n].get("created_by", "") if n < len(history) else "")
        holds = li["contents"] if li and li.get("contents") else _layer_holds(layer)
        entry: dict[str, Any] = {
            "digest": layer.digest, "size": layer.size, "media_type": layer.media_type,
            "role": li["role"] if li else _role_of(created_by), "created_by": created_by,
            "holds": holds,
        }
        if rec is None:
            entry["changed"] = None
        elif li is None:
            entry["changed"] = "base layer"
        elif prev is None:
            entry["changed"] = "first build of this output"
        else:
            entry["changed"] = _why(li, prev_by_slot.get(_slot(li)))
        layers_out.append(entry)
    cfg = img.config_dict()
    return {
        "reference": ref, "digest": img.digest,
        "platform": f"{cfg.get('os')}/{cfg.get('architecture')}",
        "size": sum(x.size for x in img.layers),
        "config": cfg.get("config", {}),
        "previous": rec.get("previous") if rec else None,
        "layers": layers_out,
    }


def _slot(layer: dict[str, Any]) -> tuple[str, str | None]:
    """Which layer of the previous build a layer is compared with: the same role, and of
    the third-party layers, the same group (a large distribution, or a bucket)."""
    return layer["role"], layer.get("inputs", {}).get("group")


def _why(now: dict[str, Any], before: dict[str, Any] | None) -> str:
    if before is None:
        added = now.get("inputs", {}).get("packages", {})
        return "new layer" + (f": added {', '.join(f'{k} {v}' for k, v in added.items())}"
                              if added and now.get("inputs", {}).get("group") else "")
    if before["digest"] == now["digest"]:
        return "unchanged"
    a, b = before.get("inputs", {}), now.get("inputs", {})
    reasons = []
    pa, pb = a.get("packages", {}), b.get("packages", {})
    for name in sorted(set(pa) | set(pb)):
        if name not in pa:
            reasons.append(f"added {name} {pb[name]}")
        elif name not in pb:
            reasons.append(f"removed {name} {pa[name]}")
        elif pa[name] != pb[name]:
            reasons.append(f"{name} {pa[name]} -> {pb[name]}")
    sa, sb = a.get("sources", {}), b.get("sources", {})
    changed = sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
    for k in changed[:10]:
        what = "added" if k not in sa else "removed" if k not in sb else "changed"
        reasons.append(f"{k.split(':', 1)[-1]} {what}")
    if len(changed) > 10:
        reasons.append(f"... and {len(changed) - 10} more files")
    for k in ("version", "source", "components"):
        if a.get(k) != b.get(k) and (k in a or k in b):
            reasons.append(f"{k}: {a.get(k)} -> {b.get(k)}")
    return "; ".join(reasons) or "inputs changed (uvship or uv version, options)"


def _role_of(created_by: str) -> str:
    """A uvship layer names its role in its history ("uvship: dependencies: ..."), so an
    image built elsewhere still shows them; any other layer came with the base."""
    if created_by.startswith("uvship: "):
        word = created_by[len("uvship: "):].split(":", 1)[0].split(" ", 1)[0]
        if word in ("runtime", "dependencies", "local", "project", "files"):
            return word
        if word == "CPython":
            return "interpreter"
    return "base"
