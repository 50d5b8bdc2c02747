"""musl targets from this glibc host: a musl CPython (scripts/make-musl-python), musllinux
wheels, the musl scratch runtime, musl bases, and the errors for what cannot work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from uvship import layers, oci
from uvship.oci._blobs import open_decompressed
from uvship.python.elf import iter_elf_files, libc_flavour
from uvship.python.pack import pack

from .conftest import (
    ROOT,
    compiled_sdist_project,
    podman,
    run,
    sdist_only_project,
    uvship,
)

SCRIPT = ROOT / "scripts" / "make-musl-python"
EXPECTED = "app says &lt;lib+core:xn--bcher-kva.example&gt;"
MUSL_LOADER = Path("/lib/ld-musl-x86_64.so.1")

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64",
                                reason="scripts/make-musl-python builds for x86_64 hosts")


@pytest.fixture(scope="module")
def musl_python() -> Path:
    """Debian's CPython 3.11 source built with musl-gcc (made once per machine)."""
    out = run([str(SCRIPT), "--quiet"]).stdout.strip()
    exe = Path(out)
    assert exe.is_file(), out
    return exe


@pytest.fixture(scope="module")
def musl_downloads(musl_python: Path, tmp_path_factory) -> dict[str, str]:
    """The musl CPython packed as a uv-managed download (cpython-3.11.2-linux-x86_64-musl)."""
    d = tmp_path_factory.mktemp("musl-downloads")
    packed = pack(musl_python, d, strip=True)
    assert packed.key.endswith("-linux-x86_64-musl"), packed.key
    return {"UV_PYTHON_DOWNLOADS_JSON_URL": str(packed.downloads_json),
            "UV_PYTHON_INSTALL_DIR": str(d / "installs"),
            "UV_PYTHON_BIN_DIR": str(d / "bin")}


@pytest.fixture
def managed_musl(monkeypatch, musl_downloads) -> None:
    for k, v in musl_downloads.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def tag():
    t = f"localhost/uvship-test/musl:{uuid.uuid4().hex[:12]}"
    yield t
    subprocess.run(["podman", "rmi", "-f", t], capture_output=True)


def _unpack_layers(img: oci.Image, dest: Path, skip: int = 0) -> Path:
    for layer in img.layers[skip:]:
        with open_decompressed(layer.path, layer.compression) as f, \
                tarfile.open(fileobj=f, mode="r|") as tar:
            tar.extractall(dest, filter="tar")
    return dest


def _wheel_tags(root: Path) -> dict[str, list[str]]:
    """Each installed distribution's wheel tags (from its WHEEL file)."""
    out = {}
    for wheel in root.glob("app/.venv/lib/python3.*/site-packages/*.dist-info/WHEEL"):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines()
                if line.startswith("Tag:")]
        out[wheel.parent.name.split("-")[0].lower()] = tags
    return out


def _musl_base(tmp_path: Path) -> Path:
    """A musl base image: only the host's musl (loader and libc in one file) and a shell-less
    root, as an OCI layout tagged 'musl'."""
    entries = layers.normalize([
        layers.Entry("lib/ld-musl-x86_64.so.1", "file", 0o755, source=MUSL_LOADER.resolve()),
        layers.Entry("etc/passwd", "file", 0o644,
                     data=b"root:x:0:0::/root:/sbin/nologin\nnonroot:x:65532:65532::/:/x\n"),
    ])
    blob = tmp_path / "musl-base.tar.gz"
    with blob.open("wb") as f:
        info = layers.write_tar(entries, f)
    img = oci.Image.scratch().with_layer(oci.Layer.from_archive(info, blob))
    path = tmp_path / "musl-base"
    oci.write_layout(img, path, tags=["musl"])
    return path


@pytest.mark.podman
def test_musl_interpreter_gets_musllinux_wheels_and_runs_on_scratch(musl_python, project,
                                                                     tmp_path, tag):
    """--python PATH of a musl CPython: musllinux wheels, a musl scratch runtime, and an
    image that runs (as 65532) with no glibc in it at all."""
    ws = project("ws")
    archive = tmp_path / "app.tar"
    proc = uvship("build", str(ws), "--package", "ws-app", "--python", str(musl_python),
                  "-o", f"oci:{tmp_path / 'lay'}", "-o", f"docker-archive:{archive}", "-t", tag,
                  "--json")
    assert proc.returncode == 0, proc.stderr
    img = oci.read_layout(tmp_path / "lay")
    root = _unpack_layers(img, tmp_path / "root")
    tags = _wheel_tags(root)
    assert tags["markupsafe"] and all("musllinux" in t for t in tags["markupsafe"]), tags
    (speedups,) = root.glob("app/.venv/lib/python3.11/site-packages/markupsafe/_speedups*.so")
    assert speedups.name.endswith("-x86_64-linux-musl.so")
    flavours = {libc_flavour(info) for _, info in iter_elf_files([root])} - {None}
    assert flavours == {"musl"}
    assert not list(root.rglob("libc.so.6")) and (root / "lib/ld-musl-x86_64.so.1").exists()
    layer_names = [x["created_by"] for x in json.loads(proc.stdout)["layers"]]
    assert layer_names[0].startswith("uvship: runtime: musl 1.")
    podman("load", "-q", "-i", archive)
    out = podman("run", "--rm", "--pull=never", tag).stdout
    assert out.strip() == EXPECTED
    who = podman("run", "--rm", "--pull=never", "--entrypoint", "/app/.venv/bin/python", tag,
                 "-c", "import os, sysconfig; print(os.getuid(), "
                 "sysconfig.get_config_var('HOST_GNU_TYPE'))").stdout.split()
    assert who == ["65532", "x86_64-pc-linux-musl"]


@pytest.mark.podman
def test_libc_musl_takes_a_uv_managed_musl_python(musl_python, managed_musl, project,
                                                  tmp_path, tag):
    """--libc musl with no --python: uv installs the musl CPython of the download list."""
    ws = project("ws")
    archive = tmp_path / "app.tar"
    proc = uvship("build", str(ws), "--package", "ws-app", "--libc", "musl",
                  "-o", f"docker-archive:{archive}", "-t", tag, "-o", f"oci:{tmp_path / 'lay'}")
    assert proc.returncode == 0, proc.stderr
    assert "uv-managed" in proc.stderr
    root = _unpack_layers(oci.read_layout(tmp_path / "lay"), tmp_path / "root")
    assert all("musllinux" in t for t in _wheel_tags(root)["markupsafe"])
    podman("load", "-q", "-i", archive)
    assert podman("run", "--rm", "--pull=never", tag).stdout.strip() == EXPECTED


@pytest.mark.podman
def test_musl_base_is_detected_from_its_files(musl_python, managed_musl, project, tmp_path,
                                              tag):
    """A musl base and no --libc: the target is musl, so a musl Python and musllinux
    wheels; the base's layer comes through unchanged and the image runs on it."""
    base = _musl_base(tmp_path)
    ws = project("ws")
    archive = tmp_path / "app.tar"
    proc = uvship("build", str(ws), "--package", "ws-app", "--base", f"oci:{base}:musl",
                  "-o", f"docker-archive:{archive}", "-t", tag, "-o", f"oci:{tmp_path / 'lay'}")
    assert proc.returncode == 0, proc.stderr
    img, base_img = oci.read_layout(tmp_path / "lay"), oci.read_layout(base, "musl")
    assert img.layers[0].digest == base_img.layers[0].digest
    root = _unpack_layers(img, tmp_path / "root", skip=1)
    assert all("musllinux" in t for t in _wheel_tags(root)["markupsafe"])
    podman("load", "-q", "-i", archive)
    assert podman("run", "--rm", "--pull=never", tag).stdout.strip() == EXPECTED


def test_glibc_interpreter_for_a_musl_target_is_refused(musl_python, project, tmp_path):
    """A glibc interpreter with --libc musl, or on a musl base: a clear error, no output."""
    ws = project("ws")
    out = tmp_path / "out"
    proc = uvship("build", str(ws), "--package", "ws-app", "--libc", "musl",
                  "--python", sys.executable, "-o", f"oci:{out}")
    assert proc.returncode == 1
    assert f"--libc musl: the interpreter ({sys.executable}) links glibc, expected musl for " \
           "linux/amd64 (musl)" in proc.stderr
    assert "cpython-3." in proc.stderr and "-linux-x86_64-musl" in proc.stderr  # the hint
    base = _musl_base(tmp_path)
    proc = uvship("build", str(ws), "--package", "ws-app", "--base", f"oci:{base}:musl",
                  "--python", sys.executable, "-o", f"oci:{out}")
    assert proc.returncode == 1
    assert f"--base oci:{base}:musl: the image's C library is musl, expected glibc" in proc.stderr
    assert "musllinux" in proc.stderr  # the hint says how to build for it
    assert not out.exists()


def test_no_musl_python_for_the_target(project, tmp_path):
    """--libc musl with no musl CPython anywhere uv can install one from."""
    ws = project("ws")
    proc = uvship("build", str(ws), "--package", "ws-app", "--libc", "musl",
                  "-o", f"oci:{tmp_path / 'out'}")
    assert proc.returncode == 1
    flat = " ".join(proc.stderr.split())
    assert flat.startswith("error: no interpreter for linux/amd64 (musl): uv "), flat
    assert "has no CPython for linux-x86_64-musl that satisfies requires-python >=3.11" in flat
    assert "(expected one; found none)" in flat
    assert "uvship pack-python" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.podman
def test_pure_python_sdist_is_built_for_musl(musl_python, managed_musl, tmp_path, uv_bin, tag):
    """docopt 0.6.2 publishes only an sdist: it builds a pure-Python wheel, which serves a
    musl target as well as this host."""
    proj = sdist_only_project(tmp_path, uv_bin)
    for how in (["--libc", "musl"], ["--python", str(musl_python)]):
        archive = tmp_path / "img.tar"
        proc = uvship("build", str(proj), *how, "-o", f"docker-archive:{archive}", "-t", tag)
        assert proc.returncode == 0, proc.stderr
        podman("load", "-q", "-i", archive)
        out = podman("run", "--rm", "--pull=never", tag).stdout
        assert out.strip() == "docopt 0.6.2", how


def test_compiled_sdist_for_musl_fails_first(musl_python, tmp_path, uv_bin):
    """ctiny's sdist builds a C extension, for this host's glibc: refused for musl, before
    any work, saying what its source builds."""
    proj = compiled_sdist_project(tmp_path, uv_bin, "docopt==0.6.2")
    for how in (["--libc", "musl"], ["--python", str(musl_python)]):
        proc = uvship("build", str(proj), *how, "-o", f"oci:{tmp_path / 'out'}")
        assert proc.returncode == 1, proc.stderr
        flat = " ".join(proc.stderr.split())
        assert ("no wheel for linux/amd64 (musl) of ctiny 0.1.0 (only an sdist is locked; "
                "its source builds cp3") in flat, how
        assert "-linux_x86_64 here) (expected a musllinux wheel for x86_64" in flat
        assert "docopt" not in flat  # pure Python: not refused
        assert "installing" not in proc.stderr and "writing layers" not in proc.stderr
        assert not (tmp_path / "out").exists()


@pytest.mark.podman
def test_musl_bundle_runs_where_there_is_only_musl(musl_python, managed_musl, project,
                                                   tmp_path, tag):
    """bundle --libc musl: the tarball imported as an image, with musl's loader as the only
    other file, runs the app."""
    ws = project("ws")
    out = tmp_path / "app.tar.gz"
    proc = uvship("bundle", str(ws), "--package", "ws-app", "--libc", "musl", "-o", str(out),
                  "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)["manifest"]
    assert manifest["interpreter"]["libc"] == "musl", manifest["interpreter"]
    podman("import", "-q", str(out), tag)
    got = podman("run", "--rm", "--pull=never", "--user", "65532",
                 "-v", f"{MUSL_LOADER.resolve()}:/lib/ld-musl-x86_64.so.1:ro",
                 tag, "/app/.venv/bin/python", "/app/.venv/bin/ws-app").stdout  # no shell
    assert got.strip() == EXPECTED
