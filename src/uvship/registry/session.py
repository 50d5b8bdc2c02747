"""What pulling and pushing need of a registry connection: the requests, the blob store,
the policies. client.Registry is the one implementation; pull.py and push.py are written
against this protocol, so the client can offer them as methods without an import cycle."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import httpx

from ..oci._blobs import BlobStore
from .reference import Reference
from .retry import RetryPolicy


class Session(Protocol):
    registry: str  # the registry's name, as references spell it
    retry: RetryPolicy
    chunk_size: int  # bytes per PATCH of a chunked upload
    jobs: int  # blobs moved at once

    def url(self, path: str) -> str: ...

    def send(self, method: str, url: str | httpx.URL, *, ok: Sequence[int] = (200,),
             scopes: Sequence[str] | None = None, headers: dict[str, str] | None = None,
             content: bytes | None = None, stream: bool = False, follow: bool = False,
             what: str | None = None, expect: int = 0) -> httpx.Response: ...

    def count(self, **delta: int) -> None: ...

    def repo_of(self, repo: str | Reference) -> str: ...

    def get_blob(self, repo: str | Reference, digest: str, dest: str | os.PathLike[str], *,
                 size: int | None = None) -> Path: ...

    def get_manifest(self, ref: str | Reference, accept: Sequence[str] = ...
                     ) -> tuple[bytes, str, str]: ...

    def head_manifest(self, ref: str | Reference, *, scopes: Sequence[str] | None = None
                      ) -> str | None: ...

    def blob_store(self) -> BlobStore: ...
