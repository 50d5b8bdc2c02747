"""Images as uvship builds them: a base, uvship's layers on it, what each layer holds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from .. import oci, targets
from ..cache import Blobs, blob_dir
from ..errors import InputError, Option

SCRATCH = "scratch"
_REFERENCE_HINT = ("expected `scratch`, `oci:DIR[:TAG]`, `docker-archive:FILE` or a registry "
                   "reference such as `registry.example/team/base:1.0`")


@dataclass(frozen=True)
class Base:
    """Where an image's base came from: its name as given and its manifest digest."""

    name: str
    digest: str | None  # None for scratch


@dataclass(frozen=True)
class Image:
    """An image under construction. Immutable: every ``with_*`` returns a new one.

    ``runtime_paths`` are the files uvship's scratch runtime layers already hold, so a
    second venv copied into the image adds only what it lacks.
    """

    oci: oci.Image
    base: Base
    runtime_paths: frozenset[str] = frozenset()
    venvs: tuple[str, ...] = ()
    layer_info: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    runtime_components: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    # the CycloneDX SBOM of what uvship put in, written and pushed with the image
    sbom: bytes | None = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def scratch(cls, platform: str = "linux/amd64") -> Image:
        """An image with no distribution: uvship adds the runtime the interpreter needs."""
        return cls(oci.Image.scratch(platform), Base(SCRATCH, None))

    @classmethod
    def from_oci(cls, path: str | os.PathLike[str], tag: str | None = None,
                 platform: str | None = None) -> Image:
        img = oci.read_layout(path, tag, platform)
        name = f"oci:{path}" + (f":{tag}" if tag else "")
        return cls(img, Base(name, img.digest))

    @classmethod
    def from_docker_archive(cls, path: str | os.PathLike[str], tag: str | None = None) -> Image:
        img = oci.read_docker_archive(path, tag, blob_dir=blob_dir())
        return cls(img, Base(f"docker-archive:{path}", img.digest))

    @classmethod
    def from_reference(cls, ref: str, platform: str = "linux/amd64",
                       insecure: tuple[str, ...] = ()) -> Image:
        """`scratch`, `oci:DIR[:TAG]`, `docker-archive:FILE` or a registry reference;
        errors name the reference."""
        subject = Option("base", ref)
        try:
            return cls._from_reference(ref, platform, insecure)
        except InputError as exc:
            if exc.subject == subject:
                raise
            raise InputError.of(subject, exc.message, hint=exc.hint) from exc

    @classmethod
    def _from_reference(cls, ref: str, platform: str, insecure: tuple[str, ...]) -> Image:
        t = targets.parse(ref)
        if t.kind == "scratch":
            return cls.scratch(platform)
        if t.kind == "oci" and t.path is not None:
            if not t.path.exists():
                raise InputError(f"no such OCI layout {t.path}")
            img = oci.read_layout(t.path, t.tag, platform)
            return cls(img, Base(ref, img.digest))
        if t.kind == "docker-archive" and t.path is not None:
            if not t.path.is_file():
                raise InputError(f"no such file {t.path}")
            img = oci.read_docker_archive(t.path, blob_dir=blob_dir())
            return cls(img, Base(ref, img.digest))
        if t.kind == "registry":
            return cls.from_registry(ref, platform, insecure)
        raise InputError(f"unknown kind of base image ({_REFERENCE_HINT})")

    @classmethod
    def from_registry(cls, ref: str, platform: str = "linux/amd64",
                      insecure: tuple[str, ...] = ()) -> Image:
        """A base image from a registry: the manifest for ``platform`` (an index is followed),
        its layers pulled into the local cache (verified by digest, kept for next time)."""
        from ..registry import Reference, Registry

        r = Reference.parse(ref)
        with Registry(r.registry, insecure=insecure, blobs=Blobs()) as reg:
            img = reg.resolve_image(r, platform)
            img = reg.pull_layers(r, img)
        return cls(img, Base(str(r), img.digest))

    @property
    def is_scratch(self) -> bool:
        return self.base.name == SCRATCH

    @property
    def digest(self) -> str:
        return self.oci.digest

    # ------------------------------------------------------------------ config edits
    def _with(self, img: oci.Image) -> Image:
        return replace(self, oci=img)

    def with_env_variable(self, key: str, value: str) -> Image:
        return self._with(self.oci.with_env(key, value))

    def with_entrypoint(self, entrypoint: list[str] | None) -> Image:
        return self._with(self.oci.with_entrypoint(entrypoint))

    def with_cmd(self, cmd: list[str] | None) -> Image:
        return self._with(self.oci.with_cmd(cmd))

    def with_user(self, user: str) -> Image:
        return self._with(self.oci.with_user(user))

    def with_workdir(self, workdir: str) -> Image:
        return self._with(self.oci.with_workdir(workdir))

    def with_label(self, key: str, value: str) -> Image:
        return self._with(self.oci.with_label(key, value))

    def with_labels(self, labels: dict[str, str]) -> Image:
        return self._with(self.oci.with_labels(labels))

    def env(self) -> dict[str, str]:
        out = {}
        for item in self.oci.config_dict().get("config", {}).get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out


@dataclass(frozen=True)
class MultiPlatformImage:
    """One image per platform, written and pushed as one OCI image index."""

    images: tuple[Image, ...]

    @property
    def index(self) -> oci.ImageIndex:
        return oci.ImageIndex.of([i.oci for i in self.images])

    @property
    def digest(self) -> str:
        return self.index.digest

    @property
    def platforms(self) -> list[str]:
        return [str(i.oci.platform) for i in self.images]

    def image(self, platform: str) -> Image:
        """The image of one platform (``linux/arm64``)."""
        want = oci.Platform.parse(platform)
        for i in self.images:
            if i.oci.platform.matches(want):
                return i
        raise InputError(f"platform {platform}: not in this image (expected one of "
                         f"{', '.join(self.platforms)})")
