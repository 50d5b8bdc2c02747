"""`uvship build` with bad input: one clear error before any layer work, nothing half-written."""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import pytest

from uvship import layers, oci

from .conftest import HOST_DIR, interrupt_while_staging, one_dependency_project, uvship

GLIBC_LAYOUT = HOST_DIR / "images" / "oci" / "glibc-bookworm"
GLIBC_ARCHIVE = HOST_DIR / "images" / "docker-archive" / "glibc-bookworm.tar"


def assert_fails(proc, *fragments: str) -> None:
    """Exit 1, nothing on stdout, an `error:` naming every fragment, no layer work done."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    err = proc.stderr[proc.stderr.index("error: "):] if "error: " in proc.stderr else ""
    assert err, proc.stderr
    flat = " ".join(err.split())
    for f in fragments:
        assert " ".join(f.split()) in flat, (f, proc.stderr)
    for work in ("installing third-party", "installing local", "installing the project",
                 "writing layers", "writing oci", "writing docker"):
        assert work not in proc.stderr, proc.stderr


def outputs(tmp_path: Path) -> list[str]:
    return ["-o", f"oci:{tmp_path / 'out'}", "-o", f"docker-archive:{tmp_path / 'img.tar'}"]


def nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists() and not (tmp_path / "img.tar").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unknown_base(project, tmp_path):
    src = project("hello-web")
    proc = uvship("build", str(src), "--base", "Not A Base!", *outputs(tmp_path))
    assert_fails(proc, "--base Not A Base!: unknown kind of base image",
                 "expected `scratch`, `oci:DIR[:TAG]`, `docker-archive:FILE` or a registry "
                 "reference")
    nothing_written(tmp_path)


@pytest.mark.parametrize("damage", ["blob", "index"])
def test_corrupt_oci_layout(project, tmp_path, damage):
    src = project("hello-web")
    base = tmp_path / "base"
    shutil.copytree(GLIBC_LAYOUT, base)
    if damage == "blob":
        layer = oci.read_layout(base).layers[0]
        p = base / "blobs" / "sha256" / layer.digest.split(":", 1)[1]
        p.chmod(0o644)
        data = bytearray(p.read_bytes())
        data[100] ^= 0xFF
        p.write_bytes(bytes(data))
        expect = layer.digest.split(":", 1)[1][:12]
    else:
        (base / "index.json").write_text("{not json")
        expect = "index.json"
    proc = uvship("build", str(src), "--base", f"oci:{base}", *outputs(tmp_path))
    assert_fails(proc, expect)
    nothing_written(tmp_path)


def test_truncated_docker_archive(project, tmp_path):
    src = project("hello-web")
    bad = tmp_path / "base.tar"
    bad.write_bytes(GLIBC_ARCHIVE.read_bytes()[: GLIBC_ARCHIVE.stat().st_size // 2])
    proc = uvship("build", str(src), "--base", f"docker-archive:{bad}", *outputs(tmp_path))
    assert_fails(proc, str(bad))
    nothing_written(tmp_path)


def _layout_with(tmp_path: Path, img: oci.Image, name: str) -> Path:
    path = tmp_path / name
    oci.write_layout(img, path, tags=["t"])
    return path


def test_base_of_another_architecture(project, managed_python, tmp_path):
    src = project("hello-web")
    arm = oci.read_layout(GLIBC_LAYOUT).with_platform("linux", "arm64")
    base = _layout_with(tmp_path, arm, "arm-base")
    proc = uvship("build", str(src), "--base", f"oci:{base}:t", *outputs(tmp_path))
    assert_fails(proc, f"--base oci:{base}:t:", "no image for platform linux/amd64",
                 "found platforms: linux/arm64")
    nothing_written(tmp_path)


def test_musl_base_under_a_glibc_interpreter(project, managed_python, tmp_path):
    src = project("hello-web")
    blob = tmp_path / "musl-layer.tar.gz"
    entries = layers.normalize([
        layers.Entry("lib/ld-musl-x86_64.so.1", "file", 0o755, data=b"\x7fELF musl loader"),
        layers.Entry("bin/sh", "symlink", 0o777, target="/bin/busybox"),
    ])
    with blob.open("wb") as f:
        info = layers.write_tar(entries, f)
    musl = oci.Image.scratch().with_layer(oci.Layer.from_archive(info, blob))
    base = _layout_with(tmp_path, musl, "musl-base")
    # a given glibc interpreter does not fit it
    proc = uvship("build", str(src), "--base", f"oci:{base}", "--python", sys.executable,
                  *outputs(tmp_path))
    assert_fails(proc, "the image's C library is musl, expected glibc")
    nothing_written(tmp_path)
    # with none given, the target is musl, and no musl CPython is to be had
    proc = uvship("build", str(src), "--base", f"oci:{base}", *outputs(tmp_path))
    assert_fails(proc, "no interpreter for linux/amd64 (musl)")
    nothing_written(tmp_path)


def test_wheels_newer_than_the_base_glibc_are_refused_first(tmp_path, uv_bin):
    """numpy 2.3.3 publishes manylinux_2_27 wheels and no older: a base with glibc 2.17
    cannot load them, so the build stops before any work, naming package and glibc."""
    proj = one_dependency_project(tmp_path, uv_bin, "np-app", "numpy==2.3.3", "numpy")
    blob = tmp_path / "old-glibc.tar.gz"
    entries = layers.normalize([
        layers.Entry("lib64/ld-linux-x86-64.so.2", "file", 0o755, data=b"\x7fELF loader"),
        layers.Entry("lib64/libc.so.6", "file", 0o755,
                     data=b"\x7fELF GNU C Library (GNU libc) stable release version 2.17.\n"),
    ])
    with blob.open("wb") as f:
        info = layers.write_tar(entries, f)
    base = _layout_with(tmp_path, oci.Image.scratch().with_layer(
        oci.Layer.from_archive(info, blob)), "old-glibc")
    proc = uvship("build", str(proj), "--base", f"oci:{base}", "--python", sys.executable,
                  *outputs(tmp_path))
    assert_fails(proc, "no wheel for linux/amd64 with glibc 2.17 (the base's) of numpy 2.3.3 "
                       "(expected a manylinux (glibc 2.17 or older) wheel for x86_64")
    nothing_written(tmp_path)


def test_no_console_script_and_no_entrypoint(project, tmp_path):
    src = project("no-script")
    proc = uvship("build", str(src), *outputs(tmp_path))
    assert_fails(proc, "no-script: no console script in [project.scripts]",
                 "--command 'python -m no_script'")  # the project's own module
    nothing_written(tmp_path)


def test_several_console_scripts_and_no_entrypoint(project, uv_bin, tmp_path):
    src = project("hello-web")
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text().replace(
        'hello-web = "hello_web.__main__:main"',
        'hello-web = "hello_web.__main__:main"\nhello-admin = "hello_web.__main__:main"'))
    from .conftest import run

    run([uv_bin, "lock", "-q", "--python", sys.executable], cwd=src)
    proc = uvship("build", str(src), *outputs(tmp_path))
    assert_fails(proc, "several console scripts (hello-admin, hello-web), expected one",
                 "--command hello-admin")
    nothing_written(tmp_path)


def test_entrypoint_that_does_not_exist(project, managed_python, tmp_path):
    src = project("hello-web")
    proc = uvship("build", str(src), "--entrypoint", "nope", *outputs(tmp_path))
    assert proc.returncode == 1
    assert "error: entrypoint 'nope': no program 'nope' in the environment's bin/ (found: " \
        in proc.stderr, proc.stderr
    assert "hello-web" in proc.stderr  # what there is
    nothing_written(tmp_path)


@pytest.mark.parametrize("spec", ["docker-archive:{t}/missing/img.tar", "oci:{t}/afile/out",
                                  "tarball:{t}/x"])
def test_unwritable_or_unknown_output(project, tmp_path, spec):
    src = project("hello-web")
    (tmp_path / "afile").write_text("x")
    out = spec.format(t=tmp_path)
    proc = uvship("build", str(src), "-o", out)
    assert_fails(proc, f"--output {out}")


def test_ctrl_c_mid_build_leaves_nothing(project, managed_python, tmp_path):
    src = project("hello-web")
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    cache = tmp_path / "fresh-cache"
    stdout, stderr = interrupt_while_staging(
        ["build", str(src), "-o", f"oci:{outdir / 'lay'}",
         "-o", f"docker-archive:{outdir / 'img.tar'}"], cache)
    assert stdout == "" and "Traceback" not in stderr
    assert "error: cancelled" in stderr
    assert list(outdir.iterdir()) == []
    assert list((cache / "tmp").iterdir()) == []
    # no cached tier or layer without its content
    for rec in (cache / "tiers").glob("*"):
        assert (rec / ".complete").is_file(), rec
    for rec in (cache / "layers").glob("*.json"):
        blob = cache / "blobs" / "sha256" / rec.read_text().split('"digest": "sha256:')[1][:64]
        assert blob.is_file(), rec
    # and the next build works
    again = uvship("build", str(src), "-o", f"oci:{outdir / 'lay'}",
                   env={"UVSHIP_CACHE_DIR": str(cache)})
    assert again.returncode == 0, again.stderr
    assert io.StringIO(again.stdout).read().startswith(f"oci:{outdir / 'lay'}@sha256:")


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone already
        return b""


def test_kill_9_mid_build(project, managed_python, tmp_path):
    """kill -9 runs no handler: the children must die with uvship (the kernel's parent-death
    signal; here a build step that would sleep for minutes), and the next run removes what
    it left in the cache."""
    import signal
    import subprocess
    import time

    src = project("hello-web")
    cache = tmp_path / "cache"
    env = {**os.environ, "UVSHIP_CACHE_DIR": str(cache)}
    sleeper = "python -c 'import time; time.sleep(300)'"
    proc = subprocess.Popen([sys.executable, "-m", "uvship", "build", str(src), "-o",
                             f"oci:{tmp_path / 'lay'}", "--project-files",
                             "--build-step", sleeper], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not kids:
        # the build step itself: a child that forked and has not exec'd yet still shows
        # uvship's own command line (which names the step), so that is not it
        kids = {k for k in _children(proc.pid)
                if b"time.sleep(300)" in (line := _cmdline(k)) and b"uvship" not in line}
        time.sleep(0.05)
    assert kids, "the build ended before its build step ran"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(100):
        alive = {k for k in kids if Path(f"/proc/{k}").exists()
                 and "State:\tZ" not in Path(f"/proc/{k}/status").read_text()}
        if not alive:
            break
        time.sleep(0.05)
    assert not alive, "the build step outlived uvship"
    left = [p.name for p in (cache / "tmp").iterdir()]
    assert any(f"-{proc.pid}-" in n for n in left), left  # what kill -9 leaves

    again = uvship("build", str(src), "-o", f"oci:{tmp_path / 'lay'}", env={
        "UVSHIP_CACHE_DIR": str(cache)})
    assert again.returncode == 0, again.stderr
    assert list((cache / "tmp").iterdir()) == [], (proc.pid, left)
    assert not list((cache / "blobs" / "sha256").glob(".layer-*"))


@pytest.mark.parametrize("args,error", [
    (("--env", "NOEQUALS"), "--env 'NOEQUALS': expected KEY=VALUE"),
    (("--label", "novalue"), "--label 'novalue': expected KEY=VALUE"),
    (("--env", "MY KEY=1"), "--env 'MY KEY=1': expected the key to be a name of letters"),
    (("--env", "A=line\nbreak"), "--env A=...: expected a one-line value"),
    (("--label", "a b=1"), "--label 'a b=1': expected the key to be a word with no whitespace"),
    (("--user", "root;rm -rf /"), "--user 'root;rm -rf /': expected NAME or UID"),
])
def test_image_config_values_are_checked_first(project, tmp_path, args, error):
    src = project("hello-web")
    proc = uvship("build", str(src), *args, *outputs(tmp_path))
    assert_fails(proc, error)  # exit 1 with one `error:` line, before any work
    assert "✓" not in proc.stderr
    nothing_written(tmp_path)
