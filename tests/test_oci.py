"""OCI images: values, OCI layout and docker-archive, checked with skopeo, umoci and podman."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from uvship import layers
from uvship.errors import InputError
from uvship.oci import (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    Image,
    ImageIndex,
    Layer,
    Platform,
    canonical_json,
    parse_layout_ref,
    read_docker_archive,
    read_layout,
    sha256_digest,
    write_docker_archive,
    write_layout,
)

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: runs in an image with nothing else
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox-static not installed")
podman = pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")


def run(*cmd: str | os.PathLike[str]) -> str:
    proc = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stderr}"
    return proc.stdout


def busybox_layer(work: Path) -> Layer:
    """A layer holding /bin/busybox and bin/sh -> busybox, built from a fresh tree in ``work``."""
    tree = work / "tree"
    (tree / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, tree / "bin" / "busybox")
    os.symlink("busybox", tree / "bin" / "sh")
    blob = work / "layer.tar.gz"
    with blob.open("wb") as f:
        info = layers.write_tar(layers.normalize(layers.scan(tree)), f, compression="gzip")
    return Layer.from_archive(info, blob)


def busybox_image(work: Path) -> Image:
    return (Image.scratch("linux/amd64")
            .with_layer(busybox_layer(work), created_by="uvship test: busybox")
            .with_env("PATH", "/bin")
            .with_entrypoint(["/bin/busybox"])
            .with_user("65532:65532")
            .with_workdir("/")
            .with_labels({"org.opencontainers.image.title": "busybox", "test": "oci"}))


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Image:
    if not BUSYBOX.is_file():
        pytest.fail("busybox-static is not installed: run scripts/setup-host")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return busybox_image(tmp_path / "build")


@pytest.fixture
def podman_tag():
    """A unique localhost/uvship-test/... name, removed from podman's storage afterwards."""
    tag = f"localhost/uvship-test/oci:{uuid.uuid4().hex[:12]}"
    yield tag
    subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)


# ---- values ---------------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": [1, {"z": 1, "a": "é"}], "a": None}) == (
        '{"a":null,"b":[1,{"a":"é","z":1}]}'.encode())


def test_platform_parse_and_match():
    p = Platform.parse("linux/arm64/v8")
    assert (p.os, p.architecture, p.variant) == ("linux", "arm64", "v8")
    assert str(Platform.parse("linux/x86_64")) == "linux/amd64"
    assert p.matches(Platform.parse("linux/arm64"))
    assert not p.matches(Platform.parse("linux/amd64"))
    with pytest.raises(InputError, match="OS/ARCH"):
        Platform.parse("linux")


def test_scratch_time_comes_from_source_date_epoch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert Image.scratch().config["created"] == "1970-01-01T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert Image.scratch().config["created"] == "2023-11-14T22:13:20Z"


@needs_busybox
def test_with_methods_return_new_images(image: Image):
    cfg = image.config["config"]
    assert cfg["Entrypoint"] == ("/bin/busybox",) and cfg["User"] == "65532:65532"
    assert image.config["rootfs"]["diff_ids"] == (image.layers[0].diff_id,)
    assert image.config["history"][0]["created_by"] == "uvship test: busybox"
    img2 = image.with_env("A", "1").with_env("PATH", "/usr/bin:/bin")
    assert img2.config["config"]["Env"] == ("PATH=/usr/bin:/bin", "A=1")  # order kept
    assert image.config["config"]["Env"] == ("PATH=/bin",)
    assert img2.digest != image.digest
    with pytest.raises(TypeError):
        image.config["os"] = "windows"  # type: ignore[index]
    copy = image.config_dict()
    copy["os"] = "windows"
    assert image.config["os"] == "linux"
    # Dockerfile semantics: a new entrypoint drops the inherited Cmd
    img3 = image.with_cmd(["sh"]).with_entrypoint(["/bin/sh", "-c"])
    assert "Cmd" not in img3.config["config"]
    assert image.with_created(0) == image  # same value, same image
    assert image.with_created("2024-01-01T00:00:00Z").config["history"][0]["created"] == (
        "2024-01-01T00:00:00Z")


@needs_busybox
def test_rebuild_from_another_tree_gives_the_same_digest(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a = busybox_image(tmp_path / "a")
    os.utime(tmp_path / "a" / "tree" / "bin" / "busybox", (1, 1))  # other mtimes, same bytes
    b = busybox_image(tmp_path / "b")
    assert a.digest == b.digest
    assert a.manifest_bytes() == b.manifest_bytes() and a.config_bytes() == b.config_bytes()


# ---- OCI layout -----------------------------------------------------------------------


@needs_busybox
def test_layout_is_read_by_skopeo_and_umoci(image: Image, tmp_path: Path):
    out = tmp_path / "layout"
    desc = write_layout(image, out, tags=["v1"])
    assert desc.digest == image.digest
    info = json.loads(run("skopeo", "inspect", f"oci:{out}:v1"))
    assert info["Digest"] == image.digest
    assert info["Env"] == ["PATH=/bin"] and info["Labels"]["test"] == "oci"
    assert info["Created"].startswith("1970-01-01T00:00:00")
    raw_config = run("skopeo", "inspect", "--config", "--raw", f"oci:{out}:v1")
    assert raw_config.encode() == image.config_bytes()
    run("umoci", "unpack", "--image", f"{out}:v1", tmp_path / "bundle")
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "bin" / "busybox").read_bytes() == BUSYBOX.read_bytes()
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"


@needs_busybox
def test_layout_bytes_are_reproducible_and_round_trip(image: Image, tmp_path: Path):
    write_layout(image, tmp_path / "one", tags=["v1", "latest"])
    write_layout(image, tmp_path / "two", tags=["v1", "latest"])
    for rel in ["index.json", "oci-layout",
                f"blobs/sha256/{image.digest[7:]}",
                f"blobs/sha256/{image.config_descriptor().digest[7:]}"]:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()
    back = read_layout(tmp_path / "one", "latest")
    assert back.digest == image.digest and back.config == image.config
    assert back.layers[0].path == tmp_path / "one" / "blobs" / "sha256" / image.layers[0].digest[7:]
    # writing into an existing layout adds a tag; a modified image is a new digest
    img2 = back.with_label("rev", "2")
    write_layout(img2, tmp_path / "one", tags=["v2"])
    assert read_layout(tmp_path / "one", "v2").digest == img2.digest
    assert read_layout(tmp_path / "one", "v1").digest == image.digest


@needs_busybox
def test_layout_annotations_and_unlisted_blobs(image: Image, tmp_path: Path):
    """What a layout keeps beside the image (uvship's SBOM): an annotation on each
    index.json entry and blobs index.json does not list, which tools reading oci:DIR
    without a tag need (they refuse an index.json of several entries)."""
    extra = b'{"kept": "unlisted"}'
    note = {"dev.uvship.test": "x"}
    for name in ("one", "two"):
        write_layout(image, tmp_path / name, annotations=note, blobs=[extra, extra])
    index = (tmp_path / "one" / "index.json").read_bytes()
    assert index == (tmp_path / "two" / "index.json").read_bytes()
    (entry,) = json.loads(index)["manifests"]
    assert (entry["digest"], entry["annotations"]) == (image.digest, note)
    assert (tmp_path / "one" / "blobs/sha256" / sha256_digest(extra)[7:]).read_bytes() == extra
    info = json.loads(run("skopeo", "inspect", f"oci:{tmp_path / 'one'}"))
    assert info["Digest"] == image.digest
    # tagged: every entry gets the annotation beside its tag; umoci finds the image by tag
    write_layout(image, tmp_path / "two", tags=["v1", "latest"], annotations=note)
    entries = json.loads((tmp_path / "two" / "index.json").read_text())["manifests"]
    assert [e["annotations"] for e in entries] == [note] + [  # the untagged one stays
        {**note, "org.opencontainers.image.ref.name": t} for t in ("latest", "v1")]
    run("umoci", "unpack", "--image", f"{tmp_path / 'two'}:latest", tmp_path / "bundle")
    assert (tmp_path / "bundle" / "rootfs" / "bin" / "busybox").is_file()
    with pytest.raises(ValueError, match="tags="):
        write_layout(image, tmp_path / "three",
                     annotations={"org.opencontainers.image.ref.name": "v1"})


@needs_busybox
def test_layout_written_by_skopeo_keeps_its_digest(image: Image, tmp_path: Path):
    write_layout(image, tmp_path / "ours", tags=["v1"])
    # skopeo recompresses nothing here but writes its own manifest JSON; and v2s2 gives a
    # layout with Docker media types, which read_layout accepts too
    run("skopeo", "copy", "-q", "--format", "v2s2", f"oci:{tmp_path / 'ours'}:v1",
        f"oci:{tmp_path / 'docker'}:d")
    docker = read_layout(tmp_path / "docker", "d")
    assert docker.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert docker.diff_ids == image.diff_ids
    assert docker.with_label("x", "y").manifest()["mediaType"] == (
        "application/vnd.oci.image.manifest.v1+json")
    write_layout(docker, tmp_path / "again", tags=["d"])
    assert read_layout(tmp_path / "again", "d").digest == docker.digest


@needs_busybox
def test_image_index_by_platform(image: Image, tmp_path: Path):
    arm = image.with_platform("linux", "arm64", "v8")
    index = ImageIndex.of([image, arm])
    write_layout(index, tmp_path / "multi", tags=["latest"])
    assert read_layout(tmp_path / "multi", "latest", "linux/arm64").digest == arm.digest
    assert read_layout(tmp_path / "multi", platform="linux/amd64").digest == image.digest
    info = json.loads(run("skopeo", "inspect", "--override-arch", "arm64",
                          f"oci:{tmp_path / 'multi'}:latest"))
    # skopeo reports the digest of what the tag names (the index), and the arm64 config
    assert info["Digest"] == index.digest and info["Architecture"] == "arm64"
    raw = run("skopeo", "inspect", "--raw", f"oci:{tmp_path / 'multi'}:latest")
    assert raw.encode() == index.index_bytes()
    with pytest.raises(InputError, match=r"no image for platform linux/s390x; found platforms: "
                                         r"linux/amd64, linux/arm64/v8"):
        read_layout(tmp_path / "multi", platform="linux/s390x")
    with pytest.raises(InputError, match="several platforms"):
        read_layout(tmp_path / "multi")


def test_parse_layout_ref():
    assert parse_layout_ref("oci:out/img:1.0") == (Path("out/img"), "1.0")
    assert parse_layout_ref("oci:out/img") == (Path("out/img"), None)


@needs_busybox
def test_layout_errors(image: Image, tmp_path: Path):
    out = tmp_path / "layout"
    write_layout(image, out, tags=["v1", "v2"])
    with pytest.raises(InputError, match=r"no image tagged 'v3'; found tags: v1, v2"):
        read_layout(out, "v3")
    # a second image under another tag: reading without a tag is then ambiguous
    other = image.with_label("x", "1")
    write_layout(other, tmp_path / "l2", tags=["v3"])
    for blob in (tmp_path / "l2" / "blobs" / "sha256").iterdir():
        if not (out / "blobs" / "sha256" / blob.name).exists():  # shared layers are hardlinks
            shutil.copy(blob, out / "blobs" / "sha256" / blob.name)
    idx = json.loads((out / "index.json").read_text())
    idx["manifests"] += json.loads((tmp_path / "l2" / "index.json").read_text())["manifests"]
    (out / "index.json").write_text(json.dumps(idx))
    with pytest.raises(InputError, match=r"several images; expected a tag .* v1, v2, v3"):
        read_layout(out)
    assert read_layout(out, "v3").digest == other.digest
    with pytest.raises(InputError, match="no such directory"):
        read_layout(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="expected a directory"):
        read_layout(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"expected an index.json"):
        read_layout(tmp_path / "empty")
    (tmp_path / "empty" / "index.json").write_text("{not json")
    with pytest.raises(InputError, match=r"index.json: expected JSON"):
        read_layout(tmp_path / "empty")


@needs_busybox
def test_layout_missing_or_corrupt_blobs(image: Image, tmp_path: Path):
    layer_hex = image.layers[0].digest[7:]
    config_hex = image.config_descriptor().digest[7:]
    # a deleted layer blob
    write_layout(image, tmp_path / "a", tags=["v1"])
    (tmp_path / "a" / "blobs" / "sha256" / layer_hex).unlink()
    with pytest.raises(InputError, match=f"layer blob sha256:{layer_hex} is missing"):
        read_layout(tmp_path / "a", "v1")
    # a config blob with other bytes
    write_layout(image, tmp_path / "b", tags=["v1"])
    with (tmp_path / "b" / "blobs" / "sha256" / config_hex).open("ab") as f:
        f.write(b" ")
    with pytest.raises(InputError, match=f"config blob sha256:{config_hex} does not match"):
        read_layout(tmp_path / "b", "v1")
    # a layer blob of the right size with one byte changed: only hashing finds it
    write_layout(image, tmp_path / "c", tags=["v1"])
    blob = tmp_path / "c" / "blobs" / "sha256" / layer_hex
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.unlink()  # it is a hardlink to the build's layer: do not corrupt that one
    blob.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"layer blob sha256:{layer_hex} does not match"):
        read_layout(tmp_path / "c", "v1")
    assert read_layout(tmp_path / "c", "v1", verify=False).digest == image.digest


@needs_busybox
def test_write_layout_refuses_to_replace_other_things(image: Image, tmp_path: Path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an OCI layout"):
        write_layout(image, keep, tags=["v1"])
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
    with pytest.raises(InputError, match="tag 'a b'"):
        write_layout(image, tmp_path / "x", tags=["a b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "keep"]  # no temp dirs left


# ---- docker-archive -------------------------------------------------------------------


@needs_busybox
@podman
def test_docker_archive_loads_and_runs_in_podman(image: Image, tmp_path: Path, podman_tag):
    archive = tmp_path / "image.tar"
    image_id = write_docker_archive(image, archive, tags=[podman_tag])
    assert image_id == image.config_descriptor().digest
    with tarfile.open(archive) as tar:  # layer files are the gzip blobs themselves
        assert f"{image.layers[0].digest[7:]}.tar.gz" in tar.getnames()
    run("podman", "load", "-i", archive)
    assert run("podman", "image", "inspect", "--format", "{{.Id}}", podman_tag).strip() == (
        image_id[7:])
    assert run("podman", "run", "--rm", "--pull=never", podman_tag, "echo", "hi") == "hi\n"
    assert run("podman", "run", "--rm", "--pull=never", podman_tag, "id", "-u") == "65532\n"

    # podman's own save: plain (uncompressed) tar layers, a symlinked legacy layout beside
    saved = tmp_path / "saved.tar"
    run("podman", "save", "--format", "docker-archive", "-o", saved, podman_tag)
    back = read_docker_archive(saved, blob_dir=tmp_path / "blobs")
    assert back.diff_ids == image.diff_ids
    assert back.config_descriptor().digest == image_id
    layer = back.layers[0]
    assert layer.media_type == OCI_LAYER and layer.digest == layer.diff_id
    assert layer.path is not None and layer.path.parent == tmp_path / "blobs"
    assert layer.path.stat().st_size == layer.size
    # what was read is an image like any other: it writes as a layout skopeo reads
    write_layout(back, tmp_path / "from-podman", tags=["t"])
    assert json.loads(run("skopeo", "inspect", f"oci:{tmp_path / 'from-podman'}:t"))[
        "Digest"] == back.digest


@needs_busybox
def test_docker_archive_is_reproducible_and_round_trips(image: Image, tmp_path: Path):
    write_docker_archive(image, tmp_path / "a.tar", tags=["localhost/uvship-test/oci:1"])
    write_docker_archive(image, tmp_path / "b.tar", tags=["localhost/uvship-test/oci:1"])
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    back = read_docker_archive(tmp_path / "a.tar", "uvship-test/oci:1",
                               blob_dir=tmp_path / "blobs")
    assert back.digest == image.digest  # same config bytes, same gzip blobs
    assert back.layers[0].media_type == OCI_LAYER_GZIP
    with pytest.raises(InputError, match=r"no image tagged 'other:2'; found tags: "
                                         r"localhost/uvship-test/oci:1"):
        read_docker_archive(tmp_path / "a.tar", "other:2", blob_dir=tmp_path / "blobs")


def test_a_docker_archive_base_keeps_its_blobs_in_the_cache(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    """The oci package writes where it is told; the library's base images are told the
    cache, so a base read from an archive costs its bytes once."""
    from uvship.image.image import Image as BaseImage

    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache"))
    layer_bytes = tmp_path / "l.tar"
    with layer_bytes.open("wb") as f:
        info = layers.write_tar([layers.Entry("hello", "file", data=b"hi\n")], f,
                                compression="none")
    img = Image.scratch().with_layer(Layer.from_archive(info, layer_bytes))
    write_docker_archive(img, tmp_path / "x.tar")
    back = BaseImage.from_docker_archive(tmp_path / "x.tar")
    assert back.oci.layers[0].path == tmp_path / "cache" / "blobs" / "sha256" / info.digest[7:]
    assert back.digest == img.digest
    assert not (tmp_path / "blobs").exists()


@needs_busybox
def test_docker_archive_errors(image: Image, tmp_path: Path):
    good = tmp_path / "good.tar"
    write_docker_archive(image, good, tags=["localhost/uvship-test/oci:1"])
    data = good.read_bytes()
    with tarfile.open(good) as tar:
        cuts = [m.offset_data + m.size // 2 for m in tar.getmembers()]  # inside each member
        cuts += [m.offset + 100 for m in tar.getmembers()]  # inside each header
    for n, cut in enumerate(sorted(cuts)):
        bad = tmp_path / f"cut{n}.tar"
        bad.write_bytes(data[:cut])
        with pytest.raises(InputError, match=f"docker-archive {bad}") as exc:
            read_docker_archive(bad, blob_dir=tmp_path / "blobs")
        assert exc.value.hint or "manifest.json" in exc.value.message
    no_manifest = tmp_path / "nomanifest.tar"
    with tarfile.open(no_manifest, "w") as tar:
        tar.add(good, arcname="something.tar")
    with pytest.raises(InputError, match=r"expected a manifest.json in the archive"):
        read_docker_archive(no_manifest, blob_dir=tmp_path / "blobs")
    (tmp_path / "junk.tar").write_bytes(b"\x01" * 5000)
    with pytest.raises(InputError, match=r"junk.tar: expected a complete tar archive"):
        read_docker_archive(tmp_path / "junk.tar", blob_dir=tmp_path / "blobs")
    with pytest.raises(InputError, match="does not exist"):
        read_docker_archive(tmp_path / "absent.tar", blob_dir=tmp_path / "blobs")
    with pytest.raises(InputError, match=r"expected .*REPOSITORY"):
        write_docker_archive(image, tmp_path / "x.tar", tags=["Upper/Case:1"])
    assert not (tmp_path / "x.tar").exists()


# ---- outputs onto special files and shared layouts ------------------------------------


@pytest.fixture
def reader():
    """Factory: start a command that reads a FIFO (given as its last word); each is killed
    afterwards if it is still running (an unfixed writer never opens the FIFO)."""
    procs: list[subprocess.Popen[str]] = []

    def start(*cmd: str | os.PathLike[str]) -> subprocess.Popen[str]:
        p = subprocess.Popen([os.fspath(c) for c in cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.communicate()


@needs_busybox
def test_docker_archive_streams_through_a_fifo_and_a_character_device(image: Image,
                                                                      tmp_path: Path, reader):
    out = tmp_path / "out"
    out.mkdir()
    fifo = out / "fifo"
    os.mkfifo(fifo)
    tar = reader("tar", "-tf", fifo)
    write_docker_archive(image, fifo, tags=["localhost/uvship-test/oci:fifo"])
    listing, err = tar.communicate(timeout=60)
    assert tar.returncode == 0, err
    assert "manifest.json" in listing.split()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # written through, not replaced
    assert os.listdir(out) == ["fifo"]  # and no temporary file beside it

    null = out / "null"  # a private /dev/null: an unfixed writer would replace only this one
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    write_docker_archive(image, null)
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(os.listdir(out)) == ["fifo", "null"]


@needs_busybox
def test_a_stream_cut_short_says_the_reader_got_a_truncated_archive(image: Image,
                                                                    tmp_path: Path, reader):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader("head", "-c", "1000", fifo)  # reads a little, then goes away
    with pytest.raises(InputError, match=rf"output {fifo}: the stream stopped after \d+ "
                                         r"bytes \(.*\); its reader got a truncated archive"):
        write_docker_archive(image, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@needs_busybox
def test_outputs_write_through_symlinks(image: Image, tmp_path: Path):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "image.tar"
    real.write_text("an older archive")
    link = tmp_path / "link.tar"
    link.symlink_to("real/image.tar")
    write_docker_archive(image, link)
    assert link.is_symlink() and os.readlink(link) == "real/image.tar"
    assert read_docker_archive(real, blob_dir=tmp_path / "blobs").digest == image.digest
    assert sorted(os.listdir(tmp_path / "real")) == ["image.tar"]  # no temporary file left
    # a dangling link: its target is made
    dangling = tmp_path / "dangling.tar"
    dangling.symlink_to("real/new.tar")
    write_docker_archive(image, dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "new.tar").is_file()


@needs_busybox
def test_outputs_refuse_directories_sockets_and_block_devices(image: Image, tmp_path: Path):
    import socket

    sock_path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(InputError, match=rf"output {sock_path}: is a socket; expected a "
                                             "regular file"):
            write_docker_archive(image, sock_path)
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    block = tmp_path / "block"
    os.mknod(block, stat.S_IFBLK | 0o600, os.makedev(7, 200))
    with pytest.raises(InputError, match="is a block device"):
        write_docker_archive(image, block)
    assert stat.S_ISBLK(os.lstat(block).st_mode)
    (tmp_path / "dir").mkdir()
    (tmp_path / "to-dir").symlink_to("dir")
    for target in ("dir", "to-dir"):
        with pytest.raises(InputError, match="is a directory; expected a regular file"):
            write_docker_archive(image, tmp_path / target)
    assert (tmp_path / "to-dir").is_symlink() and os.listdir(tmp_path / "dir") == []


@needs_busybox
def test_a_descriptor_is_written_through_and_a_terminal_refused(image: Image,
                                                               tmp_path: Path):
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as r:
        got: list[bytes] = []
        t = threading.Thread(target=lambda: got.append(r.read()))
        t.start()
        try:
            write_docker_archive(image, f"/dev/fd/{write_end}")
        finally:
            os.close(write_end)  # the writer's own copy of the descriptor is closed already
            t.join(timeout=60)
    (tmp_path / "via-fd.tar").write_bytes(got[0])
    assert read_docker_archive(tmp_path / "via-fd.tar",
                               blob_dir=tmp_path / "blobs").digest == image.digest
    main, tty = os.openpty()
    try:
        with pytest.raises(InputError, match=rf"output /dev/fd/{tty}: is a terminal; "
                                             "expected a pipe or a file"):
            write_docker_archive(image, f"/dev/fd/{tty}")
    finally:
        os.close(main)
        os.close(tty)


@needs_busybox
def test_layout_keeps_every_tag(image: Image, tmp_path: Path):
    out = tmp_path / "layout"
    two = image.with_label("rev", "2")
    write_layout(image, out, tags=["1.0"], annotations={"dev.uvship.test": "one"})
    write_layout(two, out, tags=["2.0"], annotations={"dev.uvship.test": "two"})
    for tag, img in (("1.0", image), ("2.0", two)):
        assert json.loads(run("skopeo", "inspect", f"oci:{out}:{tag}"))["Digest"] == img.digest
    entries = json.loads((out / "index.json").read_text())["manifests"]
    assert [(e["annotations"]["org.opencontainers.image.ref.name"],
             e["annotations"]["dev.uvship.test"]) for e in entries] == [("1.0", "one"),
                                                                          ("2.0", "two")]
    # a new image for a tag replaces that tag's entry only
    three = image.with_label("rev", "3")
    write_layout(three, out, tags=["1.0"])
    assert read_layout(out, "1.0").digest == three.digest
    assert read_layout(out, "2.0").digest == two.digest
    # the same tags written in another order give the same index.json, byte for byte
    other = tmp_path / "other"
    write_layout(two, other, tags=["2.0"], annotations={"dev.uvship.test": "two"})
    write_layout(three, other, tags=["1.0"])
    assert (other / "index.json").read_bytes() == (out / "index.json").read_bytes()


@needs_busybox
def test_layout_rewritten_unchanged_writes_nothing(image: Image, tmp_path: Path):
    out = tmp_path / "layout"
    write_layout(image, out, tags=["v1"])
    files = sorted(out.rglob("*"))
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    write_layout(image, out, tags=["v1"])
    assert sorted(out.rglob("*")) == files
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == before


@needs_busybox
def test_a_layout_another_writer_is_making_is_written_into(image: Image, tmp_path: Path):
    """What a concurrent first writer leaves before its oci-layout file is in place (the
    lock file, blobs/, a temporary file) is a layout in the making, not a stranger's
    directory; another uvship is refused in a directory without the lock file."""
    out = tmp_path / "layout"
    (out / "blobs" / "sha256").mkdir(parents=True)
    (out / ".uvship.lock").touch()
    (out / ".oci-layout.x1y2.tmp").touch()
    write_layout(image, out, tags=["v1"])
    assert read_layout(out, "v1").digest == image.digest
    (tmp_path / "other" / "blobs").mkdir(parents=True)
    with pytest.raises(InputError, match="is not an OCI layout"):
        write_layout(image, tmp_path / "other", tags=["v1"])


_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_oci import busybox_image
from uvship.oci import write_layout
image = busybox_image(Path(sys.argv[1]))
for n in range(15):
    write_layout(image.with_label("writer", sys.argv[2]).with_label("n", str(n)),
                 sys.argv[3], tags=[sys.argv[2]], blobs=[sys.argv[2].encode() * 10])
"""


@needs_busybox
def test_concurrent_writers_of_one_layout_keep_each_tag(tmp_path: Path):
    """Writers racing on one layout each add their tag; a reader never sees half of it."""
    out = tmp_path / "layout"
    script = _WRITER.format(tests=str(Path(__file__).parent))
    procs = [subprocess.Popen([sys.executable, "-c", script, tmp_path / f"w{name}", name, out],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b", "c")]
    seen = 0
    while any(p.poll() is None for p in procs):
        if (out / "index.json").exists():  # a reader meanwhile: every index.json is whole
            json.loads((out / "index.json").read_bytes())
            seen += 1
        time.sleep(0.01)
    results = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    assert seen > 0
    entries = json.loads((out / "index.json").read_text())["manifests"]
    assert [e["annotations"]["org.opencontainers.image.ref.name"] for e in entries] == [
        "a", "b", "c"]
    for name in ("a", "b", "c"):
        img = read_layout(out, name)
        assert img.config["config"]["Labels"]["n"] == "14"
        assert json.loads(run("skopeo", "inspect", f"oci:{out}:{name}"))["Digest"] == img.digest
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
