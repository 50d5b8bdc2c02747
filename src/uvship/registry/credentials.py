"""Registry credentials: found where docker and podman keep them, never shown when printed."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._proc import run
from ..errors import CommandError, InputError
from .reference import DOCKER_HUB

# The key docker's own tools use for Docker Hub in config.json and with credential helpers.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io", DOCKER_HUB})
# A credential helper answers with this user name when the secret is an identity token.
_TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    """A user name with a password or an identity token (an OAuth2 refresh token).

    ``repr``/``str`` show the user name and where the credentials came from, never the
    secret, so they are safe in messages and logs.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""  # the file or helper they came from, for messages

    def __repr__(self) -> str:
        secret = "identity token" if self.identity_token else "password"
        return f"Credentials(username={self.username!r}, {secret}=REDACTED, " \
               f"source={self.source!r})"

    def __str__(self) -> str:
        who = f"user {self.username}" if self.username else "an identity token"
        return f"{who} (from {self.source})" if self.source else who


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if env is None else env
    base = env.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def containers_auth_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """podman's auth files: ``$REGISTRY_AUTH_FILE``, then the runtime one, then the user's."""
    env = os.environ if env is None else env
    out = []
    if env.get("REGISTRY_AUTH_FILE"):
        out.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        out.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    out.append(Path.home() / ".config" / "containers" / "auth.json")
    return out


def find_credentials(registry: str, repository: str = "",
                     env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials for ``registry`` (as users write it: ``docker.io``, ``host:port``).

    Looked up in docker's config.json (its per-registry ``credHelpers``, its
    ``credsStore``, then ``auths``), then in podman's auth files (where a key may also
    name a namespace or repository: the longest match wins). None when nothing matches.
    """
    registry = _canonical_host(registry)
    for path, doc, docker in _config_files(env):
        found = _from_config(path, doc, registry, repository, docker=docker)
        if found is not None:
            return found
    return None


def _config_files(env: Mapping[str, str] | None) -> Iterator[tuple[Path, dict[str, Any], bool]]:
    for i, path in enumerate([docker_config_path(env), *containers_auth_paths(env)]):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InputError(f"registry credentials file {path}: cannot read it "
                             f"({exc.strerror})") from exc
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"registry credentials file {path}: expected JSON, found "
                             f"invalid data ({exc})") from exc
        if not isinstance(doc, dict):
            raise InputError(f"registry credentials file {path}: expected a JSON object")
        yield path, doc, i == 0


def _from_config(path: Path, doc: dict[str, Any], registry: str, repository: str,
                 *, docker: bool) -> Credentials | None:
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _canonical_host(key) == registry and isinstance(helper, str) and helper:
                found = _from_helper(helper, registry, f"{path}: credHelpers")
                if found is not None:
                    return found
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        found = _from_helper(store, registry, f"{path}: credsStore")
        if found is not None:
            return found
    auths = doc.get("auths") or {}
    if not isinstance(auths, dict):
        raise InputError(f"registry credentials file {path}: expected 'auths' to be an object")
    best: tuple[int, str] | None = None
    want = f"{registry}/{repository}" if repository else registry
    for key in auths:
        host, namespace = _split_key(key, docker=docker)
        if host != registry:
            continue
        scope = f"{host}/{namespace}" if namespace else host
        if want == scope or want.startswith(scope + "/"):
            if best is None or len(scope) > best[0]:
                best = (len(scope), key)
    if best is None:
        return None
    return _from_entry(auths[best[1]], f"{path}: auths[{best[1]!r}]")


def _from_entry(entry: object, where: str) -> Credentials | None:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object with 'auth' or 'username'/'password'")
    source = where.split(": ")[0]
    token = entry.get("identitytoken") or ""
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: 'auth' is not base64 of 'user:password'") from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise InputError(f"{where}: 'auth' decodes to no 'user:password' pair",
                             hint="write it as base64 of 'user:password'")
        return Credentials(user, password, str(token), source)
    if entry.get("username") or token:
        return Credentials(str(entry.get("username") or ""), str(entry.get("password") or ""),
                           str(token), source)
    return None  # an empty placeholder (left there when a credsStore holds the secret)


def _from_helper(helper: str, registry: str, where: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get`` (docker's credential helper protocol)."""
    program = f"docker-credential-{helper}"
    server = DOCKER_HUB_KEY if registry == DOCKER_HUB else registry
    try:
        proc = run([program, "get"], input=server, what=f"credential helper {program}")
    except CommandError as exc:
        if exc.returncode == 127:
            raise InputError(f"{where}: credential helper {program!r} is not installed",
                             hint=f"install {program}, or remove {helper!r} from the file"
                             ) from exc
        # Helpers say "credentials not found" on stdout with an exit status of 1.
        if not exc.stderr.strip() or "not found" in exc.stderr.lower():
            return None
        raise InputError(f"{where}: credential helper {program} failed for {server}: "
                         f"{exc.stderr.strip()}") from exc
    try:
        doc = json.loads(proc.stdout)
        user, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    except (ValueError, AttributeError) as exc:
        raise InputError(f"{where}: credential helper {program} answered with something "
                         "other than its JSON ({ServerURL, Username, Secret})") from exc
    if not secret:
        return None
    if user == _TOKEN_USER:
        return Credentials("", "", secret, program)
    return Credentials(user, secret, "", program)


def _split_key(key: str, *, docker: bool) -> tuple[str, str]:
    """(host, namespace) of an ``auths`` key.

    docker keeps only the host (its keys may be URLs: ``https://host/v1/``); podman's keys
    may name a namespace or repository, unless written as a URL.
    """
    k = key.strip()
    had_scheme = "://" in k
    if had_scheme:
        k = k.split("://", 1)[1]
    host, _, rest = k.partition("/")
    namespace = "" if (docker or had_scheme) else rest.strip("/")
    return _canonical_host(host), namespace


def _canonical_host(host: str) -> str:
    """A registry key's host as users write it: ``index.docker.io`` and friends are docker.io."""
    host = host.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host
