"""Compiled wheels on the scratch base: what they load is found as the loader finds it, and
what the image would not have is refused before any layer is written."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import _session_dir, copy_project, one_dependency_project, podman, uvship

pytestmark = [pytest.mark.podman]

# What tests/projects/native-wheels checks (`native-wheels` prints `ok NAME ...` for each).
PACKAGES = ("argon2", "bcrypt", "cryptography", "duckdb", "greenlet", "grpcio", "httptools",
            "lxml", "matplotlib", "msgpack", "numpy", "opencv", "orjson", "pandas", "pillow",
            "polars", "psutil", "psycopg", "psycopg2", "pyarrow", "pydantic_core", "pyzmq",
            "regex", "scikit-learn", "scipy", "shapely", "uvloop", "zstandard")


@pytest.fixture(scope="module")
def native_build(tmp_path_factory, python_downloads, uv_bin, base_images):
    """tests/projects/native-wheels built once on the default (scratch) base and loaded
    into podman: (project, build env, tag, the build's JSON)."""
    work = tmp_path_factory.mktemp("native")
    proj = copy_project("native-wheels", work / "native-wheels", uv_bin)
    env = {k: v for k, v in python_downloads.items() if k.startswith("UV_")}
    env["UVSHIP_CACHE_DIR"] = str(_session_dir(tmp_path_factory, "uvship-cache"))
    tag = f"localhost/uvship-test/native-wheels:{uuid.uuid4().hex[:8]}"
    archive = work / "img.tar"
    proc = uvship("build", str(proj), "-o", f"docker-archive:{archive}", "-t", tag, "--json",
                  env=env)
    assert proc.returncode == 0, proc.stderr
    podman("load", "-q", "-i", str(archive))
    yield proj, env, tag, json.loads(proc.stdout)
    podman("rmi", "-f", tag, check=False)


def test_every_compiled_package_runs_on_scratch(native_build):
    """psycopg-binary 3.3.4 and Pillow 11.3.0 vendor libraries that need each other in their
    `.libs`, found through the DT_RPATH of the module that loads them; the rest load
    OpenBLAS, OpenMP, GEOS, Arrow, libstdc++... The image runs as its user, 65532."""
    _, _, tag, _ = native_build
    proc = podman("run", "--rm", "--pull=never", tag, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"checked {len(PACKAGES)} packages, 0 failed", proc.stdout
    done = {line.split()[1].replace("sklearn", "scikit-learn") for line in lines
            if line.startswith("ok ")}
    assert done == set(PACKAGES), proc.stdout
    assert "ok psycopg ('binary', " in proc.stdout  # the compiled libpq, not the ctypes one
    assert "ok pillow 'PNG,JPEG,WEBP,TIFF'" in proc.stdout
    assert "ok psutil (True, 'nonroot')" in proc.stdout  # uid 65532
    user = podman("image", "inspect", "--format", "{{.Config.User}}", tag).stdout.strip()
    assert user == "65532:65532"


def test_the_image_takes_only_the_system_libraries_wheels_may_assume(native_build):
    """Beyond the interpreter's glibc, only libraries of the manylinux policy that every
    Linux has come from this host (libstdc++ here); everything else ships in the wheels."""
    _, _, tag, _ = native_build
    names = podman("run", "--rm", "--pull=never", "--entrypoint", "/app/.venv/bin/python", tag,
                   "-c", "import os; print('\\n'.join(sorted(os.listdir("
                   "'/usr/lib/x86_64-linux-gnu'))))").stdout.split()
    libs = {n.split(".so")[0] for n in names if ".so" in n}
    assert "libstdc++" in libs
    assert libs <= {"libc", "libm", "libmvec", "libpthread", "libdl", "librt", "libutil",
                    "libresolv", "libgcc_s", "libstdc++", "libatomic", "libz", "libexpat",
                    "ld-linux-x86-64"}, libs


def test_a_rebuild_of_the_big_environment_does_no_work(native_build):
    proj, env, _, first = native_build
    proc = uvship("build", str(proj), "-o", f"oci:{proj.parent / 'again'}", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stderr
    assert json.loads(proc.stdout)["digest"] == first["digest"]


def test_a_wheel_needing_gui_libraries_is_refused_before_any_layer(tmp_path, uv_bin,
                                                                   managed_python,
                                                                   monkeypatch):
    """opencv-python's Qt and libGL load libGL.so.1, X11 and glib, which it does not bundle
    (manylinux allows that): an image on scratch would not have them, whatever this host
    has installed. The error names the package, a library and the way out."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(cache))
    proj = one_dependency_project(tmp_path, uv_bin, "gui-app", "opencv-python==4.12.0.88",
                                  "cv2")
    out = tmp_path / "out"
    proc = uvship("build", str(proj), "-o", f"oci:{out}")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    flat = " ".join(proc.stderr.split())
    assert "error: opencv-python 4.12.0.88 needs libGL.so.1, " in flat, flat
    assert "an image on the scratch base does not have them" in flat
    assert "hint: use opencv-python-headless, or a --base that provides libGL.so.1" in flat
    assert "writing layers" not in proc.stderr and not out.exists()
    # what depends only on the interpreter is made while uv installs; no tier's layer is
    written = {json.loads(p.read_text())["role"] for p in (cache / "layers").glob("*.json")}
    assert written <= {"interpreter", "runtime"}, written
