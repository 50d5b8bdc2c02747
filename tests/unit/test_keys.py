"""The tiers' cache keys (stage/keys.py): each changes exactly when what decides its bytes
does. Computed on hand-written workspaces; uv's version is a constant here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from uvship import uv
from uvship.project.plan import Options, make_plan
from uvship.project.workspace import Workspace
from uvship.python.interpreter import Interpreter
from uvship.stage.keys import source_files, third_party, tier_keys

from .lockfiles import package, project, workspace

INTERP = Interpreter(root=Path("/opt/python"), executable="bin/python3.12", version=(3, 12, 4),
                     source="managed", origin="test", libc="glibc", min_glibc="2.17",
                     machine="x86_64", key="interp-key")


@pytest.fixture(autouse=True)
def _uv_version(monkeypatch):
    monkeypatch.setattr(uv, "uv_version", lambda: "0.13.0")


def _lock(*, requests="2.32.3", tool_extra="0.1") -> list[str]:
    """app (root) needs lib (a member) and requests; lib needs web[fast], whose extra fast
    brings a local plugin; web's extra slow brings a package nothing installs."""
    return [
        package("app", source='editable = "."',
                dependencies='{ name = "lib" }, { name = "requests" }'),
        package("lib", source='editable = "libs/lib"',
                dependencies='{ name = "web", extra = ["fast"] }'),
        package("requests", requests, wheels=(f"requests-{requests}-py3-none-any.whl",)),
        package("web", optional={"fast": '{ name = "plugin" }', "slow": '{ name = "tool" }'}),
        package("plugin", source='directory = "libs/plugin"'),
        package("tool", tool_extra),
    ]


@pytest.fixture
def tree(tmp_path) -> Path:
    project(tmp_path, "app", body='\n[tool.uv.workspace]\nmembers = ["libs/lib"]\n')
    project(tmp_path / "libs" / "lib", "lib")
    project(tmp_path / "libs" / "plugin", "plugin")
    workspace(tmp_path, _lock())
    return tmp_path


def keys(root: Path, **options) -> dict[str, str]:
    ws = Workspace.open(root)
    return tier_keys(ws, make_plan(ws, Options(**options)), INTERP)


def test_the_walk_gives_the_third_party_set_and_the_local_members(tree):
    ws = Workspace.open(tree)
    plan = make_plan(ws, Options())
    assert third_party(ws, plan) == ["requests", "web"]
    assert plan.local_members == ("lib", "plugin")


def test_keys_are_stable(tree):
    first = keys(tree)
    assert first == keys(tree)
    assert len(set(first.values())) == 3


def _write(rel: str, text: str = "X = 1\n"):
    def edit(tree: Path) -> None:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    return edit


ALL = {"dependencies", "local", "project"}
EDITS = {
    # the tiers chain: each key holds the one below it
    "a third-party lock entry": (lambda tree: workspace(tree, _lock(requests="2.32.4")), ALL),
    # tool is only in an extra no edge asks for
    "a package nothing installs": (lambda tree: workspace(tree, _lock(tool_extra="0.2")), set()),
    "a member's source": (_write("libs/lib/src/lib/__init__.py"), {"local", "project"}),
    "a local package an edge extra brings": (_write("libs/plugin/src/plugin/extra.py"),
                                             {"local", "project"}),
    "the project's source": (_write("src/app/main.py"), {"project"}),
    # caches, environments, build output and VCS data are no part of a source tree
    "files that are no source": (lambda tree: [_write(rel)(tree) for rel in (
        "src/app/__pycache__/x.cpython-312.pyc", ".venv/pyvenv.cfg", "dist/app.whl",
        "libs/lib/.git/HEAD", "libs/lib/uv.lock")], set()),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_changes_exactly_the_keys_of_the_tiers_it_decides(tree, edit):
    change, changed = EDITS[edit]
    before = keys(tree)
    change(tree)
    after = keys(tree)
    assert {t for t in before if after[t] != before[t]} == changed


def test_source_files_leave_nested_members_out(tree):
    """The root project's tree holds libs/lib, a member of its own: not the root's files."""
    files = source_files(Workspace.open(tree), "app")
    assert "src/app/__init__.py" in files
    assert "pyproject.toml" in files
    assert not any(f.startswith("libs/lib/") for f in files), sorted(files)
    assert files["src/app/__init__.py"] == hashlib.sha256(b"NAME = 'app'\n").hexdigest()


def test_a_build_option_changes_every_key(tree):
    before = keys(tree)
    after = keys(tree, venv_path="/srv/venv")
    assert all(after[t] != before[t] for t in before)
