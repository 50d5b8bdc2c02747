"""The local cache, the one store every part of uvship keeps things in: content-addressed
blobs, small JSON records by kind and key, directories built once (tiers, interpreters,
project files), and temporaries. Nothing outside this module spells out its layout
(`_paths` is its string form, for the no-change path, which must not import pathlib)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ._paths import cache_dir, identity, record_file

if TYPE_CHECKING:  # the no-change path reads records: imports here cost it time
    from collections.abc import Callable
    from typing import Any


def cache_root() -> Path:
    """$UVSHIP_CACHE_DIR, else $XDG_CACHE_HOME/uvship, else ~/.cache/uvship."""
    return Path(cache_dir())


# ---------------------------------------------------------------------- records
def record_path(kind: str, key: str) -> Path:
    """Where the record ``key`` of ``kind`` lives (``kind/key.json``)."""
    return Path(record_file(kind, key))


def read_record(kind: str, key: str) -> Any:
    """The record ``key`` of ``kind``, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(record_path(kind, key).read_text())
    except (OSError, ValueError):
        return None


def write_record(kind: str, key: str, value: Any) -> Path:
    """Keep ``value`` (JSON) as record ``key`` of ``kind``: written beside its place and
    renamed, so a reader sees the old record or the new one, never half of one."""
    path = record_path(kind, key)
    write_atomically(path, json.dumps(value, sort_keys=True).encode())
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path``, written beside it and renamed (the one way records are kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def remove_kind(kind: str) -> None:
    """Forget every entry of ``kind`` (records, or built directories such as tiers)."""
    import shutil

    shutil.rmtree(cache_root() / kind, ignore_errors=True)


# Kinds whose entries depend only on an interpreter and this host, never on a project:
# what a "base kept" cold build keeps (the analogue of the base image an engine keeps).
# Layer records are kept only for those roles; blobs all (unreferenced ones cost nothing).
HOST_KINDS = ("python", "python-choices", "python-probes", "python-versions", "base-facts",
              "uv-versions", "blobs", "layers")
HOST_LAYER_ROLES = ("interpreter", "runtime")


def prune(keep: tuple[str, ...] = (), *, root: Path | None = None,
          keep_record: Callable[[str, Any], bool] | None = None) -> None:
    """Empty the cache (``root``, default this process's) but for the kinds ``keep``;
    of their records, those ``keep_record(kind, record)`` refuses are removed too."""
    root = root or cache_root()
    if not root.is_dir():
        return
    for d in root.iterdir():
        if d.name not in keep:
            _remove([d])
        elif keep_record is not None and d.is_dir():
            for rec in d.glob("*.json"):
                try:
                    value = json.loads(rec.read_text())
                except (OSError, ValueError):
                    value = None
                if not keep_record(d.name, value):
                    rec.unlink(missing_ok=True)


def prune_to_host(root: Path | None = None) -> None:
    """Keep only what depends on the interpreter and the host (HOST_KINDS), nothing of
    any project: a cold build of a project on a machine that built another before."""
    prune(HOST_KINDS, root=root, keep_record=_not_a_project_layer)


def _not_a_project_layer(kind: str, rec: Any) -> bool:
    """A record that is not a layer, or the layer of an interpreter or a runtime."""
    return kind != "layers" or (isinstance(rec, dict) and rec.get("role") in HOST_LAYER_ROLES)


# Records decided by installed distributions alone (their bytecode and ELF facts, the
# layers of distribution groups), and what spares re-hashing the blobs kept anyway.
DISTRIBUTION_KINDS = ("dist-work", "blob-checks")


def prune_to_distributions(root: Path | None = None) -> None:
    """Like prune_to_host, but keep as well what depends only on distributions (no lock,
    no project source): the first build of a project on a machine that built the same
    distributions for another project, as uv's cache keeps their unpacked wheels."""
    def keep(kind: str, rec: Any) -> bool:
        if _not_a_project_layer(kind, rec):
            return True
        if not isinstance(rec, dict):
            return False
        group = (rec.get("inputs") or {}).get("group")
        return rec.get("role") == "dependencies" and group not in (None, "environment")

    prune((*HOST_KINDS, *DISTRIBUTION_KINDS), root=root, keep_record=keep)


# ---------------------------------------------------------------------- blobs
def blob_dir() -> Path:
    """blobs/sha256: every layer and pulled blob, named by its digest (made if absent)."""
    d = cache_root() / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    return d


def blob_path(digest: str) -> Path:
    """Where the blob ``digest`` (sha256:HEX) is kept."""
    return cache_root() / "blobs" / "sha256" / digest.removeprefix("sha256:")


def key_of(*parts: Any) -> str:
    """A stable hash of JSON-able inputs: the cache key of whatever they produce."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def tempdir(kind: str) -> Path:
    """A fresh private directory inside the cache (same filesystem, so renames are atomic).

    Its name carries this process's id, so an interrupted process can find and remove
    what it left even when the interruption came between creating and using it; what a
    process that died left (kill -9) is removed by the next one that needs a temporary.
    """
    base = cache_root() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    clean_stale()
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=base))


def _temps(pid: int | None = None) -> list[Path]:
    """The cache's temporaries (of ``pid``, else of every process): tmp/KIND-PID-*
    directories and blobs/sha256/.layer-PID-* half-written layers."""
    root = cache_root()
    mark = f"-{pid}-" if pid is not None else "-"
    out = []
    for d, prefix in ((root / "tmp", ""), (root / "blobs" / "sha256", ".layer-")):
        try:
            with os.scandir(d) as it:
                out += [Path(e.path) for e in it if e.name.startswith(prefix)
                        and mark in e.name[len(prefix):]]
        except OSError:
            continue
    return out


def _owner(path: Path) -> int | None:
    """The process id in a temporary's name (``KIND-PID-x``, ``.layer-PID-x``)."""
    parts = path.name.removeprefix(".layer-").split("-")
    for part in parts[:3]:
        if part.isdigit():
            return int(part)
    return None




def _remove(paths: list[Path]) -> None:
    import shutil

    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


_cleaned = False


def clean_stale() -> None:
    """Remove, once per process, the temporaries of processes that are gone."""
    from ._fs import process_alive

    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    _remove([p for p in _temps() if (pid := _owner(p)) is not None and pid != os.getpid()
             and not process_alive(pid)])


def remove_own_temps() -> None:
    """Remove every temporary this process made in the cache (after Ctrl-C or a failure).

    Tried again while any is left: a child killed a moment ago may still have been
    writing into one when it was first removed."""
    import time

    for _ in range(40):  # up to 2 s on a loaded machine; at once when nothing is left
        left = _temps(os.getpid())
        if not left:
            return
        _remove(left)
        time.sleep(0.05)


def dir_path(kind: str, key: str) -> Path:
    """Where the directory cached under (kind, key) lives (it may not exist yet)."""
    return cache_root() / kind / key


def cached_dir(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The directory cached under (kind, key), built by ``build(tmpdir)`` on a miss.

    Safe when two builds race: each builds in its own temporary directory, the first
    rename wins and the loser discards its copy.
    """
    import shutil

    final = dir_path(kind, key)
    if (final / ".complete").is_file():
        return final
    work = tempdir(kind)
    try:
        out = work / "out"
        out.mkdir()
        build(out)
        (out / ".complete").write_text("")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(out, final)
        except OSError:
            if not (final / ".complete").is_file():
                # a stale incomplete entry (an interrupted build): replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


# ---------------------------------------------------------------------- blobs read back
def _check_record(digest: str) -> Path:
    return record_path("blob-checks", digest.replace(":", "-"))


def blob_checked(path: Path, digest: str) -> None:
    """Remember that the blob at ``path`` was just verified to hold ``digest``."""
    ident = identity(path)
    if ident is None:
        return
    write_record("blob-checks", digest.replace(":", "-"), ident)


def blob_ok(path: Path, digest: str, size: int) -> bool:
    """Whether the cache's blob at ``path`` still holds ``digest``.

    Trusted while the file is the one last verified (same inode, size, times); else hashed
    again, and a blob that no longer matches is removed, so the caller makes or fetches it
    anew instead of shipping a corrupt layer."""
    ident = identity(path)
    if ident is None or ident[1] != size:
        return False
    rec = _check_record(digest)
    try:
        if json.loads(rec.read_text()) == ident:
            return True
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if "sha256:" + h.hexdigest() != digest:
        path.unlink(missing_ok=True)
        return False
    blob_checked(path, digest)
    return True


class Blobs:
    """The cache's blobs as a BlobStore (oci._blobs): what a registry pull is given."""

    def path(self, digest: str) -> Path:
        return blob_path(digest)

    def ok(self, path: Path, digest: str, size: int) -> bool:
        return blob_ok(path, digest, size)

    def checked(self, path: Path, digest: str) -> None:
        blob_checked(path, digest)
