"""Base image facts read from real layers (the Debian-built bases, synthetic musl, arm64 and
layered images) and the refusals of unfit bases."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from uvship import layers
from uvship.errors import InputError, Option
from uvship.image.basecheck import BaseFacts, base_facts, check_base
from uvship.layers import Entry
from uvship.oci import Image, Layer, read_docker_archive, read_layout

from .conftest import HOST_DIR

OCI = HOST_DIR / "images" / "oci"
ARCHIVES = HOST_DIR / "images" / "docker-archive"
LIBC_BYTES = b"\0junk\0GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n\0"


def layer(tmp_path: Path, entries: list[Entry], compression="gzip") -> Layer:
    data = repr(entries).encode() + compression.encode()
    blob = tmp_path / f"{hashlib.sha256(data).hexdigest()}.tar"
    with blob.open("wb") as f:
        info = layers.write_tar(layers.normalize(entries), f, compression=compression)
    return Layer.from_archive(info, blob)


def image(platform: str, *lays: Layer) -> Image:
    return Image.scratch(platform).with_layers(lays)


def f(path: str, data: bytes = b"x") -> Entry:
    return Entry(path, "file", 0o755, data=data)


def link(path: str, target: str) -> Entry:
    return Entry(path, "symlink", 0o777, target=target)


GLIBC_FILES = [f("usr/lib/x86_64-linux-gnu/libc.so.6", LIBC_BYTES),
               f("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
               link("lib", "usr/lib"), link("lib64", "usr/lib64"),
               link("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")]
MUSL_FILES = [f("lib/ld-musl-x86_64.so.1"),
              link("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"),
              f("bin/busybox"), link("bin/sh", "/bin/busybox")]


# ---------------------------------------------------------------------- the real bases
def test_debian_minbase(tmp_path):
    img = read_layout(OCI / "debian-bookworm-minbase", "bookworm-minbase")
    start = time.perf_counter()
    facts = base_facts(img)
    elapsed = time.perf_counter() - start
    assert facts == BaseFacts("linux", "amd64", "", "glibc", "2.36", True, ())
    assert facts.platform == "linux/amd64"
    # ~90 MB of tar in one gzip layer; measured at 0.35 s on this machine
    assert elapsed < 5, elapsed
    check_base(facts, machine="x86_64", libc="glibc", min_glibc="2.36", base_name="minbase")
    # the docker-archive of the same image (plain tar layers) says the same
    archived = read_docker_archive(ARCHIVES / "debian-bookworm-minbase.tar",
                                   blob_dir=tmp_path / "blobs")
    assert base_facts(archived) == facts


def test_glibc_image_has_no_shell():
    facts = base_facts(read_layout(OCI / "glibc-bookworm", "bookworm"))
    assert (facts.libc, facts.glibc_version, facts.has_shell) == ("glibc", "2.36", False)
    check_base(facts, machine="x86_64", libc="glibc", min_glibc="2.35", base_name="glibc")
    with pytest.raises(InputError) as e:
        check_base(facts, machine="x86_64", libc="glibc", min_glibc="2.38",
                   base_name="oci:glibc-bookworm:bookworm")
    # the library names the option as the API does; the command line by its flag
    assert e.value.message == ("base oci:glibc-bookworm:bookworm: the base has glibc 2.36, "
                               "the interpreter needs 2.38")
    assert e.value.subject == Option("base", "oci:glibc-bookworm:bookworm")
    assert e.value.for_command_line() == ("--base oci:glibc-bookworm:bookworm: the base has "
                                          "glibc 2.36, the interpreter needs 2.38")
    assert "2.38 or newer" in e.value.hint
    with pytest.raises(InputError, match=r"C library is glibc, expected musl: the "
                                         r"interpreter links musl"):
        check_base(facts, machine="x86_64", libc="musl", min_glibc=None, base_name="glibc")


# ---------------------------------------------------------------------- synthetic bases
def test_musl_base_under_a_glibc_interpreter(tmp_path):
    facts = base_facts(image("linux/amd64", layer(tmp_path, MUSL_FILES)))
    assert (facts.libc, facts.glibc_version, facts.has_shell) == ("musl", None, True)
    with pytest.raises(InputError) as e:
        check_base(facts, machine="x86_64", libc="glibc", min_glibc="2.17", base_name="alpine")
    assert e.value.message == ("base alpine: the image's C library is musl, expected glibc: "
                               "the interpreter links glibc")
    assert "Debian" in e.value.hint and "musllinux" in e.value.hint
    check_base(facts, machine="x86_64", libc="musl", min_glibc=None, base_name="alpine")


def test_arm64_base_for_an_amd64_build(tmp_path):
    facts = base_facts(image("linux/arm64", layer(tmp_path, GLIBC_FILES)))
    assert (facts.architecture, facts.libc, facts.glibc_version) == ("arm64", "glibc", "2.36")
    with pytest.raises(InputError) as e:
        check_base(facts, machine="x86_64", libc="glibc", min_glibc="2.17", base_name="arm")
    assert e.value.message == ("base arm: the image is linux/arm64, expected linux/amd64 "
                               "for this build")
    check_base(facts, machine="aarch64", libc="glibc", min_glibc="2.17", base_name="arm")
    arm_v7 = base_facts(image("linux/arm/v6", layer(tmp_path, GLIBC_FILES)))
    with pytest.raises(InputError, match="the image is linux/arm/v6, expected linux/arm/v7"):
        check_base(arm_v7, machine="armv7", libc="glibc", min_glibc=None, base_name="pi")


def test_scratch_like_base_has_no_libc(tmp_path):
    facts = base_facts(image("linux/amd64", layer(tmp_path, [f("app/main")])))
    assert (facts.libc, facts.has_shell, facts.python_paths) == (None, False, ())
    with pytest.raises(InputError) as e:
        check_base(facts, machine="x86_64", libc="glibc", min_glibc="2.35", base_name="empty")
    assert e.value.message.startswith("base empty: the image has no C library")
    assert "default scratch base" in e.value.hint
    # a static interpreter (libc None) needs nothing from the base
    check_base(facts, machine="x86_64", libc=None, min_glibc=None, base_name="empty")


def test_old_glibc_named_by_version(tmp_path):
    old = [f("lib/x86_64-linux-gnu/libc-2.31.so", b"no banner here"),
           link("lib/x86_64-linux-gnu/libc.so.6", "libc-2.31.so"),
           f("lib/x86_64-linux-gnu/ld-2.31.so"),
           link("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-2.31.so"),
           f("usr/bin/python3.9"), link("usr/bin/python3", "python3.9"),
           link("usr/local/bin/python3.8", "/nowhere")]
    facts = base_facts(image("linux/amd64", layer(tmp_path, old, "zstd")))
    assert (facts.libc, facts.glibc_version) == ("glibc", "2.31")
    assert facts.python_paths == ("usr/bin/python3", "usr/bin/python3.9")
    with pytest.raises(InputError, match=r"^base bullseye: the base has glibc 2.31, the "
                                         r"interpreter needs 2.35"):
        check_base(facts, machine="x86_64", libc="glibc", min_glibc="2.35",
                   base_name="bullseye")


def test_whiteouts_remove_lower_layers(tmp_path):
    base = layer(tmp_path, [*MUSL_FILES, f("etc/passwd")], "none")
    facts = base_facts(image("linux/amd64", base))
    assert facts.libc == "musl" and facts.has_shell
    # a later layer deletes the loader (.wh.NAME) and empties bin/ (opaque whiteout)
    deleting = layer(tmp_path, [f("lib/.wh.ld-musl-x86_64.so.1", b""),
                                f("bin/.wh..wh..opq", b""), f("bin/other")])
    facts = base_facts(image("linux/amd64", base, deleting))
    assert (facts.libc, facts.has_shell) == (None, False)
    # and a layer above that brings glibc back
    glibc = layer(tmp_path, GLIBC_FILES, "zstd")
    facts = base_facts(image("linux/amd64", base, deleting, glibc))
    assert (facts.libc, facts.glibc_version) == ("glibc", "2.36")


def test_unreadable_layer(tmp_path):
    blob = tmp_path / "garbage"
    blob.write_bytes(b"\x1f\x8b" + b"not gzip at all" * 100)
    bad = Layer("sha256:" + "0" * 64, "sha256:" + "1" * 64, blob.stat().st_size, path=blob)
    with pytest.raises(InputError, match=r"layer sha256:0+: expected a tar archive"):
        base_facts(image("linux/amd64", bad))
