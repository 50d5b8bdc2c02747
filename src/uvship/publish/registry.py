"""Images and indexes pushed to registries, each image's SBOM attached after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import oci
from ..errors import UvshipError
from ..image.image import Image

if TYPE_CHECKING:
    from ..progress import Progress
    from ..registry import Reference, Registry
    from ..sbom.referrers import Attached


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
    from ..sbom.referrers import attach_to_registry

    assert image.sbom is not None
    try:
        return SbomAttachment(image.digest, attached=attach_to_registry(reg, ref, image.digest,
                                                                        image.sbom))
    except UvshipError as exc:  # refused, or the registry failed: the image stays pushed
        return SbomAttachment(image.digest, error=exc)


