"""OCI images as immutable values, and the local places they live (OCI layout, docker-archive)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Names are loaded from their submodule on first use (PEP 562): a build that never
# writes a docker-archive or reads a layout does not import them.
_WHERE = {
    "ANNOTATION_REF_NAME": "types",
    "DOCKER_CONFIG": "types",
    "DOCKER_FOREIGN_LAYER": "types",
    "DOCKER_LAYER_GZIP": "types",
    "DOCKER_MANIFEST": "types",
    "DOCKER_MANIFEST_LIST": "types",
    "Descriptor": "types",
    "FrozenMap": "types",
    "Image": "image",
    "ImageIndex": "image",
    "Layer": "image",
    "OCI_CONFIG": "types",
    "OCI_INDEX": "types",
    "OCI_LAYER": "types",
    "OCI_LAYER_GZIP": "types",
    "OCI_LAYER_ZSTD": "types",
    "OCI_MANIFEST": "types",
    "Platform": "types",
    "canonical_json": "types",
    "check_layout_dir": "layout",
    "check_tag": "layout",
    "default_created": "image",
    "layout_platforms": "layout",
    "parse_layout_ref": "layout",
    "read_docker_archive": "docker_archive",
    "read_layout": "layout",
    "repo_tag": "docker_archive",
    "rfc3339": "image",
    "sha256_digest": "types",
    "write_docker_archive": "docker_archive",
    "write_layout": "layout",
}

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


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value
