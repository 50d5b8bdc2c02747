"""How long one registry request may take: a fixed allowance plus its bytes at a minimum rate.

httpx's timeouts bound each socket operation, so a server that trickles a byte at a time
never trips them. Here every request gets one deadline, ``fixed`` seconds plus one second
per ``min_rate`` bytes it sends or expects to receive (or moves, when it moves more), and
every connect, read and write of the request waits at most until then: through a network
backend under httpx's transport, so the deadline holds for headers, bodies and uploads alike.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from ..errors import InputError
from .errors import DeadlineExceeded, redact_url

TIMEOUT_ENV = "UVSHIP_REGISTRY_TIMEOUT"  # seconds every request may take besides its bytes
MIN_RATE_ENV = "UVSHIP_REGISTRY_MIN_RATE"  # bytes per second a request must at least move
# Writes go down in slices, the deadline checked between them: a reader that drains a
# slice a few bytes at a time holds a write up no longer than one slice takes.
_SLICE = 16 << 10


@dataclass(frozen=True)
class DeadlinePolicy:
    """Each request may take ``fixed`` seconds plus one second per ``min_rate`` bytes.

    The defaults wait as long as httpx's read timeout did for a small request and let a
    large blob move at 50 kB/s (a link at 400 kbit/s) before giving up on it.
    """

    fixed: float = 60.0
    min_rate: float = 50_000.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeadlinePolicy:
        """The policy ``UVSHIP_REGISTRY_TIMEOUT`` and ``UVSHIP_REGISTRY_MIN_RATE`` set,
        each defaulting to the class's."""
        env = os.environ if environ is None else environ
        return cls(_positive(env, TIMEOUT_ENV, "a number of seconds", cls.fixed),
                   _positive(env, MIN_RATE_ENV, "a number of bytes per second", cls.min_rate))

    def start(self, method: str, url: str | httpx.URL, *, sending: int = 0,
              receiving: int = 0, report: Callable[[str], None] | None = None,
              every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline of one request, starting now; ``report`` is told how the request
        is doing every ``every`` seconds while it moves bytes."""
        return Deadline(self, method, redact_url(url), sending, receiving, clock, report, every)


def _positive(env: Mapping[str, str], name: str, what: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InputError(f"{name}={raw}: expected {what} greater than 0, found {raw!r}",
                         hint=f"unset {name} for the default ({default:g})")
    return value


class Deadline:
    """The clock of one request: what it may still take, and what it moved so far."""

    def __init__(self, policy: DeadlinePolicy, method: str, url: str, sending: int,
                 receiving: int, clock: Callable[[], float],
                 report: Callable[[str], None] | None = None, every: float = 10.0) -> None:
        self.policy = policy
        self.method = method
        self.url = url
        self.sending = sending
        self.receiving = receiving
        self.moved = 0  # bytes read and written on the wire, headers included
        self.cut = False  # whether the last network operation waited only until the deadline
        self._clock = clock
        self.started = clock()
        self._report = report
        self._every = every
        self._reported = self.started

    def add(self, moved: int) -> None:
        """``moved`` more bytes went over the wire; a long request says how it is doing."""
        self.moved += moved
        if self._report is not None and self._clock() - self._reported >= self._every:
            self._reported = self._clock()
            size = self.sending + self.receiving
            of = f" of {_amount(size)}" if size > self.moved else ""
            self._report(f"{self.method} {self.url}: {_amount(self.moved)}{of} moved in "
                         f"{self.elapsed:.1f} s, {max(self.remaining(), 0):.1f} s before its "
                         "deadline")

    def expect(self, receiving: int) -> None:
        """The response says how long its body is (Content-Length): wait for that much."""
        self.receiving = max(self.receiving, receiving)

    @property
    def allowance(self) -> float:
        size = max(self.sending + self.receiving, self.moved)
        return self.policy.fixed + size / self.policy.min_rate

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def remaining(self) -> float:
        return self.allowance - self.elapsed

    def passed(self) -> bool:
        return self.cut or self.remaining() <= 0

    def error(self) -> DeadlineExceeded:
        p = self.policy
        size = self.sending + self.receiving
        moved = f"{self.moved} bytes moved" + (f", {size} expected" if size else "")
        return DeadlineExceeded(
            f"{self.method} {self.url}: not finished by its deadline, {self.elapsed:.1f} s "
            f"after it started ({moved})",
            method=self.method, url=self.url, retryable=True,
            hint=f"a request may take {p.fixed:g} s ({TIMEOUT_ENV}) plus one second per "
                 f"{p.min_rate:g} bytes ({MIN_RATE_ENV}); the registry, or the network to "
                 "it, was slower: raise the first or lower the second to wait longer")


_CURRENT: ContextVar[Deadline | None] = ContextVar("uvship_registry_deadline", default=None)


@contextlib.contextmanager
def running(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` the one the network operations of this thread wait under; a
    timeout inside that is the deadline's becomes its DeadlineExceeded."""
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    except httpx.TimeoutException as exc:
        if deadline.passed():
            raise deadline.error() from exc
        raise
    finally:
        _CURRENT.reset(token)


def on_response(response: httpx.Response) -> None:
    """An httpx response hook: a body's announced length extends the request's deadline."""
    deadline = _CURRENT.get()
    length = response.headers.get("Content-Length", "")
    if deadline is not None and response.request.method != "HEAD" and length.isdigit():
        deadline.expect(int(length))


class TimedStream(httpx.SyncByteStream):
    """A streamed response body read under its request's deadline, which is also checked
    between chunks (all a transport without the deadline backend gets)."""

    def __init__(self, inner: Iterable[bytes], deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            with running(self._deadline):
                chunk = next(chunks, None)
            if chunk is None:
                return
            if self._deadline.remaining() <= 0:
                raise self._deadline.error()
            yield chunk

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _bounded(timeout: float | None, late: type[Exception]) -> float | None:
    """``timeout`` cut to what the running deadline leaves; ``late`` when nothing is left."""
    deadline = _CURRENT.get()
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise late(f"the deadline of {deadline.allowance:.1f} s has passed")
    deadline.cut = timeout is None or left < timeout
    return left if deadline.cut else timeout


def _moved(n: int) -> None:
    deadline = _CURRENT.get()
    if deadline is not None:
        deadline.add(n)


def _amount(n: int) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.1f} GB"


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))
        _moved(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for i in range(0, len(view), _SLICE):
            piece = view[i:i + _SLICE]
            self._inner.write(bytes(piece), _bounded(timeout, httpcore.WriteTimeout))
            _moved(len(piece))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname,
                                             _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port,
                                               _bounded(timeout, httpcore.ConnectTimeout),
                                               local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def transport(*, verify: bool, limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's transport, its connections made through the deadline-keeping backend.

    httpx takes no network backend, so the pool it made is replaced by an equal one that
    has it (httpcore's ConnectionPool takes one as documented).
    """
    t = httpx.HTTPTransport(verify=verify, limits=limits)
    t._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(verify=verify),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, network_backend=_Backend())
    return t
