"""OCI images as immutable values, and the local places they live (OCI layout, docker-archive)."""

from __future__ import annotations

from .docker_archive import read_docker_archive, repo_tag, write_docker_archive
from .image import Image, ImageIndex, Layer, default_created, rfc3339
from .layout import (
    check_layout_dir,
    check_tag,
    layout_platforms,
    parse_layout_ref,
    read_layout,
    write_layout,
)
from .types import (
    ANNOTATION_REF_NAME,
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    FrozenMap,
    Platform,
    canonical_json,
    sha256_digest,
)

__all__ = [
    "ANNOTATION_REF_NAME",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Descriptor",
    "FrozenMap",
    "Image",
    "ImageIndex",
    "Layer",
    "Platform",
    "canonical_json",
    "check_layout_dir",
    "check_tag",
    "default_created",
    "layout_platforms",
    "parse_layout_ref",
    "read_docker_archive",
    "read_layout",
    "repo_tag",
    "rfc3339",
    "sha256_digest",
    "write_docker_archive",
    "write_layout",
]
