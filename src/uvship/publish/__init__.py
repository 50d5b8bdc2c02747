"""Where built images go: outputs (OCI layouts, docker-archives, streams), local engines
and registries. Every publisher remembers what it wrote, for `uvship inspect`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..image.image import Image, MultiPlatformImage

if TYPE_CHECKING:
    from ..progress import Progress
    from .registry import Pushed


def export(image: Image | MultiPlatformImage, output: str,
           tags: list[str] | tuple[str, ...] = ()) -> str:
    """Write ``image`` (or an index) to an output target (``oci:DIR[:TAG]``,
    ``docker-archive:FILE``, ``docker-daemon:NAME``, ...); returns its digest."""
    from .outputs import parse_output

    out = parse_output(output)
    out.check(tags)
    out.write(image, tags)
    return image.digest


def push(image: Image | MultiPlatformImage, refs, *, insecure: tuple[str, ...] = (),
         progress: Progress | None = None) -> list[Pushed]:
    """Push ``image`` (or an index and every platform's image) to registry references,
    each image's SBOM attached after it; what each reference got."""
    from .history import remember
    from .registry import publish

    if isinstance(image, MultiPlatformImage):
        pushed = publish(image.index, list(image.images), refs, insecure=insecure,
                         progress=progress)
        for r in refs:
            for img in image.images:
                remember(img.digest, img.layer_info, f"{r}#{img.oci.platform}")
        return pushed
    pushed = publish(image.oci, [image], refs, insecure=insecure, progress=progress)
    for r in refs:
        remember(image.digest, image.layer_info, r)
    return pushed
