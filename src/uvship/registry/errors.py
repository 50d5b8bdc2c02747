"""Registry failures as typed errors: ``METHOD URL``, status, error codes, retryable or not."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from ..errors import UvshipError

REDACTED = "REDACTED"
# Query parameters safe to show; every other value is replaced. Upload URLs carry signed
# state and storage redirects carry signatures and credentials: none belong in a message.
_SAFE_PARAMS = frozenset({"digest", "mount", "from", "n", "last", "service", "scope"})
# Statuses worth trying again: the server or something in front of it was busy or failing.
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

_BODY_LIMIT = 64 << 10

LOGIN_HINT = ("log in with 'podman login {0}' or 'docker login {0}', or set DOCKER_CONFIG to "
              "a directory whose config.json holds credentials for it")
CHECK_HINT = ("check the user name and password (or token) stored for {0}; log in again with "
              "'podman login {0}' or 'docker login {0}'")


def redact_url(url: str | httpx.URL) -> str:
    """``url`` with any user, password and secret-bearing query values replaced by REDACTED.

    The one place URLs are made printable: every message that names a URL goes through it.
    """
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, v if k in _SAFE_PARAMS else REDACTED) for k, v in pairs],
                          safe=":/,")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of a registry's ``{"errors": [...]}`` body."""

    code: str
    message: str
    detail: str = ""

    def __str__(self) -> str:
        out = f"{self.code}: {self.message}" if self.message else self.code
        # details are often the digest or name already in the URL; long ones are noise
        if self.detail and len(self.detail) <= 200:
            out += f" ({self.detail})"
        return out


class RegistryError(UvshipError):
    """A registry request failed: says which (``METHOD URL``, redacted) and why.

    ``status`` is the HTTP status (None when no response came); ``errors`` the registry's
    error entries; ``retryable`` whether trying again may succeed (5xx, 408, 429 and
    connection failures are; other 4xx are not).
    """

    def __init__(self, message: str, *, method: str, url: str, status: int | None = None,
                 errors: Sequence[ErrorDetail] = (), retryable: bool = False,
                 retry_after: float | None = None, attempts: int = 1,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.method = method
        self.url = url
        self.status = status
        self.errors = tuple(errors)
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)
        self.attempts = attempts  # how many times the operation was tried

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors)

    def __repr__(self) -> str:
        return f"RegistryError({self.message!r}, status={self.status}, " \
               f"retryable={self.retryable})"


class AuthenticationError(RegistryError):
    """The registry refused the credentials given (or asked for some and none were found)."""


class DeadlineExceeded(RegistryError):
    """A request took longer than its deadline (see registry.deadline): a server or network
    that stalls or trickles, which httpx's per-read timeout never notices."""


def retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS or status >= 500


def parse_errors(body: bytes) -> list[ErrorDetail]:
    """The registry's error entries, or none when the body is not distribution's error JSON."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    entries = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    out = []
    for e in entries:
        if isinstance(e, dict):
            detail = e.get("detail")
            if detail is not None and not isinstance(detail, str):
                detail = json.dumps(detail, sort_keys=True)
            out.append(ErrorDetail(str(e.get("code") or "UNKNOWN"), str(e.get("message") or ""),
                                   detail or ""))
    return out


def from_response(response: httpx.Response, *, what: str | None = None,
                  hint: str | None = None) -> RegistryError:
    """The error for a response with an unexpected status; reads (a bounded part of) its body."""
    request = response.request
    body = b""
    try:
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _BODY_LIMIT:  # an error body worth reading is small
                break
    except (httpx.HTTPError, httpx.StreamError, DeadlineExceeded):
        pass  # the status alone still says what happened
    errors = parse_errors(body)
    status = response.status_code
    http = f"HTTP {status} {response.reason_phrase}".strip()
    reason = f"{'; '.join(str(e) for e in errors)} ({http})" if errors else http
    message = f"{request.method} {redact_url(request.url)}: " + (f"{what}: " if what else "")
    message += reason
    if status == 429 and hint is None:
        hint = "the registry is rate-limiting requests; wait and try again"
    return RegistryError(message, method=request.method, url=redact_url(request.url),
                         status=status, errors=errors, retryable=retryable_status(status),
                         retry_after=_retry_after(response), hint=hint)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # absent, or an HTTP date: the usual backoff applies


def from_transport_error(exc: httpx.HTTPError, method: str, url: str | httpx.URL
                         ) -> RegistryError:
    """The error for a request that got no response: refused, reset, timed out, bad TLS."""
    redacted = redact_url(url)
    cause = _root_cause(exc)
    # A certificate the client does not trust, or a server that does not speak TLS, will
    # not change by trying again.
    tls = isinstance(cause, ssl.SSLError)
    kind = {httpx.ConnectTimeout: "connection timed out", httpx.ReadTimeout: "read timed out",
            httpx.WriteTimeout: "write timed out", httpx.PoolTimeout: "no free connection",
            httpx.ConnectError: "cannot connect", httpx.ReadError: "connection broken",
            httpx.WriteError: "connection broken",
            httpx.RemoteProtocolError: "connection closed unexpectedly"}.get(type(exc),
                                                                            type(exc).__name__)
    detail = str(cause) or str(exc)
    hint = None
    if tls:
        kind = "TLS certificate not trusted" if isinstance(
            cause, ssl.SSLCertVerificationError) else "TLS handshake failed"
        hint = ("for a registry with a private CA set SSL_CERT_FILE; for a test registry "
                "without TLS, list its host as insecure")
    return RegistryError(f"{method} {redacted}: {kind} ({detail})" if detail else
                         f"{method} {redacted}: {kind}",
                         method=method, url=redacted, status=None, retryable=not tls, hint=hint)


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        assert nxt is not None
        seen = nxt
    return seen
