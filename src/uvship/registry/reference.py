"""Image references (``[registry/]repository[:tag][@digest]``), read as docker and podman do."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import InputError

DOCKER_HUB = "docker.io"
# Docker Hub's API is served from another host than the name users write.
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"
# Hosts that speak plain HTTP without being asked to (docker treats loopback as insecure).
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

# The grammar of distribution/reference (reference/regexp.go).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
# go-digest's registered algorithms and their hex lengths.
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_ANONYMOUS_ID = re.compile(r"[a-f0-9]{64}")
_NAME_MAX = 255

_EXAMPLES = "e.g. 'python:3.12-slim', 'ghcr.io/org/app:1.0' or 'localhost:5000/app@sha256:...'"


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference: registry, repository, and a tag and/or digest.

    ``str()`` gives the canonical form (``docker.io/library/python:3.12-slim``), which
    ``parse`` reads back to an equal value. A reference with neither tag nor digest
    gets the tag ``latest``, as ``docker pull`` gives it.
    """

    registry: str  # as written by users: docker.io, ghcr.io, localhost:5000
    repository: str  # the path inside the registry: library/python, org/app
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, value: str | Reference) -> Reference:
        """Read ``value`` as ``docker pull`` would; InputError naming ``value`` if it is not
        a reference."""
        if isinstance(value, Reference):
            return value
        if not isinstance(value, str) or not value:
            raise InputError(f"image reference {value!r}: expected a reference, {_EXAMPLES}")
        s = value
        name, at, digest = s.partition("@")
        digest = digest if at else None
        if digest is not None:
            _check_digest(value, digest)
        # A ':' after the last '/' starts a tag; one before it is a registry port.
        tag: str | None = None
        colon = name.rfind(":")
        if colon > name.rfind("/"):
            name, tag = name[:colon], name[colon + 1:]
            if not _TAG.fullmatch(tag):
                raise InputError(f"image reference {value!r}: invalid tag {tag!r}; expected "
                                 "up to 128 letters, digits, '_', '.' or '-' (not starting "
                                 "with '.' or '-')")
        registry, repository = _split_name(value, name)
        if digest is None and tag is None:
            tag = DEFAULT_TAG
        return cls(registry, repository, tag, digest)

    # ---- derived names --------------------------------------------------------------

    @property
    def name(self) -> str:
        """``registry/repository``, e.g. ``docker.io/library/python``."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host serving the registry API (Docker Hub's is not ``docker.io``)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def context(self, *, tag: str | None = None, digest: str | None = None) -> Reference:
        """This repository with another tag and/or digest (``latest`` when neither)."""
        where = f"{self.name}"
        if tag is not None and not _TAG.fullmatch(tag):
            raise InputError(f"tag {tag!r} for {where}: expected up to 128 letters, digits, "
                             "'_', '.' or '-' (not starting with '.' or '-')")
        if digest is not None:
            _check_digest(f"{where}@{digest}", digest)
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return replace(self, tag=tag, digest=digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def parse_registry(value: str) -> str:
    """A registry host as users write it (``ghcr.io``, ``localhost:5000``), validated;
    ``index.docker.io`` is ``docker.io``."""
    host = value.strip()
    if not _DOMAIN.fullmatch(host):
        raise InputError(f"registry {value!r}: expected a host name with an optional port, "
                         "e.g. 'ghcr.io' or 'localhost:5000'")
    return DOCKER_HUB if host in ("index.docker.io", DOCKER_HUB_API) else host


def check_repository(name: str) -> str:
    """``name`` if it is a repository path (``org/app``), else InputError naming it."""
    if not isinstance(name, str) or not _PATH.fullmatch(name) or len(name) > _NAME_MAX:
        raise InputError(f"repository {name!r}: expected lowercase components of letters "
                         "and digits separated by '/', e.g. 'org/app'")
    return name


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.1`` or ``::1``, with or without a port."""
    if host.startswith("["):
        return host[: host.find("]") + 1] in LOOPBACK
    return host.rsplit(":", 1)[0] in LOOPBACK


def _split_name(value: str, name: str) -> tuple[str, str]:
    """(registry, repository) of a name without tag or digest, normalised as docker does."""
    first, slash, rest = name.partition("/")
    # The first component is a registry when it looks like a host: it has a dot or a
    # port, is 'localhost', or has upper case (repository paths never do).
    if slash and (any(c in first for c in ".:") or first == "localhost"
                  or first != first.lower()):
        registry, path = first, rest
        if not _DOMAIN.fullmatch(registry):
            raise InputError(f"image reference {value!r}: invalid registry {registry!r}; "
                             "expected a host name with an optional port")
        if registry == "index.docker.io":
            registry = DOCKER_HUB
    else:
        registry, path = DOCKER_HUB, name
        if _ANONYMOUS_ID.fullmatch(path):
            raise InputError(f"image reference {value!r}: a 64-character hexadecimal name "
                             "reads as an image ID, not a repository",
                             hint="to pull by digest, write NAME@sha256:<hex>")
    if not path:
        raise InputError(f"image reference {value!r}: expected a repository name, "
                         f"found none; {_EXAMPLES}")
    if path != path.lower() and _PATH.fullmatch(path.lower()):
        raise InputError(f"image reference {value!r}: repository {path!r} must be lowercase")
    if not _PATH.fullmatch(path):
        raise InputError(f"image reference {value!r}: invalid repository {path!r}; expected "
                         "lowercase components of letters and digits separated by '/', "
                         "joined by '.', '_', '__' or '-'")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"  # official images live in the 'library' namespace
    if len(registry) + 1 + len(path) > _NAME_MAX:
        raise InputError(f"image reference {value!r}: expected a name of at most "
                         f"{_NAME_MAX} characters, found {len(registry) + 1 + len(path)}")
    return registry, path


def _check_digest(value: str, digest: str) -> None:
    algo, _, hexpart = digest.partition(":")
    want = _DIGEST_HEX.get(algo)
    if not _DIGEST.fullmatch(digest) or want is None or len(hexpart) != want \
            or hexpart != hexpart.lower():
        raise InputError(f"image reference {value!r}: invalid digest {digest!r}; expected "
                         "'sha256:' and 64 lowercase hex digits")
