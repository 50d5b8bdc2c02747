"""OCI registries over the distribution API: references, credentials, pull and push."""

from __future__ import annotations

from .auth import TOKENS, RegistryAuth, TokenCache, parse_challenge, repository_scope
from .client import ALL_MANIFEST_TYPES, CHUNK_SIZE, Registry, TransferStats
from .credentials import Credentials, docker_config_path, find_credentials
from .deadline import MIN_RATE_ENV, TIMEOUT_ENV, DeadlinePolicy
from .errors import AuthenticationError, DeadlineExceeded, ErrorDetail, RegistryError, redact_url
from .reference import DOCKER_HUB, DOCKER_HUB_API, Reference
from .retry import RetryPolicy

__all__ = [
    "ALL_MANIFEST_TYPES",
    "CHUNK_SIZE",
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "MIN_RATE_ENV",
    "TIMEOUT_ENV",
    "TOKENS",
    "AuthenticationError",
    "Credentials",
    "DeadlineExceeded",
    "DeadlinePolicy",
    "ErrorDetail",
    "Reference",
    "Registry",
    "RegistryAuth",
    "RegistryError",
    "RetryPolicy",
    "TokenCache",
    "TransferStats",
    "docker_config_path",
    "find_credentials",
    "parse_challenge",
    "redact_url",
    "repository_scope",
]
