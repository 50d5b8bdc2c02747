"""Helpers shared by the readers and writers: JSON loading, blob hashing, files put in place."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..errors import InputError
from .image import Layer

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: expected JSON, found invalid data ({exc})") from exc


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 digest and size of the file at ``path``."""
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return "sha256:" + sha.hexdigest(), size


def sniff_compression(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def open_decompressed(path: Path, compression: str) -> BinaryIO:
    """A reader of the uncompressed bytes of the blob at ``path``."""
    if compression == "gzip":
        from isal import igzip

        return igzip.open(path, "rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
    return path.open("rb")


def diff_id_of(path: Path, compression: str) -> str:
    """The digest of the uncompressed tar stored (maybe compressed) at ``path``."""
    sha = hashlib.sha256()
    with open_decompressed(path, compression) as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def layer_file(layer: Layer) -> Path:
    """The file holding ``layer``'s blob, checked to exist and to have the layer's size."""
    assert layer.path is not None
    try:
        size = layer.path.stat().st_size
    except OSError as exc:
        raise InputError(f"layer {layer.digest}: its blob {layer.path} is missing") from exc
    if size != layer.size:
        raise InputError(f"layer {layer.digest}: expected its blob {layer.path} to hold "
                         f"{layer.size} bytes, found {size}",
                         hint="the file changed after the layer was made; rebuild it")
    return layer.path


def place_blob(layer: Layer, dest: Path) -> None:
    """Put a copy of ``layer``'s blob at ``dest``.

    Never a hard link: the blob is the cache's, and a user who changes an output in place
    would change it for every later build. The kernel copies (copy_file_range/sendfile),
    and an output writer copies only the blobs its destination lacks.
    """
    if layer.data is not None:
        dest.write_bytes(layer.data)
        return
    shutil.copyfile(layer_file(layer), dest)


def store_stream(src: BinaryIO, blob_dir: Path) -> tuple[Path, str, int, str]:
    """Copy ``src`` into ``blob_dir/<hex>``, content-addressed; return (path, digest, size,
    compression sniffed from its first bytes).

    Written to a temporary file then renamed, so a concurrent reader never sees a partial
    blob and two writers of the same blob both end with the same file.
    """
    blob_dir.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    size = 0
    head = b""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=blob_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                if len(head) < 4:
                    head += chunk[:4]
                sha.update(chunk)
                size += len(chunk)
                out.write(chunk)
        digest = "sha256:" + sha.hexdigest()
        final = blob_dir / digest.removeprefix("sha256:")
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would follow the blob into hardlinked layouts
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final, digest, size, sniff_compression(head)


class BlobStore(Protocol):
    """Where pulled blobs go, as the caller keeps them (uvship: its cache). oci/ and
    registry/ are given one; they never decide where bytes live."""

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` is (or will be) kept."""

    def ok(self, path: Path, digest: str, size: int) -> bool:
        """Whether the kept blob at ``path`` still holds ``digest``."""

    def checked(self, path: Path, digest: str) -> None:
        """Hear that the blob at ``path`` was just verified to hold ``digest``."""
