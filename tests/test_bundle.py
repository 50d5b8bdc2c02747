"""Bundles are judged by running them: in containers with no Python, at their planned paths."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import GLIBC, MINBASE, TEST_PYTHON, needs_test_python, podman, run, uvship

pytestmark = [pytest.mark.podman, needs_test_python]


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def bundle_ok(*args, **kw) -> dict:
    """Run `uvship bundle ... --json`; it must succeed; return its JSON result."""
    proc = uvship("bundle", *args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_in_minbase(tarball: Path, command: str) -> str:
    """Unpack the bundle at / in a Debian minbase container (no Python), then run ``command``."""
    script = (
        "if command -v python3 || command -v python || [ -e /usr/bin/python3 ]; then "
        "echo 'minbase unexpectedly has a python' >&2; exit 99; fi; "
        f"tar -xzf /bundle.tar.gz -C / && {command}"
    )
    out = podman("run", "--rm", "--pull=never", "--network=none",
                 "-v", f"{tarball}:/bundle.tar.gz:ro", MINBASE, "sh", "-c", script)
    return out.stdout


def run_in_glibc(root: Path, *argv: str, mounts=("app", "opt/python")) -> str:
    """Run argv (no shell: the image has none) as uid 65532 with the bundle's trees mounted."""
    vols = []
    for m in mounts:
        vols += ["-v", f"{root / m}:/{m}:ro"]
    out = podman("run", "--rm", "--pull=never", "--network=none", "--user", "65532:65532",
                 *vols, GLIBC, *argv)
    return out.stdout


def test_example_bundle_runs_without_python(project, managed_python, base_images, tmp_path,
                                            extracted):
    src = project("hello-web")
    out = tmp_path / "hello.tar.gz"
    res = bundle_ok(str(src), "-o", str(out))
    m = res["manifest"]
    assert res["sha256"] == sha256(out)
    assert m["interpreter"]["source"] == "managed"
    assert m["interpreter"]["version"] == managed_python
    assert m["interpreter"]["libc"] == "glibc"
    assert m["interpreter"]["min_glibc"] >= "2.17"
    assert m["python"] == "/app/.venv/bin/python"
    names = {p["name"]: p for p in m["packages"]}
    assert names["hello-web"]["tier"] == "project"
    assert names["pydantic-core"]["tier"] == "dependencies"
    assert "pytest" not in names  # the dev group stays out

    # the console script, through uv's sh trampoline, in a container with a shell
    stdout = run_in_minbase(out, "/app/.venv/bin/hello-web --check")
    assert "hello-web ok python=3.12" in stdout
    assert "prefix=/app/.venv" in stdout
    assert "module=/app/.venv/lib/python3.12/site-packages/hello_web/__init__.py" in stdout

    # no shell at all: the script run as a Python program by the venv's python
    root = extracted(out)
    stdout = run_in_glibc(root, "/app/.venv/bin/python", "/app/.venv/bin/hello-web", "--check")
    assert "hello-web ok" in stdout and "prefix=/app/.venv" in stdout


def test_bundle_layout_is_for_final_paths(project, managed_python, tmp_path, extracted):
    src = project("hello-web")
    out = tmp_path / "b.tar.gz"
    bundle_ok(str(src), "-o", str(out), "--venv-path", "/srv/venv", "--python-path", "/usr/py")
    root = extracted(out)
    # the headers uv compiles a locked source against stay in the cache, never ship
    assert (root / "usr/py/lib/python3.12/os.py").is_file()
    assert not (root / "usr/py/include").exists()
    venv = root / "srv/venv"
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "home = /usr/py/bin" in cfg and "relocatable = true" in cfg
    assert os.readlink(venv / "bin/python") == "/usr/py/bin/python3.12"
    for junk in (".gitignore", ".lock", "CACHEDIR.TAG"):
        assert not (venv / junk).exists()
    site = venv / "lib/python3.12/site-packages"
    assert not list(site.glob("*.dist-info/uv_cache.json"))
    assert not list(site.glob("*.dist-info/direct_url.json"))
    # bytecode names the final path, never the staging directory
    pyc = next((site / "hello_web/__pycache__").glob("__init__.cpython-312.pyc"))
    data = pyc.read_bytes()
    assert b"/srv/venv/lib/python3.12/site-packages/hello_web/__init__.py" in data
    assert str(tmp_path).encode() not in data
    flags = int.from_bytes(data[4:8], "little")
    assert flags == 0b11  # hash-based, checked
    # no file anywhere in the bundle names the build machine's paths
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert str(src).encode() not in p.read_bytes(), p


def test_workspace_package_gets_only_what_it_needs(project, managed_python, base_images,
                                                   tmp_path):
    ws = project("ws")
    out = tmp_path / "app.tar.gz"
    m = bundle_ok(str(ws), "--package", "ws-app", "-o", str(out))["manifest"]
    tiers = {p["name"]: p["tier"] for p in m["packages"]}
    assert tiers == {
        "ws-app": "project", "ws-lib": "local", "ws-core": "local",
        "attrs": "dependencies", "idna": "dependencies", "markupsafe": "dependencies",
    }
    with tarfile.open(out) as tar:
        names = tar.getnames()
    top = {n.split("site-packages/")[1].split("/")[0] for n in names if "site-packages/" in n}
    assert not {"other", "six.py", "ws_other-0.1.0.dist-info"} & top
    assert {"app", "lib", "core", "attrs", "idna", "markupsafe"} <= top
    assert any(n.endswith("site-packages/core/__init__.py") for n in names)
    stdout = run_in_minbase(out, "/app/.venv/bin/ws-app")
    assert stdout.strip() == "app says &lt;lib+core:xn--bcher-kva.example&gt;"

    # the same, opened at the member's directory (a bare `uv sync` there)
    m2 = bundle_ok(str(ws / "packages/app"), "-o", str(tmp_path / "app2.tar.gz"))["manifest"]
    assert {p["name"] for p in m2["packages"]} == set(tiers)


def test_two_checkouts_at_different_times_give_the_same_bytes(project, managed_python,
                                                             tmp_path, monkeypatch):
    a = project("hello-web", tmp_path / "one" / "checkout")
    b = project("hello-web", tmp_path / "elsewhere" / "deeper" / "checkout2")
    # a later checkout: every file has another mtime
    later = time.time() + 3600
    for p in b.rglob("*"):
        os.utime(p, (later, later))
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache-a"))
    bundle_ok(str(a), "-o", str(tmp_path / "a.tar.gz"))
    time.sleep(1.1)
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache-b"))
    bundle_ok(str(b), "-o", str(tmp_path / "b.tar.gz"))
    assert sha256(tmp_path / "a.tar.gz") == sha256(tmp_path / "b.tar.gz")


def test_local_python_path(project, base_images, tmp_path, extracted):
    src = project("hello-web")
    out = tmp_path / "local.tar.gz"
    m = bundle_ok(str(src), "--python", str(TEST_PYTHON), "-o", str(out))["manifest"]
    assert m["interpreter"]["source"] == "local"
    assert m["interpreter"]["libc"] == "glibc"
    stdout = run_in_minbase(out, "/app/.venv/bin/hello-web --check")
    assert "hello-web ok python=3.12" in stdout
    root = extracted(out)
    code = "import ssl, sqlite3, ctypes, lzma, bz2, zlib; print(ssl.OPENSSL_VERSION)"
    stdout = run_in_glibc(root, "/app/.venv/bin/python", "-c", code)
    assert "OpenSSL" in stdout


def test_system_mode(project, managed_python, base_images, tmp_path, extracted):
    src = project("hello-web")
    out = tmp_path / "system.tar.gz"
    m = bundle_ok(str(src), "--mode", "system", "-o", str(out))["manifest"]
    assert m["mode"] == "system" and m["venv_path"] is None
    assert m["python"] == "/opt/python/bin/python3.12"
    assert "hello-web" in m["scripts"]
    stdout = run_in_minbase(out, "/opt/python/bin/hello-web --check")
    assert "hello-web ok" in stdout and "prefix=/opt/python" in stdout
    # no shell: the script's shebang names the final interpreter, the kernel runs it
    root = extracted(out)
    stdout = run_in_glibc(root, "/opt/python/bin/hello-web", "--check", mounts=("opt/python",))
    assert "module=/opt/python/lib/python3.12/site-packages/hello_web/__init__.py" in stdout


def test_directory_output_runs(project, managed_python, base_images, tmp_path):
    src = project("hello-web")
    out = tmp_path / "bundle-dir"
    res = bundle_ok(str(src), "-o", str(out))
    assert res["kind"] == "dir" and (out / "uvship-bundle.json").is_file()
    stdout = run_in_glibc(out, "/app/.venv/bin/python", "/app/.venv/bin/hello-web", "--check")
    assert "hello-web ok" in stdout
    # a second bundle replaces the first one atomically
    bundle_ok(str(src), "-o", str(out), "--no-compile")
    assert not list(out.rglob("*.pyc")) or all("/opt/python/" in str(p) or True
                                                for p in out.rglob("*.pyc"))
    assert not list((out / "app/.venv").rglob("__pycache__/*.pyc"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bundle-dir", "hello-web"])


def test_secrets_in_a_package_directory_never_ship(tmp_path, uv_bin, managed_python):
    """A build backend packs whatever the package's directory holds: uvship leaves out VCS
    data and secrets from local packages' files, says which, and `!pattern` keeps one."""
    from .conftest import one_dependency_project

    proj = one_dependency_project(tmp_path, uv_bin, "leaky", "idna==3.10", "idna")
    pkg = proj / "src" / "leaky"
    for rel in (".env", ".netrc", "id_rsa", "credentials.json", ".git/config", "data.json"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("secret\n" if rel != "data.json" else "{}\n")
    out = tmp_path / "b"
    proc = uvship("bundle", str(proj), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    site = next(out.glob("app/.venv/lib/python3.*/site-packages"))
    shipped = sorted(p.name for p in (site / "leaky").iterdir())
    assert shipped == ["__init__.py", "__pycache__", "data.json"], shipped
    record = next(site.glob("leaky-*.dist-info")).joinpath("RECORD").read_text()
    assert ".env" not in record and "id_rsa" not in record
    assert ("left out of the project tier (secrets are never shipped; an exclude pattern "
            "`!PATH` keeps one): leaky/.env, leaky/.netrc, leaky/credentials.json, "
            "leaky/id_rsa") in proc.stderr, proc.stderr

    # re-included on purpose
    kept = tmp_path / "b2"
    proc = uvship("bundle", str(proj), "-o", str(kept), "--exclude", "!leaky/credentials.json")
    assert proc.returncode == 0, proc.stderr
    site = next(kept.glob("app/.venv/lib/python3.*/site-packages"))
    assert (site / "leaky" / "credentials.json").is_file()
    assert not (site / "leaky" / ".env").exists()


def test_symlinks_in_sources_are_followed_for_the_cache_key(tmp_path, uv_bin, managed_python):
    """What a link points at is part of the project's identity: editing the target of a
    file link, or a file under a directory link, is a new build, cache or no cache; a link
    loop is refused the same way whatever the cache holds."""
    from .conftest import one_dependency_project

    proj = one_dependency_project(tmp_path, uv_bin, "linked", "idna==3.10", "idna")
    pp = proj / "pyproject.toml"  # hatchling follows directory links (uv_build refuses them)
    pp.write_text(pp.read_text().replace('requires = ["uv_build>=0.13,<0.14"]\n'
                                         'build-backend = "uv_build"',
                                         'requires = ["hatchling>=1.24"]\n'
                                         'build-backend = "hatchling.build"'))
    run([uv_bin, "lock", "-q", "--python", sys.executable], cwd=proj)
    shared = tmp_path / "shared"
    (shared / "assets").mkdir(parents=True)
    (shared / "data.txt").write_text("one\n")
    (shared / "assets" / "a.txt").write_text("A1\n")
    pkg = proj / "src" / "linked"
    (pkg / "data.txt").symlink_to(shared / "data.txt")
    (pkg / "assets").symlink_to(shared / "assets")

    def shipped(out: Path) -> tuple[str, str]:
        proc = uvship("bundle", str(proj), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        site = next(out.glob("app/.venv/lib/python3.*/site-packages"))
        return ((site / "linked" / "data.txt").read_text(),
                (site / "linked" / "assets" / "a.txt").read_text())

    assert shipped(tmp_path / "o1") == ("one\n", "A1\n")
    (shared / "data.txt").write_text("two\n")
    assert shipped(tmp_path / "o2") == ("two\n", "A1\n")
    (shared / "assets" / "a.txt").write_text("A2\n")
    assert shipped(tmp_path / "o3") == ("two\n", "A2\n")

    (pkg / "selfdir").symlink_to(".")
    for attempt in ("warm", "cold"):
        env = {"UVSHIP_CACHE_DIR": str(tmp_path / "cold-cache")} if attempt == "cold" else None
        proc = uvship("bundle", str(proj), "-o", str(tmp_path / f"loop-{attempt}"), env=env)
        assert proc.returncode == 1, (attempt, proc.stderr)
        assert "selfdir -> .: a symlink to a directory above it, in the sources of linked" \
            in proc.stderr, proc.stderr
        assert not (tmp_path / f"loop-{attempt}").exists()


def test_bundle_to_stdout_a_fifo_and_through_a_symlink(project, managed_python, tmp_path):
    """`uvship bundle -o -` streams the same bytes a file gets; a FIFO is written through,
    a symlink to its target (the link stays), and a socket is refused before any work."""
    import socket
    import stat
    import subprocess
    import sys

    src = project("hello-web")
    out = tmp_path / "out"
    out.mkdir()
    file_res = bundle_ok(str(src), "-o", str(out / "app.tar.gz"))

    proc = subprocess.run([sys.executable, "-m", "uvship", "bundle", str(src), "-o", "-"],
                          capture_output=True, cwd=out)
    assert proc.returncode == 0, proc.stderr.decode()
    assert hashlib.sha256(proc.stdout).hexdigest() == file_res["sha256"]
    assert b"-\n" in proc.stderr  # the result line, on stderr: stdout is the bundle's
    refused = uvship("bundle", str(src), "-o", "-", "--json")
    assert refused.returncode == 1 and "--json: the result goes to stdout" in refused.stderr

    fifo = out / "bundle.fifo"
    os.mkfifo(fifo)
    with (tmp_path / "listing").open("w+") as listing:  # a pipe would fill and stall tar
        tar = subprocess.Popen(["tar", "-tzf", str(fifo)], stdout=listing,
                               stderr=subprocess.PIPE, text=True)
        try:
            res = bundle_ok(str(src), "-o", str(fifo))
            _, err = tar.communicate(timeout=120)
        finally:
            tar.kill()
        listing.seek(0)
        names = listing.read().split()
    assert tar.returncode == 0, err
    assert "uvship-bundle.json" in names and res["sha256"] == file_res["sha256"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    link = out / "link.tar.gz"
    link.symlink_to("app.tar.gz")
    res = bundle_ok(str(src), "-o", str(link), "--no-compile")
    assert res["output"] == str(out / "app.tar.gz")  # where the bundle is
    assert link.is_symlink() and os.readlink(link) == "app.tar.gz"
    assert sha256(out / "app.tar.gz") != file_res["sha256"]  # the target got the new one
    # its SBOM goes beside the file that holds the bundle, where `uvship sbom` finds it
    assert sorted(os.listdir(out)) == ["app.tar.gz", "app.tar.gz.cdx.json", "bundle.fifo",
                                       "link.tar.gz"]
    assert uvship("sbom", str(link), check=True).stdout == (
        out / "app.tar.gz.cdx.json").read_text()

    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(out / "sock"))
        proc = uvship("bundle", str(src), "-o", str(out / "sock"))
    assert proc.returncode == 1 and "is a socket; expected a regular file" in proc.stderr


_BACKENDS = {
    "hatchling": ('"hatchling>=1.24"', "hatchling.build", ""),
    "setuptools": ('"setuptools>=68"', "setuptools.build_meta", ""),
    "flit": ('"flit_core>=3.9,<4"', "flit_core.buildapi", ""),
    "pdm": ('"pdm-backend>=2.3"', "pdm.backend", ""),
    "poetry": ('"poetry-core>=2"', "poetry.core.masonry.api",
               '[tool.poetry]\npackages = [{ include = "{pkg}", from = "src" }]\n'),
    # uv_build, with a config setting of the user's own for every build
    "user-settings": ('"uv_build>=0.13,<0.14"', "uv_build", ""),
}
# the backends resolved as of a fixed date: a new release never changes what is tested
_STABLE = 'exclude-newer = "2026-11-25T00:00:00Z"'



@pytest.mark.parametrize("backend", sorted(_BACKENDS))
def test_an_edited_local_package_is_built_again_whatever_its_backend(
        backend, tmp_path, uv_bin, managed_python, base_images):
    """uv keeps the wheels it built of local sources by file times, not content: an edit
    inside a package directory (src/'s time unchanged) must still ship. uvship hands each
    local build a config setting naming the sources; what the bundle holds is what a
    build without it holds (uv_build.json, RECORD), and with the user's own settings uv's
    record keeps theirs alone."""
    from .conftest import one_dependency_project

    users = '\nconfig-settings = { "user-key" = "1" }' if backend == "user-settings" else ""
    proj = one_dependency_project(tmp_path, uv_bin, f"be-{backend}", "idna==3.10", "idna",
                                  uv_config=_STABLE + users)
    pkg = proj / "src" / f"be_{backend.replace('-', '_')}"
    requires, api, extra = _BACKENDS[backend]
    pp = proj / "pyproject.toml"
    text = pp.read_text().replace('requires = ["uv_build>=0.13,<0.14"]\n'
                                  'build-backend = "uv_build"',
                                  f'requires = [{requires}]\nbuild-backend = "{api}"')
    pp.write_text(text.replace('version = "0.1.0"\n', 'version = "0.1.0"\n'
                               'description = "A test package."\n')
                  + extra.replace("{pkg}", pkg.name))
    run([uv_bin, "lock", "-q", "--python", sys.executable], cwd=proj)
    init = pkg / "__init__.py"

    def shipped(out: Path) -> str:
        proc = uvship("bundle", str(proj), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        site = next(out.glob("app/.venv/lib/python3.*/site-packages"))
        dist = next(site.glob(f"{pkg.name}-0.1.0.dist-info"))
        build = json.loads((dist / "uv_build.json").read_text())
        assert build == ({"config_settings": {"user-key": "1"}} if backend == "user-settings"
                         else {}), build
        for row in (dist / "RECORD").read_text().splitlines():
            path, digest, size = row.rsplit(",", 2)
            if digest:  # every file as RECORD says, uv_build.json included
                data = (site / path).read_bytes()
                want = hashlib.sha256(data).digest()
                import base64

                assert digest == "sha256=" + base64.urlsafe_b64encode(want).rstrip(
                    b"=").decode() and int(size) == len(data), path
        code = f"import {pkg.name} as m; print(getattr(m, 'MARK', 'none'))"
        return run_in_glibc(out, "/app/.venv/bin/python", "-c", code).strip()

    assert shipped(tmp_path / "one") == "none"
    src_time = (proj / "src").stat().st_mtime_ns  # after the build (setuptools writes there)
    init.write_text(init.read_text() + "\nMARK = 'edited'\n")  # in place: src/ keeps its time
    assert (proj / "src").stat().st_mtime_ns == src_time
    assert shipped(tmp_path / "two") == "edited"
