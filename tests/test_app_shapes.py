"""The shapes real uv apps take, built and run: a Django site without [build-system] served by
gunicorn (its static files made by a build step), a FastAPI app run as `fastapi run`, a
`python -m` server in a monorepo, a CLI versioned by git tags (hatch-vcs)."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from .conftest import PROJECTS, podman, run, served, tiers, uvship

pytestmark = [pytest.mark.podman, pytest.mark.slow]


def build_ok(*args: str, **kw) -> dict:
    proc = uvship("build", *args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def pulled():
    """Factory: an OCI layout (oci:DIR:TAG) into podman's storage under a fresh name."""
    names: list[str] = []

    def pull(layout: str, name: str) -> str:
        run(["skopeo", "copy", "-q", layout, f"containers-storage:{name}"])
        names.append(name)
        return name

    yield pull
    for n in names:
        podman("rmi", "-f", n, check=False)


def image_files(layout: Path, tag: str = "latest") -> dict[str, str]:
    """Every path of the image (layers applied in order) -> the role of the layer that
    holds it, read from the layout."""
    from uvship import oci

    img = oci.read_layout(layout, tag)
    roles = [h.get("created_by", "") for h in img.config_dict().get("history", [])
             if not h.get("empty_layer")]
    out: dict[str, str] = {}
    for layer, created_by in zip(img.layers, roles, strict=True):
        with tarfile.open(layer.path) as t:
            for m in t.getmembers():
                out[m.name.rstrip("/")] = created_by.split(":", 2)[1].strip()
    return out


def test_django_site_without_build_system(project, managed_python, tmp_path, pulled):
    src = project("django-site")
    (src / ".env").write_text("DJANGO_SECRET_KEY=do-not-ship\n")  # a secret beside the code
    (src / "id_rsa").write_text("not a key\n")
    res = build_ok(str(src), "-o", f"oci:{tmp_path / 'img'}")
    roles = tiers(res["layers"])
    assert roles == ["runtime", "interpreter", "dependencies", "files"], roles

    files = image_files(tmp_path / "img")
    assert files["app/manage.py"] == "files"
    assert files["app/site_conf/__pycache__/settings.cpython-312.pyc"] == "files"  # compiled
    # the build step's output ships with the files: collectstatic's manifest and hashed copy
    assert "app/staticfiles/staticfiles.json" in files
    assert not [p for p in files if p.startswith("app/notes")]  # .dockerignore
    assert "app/.env" not in files and "app/id_rsa" not in files  # never shipped

    name = pulled(f"oci:{tmp_path / 'img'}:latest", "localhost/uvship-test/django-site:1")
    cfg = json.loads(podman("image", "inspect", name).stdout)[0]["Config"]
    assert cfg["Entrypoint"] == ["/app/.venv/bin/python", "/app/.venv/bin/gunicorn",
                                 "site_conf.wsgi:application", "--bind", "0.0.0.0:8000",
                                 "--workers", "1"]
    assert cfg["WorkingDir"] == "/app"
    home, = served(name, "-e", "DJANGO_SECRET_KEY=at-run-time")
    text = home.decode()
    assert text.startswith("django-site ok uid=65532 cwd=/app python=/app/.venv/bin/python")
    css = text.split("css=", 1)[1].strip()
    assert css.startswith("/static/css/site.") and css != "/static/css/site.css"  # hashed
    home, sheet = served(name, "-e", "DJANGO_SECRET_KEY=x", paths=("/", css))
    assert sheet == b"body { color: #333; }\n"

    # inspect names the layer; an edit rebuilds only it, and the steps run again
    (src / "pages" / "views.py").write_text(
        (src / "pages" / "views.py").read_text().replace("django-site ok", "django-site v2"))
    again = build_ok(str(src), "-o", f"oci:{tmp_path / 'img'}")
    before, after = ([x["digest"] for x in r["layers"]] for r in (res, again))
    assert before[:-1] == after[:-1] and before[-1] != after[-1]  # the files layer, last
    shown = uvship("inspect", f"oci:{tmp_path / 'img'}")
    assert "files        uvship: files:" in shown.stdout, shown.stdout
    assert "pages/views.py changed" in shown.stdout, shown.stdout


def test_fastapi_run_from_the_project_directory(project, managed_python, tmp_path, pulled):
    src = project("fastapi-app")
    build_ok(str(src), "-o", f"oci:{tmp_path / 'img'}:1")
    name = pulled(f"oci:{tmp_path / 'img'}:1", "localhost/uvship-test/fastapi-app:1")
    body, = served(name)
    assert json.loads(body) == {"service": "fastapi-app", "uid": 65532, "cwd": "/app",
                                "python": "/app/.venv/bin/python"}
    # the same project as a bundle: its files beside the venv, the command in its manifest
    out = tmp_path / "bundle"
    proc = uvship("bundle", str(src), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)["manifest"]
    assert manifest["command"] == ["/app/.venv/bin/python", "/app/.venv/bin/fastapi", "run",
                                   "app/main.py", "--port", "8000"]
    assert manifest["workdir"] == "/app"
    assert (out / "app" / "app" / "main.py").is_file()


def test_python_m_server_in_a_monorepo(project, managed_python, tmp_path, pulled):
    src = project("mono")
    res = build_ok(str(src / "apps" / "server"), "-o", f"oci:{tmp_path / 'img'}")
    assert tiers(res["layers"]) == ["runtime", "interpreter", "dependencies", "local",
                                     "project"]
    name = pulled(f"oci:{tmp_path / 'img'}:latest", "localhost/uvship-test/mono:1")
    body, = served(name)
    assert body.decode().startswith("hello from mono via greeter uid=65532")
    # arguments after the image name go to the command
    out = podman("run", "--rm", "--pull=never", name, "--once").stdout
    assert out == "hello from mono via greeter\n"


def _git(repo: Path, *args: str) -> str:
    return run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                *args]).stdout.strip()


def test_version_from_git_follows_the_checkout(uv_bin, managed_python, tmp_path, pulled,
                                               monkeypatch):
    """pipx's case: hatch-vcs takes the version from `git describe`, so a new commit is a
    new project layer even when no file changed, and the image says so."""
    src = tmp_path / "vcs-cli"
    shutil.copytree(PROJECTS / "vcs-cli", src)
    _git(src, "init", "-q")
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "first")
    _git(src, "tag", "v1.4.0")
    run([uv_bin, "lock", "-q", "--python", sys.executable], cwd=src)  # hatch-vcs runs here
    out = f"oci:{tmp_path / 'img'}"

    def version_of(res: dict) -> tuple[str, str]:
        name = pulled(f"{out}:latest", f"localhost/uvship-test/vcs-cli:{res['digest'][7:19]}")
        cfg = json.loads(podman("image", "inspect", name).stdout)[0]["Config"]
        printed = podman("run", "--rm", "--pull=never", name).stdout.strip()
        return printed, cfg["Labels"]["org.opencontainers.image.version"]

    # built once with the version forced, as pipx's release scripts do
    monkeypatch.setenv("SETUPTOOLS_SCM_PRETEND_VERSION", "9.9.9")
    forced = build_ok(str(src), "-o", out)
    assert version_of(forced) == ("vcs-cli 9.9.9", "9.9.9")
    monkeypatch.delenv("SETUPTOOLS_SCM_PRETEND_VERSION")
    tagged = build_ok(str(src), "-o", out)
    assert version_of(tagged) == ("vcs-cli 1.4.0", "1.4.0")

    # unchanged sources and VCS state: every layer reused, nothing written
    same = build_ok(str(src), "-o", out)
    assert same["digest"] == tagged["digest"] and same["written"] == []

    _git(src, "commit", "-q", "--allow-empty", "-m", "second")  # no file changed
    moved = build_ok(str(src), "-o", out)
    printed, label = version_of(moved)
    assert printed == f"vcs-cli {label}" and label.startswith("1.4.1.dev1+g"), label
    assert [x["digest"] for x in moved["layers"]][:-1] == \
        [x["digest"] for x in tagged["layers"]][:-1]


# ---------------------------------------------------------------------------- bad input
def _no_output(tmp_path: Path, proc) -> str:
    """The error (from its `error:` line on) of a build that must have written nothing."""
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert "error: " in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "img").exists()
    return proc.stderr[proc.stderr.index("error: "):]


def test_unknown_program_is_named_before_any_output(project, managed_python, tmp_path):
    src = project("django-site")
    proc = uvship("build", str(src), "-o", f"oci:{tmp_path / 'img'}",
                  "--command", "gunicron site_conf.wsgi:application")
    err = _no_output(tmp_path, proc)
    first = err.splitlines()[0]
    assert first.startswith("error: command 'gunicron site_conf.wsgi:application': no program "
                            "'gunicron' in the environment's bin/ (found: "), first
    assert "gunicorn" in first and "activate" not in first
    assert "hint: say what runs with the whole command, e.g. --command 'python manage.py'" \
        in err, err


def test_failing_build_step_shows_its_output_and_writes_nothing(project, managed_python,
                                                                tmp_path):
    src = project("django-site")
    proc = uvship("build", str(src), "-o", f"oci:{tmp_path / 'img'}", "--build-step",
                  "python -c 'import sys; print(\"step says hi\"); sys.exit(3)'")
    err = _no_output(tmp_path, proc)
    assert err.startswith("error: build step 1 ") and "failed (exit 3)" in err
    assert "step says hi" in err


def test_virtual_project_with_nothing_to_ship(tmp_path, uv_bin, managed_python):
    proj = tmp_path / "empty-app"
    proj.mkdir()
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "empty-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = []\n')
    (proj / "README.md").write_text("nothing here yet\n")
    (proj / ".env").write_text("TOKEN=x\n")
    run([uv_bin, "lock", "-q", "--python", shutil.which("python3") or "python3"], cwd=proj)
    proc = uvship("build", str(proj), "-o", f"oci:{tmp_path / 'img'}")
    err = _no_output(tmp_path, proc)
    assert "empty-app: nothing to ship: the project has no [build-system]" in err


def test_a_source_path_the_image_lacks_is_refused(project, managed_python, tmp_path):
    """uv-docker-example's Dockerfile runs `fastapi run src/...`; a packaged project ships
    as its wheel, so that path is not in the image: refused before any output, pointing at
    --project-files, which makes the same command work."""
    src = project("hello-web")
    proc = uvship("build", str(src), "-o", f"oci:{tmp_path / 'img'}",
                  "--command", "python src/hello_web/__main__.py")
    err = _no_output(tmp_path, proc)
    assert ("src/hello_web/__main__.py is a path of the project's source, which the image "
            "does not hold (the project ships as the wheel") in err, err
    assert "hint: ship the project's directory too with --project-files" in err
    build_ok(str(src), "-o", f"oci:{tmp_path / 'img'}", "--project-files",
             "--command", "python src/hello_web/__main__.py --check")


def test_the_hint_names_the_modules_python_runs(project, managed_python, tmp_path):
    """postmodern's server has no console script and a namespace package: the hint names
    `python -m mono_server` as its source has it, not a name made from the distribution."""
    src = project("mono")
    pp = src / "apps" / "server" / "pyproject.toml"
    pp.write_text(pp.read_text().replace('command = "python -m mono_server --port 8000"\n', ""))
    proc = uvship("build", str(src / "apps" / "server"), "-o", f"oci:{tmp_path / 'img'}")
    err = _no_output(tmp_path, proc)
    assert "hint: say what runs with the whole command, e.g. --command 'python -m " \
           "mono_server'" in err, err


def test_secrets_a_build_step_writes_never_ship(project, managed_python, tmp_path):
    """django-starter's settings need a .env: a build step may write one for collectstatic,
    and it is left out of the image all the same, and said so."""
    src = project("django-site")
    res = uvship("build", str(src), "-o", f"oci:{tmp_path / 'img'}", "--json", "--build-step",
                 "python -c \"open('.env', 'w').write('SECRET=1')\"")
    assert res.returncode == 0, res.stderr
    assert "left out of the project's files (secrets are never shipped, even when a build " \
           "step wrote them): .env" in res.stderr, res.stderr
    assert "app/.env" not in image_files(tmp_path / "img")
