"""`uvship dockerfile`: the generated files, built with podman and run; bad input refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from .conftest import HOST_DIR, copy_project, podman, uvship

PYTHON_IMAGE = "localhost/uvship/python:3.11-bookworm"  # Debian's python3 (3.11), for builds
UV_IMAGE = "localhost/uvship/uv:0.13.9"
GLIBC = "localhost/uvship/glibc:bookworm"
LOCAL = ("--uv-image", UV_IMAGE)
PYTHONS = HOST_DIR / "pythons"
# Build times, printed at the end of the module (`pytest -s`) to keep an eye on them.
TIMES: dict[str, float] = {}


def generate(src: Path, *args: str) -> dict:
    proc = uvship("dockerfile", str(src), *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ---------------------------------------------------------------------------- podman store
class Store:
    """A private podman image store holding copies of the base images.

    Builds and their intermediate layers live here and go with it, never touching anyone
    else's images. buildah keeps RUN cache mounts outside image storage, so the uv cache
    stays warm across sessions.
    """

    def __init__(self, root: Path) -> None:
        info = podman("info", "--format",
                      "{{.Store.GraphDriverName}}|{{.Store.GraphRoot}}|{{.Store.RunRoot}}")
        driver, graph, runroot = info.stdout.strip().split("|")
        self.root = root
        self.args = ["--root", root / "root", "--runroot", root / "run",
                     "--storage-driver", driver]
        for ref in (PYTHON_IMAGE, UV_IMAGE, GLIBC):
            if podman("image", "exists", ref, check=False).returncode != 0:
                pytest.fail(f"base image {ref} missing; run scripts/setup-host as root")
            self("pull", "-q", f"containers-storage:[{driver}@{graph}+{runroot}]{ref}")

    def __call__(self, *args, check=True, **kw):
        return podman(*self.args, *args, check=check, **kw)

    def build(self, context: Path, tag: str, label: str) -> list[dict]:
        """podman build with layer caching; returns buildah's steps and whether each was
        taken from the cache."""
        t0 = time.perf_counter()
        proc = self("build", "--pull=never", "--layers=true", "-t", tag, context, timeout=600)
        TIMES[label] = time.perf_counter() - t0
        steps: list[dict] = []
        for line in proc.stdout.splitlines():
            m = re.match(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: (.*)$", line)
            if m:
                steps.append({"text": m[1], "cached": False})
            elif line.startswith("--> Using cache") and steps:
                steps[-1]["cached"] = True
        return steps

    def run(self, tag: str, *cmd: str) -> str:
        return self("run", "--rm", "--pull=never", "--network=none", tag, *cmd,
                    timeout=120).stdout

    def destroy(self) -> None:
        self("rmi", "-a", "-f", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class BuildKit:
    """Docker Engine's BuildKit (DOCKER_BUILDKIT=1 with the built-in Dockerfile frontend),
    with the same interface as Store; the images it tags are removed afterwards."""

    def __init__(self, docker) -> None:
        self.docker = docker
        self.tags: set[str] = set()

    def __call__(self, *args, check=True, **kw):
        return self.docker(*args, check=check, **kw)

    def build(self, context: Path, tag: str, label: str) -> list[dict]:
        t0 = time.perf_counter()
        proc = self.docker("build", "--progress=plain", "-t", tag, context, timeout=600,
                           env={**os.environ, "DOCKER_BUILDKIT": "1"})
        TIMES[label + " (BuildKit)"] = time.perf_counter() - t0
        self.tags.add(tag)
        steps: dict[str, dict] = {}
        for line in proc.stderr.splitlines():
            m = re.match(r"^#(\d+) \[[^\]]*\d+/\d+\] (.*)$", line)
            if m:
                steps.setdefault(m[1], {"text": " ".join(m[2].split()), "cached": False})
            elif (m := re.match(r"^#(\d+) CACHED$", line)) and m[1] in steps:
                steps[m[1]]["cached"] = True
        return list(steps.values())

    def run(self, tag: str, *cmd: str) -> str:
        return self.docker("run", "--rm", "--pull=never", "--network=none", tag, *cmd,
                           timeout=120).stdout

    def destroy(self) -> None:
        for t in self.tags:
            self.docker("rmi", "-f", t, check=False)


@pytest.fixture(scope="module", params=["podman", "buildkit"])
def engine(request, tmp_path_factory):
    """Each engine users build Dockerfiles with: podman (buildah) and Docker's BuildKit."""
    if request.param == "podman":
        yield request.getfixturevalue("store")
        return
    bk = BuildKit(request.getfixturevalue("docker_engine"))
    yield bk
    bk.destroy()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # podman refuses a runroot path longer than 50 characters: keep the store's path short
    s = Store(Path(tempfile.mkdtemp(prefix="ust-", dir="/tmp")))
    yield s
    s.destroy()
    if TIMES:
        print("\npodman build times: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items()))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, uv_bin):
    """Factory: a locked copy of a fixture project for this module."""
    def make(name: str) -> Path:
        return copy_project(name, tmp_path_factory.mktemp(name) / name, uv_bin)
    return make


def offline_pythons(src: Path, minor: str) -> None:
    """Let the managed-python build install its Python with no network: the host's offline
    download list and archive go into the build context, and the build stage is pointed at
    them (uv cannot download Pythons here)."""
    downloads = json.loads((PYTHONS / "downloads.json").read_text())
    keys = [k for k in downloads if k.startswith(f"cpython-{minor}.")]
    assert keys, f"no offline CPython {minor} in {PYTHONS}"
    d = src / "offline-pythons"
    d.mkdir()
    entries = {}
    for k in keys:
        archive = Path(downloads[k]["url"].removeprefix("file://"))
        try:
            os.link(archive, d / archive.name)
        except OSError:
            shutil.copy2(archive, d / archive.name)
        entries[k] = {**downloads[k], "url": f"file:///tmp/offline-pythons/{archive.name}"}
    (d / "downloads.json").write_text(json.dumps(entries))
    dockerfile = src / "Dockerfile"
    text = dockerfile.read_text()
    assert "RUN uv python install" in text
    dockerfile.write_text(text.replace(
        "RUN uv python install",
        "COPY offline-pythons /tmp/offline-pythons\n"
        "ENV UV_PYTHON_DOWNLOADS_JSON_URL=/tmp/offline-pythons/downloads.json\n"
        "RUN uv python install", 1))


# What each project's image prints, and a one-file edit that changes it.
RUNS = {
    # the console script is the ENTRYPOINT: `run IMAGE ARGS` passes ARGS to it
    "hello-web": (("--check",), "hello-web ok python={py}",
                  "src/hello_web/__main__.py", "hello-web ok", "hello-web edited ok"),
    "ws": ((), "app says &lt;lib+core:", "packages/app/src/app/__init__.py", "app says",
           "app now says"),
}
SELECT = {"hello-web": (), "ws": ("--package", "ws-app")}


# ---------------------------------------------------------------------------- podman builds
@pytest.mark.podman
@pytest.mark.slow
@pytest.mark.parametrize("name", ["hello-web", "ws"])
def test_venv_variant_builds_runs_and_keeps_the_dependency_layer(engine, checkout, name):
    src = checkout(name)
    generate(src, *SELECT[name], *LOCAL, "--base-image", PYTHON_IMAGE, "--python", "3.11")
    cmd, want, edited_file, old, new = RUNS[name]
    tag = f"localhost/uvship-test/{name}:venv"
    steps = engine.build(src, tag, f"{name} venv cold")
    if isinstance(engine, Store):  # a private store: a cold build syncs (BuildKit's cache
        # is the daemon's, shared with every earlier build of the same lock)
        assert not any(s["cached"] for s in steps if "uv sync" in s["text"])
    out = engine.run(tag, *cmd)
    assert want.format(py="3.11") in out
    if name == "hello-web":
        assert "prefix=/app/.venv" in out and "uid=65532" in out

    f = src / edited_file
    # content no earlier build has had (BuildKit's cache outlives a test session)
    f.write_text(f.read_text().replace(old, new) + f"# edit {uuid.uuid4().hex}\n")
    steps = engine.build(src, tag, f"{name} venv after an edit")
    deps = [s for s in steps if "--no-install-" in s["text"]]
    assert len(deps) == 1 and deps[0]["cached"], steps
    source = [s for s in steps if s["text"].startswith("COPY . /src")]
    assert len(source) == 1 and not source[0]["cached"]
    assert new in engine.run(tag, *cmd)


@pytest.mark.podman
@pytest.mark.slow
@pytest.mark.parametrize("name", ["hello-web", "ws"])
def test_system_variant_installs_into_the_images_python(engine, checkout, name):
    src = checkout(name)
    # Debian's python3 has its prefix in /usr (the official images': /usr/local, the default)
    generate(src, *SELECT[name], *LOCAL, "--variant", "system", "--base-image", PYTHON_IMAGE,
             "--python", "3.11", "--python-path", "/usr")
    assert "python -m venv" not in (src / "Dockerfile").read_text()
    cmd, want, *_ = RUNS[name]
    tag = f"localhost/uvship-test/{name}:system"
    engine.build(src, tag, f"{name} system cold")
    out = engine.run(tag, *cmd)
    assert want.format(py="3.11") in out
    if name == "hello-web":
        assert "prefix=/usr " in out and "uid=65532" in out
    # uv was mounted for the build, never copied into the image
    assert engine("run", "--rm", "--pull=never", "--entrypoint", "sh", tag, "-c",
                 "command -v uv || echo none").stdout.strip() == "none"


@pytest.mark.podman
@pytest.mark.slow
def test_virtual_project_ships_its_files_and_build_steps(engine, checkout):
    """A Django site with no [build-system]: the image holds its files (never .env) and
    what collectstatic made in the build stage, and runs its command, as `uvship build`'s."""
    src = checkout("django-site")
    (src / ".env").write_text("DJANGO_SECRET_KEY=do-not-ship\n")
    res = generate(src, *LOCAL, "--base-image", PYTHON_IMAGE, "--python", "3.11")
    assert res["entrypoint"] == ("gunicorn site_conf.wsgi:application --bind 0.0.0.0:8000 "
                                 "--workers 1")
    text = (src / "Dockerfile").read_text()
    assert "RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput" in text
    assert "COPY --from=builder /src /app" in text
    tag = "localhost/uvship-test/django-site:df"
    engine.build(src, tag, "django-site venv cold")
    from .conftest import served

    home, = served(tag, "-e", "DJANGO_SECRET_KEY=x", engine=engine)
    assert home.decode().startswith("django-site ok uid=65532 cwd=/app "
                                    "python=/app/.venv/bin/python"), home
    css = home.decode().split("css=", 1)[1].strip()
    _, sheet = served(tag, "-e", "DJANGO_SECRET_KEY=x", engine=engine, paths=("/", css))
    assert sheet == b"body { color: #333; }\n"
    shipped = engine("run", "--rm", "--pull=never", "--entrypoint", "python", tag, "-c",
                    "import os; print(sorted(os.listdir('/app')))").stdout
    assert ".env" not in shipped and "staticfiles" in shipped and "manage.py" in shipped


@pytest.mark.podman
@pytest.mark.slow
@pytest.mark.parametrize("name,minor", [("hello-web", "3.12"), ("ws", "3.12")])
def test_managed_python_variant_runs_on_a_base_without_python(engine, checkout, name, minor):
    src = checkout(name)
    # the build stage needs a shell and the proxy CA uv trusts here; Python comes from uv
    res = generate(src, *SELECT[name], *LOCAL, "--variant", "managed-python",
                   "--builder-image", PYTHON_IMAGE, "--base-image", GLIBC, "--python", minor)
    assert res["python"] == minor
    offline_pythons(src, minor)
    cmd, want, *_ = RUNS[name]
    tag = f"localhost/uvship-test/{name}:managed"
    engine.build(src, tag, f"{name} managed-python cold")
    out = engine.run(tag, *cmd)
    assert want.format(py=minor) in out
    # the base has no shell and no Python of its own: what runs is the copied interpreter
    assert engine("run", "--rm", "--pull=never", "--entrypoint", "sh", tag, check=False
                 ).returncode != 0
    assert engine("run", "--rm", "--pull=never", "--entrypoint", "python", tag, "-c",
                 "import sys; print(sys.base_prefix)").stdout.startswith("/opt/python/cpython-")


# ---------------------------------------------------------------------------- the files
def test_single_project_dockerfile(project):
    src = project("hello-web")
    res = generate(src)
    assert res["files"] == [str(src / n) for n in ("Dockerfile", ".dockerignore", "compose.yaml")]
    assert (res["python"], res["uv_image"]) == ("3.12", f"ghcr.io/astral-sh/uv:{res['uv_version']}")
    assert res["base_image"] == res["builder_image"] == "python:3.12-slim-bookworm"
    text = (src / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines[:2] == ["FROM python:3.12-slim-bookworm AS builder",
                         f"COPY --from=ghcr.io/astral-sh/uv:{res['uv_version']} /uv /uvx /bin/"]
    for want in ("UV_COMPILE_BYTECODE=1", "UV_LINK_MODE=copy", "UV_PYTHON=3.12",
                 "UV_PROJECT_ENVIRONMENT=/app/.venv", "COPY uv.lock pyproject.toml /src/",
                 "uv sync --locked --no-install-project --no-dev",
                 "uv sync --locked --no-editable --no-dev", "COPY --from=builder /app/.venv "
                 "/app/.venv", 'ENV PATH="/app/.venv/bin:$PATH"', "USER 65532:65532",
                 'ENTRYPOINT ["hello-web"]'):
        assert want in text, want
    assert "activate" not in "\n".join(lines)
    # dependencies before the source, the source before the project
    assert text.index("--no-install-project") < text.index("COPY . /src") < text.index(
        "--no-editable")
    ignore = (src / ".dockerignore").read_text().splitlines()
    assert {".venv", ".git", ".env", "**/__pycache__"} <= set(ignore)
    compose = yaml.safe_load((src / "compose.yaml").read_text())
    svc = compose["services"]["hello-web"]
    assert svc["build"] == {"context": ".", "target": "dev"}
    sync, *rebuild = svc["develop"]["watch"]
    assert sync == {"action": "sync+restart", "path": ".", "target": "/src",
                    "ignore": [".venv/"]}
    assert {w["path"] for w in rebuild} == {"pyproject.toml", "uv.lock"}
    assert all(w["action"] == "rebuild" for w in rebuild)


def test_workspace_package_copies_only_the_members_it_needs(project):
    src = project("ws")
    res = generate(src / "packages" / "app", "--python", "3.11")
    assert res["files"][0] == str(src / "Dockerfile")  # written at the workspace root
    text = (src / "Dockerfile").read_text()
    for member in ("app", "lib", "core"):
        assert f"COPY packages/{member}/pyproject.toml /src/packages/{member}/pyproject.toml" \
            in text
    assert "packages/other" not in text
    assert "uv sync --frozen --no-install-workspace --package ws-app --no-dev" in text
    assert "uv sync --locked --no-editable --package ws-app --no-dev" in text
    compose = yaml.safe_load((src / "compose.yaml").read_text())
    rebuild = {w["path"] for w in compose["services"]["ws-app"]["develop"]["watch"][1:]}
    assert "packages/lib/pyproject.toml" in rebuild


def test_managed_python_and_system_variants(project):
    src = project("hello-web")
    res = generate(src, "--variant", "managed-python")
    assert res["base_image"] == res["builder_image"] == "debian:bookworm-slim"
    text = (src / "Dockerfile").read_text()
    for want in ("UV_PYTHON_INSTALL_DIR=/opt/python", "UV_PYTHON_PREFERENCE=only-managed",
                 "RUN uv python install 3.12", "COPY --from=builder /opt/python /opt/python"):
        assert want in text
    res = generate(src, "--variant", "system", "--python", "3.11")
    text = (src / "Dockerfile").read_text()
    assert res["base_image"] == "python:3.11-slim-bookworm"
    assert "UV_PROJECT_ENVIRONMENT=/usr/local" in text and "AS builder" not in text
    assert f"--mount=from={res['uv_image']},source=/uv,target=/bin/uv" in text


def test_uv_version_follows_required_version(project):
    src = project("hello-web")
    py = src / "pyproject.toml"
    py.write_text(py.read_text().replace("[tool.uv]\n",
                                         '[tool.uv]\nrequired-version = "==0.5.11"\n'))
    assert generate(src)["uv_image"] == "ghcr.io/astral-sh/uv:0.5.11"
    py.write_text(py.read_text().replace('"==0.5.11"', '">=0.4"'))
    res = generate(src)
    assert res["uv_version"] != "0.5.11" and res["uv_image"].endswith(res["uv_version"])


def test_output_elsewhere_points_back_at_the_context(project, tmp_path):
    src = project("hello-web")
    out = tmp_path / "docker"
    out.mkdir()
    res = generate(src, "-o", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["Dockerfile", "Dockerfile.dockerignore",
                                                    "compose.yaml"]
    svc = yaml.safe_load((out / "compose.yaml").read_text())["services"]["hello-web"]
    assert (out / svc["build"]["context"]).resolve() == src.resolve()
    assert (src / svc["build"]["dockerfile"]).resolve() == (out / "Dockerfile").resolve()
    sync, *rebuild = svc["develop"]["watch"]
    assert (out / sync["path"]).resolve() == src.resolve()
    assert {(out / w["path"]).resolve() for w in rebuild} == {
        (src / "pyproject.toml").resolve(), (src / "uv.lock").resolve()}
    assert res["context"] == str(src)
    # doctor reads them as a build would: the context from compose.yaml, the ignore file
    # beside the Dockerfile
    proc = uvship("doctor", str(out), "--fail-on", "note")
    assert (proc.returncode, proc.stdout.strip()) == (0, "no problems found in 3 file(s)")


def test_refuses_to_overwrite_a_hand_written_dockerfile(project):
    src = project("hello-web")
    (src / "Dockerfile").write_text("FROM python:3.12\n")
    proc = uvship("dockerfile", str(src))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {src / 'Dockerfile'}: exists and was not generated "
                                  "by uvship")
    assert "hint: pass --force" in proc.stderr
    assert not (src / "compose.yaml").exists()  # nothing written, not even the other files
    assert sorted(p.name for p in src.iterdir() if p.name.startswith(".")) == [
        ".python-version"]
    assert uvship("dockerfile", str(src), "--force").returncode == 0
    assert uvship("dockerfile", str(src), "--variant", "system").returncode == 0  # regenerated
    assert "variant system" in (src / "Dockerfile").read_text().splitlines()[0]


@pytest.mark.parametrize("args,error", [
    (("--python", "3.10"), "--python 3.10: Python 3.10 is not allowed by requires-python >=3.11"),
    (("--python", "/usr/bin/python3"), "--python /usr/bin/python3: expected a version such"),
    (("--venv-path", "/src/.venv"), "--venv-path /src/.venv: expected a path outside /src"),
    (("--package", "nope"), "--package nope: no such package"),
    (("--entrypoint", "bin/app x"), "entrypoint 'bin/app x': no project files are shipped"),
    (("--command", "python -m x", "--entrypoint", "y"), "command 'python -m x' and entrypoint"),
    (("--command", "X=1 app"), "command 'X=1 app': starts with an environment assignment"),
    (("--command", "app 'x"), "--command \"app 'x\": expected a command line"),
])
def test_bad_options_are_clear_errors(project, args, error):
    src = project("hello-web")
    proc = uvship("dockerfile", str(src), *args)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith("error: " + error), proc.stderr
    assert not (src / "Dockerfile").exists()


def test_project_without_lock_is_a_clear_error(tmp_path):
    src = tmp_path / "nolock"
    shutil.copytree(Path(__file__).parent.parent / "examples" / "hello-web", src,
                    ignore=shutil.ignore_patterns("uv.lock", ".venv"))
    proc = uvship("dockerfile", str(src))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith(f"error: {src}: no uv.lock in this directory"), proc.stderr
    assert "hint: run `uv lock`" in proc.stderr
    assert not (src / "Dockerfile").exists()
    proc = uvship("dockerfile", str(tmp_path / "missing"))
    assert proc.returncode == 1 and "no such directory" in proc.stderr


@pytest.mark.podman
@pytest.mark.slow
def test_version_from_git_builds_and_the_user_is_real(engine, tmp_path, uv_bin):
    """pipx's shape (hatch-vcs): the generated .dockerignore keeps .git and the build stage
    gets git, so the version comes out of `git describe`; posting's: the image's user has a
    passwd entry and a writable home, so a program may write ~/.local."""
    import sys

    from .conftest import PROJECTS, run

    src = tmp_path / "vcs-cli"
    shutil.copytree(PROJECTS / "vcs-cli", src)
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    run([*git, "init", "-q"])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", "first"])
    run([*git, "tag", "v2.3.0"])
    run([uv_bin, "lock", "-q", "--python", sys.executable], cwd=src)
    generate(src, *LOCAL, "--base-image", PYTHON_IMAGE, "--python", "3.11")
    assert ".git\n" not in (src / ".dockerignore").read_text()
    tag = "localhost/uvship-test/vcs-cli:df"
    engine.build(src, tag, "vcs-cli venv cold")
    assert engine.run(tag).strip() == "vcs-cli 2.3.0"
    out = engine("run", "--rm", "--pull=never", "--entrypoint", "python", tag, "-c",
                 "import getpass, os, pathlib; p = pathlib.Path.home() / '.local' / 'x'; "
                 "p.parent.mkdir(parents=True); p.write_text('ok'); "
                 "print(getpass.getuser(), os.getuid(), p.read_text(), "
                 "'git' if os.path.exists('/usr/bin/git') else 'gitless')").stdout.split()
    assert out == ["app", "65532", "ok", "gitless"], out
