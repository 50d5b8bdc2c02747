"""`uvship build`: images assembled on the host, judged by podman, skopeo and umoci."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from uvship import oci

from .conftest import HOST_DIR, podman, run, uvship

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
    assert [x["role"] for x in res["layers"]] == ["runtime", "interpreter", "dependencies",
                                                  "project"]
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
    build_ok(str(src), "-o", out)
    first = layout_layers(tmp_path / "lay")
    init = src / "src/hello_web/__init__.py"
    init.write_text(init.read_text().replace("hello from uvship", "hello again"))
    res = build_ok(str(src), "-o", out, "-o", f"docker-archive:{tmp_path / 'img.tar'}",
                   "-t", (tag := unique_tag("edit")))
    second = layout_layers(tmp_path / "lay")
    assert second[:3] == first[:3] and second[3] != first[3]
    loaded(tmp_path / "img.tar", tag)
    code = "import hello_web; print(hello_web.hello())"
    got = podman("run", "--rm", "--pull=never", "--entrypoint", "/app/.venv/bin/python", tag,
                 "-c", code).stdout
    assert "hello again" in got

    # inspect names the file that changed
    report = json.loads(uvship("inspect", out, "--json", check=True).stdout)
    assert report["digest"] == res["digest"]
    changed = [x["changed"] for x in report["layers"]]
    assert changed[:3] == ["unchanged"] * 3
    assert "src/hello_web/__init__.py changed" in changed[3]

    # a dependency added: the dependency layer changes, runtime and interpreter do not
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text().replace('"uvicorn>=0.29,<1",', '"uvicorn>=0.29,<1", "six",'))
    run([uv_bin, "lock", "-q", "--python", sys.executable], cwd=src)
    build_ok(str(src), "-o", out)
    third = layout_layers(tmp_path / "lay")
    assert third[:2] == second[:2] and third[2] != second[2]
    report = json.loads(uvship("inspect", out, "--json", check=True).stdout)
    assert "added six" in report["layers"][2]["changed"]


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
