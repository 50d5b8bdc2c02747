"""Local container engines as outputs: the Docker Engine (its API on a unix socket) and
podman's image storage, given an image by name and sent only the layers they lack.

`-o docker-daemon:NAME[:TAG]` loads into Docker: `POST /images/load` of a docker-archive
whose manifest lists every layer but which carries only the files of layers the engine
does not hold (Docker skips reading a layer whose chain it has); the layers it holds are
found from images it has under the same name, or that uvship loaded into it before.
`-o containers-storage:NAME[:TAG]` copies into podman's storage with skopeo from a
temporary OCI layout, and skopeo reuses every layer the storage has. An engine that
already has the image under the name is sent nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cache, oci
from ..cache import tempdir
from ..errors import CommandError, InputError, Option
from ..image.image import Image
from ..targets import Target

KINDS = ("docker-daemon", "containers-storage")
_RECORDS = 20  # images remembered per Docker Engine, as candidates for layer reuse


@dataclass(frozen=True)
class EngineOutput:
    """An image name in a local engine (``docker-daemon:app:1``)."""

    kind: str  # docker-daemon | containers-storage
    name: str  # NAME:TAG, as the engine will list it
    stream = False
    is_stdout = False

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def check(self, tags: list[str] | tuple[str, ...] = ()) -> None:
        """Fail before any work when the engine cannot be reached (tags: ignored, the
        name is the output's own)."""
        if self.kind == "docker-daemon":
            sock = docker_socket()
            if not os.path.exists(sock):
                raise InputError.of(Option("output", str(self)),
                                    f"no Docker Engine at {sock} (expected its socket)",
                                    hint="start Docker (or set DOCKER_HOST=unix:///PATH), or write "
                                    "docker-archive:- and pipe it into `docker load`")
        elif shutil.which("skopeo") is None:
            raise InputError.of(Option("output", str(self)),
                                "skopeo is not installed (uvship copies into "
                                "podman's storage with it, sending only the layers it lacks)",
                                hint="install skopeo (Debian: apt-get install skopeo), or write "
                                "docker-archive:- and pipe it into `podman load`")

    def write(self, image: Image, tags: list[str] | tuple[str, ...] = (),
              note: Callable[[str], None] | None = None) -> bool:
        """Put ``image`` into the engine under this name; False when it was there already.
        ``note`` hears what was sent and what the engine had."""
        from .history import remember

        note = note or (lambda _: None)
        if not isinstance(image, Image):
            raise InputError(f"output {self}: an engine holds one platform's image; expected "
                             "an OCI layout or a registry for an image index")
        remember(image.digest, image.layer_info, str(self))
        if self.kind == "docker-daemon":
            return _to_docker(image, self.name, str(self), note)
        return _to_storage(image, self.name, str(self), note)


def parse(target: Target) -> EngineOutput:
    """``docker-daemon:NAME[:TAG]`` or ``containers-storage:NAME[:TAG]`` (the names skopeo
    gives these places); a short name is local (``localhost/NAME`` in podman's storage, as
    `podman build -t NAME` names it)."""
    kind = target.kind
    try:
        full = oci.repo_tag(target.name)
    except InputError as exc:
        raise InputError.of(Option("output", target.spec),
                            f"expected {kind}:NAME[:TAG] with a lower-case name, e.g. "
                            f"{kind}:app:1.0") from exc
    if kind == "containers-storage":
        first = full.split("/", 1)[0]
        if "/" not in full or not ("." in first or ":" in first or first == "localhost"):
            full = f"localhost/{full}"
    return EngineOutput(kind, full)


# ---------------------------------------------------------------------- Docker Engine
def docker_socket() -> str:
    """The Docker Engine's unix socket: DOCKER_HOST (unix://PATH), else the standard one."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        raise InputError(f"DOCKER_HOST={host}: expected unix:///PATH (uvship loads images "
                         "into a local Docker Engine through its socket)")
    return host.removeprefix("unix://")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Docker:
    """The few calls of the Docker Engine API uvship makes (stdlib http.client: a no-change
    rebuild asks one question and must not pay for importing an HTTP library)."""

    def __init__(self, what: str) -> None:
        self.sock = docker_socket()
        self.what = what

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, bytes]:
        conn = _UnixConnection(self.sock, timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read()
        except OSError as exc:
            raise InputError(f"{self.what}: the Docker Engine at {self.sock} did not answer "
                             f"{method} {path} ({exc.strerror or exc})",
                             hint="is it running? `docker info` says") from exc
        finally:
            conn.close()

    def image(self, ref: str) -> dict[str, Any] | None:
        """`docker image inspect REF`, or None when the engine has no such image."""
        status, data = self.request("GET", f"/images/{ref}/json")
        if status == 404:
            return None
        if status != 200:
            raise InputError(f"{self.what}: GET /images/{ref}/json answered {status}: "
                             f"{_message(data)}")
        return json.loads(data)

    def engine_id(self) -> str:
        status, data = self.request("GET", "/info")
        return json.loads(data).get("ID", "") if status == 200 else ""

    def load(self, archive: Path) -> None:
        """`docker load` of the archive; an error the engine reports is raised."""
        size = archive.stat().st_size
        with archive.open("rb") as f:
            status, data = self.request(
                "POST", "/images/load?quiet=1", body=f, timeout=600,
                headers={"Content-Type": "application/x-tar", "Content-Length": str(size)})
        errors = [m for m in _json_lines(data) if m.get("error")]
        if status != 200 or errors:
            why = errors[0]["error"] if errors else _message(data)
            raise _LoadError(f"{self.what}: the Docker Engine refused the image ({why})")


class _LoadError(InputError):
    pass


def _json_lines(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            if isinstance(doc := json.loads(line), dict):
                out.append(doc)
    return out


def _message(data: bytes) -> str:
    with contextlib.suppress(ValueError):
        return str(json.loads(data).get("message", data[:200]))
    return data[:200].decode(errors="replace")


def _to_docker(image: Image, name: str, what: str, note: Callable[[str], None]) -> bool:
    docker = Docker(what)
    config_digest = image.oci.config_digest
    current = docker.image(name)
    if current is not None and current.get("Id") == config_digest:
        return False  # already there under this name: nothing to send
    record = docker.engine_id() or "engine"
    seen = cache.read_record("docker-loaded", record) or []
    diff_ids = list(image.oci.config_dict().get("rootfs", {}).get("diff_ids", []))
    held = 0  # how many of the image's first layers the engine holds, as one chain
    for ref in dict.fromkeys([name, *seen]):
        found = current if ref == name else docker.image(ref)
        layers = (found or {}).get("RootFS", {}).get("Layers", [])
        n = 0
        while n < min(len(layers), len(diff_ids)) and layers[n] == diff_ids[n]:
            n += 1
        held = max(held, n)
    omit = {layer.digest for layer in image.oci.layers[:held]}
    sent = [layer for layer in image.oci.layers if layer.digest not in omit]
    work = tempdir("docker-load")
    try:
        archive = work / "image.tar"
        oci.write_docker_archive(image.oci, archive, tags=[name], omit=omit)
        try:
            docker.load(archive)
        except _LoadError:
            if not omit:
                raise
            # the engine dropped a layer since it was seen: send them all
            oci.write_docker_archive(image.oci, archive, tags=[name])
            docker.load(archive)
            sent = list(image.oci.layers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loaded = docker.image(name)
    if loaded is None or loaded.get("Id") != config_digest:
        raise InputError(f"{what}: the Docker Engine loaded the archive, but {name} is not "
                         f"the image {config_digest}")
    cache.write_record("docker-loaded", record,
                       [config_digest, *[s for s in seen if s != config_digest]][:_RECORDS])
    note(_sent(what, sent, image.oci.layers))
    return True


def _sent(what: str, sent: list, layers) -> str:
    size = sum(layer.size for layer in sent)
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
    return (f"{what}: sent {len(sent)} of {len(layers)} layers ({shown}); the engine had "
            f"the other {len(layers) - len(sent)}")


# ---------------------------------------------------------------------- podman's storage
def _storage_images() -> Path | None:
    """images.json of podman's storage (containers-storage.conf's graphroot and driver)."""
    conf: dict[str, Any] = {}
    for p in (Path(os.environ.get("CONTAINERS_STORAGE_CONF", "")),
              Path("/etc/containers/storage.conf"), Path("/usr/share/containers/storage.conf")):
        if p.is_file():
            with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
                conf = tomllib.loads(p.read_text()).get("storage", {})
                break
    root = conf.get("graphroot") or "/var/lib/containers/storage"
    driver = conf.get("driver") or "overlay"
    path = Path(root) / f"{driver}-images" / "images.json"
    return path if os.geteuid() == 0 and path.is_file() else None


def _storage_layers() -> set[str]:
    """The uncompressed digests of the layers podman's storage holds (its layers.json)."""
    images = _storage_images()
    if images is None:
        return set()
    path = images.parent.parent / images.parent.name.replace("-images", "-layers") / \
        "layers.json"
    try:
        return {e.get("diff-digest") for e in json.loads(path.read_text())} - {None}
    except (OSError, ValueError):
        return set()


def _in_storage(name: str, config_digest: str) -> bool:
    """Whether podman's storage has the image under ``name`` (read as podman reads it)."""
    path = _storage_images()
    if path is None:
        return False
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    hexdigest = config_digest.removeprefix("sha256:")
    return any(e.get("id") == hexdigest and name in (e.get("names") or []) for e in entries)


def _to_storage(image: Image, name: str, what: str, note: Callable[[str], None]) -> bool:
    if _in_storage(name, image.oci.config_digest):
        return False
    had = _storage_layers()
    sent = [layer for layer in image.oci.layers if layer.diff_id not in had]
    from .. import _proc

    work = tempdir("storage-copy")
    try:
        # a layout for skopeo to read: blobs linked from the cache (skopeo only reads them,
        # and the layout is gone when it is done), so nothing is copied that storage has
        oci.write_layout(image.oci, work / "layout", tags=["latest"], link_blobs=True)
        try:
            _proc.run(["skopeo", "copy", "--quiet", f"oci:{work / 'layout'}:latest",
                       f"containers-storage:{name}"], what=f"{what}: skopeo copy")
        except CommandError as exc:
            raise InputError(exc.message, hint="podman's storage is written as root here; "
                             "see `podman info` for where it lives") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    note(_sent(what, sent, image.oci.layers))
    return True
