"""`uvship build --push`, registry bases and the registry-backed layer cache, on a real registry."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from uvship import oci
from uvship.api import Image
from uvship.image.image import Base
from uvship.layers import Entry, normalize, write_tar
from uvship.publish.registry import Pushed
from uvship.registry import Registry, RegistryError
from uvship.sbom.referrers import fallback_tag

from .conftest import HOST_DIR, podman, run, tiers, uvship
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
    assert tiers(report["layers"]) == ["runtime", "interpreter", "dependencies", "project"]


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


def _digest_in(registry, ref: str) -> str:
    return json.loads(run(["skopeo", "inspect", "--tls-verify=false",
                           f"docker://{ref}"]).stdout)["Digest"]


def test_publish_returns_an_sbom_the_registry_refused_beside_the_pushed_image(registry,
                                                                             tmp_path):
    """The image is in place when its SBOM cannot be attached: Image.publish says so per
    reference instead of raising as if the push had failed (the real registry refuses the
    SBOM's referrers tag in one repository and takes it in another)."""
    layer_file = tmp_path / "layer.tar.gz"
    with layer_file.open("wb") as f:
        info = write_tar(normalize([Entry("etc/app", "file", data=b"app\n")]), f)
    image = Image(oci.Image.scratch().with_layer(oci.Layer.from_archive(info, layer_file)),
                  Base("scratch", None), sbom=b'{"bomFormat": "CycloneDX"}\n')
    registry.refuse_tag("refused", fallback_tag(image.digest))
    refs = [registry.ref("refused", "1"), registry.ref("refused", "2"),
            registry.ref("taken", "1")]
    pushed = image.publish(*refs)

    assert [(p.reference, p.digest) for p in pushed] == [(r, image.digest) for r in refs]
    assert all(isinstance(p, Pushed) for p in pushed)
    for ref in refs:
        assert _digest_in(registry, ref) == image.digest
    refused, again, taken = pushed
    assert refused.sboms == again.sboms and len(refused.sboms) == 1
    error = refused.sbom_error
    assert isinstance(error, RegistryError) and error.status == 500 and error.attempts == 5
    assert error.message.startswith(f"PUT http://{registry.host}/v2/refused/manifests/"
                                    f"{fallback_tag(image.digest)}: ")
    assert refused.sboms[0].image == image.digest and refused.sboms[0].attached is None
    assert taken.sbom_error is None
    assert taken.sboms[0].attached.via == "tag"


def test_push_succeeds_with_a_warning_when_only_the_sbom_is_refused(project, managed_python,
                                                                    registry):
    """`build --push`: an SBOM the registry refuses after the image is in place leaves a
    pushed image: its reference on stdout, exit 0, a warning saying what failed and why,
    and `"sbom": {"attached": false, "error": ...}` for that reference in --json."""
    src = project("hello-web")
    ok = registry.ref("sbom-ok", "1")
    first = build_json(str(src), "--push", ok)
    digest = first["digest"]
    [entry] = first["pushed"]
    assert (entry["reference"], entry["digest"]) == (ok, digest)
    assert entry["sbom"]["attached"] is True and entry["sbom"]["error"] is None
    assert [(a["image"], a["via"]) for a in entry["sbom"]["artifacts"]] == [(digest, "tag")]

    registry.refuse_tag("sbom-refused", fallback_tag(digest))
    ref = registry.ref("sbom-refused", "1")
    proc = uvship("build", str(src), "--push", ref)
    assert (proc.returncode, proc.stdout) == (0, f"{ref}@{digest}\n"), proc.stderr
    refusal = (f"PUT http://{registry.host}/v2/sbom-refused/manifests/{fallback_tag(digest)}: "
               f"manifest {ref.rsplit(':', 1)[0]}:{fallback_tag(digest)}: UNKNOWN: unknown "
               "error (HTTP 500 Internal Server Error) (gave up after 5 attempts in ")
    warning, hint = [line for line in proc.stderr.splitlines()
                     if line.startswith(("warning:", "hint:", "error:"))]
    assert warning.startswith(f"warning: pushed {ref}@{digest}, but its SBOM was not "
                              f"attached: {refusal}"), warning
    assert hint == ("hint: the image is pushed and works without it; run the same command "
                    "again to attach the SBOM (what the registry already has is not sent "
                    "again)")
    assert _digest_in(registry, ref) == digest

    ref2 = registry.ref("sbom-refused", "2")
    res = build_json(str(src), "--push", ref2)
    assert (res["digest"], res["written"]) == (digest, [ref2])
    [entry] = res["pushed"]
    assert (entry["reference"], entry["digest"]) == (ref2, digest)
    assert entry["sbom"]["attached"] is False and entry["sbom"]["artifacts"] == []
    assert entry["sbom"]["error"].startswith(refusal), entry["sbom"]["error"]


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
