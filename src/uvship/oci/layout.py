"""The OCI image layout on disk (oci-layout, index.json, blobs/sha256/...): read and write."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._fs import atomic_file
from ..errors import InputError, Option
from ._blobs import hash_file, layer_file, load_json, place_blob
from .image import Image, ImageIndex, Layer, image_from_parts
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
# The lock writers hold while they update a layout (uvship's; other tools ignore the file).
LOCK_FILE = ".uvship.lock"
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
        except OSError as exc:
            raise InputError(f"OCI layout {self.root}: the {what} blob {desc.digest} is missing "
                             f"(expected {path})") from exc
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
                 blobs: Iterable[bytes] = (), link_blobs: bool = False) -> Descriptor:
    """Add ``image`` to the OCI layout at ``path`` (made if absent), one index.json entry
    per tag; returns the descriptor of the image (or index) written.

    The layout keeps every other tag: an entry of one of ``tags`` is replaced, others stay
    (with no tags, the image replaces the untagged image entries). ``annotations`` go on
    each new entry beside its tag (they change neither the image's digest nor what skopeo,
    podman or umoci read). ``blobs`` are put in blobs/ but not listed in index.json, which
    lists images only: tools that read ``oci:DIR`` with no tag take its one entry.

    Updated in place, safe for readers and for other writers: under an exclusive lock on
    the layout's lock file, each blob is renamed into blobs/sha256 (content-addressed,
    so an existing one is kept), then index.json is replaced by one rename. Its entries
    are sorted by tag, so one set of tags gives the same bytes in whatever order they were
    written; a layout that already holds all of it is not written at all. Blobs that no
    entry reaches any more are kept: a reader may still be reading the image a tag named a
    moment ago. An existing ``path`` must be an OCI layout (or an empty directory).

    ``link_blobs``: layers as hard links to their files, for a layout uvship makes for a
    reader that only reads and removes it afterwards (never for an output: a user could
    change a linked file in place, and with it the cache).
    """
    dest = Path(path)
    if annotations and ANNOTATION_REF_NAME in annotations:
        raise ValueError("write_layout: a tag is given with tags=, not as an annotation")
    for t in tags:
        check_tag(t)
    check_layout_dir(dest, f"output {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    with layout_lock(dest):
        check_layout_dir(dest, f"output {dest}")  # again: another writer may have been first
        _put(dest / LAYOUT_FILE, canonical_json(LAYOUT_VERSION))
        blob_dir = dest / "blobs" / "sha256"
        blob_dir.mkdir(parents=True, exist_ok=True)
        images = image.images if isinstance(image, ImageIndex) else (image,)
        for img in images:
            for layer in img.layers:
                _put_layer(layer, blob_dir, link_blobs)
            _put_blob(blob_dir, img.config_bytes())
            _put_blob(blob_dir, img.manifest_bytes())
        if isinstance(image, ImageIndex):
            _put_blob(blob_dir, image.index_bytes())
        for data in blobs:
            _put_blob(blob_dir, data)
        extra = dict(annotations or {})
        new = [_descriptor(image, {**extra, ANNOTATION_REF_NAME: t}).to_json() for t in tags
               ] or [_descriptor(image, extra).to_json()]
        index = _read_index(dest)
        kept = [e for e in index["manifests"] if not _replaced_by(e, tags)]
        entries = sorted([*kept, *new], key=_entry_order)
        _put(dest / "index.json", canonical_json({**index, "schemaVersion": 2,
                                                  "mediaType": OCI_INDEX,
                                                  "manifests": entries}))
    return _descriptor(image, {})


def check_tag(tag: str) -> None:
    """Raise unless ``tag`` can name an image in an OCI layout."""
    if not _REF_NAME.fullmatch(tag):
        raise InputError(f"tag {tag!r}: expected a reference name such as 'latest' or "
                         "'1.0' (letters, digits and . _ - : @ + /)")


def check_layout_dir(dest: Path, label: str | Option) -> None:
    """Raise unless ``dest`` is absent, an OCI layout or an empty directory (a layout is
    updated in place: uvship writes into no other directory).

    A directory with uvship's lock file is a layout too: another writer may be making it
    (its oci-layout file not there yet), and only write_layout makes that file, after
    this check passed."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise InputError.of(label, "exists and is not a directory (expected an OCI layout "
                            "or a new path)")
    if (dest / LAYOUT_FILE).is_file() or (dest / LOCK_FILE).exists() or not any(
            dest.iterdir()):
        if not os.access(dest, os.W_OK):
            raise InputError.of(label, "cannot write in the OCI layout (permission denied)")
        return
    raise InputError.of(label, f"exists and is not an OCI layout (no {LAYOUT_FILE} file); "
                        "refusing to write into it", hint="choose another path or remove it")


@contextlib.contextmanager
def layout_lock(root: Path) -> Iterator[None]:
    """Hold the layout's writer lock: every read-modify-write of index.json happens under it.

    An flock on a file in the layout: released by the kernel when the process ends, however
    it ends. Readers take no lock; they see index.json whole, since it is only ever renamed
    into place.
    """
    try:
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise InputError(f"OCI layout {root}: cannot open its lock file {LOCK_FILE} "
                         f"({exc.strerror})", hint="is the layout writable?") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_index(root: Path) -> dict[str, Any]:
    """index.json of a layout being updated; an empty one for a new layout."""
    path = root / "index.json"
    if not path.exists():
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    doc = load_json(path.read_bytes(), f"OCI layout {root}: index.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list) or not all(
            isinstance(d, dict) for d in doc["manifests"]):
        raise InputError(f"OCI layout {root}: index.json: expected an image index with a "
                         "'manifests' list of descriptors",
                         hint="the layout is corrupt; remove it and write it again")
    return doc


def _replaced_by(entry: Mapping[str, Any], tags: Sequence[str]) -> bool:
    """Whether a new image written with ``tags`` takes the place of index.json's ``entry``:
    the entry of one of its tags; with no tags, an untagged image (never an artifact)."""
    name = (entry.get("annotations") or {}).get(ANNOTATION_REF_NAME)
    if tags:
        return name in tags
    return name is None and not entry.get("artifactType")


def _entry_order(entry: Mapping[str, Any]) -> tuple[str, bytes]:
    """index.json's order: by tag (untagged first), then by the whole entry."""
    return (str((entry.get("annotations") or {}).get(ANNOTATION_REF_NAME, "")),
            canonical_json(entry))


def _put(path: Path, data: bytes) -> None:
    """``path`` holds ``data``: written beside it and renamed, unless it already does."""
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return
    with atomic_file(path) as f:
        f.write(data)


def _put_blob(blob_dir: Path, data: bytes) -> None:
    path = blob_dir / sha256_digest(data).removeprefix("sha256:")
    if not _has(path, len(data)):
        with atomic_file(path) as f:
            f.write(data)


def _put_layer(layer: Layer, blob_dir: Path, link: bool = False) -> None:
    """A layer's blob in the layout: a copy of its file (a hard link when ``link``); made
    under a temporary name and renamed, so no reader sees half a blob."""
    path = blob_dir / layer.digest.removeprefix("sha256:")
    if _has(path, layer.size):
        return
    tmp = blob_dir / f".{path.name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        if link and layer.data is None:
            os.link(layer_file(layer), tmp)
        else:
            place_blob(layer, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _has(path: Path, size: int) -> bool:
    """Whether a content-addressed blob is there already (its name is its digest)."""
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _descriptor(image: Image | ImageIndex, annotations: Mapping[str, str]) -> Descriptor:
    return image.descriptor(annotations=annotations)
