"""Real distribution registries for tests (Debian's docker-registry): plain, htpasswd, token.

Import the ``*_fixture`` functions into a test module to use the fixtures they define
(``registry``, ``own_registry``, ``basic_registry``, ``token_registry``).

Each registry is a ``docker-registry serve`` process on 127.0.0.1 with a free port and its
own storage directory; its access log (one line per request) tells tests what the client
really sent. The token variant trusts a certificate made with the openssl CLI, and a small
token service signs its JWTs with the matching key (``openssl dgst -sign``).

``SlowServer`` is the one fake: a server too slow to answer, the fault a registry behind a
congested link shows and no real registry can be configured to produce.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

REGISTRY_BIN = shutil.which("docker-registry")
needs_registry = pytest.mark.skipif(REGISTRY_BIN is None,
                                    reason="docker-registry (Debian's distribution) missing")
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) '
                     r'\S+ "[^"]*" "(?P<agent>[^"]*)"')


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Request:
    """One line of the registry's access log."""

    method: str
    uri: str
    status: int
    agent: str


class RegistryServer:
    """One ``docker-registry serve`` process; ``stop``/``start`` keep its port and storage."""

    def __init__(self, root: Path, *, auth: dict | None = None, bind: str = "127.0.0.1"
                 ) -> None:
        self.root = root
        self.bind = bind
        self.port = free_port(bind)
        self.auth = auth
        self.log_path = root / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self._write_config()

    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.host}/{repo}:{tag}"

    def _write_config(self) -> None:
        # JSON is YAML: no YAML library needed to write the config.
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")},
                        "delete": {"enabled": True}},
            # a fixed secret keeps upload URLs valid across a restart, as in production
            "http": {"addr": self.host, "secret": "uvship-test-secret"},
        }
        if self.auth:
            config["auth"] = self.auth
        (self.root / "config.yml").write_text(json.dumps(config, indent=1))

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None, "already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.root / "config.yml")],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited {self.proc.returncode}:\n"
                                   + self.log_text()[-3000:])
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:  # 401 from an auth-protected registry: it is up
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"docker-registry on {self.host} did not answer in {timeout} s")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def refuse_tag(self, repository: str, tag: str) -> None:
        """Make the registry's storage fail to write ``tag`` in ``repository``, and nothing
        else: a file stands where distribution's filesystem driver makes the tag's ``index``
        directory, so a PUT of that tag gets the registry's own 500 (ENOTDIR), as on a broken
        disk. No configuration of distribution refuses one tag (htpasswd users may push all
        or nothing), and this fault is the registry's, not a proxy's."""
        tag_dir = (self.root / "storage/docker/registry/v2/repositories" / repository
                   / "_manifests/tags" / tag)
        tag_dir.mkdir(parents=True, exist_ok=True)
        (tag_dir / "index").write_text("not a directory\n")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def mark(self) -> int:
        """A position in the log: ``requests(since=mark)`` lists only later requests."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def requests(self, since: int = 0) -> list[Request]:
        with self.log_path.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [Request(m["method"], m["uri"], int(m["status"]), m["agent"])
                for m in _ACCESS.finditer(text)]

    def count(self, method: str, pattern: str, since: int = 0, status: int | None = None
              ) -> int:
        """How many requests with ``method`` had a URI matching the regex ``pattern``."""
        rx = re.compile(pattern)
        return sum(1 for r in self.requests(since)
                   if r.method == method and rx.search(r.uri)
                   and (status is None or r.status == status))


@contextlib.contextmanager
def running_registry(root: Path, **kw) -> Iterator[RegistryServer]:
    """A started RegistryServer in ``root`` (keyword arguments as RegistryServer's)."""
    if REGISTRY_BIN is None:
        pytest.fail("docker-registry (Debian's distribution registry) is not installed: "
                    "run scripts/setup-host")
    server = RegistryServer(root, **kw)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="registry", scope="module")
def registry_fixture(tmp_path_factory) -> Iterator[RegistryServer]:
    """An anonymous registry shared by a test module (tests use their own repositories)."""
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(name="own_registry")
def own_registry_fixture(tmp_path) -> Iterator[RegistryServer]:
    """A registry of the test's own, which the test may stop, kill and restart."""
    with running_registry(tmp_path / "registry") as server:
        yield server


# ---- htpasswd (HTTP Basic) ---------------------------------------------------------------

@dataclass(frozen=True)
class BasicRegistry:
    server: RegistryServer
    username: str
    password: str


@pytest.fixture(name="basic_registry", scope="module")
def basic_registry_fixture(tmp_path_factory) -> Iterator[BasicRegistry]:
    """A registry behind HTTP Basic auth (bcrypt htpasswd), with one user."""
    root = tmp_path_factory.mktemp("registry-basic")
    user, password = "alice", "s3cret-" + uuid.uuid4().hex[:12]
    htpasswd = root / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), user, password], check=True,
                   capture_output=True)
    auth = {"htpasswd": {"realm": "uvship-test", "path": str(htpasswd)}}
    with running_registry(root / "registry", auth=auth) as server:
        yield BasicRegistry(server, user, password)


# ---- bearer tokens -----------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """A token service as distribution's ``auth: token:`` expects: JWTs (RS256) carrying the
    signing certificate in ``x5c``, access granted to the users it knows.

    ``requests`` records (user or None, scopes) of every token asked for; ``token_field``
    picks the JSON field of the answer (``token`` or ``access_token``).
    """

    root: Path
    users: dict[str, str]
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    service: str = "uvship-test-registry"
    issuer: str = "uvship-test-issuer"
    expires_in: int = 300
    token_field: str = "token"
    requests: list[tuple[str | None, tuple[str, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = self.root / "token.key"
        self.cert = self.root / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
                        "-subj", "/CN=uvship test token issuer"],
                       check=True, capture_output=True)
        pem = self.cert.read_text()
        self.x5c = "".join(pem.split("-----")[2].split())  # base64 DER, as x5c wants
        self.port = free_port()
        self._lock = threading.Lock()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_auth(self) -> dict:
        return {"token": {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.cert)}}

    def sign(self, user: str | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user is not None:  # anonymous users get a token that allows nothing
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + self.expires_in, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), capture_output=True, check=True)
        return f"{signing_input}.{_b64url(sig.stdout)}"

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def serve(self) -> ThreadingHTTPServer:
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, user: str | None, scopes: list[str]) -> None:
                with svc._lock:
                    svc.requests.append((user, tuple(scopes)))
                body = json.dumps({svc.token_field: svc.sign(user, scopes),
                                   "expires_in": svc.expires_in}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _deny(self) -> None:
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, pw = base64.b64decode(header[6:]).decode().partition(":")
                    if svc.users.get(name) != pw:
                        return self._deny()
                    user = name
                self._answer(user, q.get("scope", []))

            def do_POST(self) -> None:  # OAuth2 refresh_token grant (identity tokens)
                n = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(n).decode())
                user = svc.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                if user is None or form.get("grant_type") != ["refresh_token"]:
                    return self._deny()
                self._answer(user, " ".join(form.get("scope", [])).split())

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd


@dataclass(frozen=True)
class TokenRegistry:
    server: RegistryServer
    tokens: TokenService
    username: str
    password: str


@pytest.fixture(name="token_registry", scope="module")
def token_registry_fixture(tmp_path_factory) -> Iterator[TokenRegistry]:
    """A registry that wants bearer tokens from a token service started beside it."""
    root = tmp_path_factory.mktemp("registry-token")
    user, password = "bob", "t0ken-pw-" + uuid.uuid4().hex[:12]
    svc = TokenService(root, {user: password})
    httpd = svc.serve()
    try:
        with running_registry(root / "registry", auth=svc.registry_auth()) as server:
            yield TokenRegistry(server, svc, user, password)
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- a registry too slow to answer -------------------------------------------------------

class SlowServer:
    """A plain-HTTP server on 127.0.0.1 that answers every request too slowly: the fault a
    registry behind a congested link or an overloaded proxy shows, which no real registry
    can be told to produce.

    ``mode`` is "silent" (reads the request, never answers), "headers" (trickles its status
    line and headers) or "body" (sends its headers at once and trickles a manifest of
    ``size`` bytes); trickling sends one byte at a time at ``rate`` bytes per second.
    ``requests`` counts the requests it read.
    """

    def __init__(self, mode: str, *, rate: float = 200.0, size: int = 4096) -> None:
        assert mode in ("silent", "headers", "body")
        self.mode, self.rate, self.size = mode, rate, size
        self.requests = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> SlowServer:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._sock.close()

    def _accept(self) -> None:
        self._sock.settimeout(0.05)  # closing a socket does not wake an accept() on it
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            self.requests += 1
            body = b'{"schemaVersion": 2, "padding": "' + b"x" * self.size + b'"}'
            headers = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image."
                       b"manifest.v1+json\r\nContent-Length: %d\r\n\r\n" % len(body))
            try:
                if self.mode == "silent":
                    self._stop.wait()
                elif self.mode == "headers":
                    self._trickle(conn, headers + body)
                else:
                    conn.sendall(headers)
                    self._trickle(conn, body)
            except OSError:
                return  # the client gave up: what a deadline is for

    def _trickle(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.wait(1 / self.rate):
                return
            conn.sendall(data[i:i + 1])


def write_docker_config(directory: Path, auths: dict, **extra) -> Path:
    """A docker config.json in ``directory`` (point DOCKER_CONFIG at it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": auths, **extra}))
    return path


def basic_auth_entry(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


__all__ = [
    "BasicRegistry",
    "RegistryServer",
    "SlowServer",
    "TokenRegistry",
    "TokenService",
    "basic_auth_entry",
    "basic_registry_fixture",
    "free_port",
    "needs_registry",
    "own_registry_fixture",
    "registry_fixture",
    "running_registry",
    "token_registry_fixture",
    "write_docker_config",
]
