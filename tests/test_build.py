"""`uvship build`: images assembled on the host, judged by podman, skopeo and umoci."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from uvship import oci

from .conftest import HOST_DIR, compiled_sdist_project, podman, run, tiers, uvship

pytestmark = [pytest.mark.podman]
MINBASE_LAYOUT = HOST_DIR / "images" / "oci" / "debian-bookworm-minbase"


def build_ok(*args, **kw) -> dict:
    proc = uvship("build", *args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def loaded():
    """Factory: podman load a docker-archive under a fresh name; removed afterwards."""
    names = []

    def load(archive: Path, name: str) -> str:
        podman("load", "-q", "-i", str(archive))
        names.append(name)
        return name

    load.names = names  # type: ignore[attr-defined]  (images loaded some other way)
    yield load
    for n in names:
        podman("rmi", "-f", n, check=False)


def unique_tag(stem: str) -> str:
    return f"localhost/uvship-test/{stem}:{uuid.uuid4().hex[:8]}"


def layout_layers(path: Path) -> list[str]:
    return [layer.digest for layer in oci.read_layout(path).layers]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_example_serves_http_as_nonroot(project, managed_python, base_images, tmp_path, loaded):
    src = project("hello-web")
    tag = unique_tag("hello")
    res = build_ok(str(src), "-o", f"docker-archive:{tmp_path / 'img.tar'}", "-t", tag)
    assert tiers(res["layers"]) == ["runtime", "interpreter", "dependencies", "project"]
    loaded(tmp_path / "img.tar", tag)
    cfg = json.loads(podman("image", "inspect", tag).stdout)[0]["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["/app/.venv/bin/python", "/app/.venv/bin/hello-web"]
    out = podman("run", "--rm", "--pull=never", tag, "--check").stdout
    assert "hello-web ok python=3.12" in out and "uid=65532" in out

    port = free_port()
    cid = podman("run", "-d", "--rm", "--pull=never", "-p", f"127.0.0.1:{port}:8000",
                 tag).stdout.strip()
    try:
        body, deadline = None, time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.3)
        assert body == {"message": "hello from uvship"}, podman("logs", cid, check=False).stderr
    finally:
        podman("rm", "-f", "-t", "0", cid, check=False)


@pytest.mark.parametrize("args", [
    # the environment's python, then the module and its arguments as the image's Cmd
    ("--entrypoint", "python", "--cmd", "-m", "--cmd", "hello_web", "--cmd", "--check"),
    ("--entrypoint", "/app/.venv/bin/python", "--cmd", "-m", "--cmd", "hello_web",
     "--cmd", "--check"),
    ("--command", "python -m hello_web --check"),
])
def test_python_entrypoint_runs_a_module(project, managed_python, tmp_path, loaded, args):
    src = project("hello-web")
    tag = unique_tag("hello-m")
    build_ok(str(src), "-o", f"docker-archive:{tmp_path / 'img.tar'}", "-t", tag, *args)
    loaded(tmp_path / "img.tar", tag)
    cfg = json.loads(podman("image", "inspect", tag).stdout)[0]["Config"]
    assert cfg["Entrypoint"][0] == "/app/.venv/bin/python", cfg
    out = podman("run", "--rm", "--pull=never", tag).stdout
    assert "hello-web ok python=3.12" in out and "uid=65532" in out


def test_on_a_debian_base_from_an_oci_layout(project, managed_python, base_images, tmp_path,
                                             loaded):
    src = project("hello-web")
    base = oci.read_layout(MINBASE_LAYOUT)
    tag = unique_tag("on-debian")
    build_ok(str(src), "--base", f"oci:{MINBASE_LAYOUT}", "-o", f"oci:{tmp_path / 'lay'}",
             "-o", f"docker-archive:{tmp_path / 'img.tar'}", "-t", tag)
    img = oci.read_layout(tmp_path / "lay")
    n = len(base.layers)
    assert [x.digest for x in img.layers[:n]] == [x.digest for x in base.layers]
    assert [x.diff_id for x in img.layers[:n]] == list(base.diff_ids)
    # no scratch runtime on a distribution base
    roles = [h.get("created_by", "") for h in img.config_dict()["history"][-3:]]
    assert not any("runtime" in r for r in roles)
    labels = img.config_dict()["config"]["Labels"]
    assert labels["org.opencontainers.image.base.digest"] == base.digest
    # inspect names what the base's layers hold as paths in the image (its tar says ./usr)
    shown = json.loads(uvship("inspect", f"oci:{tmp_path / 'lay'}", "--json",
                              check=True).stdout)
    held = [p for x in shown["layers"][:n] for p in x["holds"]]
    assert "/usr/lib/x86_64-linux-gnu" in held and all(
        p.startswith("/") and "/./" not in p for p in held), held
    assert labels["org.opencontainers.image.title"] == "hello-web"
    loaded(tmp_path / "img.tar", tag)
    out = podman("run", "--rm", "--pull=never", tag, "--check").stdout
    assert "hello-web ok" in out
    # the base's shell is there, and the venv is first on PATH
    out = podman("run", "--rm", "--pull=never", "--entrypoint", "sh", tag, "-c",
                 "command -v python; id -u").stdout.split()
    assert out == ["/app/.venv/bin/python", "65532"]


def test_reproducible_across_checkouts_and_accepted_by_tools(project, managed_python, tmp_path,
                                                             monkeypatch, loaded):
    a = project("hello-web", tmp_path / "a" / "checkout")
    b = project("hello-web", tmp_path / "b" / "deeper" / "other")
    later = time.time() + 7200
    for p in b.rglob("*"):
        os.utime(p, (later, later))
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache-a"))
    ra = build_ok(str(a), "-o", f"oci:{tmp_path / 'out-a'}:v1")
    time.sleep(1.1)
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache-b"))
    out_b = tmp_path / "out-b"
    rb = build_ok(str(b), "-o", f"oci:{out_b}")  # the README's form: no tag
    assert ra["digest"] == rb["digest"]
    info = json.loads(run(["skopeo", "inspect", f"oci:{tmp_path / 'out-a'}:v1"]).stdout)
    assert info["Digest"] == ra["digest"]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"

    # index.json lists the one image (its SBOM is kept unlisted), so tools that read a
    # layout with no tag take it: skopeo, podman; umoci by the `latest` it is tagged
    (entry,) = json.loads((out_b / "index.json").read_text())["manifests"]
    assert (entry["mediaType"], entry["digest"]) == (oci.OCI_MANIFEST, rb["digest"])
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    tag = unique_tag("from-layout")
    run(["skopeo", "copy", "-q", f"oci:{out_b}", f"docker-archive:{tmp_path / 'b.tar'}:{tag}"])
    loaded(tmp_path / "b.tar", tag)
    assert "hello-web ok" in podman("run", "--rm", "--pull=never", tag, "--check").stdout
    image_id = podman("pull", "-q", f"oci:{out_b}").stdout.strip()
    try:
        assert f"sha256:{image_id}" == oci.read_layout(out_b).config_descriptor().digest
    finally:
        podman("rmi", "-f", image_id, check=False)
    run(["umoci", "unpack", "--image", f"{out_b}:latest", str(tmp_path / "bundle")])
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "app/.venv/bin/hello-web").is_file()
    assert os.readlink(rootfs / "app/.venv/bin/python") == "/opt/python/bin/python3.12"
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    # nothing of the build machine in the config or history
    cfg = oci.read_layout(tmp_path / "out-a").config_bytes()
    assert str(tmp_path).encode() not in cfg and b"/root" not in cfg

    # the SBOM is still found, with or without a tag, and is the same for both checkouts
    sboms = [uvship("sbom", ref) for ref in (f"oci:{out_b}", f"oci:{tmp_path / 'out-a'}:v1")]
    assert [(p.returncode, p.stderr) for p in sboms] == [(0, "")] * 2
    assert sboms[0].stdout == sboms[1].stdout
    names = {c["name"].lower() for c in json.loads(sboms[0].stdout)["components"]}
    assert {"hello-web", "fastapi", "uvicorn", "cpython"} <= names


def test_code_change_rebuilds_only_the_project_layer(project, managed_python, tmp_path,
                                                      uv_bin, loaded):
    src = project("hello-web")
    out = f"oci:{tmp_path / 'lay'}"
    roles = [x["role"] for x in build_ok(str(src), "-o", out)["layers"]]
    project_at = roles.index("project")
    first = layout_layers(tmp_path / "lay")
    init = src / "src/hello_web/__init__.py"
    init.write_text(init.read_text().replace("hello from uvship", "hello again"))
    res = build_ok(str(src), "-o", out)
    # the archive on its own: -t would give the layout a tag of its own beside latest
    build_ok(str(src), "-o", f"docker-archive:{tmp_path / 'img.tar'}",
             "-t", (tag := unique_tag("edit")))
    second = layout_layers(tmp_path / "lay")
    assert second[:project_at] == first[:project_at] and second[project_at] != first[project_at]
    loaded(tmp_path / "img.tar", tag)
    code = "import hello_web; print(hello_web.hello())"
    got = podman("run", "--rm", "--pull=never", "--entrypoint", "/app/.venv/bin/python", tag,
                 "-c", code).stdout
    assert "hello again" in got

    # inspect names the file that changed
    report = json.loads(uvship("inspect", out, "--json", check=True).stdout)
    assert report["digest"] == res["digest"]
    changed = [x["changed"] for x in report["layers"]]
    assert changed[:project_at] == ["unchanged"] * project_at
    assert "src/hello_web/__init__.py changed" in changed[project_at]

    # a dependency added: the dependency layer changes, runtime and interpreter do not
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text().replace('"uvicorn>=0.29,<1",', '"uvicorn>=0.29,<1", "six",'))
    run([uv_bin, "lock", "-q", "--python", sys.executable], cwd=src)
    build_ok(str(src), "-o", out)
    third = layout_layers(tmp_path / "lay")
    assert third[:2] == second[:2] and set(third[2:project_at]) != set(second[2:project_at])
    report = json.loads(uvship("inspect", out, "--json", check=True).stdout)
    assert [x["changed"] for x in report["layers"] if "added six" in x["changed"]], report


def test_no_change_rebuild_does_no_work(project, managed_python, tmp_path):
    src = project("hello-web")
    out = tmp_path / "img.tar"
    first = build_ok(str(src), "-o", f"docker-archive:{out}")
    mtime = out.stat().st_mtime_ns
    again = build_ok(str(src), "-o", f"docker-archive:{out}")
    assert again["digest"] == first["digest"] and again["written"] == []
    assert out.stat().st_mtime_ns == mtime


def test_workspace_package_and_two_venvs_in_one_image(project, managed_python, base_images,
                                                      tmp_path, loaded):
    ws = project("ws")
    tag = unique_tag("ws-app")
    build_ok(str(ws), "--package", "ws-app", "-o", f"docker-archive:{tmp_path / 'ws.tar'}",
             "-t", tag)
    loaded(tmp_path / "ws.tar", tag)
    assert podman("run", "--rm", "--pull=never", tag).stdout.strip() == \
        "app says &lt;lib+core:xn--bcher-kva.example&gt;"
    listing = podman("run", "--rm", "--pull=never", "--entrypoint", "/app/.venv/bin/python",
                     tag, "-c", "import os; print(sorted(os.listdir("
                     "'/app/.venv/lib/python3.12/site-packages')))").stdout
    assert "'lib'" in listing and "'core'" in listing
    assert "other" not in listing and "six" not in listing

    # two projects whose dependencies conflict, each in its own venv, one interpreter layer
    from uvship import Image, Uv

    a, b = project("conflict-a"), project("conflict-b")
    img = Image.scratch()
    img = Uv(a).workspace().build().copy_venv(img, path="/srv/a/.venv")
    n_after_a = len(img.oci.layers)
    img = Uv(b).workspace().build().copy_venv(img, path="/srv/b/.venv", set_env_vars=False)
    roles = [x["role"] for x in img.layer_info]
    assert roles.count("interpreter") == 1 and roles.count("runtime") == 1
    assert len(img.oci.layers) > n_after_a
    tag2 = unique_tag("two-venvs")
    img.export(f"docker-archive:{tmp_path / 'two.tar'}", tags=[tag2])
    loaded(tmp_path / "two.tar", tag2)
    out_a = podman("run", "--rm", "--pull=never", "--user", "65532", tag2,
                   "/srv/a/.venv/bin/python", "/srv/a/.venv/bin/conflict-a").stdout
    out_b = podman("run", "--rm", "--pull=never", "--user", "65532", tag2,
                   "/srv/b/.venv/bin/python", "/srv/b/.venv/bin/conflict-b").stdout
    assert out_a.strip() == "conflict-a idna=3.7 prefix=/srv/a/.venv"
    assert out_b.strip() == "conflict-b idna=3.10 prefix=/srv/b/.venv"


def test_image_options_from_pyproject_and_zstd(project, managed_python, tmp_path, loaded):
    src = project("hello-web")
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text() + '\n[tool.uvship]\ncompression = "zstd"\n'
                  'env = ["GREETING=hi"]\nlabel = ["team=web"]\ncmd = ["--check"]\n'
                  'user = "4242"\n')
    tag = unique_tag("zstd")
    build_ok(str(src), "-o", f"oci:{tmp_path / 'lay'}", "-o",
             f"docker-archive:{tmp_path / 'img.tar'}", "-t", tag, "--label", "team=cli")
    img = oci.read_layout(tmp_path / "lay")
    assert {x.media_type for x in img.layers} == {oci.OCI_LAYER_ZSTD}
    cfg = img.config_dict()["config"]
    assert "GREETING=hi" in cfg["Env"] and cfg["User"] == "4242"
    assert cfg["Labels"]["team"] == "cli"  # the command line wins over pyproject.toml
    assert cfg["Cmd"] == ["--check"]
    loaded(tmp_path / "img.tar", tag)
    out = podman("run", "--rm", "--pull=never", tag).stdout
    assert "hello-web ok" in out and "uid=4242" in out


def test_two_builds_at_once_share_the_cache(project, managed_python, tmp_path, monkeypatch):
    """Two builds racing on one empty cache both succeed, with one digest and no debris."""
    import subprocess

    from .conftest import ROOT

    src = project("hello-web")
    cache = tmp_path / "shared-cache"
    env = {**os.environ, "UVSHIP_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-m", "uvship", "build", str(src), "--json",
                               "-o", f"oci:{tmp_path / f'out{n}'}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in (1, 2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    digests = {json.loads(r[0])["digest"] for r in results}
    assert len(digests) == 1
    assert list((cache / "tmp").iterdir()) == []
    for d in (cache / "tiers").iterdir():
        assert (d / ".complete").is_file()


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_a_changed_output_or_cache_blob_never_reaches_an_image(project, managed_python,
                                                               tmp_path):
    """Outputs hold copies of the cache's blobs, never hard links; a cache blob changed in
    place is noticed when read back and made again; inspect and sbom verify digests."""
    src = project("hello-web")
    first = build_ok(str(src), "-o", f"oci:{tmp_path / 'a'}")
    project_layer = first["layers"][-1]["digest"].split(":", 1)[1]
    out_blob = tmp_path / "a" / "blobs" / "sha256" / project_layer
    cache_blob = Path(os.environ["UVSHIP_CACHE_DIR"]) / "blobs" / "sha256" / project_layer
    assert out_blob.stat().st_ino != cache_blob.stat().st_ino  # a copy
    _flip_a_byte(out_blob)  # a user edits the output in place: same size, other bytes

    for what in ("inspect", "sbom"):
        proc = uvship(what, f"oci:{tmp_path / 'a'}")
        assert proc.returncode == 1, (what, proc.stdout, proc.stderr)
        assert f"the layer blob sha256:{project_layer} does not match its descriptor" \
            in proc.stderr, proc.stderr

    _flip_a_byte(cache_blob)  # and now the cache itself
    again = build_ok(str(src), "-o", f"oci:{tmp_path / 'b'}")
    assert again["digest"] == first["digest"]
    run(["skopeo", "inspect", "--raw", f"oci:{tmp_path / 'b'}"])
    assert uvship("inspect", f"oci:{tmp_path / 'b'}").returncode == 0  # every digest holds

    # a layer gone, a manifest that is not what index.json says
    (tmp_path / "b" / "blobs" / "sha256" / project_layer).unlink()
    proc = uvship("inspect", f"oci:{tmp_path / 'b'}")
    assert proc.returncode == 1 and f"the layer blob sha256:{project_layer} is missing" \
        in proc.stderr, proc.stderr
    manifest = tmp_path / "b" / "blobs" / "sha256" / again["digest"].split(":", 1)[1]
    manifest.write_bytes(manifest.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":2 '))
    proc = uvship("inspect", f"oci:{tmp_path / 'b'}")
    assert proc.returncode == 1 and "manifest blob" in proc.stderr, proc.stderr


def test_sdist_only_packages_are_built_for_this_host_with_or_without_a_base(
        managed_python, base_images, tmp_path, uv_bin, loaded):
    """A package locked with only an sdist, pure Python (docopt) or a C extension (ctiny),
    is built by uv for this host's platform: on scratch, and on a base, whose glibc once
    made uvship refuse it (darrenburns/posting's pyperclip, full-stack-fastapi's dkimpy)."""
    proj = compiled_sdist_project(tmp_path, uv_bin, "docopt==0.6.2")
    for name, base in (("scratch", []), ("base", ["--base", f"oci:{MINBASE_LAYOUT}"])):
        archive, tag = tmp_path / f"{name}.tar", unique_tag(name)
        build_ok(str(proj), *base, "-o", f"docker-archive:{archive}", "-t", tag)
        out = podman("run", "--rm", "--pull=never", loaded(archive, tag)).stdout
        assert out.splitlines() == ["ctiny 42", "docopt 0.6.2"], (name, out)


# ---- outputs: streams, special files and shared layouts -------------------------------


def test_docker_archive_to_stdout_is_loaded_and_run_by_podman(project, managed_python,
                                                              tmp_path, loaded):
    """`uvship build -o docker-archive:- | podman load`: stdout carries the archive only."""
    import subprocess

    src = project("hello-web")
    tag = unique_tag("stdout")
    with (tmp_path / "stderr").open("w+") as err:
        build = subprocess.Popen([sys.executable, "-m", "uvship", "build", str(src), "-t", tag,
                                  "-o", "docker-archive:-", "--cmd", "--check"],
                                 stdout=subprocess.PIPE, stderr=err, cwd=tmp_path)
        load = subprocess.run(["podman", "load"], stdin=build.stdout, capture_output=True,
                              text=True)
        build.stdout.close()
        build.wait(timeout=600)
        err.seek(0)
        stderr = err.read()
    assert build.returncode == 0, stderr
    assert load.returncode == 0, load.stderr
    loaded.names.append(tag)
    # the result line goes to stderr, with the digest a build to a file reports
    digest = build_ok(str(src), "-o", f"docker-archive:{tmp_path / 'img.tar'}", "-t", tag,
                      "--cmd", "--check")["digest"]
    (tmp_path / "img.tar").unlink()
    assert f"docker-archive:-@{digest}" in stderr.splitlines()
    assert sorted(os.listdir(tmp_path)) == ["hello-web", "stderr"]  # no file named "-"
    assert "hello-web ok" in podman("run", "--rm", "--pull=never", tag).stdout


def test_docker_archive_to_dev_stdout_streams_and_keeps_dev_stdout(project, managed_python,
                                                                   tmp_path):
    import io
    import subprocess
    import tarfile

    src = project("hello-web")
    before = os.lstat("/dev/stdout")
    try:
        proc = subprocess.run([sys.executable, "-m", "uvship", "build", str(src), "-o",
                               "docker-archive:/dev/stdout"], capture_output=True, cwd=tmp_path)
    finally:
        after = os.lstat("/dev/stdout")
        if (after.st_ino, after.st_mode) != (before.st_ino, before.st_mode):
            tmp = Path(f"/dev/.stdout-restore-{os.getpid()}")  # put the host's back
            tmp.symlink_to("/proc/self/fd/1")
            os.replace(tmp, "/dev/stdout")
    assert proc.returncode == 0, proc.stderr.decode()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert len(manifest) == 1 and manifest[0]["Layers"]
    assert b"docker-archive:/dev/stdout@sha256:" in proc.stderr


def test_docker_archive_into_a_fifo_read_by_podman_load(project, managed_python, tmp_path,
                                                        loaded):
    import subprocess

    src = project("hello-web")
    fifo = tmp_path / "image.fifo"
    os.mkfifo(fifo)
    tag = unique_tag("fifo")
    for _ in range(2):  # a rebuild writes the stream again: a FIFO is never "up to date"
        # `podman load < FIFO`: `-i FIFO` would open the path again for each format it tries
        load = subprocess.Popen(["sh", "-c", 'exec podman load < "$0"', str(fifo)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            res = build_ok(str(src), "-o", f"docker-archive:{fifo}", "-t", tag,
                           "-o", f"oci:{tmp_path / 'lay'}")
            _, err = load.communicate(timeout=120)
        finally:
            load.kill()
        assert load.returncode == 0, err
        assert res["written"][0] == f"docker-archive:{fifo}"
        loaded.names.append(tag)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    image_id = podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    assert f"sha256:{image_id}" == oci.read_layout(tmp_path / "lay").config_descriptor().digest


def test_a_symlinked_output_is_written_through(project, managed_python, tmp_path):
    src = project("hello-web")
    (tmp_path / "real").mkdir()
    link = tmp_path / "img.tar"
    link.symlink_to("real/img.tar")
    res = build_ok(str(src), "-o", f"docker-archive:{link}")
    assert link.is_symlink() and os.readlink(link) == "real/img.tar"
    assert oci.read_docker_archive(tmp_path / "real" / "img.tar",
                                   blob_dir=tmp_path / "blobs").digest == res["digest"]


def test_layout_keeps_each_tag_with_its_sbom(project, managed_python, tmp_path):
    src = project("hello-web")
    lay = tmp_path / "lay"
    one = build_ok(str(src), "-o", f"oci:{lay}:1.0")
    two = build_ok(str(src), "-o", f"oci:{lay}:2.0", "--label", "rev=2")
    assert one["digest"] != two["digest"]
    for tag, res in (("1.0", one), ("2.0", two)):
        info = json.loads(run(["skopeo", "inspect", f"oci:{lay}:{tag}"]).stdout)
        assert info["Digest"] == res["digest"]
        sbom = json.loads(uvship("sbom", f"oci:{lay}:{tag}", check=True).stdout)
        assert sbom["bomFormat"] == "CycloneDX"
    entries = json.loads((lay / "index.json").read_text())["manifests"]
    assert [e["annotations"]["org.opencontainers.image.ref.name"] for e in entries] == [
        "1.0", "2.0"]
    assert all(e["annotations"]["dev.uvship.sbom"] for e in entries)


def test_two_builds_with_different_tags_into_one_layout(project, managed_python, tmp_path):
    import subprocess

    from .conftest import ROOT

    src = project("hello-web")
    lay = tmp_path / "lay"
    build_ok(str(src), "-o", f"docker-archive:{tmp_path / 'warm.tar'}")  # a warm cache
    procs = [subprocess.Popen([sys.executable, "-m", "uvship", "build", str(src), "--json",
                               "--label", f"n={n}", "-o", f"oci:{lay}:{n}"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in ("1", "2")]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    for n, (stdout, _) in zip(("1", "2"), results, strict=True):
        info = json.loads(run(["skopeo", "inspect", f"oci:{lay}:{n}"]).stdout)
        assert info["Digest"] == json.loads(stdout)["digest"] and info["Labels"]["n"] == n
        assert json.loads(uvship("sbom", f"oci:{lay}:{n}", check=True).stdout)


def test_bad_outputs_and_tags_are_refused_before_any_work(project, tmp_path):
    import socket

    src = project("hello-web")
    cache = tmp_path / "cache"
    (tmp_path / "file").write_text("mine")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    lay = tmp_path / "lay"
    cases = [
        (["-t", "Bad Tag!!", "-o", f"oci:{lay}"], "tag 'Bad Tag!!': expected"),
        (["-o", f"oci:{lay}:Bad Tag!!"], f"--output oci:{lay}:Bad Tag!!: the tag 'Bad Tag!!'"),
        (["-o", f"oci:{tmp_path / 'file'}"], "exists and is not a directory"),
        (["-o", f"oci:{tmp_path / 'notes'}"], "is not an OCI layout"),
        (["-o", f"docker-archive:{tmp_path / 'sock'}"], "is a socket; expected a regular file"),
        (["-o", f"docker-archive:{tmp_path / 'notes'}"], "is a directory; expected a regular"),
        (["-o", "docker-archive:-", "--json"], "--json: the result goes to stdout, which "
                                               "carries the docker-archive"),
        (["-o", "docker-archive:-", "-o", "docker-archive:/dev/stdout"],
         "two outputs write to stdout"),
        (["-o", "oci:-"], "oci:-: an OCI layout is a directory"),
    ]
    try:
        for args, message in cases:
            proc = uvship("build", str(src), *args, env={"UVSHIP_CACHE_DIR": str(cache)},
                          cwd=tmp_path)
            assert proc.returncode == 1, (args, proc.stderr)
            assert message in proc.stderr, (args, proc.stderr)
            assert proc.stdout == ""
            assert not (cache / "tiers").exists(), args  # nothing was staged
    finally:
        sock.close()
    assert sorted(os.listdir(tmp_path)) == ["file", "hello-web", "notes", "sock"]
    assert os.listdir(tmp_path / "notes") == ["a.txt"]
