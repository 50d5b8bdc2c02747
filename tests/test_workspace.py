"""Workspaces read from pyproject.toml and uv.lock: members, local closures, defaults, config."""

from __future__ import annotations

import pytest

from uvship.errors import InputError
from uvship.project.workspace import Workspace, find_workspaces


def test_find_workspaces_finds_every_lock(project, tmp_path):
    project("ws", tmp_path / "tree" / "services" / "ws")
    project("hello-web", tmp_path / "tree" / "apps" / "hello-web")
    # an environment or VCS directory is never searched
    venv = tmp_path / "tree" / "apps" / "hello-web" / ".venv" / "x"
    venv.mkdir(parents=True)
    (venv / "uv.lock").write_text("")
    (venv / "pyproject.toml").write_text("")
    found = find_workspaces(tmp_path / "tree")
    assert found == [tmp_path / "tree/apps/hello-web", tmp_path / "tree/services/ws"]


def test_members_and_closure(project):
    ws = Workspace.open(project("ws"))
    assert sorted(ws.members) == ["ws-app", "ws-core", "ws-lib", "ws-other"]
    assert ws.root_project is None
    # a virtual root syncs every member, as a bare `uv sync` does
    assert ws.select() == ("ws-app", "ws-core", "ws-lib", "ws-other")
    assert ws.local_closure(["ws-app"]) == ("ws-app", "ws-core", "ws-lib")
    assert ws.local_closure(["ws-lib"]) == ("ws-core", "ws-lib")
    assert ws.local_closure(["ws-other"]) == ("ws-other",)
    assert ws.members["ws-app"].scripts == {"ws-app": "app:main"}


def test_opened_at_a_member(project):
    root = project("ws")
    ws = Workspace.open(root / "packages" / "lib")
    assert ws.root == root
    assert ws.select() == ("ws-lib",)
    assert ws.select(["WS_Core"]) == ("ws-core",)  # names are normalised as uv does


def test_single_project(project):
    ws = Workspace.open(project("hello-web"))
    assert ws.select() == ("hello-web",)
    assert ws.python_version_file() == "3.12"
    assert str(ws.requires_python) == ">=3.11"


def test_config_is_overlaid_member_over_root(project):
    root = project("ws")
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text()
        + '\n[tool.uvship]\nvenv-path = "/srv/a"\npython-path = "/srv/py"\n')
    app = root / "packages" / "app" / "pyproject.toml"
    app.write_text(app.read_text() + '\n[tool.uvship]\nvenv-path = "/srv/app"\n')
    assert Workspace.open(root / "packages" / "app").config() == {
        "venv-path": "/srv/app", "python-path": "/srv/py"}
    assert Workspace.open(root).config() == {"venv-path": "/srv/a", "python-path": "/srv/py"}


def test_unparsable_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project\nname = 'x'\n")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    with pytest.raises(InputError, match=r"pyproject.toml: not valid TOML"):
        Workspace.open(tmp_path)


def test_member_without_lock_in_workspace(project, tmp_path):
    root = project("ws")
    (root / "uv.lock").unlink()
    with pytest.raises(InputError, match=r"no uv\.lock"):
        Workspace.open(root / "packages" / "app")
