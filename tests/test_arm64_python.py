"""An aarch64 CPython on this x86_64 host: Debian's arm64 python3.11 (scripts/make-arm64-python)
made relocatable under qemu-user, packed as a uv download, installed by uv, given aarch64
wheels, and run in an arm64 image under podman."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from uvship import layers
from uvship.errors import InputError
from uvship.oci import Image, Layer, read_layout
from uvship.oci._blobs import open_decompressed
from uvship.oci.docker_archive import write_docker_archive
from uvship.python.elf import (
    iter_elf_files,
    path_in_root,
    read_elf,
    sysroot_library_dirs,
    tree_machines,
)
from uvship.python.ldso import resolve_closure
from uvship.python.pack import pack
from uvship.python.portable import inspect_python

from .conftest import (
    HOST_DIR,
    ROOT,
    compiled_sdist_project,
    podman,
    run,
    sdist_only_project,
    tiers,
    uvship,
)

SCRIPT = ROOT / "scripts" / "make-arm64-python"
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
PY = "usr/bin/python3.11"


def _binfmt_enabled() -> bool:
    try:
        return BINFMT.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


# uv and the byte-compiler start the aarch64 interpreter themselves: only binfmt_misc can
# run it for them (an explicit qemu-aarch64-static would do for uvship's own calls).
pytestmark = pytest.mark.skipif(
    not _binfmt_enabled(),
    reason=f"qemu-user for aarch64 is not registered with binfmt_misc ({BINFMT} missing or "
    "disabled); scripts/setup-host registers it",
)


@pytest.fixture(scope="module")
def sysroot() -> Path:
    """Debian's arm64 python3.11 and the libraries it loads, extracted (cached across runs)."""
    root = HOST_DIR / "arm64" / "root"
    if os.geteuid() != 0 and not (root / PY).is_file():
        pytest.fail(f"{root} is missing and making it needs root: run {SCRIPT} as root")
    proc = run([SCRIPT, "--quiet"], check=False)
    if proc.returncode != 0:
        pytest.fail(f"{SCRIPT} failed (exit {proc.returncode}):\n{proc.stderr}")
    assert proc.stdout.strip() == str(root)
    return root


@pytest.fixture(scope="module")
def packed(sysroot: Path, tmp_path_factory):
    """The arm64 python packed as a uv download (timed: the report quotes it)."""
    dest = tmp_path_factory.mktemp("arm64-downloads")
    # pack byte-compiles the stdlib with the copy itself: binfmt_misc starts it under qemu,
    # which needs the loader and glibc of the sysroot.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QEMU_LD_PREFIX", str(sysroot))
        t0 = time.monotonic()
        result = pack(sysroot / PY, dest, strip=True)
        print(f"pack of the arm64 python: {time.monotonic() - t0:.1f} s")
    return result


@pytest.fixture(scope="module")
def uv_env(packed, tmp_path_factory) -> dict[str, str]:
    """uv pointed at the packed download, with Python installs of its own."""
    d = tmp_path_factory.mktemp("arm64-uv")
    return {**os.environ, "UV_PYTHON_DOWNLOADS_JSON_URL": str(packed.downloads_json),
            "UV_PYTHON_INSTALL_DIR": str(d / "installs"),
            # kept off PATH: an aarch64 python3.11 there would shadow the host's
            "UV_PYTHON_BIN_DIR": str(d / "bin")}


@pytest.fixture(scope="module")
def installed(uv_bin, uv_env, packed) -> Path:
    """The aarch64 python installed by `uv python install`: the root of its tree."""
    # A request names the architecture: `3.11` alone means this host's x86_64.
    proc = run([uv_bin, "python", "install", "--no-bin", "cpython-3.11-linux-aarch64-gnu"],
               env=uv_env)
    assert packed.key in proc.stderr
    root = Path(uv_env["UV_PYTHON_INSTALL_DIR"]) / packed.key
    assert (root / "bin/python3.11").is_file()
    return root


@pytest.fixture(scope="module")
def venv(uv_bin, uv_env, installed, sysroot, tmp_path_factory) -> Path:
    """A relocatable venv of the aarch64 python with a compiled-extension wheel (markupsafe)."""
    proj = tmp_path_factory.mktemp("arm64-project")
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "arm64-app"\nversion = "1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["markupsafe>=2"]\n\n[tool.uv]\npackage = false\n')
    run([uv_bin, "lock", "--quiet", "--python", sys.executable], cwd=proj, env=uv_env)
    python = installed / "bin/python3.11"
    env = {**uv_env, "UV_PROJECT_ENVIRONMENT": str(proj / "venv"),
           # uv runs the interpreter to query it (binfmt_misc -> qemu): the sysroot gives it
           # its loader and glibc
           "QEMU_LD_PREFIX": str(sysroot)}
    run([uv_bin, "venv", "--quiet", "--relocatable", "--no-config", "--python", python,
         proj / "venv"], cwd=proj, env=env)
    t0 = time.monotonic()
    run([uv_bin, "sync", "--quiet", "--frozen", "--no-dev", "--no-editable", "--link-mode",
         "copy", "--python-platform", "aarch64-manylinux_2_28", "--python", python],
        cwd=proj, env=env)
    print(f"uv sync --python-platform aarch64-manylinux_2_28: {time.monotonic() - t0:.2f} s")
    return proj / "venv"


# ---- the sysroot and what uvship reads from it ------------------------------------------


def test_script_is_idempotent(sysroot: Path):
    t0 = time.monotonic()
    proc = run([SCRIPT], check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{sysroot}\n"
    assert "up to date" in proc.stderr
    assert time.monotonic() - t0 < 10


def test_inspect_runs_it_under_qemu_and_finds_its_sysroot(sysroot: Path):
    info = inspect_python(sysroot / PY)
    assert (info.machine, info.version[:2]) == ("aarch64", (3, 11))
    assert info.emulator is not None and info.emulator.sysroot == sysroot
    assert info.stdlib == sysroot / "usr/lib/python3.11"  # this host's path into the sysroot
    assert info.executable == sysroot / PY
    assert inspect_python(sysroot / PY, sysroot=sysroot) == info


def test_inspect_errors_for_foreign_interpreters(sysroot: Path, tmp_path: Path):
    alone = tmp_path / "bin/python3.11"
    alone.parent.mkdir()
    shutil.copy2(sysroot / PY, alone)
    with pytest.raises(InputError, match=r"aarch64 program.*no directory above it holds its "
                       r"loader /lib/ld-linux-aarch64.so.1") as exc:
        inspect_python(alone)
    assert "sysroot" in (exc.value.hint or "")
    with pytest.raises(InputError, match=r"has no /lib/ld-linux-aarch64.so.1, the loader"):
        inspect_python(alone, sysroot=tmp_path)
    with pytest.raises(InputError, match=f"runs on this {os.uname().machine} host"):
        inspect_python(Path(sys.executable), sysroot=sysroot)


def test_closure_and_links_resolve_inside_the_sysroot(sysroot: Path):
    dirs = sysroot_library_dirs(sysroot)
    assert dirs[:2] == (f"{sysroot}/lib/aarch64-linux-gnu", f"{sysroot}/usr/lib/aarch64-linux-gnu")
    modules = [p for p in (sysroot / "usr/lib/python3.11/lib-dynload").glob("*.so")
               if not p.name.startswith("nis.")]  # libnsl: not in the sysroot on purpose
    closure = resolve_closure([sysroot / PY, *modules], sysroot=sysroot)
    assert {"libssl.so.3", "libcrypto.so.3", "libffi.so.8", "libsqlite3.so.0", "libz.so.1",
            "libexpat.so.1"} <= set(closure)
    for soname, path in closure.items():
        assert path.is_relative_to(sysroot), (soname, path)
        assert read_elf(path).machine == "aarch64", (soname, path)
    with_libc = resolve_closure([sysroot / PY], sysroot=sysroot, include_libc=True)
    assert with_libc["ld-linux-aarch64.so.1"].is_relative_to(sysroot)
    # Debian links sitecustomize.py to /etc/python3.11/...: the sysroot's, not this host's
    assert path_in_root(sysroot, "/usr/lib/python3.11/sitecustomize.py") == (
        sysroot / "etc/python3.11/sitecustomize.py")


# ---- packed, installed by uv, given wheels ------------------------------------------------


def test_pack_makes_an_aarch64_uv_download(packed, sysroot: Path, tmp_path: Path):
    version = ".".join(map(str, inspect_python(sysroot / PY).version))
    assert packed.key == f"cpython-{version}-linux-aarch64-gnu"
    assert packed.archive.name == f"cpython-{version}-aarch64-unknown-linux-gnu-install_only.tar.gz"
    entry = json.loads(packed.downloads_json.read_text())[packed.key]
    assert (entry["arch"]["family"], entry["libc"]) == ("aarch64", "gnu")
    with tarfile.open(packed.archive) as tar:
        tar.extractall(tmp_path, filter="tar")
    tree = tmp_path / "python"
    assert tree_machines(tree) == {"aarch64"}
    for path, info in iter_elf_files(tree):
        assert all(r.startswith("$ORIGIN") for r in info.runpath), (path, info.runpath)
    assert (tree / "lib/libssl.so.3").is_file()
    assert (tree / "lib/python3.11/sitecustomize.py").read_bytes() == (
        sysroot / "etc/python3.11/sitecustomize.py").read_bytes()
    if sys.version_info[:2] == (3, 11):  # same magic number: this Python can read the pyc
        pyc = tree / "lib/python3.11/__pycache__/os.cpython-311.pyc"
        code = marshal.loads(pyc.read_bytes()[16:])
        assert code.co_filename == "/install/lib/python3.11/os.py"


def test_uv_installs_it_and_syncs_aarch64_wheels(venv: Path, installed: Path):
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "relocatable = true" in cfg
    assert "-linux-aarch64-gnu/bin" in cfg  # uv kept the aarch64 interpreter
    (speedups,) = (venv / "lib/python3.11/site-packages/markupsafe").glob("_speedups*.so")
    assert speedups.name.endswith("-aarch64-linux-gnu.so")
    assert read_elf(speedups).machine == "aarch64"
    assert tree_machines(venv) == {"aarch64"}
    assert tree_machines(installed) == {"aarch64"}


# ---- an arm64 image ---------------------------------------------------------------------


def _glibc_rootfs(dest: Path) -> Path:
    """Only Debian's arm64 libc6 and libgcc-s1: no shell, no Python, no other library."""
    debs = HOST_DIR / "arm64" / "debs"
    for name in ("libc6", "libgcc-s1"):
        found = sorted(debs.glob(f"{name}_*_arm64.deb"))
        assert found, f"{debs}: no {name} .deb; run {SCRIPT} --force"
        run(["dpkg-deb", "-x", found[-1], dest])
    shutil.rmtree(dest / "usr/share", ignore_errors=True)
    return dest


def _layer(entries: list, out: Path) -> Layer:
    with out.open("wb") as f:
        info = layers.write_tar(layers.normalize(entries), f)
    return Layer.from_archive(info, out)


@pytest.fixture
def arm64_tag():
    tag = f"localhost/uvship-test/arm64-python:{uuid.uuid4().hex[:12]}"
    yield tag
    subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)


@pytest.mark.podman
def test_arm64_image_runs_under_podman(installed: Path, venv: Path, tmp_path: Path, arm64_tag):
    rootfs = _glibc_rootfs(tmp_path / "rootfs")
    # The venv laid out for /opt/venv with the interpreter at /opt/python, as uvship does.
    venv_entries = [e for e in layers.scan(venv, "opt/venv")
                    if e.path not in ("opt/venv/pyvenv.cfg", "opt/venv/bin/python")]
    cfg = "".join("home = /opt/python/bin\n" if ln.startswith("home") else ln
                  for ln in (venv / "pyvenv.cfg").read_text().splitlines(keepends=True))
    venv_entries += [
        layers.Entry("opt/venv/pyvenv.cfg", "file", data=cfg.encode()),
        layers.Entry("opt/venv/bin/python", "symlink", 0o777,
                     target="/opt/python/bin/python3.11"),
    ]
    trees = {"base": layers.scan(rootfs), "python": layers.scan(installed, "opt/python"),
             "venv": venv_entries}
    for name, entries in trees.items():  # every ELF file in the layers is aarch64
        files = [e.source for e in layers.iter_files(entries) if e.source is not None]
        machines = {info.machine for _, info in iter_elf_files(files)}
        assert machines == {"aarch64"}, (name, machines)
    image = Image.scratch("linux/arm64")
    for name, entries in trees.items():
        image = image.with_layer(_layer(entries, tmp_path / f"{name}.tar.gz"))
    image = image.with_env("PATH", "/opt/venv/bin:/opt/python/bin")
    archive = tmp_path / "image.tar"
    write_docker_archive(image, archive, tags=[arm64_tag])
    podman("load", "-i", archive)
    assert podman("image", "inspect", "--format", "{{.Architecture}}",
                  arm64_tag).stdout.strip() == "arm64"

    t0 = time.monotonic()
    out = podman("run", "--rm", "--pull=never", "--platform", "linux/arm64", arm64_tag,
                 "/opt/python/bin/python3.11", "-c",
                 "import platform, ssl, sqlite3, ctypes, lzma, decimal; "
                 "print(platform.machine(), ssl.OPENSSL_VERSION)").stdout
    print(f"podman run (arm64 under qemu): {time.monotonic() - t0:.1f} s")
    assert out.startswith("aarch64 OpenSSL 3."), out
    out = podman("run", "--rm", "--pull=never", "--platform", "linux/arm64", arm64_tag,
                 "python", "-c",
                 "import sys, markupsafe, markupsafe._speedups as s; "
                 "print(sys.prefix, markupsafe.escape('<a>'), s.__file__.split('.')[-2])"
                 ).stdout
    assert out.split() == ["/opt/venv", "&lt;a&gt;", "cpython-311-aarch64-linux-gnu"], out


# ---- uvship build --platform linux/arm64 ------------------------------------------------


@pytest.mark.podman
def test_build_for_arm64_from_this_host(sysroot: Path, project, tmp_path: Path, arm64_tag):
    """The ws app (markupsafe: a compiled extension) as an arm64 image, built on x86_64."""
    base_dir = tmp_path / "base"
    rootfs = _glibc_rootfs(tmp_path / "rootfs")
    base = Image.scratch("linux/arm64").with_layer(_layer(layers.scan(rootfs),
                                                          tmp_path / "base.tar.gz"))
    from uvship.oci import write_layout

    write_layout(base, base_dir, tags=["glibc"])
    ws = project("ws")
    archive = tmp_path / "app.tar"
    proc = uvship("build", str(ws), "--package", "ws-app", "--platform", "linux/arm64",
                  "--python", str(sysroot / PY), "--base", f"oci:{base_dir}:glibc",
                  "-o", f"docker-archive:{archive}", "-o", f"oci:{tmp_path / 'lay'}",
                  "-t", arm64_tag)
    assert proc.returncode == 0, proc.stderr
    img = read_layout(tmp_path / "lay")
    assert img.platform.architecture == "arm64"
    for layer in img.layers[1:]:  # every ELF file uvship put in is aarch64
        with open_decompressed(layer.path, layer.compression) as f, \
                tarfile.open(fileobj=f, mode="r|") as tar:
            tar.extractall(tmp_path / "layers", filter="tar")
    machines = {info.machine for _, info in iter_elf_files([tmp_path / "layers"])}
    assert machines == {"aarch64"}, machines
    podman("load", "-q", "-i", archive)
    out = podman("run", "--rm", "--pull=never", "--platform", "linux/arm64", arm64_tag).stdout
    assert out.strip() == "app says &lt;lib+core:xn--bcher-kva.example&gt;"
    # bytecode compiled on this host (a native 3.11 when there is one) is what the aarch64
    # interpreter validates and loads: checked-hash pycs whose hash matches the source
    check = ("import importlib.util as u, os, sys\n"
             "for p in (os.__file__, sys.prefix + '/lib/python3.11/site-packages/markupsafe/"
             "__init__.py'):\n"
             "    data = open(u.cache_from_source(p), 'rb').read()\n"
             "    ok = data[8:16] == u.source_hash(open(p, 'rb').read())\n"
             "    print(int.from_bytes(data[4:8], 'little'), ok)\n")
    out = podman("run", "--rm", "--pull=never", "--platform", "linux/arm64", "--entrypoint",
                 "/app/.venv/bin/python", arm64_tag, "-c", check).stdout
    assert out.split() == ["3", "True", "3", "True"], out

    # the host's interpreter for an arm64 target, or the scratch base: refused before work
    proc = uvship("build", str(ws), "--package", "ws-app", "--platform", "linux/arm64",
                  "--python", str(sysroot / PY), "-o", f"oci:{tmp_path / 'x'}")
    assert proc.returncode == 1 and "--base scratch" in proc.stderr
    proc = uvship("build", str(ws), "--package", "ws-app", "--platform", "linux/arm64",
                  "--python", sys.executable, "-o", f"oci:{tmp_path / 'x'}")
    assert proc.returncode == 1 and "expected aarch64" in proc.stderr


@pytest.mark.podman
def test_two_platform_index_pushed_and_pulled(sysroot: Path, project, tmp_path: Path):
    """linux/amd64 (scratch base, a managed Python) and linux/arm64 (its own base and
    Python) in one index; podman pulls each platform's image and both run."""
    from .registry_fixtures import RegistryServer

    base_dir = tmp_path / "base"
    rootfs = _glibc_rootfs(tmp_path / "rootfs")
    base = Image.scratch("linux/arm64").with_layer(_layer(layers.scan(rootfs),
                                                          tmp_path / "base.tar.gz"))
    from uvship.oci import write_layout

    write_layout(base, base_dir, tags=["glibc"])
    server = RegistryServer(tmp_path / "registry")
    server.start()
    ref = server.ref("multi/app", "1")
    try:
        ws = project("ws")
        proc = uvship("build", str(ws), "--package", "ws-app", "--json",
                      "--platform", "linux/amd64,linux/arm64",
                      "--python", f"linux/amd64={sys.executable},linux/arm64={sysroot / PY}",
                      "--base", f"linux/arm64=oci:{base_dir}:glibc",
                      "-o", f"oci:{tmp_path / 'lay'}:1", "--push", ref)
        assert proc.returncode == 0, proc.stderr
        res = json.loads(proc.stdout)
        assert res["platforms"] == ["linux/amd64", "linux/arm64"]
        info = json.loads(run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                               f"docker://{ref}"]).stdout)
        assert sorted(m["platform"]["architecture"] for m in info["manifests"]
                      if "platform" in m) == ["amd64", "arm64"]
        # inspect shows every platform of the index, or the one asked for
        for where in (f"oci:{tmp_path / 'lay'}:1", ref):
            proc = uvship("inspect", where, "--json", "--insecure-registry", server.host)
            assert proc.returncode == 0, proc.stderr
            data = json.loads(proc.stdout)
            assert data["platforms"] == ["linux/amd64", "linux/arm64"]
            assert [i["digest"] for i in data["images"]] == res["manifests"]
            assert tiers(data["images"][1]["layers"]) == [
                "base", "interpreter", "dependencies", "local", "project"]
        proc = uvship("inspect", f"oci:{tmp_path / 'lay'}:1", "--platform", "linux/arm64")
        assert proc.returncode == 0, proc.stderr
        n = len(data["images"][1]["layers"])
        assert proc.stdout.startswith(f"{res['manifests'][1]}  linux/arm64  {n} layers")
        for plat in ("linux/amd64", "linux/arm64"):
            podman("pull", "-q", "--tls-verify=false", "--platform", plat, ref)
            out = podman("run", "--rm", "--pull=never", "--platform", plat, ref).stdout
            assert out.strip() == "app says &lt;lib+core:xn--bcher-kva.example&gt;", plat
            podman("rmi", "-f", ref, check=False)
    finally:
        server.stop()


@pytest.mark.podman
def test_sdists_for_a_cross_target(sysroot: Path, tmp_path: Path, uv_bin, arm64_tag):
    """docopt 0.6.2 (only an sdist, pure Python) is built for arm64 and runs there; ctiny
    (only an sdist, a C extension) cannot be compiled for arm64 here: refused before any
    work, naming what its source builds."""
    base_dir = tmp_path / "base"
    rootfs = _glibc_rootfs(tmp_path / "rootfs")
    from uvship.oci import write_layout

    write_layout(Image.scratch("linux/arm64").with_layer(
        _layer(layers.scan(rootfs), tmp_path / "base.tar.gz")), base_dir, tags=["g"])
    target = ["--platform", "linux/arm64", "--python", str(sysroot / PY),
              "--base", f"oci:{base_dir}:g"]
    proj = sdist_only_project(tmp_path / "pure", uv_bin)
    archive = tmp_path / "pure.tar"
    proc = uvship("build", str(proj), *target, "-o", f"docker-archive:{archive}",
                  "-t", arm64_tag)
    assert proc.returncode == 0, proc.stderr
    podman("load", "-q", "-i", archive)
    out = podman("run", "--rm", "--pull=never", "--platform", "linux/arm64", arm64_tag).stdout
    assert out.strip() == "docopt 0.6.2"

    proj = compiled_sdist_project(tmp_path, uv_bin, "docopt==0.6.2")
    proc = uvship("build", str(proj), *target, "-o", f"oci:{tmp_path / 'out'}")
    assert proc.returncode == 1, proc.stderr
    flat = " ".join(proc.stderr.split())
    assert ("no wheel for linux/arm64 of ctiny 0.1.0 (only an sdist is locked; its source "
            "builds cp3") in flat
    assert "-linux_x86_64 here) (expected a manylinux wheel for aarch64" in flat
    assert "docopt" not in flat
    assert "installing" not in proc.stderr and "writing layers" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.podman
def test_one_bundle_per_platform(sysroot: Path, project, tmp_path: Path, arm64_tag):
    """bundle --platform linux/amd64,linux/arm64: two bundles, each for its machine, each
    running where there is only glibc (the arm64 one under qemu-user)."""
    from .conftest import GLIBC

    ws = project("ws")
    proc = uvship("bundle", str(ws), "--package", "ws-app", "--json",
                  "--platform", "linux/amd64,linux/arm64",
                  "--python", f"linux/amd64={sys.executable},linux/arm64={sysroot / PY}",
                  "-o", str(tmp_path / "app.tar.gz"))
    assert proc.returncode == 0, proc.stderr
    res = {b["platform"]: b for b in json.loads(proc.stdout)["bundles"]}
    assert sorted(res) == ["linux/amd64", "linux/arm64"]
    for plat, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        out = Path(res[plat]["output"])
        assert out == tmp_path / f"app-{plat.replace('/', '-')}.tar.gz"
        assert res[plat]["manifest"]["interpreter"]["machine"] == machine
        tree = tmp_path / f"x-{machine}"
        tree.mkdir()
        with tarfile.open(out) as tar:
            tar.extractall(tree, filter="tar")
        assert tree_machines(tree) == {machine}
    # the arm64 one in an arm64 glibc-only root, the amd64 one in the glibc image
    rootfs = _glibc_rootfs(tmp_path / "rootfs")
    run(["tar", "-C", rootfs, "-cf", tmp_path / "rootfs.tar", "."])
    podman("import", "-q", "--arch", "arm64", tmp_path / "rootfs.tar", arm64_tag)
    for image, machine, plat in ((arm64_tag, "aarch64", "linux/arm64"),
                                 (GLIBC, "x86_64", "linux/amd64")):
        tree = tmp_path / f"x-{machine}"
        out = podman("run", "--rm", "--pull=never", "--platform", plat, "--user", "65532",
                     "-v", f"{tree / 'opt/python'}:/opt/python:ro",
                     "-v", f"{tree / 'app'}:/app:ro", image,
                     "/app/.venv/bin/python", "/app/.venv/bin/ws-app").stdout
        assert out.strip() == "app says &lt;lib+core:xn--bcher-kva.example&gt;", plat


def test_bundles_for_several_platforms_write_nothing_when_one_fails(sysroot: Path, project,
                                                                    tmp_path: Path):
    """arm64 with no interpreter for it (the host's is x86_64): refused before any bundle
    of the other platform is written."""
    ws = project("ws")
    (tmp_path / "out").mkdir()
    proc = uvship("bundle", str(ws), "--package", "ws-app",
                  "--platform", "linux/amd64,linux/arm64", "--python", sys.executable,
                  "-o", str(tmp_path / "out" / "{platform}"))
    assert proc.returncode == 1
    assert "--platform linux/arm64: the interpreter" in proc.stderr
    assert "expected aarch64" in proc.stderr
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.podman
def test_uv_managed_arm64_python_is_never_run_here(packed, project, tmp_path: Path, monkeypatch,
                                                   arm64_tag):
    """--platform linux/arm64 and no --python: uv installs the aarch64 CPython of the
    download list, and uvship builds without running it: uv stages with a native 3.11 and
    --python-platform, a native 3.11 compiles. This host has no aarch64 loader, so any
    attempt to run the aarch64 interpreter (even through qemu) would fail the build."""
    assert not Path("/lib/ld-linux-aarch64.so.1").exists()
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(packed.downloads_json))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "installs"))
    base_dir = tmp_path / "base"
    rootfs = _glibc_rootfs(tmp_path / "rootfs")
    from uvship.oci import write_layout

    write_layout(Image.scratch("linux/arm64").with_layer(
        _layer(layers.scan(rootfs), tmp_path / "base.tar.gz")), base_dir, tags=["glibc"])
    ws = project("ws")
    archive = tmp_path / "app.tar"
    proc = uvship("build", str(ws), "--package", "ws-app", "--platform", "linux/arm64",
                  "--base", f"oci:{base_dir}:glibc", "-o", f"docker-archive:{archive}",
                  "-o", f"oci:{tmp_path / 'lay'}", "-t", arm64_tag)
    assert proc.returncode == 0, proc.stderr
    assert "(uv-managed, for another platform)" in proc.stderr
    img = read_layout(tmp_path / "lay")
    root = tmp_path / "layers"
    for layer in img.layers[1:]:
        with open_decompressed(layer.path, layer.compression) as f, \
                tarfile.open(fileobj=f, mode="r|") as tar:
            tar.extractall(root, filter="tar")
    assert {info.machine for _, info in iter_elf_files([root])} == {"aarch64"}
    cfg = (root / "app/.venv/pyvenv.cfg").read_text()
    assert "home = /opt/python/bin" in cfg and "version_info = 3.11." in cfg
    version = inspect_python(HOST_DIR / "arm64" / "root" / PY).version
    assert f"version_info = {'.'.join(map(str, version))}\n" in cfg  # the target's, not ours
    podman("load", "-q", "-i", archive)
    out = podman("run", "--rm", "--pull=never", "--platform", "linux/arm64", arm64_tag).stdout
    assert out.strip() == "app says &lt;lib+core:xn--bcher-kva.example&gt;"


def test_a_python_that_does_not_run_here_needs_a_native_one(monkeypatch, tmp_path: Path):
    """With no native Python of the target's minor version, nothing can compile for it."""
    from uvship.python import bytecode

    monkeypatch.setattr(bytecode, "native_compiler", lambda minor: None)  # the fault
    src = tmp_path / "m.py"
    src.write_text("x = 1\n")
    with pytest.raises(InputError, match=r"/elsewhere/python3.9: this host cannot run this "
                                         r"Python, and has no Python 3.9 of its own") as e:
        bytecode.compile_files(Path("/elsewhere/python3.9"), [src], strip=tmp_path,
                               prefix="/app", minor="3.9", runs_here=False)
    assert "--no-compile" in (e.value.hint or "")


def test_two_platform_index_is_reproducible(sysroot: Path, packed, project, tmp_path: Path,
                                            monkeypatch):
    """Two checkouts at different paths and times, two empty caches: one index digest, for
    an arm64 interpreter run under qemu (sysroot) and for a uv-managed one never run."""
    base_dir = tmp_path / "base"
    rootfs = _glibc_rootfs(tmp_path / "rootfs")
    from uvship.oci import write_layout

    write_layout(Image.scratch("linux/arm64").with_layer(
        _layer(layers.scan(rootfs), tmp_path / "base.tar.gz")), base_dir, tags=["glibc"])
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(packed.downloads_json))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "installs"))
    later = time.time() + 7200
    digests: dict[str, list[str]] = {"sysroot": [], "managed": []}
    for n, where in enumerate((tmp_path / "a" / "ws", tmp_path / "b" / "deeper" / "ws")):
        ws = project("ws", where)
        if n:
            for p in ws.rglob("*"):
                os.utime(p, (later, later))
        monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / f"cache-{n}"))
        for kind, arm_python in (("sysroot", f",linux/arm64={sysroot / PY}"), ("managed", "")):
            proc = uvship("build", str(ws), "--package", "ws-app", "--json",
                          "--platform", "linux/amd64,linux/arm64",
                          "--python", f"linux/amd64={sys.executable}{arm_python}",
                          "--base", f"linux/arm64=oci:{base_dir}:glibc",
                          "-o", f"oci:{tmp_path / f'out-{n}-{kind}'}")
            assert proc.returncode == 0, proc.stderr
            digests[kind].append(json.loads(proc.stdout)["digest"])
    assert len(set(digests["sysroot"])) == 1 and len(set(digests["managed"])) == 1, digests
    # nothing of the build machine in any layer (uv records source paths in dist-info)
    for plat in ("linux/amd64", "linux/arm64"):
        img = read_layout(tmp_path / "out-0-managed", platform=plat)
        for layer in img.layers:
            with open_decompressed(layer.path, layer.compression) as f:
                assert str(tmp_path).encode() not in f.read(), (plat, layer.digest)


@pytest.mark.podman
def test_one_multi_platform_base_for_every_platform(sysroot: Path, project, tmp_path: Path):
    """--base of an index (amd64 + arm64 glibc images): each platform's image is built on
    that platform's base, and podman runs each from the written index."""
    from uvship.oci import ImageIndex, write_layout

    amd64 = read_layout(HOST_DIR / "images" / "oci" / "glibc-bookworm")
    arm64 = Image.scratch("linux/arm64").with_layer(
        _layer(layers.scan(_glibc_rootfs(tmp_path / "rootfs")), tmp_path / "base.tar.gz"))
    write_layout(ImageIndex.of([amd64, arm64]), tmp_path / "base", tags=["glibc"])
    ws = project("ws")
    proc = uvship("build", str(ws), "--package", "ws-app", "--json",
                  "--platform", "linux/amd64,linux/arm64",
                  "--python", f"linux/amd64={sys.executable},linux/arm64={sysroot / PY}",
                  "--base", f"oci:{tmp_path / 'base'}:glibc", "-o", f"oci:{tmp_path / 'lay'}:1")
    assert proc.returncode == 0, proc.stderr
    for plat, base in (("linux/amd64", amd64), ("linux/arm64", arm64)):
        img = read_layout(tmp_path / "lay", "1", plat)
        n = len(base.layers)
        assert [x.digest for x in img.layers[:n]] == [x.digest for x in base.layers], plat
        image_id = podman("pull", "-q", "--platform", plat,
                          f"oci:{tmp_path / 'lay'}:1").stdout.strip()
        try:
            out = podman("run", "--rm", "--pull=never", "--platform", plat, image_id).stdout
        finally:
            podman("rmi", "-f", image_id, check=False)
        assert out.strip() == "app says &lt;lib+core:xn--bcher-kva.example&gt;", plat


def test_api_builds_the_same_index_as_the_cli(sysroot: Path, project, tmp_path: Path):
    """UvBuild.images(platforms) -> MultiPlatformImage: the index `uvship build --platform
    a,b` writes, byte for byte; one platform's image; a docker-archive is refused."""
    from uvship import MultiPlatformImage, Uv
    from uvship.oci import layout_platforms, write_layout

    base_dir = tmp_path / "base"
    write_layout(Image.scratch("linux/arm64").with_layer(
        _layer(layers.scan(_glibc_rootfs(tmp_path / "rootfs")), tmp_path / "base.tar.gz")),
        base_dir, tags=["glibc"])
    ws = project("ws")
    python = f"linux/amd64={sys.executable},linux/arm64={sysroot / PY}"
    base = f"linux/arm64=oci:{base_dir}:glibc"
    proc = uvship("build", str(ws), "--package", "ws-app", "--json", "--platform",
                  "linux/amd64,linux/arm64", "--python", python, "--base", base,
                  "-o", f"oci:{tmp_path / 'cli'}")
    assert proc.returncode == 0, proc.stderr
    b = Uv(ws).workspace().build("ws-app", python=python, base=base)
    multi = b.images(["linux/amd64", "linux/arm64"])
    assert isinstance(multi, MultiPlatformImage)
    assert multi.platforms == ["linux/amd64", "linux/arm64"]
    assert multi.export(f"oci:{tmp_path / 'api'}") == json.loads(proc.stdout)["digest"]
    # index.json lists the index alone; its entry names each platform's SBOM
    (entry,) = json.loads((tmp_path / "cli" / "index.json").read_text())["manifests"]
    assert entry["digest"] == json.loads(proc.stdout)["digest"]
    for plat, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        got = uvship("sbom", f"oci:{tmp_path / 'cli'}", "--platform", plat)
        assert got.returncode == 0, got.stderr
        (cpython,) = [c for c in json.loads(got.stdout)["components"] if c["name"] == "cpython"]
        assert {"name": "uvship:machine", "value": machine} in cpython["properties"]
    assert [str(p) for p in layout_platforms(tmp_path / "api")] == multi.platforms
    assert multi.image("linux/arm64").oci.platform.architecture == "arm64"
    with pytest.raises(InputError, match="a docker-archive holds one platform"):
        multi.export(f"docker-archive:{tmp_path / 'x.tar'}")
    assert not (tmp_path / "x.tar").exists()


def test_arm64_bundle_with_a_uv_managed_python(packed, project, tmp_path: Path, monkeypatch):
    """bundle --platform linux/arm64 and no --python: the uv-managed aarch64 CPython, aarch64
    wheels, and pycs compiled by a native 3.11 for the final paths."""
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(packed.downloads_json))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "installs"))
    ws = project("ws")
    out = tmp_path / "app.tar.gz"
    proc = uvship("bundle", str(ws), "--package", "ws-app", "--platform", "linux/arm64",
                  "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)["manifest"]
    assert (manifest["platform"], manifest["interpreter"]["machine"],
            manifest["interpreter"]["source"]) == ("linux/arm64", "aarch64", "managed")
    tree = tmp_path / "x"
    tree.mkdir()
    with tarfile.open(out) as tar:
        tar.extractall(tree, filter="tar")
    assert tree_machines(tree) == {"aarch64"}
    pyc = next((tree / "app/.venv/lib/python3.11/site-packages/markupsafe/__pycache__")
               .glob("__init__.cpython-311.pyc"))
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 3  # checked-hash
    if sys.version_info[:2] == (3, 11):  # same magic number: this Python can read the pyc
        code = marshal.loads(pyc.read_bytes()[16:])
        assert code.co_filename == ("/app/.venv/lib/python3.11/site-packages/markupsafe/"
                                    "__init__.py")
