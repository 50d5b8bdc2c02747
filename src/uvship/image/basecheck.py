"""Facts about a base image read from its layers (platform, C library, shell, Pythons), and the
checks that refuse an unfit base before any build work."""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from ..errors import InputError, Option
from ..oci import Image, Layer, Platform
from ..oci._blobs import sniff_compression
from .runtime import glibc_version_of

_GLIBC_LOADER = re.compile(r"^(ld-linux[-\w.]*\.so\.\d+|ld64\.so\.\d+)$")
_MUSL_LOADER = re.compile(r"^ld-musl-[\w]+\.so\.1$")
_OLD_LIBC = re.compile(r"^libc-(\d+\.\d+)\.so$")  # glibc < 2.34 named its files by version
_PYTHON = re.compile(r"^(?:usr/(?:local/)?)?bin/python3(?:\.\d+)?$")
_SHELLS = ("bin/sh", "usr/bin/sh")
_SCRATCH_HINT = ("leave out --base to use the default scratch base, which adds the C "
                 "library and the files the interpreter needs")


@dataclass(frozen=True)
class BaseFacts:
    """What a base image holds that decides whether an interpreter can run on it."""

    os: str
    architecture: str
    variant: str
    libc: str | None  # "glibc", "musl" or None (none found: a scratch-like image)
    glibc_version: str | None  # e.g. "2.36"; None when not glibc or not readable
    has_shell: bool  # /bin/sh resolves to a file
    python_paths: tuple[str, ...]  # e.g. ("usr/bin/python3", "usr/bin/python3.11")

    @property
    def platform(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class _Node:
    kind: str  # "file", "dir", "symlink", "other"
    target: str = ""  # symlink target, or the path a hard link points to
    glibc: str | None = None  # the glibc version in a libc file's bytes


def base_facts(image: Image) -> BaseFacts:
    """Read ``image``'s layers once, in order, applying whiteouts, and report what it holds."""
    fs: dict[str, _Node] = {}
    for layer in image.layers:
        _apply_layer(layer, fs)
    glibc_versions = set()
    loaders = {"glibc": False, "musl": False}
    for path, node in fs.items():
        name = path.rpartition("/")[2]
        if node.glibc:
            glibc_versions.add(node.glibc)
        m = _OLD_LIBC.match(name)
        if m and node.kind == "file":
            glibc_versions.add(m.group(1))
        if _MUSL_LOADER.match(name):
            loaders["musl"] = True
        elif _GLIBC_LOADER.match(name) or name == "libc.so.6":
            loaders["glibc"] = True
    # A glibc version proves glibc; a musl loader beside a version-less ld-linux name is
    # musl with a compatibility shim (Alpine's gcompat), which is not glibc.
    if glibc_versions:
        libc: str | None = "glibc"
    elif loaders["musl"]:
        libc = "musl"
    elif loaders["glibc"]:
        libc = "glibc"
    else:
        libc = None
    version = max(glibc_versions, key=_key) if glibc_versions else None
    p = image.platform
    return BaseFacts(
        os=p.os,
        architecture=p.architecture,
        variant=p.variant,
        libc=libc,
        glibc_version=version,
        has_shell=any(_resolves_to_file(fs, s) for s in _SHELLS),
        python_paths=tuple(sorted(p for p in fs if _PYTHON.match(p)
                                  and _resolves_to_file(fs, p))),
    )


def check_base(facts: BaseFacts, *, machine: str, libc: str | None, min_glibc: str | None,
               base_name: str) -> None:
    """Refuse a base the interpreter (of ``machine``, linking ``libc``, needing glibc
    ``min_glibc``) cannot run on; InputError naming ``base_name`` (as the user gave it)."""
    target = Platform.of_machine(machine)
    arch, variant, want = target.architecture, target.variant, str(target)
    arch_ok = facts.architecture == arch and (not variant or not facts.variant
                                             or facts.variant == variant)
    if facts.os != "linux" or not arch_ok:
        raise InputError.of(Option("base", str(base_name)),
                            f"the image is {facts.platform}, expected {want} "
                            "for this build",
                            hint=f"give a base image for {want}, or build for {facts.platform}")
    if libc is None:
        return  # a static interpreter needs no C library from the base
    if facts.libc is None:
        raise InputError.of(Option("base", str(base_name)),
                            f"the image has no C library (no ld-linux-*.so.* "
                            f"or ld-musl-*.so.1 found), expected {libc} for this interpreter",
                            hint=_SCRATCH_HINT)
    if facts.libc != libc:
        example = "Alpine" if libc == "musl" else "Debian, Ubuntu or distroless"
        wheels = "manylinux" if facts.libc == "glibc" else "musllinux"
        raise InputError.of(Option("base", str(base_name)),
                            f"the image's C library is {facts.libc}, "
                            f"expected {libc}: the interpreter links {libc}",
                            hint=f"give a {libc}-based image (e.g. {example}), or build with "
                            f"a {facts.libc} interpreter and {wheels} wheels")
    if (libc == "glibc" and min_glibc and facts.glibc_version
            and _key(facts.glibc_version) < _key(min_glibc)):
        raise InputError.of(Option("base", str(base_name)),
                            f"the base has glibc {facts.glibc_version}, "
                            f"the interpreter needs {min_glibc}",
                            hint=f"give a base with glibc {min_glibc} or newer, or an "
                            f"interpreter built for glibc {facts.glibc_version} (a uv-managed "
                            "Python needs only 2.17)")


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


# ---------------------------------------------------------------------- reading layers
@contextmanager
def _decompressed(layer: Layer) -> Iterator[BinaryIO]:
    """The layer's tar, streamed; gzip, zstd or plain told by its first bytes (docker
    archives store plain tars whatever the media type says)."""
    with layer.open() as raw:
        kind = sniff_compression(raw.read(4))
        raw.seek(0)
        if kind == "gzip":
            from isal import igzip

            with igzip.IGzipFile(fileobj=raw, mode="rb") as f:
                yield f  # type: ignore[misc]
        elif kind == "zstd":
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw, closefd=False) as f:
                yield f  # type: ignore[misc]
        else:
            yield raw


def _clean(name: str) -> str:
    """A member name as a path without leading "/" or "./" ("" for the root)."""
    return posixpath.normpath("/" + name).lstrip("/")


def _apply_layer(layer: Layer, fs: dict[str, _Node]) -> None:
    """Apply one layer: its whiteouts remove paths of the layers below, then its entries."""
    added: dict[str, _Node] = {}
    removed: list[str] = []
    opaque: list[str] = []
    try:
        with _decompressed(layer) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for m in tar:
                path = _clean(m.name)
                if not path:
                    continue
                parent, _, name = path.rpartition("/")
                if name == ".wh..wh..opq":
                    opaque.append(parent)
                elif name.startswith(".wh."):
                    removed.append(f"{parent}/{name[4:]}".lstrip("/"))
                else:
                    added[path] = _node(tar, m, added)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"layer {layer.digest}: expected a tar archive (gzip, zstd or "
                         f"plain), found unreadable data ({exc})") from exc
    for d in opaque:  # the directory stays; what lower layers had in it goes
        prefix = f"{d}/" if d else ""
        for p in [p for p in fs if p.startswith(prefix) and p != d]:
            del fs[p]
    for r in removed:
        for p in [p for p in fs if p == r or p.startswith(f"{r}/")]:
            del fs[p]
    fs.update(added)


def _node(tar: tarfile.TarFile, m: tarfile.TarInfo, added: dict[str, _Node]) -> _Node:
    if m.issym():
        return _Node("symlink", m.linkname)
    if m.islnk():  # a hard link: the same file as an earlier member of this layer
        earlier = added.get(_clean(m.linkname))
        return _Node("file", glibc=earlier.glibc if earlier else None)
    if m.isdir():
        return _Node("dir")
    if not m.isfile():
        return _Node("other")
    name = m.name.rpartition("/")[2]
    if name == "libc.so.6" or _OLD_LIBC.match(name):
        f = tar.extractfile(m)
        return _Node("file", glibc=glibc_version_of(f.read()) if f else None)
    return _Node("file")


def _resolves_to_file(fs: dict[str, _Node], path: str) -> bool:
    """True if ``path`` leads to a regular file in the image, following its symlinks."""
    parts, done = list(PurePosixPath(path).parts), PurePosixPath()
    for _ in range(256):  # bounded: a symlink loop is simply "not a file"
        if not parts:
            node = fs.get(str(done))
            return node is not None and node.kind == "file"
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            done = done.parent
            continue
        node = fs.get(str(done / name))
        if node is None:
            return False
        if node.kind == "symlink":
            target = PurePosixPath(node.target)
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            if target.is_absolute():
                done = PurePosixPath()
        else:
            done = done / name
    return False
