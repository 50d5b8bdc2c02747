"""Outputs an image is written to: an OCI layout or a docker-archive (a file, or a
stream), and the one parser of every output target (local engines: engine.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cache, oci, targets
from .._fs import check_writable_parent, is_stream, output_path, output_place
from ..errors import InputError, Option
from ..image.image import Image, MultiPlatformImage
from .history import remember


def _write_layout(target: oci.Image | oci.ImageIndex, images: list[Image] | tuple[Image, ...],
                  path: Path, tags: list[str]) -> None:
    """Write ``target`` (an image, or an index of ``images``) into an OCI layout under
    ``tags``, with each image's SBOM in the same index.json update: kept in blobs/, named
    by the entry's annotation, so that index.json lists only images (or indexes)."""
    from ..sbom.layout import layout_parts

    annotations, blobs = layout_parts((i.oci.descriptor(platform=False).to_json(), i.sbom)
                                      for i in images if i.sbom is not None)
    oci.write_layout(target, path, tags=tags, annotations=annotations, blobs=blobs)


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
        label = Option("output", str(self))
        check_tags(tags)
        if self.kind == "docker-archive":
            output_place(self.path, label)
            return
        if self.tag is not None:
            try:
                oci.check_tag(self.tag)
            except InputError as exc:
                raise InputError.of(label, f"the {exc.message}") from exc
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
        return self.stream and output_place(self.path, Option("output", str(self))).is_stdout

    def layout_tags(self, tags: list[str] | tuple[str, ...]) -> list[str]:
        """The tags an OCI layout gets: its own (oci:DIR:TAG), else each --tag's tag part,
        else latest."""
        return [self.tag] if self.tag else [tag_part(t) for t in tags] or ["latest"]

    def write(self, image: Image | MultiPlatformImage, tags: list[str] | tuple[str, ...] = (),
              note=None) -> bool:
        """Write ``image`` (or an index: OCI layouts only) unless this output already holds
        exactly it; True if written. What each layer holds is remembered for `inspect`.

        A layout gets the image under its tags, beside the tags it holds already; a stream
        is always written (what it held is gone)."""
        if isinstance(image, MultiPlatformImage):
            if self.kind != "oci":
                raise InputError.of(Option("output", str(self)),
                                    "a docker-archive holds one platform; expected "
                                    "oci:DIR[:TAG] for an image index",
                                    hint="write the index to an OCI layout or a registry, or "
                                    "build one platform")
            _write_layout(image.index, image.images, self.path, self.layout_tags(tags))
            for img in image.images:  # for `inspect`: what changed since the last build
                remember(img.digest, img.layer_info, f"{self}#{img.oci.platform}")
            return True
        stream = self.stream
        if not stream and self._up_to_date(image, tags):
            remember(image.digest, image.layer_info, str(self))
            return False
        if self.kind == "oci":
            _write_layout(image.oci, [image], self.path, self.layout_tags(tags))
        else:
            oci.write_docker_archive(image.oci, self.path, tags=list(tags))
        if not stream:
            self._remember(image, tags)
        remember(image.digest, image.layer_info, str(self))
        return True

    # A record of the last write, so an unchanged rebuild writes nothing.
    def _key(self) -> str:
        return hashlib.sha256(str(self.path.absolute()).encode()).hexdigest()

    def _state(self, image: Image, tags) -> dict[str, Any]:
        st = self.path.stat()
        state = {"digest": image.digest, "tags": list(tags), "tag": self.tag,
                 "ino": st.st_ino, "mtime": st.st_mtime_ns, "size": st.st_size}
        if self.kind == "oci":  # another writer's tag replaces index.json by a rename
            idx = (self.path / "index.json").stat()
            state["index"] = [idx.st_ino, idx.st_mtime_ns, idx.st_size]
        return state

    def _up_to_date(self, image: Image, tags) -> bool:
        if not self.path.exists():
            return False
        try:
            return (cache.read_record("outputs", self._key()) == self._state(image, tags)
                    and self._holds_blobs(image))
        except OSError:
            return False

    def _holds_blobs(self, image: Image) -> bool:
        """Whether a layout still holds every blob of ``image`` (one may have been removed
        by hand, or by a tool that cleans layouts); an archive is one file."""
        if self.kind != "oci":
            return True
        blobs = self.path / "blobs"
        for d in (*image.oci.layers, image.oci.config_descriptor(),
                  image.oci.descriptor(platform=False)):
            algo, hexd = d.digest.split(":", 1)
            try:
                if (blobs / algo / hexd).stat().st_size != d.size:
                    return False
            except OSError:
                return False
        return True

    def _remember(self, image: Image, tags) -> None:
        cache.write_record("outputs", self._key(), self._state(image, tags))


def check_tags(tags: list[str] | tuple[str, ...]) -> None:
    """Fail before any work on a ``--tag`` value that cannot name an image."""
    for t in tags:
        try:
            oci.repo_tag(t)
        except InputError as exc:
            raise InputError(f"tag {t!r}: expected an image name [REGISTRY/]REPOSITORY[:TAG] "
                             "with a lower-case repository, e.g. 'app:1.0' or "
                             "'localhost/team/app:1.0'",
                             hint="an OCI layout takes the part after the colon as its "
                                  "tag; a docker-archive lists the whole name") from exc


def tag_part(tag: str) -> str:
    """`name:1.0` -> `1.0` (an OCI layout names images by tag), `name` -> `latest`."""
    last = tag.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def parse_output(spec: str) -> Output:
    """``oci:DIR[:TAG]`` or ``docker-archive:FILE`` (``docker-archive:-`` is stdout), or an
    image name in a local engine: ``docker-daemon:NAME[:TAG]``, ``containers-storage:...``
    (see engine.py)."""
    subject = Option("output", spec)
    t = targets.parse(spec)
    if t.kind == "oci":
        if t.path is None or str(t.path) == "-":
            raise InputError.of(subject, "an OCI layout is a directory; expected oci:DIR[:TAG]",
                                hint="to write an image to stdout, use docker-archive:-")
        return Output("oci", t.path, t.tag)
    if t.kind == "docker-archive":
        if t.path is None:
            raise InputError.of(subject, "expected docker-archive:FILE (or docker-archive:- "
                                "for stdout)")
        return Output("docker-archive", output_path(str(t.path)))
    if t.kind in ("docker-daemon", "containers-storage"):
        from ..publish.engine import parse

        return parse(t)  # type: ignore[return-value]
    raise InputError.of(subject, "unknown kind of output (expected oci:DIR[:TAG], "
                        "docker-archive:FILE, docker-daemon:NAME[:TAG] or "
                        "containers-storage:NAME[:TAG])")
