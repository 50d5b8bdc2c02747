"""The OCI image layout on disk (oci-layout, index.json, blobs/sha256/...): read and write."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import InputError
from ._blobs import hash_file, load_json, place_blob
from .image import Image, ImageIndex, image_from_parts
from .types import (
    ANNOTATION_REF_NAME,
    CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Descriptor,
    Platform,
    canonical_json,
    sha256_digest,
)

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
# The grammar of org.opencontainers.image.ref.name (image-spec annotations.md).
_REF_NAME = re.compile(
    r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*"
)


def parse_layout_ref(ref: str) -> tuple[Path, str | None]:
    """``oci:DIR[:TAG]`` (the ``oci:`` optional) -> (DIR, TAG or None), as skopeo splits it."""
    ref = ref.removeprefix("oci:")
    path, sep, tag = ref.partition(":")
    return Path(path), (tag if sep and tag else None)


class _Layout:
    """An OCI layout directory being read: blobs fetched by digest, verified on load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not root.exists():
            raise InputError(f"OCI layout {root}: no such directory")
        if not root.is_dir():
            raise InputError(f"OCI layout {root}: expected a directory, found a file",
                             hint="for a docker-archive tar, read it as docker-archive:PATH")
        if not (root / "index.json").is_file():
            raise InputError(f"OCI layout {root}: expected an index.json file, found none",
                             hint="is this an OCI image layout (oci-layout, index.json, blobs/)?")

    def blob_path(self, desc: Descriptor) -> Path:
        algo, _, hexdigest = desc.digest.partition(":")
        return self.root / "blobs" / algo / hexdigest

    def read_blob(self, desc: Descriptor, what: str) -> bytes:
        path = self.blob_path(desc)
        try:
            data = path.read_bytes()
        except OSError:
            raise InputError(f"OCI layout {self.root}: the {what} blob {desc.digest} is missing "
                             f"(expected {path})") from None
        self._check(desc, sha256_digest(data), len(data), what)
        return data

    def check_blob(self, desc: Descriptor, what: str, verify: bool) -> Path:
        path = self.blob_path(desc)
        if not path.is_file():
            raise InputError(f"OCI layout {self.root}: the {what} blob {desc.digest} is missing "
                             f"(expected {path})")
        if verify:
            self._check(desc, *hash_file(path), what)
        else:
            self._check(desc, None, path.stat().st_size, what)
        return path

    def _check(self, desc: Descriptor, digest: str | None, size: int, what: str) -> None:
        """Raise unless the blob has the descriptor's size and (when given) digest."""
        if (digest or desc.digest) != desc.digest or size != desc.size:
            found = f"{size} bytes" + (f" with digest {digest}" if digest else "")
            raise InputError(
                f"OCI layout {self.root}: the {what} blob {desc.digest} does not match its "
                f"descriptor: expected {desc.size} bytes with that digest, found {found}",
                hint="the layout is corrupt; write it again")

    def index_manifests(self, data: bytes, where: str) -> list[Descriptor]:
        doc = load_json(data, where)
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise InputError(f"{where}: expected an image index with a 'manifests' list")
        # artifacts that refer to an image (an SBOM, a signature) are not images themselves
        return [Descriptor.from_json(d, f"{where}: manifests[{i}]")
                for i, d in enumerate(doc["manifests"])
                if not (isinstance(d, dict) and d.get("artifactType"))]


def read_layout(path: str | os.PathLike[str], tag: str | None = None,
                platform: str | Platform | None = None, *, verify: bool = True) -> Image:
    """The image tagged ``tag`` (or the only one) in the OCI layout at ``path``.

    An image index is followed to the image for ``platform``. Layers point at the blob
    files in the layout (nothing is copied). Manifest and config digests are always
    checked; layer blobs are hashed too unless ``verify=False`` (then only their sizes).
    """
    layout, images, tags, load = _images(path, tag)
    want = Platform.parse(platform) if platform is not None else None
    if want is not None:
        found = [(d, p or load(d).platform) for d, p in images]
        images = [(d, p) for d, p in found if p.matches(want)]
        if not images:
            names = ", ".join(sorted({str(p) for _, p in found}))
            raise InputError(f"OCI layout {layout.root}: no image for platform {want}; "
                             f"found platforms: {names}")
    if len({d.digest for d, _ in images}) > 1:
        if tag is None and len(tags) > 1:
            raise InputError(f"OCI layout {layout.root}: holds several images; expected a "
                             f"tag to choose one; found tags: {', '.join(tags)}",
                             hint=f"name one as oci:{layout.root}:TAG")
        unique = {d.digest: p or load(d).platform for d, p in images}
        names = sorted({str(p) for p in unique.values()})
        if len(names) == len(unique):
            raise InputError(f"OCI layout {layout.root}: holds images for several platforms; "
                             f"expected a platform to choose one; found: {', '.join(names)}")
        raise InputError(f"OCI layout {layout.root}: holds {len(unique)} images and no tag "
                         f"tells them apart: {', '.join(unique)}",
                         hint="write the layout with one tag per image")
    return _load_image(layout, images[0][0], verify=verify)


def layout_platforms(path: str | os.PathLike[str], tag: str | None = None) -> list[Platform]:
    """The platforms of the images tagged ``tag`` (or of all) in the layout, in order."""
    _, images, _, load = _images(path, tag)
    out: list[Platform] = []
    for d, p in images:
        plat = p or load(d).platform
        if plat not in out:
            out.append(plat)
    return out


def _images(path: str | os.PathLike[str], tag: str | None):
    """Every image manifest reachable from the layout's entries for ``tag`` (or all), with
    its platform when the index names it; the layout's tags; a loader of manifests."""
    layout = _Layout(Path(path))
    where = f"OCI layout {layout.root}: index.json"
    top = layout.index_manifests((layout.root / "index.json").read_bytes(), where)
    tags = sorted({d.ref_name for d in top if d.ref_name})
    if tag is not None:
        top = [d for d in top if d.ref_name == tag]
        if not top:
            raise InputError(f"OCI layout {layout.root}: no image tagged {tag!r}; "
                             f"found tags: {', '.join(tags) or 'none'}")

    # Every image manifest reachable from the chosen entries, with its platform when known.
    images: list[tuple[Descriptor, Platform | None]] = []
    pending = list(top)
    while pending:
        d = pending.pop(0)
        if d.media_type in INDEX_TYPES:
            data = layout.read_blob(d, "image index")
            pending.extend(layout.index_manifests(data, f"OCI layout {layout.root}: "
                                                        f"image index {d.digest}"))
        elif d.media_type in MANIFEST_TYPES:
            images.append((d, d.platform))
        # other artifacts (signatures, attestations) are not images: skipped
    if not images:
        raise InputError(f"OCI layout {layout.root}: expected an image manifest, found none")

    loaded: dict[str, Image] = {}

    def load(d: Descriptor) -> Image:
        if d.digest not in loaded:
            loaded[d.digest] = _load_image(layout, d, verify=False)
        return loaded[d.digest]

    return layout, images, tags, load


def _load_image(layout: _Layout, desc: Descriptor, *, verify: bool) -> Image:
    raw_manifest = layout.read_blob(desc, "manifest")
    where = f"OCI layout {layout.root}: manifest {desc.digest}"
    m = load_json(raw_manifest, where)
    if not isinstance(m, dict) or m.get("schemaVersion") != 2:
        raise InputError(f"{where}: expected an image manifest with schemaVersion 2")
    config_desc = Descriptor.from_json(m.get("config"), f"{where}: config")
    if config_desc.media_type not in CONFIG_TYPES:
        raise InputError(f"{where}: expected an image config media type, "
                         f"found {config_desc.media_type!r}")
    raw_config = layout.read_blob(config_desc, "config")
    config = load_json(raw_config, f"OCI layout {layout.root}: config {config_desc.digest}")
    if not isinstance(config, dict):
        raise InputError(f"OCI layout {layout.root}: config {config_desc.digest}: expected "
                         "a JSON object")
    return image_from_parts(m, raw_manifest, config, raw_config, where,
                            lambda d: layout.check_blob(d, "layer", verify))


def write_layout(image: Image | ImageIndex, path: str | os.PathLike[str],
                 tags: Sequence[str] = (), *, annotations: Mapping[str, str] | None = None,
                 blobs: Iterable[bytes] = ()) -> Descriptor:
    """Write ``image`` as the OCI layout at ``path``, one index.json entry per tag.

    ``annotations`` go on every index.json entry (beside its tag; they change neither the
    image's digest nor what skopeo, podman or umoci read). ``blobs`` are put in blobs/ but
    not listed in index.json, which lists images only: tools that read ``oci:DIR`` with no
    tag take its one entry, and refuse a layout with more. Built in a temporary directory
    beside ``path`` and renamed into place, so readers never see half a layout; an existing
    ``path`` is replaced only if it is an OCI layout (or an empty directory). Returns the
    descriptor of the image (or index) written.
    """
    dest = Path(path)
    if annotations and ANNOTATION_REF_NAME in annotations:
        raise ValueError("write_layout: a tag is given with tags=, not as an annotation")
    for t in tags:
        if not _REF_NAME.fullmatch(t):
            raise InputError(f"tag {t!r}: expected a reference name such as 'latest' or "
                             "'1.0' (letters, digits and . _ - : @ + /)")
    if dest.exists() and not _replaceable(dest):
        raise InputError(f"output {dest}: exists and is not an OCI layout; refusing to "
                         "replace it", hint="choose another path or remove it")
    unlisted = list(blobs)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        blobs = work / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        written: set[str] = set()

        def put(digest: str, data: bytes) -> None:
            if digest not in written:
                (blobs / digest.removeprefix("sha256:")).write_bytes(data)
                written.add(digest)

        images = image.images if isinstance(image, ImageIndex) else (image,)
        for img in images:
            for layer in img.layers:
                if layer.digest not in written:
                    place_blob(layer, blobs / layer.digest.removeprefix("sha256:"))
                    written.add(layer.digest)
            put(img.config_descriptor().digest, img.config_bytes())
            put(img.digest, img.manifest_bytes())
        if isinstance(image, ImageIndex):
            put(image.digest, image.index_bytes())
        for data in unlisted:
            put(sha256_digest(data), data)
        extra = dict(annotations or {})
        entries = [_descriptor(image, {**extra, ANNOTATION_REF_NAME: t}) for t in tags] or [
            _descriptor(image, extra)]
        (work / "index.json").write_bytes(canonical_json(
            {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [e.to_json() for e in entries]}))
        (work / LAYOUT_FILE).write_bytes(canonical_json(LAYOUT_VERSION))
        for d in (work, work / "blobs", blobs):
            os.chmod(d, 0o755)  # mkdtemp makes 0700; a layout is read by other tools/users
        _swap_into_place(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _descriptor(image, {})


def _descriptor(image: Image | ImageIndex, annotations: Mapping[str, str]) -> Descriptor:
    return image.descriptor(annotations=annotations)


def _replaceable(dest: Path) -> bool:
    return dest.is_dir() and not dest.is_symlink() and (
        (dest / LAYOUT_FILE).is_file() or not any(dest.iterdir()))


def _swap_into_place(work: Path, dest: Path) -> None:
    """Rename ``work`` to ``dest``; an old layout there is moved aside, then deleted."""
    if not dest.exists():
        os.rename(work, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.rename(dest, old / "layout")
    try:
        os.rename(work, dest)
    except BaseException:
        os.rename(old / "layout", dest)  # put the old one back: no half-written output
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
