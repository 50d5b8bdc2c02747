"""Registry authentication as an httpx auth flow: anonymous, then Basic or a Bearer token."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

import httpx

from .credentials import Credentials, find_credentials
from .errors import CHECK_HINT, LOGIN_HINT, AuthenticationError, from_response, redact_url

# Requests carry the token scopes they need under this extension key; without it the
# scopes are read from the URL path and method (see scopes_for).
SCOPES = "uvship.scopes"
# Tokens without expires_in live 60 s (distribution's token spec); use them a little less
# than their lifetime, so a token never expires between being chosen and being checked.
_DEFAULT_EXPIRES = 60
_MARGIN = 10
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs|manifests|tags)(?:/|$)")
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)')


def repository_scope(name: str, *actions: str) -> str:
    """``repository:NAME:pull,push`` (the token scope grammar of distribution)."""
    return f"repository:{name}:{','.join(actions)}"


def scopes_for(request: httpx.Request) -> tuple[str, ...]:
    """The scopes a request needs: ``pull`` to read, ``pull,push`` to write, and ``pull`` on
    the source repository of a cross-repository mount."""
    explicit = request.extensions.get(SCOPES)
    if explicit:
        return tuple(explicit)
    m = _REPO_PATH.match(request.url.path)
    if not m:
        return ()
    name = m.group("name")
    if request.method in ("GET", "HEAD"):
        return (repository_scope(name, "pull"),)
    out = [repository_scope(name, "pull", "push")]
    source = request.url.params.get("from")
    if request.url.params.get("mount") and source:
        out.append(repository_scope(source, "pull"))
    return tuple(out)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="..",service="..",scope=".."`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for key, value in _PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return scheme.lower(), params


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """One scope per resource, with the union of the actions asked for it, in first-seen
    order: ``repository:a:pull,push`` and ``repository:a:pull`` are one scope."""
    merged: dict[tuple[str, str], list[str]] = {}
    for s in scopes:
        kind, _, rest = s.partition(":")
        name, _, actions = rest.rpartition(":")
        acts = merged.setdefault((kind, name), [])
        acts.extend(a for a in actions.split(",") if a and a not in acts)
    return tuple(f"{kind}:{name}:{','.join(acts)}" for (kind, name), acts in merged.items())


def _actions(scopes: Iterable[str]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for s in scopes:
        kind, _, rest = s.partition(":")
        name, _, actions = rest.rpartition(":")
        out.setdefault((kind, name), set()).update(a for a in actions.split(",") if a)
    return out


def _covers(have: Iterable[str], need: Iterable[str]) -> bool:
    granted = _actions(have)
    for key, acts in _actions(need).items():
        got = granted.get(key, set())
        if "*" not in got and not acts <= got:
            return False
    return True


@dataclass
class _Token:
    value: str
    scopes: frozenset[str]
    usable_until: float  # time.monotonic()


class TokenCache:
    """Bearer tokens by (registry, user, scope set), reused until shortly before expiry.

    Shared by every client in the process (a build that pulls a base image and pushes the
    result asks once per scope). Fetches of the same key happen one at a time, so parallel
    uploads wait for one token instead of each fetching their own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], list[_Token]] = {}
        self._locks: dict[tuple[str, str, frozenset[str]], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, registry: str, user: str, scopes: Iterable[str]) -> str | None:
        need = frozenset(scopes)
        now = self._clock()
        with self._guard:
            live = [t for t in self._tokens.get((registry, user), []) if t.usable_until > now]
            self._tokens[(registry, user)] = live
            exact = [t for t in live if t.scopes == need]
            wider = [t for t in live if _covers(t.scopes, need)]
        found = exact or wider
        return found[0].value if found else None

    def put(self, registry: str, user: str, scopes: Iterable[str], token: str,
            expires_in: int) -> None:
        lifetime = max(expires_in - min(_MARGIN, expires_in // 10), 1)
        entry = _Token(token, frozenset(scopes), self._clock() + lifetime)
        with self._guard:
            self._tokens.setdefault((registry, user), []).append(entry)

    def drop(self, registry: str, user: str, token: str) -> None:
        with self._guard:
            self._tokens[(registry, user)] = [
                t for t in self._tokens.get((registry, user), []) if t.value != token]

    def lock(self, registry: str, user: str, scopes: Iterable[str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((registry, user, frozenset(scopes)), threading.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


TOKENS = TokenCache()


class RegistryAuth(httpx.Auth):
    """The auth flow of one registry, as docker and podman run it.

    A request goes out anonymous first. On ``401`` with ``WWW-Authenticate: Basic`` it is
    sent again with the user's credentials; with ``Bearer realm=..,service=..`` a token for
    the request's scopes is fetched from the realm (with the credentials, if any) and the
    request sent again with it. What the registry asked for is remembered, so later
    requests carry credentials or a cached token from the start. Synchronous clients only.

    ``credentials`` None means: look them up (docker config.json, podman auth.json) the
    first time the registry asks for them.
    """

    def __init__(self, registry: str, credentials: Credentials | None = None, *,
                 lookup: bool = True, tokens: TokenCache = TOKENS) -> None:
        self.registry = registry
        self._credentials = credentials
        self._looked_up = credentials is not None or not lookup
        self._tokens = tokens
        self._scheme: str | None = None  # "basic" or "bearer", once the registry said
        self._bearer: dict[str, str] = {}  # realm and service of the registry's challenge
        self._lock = threading.Lock()

    @property
    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._looked_up:
                self._credentials = find_credentials(self.registry)
                self._looked_up = True
            return self._credentials

    def _user(self) -> str:
        """Who tokens are cached for: the user name, or a fingerprint of an identity token
        (kept in memory only), so that other credentials never get these tokens."""
        c = self.credentials
        if c is None:
            return ""
        if c.identity_token:
            return "token:" + hashlib.sha256(c.identity_token.encode()).hexdigest()[:16]
        return c.username

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scopes = scopes_for(request)
        if self._scheme == "basic" and self.credentials is not None:
            request.headers["Authorization"] = self._basic_header()
        elif self._scheme == "bearer":
            token = yield from self._token(scopes)
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        sent = request.headers.get("Authorization", "")
        if scheme == "basic":
            if self.credentials is None or sent.startswith("Basic "):
                return  # nothing (else) to offer: the caller reports the 401
            self._scheme = "basic"
            request.headers["Authorization"] = self._basic_header()
        elif scheme == "bearer" and params.get("realm"):
            self._scheme = "bearer"
            self._bearer = {"realm": params["realm"], "service": params.get("service", "")}
            if sent.startswith("Bearer "):
                # expired, revoked, or short of a scope the registry named: fetch a new one
                self._tokens.drop(self.registry, self._user(), sent.removeprefix("Bearer "))
            wanted = merge_scopes([*scopes, *params.get("scope", "").split()])
            token = yield from self._token(wanted, fresh=sent.startswith("Bearer "))
            if not token:
                return
            request.headers["Authorization"] = f"Bearer {token}"
        else:
            return
        yield request

    def _basic_header(self) -> str:
        c = self.credentials
        assert c is not None
        raw = f"{c.username}:{c.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _token(self, scopes: tuple[str, ...], *, fresh: bool = False
               ) -> Generator[httpx.Request, httpx.Response, str | None]:
        """A token for ``scopes``: cached, else fetched from the realm (one fetch at a time)."""
        user = self._user()
        if not fresh and (cached := self._tokens.get(self.registry, user, scopes)):
            return cached
        # Held across the yield on purpose: the other threads wanting this token wait for
        # this fetch and then find it in the cache. httpx closes the flow (releasing it)
        # whatever happens to the request.
        with self._tokens.lock(self.registry, user, scopes):
            if not fresh and (cached := self._tokens.get(self.registry, user, scopes)):
                return cached
            response = yield self._token_request(scopes)
            response.read()
            if response.status_code in (401, 403):
                who = f" (user {self.credentials.username})" if self.credentials and \
                    self.credentials.username else ""
                detail = from_response(response)
                if self.credentials is None:
                    raise AuthenticationError(
                        f"authentication required by {self.registry}: the token service "
                        f"refused an anonymous token ({detail.message})",
                        method=detail.method, url=detail.url, status=detail.status,
                        errors=detail.errors, hint=LOGIN_HINT.format(self.registry))
                raise AuthenticationError(
                    f"authentication failed for {self.registry}{who}: {detail.message}",
                    method=detail.method, url=detail.url, status=detail.status,
                    errors=detail.errors, hint=CHECK_HINT.format(self.registry))
            if response.status_code != 200:
                raise from_response(response, what=f"token for {self.registry}")
            try:
                doc = response.json()
                token = doc.get("token") or doc.get("access_token")
                expires = int(doc.get("expires_in") or _DEFAULT_EXPIRES)
            except (ValueError, AttributeError, TypeError):
                token, expires = None, 0
            if not isinstance(token, str) or not token:
                req = response.request
                raise AuthenticationError(
                    f"{req.method} {redact_url(req.url)}: expected JSON with a 'token' or "
                    f"'access_token' from the token service of {self.registry}, found none",
                    method=req.method, url=redact_url(req.url), status=response.status_code)
            self._tokens.put(self.registry, user, scopes, token, expires)
            return token

    def _token_request(self, scopes: tuple[str, ...]) -> httpx.Request:
        realm, service = self._bearer["realm"], self._bearer.get("service", "")
        c = self.credentials
        if c is not None and c.identity_token:
            # An identity token is an OAuth2 refresh token: exchanged by POST (docker's way).
            form = {"grant_type": "refresh_token", "refresh_token": c.identity_token,
                    "service": service, "client_id": "uvship", "scope": " ".join(scopes)}
            return httpx.Request("POST", realm, data=form)
        params = [("service", service)] if service else []
        params += [("scope", s) for s in scopes]
        headers = {"Authorization": self._basic_header()} if c is not None and c.username \
            else {}
        return httpx.Request("GET", httpx.URL(realm).copy_merge_params(params), headers=headers)
