"""Pushing: blob uploads (check, mount, monolithic or chunked), manifests, then tags."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from ..errors import InputError
from ..oci._blobs import hash_file, layer_file
from ..oci.image import Image, ImageIndex, Layer
from ..oci.types import OCI_INDEX, sha256_digest
from .auth import repository_scope
from .errors import RegistryError, redact_url
from .reference import Reference
from .session import Session

Outcome = Literal["skipped", "mounted", "uploaded"]
_OCTETS = {"Content-Type": "application/octet-stream"}


@dataclass(frozen=True)
class _Blob:
    """A blob to upload, readable from any offset again (an upload may start over)."""

    digest: str
    size: int
    path: Path | None = None
    data: bytes | None = None

    def check(self) -> None:
        """Fail (not retryably) when a file blob is gone or changed: checked only when it
        must be uploaded, so a layer the registry has need not exist here."""
        if self.path is not None:
            layer_file(Layer(self.digest, self.digest, self.size, path=self.path))

    def read(self, offset: int, n: int) -> bytes:
        if self.data is not None:
            return self.data[offset:offset + n]
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(offset)
            return f.read(n)


def blob_source(blob: Layer | Path | bytes, digest: str | None = None,
                size: int | None = None) -> _Blob:
    if isinstance(blob, Layer):
        if blob.data is not None:
            return _Blob(blob.digest, blob.size, data=blob.data)
        return _Blob(blob.digest, blob.size, path=blob.path)
    if isinstance(blob, bytes):
        found = sha256_digest(blob)
        if digest is not None and digest != found:
            raise InputError(f"blob: expected digest {digest}, found {found}")
        return _Blob(found, len(blob), data=blob)
    path = Path(blob)
    if digest is None or size is None:
        digest, size = hash_file(path)
    return _Blob(digest, size, path=path)


def push_blob(reg: Session, repo: str, blob: Layer | Path | bytes, digest: str | None,
              size: int | None, *, mount_from: Sequence[str | Reference] = ()) -> Outcome:
    src = blob_source(blob, digest, size)
    sources = [s for s in dict.fromkeys(reg.repo_of(m) for m in mount_from) if s != repo]
    return _push(reg, repo, src, sources)


def _push(reg: Session, repo: str, src: _Blob, sources: Sequence[str]) -> Outcome:
    outcome = reg.retry.run(lambda: _push_once(reg, repo, src, sources))
    if outcome == "uploaded":
        reg.count(blobs_uploaded=1, bytes_uploaded=src.size)
    else:
        reg.count(**{f"blobs_{outcome}": 1})
    return outcome


def _push_once(reg: Session, repo: str, src: _Blob, sources: Sequence[str]) -> Outcome:
    """One try, from the start: a failed upload session is not resumed but replaced."""
    push = [repository_scope(repo, "pull", "push")]
    head = reg.send("HEAD", reg.url(f"/v2/{repo}/blobs/{src.digest}"), ok=(200, 404),
                    scopes=push, follow=True)
    if head.status_code == 200:
        return "skipped"
    start = reg.url(f"/v2/{repo}/blobs/uploads/")
    location: httpx.URL | None = None
    for i, source in enumerate(sources):
        r = reg.send("POST", httpx.URL(start, params={"mount": src.digest, "from": source}),
                     ok=(201, 202), scopes=[*push, repository_scope(source, "pull")])
        if r.status_code == 201:
            return "mounted"
        # 202: the registry could not mount and opened an ordinary upload instead
        location = _location(r)
        if i < len(sources) - 1:
            _cancel(reg, location, push)
            location = None
    src.check()
    if location is None:
        location = _location(reg.send("POST", start, ok=(202,), scopes=push))
    if src.size <= reg.chunk_size:
        r = reg.send("PUT", location.copy_merge_params({"digest": src.digest}), ok=(201,),
                     scopes=push, headers=_OCTETS, content=src.read(0, src.size),
                     what=f"blob {src.digest}")
    else:
        offset = 0
        while offset < src.size:
            chunk = src.read(offset, reg.chunk_size)
            if not chunk:
                raise InputError(f"blob {src.digest}: its file ended at {offset} bytes, "
                                 f"expected {src.size}", hint="it changed while being pushed")
            r = reg.send("PATCH", location, ok=(202,), scopes=push, content=chunk,
                         headers={**_OCTETS,
                                  "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
                         what=f"blob {src.digest}")
            location = _location(r)
            offset += len(chunk)
        # the registry reads the whole blob back to check its digest before it answers
        r = reg.send("PUT", location.copy_merge_params({"digest": src.digest}), ok=(201,),
                     scopes=push, content=b"", what=f"blob {src.digest}", expect=src.size)
    stored = r.headers.get("Docker-Content-Digest")
    if stored and stored != src.digest:
        raise RegistryError(f"PUT {redact_url(r.request.url)}: the registry stored blob "
                            f"{stored}, expected {src.digest}", method="PUT",
                            url=redact_url(r.request.url), status=r.status_code)
    return "uploaded"


def _location(response: httpx.Response) -> httpx.URL:
    """The upload URL a response points to (registries may send it relative)."""
    loc = response.headers.get("Location")
    if not loc:
        req = response.request
        raise RegistryError(f"{req.method} {redact_url(req.url)}: expected a Location header "
                            f"with the upload URL, found none (HTTP {response.status_code})",
                            method=req.method, url=redact_url(req.url),
                            status=response.status_code)
    return response.url.join(loc)


def _cancel(reg: Session, location: httpx.URL, scopes: list[str]) -> None:
    """Best effort: the registry purges abandoned uploads itself anyway."""
    try:
        reg.send("DELETE", location, ok=(204, 404), scopes=scopes)
    except RegistryError:
        pass


def put_manifest(reg: Session, ref: Reference, data: bytes, media_type: str) -> str:
    digest = sha256_digest(data)
    if ref.digest is not None and ref.digest != digest:
        raise InputError(f"image reference {ref}: its digest does not match the manifest's "
                         f"{digest}")
    url = reg.url(f"/v2/{ref.repository}/manifests/{ref.tag or digest}")
    r = reg.retry.run(lambda: reg.send("PUT", url, ok=(201,), content=data,
                                       headers={"Content-Type": media_type},
                                       what=f"manifest {ref}"))
    stored = r.headers.get("Docker-Content-Digest")
    if stored and stored != digest:
        raise RegistryError(f"PUT {url}: the registry stored manifest {stored}, expected "
                            f"{digest}", method="PUT", url=url, status=r.status_code)
    reg.count(manifests_uploaded=1)
    return digest


def _put_unless_there(reg: Session, ref: Reference, data: bytes, media_type: str) -> None:
    """Put a manifest unless ``ref`` already names these bytes (a re-push sends nothing)."""
    push = [repository_scope(ref.repository, "pull", "push")]
    if reg.head_manifest(ref, scopes=push) == sha256_digest(data):
        reg.count(manifests_skipped=1)
        return
    put_manifest(reg, ref, data, media_type)


def push_image(reg: Session, image: Image | ImageIndex, refs: Sequence[Reference], *,
               mount_from: Sequence[str | Reference] = ()) -> str:
    if not refs:
        raise InputError("push: expected at least one image reference to push to, found none")
    digest = image.digest
    for r in refs:
        if r.digest is not None and r.digest != digest:
            raise InputError(f"image reference {r}: its digest does not match the image's "
                             f"{digest}", hint="push by tag, or to NAME@" + digest)
    images = image.images if isinstance(image, ImageIndex) else (image,)
    blobs: dict[str, _Blob] = {}
    for img in images:  # configs first: small, and they make the first request cheap
        cfg = img.config_bytes()
        blobs.setdefault(sha256_digest(cfg), _Blob(sha256_digest(cfg), len(cfg), data=cfg))
    for img in images:
        for layer in img.layers:
            if layer.digest not in blobs:
                blobs[layer.digest] = blob_source(layer)
    if isinstance(image, ImageIndex):
        top, top_type = image.index_bytes(), OCI_INDEX
    else:
        top, top_type = image.manifest_bytes(), image.media_type
    extra = [reg.repo_of(m) for m in mount_from]
    repos = list(dict.fromkeys(r.repository for r in refs))
    for i, repo in enumerate(repos):
        # blobs pushed to the first repository are mounted into the others
        sources = [s for s in dict.fromkeys([*repos[:1], *extra]) if s != repo] if i else extra
        _push_blobs(reg, repo, list(blobs.values()), sources)
        base = Reference(reg.registry, repo)
        if isinstance(image, ImageIndex):
            for img in images:
                _put_unless_there(reg, base.context(digest=img.digest), img.manifest_bytes(),
                                  img.media_type)
        targets = [base.context(tag=r.tag) for r in refs if r.repository == repo and r.tag]
        for target in targets or [base.context(digest=digest)]:
            _put_unless_there(reg, target, top, top_type)
    return digest


def _push_blobs(reg: Session, repo: str, blobs: list[_Blob], sources: Sequence[str]) -> None:
    """Every blob into ``repo``: the first alone (so auth is settled once), the rest in
    parallel on ``reg.jobs`` threads."""
    if not blobs:
        return
    _push(reg, repo, blobs[0], sources)
    rest = blobs[1:]
    if not rest:
        return
    with ThreadPoolExecutor(max_workers=min(reg.jobs, len(rest)),
                            thread_name_prefix="uvship-push") as pool:
        futures = [pool.submit(_push, reg, repo, b, sources) for b in rest]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f in done and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
