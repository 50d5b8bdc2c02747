"""Registry client: references, credentials, auth, push and pull against real registries.

Every push and pull goes to a real ``docker-registry`` process; skopeo and podman read what
was pushed. Transport wrappers appear only to inject faults the registry cannot be told to
produce (a 500, a relative Location header, a corrupt body) or to kill it at a chosen step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from uvship import cache
from uvship.errors import InputError
from uvship.layers import Entry, normalize, write_tar
from uvship.oci import Image, ImageIndex, Layer
from uvship.registry import (
    AuthenticationError,
    Credentials,
    DeadlineExceeded,
    DeadlinePolicy,
    Reference,
    Registry,
    RegistryError,
    RetryPolicy,
    TokenCache,
    find_credentials,
    parse_challenge,
    redact_url,
)

from .conftest import uvship
from .registry_fixtures import (  # noqa: F401  (the *_fixture imports define fixtures)
    BasicRegistry,
    RegistryServer,
    SlowServer,
    TokenRegistry,
    basic_auth_entry,
    basic_registry_fixture,
    own_registry_fixture,
    registry_fixture,
    running_registry,
    token_registry_fixture,
    write_docker_config,
)

BUSYBOX = Path("/bin/busybox")
FAST = RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.2, total=5.0)
HEX = "0123456789abcdef" * 4
UPLOAD_PUT = r"^/v2/{}/blobs/uploads/"


@pytest.fixture(autouse=True)
def _no_user_credentials(monkeypatch, tmp_path) -> None:
    """Only the credentials a test writes are found, never the machine's."""
    # an empty config rather than none: podman and skopeo fail on a DOCKER_CONFIG without one
    write_docker_config(tmp_path / "empty-docker-config", {})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)  # podman fails if it is missing
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


def client(server: RegistryServer, **kw) -> Registry:
    kw.setdefault("retry", FAST)
    kw.setdefault("tokens", TokenCache())
    kw.setdefault("blobs", cache.Blobs())  # pulls keep their blobs in the test's cache
    return Registry(server.host, **kw)


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stderr}"
    return proc.stdout


def make_layer(work: Path, name: str, entries: list[Entry]) -> Layer:
    path = work / f"{name}.tar.gz"
    with path.open("wb") as f:
        info = write_tar(normalize(entries), f)
    return Layer.from_archive(info, path)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> SimpleNamespace:
    """A busybox image (echo hi), two variants differing in one small layer, an arm64 one."""
    if not BUSYBOX.is_file():
        pytest.fail("busybox-static is not installed: run scripts/setup-host")
    work = tmp_path_factory.mktemp("images")
    bb = make_layer(work, "busybox", [Entry("bin/busybox", "file", 0o755, source=BUSYBOX)])
    a = make_layer(work, "a", [Entry("etc/variant", "file", data=b"a\n")])
    b = make_layer(work, "b", [Entry("etc/variant", "file", data=b"b\n")])
    arm = make_layer(work, "arm", [Entry("etc/arch", "file", data=b"arm64\n")])
    hi = Image.scratch().with_layer(bb).with_entrypoint(["/bin/busybox", "echo", "hi"])
    arm64 = Image.scratch("linux/arm64").with_layer(arm).with_entrypoint(["/bin/true"])
    return SimpleNamespace(busybox=bb, hi=hi, a=hi.with_layer(a), b=hi.with_layer(b),
                           arm64=arm64, index=ImageIndex.of([hi, arm64]))


# ---- references ---------------------------------------------------------------------------

D = f"sha256:{HEX}"


@pytest.mark.parametrize(("given", "registry", "repository", "tag", "digest", "api_host"), [
    ("python:3.12-slim", "docker.io", "library/python", "3.12-slim", None,
     "registry-1.docker.io"),
    ("python", "docker.io", "library/python", "latest", None, "registry-1.docker.io"),
    ("org/app", "docker.io", "org/app", "latest", None, "registry-1.docker.io"),
    ("docker.io/python", "docker.io", "library/python", "latest", None,
     "registry-1.docker.io"),
    ("index.docker.io/org/app:1", "docker.io", "org/app", "1", None, "registry-1.docker.io"),
    ("ghcr.io/a/b:t", "ghcr.io", "a/b", "t", None, "ghcr.io"),
    (f"localhost:5000/x/y@{D}", "localhost:5000", "x/y", None, D, "localhost:5000"),
    ("127.0.0.1:5001/app", "127.0.0.1:5001", "app", "latest", None, "127.0.0.1:5001"),
    (f"ghcr.io/a/b:1.0@{D}", "ghcr.io", "a/b", "1.0", D, "ghcr.io"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost"),
    ("[::1]:5000/app:v", "[::1]:5000", "app", "v", None, "[::1]:5000"),
    ("quay.io/a/b/c__d-e.f:x_Y-1.2", "quay.io", "a/b/c__d-e.f", "x_Y-1.2", None, "quay.io"),
    ("localhost:5000", "docker.io", "library/localhost", "5000", None,
     "registry-1.docker.io"),  # no '/': a name and a tag, as docker reads it
])
def test_reference_parse(given, registry, repository, tag, digest, api_host) -> None:
    ref = Reference.parse(given)
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.api_host) == (
        registry, repository, tag, digest, api_host)
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize(("given", "says"), [
    ("", "expected a reference"),
    ("Python:3", "must be lowercase"),
    ("ghcr.io/Org/app", "must be lowercase"),
    ("app:-bad", "invalid tag '-bad'"),
    ("app:" + "x" * 129, "invalid tag"),
    ("app@sha256:abc", "invalid digest 'sha256:abc'"),
    (f"app@sha256:{HEX.upper()}", "invalid digest"),
    (f"app@md5:{HEX}", "invalid digest"),
    ("ghcr.io/", "expected a repository name"),
    ("a//b", "invalid repository"),
    ("a:b:c", "invalid repository 'a:b'"),
    ("bad_host:5000/app", "invalid registry 'bad_host:5000'"),
    (HEX, "reads as an image ID"),
])
def test_reference_errors_name_the_input(given, says) -> None:
    with pytest.raises(InputError) as exc:
        Reference.parse(given)
    assert says in str(exc.value)
    assert repr(given) in str(exc.value)


def test_reference_str_identifier_and_context() -> None:
    ref = Reference.parse("python:3.12")
    assert str(ref) == "docker.io/library/python:3.12"
    assert ref.name == "docker.io/library/python"
    assert ref.identifier == "3.12"
    by_digest = ref.context(digest=D)
    assert str(by_digest) == f"docker.io/library/python@{D}"
    assert by_digest.identifier == D and by_digest.tag is None
    assert str(ref.context(tag="3.13")) == "docker.io/library/python:3.13"
    assert ref.context().tag == "latest"
    with pytest.raises(InputError, match="tag '-x'"):
        ref.context(tag="-x")


# ---- small pieces: redaction, challenges, credentials -------------------------------------

def test_redact_url_hides_userinfo_and_secret_query_values() -> None:
    url = ("https://user:pw@reg.example/v2/a/blobs/uploads/u?_state=SECRET&digest=sha256:ab"
           "&X-Amz-Signature=SIG&token=TOK")
    out = redact_url(url)
    for secret in ("user", "pw", "SECRET", "SIG", "TOK"):
        assert secret not in out
    assert "digest=sha256:ab" in out and out.startswith("https://REDACTED@reg.example/v2/a/")


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",'
        'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "reg",
                      "scope": "repository:a/b:pull,push repository:c:pull",
                      "error": "insufficient_scope"}
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_credentials_never_show_their_secret() -> None:
    c = Credentials("alice", "hunter2-pw", source="/x/config.json")
    t = Credentials("", "", "ident-tok-9", source="helper")
    for text in (repr(c), str(c), repr(t), str(t), repr([c, t]), f"{c!r}{t}"):
        assert "hunter2-pw" not in text and "ident-tok-9" not in text
    assert "alice" in str(c)


def test_credentials_from_docker_config_forms(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "docker"
    write_docker_config(cfg, {
        "https://index.docker.io/v1/": basic_auth_entry("hub", "hubpw"),
        "http://plain.example:5000/v1/": {"username": "u2", "password": "p2"},
        "tok.example": {"identitytoken": "refresh-me"},
        "empty.example": {},
    })
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    hub = find_credentials("docker.io")
    assert (hub.username, hub.password) == ("hub", "hubpw")
    assert str(cfg / "config.json") in hub.source
    assert find_credentials("plain.example:5000").password == "p2"
    assert find_credentials("tok.example").identity_token == "refresh-me"
    assert find_credentials("empty.example") is None
    assert find_credentials("other.example") is None

    (cfg / "config.json").write_text(json.dumps({"auths": {"x.example": {"auth": "%%%"}}}))
    with pytest.raises(InputError) as exc:
        find_credentials("x.example")
    assert str(cfg / "config.json") in str(exc.value) and "base64" in str(exc.value)
    (cfg / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="expected JSON"):
        find_credentials("x.example")


def test_credentials_from_podman_auth_files(tmp_path, monkeypatch) -> None:
    runtime, home = tmp_path / "run", tmp_path / "home"
    (runtime / "containers").mkdir(parents=True)
    (home / ".config" / "containers").mkdir(parents=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("HOME", str(home))
    (home / ".config" / "containers" / "auth.json").write_text(json.dumps({"auths": {
        "home.example": basic_auth_entry("h", "hp"),
        "ns.example": basic_auth_entry("any", "x"),
        "ns.example/team": basic_auth_entry("team", "y"),
    }}))
    assert find_credentials("home.example").username == "h"
    # podman's auth.json may name a namespace: the longest match wins
    assert find_credentials("ns.example", "team/app").username == "team"
    assert find_credentials("ns.example", "other/app").username == "any"
    (runtime / "containers" / "auth.json").write_text(json.dumps(
        {"auths": {"https://home.example": basic_auth_entry("runtime", "r")}}))
    assert find_credentials("home.example").username == "runtime"
    auth_file = tmp_path / "explicit.json"
    auth_file.write_text(json.dumps({"auths": {"home.example": basic_auth_entry("e", "e")}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    assert find_credentials("home.example").username == "e"
    # docker's config.json comes first
    write_docker_config(tmp_path / "d", {"home.example": basic_auth_entry("docker", "d")})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    assert find_credentials("home.example").username == "docker"


def _helper(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_credentials_from_helpers(tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    seen = tmp_path / "asked"
    _helper(bin_dir, "perreg", f'read s; echo "$s" >> {seen}; '
            'echo \'{"ServerURL":"x","Username":"helped","Secret":"hs"}\'\n')
    _helper(bin_dir, "store", f'read s; echo "$s" >> {seen}; case "$s" in '
            '*index.docker.io*) echo \'{"Username":"<token>","Secret":"idtok"}\';; '
            '*) echo "credentials not found in native keychain"; exit 1;; esac\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    write_docker_config(tmp_path / "d", {"fallback.example": basic_auth_entry("f", "fp")},
                        credHelpers={"reg.example": "perreg"}, credsStore="store")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    c = find_credentials("reg.example")
    assert (c.username, c.password, c.source) == ("helped", "hs", "docker-credential-perreg")
    hub = find_credentials("docker.io")
    assert hub.identity_token == "idtok" and not hub.password
    assert find_credentials("fallback.example").username == "f"  # store had none
    assert seen.read_text().split() == ["reg.example", "https://index.docker.io/v1/",
                                        "fallback.example"]
    write_docker_config(tmp_path / "d", {}, credsStore="missing-helper")
    with pytest.raises(InputError) as exc:
        find_credentials("reg.example")
    assert "docker-credential-missing-helper" in str(exc.value)
    assert "not installed" in str(exc.value)


# ---- push ------------------------------------------------------------------------------------

@pytest.mark.podman
def test_push_two_tags_then_skopeo_and_podman_read_it(registry, images) -> None:
    with client(registry) as reg:
        digest = reg.push_image(images.hi, [registry.ref("hello", "1.0"),
                                            registry.ref("hello", "latest")])
        assert digest == images.hi.digest
        assert reg.stats.blobs_uploaded == 2 and reg.stats.manifests_uploaded == 2
    for tag in ("1.0", "latest"):
        out = json.loads(run("skopeo", "inspect", "--tls-verify=false",
                             f"docker://{registry.ref('hello', tag)}"))
        assert out["Digest"] == digest
    name = registry.ref("hello", "1.0")
    try:
        run("podman", "pull", "--quiet", "--tls-verify=false", name)
        assert run("podman", "run", "--rm", name).strip() == "hi"
    finally:
        subprocess.run(["podman", "rmi", "--force", name], capture_output=True)


def test_repush_sends_nothing_and_a_changed_layer_sends_only_it(registry, images) -> None:
    repo = "variants"
    with client(registry) as reg:
        reg.push_image(images.a, [registry.ref(repo, "a")])
        assert reg.stats.blobs_uploaded == 3  # busybox, a, config
    mark = registry.mark()
    with client(registry) as reg:
        reg.push_image(images.a, [registry.ref(repo, "a")])
        s = reg.stats
        assert (s.blobs_skipped, s.blobs_uploaded, s.bytes_uploaded) == (3, 0, 0)
        assert (s.manifests_skipped, s.manifests_uploaded) == (1, 0)
    assert registry.count("PUT", "", since=mark) == 0
    assert registry.count("POST", "", since=mark) == 0

    mark = registry.mark()
    with client(registry) as reg:
        reg.push_image(images.b, [registry.ref(repo, "b")])
        s = reg.stats
        assert (s.blobs_skipped, s.blobs_uploaded, s.manifests_uploaded) == (1, 2, 1)
        changed = images.b.layers[-1].size + len(images.b.config_bytes())
        assert s.bytes_uploaded == changed
    assert registry.count("PUT", UPLOAD_PUT.format(repo), since=mark, status=201) == 2
    assert registry.count("PUT", f"^/v2/{repo}/manifests/b$", since=mark, status=201) == 1
    with client(registry) as reg:
        assert reg.head_manifest(registry.ref(repo, "b")) == images.b.digest


def test_cross_repository_mount(registry, images) -> None:
    with client(registry) as reg:
        reg.push_image(images.a, [registry.ref("mount-src", "v")])
    mark = registry.mark()
    with client(registry) as reg:
        reg.push_image(images.a, [registry.ref("mount-dst", "v")], mount_from=["mount-src"])
        s = reg.stats
        assert (s.blobs_mounted, s.blobs_uploaded, s.bytes_uploaded) == (3, 0, 0)
    assert registry.count("POST", r"^/v2/mount-dst/blobs/uploads/\?.*mount=", since=mark,
                          status=201) == 3
    assert registry.count("PUT", UPLOAD_PUT.format("mount-dst"), since=mark) == 0

    # one push to two repositories: uploaded to the first, mounted into the second
    mark = registry.mark()
    with client(registry) as reg:
        reg.push_image(images.b, [registry.ref("two-a", "1"), registry.ref("two-b", "1"),
                                  registry.ref("two-b", "2")])
        s = reg.stats
        assert (s.blobs_uploaded, s.blobs_mounted, s.manifests_uploaded) == (3, 3, 3)
    assert registry.count("POST", r"^/v2/two-b/blobs/uploads/\?.*from=two-a", since=mark,
                          status=201) == 3
    for ref in ("two-a:1", "two-b:1", "two-b:2"):
        out = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false",
                             f"docker://{registry.host}/{ref}"))
        assert out["config"]["digest"] == images.b.config_descriptor().digest


def test_chunked_upload_round_trips(registry, images, tmp_path) -> None:
    layer = images.busybox
    chunk = 256 * 1024
    assert layer.size > 3 * chunk
    mark = registry.mark()
    with client(registry, chunk_size=chunk) as reg:
        assert reg.push_blob("chunked", layer) == "uploaded"
        assert reg.push_blob("chunked", layer) == "skipped"
        assert reg.head_blob("chunked", layer.digest) == layer.size
        out = reg.get_blob("chunked", layer.digest, tmp_path / "back", size=layer.size)
    assert out.read_bytes() == layer.path.read_bytes()
    patches = registry.count("PATCH", r"^/v2/chunked/blobs/uploads/", since=mark, status=202)
    assert patches == -(-layer.size // chunk)
    assert registry.count("PUT", UPLOAD_PUT.format("chunked"), since=mark, status=201) == 1


def test_push_blob_from_bytes_and_path(registry, tmp_path) -> None:
    data = b"plain bytes blob\n"
    (tmp_path / "f").write_bytes(b"file blob\n")
    with client(registry) as reg:
        assert reg.push_blob("raw", data) == "uploaded"
        assert reg.push_blob("raw", tmp_path / "f") == "uploaded"
        assert reg.push_blob("raw", tmp_path / "f") == "skipped"
        assert reg.head_blob("raw", "sha256:" + "0" * 64) is None


def test_relative_location_headers_are_followed(registry, images) -> None:
    """distribution sends absolute Locations; other registries send relative ones."""
    real = httpx.HTTPTransport()

    def relative(request: httpx.Request) -> httpx.Response:
        response = real.handle_request(request)
        loc = response.headers.get("Location")
        if loc and loc.startswith("http"):
            url = httpx.URL(loc)
            response.headers["Location"] = url.raw_path.decode()
        return response

    with client(registry, transport=httpx.MockTransport(relative), chunk_size=200_000) as reg:
        reg.push_image(images.a, [registry.ref("relative", "v")])
        assert reg.stats.blobs_uploaded == 3


def test_push_refs_must_be_on_the_client_registry(registry, images) -> None:
    with client(registry) as reg, pytest.raises(InputError) as exc:
        reg.push_image(images.hi, ["ghcr.io/a/b:1"])
    assert "ghcr.io/a/b:1" in str(exc.value) and registry.host in str(exc.value)
    with client(registry) as reg, pytest.raises(InputError, match="does not match"):
        reg.push_image(images.hi, [f"{registry.host}/x@sha256:{'1' * 64}"])


# ---- auth --------------------------------------------------------------------------------------

def test_basic_auth_from_docker_config(basic_registry: BasicRegistry, images, tmp_path,
                                       monkeypatch) -> None:
    server = basic_registry.server
    write_docker_config(tmp_path / "d", {
        f"https://{server.host}/v1/": basic_auth_entry(basic_registry.username,
                                                       basic_registry.password)})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    with client(server) as reg:
        assert reg.push_image(images.a, [server.ref("private", "1")]) == images.a.digest
        pulled = reg.resolve_image(server.ref("private", "1"))
        assert pulled.digest == images.a.digest
    # only the first request went out without credentials
    anonymous = [r for r in server.requests() if r.status == 401 and r.agent == "uvship"]
    assert len(anonymous) == 1


def test_basic_auth_wrong_password_is_clear_and_secret(basic_registry: BasicRegistry, images,
                                                       tmp_path, monkeypatch, caplog) -> None:
    server = basic_registry.server
    wrong = "WRONG-pw-" + basic_registry.password
    write_docker_config(tmp_path / "d", {server.host: basic_auth_entry("alice", wrong)})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    caplog.set_level(logging.DEBUG)
    with client(server) as reg, pytest.raises(AuthenticationError) as exc:
        reg.push_image(images.a, [server.ref("private", "2")])
    err = exc.value
    assert f"authentication failed for {server.host} (user alice)" in str(err)
    assert err.status == 401 and not err.retryable and err.attempts == 1
    assert "podman login" in err.hint
    texts = [str(err), repr(err), err.hint, repr(vars(err)),
             *(r.getMessage() for r in caplog.records), *(repr(r.args) for r in caplog.records)]
    for text in texts:
        assert wrong not in text and basic_registry.password not in text


def test_basic_auth_without_credentials(basic_registry: BasicRegistry, images) -> None:
    server = basic_registry.server
    with client(server) as reg, pytest.raises(AuthenticationError) as exc:
        reg.resolve_image(server.ref("private", "1"))
    assert f"authentication required by {server.host}: no credentials found" in str(exc.value)


def test_bearer_token_flow_and_reuse(token_registry: TokenRegistry, images, tmp_path,
                                     monkeypatch) -> None:
    server, svc = token_registry.server, token_registry.tokens
    write_docker_config(tmp_path / "d", {server.host: basic_auth_entry(
        token_registry.username, token_registry.password)})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    tokens = TokenCache()
    before = svc.count()
    with client(server, tokens=tokens) as reg:
        reg.push_image(images.a, [server.ref("tok/app", "1"), server.ref("tok/app", "2")])
    # one token, for the push scope, served the whole push (parallel uploads included)
    assert svc.requests[before:] == [("bob", ("repository:tok/app:pull,push",))]
    with client(server, tokens=tokens) as reg:
        reg.push_image(images.a, [server.ref("tok/app", "1")])
        assert reg.resolve_image(server.ref("tok/app", "2")).digest == images.a.digest
    assert svc.count() == before + 1  # pull,push covers pull: reused, not asked again

    with client(server, tokens=tokens) as reg:  # another repository: another scope
        reg.push_image(images.a, [server.ref("tok/other", "1")], mount_from=["tok/app"])
        assert reg.stats.blobs_mounted == 3
    assert svc.requests[-1] == ("bob", ("repository:tok/other:pull,push",
                                        "repository:tok/app:pull"))


def test_bearer_token_expiry(token_registry: TokenRegistry, images, tmp_path,
                             monkeypatch) -> None:
    server, svc = token_registry.server, token_registry.tokens
    write_docker_config(tmp_path / "d", {server.host: basic_auth_entry(
        token_registry.username, token_registry.password)})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    now = [1000.0]
    tokens = TokenCache(clock=lambda: now[0])
    with client(server, tokens=tokens) as reg:
        reg.push_image(images.hi, [server.ref("tok/exp", "1")])
        n = svc.count()
        now[0] += svc.expires_in - 20  # still valid: reused
        reg.resolve_image(server.ref("tok/exp", "1"))
        assert svc.count() == n
        now[0] += 20  # past expiry (less the safety margin): a new one
        reg.resolve_image(server.ref("tok/exp", "1"))
        assert svc.count() == n + 1


def test_bearer_token_failures(token_registry: TokenRegistry, images, tmp_path,
                               monkeypatch) -> None:
    server = token_registry.server
    with client(server) as reg, pytest.raises(AuthenticationError) as exc:
        reg.push_image(images.hi, [server.ref("tok/anon", "1")])
    assert f"authentication required by {server.host}" in str(exc.value)

    wrong = "nope-" + token_registry.password
    write_docker_config(tmp_path / "d", {server.host: basic_auth_entry("bob", wrong)})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    with client(server) as reg, pytest.raises(AuthenticationError) as exc:
        reg.push_image(images.hi, [server.ref("tok/anon", "1")])
    assert f"authentication failed for {server.host} (user bob)" in str(exc.value)
    assert "GET http://127.0.0.1:" in str(exc.value)  # names the token request
    assert wrong not in str(exc.value) and wrong not in repr(exc.value)


def test_bearer_identity_token_and_access_token_field(token_registry: TokenRegistry, images,
                                                      monkeypatch) -> None:
    server, svc = token_registry.server, token_registry.tokens
    svc.refresh_tokens["refresh-abc"] = "bob"
    monkeypatch.setattr(svc, "token_field", "access_token")
    creds = Credentials("", "", "refresh-abc", source="test")
    with client(server, credentials=creds) as reg:
        reg.push_image(images.hi, [server.ref("tok/ident", "1")])
    assert svc.requests[-1] == ("bob", ("repository:tok/ident:pull,push",))


# ---- pull ----------------------------------------------------------------------------------

def test_pull_by_tag_and_by_digest(registry, images) -> None:
    ref = registry.ref("pull", "v1")
    with client(registry) as reg:
        reg.push_image(images.a, [ref])
        by_tag = reg.resolve_image(ref)
        by_digest = reg.resolve_image(Reference.parse(ref).context(digest=images.a.digest))
        data, media_type, digest = reg.get_manifest(ref)
    assert by_tag.digest == by_digest.digest == digest == images.a.digest
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert data == images.a.manifest_bytes()
    assert by_tag.config == images.a.config and by_tag.diff_ids == images.a.diff_ids
    for layer in by_tag.layers:
        assert layer.path == cache.blob_path(layer.digest)
    with client(registry) as reg:
        mark = registry.mark()
        reg.pull_layers(ref, by_tag)
        got = registry.count("GET", r"^/v2/pull/blobs/", since=mark)
        reg.pull_layers(ref, by_tag)  # cached: nothing fetched again
        assert registry.count("GET", r"^/v2/pull/blobs/", since=mark) == got
    for mine, theirs in zip(images.a.layers, by_tag.layers, strict=True):
        assert theirs.path.read_bytes() == mine.path.read_bytes()


def test_pulled_image_pushes_by_mount_without_fetching_layers(registry, images) -> None:
    """A base image resolved from the registry (layers not downloaded, docker media types
    kept) is pushed into another repository by mounting, never needing its layer files."""
    with client(registry) as reg:
        reg.push_image(images.b, [registry.ref("base-oci", "1")])
    run("skopeo", "copy", "--quiet", "--format", "v2s2", "--src-tls-verify=false",
        "--dest-tls-verify=false", f"docker://{registry.ref('base-oci', '1')}",
        f"docker://{registry.ref('base-docker', '1')}")
    mark = registry.mark()
    with client(registry) as reg:
        base = reg.resolve_image(registry.ref("base-docker", "1"))
        assert base.media_type == "application/vnd.docker.distribution.manifest.v2+json"
        assert not any(layer.path.exists() for layer in base.layers
                       if layer.digest != images.busybox.digest)
        digest = reg.push_image(base, [registry.ref("from-base", "1")],
                                mount_from=["base-docker"])
        assert digest == base.digest
        assert reg.stats.blobs_mounted == 3 and reg.stats.blobs_uploaded == 0
        with pytest.raises(InputError, match="is missing"):  # elsewhere it must be uploaded
            reg.push_image(base, [registry.ref("no-mount", "1")])
    assert registry.count("GET", r"/blobs/", since=mark) == 1  # the config only
    out = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false",
                         f"docker://{registry.ref('from-base', '1')}"))
    assert out["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_parallel_requests_share_one_token(token_registry: TokenRegistry, images) -> None:
    server, svc = token_registry.server, token_registry.tokens
    creds = Credentials(token_registry.username, token_registry.password)
    with client(server, credentials=creds) as reg:
        reg.push_image(images.hi, [server.ref("tok/par", "1")])
    before = svc.count()
    with client(server, credentials=creds, tokens=TokenCache()) as reg:
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def head() -> None:
            try:
                barrier.wait()
                assert reg.head_blob("tok/par", images.busybox.digest) == images.busybox.size
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=head) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert svc.requests[before:] == [("bob", ("repository:tok/par:pull",))]


def test_pull_errors(registry, images) -> None:
    with client(registry) as reg:
        with pytest.raises(RegistryError) as exc:
            reg.resolve_image(registry.ref("nothing-here", "1"))
        assert exc.value.status == 404 and not exc.value.retryable
        assert f"GET http://{registry.host}/v2/nothing-here/manifests/1" in str(exc.value)
        assert "MANIFEST_UNKNOWN" in exc.value.codes or "NAME_UNKNOWN" in exc.value.codes
        reg.push_image(images.hi, [registry.ref("plat", "1")])
        with pytest.raises(InputError, match="no image for platform linux/arm64; found "
                                             "platforms: linux/amd64"):
            reg.resolve_image(registry.ref("plat", "1"), "linux/arm64")


def test_multi_platform_index(registry, images) -> None:
    ref = registry.ref("multi", "1")
    with client(registry) as reg:
        digest = reg.push_image(images.index, [ref])
        assert digest == images.index.digest
        _, media_type, _ = reg.get_manifest(ref)
        assert media_type == "application/vnd.oci.image.index.v1+json"
        amd = reg.resolve_image(ref, "linux/amd64")
        arm = reg.resolve_image(ref, "linux/arm64/v8")
        assert amd.digest == images.hi.digest and arm.digest == images.arm64.digest
        assert arm.platform.architecture == "arm64"
        assert reg.resolve_image(ref).digest == images.hi.digest  # linux/amd64 by default
        with pytest.raises(InputError) as exc:
            reg.resolve_image(ref, "linux/s390x")
    assert "no image for platform linux/s390x; found platforms: linux/amd64, linux/arm64" \
        in str(exc.value)
    out = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert len(out["manifests"]) == 2


# ---- faults ------------------------------------------------------------------------------

def _kill_after_first_blob(server: RegistryServer, restart_after: float | None):
    """A transport that lets the real registry answer, and kills it once the first blob
    upload completed; it comes back ``restart_after`` seconds later (or never)."""
    real = httpx.HTTPTransport()
    state = {"killed": False}

    def handler(request: httpx.Request) -> httpx.Response:
        response = real.handle_request(request)
        if (not state["killed"] and request.method == "PUT" and "/blobs/uploads/" in
                request.url.path and response.status_code == 201):
            state["killed"] = True
            server.stop(kill=True)
            if restart_after is not None:
                threading.Timer(restart_after, server.start).start()
        return response

    return httpx.MockTransport(handler), state


def test_registry_killed_mid_push_comes_back(own_registry, images) -> None:
    transport, state = _kill_after_first_blob(own_registry, restart_after=1.0)
    retry = RetryPolicy(attempts=8, initial_delay=0.2, max_delay=1.0, total=20.0)
    started = time.monotonic()
    with client(own_registry, transport=transport, retry=retry, jobs=1) as reg:
        digest = reg.push_image(images.a, [own_registry.ref("crash", "1")])
        assert reg.stats.blobs_uploaded == 3
    assert state["killed"] and time.monotonic() - started >= 1.0
    out = json.loads(run("skopeo", "inspect", "--tls-verify=false",
                         f"docker://{own_registry.ref('crash', '1')}"))
    assert out["Digest"] == digest


def test_registry_left_down_fails_clearly_and_leaves_no_tag(own_registry, images) -> None:
    transport, state = _kill_after_first_blob(own_registry, restart_after=None)
    retry = RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.1, total=5.0)
    with client(own_registry, transport=transport, retry=retry, jobs=1) as reg, \
            pytest.raises(RegistryError) as exc:
        reg.push_image(images.a, [own_registry.ref("down", "1")])
    err = exc.value
    assert state["killed"]
    assert err.retryable and err.attempts == 3 and err.status is None
    assert "gave up after 3 attempts" in str(err) and "cannot connect" in str(err)
    assert str(err).startswith(f"HEAD http://{own_registry.host}/v2/down/blobs/sha256:")
    own_registry.start()
    with client(own_registry) as reg, pytest.raises(RegistryError) as exc:
        reg.get_manifest(own_registry.ref("down", "1"))
    assert exc.value.status == 404


def _inject(status: int, *, when, times: int):
    """A transport returning ``status`` (with distribution's error JSON) for the first
    ``times`` requests matching ``when``, the real registry's answer otherwise."""
    real = httpx.HTTPTransport()
    hits = []

    def handler(request: httpx.Request) -> httpx.Response:
        if when(request) and len(hits) < times:
            hits.append(request.method)
            return httpx.Response(status, json={"errors": [
                {"code": "UNKNOWN", "message": "injected", "detail": "test"}]},
                headers={"Retry-After": "0"})
        return real.handle_request(request)

    return httpx.MockTransport(handler), hits


def _manifest_put(request: httpx.Request) -> bool:
    return request.method == "PUT" and "/manifests/" in request.url.path


def test_server_errors_are_retried(registry, images) -> None:
    transport, hits = _inject(500, when=_manifest_put, times=2)
    with client(registry, transport=transport) as reg:
        assert reg.push_image(images.hi, [registry.ref("flaky", "1")]) == images.hi.digest
    assert hits == ["PUT", "PUT"]

    transport, hits = _inject(503, when=_manifest_put, times=100)
    with client(registry, transport=transport) as reg, pytest.raises(RegistryError) as exc:
        reg.push_image(images.hi, [registry.ref("flaky", "2")])
    assert len(hits) == FAST.attempts and exc.value.retryable and exc.value.status == 503
    assert f"PUT http://{registry.host}/v2/flaky/manifests/2: manifest" in str(exc.value)
    assert "UNKNOWN: injected (test) (HTTP 503" in str(exc.value)
    assert exc.value.hint.startswith("the request failed all 3 attempts the retry policy "
                                     "allows; check that the registry is up and reachable")

    transport, hits = _inject(400, when=_manifest_put, times=100)
    with client(registry, transport=transport) as reg, pytest.raises(RegistryError) as exc:
        reg.push_image(images.hi, [registry.ref("flaky", "3")])
    assert len(hits) == 1 and not exc.value.retryable and exc.value.attempts == 1


def test_a_first_attempt_that_outlasts_the_retry_budget_says_it_was_the_only_one() -> None:
    """A registry that never answers: the read times out after longer than retries may take,
    so one attempt is made, and the hint says so (it used to say "failed repeatedly")."""
    retry = RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.1, total=0.2)
    with SlowServer("silent") as server, client(server, retry=retry, timeout=0.3) as reg, \
            pytest.raises(RegistryError) as exc:
        reg.get_manifest(f"{server.host}/x:1")
    err = exc.value
    assert server.requests == 1 and err.attempts == 1 and err.retryable
    assert err.message.startswith(f"GET http://{server.host}/v2/x/manifests/1: read timed out")
    assert re.search(r"\(gave up after 1 attempt in 0\.\d s\)$", err.message), err.message
    assert re.fullmatch(r"the request failed once, after 0\.\d s, and was not tried again: "
                        r"retries stop 0\.2 s after the first attempt; check that the registry "
                        r"is up and reachable, then run the command again \(what already "
                        r"reached its destination is not sent again\)", err.hint), err.hint


# A deadline of 0.3 s for a request of a few kB: a server moving 200 B/s misses it.
QUICK = {"UVSHIP_REGISTRY_TIMEOUT": "0.3", "UVSHIP_REGISTRY_MIN_RATE": "100000"}


def test_a_trickling_registry_fails_inspect_at_the_deadline_the_environment_sets() -> None:
    """httpx's read timeout restarts with every byte: a registry sending 200 B/s used to
    hold `uvship inspect` for as long as its manifest took. Each request now has one
    deadline, tried again as the retry policy says, then one error naming the URL."""
    with SlowServer("body", rate=200, size=4000) as server:
        proc = uvship("inspect", f"{server.host}/x:1", "--insecure-registry", server.host,
                      env=QUICK)
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert server.requests == 5  # the default retry policy's attempts
    error, hint = proc.stderr.splitlines()
    assert re.fullmatch(rf"error: GET http://{server.host}/v2/x/manifests/1: not finished by "
                        r"its deadline, 0\.\d s after it started \(\d+ bytes moved, 4035 "
                        r"expected\) \(gave up after 5 attempts in \d+\.\d s\)", error), error
    assert hint == ("hint: a request may take 0.3 s (UVSHIP_REGISTRY_TIMEOUT) plus one second "
                    "per 100000 bytes (UVSHIP_REGISTRY_MIN_RATE); the registry, or the network "
                    "to it, was slower: raise the first or lower the second to wait longer")

    proc = uvship("inspect", f"{server.host}/x:1", env={"UVSHIP_REGISTRY_MIN_RATE": "fast"})
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == ("error: UVSHIP_REGISTRY_MIN_RATE=fast: expected a number of bytes "
                           "per second greater than 0, found 'fast'\nhint: unset "
                           "UVSHIP_REGISTRY_MIN_RATE for the default (50000)\n")


@pytest.mark.parametrize("mode", ["silent", "headers", "body"])
def test_the_deadline_holds_while_waiting_for_headers_and_body(mode) -> None:
    """Every read of a request waits only until its deadline: a server that never answers,
    one that trickles its headers (which no body read sees) and one that trickles its body."""
    policy = DeadlinePolicy(fixed=0.3, min_rate=100_000)
    with SlowServer(mode, rate=200) as server, client(server, deadline=policy) as reg, \
            pytest.raises(DeadlineExceeded) as exc:
        reg.get_manifest(f"{server.host}/x:1")
    err = exc.value
    assert server.requests == FAST.attempts and err.attempts == FAST.attempts and err.retryable
    assert err.message.startswith(f"GET http://{server.host}/v2/x/manifests/1: not finished "
                                  "by its deadline, 0.3 s after it started (")
    assert "UVSHIP_REGISTRY_TIMEOUT" in err.hint


class Notes:
    """A Progress that keeps what it was told."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def step(self, name: str):
        return contextlib.nullcontext()

    def note(self, message: str) -> None:
        self.notes.append(message)


def test_a_long_transfer_says_how_it_is_doing() -> None:
    """A request running longer than progress_every tells the Progress it was given how
    many bytes moved and how long is left before its deadline (the library prints nothing)."""
    notes = Notes()
    with SlowServer("body", rate=200, size=4000) as server, \
            client(server, deadline=DeadlinePolicy(fixed=1.0, min_rate=100_000),
                   retry=RetryPolicy(attempts=1), progress=notes, progress_every=0.2) as reg, \
            pytest.raises(DeadlineExceeded):
        reg.get_manifest(f"{server.host}/x:1")
    assert len(notes.notes) >= 2, notes.notes
    for note in notes.notes:
        assert re.fullmatch(rf"GET http://{server.host}/v2/x/manifests/1: \d+ B of 4\.0 kB "
                            r"moved in \d\.\d s, \d\.\d s before its deadline", note), note


def test_deadline_policy_from_the_environment() -> None:
    assert DeadlinePolicy.from_env({}) == DeadlinePolicy(60.0, 50_000.0)
    assert DeadlinePolicy.from_env({"UVSHIP_REGISTRY_TIMEOUT": "2.5",
                                    "UVSHIP_REGISTRY_MIN_RATE": "1000"}) == \
        DeadlinePolicy(2.5, 1000.0)
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(InputError) as exc:
            DeadlinePolicy.from_env({"UVSHIP_REGISTRY_TIMEOUT": bad})
        assert exc.value.message == (f"UVSHIP_REGISTRY_TIMEOUT={bad}: expected a number of "
                                     f"seconds greater than 0, found {bad!r}")
    # a deadline grows with what the request moves: 1 s per min_rate bytes
    d = DeadlinePolicy(fixed=1.0, min_rate=100).start("PUT", "http://u:p@h/x", sending=300)
    assert d.allowance == 4.0 and d.url == "http://REDACTED@h/x"
    d.expect(500)
    assert d.allowance == 9.0
    d.moved = 1000
    assert d.allowance == 11.0


def test_corrupt_blob_download_is_rejected(registry, images, tmp_path) -> None:
    real = httpx.HTTPTransport()

    def corrupt(request: httpx.Request) -> httpx.Response:
        response = real.handle_request(request)
        if request.method == "GET" and "/blobs/" in request.url.path:
            response.read()
            return httpx.Response(200, content=b"not the blob")
        return response

    with client(registry) as reg:
        reg.push_blob("corrupt", images.busybox)
    dest = tmp_path / "blob"
    with client(registry, transport=httpx.MockTransport(corrupt)) as reg, \
            pytest.raises(RegistryError) as exc:
        reg.get_blob("corrupt", images.busybox.digest, dest)
    assert f"expected blob {images.busybox.digest}" in str(exc.value)
    assert not dest.exists() and not list(tmp_path.glob(".tmp-*"))


def test_insecure_host_falls_back_to_plain_http(tmp_path, images) -> None:
    """A host that is not loopback by name gets HTTPS; listed as insecure, plain HTTP."""
    with running_registry(tmp_path / "r", bind="127.0.0.2") as server:
        with client(server) as reg, pytest.raises(RegistryError) as exc:
            reg.head_blob("x", images.busybox.digest)
        assert exc.value.message.startswith(f"HEAD https://{server.host}/v2/x/blobs/")
        assert not exc.value.retryable  # a TLS failure does not pass with time
        with client(server, insecure=[server.host]) as reg:
            reg.push_image(images.hi, [server.ref("insecure", "1")])
            assert reg.url("/v2/") == f"http://{server.host}/v2/"

