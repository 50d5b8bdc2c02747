"""`uvship build --push`, registry bases and the registry-backed layer cache, on a real registry."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from uvship import oci
from uvship.registry import Registry

from .conftest import HOST_DIR, podman, run, uvship
from .registry_fixtures import basic_registry_fixture, registry_fixture  # noqa: F401

pytestmark = [pytest.mark.podman]
GLIBC_LAYOUT = HOST_DIR / "images" / "oci" / "glibc-bookworm"


def build_json(*args, env=None) -> dict:
    proc = uvship("build", *args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_push_pull_and_run(project, managed_python, registry, tmp_path):
    src = project("hello-web")
    ref1, ref2 = registry.ref("hello", "1.0"), registry.ref("hello", "latest")
    res = build_json(str(src), "--push", ref1, "--push", ref2)
    assert res["written"] == [ref1, ref2]
    for ref in (ref1, ref2):
        info = json.loads(run(["skopeo", "inspect", "--tls-verify=false",
                               f"docker://{ref}"]).stdout)
        assert info["Digest"] == res["digest"]
    podman("pull", "-q", "--tls-verify=false", ref1)
    try:
        out = podman("run", "--rm", "--pull=never", ref1, "--check").stdout
        assert "hello-web ok" in out and "uid=65532" in out
    finally:
        podman("rmi", "-f", ref1, check=False)

    # inspect reads the image back from the registry
    report = json.loads(uvship("inspect", ref1, "--json", check=True).stdout)
    assert report["digest"] == res["digest"]
    assert [x["role"] for x in report["layers"]] == ["runtime", "interpreter", "dependencies",
                                                     "project"]


def test_second_push_uploads_only_what_changed(project, managed_python, registry):
    src = project("hello-web")
    ref = registry.ref("delta", "1")
    first = build_json(str(src), "--push", ref)
    init = src / "src/hello_web/__init__.py"
    init.write_text(init.read_text() + "\n# a code-only change\n")
    mark = registry.mark()
    second = build_json(str(src), "--push", ref)
    assert second["digest"] != first["digest"]
    uploads = registry.count("PUT", r"/v2/delta/blobs/uploads/", since=mark, status=201)
    image_manifests = registry.count("PUT", r"/v2/delta/manifests/1$", since=mark, status=201)
    others = registry.count("PUT", r"/v2/delta/manifests/", since=mark, status=201) - 1
    assert uploads == 2  # the project layer and the config (the SBOM's bytes are unchanged)
    assert image_manifests == 1
    assert others <= 2  # the SBOM artifact that refers to the new image, and its index tag


def _docker_config(tmp_path: Path, host: str, user: str, password: str) -> Path:
    d = tmp_path / "docker"
    d.mkdir(parents=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (d / "config.json").write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return d


def test_basic_auth_from_docker_config(project, managed_python, basic_registry, tmp_path):
    src = project("hello-web")
    server = basic_registry.server
    ref = server.ref("private/app", "1")
    good = _docker_config(tmp_path / "good", server.host, basic_registry.username,
                          basic_registry.password)
    res = build_json(str(src), "--push", ref, env={"DOCKER_CONFIG": str(good)})
    assert res["written"] == [ref]

    wrong = "not-the-password-" + basic_registry.password[::-1]
    bad = _docker_config(tmp_path / "bad", server.host, basic_registry.username, wrong)
    proc = uvship("build", str(src), "--push", server.ref("private/app", "2"),
                  env={"DOCKER_CONFIG": str(bad)})
    assert proc.returncode == 1
    assert "authentication failed" in proc.stderr and server.host in proc.stderr
    for secret in (wrong, basic_registry.password,
                   base64.b64encode(f"alice:{wrong}".encode()).decode()):
        assert secret not in proc.stderr and secret not in proc.stdout


def test_cache_repo_shares_tiers_between_machines(project, managed_python, registry, tmp_path):
    src = project("hello-web")
    cache_repo = f"{registry.host}/uvship-cache"
    first = build_json(str(src), "--cache-repo", cache_repo, "-o", f"oci:{tmp_path / 'a'}",
                       env={"UVSHIP_CACHE_DIR": str(tmp_path / "machine-a")})
    assert registry.count("PUT", r"/v2/uvship-cache/manifests/uvship-tier-") >= 2

    # another machine: an empty local cache, the same registry
    proc = uvship("build", str(src), "--cache-repo", cache_repo, "--json",
                  "-o", f"oci:{tmp_path / 'b'}",
                  env={"UVSHIP_CACHE_DIR": str(tmp_path / "machine-b")})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == first["digest"]
    assert "dependencies: reused from" in proc.stderr
    assert "installing third-party dependencies" not in proc.stderr  # uv was not run for it
    assert "installing the project" not in proc.stderr


def test_registry_base_with_a_multi_platform_index(project, managed_python, registry,
                                                   tmp_path):
    amd64 = oci.read_layout(GLIBC_LAYOUT)
    arm64 = amd64.with_platform("linux", "arm64")
    index = oci.ImageIndex.of([amd64, arm64])
    base_ref = registry.ref("bases/glibc", "multi")
    with Registry(registry.host) as reg:
        reg.push_image(index, [base_ref])
    src = project("hello-web")
    out = tmp_path / "img.tar"
    tag = "localhost/uvship-test/on-registry-base:1"
    build_json(str(src), "--base", base_ref, "-o", f"docker-archive:{out}", "-o",
               f"oci:{tmp_path / 'lay'}", "-t", tag)
    img = oci.read_layout(tmp_path / "lay")
    assert [x.digest for x in img.layers[:len(amd64.layers)]] == [x.digest
                                                                 for x in amd64.layers]
    labels = img.config_dict()["config"]["Labels"]
    assert labels["org.opencontainers.image.base.digest"] == amd64.digest
    assert labels["org.opencontainers.image.base.name"] == base_ref
    podman("load", "-q", "-i", str(out))
    try:
        assert "hello-web ok" in podman("run", "--rm", "--pull=never", tag, "--check").stdout
    finally:
        podman("rmi", "-f", tag, check=False)

    # a platform the index lacks is refused, naming what it has
    arm_only = registry.ref("bases/glibc", "arm-only")
    with Registry(registry.host) as reg:
        reg.push_image(oci.ImageIndex.of([arm64]), [arm_only])
    proc = uvship("build", str(src), "--base", arm_only, "-o", f"oci:{tmp_path / 'x'}")
    assert proc.returncode == 1
    assert f"--base {arm_only}" in proc.stderr and "linux/arm64" in proc.stderr
    assert "linux/amd64" in proc.stderr
    assert not os.path.exists(tmp_path / "x")
