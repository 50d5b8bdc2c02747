"""A client for one registry host: the OCI distribution API over httpx, retried and counted."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import httpx

from ..errors import InputError
from ..oci import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Image
from ..oci._blobs import BlobStore
from ..oci.image import ImageIndex, Layer
from ..oci.types import INDEX_TYPES, MANIFEST_TYPES, Platform
from ..progress import Progress
from . import pull, push
from .auth import SCOPES, TOKENS, RegistryAuth, TokenCache
from .credentials import Credentials
from .deadline import DeadlinePolicy, TimedStream, on_response, running
from .deadline import transport as deadline_transport
from .errors import (
    CHECK_HINT,
    LOGIN_HINT,
    AuthenticationError,
    DeadlineExceeded,
    RegistryError,
    from_response,
    from_transport_error,
    redact_url,
)
from .reference import (
    DOCKER_HUB,
    DOCKER_HUB_API,
    Reference,
    check_repository,
    is_loopback,
    parse_registry,
)
from .retry import RetryPolicy

ALL_MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
MANIFEST_LIMIT = 8 << 20  # distribution refuses manifests above 4 MiB; twice that is plenty
CHUNK_SIZE = 8 << 20
_READ = 1 << 20


@dataclass(frozen=True)
class TransferStats:
    """What a client moved: for progress lines and for proving that a push skipped work."""

    blobs_skipped: int = 0  # already in the repository (HEAD said so)
    blobs_mounted: int = 0  # linked from another repository of the registry
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    manifests_skipped: int = 0  # the tag already pointed at the same digest
    manifests_uploaded: int = 0
    blobs_downloaded: int = 0
    bytes_downloaded: int = 0

    def __sub__(self, other: TransferStats) -> TransferStats:
        return TransferStats(*(getattr(self, f.name) - getattr(other, f.name)
                               for f in fields(self)))


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys((f.name for f in fields(TransferStats)), 0)

    def add(self, **delta: int) -> None:
        with self._lock:
            for k, v in delta.items():
                self._values[k] += v

    def snapshot(self) -> TransferStats:
        with self._lock:
            return TransferStats(**self._values)


class Registry:
    """The distribution API of one registry host (``ghcr.io``, ``localhost:5000``, ``docker.io``).

    TLS is verified. Plain HTTP is used for ``localhost``, ``127.0.0.1`` and ``::1``;
    a host listed in ``insecure`` is tried over HTTPS without verifying its certificate
    first and over plain HTTP if that fails, as podman does with insecure registries.
    Retryable failures (5xx, 408, 429, connection errors, deadlines) are tried again under
    ``retry``; each retried operation starts over (an upload opens a new upload session).
    Each request must finish by its deadline under ``deadline`` (by default the policy the
    environment sets, see DeadlinePolicy.from_env); ``timeout`` bounds each socket operation.

    ``credentials`` None means: look them up in docker's and podman's files when the
    registry asks. ``transport`` replaces httpx's (tests inject faults with it; deadlines
    are then checked only between the chunks of a streamed body). ``progress`` is told how
    each request that runs longer than ``progress_every`` seconds is doing, that often.
    """

    def __init__(self, registry: str | Reference, *, credentials: Credentials | None = None,
                 insecure: Iterable[str] = (), retry: RetryPolicy | None = None,
                 chunk_size: int = CHUNK_SIZE, jobs: int = 4, timeout: float = 60.0,
                 deadline: DeadlinePolicy | None = None,
                 transport: httpx.BaseTransport | None = None,
                 tokens: TokenCache = TOKENS, progress: Progress | None = None,
                 progress_every: float = 10.0, blobs: BlobStore | None = None) -> None:
        self.registry = registry.registry if isinstance(registry, Reference) else \
            parse_registry(registry)
        self.host = DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry
        self.insecure = frozenset(insecure)
        self.blobs = blobs  # where pulled images' blobs go (resolve_image, pull_layers)
        self.retry = retry or RetryPolicy()
        self.deadline = deadline or DeadlinePolicy.from_env()
        self._report = progress.note if progress is not None else None
        self._report_every = progress_every
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        self.jobs = max(1, jobs)
        self.auth = RegistryAuth(self.registry, credentials, tokens=tokens)
        tls_optional = self.registry in self.insecure or self.host in self.insecure
        self._scheme: str | None = "http" if is_loopback(self.host) else (
            None if tls_optional else "https")
        self._scheme_lock = threading.Lock()
        limits = httpx.Limits(max_connections=self.jobs * 2)
        self._client = httpx.Client(
            auth=self.auth, verify=not tls_optional, limits=limits,
            transport=transport or deadline_transport(verify=not tls_optional, limits=limits),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            event_hooks={"response": [on_response]},
            headers={"User-Agent": "uvship"}, follow_redirects=False)
        self._counters = _Counters()

    # ---- plumbing -------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.registry!r})"

    @property
    def stats(self) -> TransferStats:
        """Counts since this client was made (see TransferStats)."""
        return self._counters.snapshot()

    def count(self, **delta: int) -> None:
        """Add to the stats (push and pull count what they did through this)."""
        self._counters.add(**delta)

    def url(self, path: str) -> str:
        return f"{self._base_scheme()}://{self.host}{path}"

    def _base_scheme(self) -> str:
        with self._scheme_lock:
            if self._scheme is None:
                self._scheme = self._probe_scheme()
            return self._scheme

    def _probe_scheme(self) -> str:
        """HTTPS if the host answers it (certificate unchecked), else plain HTTP."""
        try:
            self._probe("https")
            return "https"
        except (httpx.TransportError, DeadlineExceeded) as https_error:
            try:
                self._probe("http")
                return "http"
            except (httpx.TransportError, DeadlineExceeded) as exc:
                if isinstance(https_error, DeadlineExceeded):
                    raise https_error from exc
                raise from_transport_error(https_error, "GET",
                                           f"https://{self.host}/v2/") from exc

    def _probe(self, scheme: str) -> None:
        url = f"{scheme}://{self.host}/v2/"
        with running(self.deadline.start("GET", url)):
            self._client.get(url, auth=None).close()

    def send(self, method: str, url: str | httpx.URL, *, ok: Sequence[int] = (200,),
             scopes: Sequence[str] | None = None, headers: Mapping[str, str] | None = None,
             content: bytes | None = None, stream: bool = False, follow: bool = False,
             what: str | None = None, expect: int = 0) -> httpx.Response:
        """One request; a RegistryError unless its status is in ``ok``. Not retried.

        It must finish by its deadline (a streamed body too, as it is read), which counts
        the body sent and the body to come: as long as its Content-Length says, or
        ``expect`` bytes if more (a blob known to be coming, or one the registry must check
        before it answers).
        """
        extensions = {SCOPES: tuple(scopes)} if scopes else {}
        request = self._client.build_request(method, url, headers=headers, content=content,
                                             extensions=extensions)
        deadline = self.deadline.start(method, url, sending=len(content or b""),
                                       receiving=expect, report=self._report,
                                       every=self._report_every)
        try:
            with running(deadline):
                response = self._client.send(request, stream=stream, follow_redirects=follow)
        except httpx.TransportError as exc:
            raise from_transport_error(exc, method, url) from exc
        except httpx.TooManyRedirects as exc:
            raise RegistryError(f"{method} {redact_url(url)}: too many redirects",
                                method=method, url=redact_url(url)) from exc
        if stream:
            response.stream = TimedStream(response.stream, deadline)
        if response.status_code in ok:
            return response
        try:
            raise self._error(response, what)
        finally:
            response.close()

    def _error(self, response: httpx.Response, what: str | None) -> RegistryError:
        err = from_response(response, what=what)
        if response.status_code not in (401, 403):
            return err
        creds = self.auth.credentials
        if creds is None:
            return AuthenticationError(
                f"authentication required by {self.registry}: no credentials found for it "
                f"({err.message})", method=err.method, url=err.url, status=err.status,
                errors=err.errors, hint=LOGIN_HINT.format(self.registry))
        who = f" (user {creds.username})" if creds.username else ""
        verb = "authentication failed" if response.status_code == 401 else "access denied"
        return AuthenticationError(f"{verb} for {self.registry}{who}: {err.message}",
                                   method=err.method, url=err.url, status=err.status,
                                   errors=err.errors, hint=CHECK_HINT.format(self.registry))

    def repo_of(self, repo: str | Reference) -> str:
        """The repository path of ``repo``, checked to be on this registry."""
        if isinstance(repo, Reference):
            return self.ref_of(repo).repository
        return check_repository(repo)

    def ref_of(self, ref: str | Reference) -> Reference:
        """``ref`` parsed, and checked to name an image on this registry."""
        r = Reference.parse(ref)
        if r.registry != self.registry:
            raise InputError(f"image reference {ref}: expected one on registry "
                             f"{self.registry}, found one on {r.registry}")
        return r

    # ---- blobs ----------------------------------------------------------------------

    def head_blob(self, repo: str | Reference, digest: str, *,
                  scopes: Sequence[str] | None = None) -> int | None:
        """The size of blob ``digest`` in ``repo``, or None if the repository lacks it."""
        name = self.repo_of(repo)

        def once() -> int | None:
            r = self.send("HEAD", self.url(f"/v2/{name}/blobs/{digest}"), ok=(200, 404),
                          scopes=scopes, follow=True)
            if r.status_code == 404:
                return None
            return int(r.headers.get("Content-Length", "-1"))

        return self.retry.run(once)

    def get_blob(self, repo: str | Reference, digest: str, dest: str | os.PathLike[str], *,
                 size: int | None = None) -> Path:
        """Download blob ``digest`` to ``dest``: streamed to a temporary file beside it,
        checked against the digest (and ``size`` when given), then renamed into place."""
        name = self.repo_of(repo)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        algo = digest.partition(":")[0]

        def once() -> Path:
            url = self.url(f"/v2/{name}/blobs/{digest}")
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
            try:
                h = hashlib.new(algo)
                n = 0
                with os.fdopen(fd, "wb") as out, closing(self.send(
                        "GET", url, stream=True, follow=True, expect=size or 0)) as r:
                    try:
                        for chunk in r.iter_bytes(_READ):
                            h.update(chunk)
                            n += len(chunk)
                            out.write(chunk)
                    except httpx.TransportError as exc:
                        raise from_transport_error(exc, "GET", url) from exc
                found = f"{algo}:{h.hexdigest()}"
                if found != digest or (size is not None and n != size):
                    expected = f"{size} bytes with that digest" if size is not None else \
                        "that digest"
                    raise RegistryError(
                        f"GET {redact_url(r.url)}: expected blob {digest} ({expected}), "
                        f"found {n} bytes with digest {found}", method="GET",
                        url=redact_url(r.url),
                        hint="the registry (or something between) served other content")
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.count(blobs_downloaded=1, bytes_downloaded=n)
            return dest

        return self.retry.run(once)

    def push_blob(self, repo: str | Reference, blob: Layer | Path | bytes,
                  digest: str | None = None, size: int | None = None, *,
                  mount_from: Sequence[str | Reference] = ()
                  ) -> Literal["skipped", "mounted", "uploaded"]:
        """Put a blob in ``repo`` unless it is there: HEAD, then a cross-repository mount
        from ``mount_from``, then an upload (monolithic up to ``chunk_size``, else chunked)."""
        return push.push_blob(self, self.repo_of(repo), blob, digest, size, mount_from=mount_from)

    # ---- manifests ------------------------------------------------------------------

    def get_manifest(self, ref: str | Reference, accept: Sequence[str] = ALL_MANIFEST_TYPES
                     ) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest ``ref`` names; when ``ref`` has a
        digest, the bytes are checked against it."""
        r_ref = self.ref_of(ref)
        path = f"/v2/{r_ref.repository}/manifests/{r_ref.identifier}"

        def once() -> tuple[bytes, str, str]:
            url = self.url(path)
            with closing(self.send("GET", url, headers={"Accept": ", ".join(accept)},
                                   stream=True, what=f"manifest {r_ref}")) as r:
                data = bytearray()
                try:
                    for chunk in r.iter_bytes(_READ):
                        data += chunk
                        if len(data) > MANIFEST_LIMIT:
                            raise RegistryError(
                                f"GET {url}: expected a manifest of at most {MANIFEST_LIMIT} "
                                "bytes, found a larger one", method="GET", url=url)
                except httpx.TransportError as exc:
                    raise from_transport_error(exc, "GET", url) from exc
                return bytes(data), r.headers.get("Content-Type", ""), \
                    r.headers.get("Docker-Content-Digest", "")

        data, content_type, header_digest = self.retry.run(once)
        media_type = _media_type(data, content_type)
        want = r_ref.digest or (header_digest if header_digest.startswith("sha256:") else "")
        algo = want.partition(":")[0] if want else "sha256"
        found = f"{algo}:{hashlib.new(algo, data).hexdigest()}"
        if want and found != want:
            url = self.url(path)
            raise RegistryError(f"GET {url}: expected the manifest with digest {want}, "
                                f"found one with digest {found}", method="GET", url=url)
        return data, media_type, found

    def head_manifest(self, ref: str | Reference, *, scopes: Sequence[str] | None = None
                      ) -> str | None:
        """The digest ``ref`` points at (Docker-Content-Digest), or None if it is unknown."""
        r_ref = self.ref_of(ref)
        path = f"/v2/{r_ref.repository}/manifests/{r_ref.identifier}"

        def once() -> str | None:
            r = self.send("HEAD", self.url(path), ok=(200, 404),
                          headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)}, scopes=scopes)
            return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None

        return self.retry.run(once)

    def put_manifest(self, ref: str | Reference, data: bytes, media_type: str) -> str:
        """Store manifest ``data`` under ``ref``'s tag (or digest); return its digest."""
        return push.put_manifest(self, self.ref_of(ref), data, media_type)

    # ---- images ---------------------------------------------------------------------

    def push_image(self, image: Image | ImageIndex, refs: Sequence[str | Reference], *,
                   mount_from: Sequence[str | Reference] = ()) -> str:
        """Push ``image`` under every reference in ``refs``: blobs, then manifests, then
        tags (a tag never names a manifest whose blobs are missing). Returns its digest."""
        return push.push_image(self, image, [self.ref_of(r) for r in refs], mount_from=mount_from)

    def blob_store(self) -> BlobStore:
        """Where this client keeps pulled blobs: the store it was given."""
        if self.blobs is None:
            raise ValueError("Registry(blobs=...): a blob store is needed to pull images")
        return self.blobs

    def resolve_image(self, ref: str | Reference, platform: str | Platform | None = None
                      ) -> Image:
        """The image ``ref`` names (an index followed to ``platform``, linux/amd64 unless
        given); layers point into the blob store and are fetched only by ``pull_layers``."""
        return pull.resolve_image(self, self.ref_of(ref), platform)

    def index_platforms(self, ref: str | Reference) -> list[Platform]:
        """The platforms of an image index (empty for a single image)."""
        return pull.index_platforms(self, self.ref_of(ref))

    def pull_layers(self, ref: str | Reference, image: Image) -> Image:
        """Download the layers of ``image`` (from ``ref``'s repository) the store lacks."""
        return pull.pull_layers(self, self.ref_of(ref), image)


def _media_type(data: bytes, content_type: str) -> str:
    """The manifest's media type: the Content-Type if it names one, else the document's."""
    ct = content_type.split(";", 1)[0].strip()
    if ct in MANIFEST_TYPES or ct in INDEX_TYPES:
        return ct
    try:
        doc: Any = json.loads(data)
    except ValueError:
        return ct
    if isinstance(doc, dict):
        if isinstance(doc.get("mediaType"), str):
            return doc["mediaType"]
        if "manifests" in doc:
            return OCI_INDEX
        if "layers" in doc:
            return OCI_MANIFEST
    return ct
