"""engine: images straight into the local Docker Engine and podman's storage, by name,
sending only what the engine lacks; run there as the non-root user they were built for."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from .conftest import docker, podman, served, uvship

pytestmark = [pytest.mark.podman]


def _build(*args: str, **kw) -> tuple[dict, str]:
    proc = uvship("build", *args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.fixture
def names(docker_engine):
    """Image names unique to a test; removed from both engines afterwards."""
    made: list[str] = []

    def make(stem: str) -> str:
        made.append(f"uvship-test/{stem}:{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    for n in made:
        docker("rmi", "-f", n, check=False)
        podman("rmi", "-f", f"localhost/{n}", check=False)


@pytest.mark.parametrize("kind", ["docker-daemon", "containers-storage"])
def test_edit_then_run_in_the_local_engine(project, managed_python, names, kind):
    src = project("hello-web")
    name = names("hello")
    engine, ref = (docker, name) if kind == "docker-daemon" else (podman, f"localhost/{name}")
    first, err = _build(str(src), "-o", f"{kind}:{name}")
    assert first["written"] == [f"{kind}:{ref}"]
    # engines outlive a test: what they had from earlier builds of the example is not sent
    sent = re.search(rf"{re.escape(kind)}:{re.escape(ref)}: sent (\d+) of (\d+) layers", err)
    assert sent and int(sent[2]) == len(first["layers"]), err
    cfg = json.loads(engine("image", "inspect", ref).stdout)[0]["Config"]
    assert cfg["User"] == "65532:65532"
    body, = served(ref, engine=engine)
    assert json.loads(body) == {"message": "hello from uvship"}

    # an edit: only the project's layer goes to the engine, which runs the new code
    f = src / "src" / "hello_web" / "__main__.py"
    edit = f"edited {uuid.uuid4().hex[:8]}"  # a layer no engine has seen
    f.write_text(f.read_text().replace("hello-web ok", f"hello-web {edit} ok"))
    second, err = _build(str(src), "-o", f"{kind}:{name}")
    n = len(second["layers"])
    assert f"{kind}:{ref}: sent 1 of {n} layers" in err and \
        f"the engine had the other {n - 1}" in err, err
    out = engine("run", "--rm", "--pull=never", ref, "--check").stdout
    assert f"hello-web {edit} ok" in out and "uid=65532" in out

    # nothing changed: nothing sent
    third, err = _build(str(src), "-o", f"{kind}:{name}")
    assert third["digest"] == second["digest"] and third["written"] == []
    assert "sent" not in err


def test_docker_loads_and_runs_a_docker_archive(project, managed_python, names, tmp_path):
    """The docker-archive output, loaded by `docker load` (not only podman's)."""
    src = project("hello-web")
    name = names("archive")
    _build(str(src), "-o", f"docker-archive:{tmp_path / 'img.tar'}", "-t", name)
    docker("load", "-i", tmp_path / "img.tar")
    body, = served(name, engine=docker)
    assert json.loads(body) == {"message": "hello from uvship"}
    assert docker("run", "--rm", "--pull=never", "--entrypoint", "/app/.venv/bin/python", name,
                  "-c", "import os; print(os.getuid())").stdout.strip() == "65532"


def test_an_engine_that_cannot_be_reached_is_refused_first(project, tmp_path):
    src = project("hello-web")
    proc = uvship("build", str(src), "-o", "docker-daemon:app:1",
                  env={"DOCKER_HOST": f"unix://{tmp_path / 'no.sock'}"})
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert proc.stderr.startswith(f"error: --output docker-daemon:app:1: no Docker Engine at "
                                  f"{tmp_path / 'no.sock'}"), proc.stderr
    proc = uvship("build", str(src), "-o", "docker-daemon:Bad Name")
    assert proc.returncode == 1 and "expected docker-daemon:NAME[:TAG]" in proc.stderr
