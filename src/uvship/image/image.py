"""Images as the API and CLI see them: a base, uvship's layers on it, and where they are written."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import oci
from .._fs import check_writable_parent, is_stream, output_path, output_place
from ..cache import cache_root
from ..errors import InputError, UvshipError

if TYPE_CHECKING:
    from ..progress import Progress
    from ..registry import Reference, Registry
    from ..sbom.cyclonedx import Attached

SCRATCH = "scratch"
_REFERENCE_HINT = ("expected `scratch`, `oci:DIR[:TAG]`, `docker-archive:FILE` or a registry "
                   "reference such as `registry.example/team/base:1.0`")


def _looks_like_reference(ref: str) -> bool:
    """A registry reference rather than a local path: a name, maybe a host, a tag or digest."""
    import re

    return bool(re.fullmatch(r"[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9._-]+)*"
                             r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?",
                             ref)) and ("/" in ref or ":" in ref or "@" in ref)


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
        img = oci.read_docker_archive(path, tag)
        return cls(img, Base(f"docker-archive:{path}", img.digest))

    @classmethod
    def from_reference(cls, ref: str, platform: str = "linux/amd64",
                       insecure: tuple[str, ...] = ()) -> Image:
        """`scratch`, `oci:DIR[:TAG]`, `docker-archive:FILE` or a registry reference;
        errors name the reference."""
        try:
            return cls._from_reference(ref, platform, insecure)
        except InputError as exc:
            if exc.message.startswith(f"--base {ref}"):
                raise
            raise InputError(f"--base {ref}: {exc.message}", hint=exc.hint) from None

    @classmethod
    def _from_reference(cls, ref: str, platform: str, insecure: tuple[str, ...]) -> Image:
        if ref == SCRATCH:
            return cls.scratch(platform)
        if ref.startswith("oci:"):
            path, tag = oci.parse_layout_ref(ref)
            if not Path(path).exists():
                raise InputError(f"--base {ref}: no such OCI layout {path}")
            img = oci.read_layout(path, tag, platform)
            return cls(img, Base(ref, img.digest))
        if ref.startswith("docker-archive:"):
            path = Path(ref.split(":", 1)[1])
            if not path.is_file():
                raise InputError(f"--base {ref}: no such file {path}")
            img = oci.read_docker_archive(path)
            return cls(img, Base(ref, img.digest))
        if _looks_like_reference(ref):
            return cls.from_registry(ref, platform, insecure)
        raise InputError(f"--base {ref}: unknown kind of base image ({_REFERENCE_HINT})")

    @classmethod
    def from_registry(cls, ref: str, platform: str = "linux/amd64",
                      insecure: tuple[str, ...] = ()) -> Image:
        """A base image from a registry: the manifest for ``platform`` (an index is followed),
        its layers pulled into the local cache (verified by digest, kept for next time)."""
        from ..registry import Reference, Registry

        r = Reference.parse(ref)
        with Registry(r.registry, insecure=insecure) as reg:
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

    # ------------------------------------------------------------------ outputs
    def export(self, output: str, tags: list[str] | tuple[str, ...] = ()) -> str:
        """Write the image to ``oci:DIR[:TAG]`` or ``docker-archive:FILE``; returns the digest."""
        out = parse_output(output)
        out.check(tags)
        out.write(self, tags)
        return self.digest

    def publish(self, *refs: str, insecure: tuple[str, ...] = (),
                progress: Progress | None = None) -> list[Pushed]:
        """Push the image to registry references (several tags of one repository go in one
        push: blobs once, then the manifest, then each tag), each with its SBOM attached;
        ``progress`` hears how long transfers are doing.

        Returns what each reference got. A failed push raises; an SBOM that could not be
        attached to a pushed image does not: its ``Pushed.sbom_error`` says why.
        """
        return publish(self.oci, [self], refs, insecure=insecure, progress=progress)


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

    def export(self, output: str, tags: list[str] | tuple[str, ...] = ()) -> str:
        """Write the index to ``oci:DIR[:TAG]``; returns its digest."""
        out = parse_output(output)
        if out.kind != "oci":
            raise InputError(f"--output {out}: a docker-archive holds one platform; expected "
                             "oci:DIR[:TAG] for an image index",
                             hint="write the index with oci:DIR or --push, or build one platform")
        out.check(tags)
        _write_layout(self.index, self.images, out.path, out.layout_tags(tags))
        return self.digest

    def publish(self, *refs: str, insecure: tuple[str, ...] = (),
                progress: Progress | None = None) -> list[Pushed]:
        """Push the index (and every platform's image) to registry references, each
        platform's SBOM attached; returns what each reference got, as Image.publish does."""
        return publish(self.index, list(self.images), refs, insecure=insecure,
                       progress=progress)


def _write_layout(target: oci.Image | oci.ImageIndex, images: list[Image] | tuple[Image, ...],
                  path: Path, tags: list[str]) -> None:
    """Write ``target`` (an image, or an index of ``images``) into an OCI layout under
    ``tags``, with each image's SBOM in the same index.json update: kept in blobs/, named
    by the entry's annotation, so that index.json lists only images (or indexes)."""
    from ..sbom.cyclonedx import layout_parts

    annotations, blobs = layout_parts((i.oci.descriptor(platform=False).to_json(), i.sbom)
                                      for i in images if i.sbom is not None)
    oci.write_layout(target, path, tags=tags, annotations=annotations, blobs=blobs)


@dataclass(frozen=True)
class SbomAttachment:
    """An image's SBOM in one repository: ``attached`` there, or not, and ``error`` why."""

    image: str  # the digest of the image the SBOM describes
    attached: Attached | None = None
    error: UvshipError | None = None


@dataclass(frozen=True)
class Pushed:
    """A registry reference an image (or index) was pushed to, and its SBOMs there: one per
    image, each platform's for an index; none when the image carried none."""

    reference: str
    digest: str
    sboms: tuple[SbomAttachment, ...] = ()

    @property
    def sbom_error(self) -> UvshipError | None:
        """Why an SBOM of the image is missing from the registry; None when all are there."""
        return next((s.error for s in self.sboms if s.error is not None), None)


def publish(target: oci.Image | oci.ImageIndex, images: list[Image], refs, *,
            insecure: tuple[str, ...] = (), progress: Progress | None = None) -> list[Pushed]:
    """Push ``target`` (an image, or an index of ``images``) to ``refs``, each registry
    base's layers mounted rather than uploaded, and each image's SBOM attached.

    What each of ``refs`` got, in their order. The SBOM goes after the image is in place,
    as a separate artifact (as ko and cosign attach theirs): an SBOM that cannot be attached
    leaves a pushed image that works, so it is reported in the result, never raised.
    """
    from ..registry import Reference, Registry

    mount = [Reference.parse(i.base.name) for i in images
             if i.base.digest and not i.is_scratch
             and not i.base.name.startswith(("oci:", "docker-archive:"))]
    parsed = [Reference.parse(r) for r in refs]
    groups: dict[tuple[str, str], list] = {}
    for r in parsed:
        groups.setdefault((r.registry, r.repository), []).append(r)
    sboms: dict[tuple[str, str], tuple[SbomAttachment, ...]] = {}
    for (registry, repository), group in groups.items():
        with Registry(registry, insecure=insecure, progress=progress) as reg:
            reg.push_image(target, group, mount_from=[m for m in mount
                                                     if m.registry == registry])
            sboms[registry, repository] = tuple(_attach_sbom(reg, group[0], img)
                                                for img in images if img.sbom is not None)
    return [Pushed(given, target.digest, sboms[r.registry, r.repository])
            for given, r in zip(refs, parsed, strict=True)]


def _attach_sbom(reg: Registry, ref: Reference, image: Image) -> SbomAttachment:
    from ..sbom.cyclonedx import attach_to_registry

    assert image.sbom is not None
    try:
        return SbomAttachment(image.digest, attached=attach_to_registry(reg, ref, image.digest,
                                                                        image.sbom))
    except UvshipError as exc:  # refused, or the registry failed: the image stays pushed
        return SbomAttachment(image.digest, error=exc)


@dataclass(frozen=True)
class Output:
    """A place an image is written: an OCI layout or a docker-archive (a file, or a stream:
    ``-`` for stdout, a FIFO, a character device)."""

    kind: str  # "oci" | "docker-archive"
    path: Path
    tag: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}" + (f":{self.tag}" if self.tag else "")

    def check(self, tags: list[str] | tuple[str, ...] = ()) -> None:
        """Fail before any work when the output cannot be written, or ``tags`` (``--tag``
        values) cannot name the image in it."""
        label = f"--output {self}"
        check_tags(tags)
        if self.kind == "docker-archive":
            output_place(self.path, label)
            return
        if self.tag is not None:
            try:
                oci.check_tag(self.tag)
            except InputError as exc:
                raise InputError(f"{label}: the {exc.message}") from None
        for t in self.layout_tags(tags):
            oci.check_tag(t)
        if not self.path.exists():
            check_writable_parent(self.path, label)
        oci.check_layout_dir(self.path, label)

    @property
    def stream(self) -> bool:
        """Whether the output is written through as a stream (not replaced atomically)."""
        return self.kind == "docker-archive" and is_stream(self.path)

    @property
    def is_stdout(self) -> bool:
        """Whether the output is this process's stdout (then results go elsewhere)."""
        return self.stream and output_place(self.path, f"--output {self}").is_stdout

    def layout_tags(self, tags: list[str] | tuple[str, ...]) -> list[str]:
        """The tags an OCI layout gets: its own (oci:DIR:TAG), else each --tag's tag part,
        else latest."""
        return [self.tag] if self.tag else [tag_part(t) for t in tags] or ["latest"]

    def write(self, image: Image, tags: list[str] | tuple[str, ...] = ()) -> bool:
        """Write ``image`` unless this output already holds exactly it; True if written.

        A layout gets the image under its tags, beside the tags it holds already; a stream
        is always written (what it held is gone)."""
        stream = self.stream
        if not stream and self._up_to_date(image, tags):
            return False
        if self.kind == "oci":
            _write_layout(image.oci, [image], self.path, self.layout_tags(tags))
        else:
            oci.write_docker_archive(image.oci, self.path, tags=list(tags))
        if not stream:
            self._remember(image, tags)
        return True

    # A record of the last write, so an unchanged rebuild writes nothing.
    def _record(self) -> Path:
        h = hashlib.sha256(str(self.path.absolute()).encode()).hexdigest()
        return cache_root() / "outputs" / f"{h}.json"

    def _state(self, image: Image, tags) -> dict[str, Any]:
        st = self.path.stat()
        state = {"digest": image.digest, "tags": list(tags), "tag": self.tag,
                 "ino": st.st_ino, "mtime": st.st_mtime_ns, "size": st.st_size}
        if self.kind == "oci":  # another writer's tag replaces index.json by a rename
            idx = (self.path / "index.json").stat()
            state["index"] = [idx.st_ino, idx.st_mtime_ns, idx.st_size]
        return state

    def _up_to_date(self, image: Image, tags) -> bool:
        rec = self._record()
        if not rec.is_file() or not self.path.exists():
            return False
        try:
            return json.loads(rec.read_text()) == self._state(image, tags)
        except (ValueError, OSError):
            return False

    def _remember(self, image: Image, tags) -> None:
        rec = self._record()
        rec.parent.mkdir(parents=True, exist_ok=True)
        tmp = rec.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._state(image, tags)))
        os.replace(tmp, rec)


def check_tags(tags: list[str] | tuple[str, ...]) -> None:
    """Fail before any work on a ``--tag`` value that cannot name an image."""
    for t in tags:
        try:
            oci.repo_tag(t)
        except InputError:
            raise InputError(f"tag {t!r}: expected an image name [REGISTRY/]REPOSITORY[:TAG] "
                             "with a lower-case repository, e.g. 'app:1.0' or "
                             "'localhost/team/app:1.0'",
                             hint="an OCI layout takes the part after the colon as its "
                                  "tag; a docker-archive lists the whole name") from None


def tag_part(tag: str) -> str:
    """`name:1.0` -> `1.0` (an OCI layout names images by tag), `name` -> `latest`."""
    last = tag.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def parse_output(spec: str) -> Output:
    """``oci:DIR[:TAG]`` or ``docker-archive:FILE`` (``docker-archive:-`` is stdout), or an
    image name in a local engine: ``docker-daemon:NAME[:TAG]``, ``containers-storage:...``
    (see engine.py)."""
    if spec.startswith("oci:"):
        path, tag = oci.parse_layout_ref(spec)
        if spec.removeprefix("oci:").partition(":")[0] in ("", "-"):
            raise InputError(f"--output {spec}: an OCI layout is a directory; expected "
                             "oci:DIR[:TAG]",
                             hint="to write an image to stdout, use docker-archive:-")
        return Output("oci", Path(path), tag)
    if spec.startswith("docker-archive:"):
        file = spec.split(":", 1)[1]
        if not file:
            raise InputError(f"--output {spec}: expected docker-archive:FILE (or "
                             "docker-archive:- for stdout)")
        return Output("docker-archive", output_path(file))
    kind = spec.split(":", 1)[0]
    if kind in ("docker-daemon", "containers-storage"):
        from ..publish.engine import parse

        return parse(kind, spec)  # type: ignore[return-value]
    raise InputError(f"--output {spec}: unknown kind of output (expected oci:DIR[:TAG], "
                     "docker-archive:FILE, docker-daemon:NAME[:TAG] or "
                     "containers-storage:NAME[:TAG])")
