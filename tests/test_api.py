"""The fluent Python API: immutable builds, extras and groups, and a UvVenv that runs."""

from __future__ import annotations

import pytest

from uvship import Uv
from uvship.errors import InputError

from .conftest import GLIBC, podman


def test_builds_are_immutable(project, tmp_path):
    project("ws", tmp_path / "repo" / "ws")
    ws = Uv(tmp_path / "repo").workspace("ws")
    b = ws.build(package=["ws-app"], no_editable=True)
    b2 = b.with_python_pin("3.12").with_venv(relocatable=True, path="/srv/venv")
    assert b.options.python is None and b.options.venv_path == "/app/.venv"
    assert b2.options.python == "3.12" and b2.options.venv_path == "/srv/venv"
    assert b2.with_system_python().options.mode == "system" and b2.options.mode == "venv"
    with pytest.raises(InputError, match="relocatable"):
        b.with_venv(relocatable=False)
    with pytest.raises(InputError, match="non-editable"):
        ws.build(package="ws-app", no_editable=False)
    assert [w.root for w in Uv(tmp_path / "repo").get_workspaces()] == [tmp_path / "repo/ws"]


@pytest.mark.podman
def test_venv_runs_at_its_final_paths(project, managed_python, base_images, tmp_path):
    project("ws", tmp_path / "repo" / "ws")
    ws = Uv(tmp_path / "repo").workspace("ws")
    b = (ws.build(package=["ws-app"], no_editable=True)
         .with_python_pin("3.12").with_venv(relocatable=True)
         .with_remote_dependencies().with_local_dependencies())
    with b.venv() as venv:
        assert venv.interpreter_path == "/opt/python/bin/python3.12"
        assert (venv.venv_dir / "pyvenv.cfg").is_file()
        assert (venv.interpreter_dir / "bin/python3.12").is_file()
        names = {d.name for d in venv.env.distributions}
        assert "pyyaml" not in names and "tomli-w" not in names and "iniconfig" not in names
        out = podman("run", "--rm", "--pull=never", "--network=none", "--user", "65532",
                     "-v", f"{venv.venv_dir}:/app/.venv:ro",
                     "-v", f"{venv.interpreter_dir}:/opt/python:ro",
                     GLIBC, "/app/.venv/bin/python", "/app/.venv/bin/ws-app").stdout
        assert out.strip() == "app says &lt;lib+core:xn--bcher-kva.example&gt;"
        work = venv.work
    assert not work.exists()  # leaving the context removes the staging directory


def test_extras_and_groups(project, managed_python, tmp_path):
    ws = Uv(project("ws")).workspace()
    b = ws.build(package="ws-app", extras=["yaml"], groups=["tools"])
    with b.venv() as venv:
        names = {d.name for d in venv.env.distributions}
    assert {"pyyaml", "tomli-w"} <= names and "iniconfig" not in names
    with ws.build(package="ws-app", all_extras=True, groups=["dev"]).venv() as venv:
        names = {d.name for d in venv.env.distributions}
    assert {"pyyaml", "iniconfig"} <= names and "tomli-w" not in names
