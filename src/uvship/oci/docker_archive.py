"""The docker-archive tar that `docker load` / `podman load` read and `save` writes."""

from __future__ import annotations

import gzip
import os
import posixpath
import re
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._fs import STDOUT, output_file
from ..errors import InputError
from ..layers import Entry, normalize, write_tar
from ._blobs import diff_id_of, layer_file, load_json, sniff_compression, store_stream
from .image import Image, Layer
from .types import MEDIA_TYPE_OF_COMPRESSION, canonical_json, check_digest, sha256_digest

MANIFEST = "manifest.json"
_SUFFIX = {"gzip": ".tar.gz", "zstd": ".tar.zst", "none": ".tar"}
# A docker reference NAME:TAG (registry host optional; repository path lower case).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_REPO_TAG = re.compile(_DOMAIN + _PATH + r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _corrupt_errors() -> tuple[type[BaseException], ...]:
    """What a truncated or corrupt tar, gzip or zstd stream raises."""
    import zstandard
    from isal import igzip, isal_zlib

    return (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, igzip.BadGzipFile,
            isal_zlib.error, zstandard.ZstdError)


def repo_tag(ref: str) -> str:
    """``name[:tag]`` as the NAME:TAG a docker-archive lists (``:latest`` when untagged)."""
    last = ref.rsplit("/", 1)[-1]
    full = ref if ":" in last else ref + ":latest"
    if "@" in ref or not _REPO_TAG.fullmatch(full):
        raise InputError(f"image name {ref!r}: expected [REGISTRY/]REPOSITORY[:TAG] with a "
                         "lower-case repository, e.g. 'localhost/app:1.0'")
    return full


def write_docker_archive(image: Image, path: str | os.PathLike[str],
                         tags: Sequence[str] = (), *, omit: set[str] = frozenset()) -> str:
    """Write ``image`` as a docker-archive tar at ``path``; return its image ID (config digest).

    Layer files are the layers' blobs as they are (gzip-compressed for uvship's layers):
    `docker load` and `podman load` detect the compression of each layer file. The archive
    is a deterministic tar, written beside ``path`` and renamed into place; a symlink is
    written through to its target; a FIFO, a character device or ``-`` (stdout) is
    streamed into (see ``_fs.output_file``); anything else that is not a file is refused.

    ``omit``: digests of layers the manifest lists but whose files the archive leaves out,
    for an engine that holds them already (Docker reads no file of a layer it has).
    """
    dest = Path(path)
    repo_tags = [repo_tag(t) for t in tags]
    config_digest = sha256_digest(image.config_bytes())
    config_name = config_digest.removeprefix("sha256:") + ".json"
    entries = [Entry(config_name, "file", data=image.config_bytes())]
    names: list[str] = []
    for layer in image.layers:
        name = layer.digest.removeprefix("sha256:") + _SUFFIX[layer.compression]
        names.append(name)
        if layer.digest in omit:
            continue
        if layer.data is not None:
            entries.append(Entry(name, "file", data=layer.data))
        else:
            entries.append(Entry(name, "file", source=layer_file(layer)))
    manifest = [{"Config": config_name, "RepoTags": repo_tags, "Layers": names}]
    entries.append(Entry(MANIFEST, "file", data=canonical_json(manifest)))
    if not os.path.lexists(dest) and dest != STDOUT:
        dest.parent.mkdir(parents=True, exist_ok=True)
    with output_file(dest, f"output {dest}", what="archive") as out:
        write_tar(normalize(entries), out, compression="none")
    return config_digest


def read_docker_archive(path: str | os.PathLike[str], tag: str | None = None,
                        *, blob_dir: str | os.PathLike[str]) -> Image:
    """The image tagged ``tag`` (or the only one) in the docker-archive at ``path``.

    Layer files (plain tars or gzip/zstd) are stored content-addressed in ``blob_dir`` (the
    caller's store: uvship passes its cache's) so that the layers point to files; a plain
    tar stays a plain tar (media type ...layer.v1.tar, digest == diff_id).
    """
    src = Path(path)
    if not src.is_file():
        what = "is a directory" if src.is_dir() else "does not exist"
        raise InputError(f"docker-archive {src}: {what}; expected a tar file "
                         "(from `docker save` or `podman save`)")
    blobs = Path(blob_dir)
    with src.open("rb") as f:
        compression = sniff_compression(f.read(4))
    if compression == "zstd":
        raise InputError(f"docker-archive {src}: expected a tar (or gzip-compressed tar), "
                         "found a zstd-compressed file", hint="decompress it first (zstd -d)")
    try:
        # an explicit mode: "r:*" would report one failure per codec it tried
        with tarfile.open(src, "r:gz" if compression == "gzip" else "r:") as tar:
            if compression == "none":
                _check_complete(src, tar)
            return _read(src, tar, tag, blobs)
    except _corrupt_errors() as exc:
        raise InputError(f"docker-archive {src}: expected a complete tar archive, found a "
                         f"corrupt or truncated one ({exc or type(exc).__name__})",
                         hint="save the image again") from exc


def _read(src: Path, tar: tarfile.TarFile, tag: str | None, blobs: Path) -> Image:
    members = {posixpath.normpath(m.name): m for m in tar.getmembers()}
    if MANIFEST not in members:
        raise InputError(f"docker-archive {src}: expected a {MANIFEST} in the archive, "
                         "found none", hint="is this an image saved as docker-archive?")
    manifest = load_json(_member_bytes(tar, members, MANIFEST, src),
                         f"docker-archive {src}: {MANIFEST}")
    if not isinstance(manifest, list) or not manifest or not all(
            isinstance(e, dict) for e in manifest):
        raise InputError(f"docker-archive {src}: {MANIFEST}: expected a non-empty list of "
                         "images")
    entry = _choose(src, manifest, tag)
    config_bytes = _member_bytes(tar, members, str(entry.get("Config")), src)
    config = load_json(config_bytes, f"docker-archive {src}: config {entry.get('Config')}")
    if not isinstance(config, dict):
        raise InputError(f"docker-archive {src}: config: expected a JSON object")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    names = entry.get("Layers") or []
    if len(names) != len(diff_ids):
        raise InputError(f"docker-archive {src}: expected as many layer files as the config's "
                         f"rootfs.diff_ids ({len(diff_ids)}), found {len(names)}")
    layers = []
    for name, diff_id in zip(names, diff_ids, strict=True):
        check_digest(diff_id, f"docker-archive {src}: config rootfs.diff_ids")
        member = _member(members, str(name), src)
        f = tar.extractfile(member)
        if f is None:
            raise InputError(f"docker-archive {src}: layer {name}: expected a file")
        with f:
            blob, digest, size, compression = store_stream(f, blobs)
        found = digest if compression == "none" else diff_id_of(blob, compression)
        if found != diff_id:
            raise InputError(f"docker-archive {src}: layer {name}: expected content with "
                             f"diff_id {diff_id} (from the config), found {found}",
                             hint="the archive is corrupt; save the image again")
        layers.append(Layer(digest, diff_id, size, MEDIA_TYPE_OF_COMPRESSION[compression],
                            path=blob))
    return Image(config, tuple(layers), raw_config=config_bytes)


def _choose(src: Path, manifest: list[dict[str, Any]], tag: str | None) -> dict[str, Any]:
    if tag is None:
        if len(manifest) == 1:
            return manifest[0]
        tags = [t for e in manifest for t in e.get("RepoTags") or []]
        raise InputError(f"docker-archive {src}: holds {len(manifest)} images; expected a "
                         f"tag to choose one; found tags: {', '.join(tags) or 'none'}")
    want = repo_tag(tag)
    for e in manifest:
        # podman saves "localhost/x:1" while a user may ask for "x:1"
        if any(t == want or t.endswith("/" + want) for t in e.get("RepoTags") or []):
            return e
    tags = [t for e in manifest for t in e.get("RepoTags") or []]
    raise InputError(f"docker-archive {src}: no image tagged {tag!r}; "
                     f"found tags: {', '.join(tags) or 'none'}")


def _member(members: dict[str, tarfile.TarInfo], name: str, src: Path) -> tarfile.TarInfo:
    m = members.get(posixpath.normpath(name))
    if m is None:
        raise InputError(f"docker-archive {src}: {MANIFEST} names {name!r}, but the archive "
                         "holds no such file", hint="the archive may be truncated")
    return m


def _member_bytes(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str,
                  src: Path) -> bytes:
    f = tar.extractfile(_member(members, name, src))
    if f is None:
        raise InputError(f"docker-archive {src}: {name}: expected a file")
    with f:
        return f.read()


def _check_complete(src: Path, tar: tarfile.TarFile) -> None:
    """Raise if an uncompressed archive lacks the two zero blocks that end every tar.

    tarfile stops listing quietly at a cut-off header, so without this a truncated
    archive would read as a shorter, valid-looking one. (In a gzip-compressed archive the
    decompressor finds truncation.)
    """
    tar.getmembers()  # reads every header; tar.offset is then where the end marker must be
    end = tar.offset
    with src.open("rb") as f:
        f.seek(end)
        marker = f.read(1024)
    if len(marker) < 1024 or marker.strip(b"\0"):
        raise InputError(f"docker-archive {src}: expected a complete tar archive, found one "
                         f"cut off after {end} bytes", hint="save the image again")
