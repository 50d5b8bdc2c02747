"""Options: [tool.uvship] sets every option, the command line overrides, bad values are refused."""

from __future__ import annotations

from dataclasses import fields

import pytest

from uvship.errors import InputError
from uvship.project.plan import Options, make_plan
from uvship.project.workspace import Workspace


def test_every_option_can_be_set_in_pyproject():
    cfg = {
        "package": ["a"], "all-packages": True, "extra": "x", "all-extras": True,
        "group": ["g"], "python": "3.12", "python-path": "/p", "venv-path": "/v",
        "mode": "system", "compile": False, "strip": True, "exclude": ["pkg/data/**"],
        "platform": "linux/arm64", "libc": "musl",
        "base": "oci:/b", "entrypoint": "app", "cmd": ["--port", "80"], "env": ["A=1"],
        "label": ["team=x"], "user": "1000", "workdir": "/srv", "compression": "zstd",
        "tag": ["app:1"], "push": ["registry.example/app:1"],
        "cache-repo": "registry.example/cache", "insecure-registry": ["registry.example"],
        "command": "gunicorn app:wsgi", "build-steps": ["python manage.py check"],
        "project-files": True, "relocatable": True,
    }
    assert {k.replace("-", "_") for k in cfg} == {f.name for f in fields(Options)}
    opts = Options.from_config(cfg, "pyproject.toml")
    assert opts.package == ("a",) and opts.extra == ("x",) and opts.mode == "system"
    assert opts.compile is False and opts.python_path == "/p"
    assert opts.command == ("gunicorn", "app:wsgi")  # split as a shell would, not run by one
    assert opts.build_steps == ("python manage.py check",) and opts.project_files is True
    assert opts.relocatable is True


def test_command_line_overrides_config():
    opts = Options.from_config({"venv-path": "/from/config", "compile": False}, "p")
    over = opts.override(venv_path="/from/cli", compile=None, package=[], python=None)
    assert over.venv_path == "/from/cli"
    assert over.compile is False  # not given on the command line: config stays


@pytest.mark.parametrize("cfg, message", [
    ({"compile": "yes"}, r"\[tool.uvship\] compile: expected true or false, found 'yes'"),
    ({"group": [1]}, r"expected a string or a list of strings"),
    ({"venv_pth": "/x"}, r"unknown key 'venv_pth'"),
    ({"command": ""}, r"\[tool.uvship\] command: expected a command, found an empty one"),
    ({"command": "gunicorn 'app"}, r"command \"gunicorn 'app\": expected a command line"),
    ({"command": 3}, r"command: expected a string or a list of strings, found 3"),
    ({"project-files": "auto"}, r"project-files: expected true or false"),
])
def test_bad_config_values(cfg, message):
    with pytest.raises(InputError, match=message):
        Options.from_config(cfg, "pyproject.toml")


def test_plan_checks_paths_and_members(project):
    ws = Workspace.open(project("ws"))
    plan = make_plan(ws, Options(package=("ws-app",)))
    assert plan.selected == ("ws-app",)
    assert plan.local_members == ("ws-core", "ws-lib")
    assert plan.platform == "linux/amd64"
    with pytest.raises(InputError, match="expected an absolute path"):
        make_plan(ws, Options(venv_path="relative/venv"))
    with pytest.raises(InputError, match="one inside the other"):
        make_plan(ws, Options(venv_path="/opt/python/venv"))
    with pytest.raises(InputError, match="no such package"):
        make_plan(ws, Options(package=("nope",)))
