"""command: one meaning for what runs, resolved against a real staged bin/ directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvship.errors import InputError
from uvship.project.command import Layout, check_form, examples_from, resolve, split_assignments

TRAMPOLINE = (b"#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")\"/'python' \"$0\" "
              b"\"$@\"\n' '''\nimport sys\n")


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gunicorn").write_bytes(TRAMPOLINE)  # a console script, relocatable form
    (bin_dir / "old-style").write_bytes(b"#!/app/.venv/bin/python\nimport sys\n")
    (bin_dir / "ruff").write_bytes(b"\x7fELF\x02\x01\x01")  # a binary a wheel installs
    for junk in ("activate", "activate.fish", "python", "python3", "pip", "deactivate.bat"):
        (bin_dir / junk).write_bytes(b"")
    return Layout(python="/app/.venv/bin/python", bin_dir="/app/.venv/bin",
                  interpreter_dir="/opt/python", workdir="/app/web", app_dir="/app",
                  staged_bin=bin_dir, known_scripts=frozenset({"mine"}),
                  files=frozenset({"web/manage.py", "web/run.sh", "app.py"}), scratch=True)


@pytest.mark.parametrize("words,want", [
    (("python", "-m", "pkg"), ["/app/.venv/bin/python", "-m", "pkg"]),
    (("python3.12", "x.py"), ["/app/.venv/bin/python", "x.py"]),
    (("gunicorn", "a:b"), ["/app/.venv/bin/python", "/app/.venv/bin/gunicorn", "a:b"]),
    (("old-style",), ["/app/.venv/bin/python", "/app/.venv/bin/old-style"]),
    (("ruff", "check"), ["/app/.venv/bin/ruff", "check"]),  # not Python: run as it is
    (("mine",), ["/app/.venv/bin/python", "/app/.venv/bin/mine"]),  # the project's own
    (("/app/.venv/bin/python",), ["/app/.venv/bin/python"]),
    (("/app/.venv/bin/gunicorn",), ["/app/.venv/bin/python", "/app/.venv/bin/gunicorn"]),
    (("/opt/python/bin/python3.12", "-V"), ["/opt/python/bin/python3.12", "-V"]),
    (("./manage.py", "check"), ["/app/.venv/bin/python", "/app/web/manage.py", "check"]),
    (("./run.sh",), ["/app/web/run.sh"]),  # relative to the working directory
    (("../app.py",), ["/app/.venv/bin/python", "/app/app.py"]),
    (("/app/app.py",), ["/app/.venv/bin/python", "/app/app.py"]),
])
def test_resolved_in_the_environment(layout, words, want):
    assert resolve(words, layout, "command") == want


@pytest.mark.parametrize("words,message", [
    (("gunicron", "a:b"), "command 'gunicron a:b': no program 'gunicron' in the environment's "
                          "bin/ (found: gunicorn, mine, old-style, ruff; expected `python`"),
    (("/bin/sh", "-c", "x"), "command '/bin/sh -c x': /bin/sh is not in the image"),
    (("./missing.py",), "command './missing.py': no file /app/web/missing.py among the "
                        "project's files shipped to /app"),
    (("A=1", "python"), "command 'A=1 python': starts with an environment assignment (A=1)"),
])
def test_what_cannot_run_is_named(layout, words, message):
    with pytest.raises(InputError) as exc:
        resolve(words, layout, "command", examples=["python -m web"])
    assert exc.value.message.startswith(message), exc.value.message
    assert exc.value.hint is not None


def test_a_base_image_may_hold_other_programs(layout):
    from dataclasses import replace

    assert resolve(("/bin/sh", "-c", "x"), replace(layout, scratch=False), "command") == [
        "/bin/sh", "-c", "x"]


def test_names_wait_for_the_environment_before_it_is_staged(layout):
    from dataclasses import replace

    early = replace(layout, staged_bin=None)
    assert resolve(("uvicorn", "a:b"), early, "command") == ["/app/.venv/bin/uvicorn", "a:b"]
    assert resolve(("mine",), early, "command") == ["/app/.venv/bin/python",
                                                    "/app/.venv/bin/mine"]


def test_assignments_and_form():
    assert split_assignments(["A=1", "B=x y", "python", "C=3"]) == (
        {"A": "1", "B": "x y"}, ["python", "C=3"])
    with pytest.raises(InputError, match="expected a command, found an empty one"):
        check_form((), "command")


def test_examples_come_from_the_project(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "__main__.py").write_text("print('x')\n")
    (tmp_path / "app.py").write_text("if __name__ == '__main__':\n    pass\n")
    (tmp_path / "lib.py").write_text("X = 1\n")
    got = examples_from(tmp_path, ["web/__main__.py", "app.py", "lib.py"], ["pkg_x"])
    assert got == ["python app.py", "python -m web", "python -m pkg_x"]
