"""The no-change path: an unchanged rebuild is answered from a stamp of every file the last
build read and wrote; any change to them, or to the command or its environment, builds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, uvship

NOTE = "no change since the last build"


def build(src: Path, *args: str, env: dict | None = None):
    proc = uvship("build", str(src), *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def built(project, managed_python, tmp_path):
    src = project("hello-web")
    out = tmp_path / "lay"
    first = build(src, "-o", f"oci:{out}", "--json")
    assert NOTE not in first.stderr
    return src, out, json.loads(first.stdout)


def test_an_unchanged_rebuild_is_answered_as_a_build_would_answer(built):
    src, out, first = built
    index = (out / "index.json").stat().st_mtime_ns
    again = build(src, "-o", f"oci:{out}", "--json")
    assert NOTE in again.stderr
    # what a real build says of an up-to-date output, and nothing rewritten
    real = build(src, "-o", f"oci:{out}", "--json", env={"UVSHIP_NO_STAMP": "1"})
    assert NOTE not in real.stderr
    assert json.loads(again.stdout) == json.loads(real.stdout) == {**first, "written": []}
    assert (out / "index.json").stat().st_mtime_ns == index


@pytest.mark.parametrize("change", ["edit", "new-file", "output", "env", "option"])
def test_any_change_builds(built, change):
    src, out, first = built
    args = ["-o", f"oci:{out}", "--json"]
    env = None
    if change == "edit":
        init = src / "src" / "hello_web" / "__init__.py"
        init.write_text(init.read_text().replace("hello from uvship", "hello, changed"))
    elif change == "new-file":
        (src / "src" / "hello_web" / "extra.py").write_text("X = 1\n")
    elif change == "output":  # a blob of the output removed: the build writes it again
        blob = next(p for p in (out / "blobs" / "sha256").iterdir()
                    if p.stat().st_size > 1_000_000)
        blob.unlink()
    elif change == "env":
        env = {"SOURCE_DATE_EPOCH": "1700000000"}
    else:
        args += ["--label", "team=x"]
    again = build(src, *args, env=env)
    assert NOTE not in again.stderr
    res = json.loads(again.stdout)
    if change == "output":
        assert res["digest"] == first["digest"] and res["written"], res
        assert (out / "blobs" / "sha256" / blob.name).is_file()
    else:
        assert res["digest"] != first["digest"], change
    # and the next run, with nothing changed since, is answered from the new stamp
    assert NOTE in build(src, *args, env=env).stderr


def test_a_rebuild_after_an_edit_runs_the_kept_parse_without_click(built):
    """The stamp keeps the command's parameters as click parsed them: after an edit, the
    same command line (same directory, environment and uvship) builds with them, without
    importing click, and answers as a parsed run does."""
    src, out, first = built
    init = src / "src" / "hello_web" / "__init__.py"
    init.write_text(init.read_text().replace("hello from uvship", "hello, replayed"))
    env = {**__import__("os").environ, "COLUMNS": "200"}  # as conftest.uvship runs it
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "uvship", "build",
                           str(src), "-o", f"oci:{out}", "--json"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    # (run_build itself is imported by import_module, which -X importtime does not show)
    assert {"uvship.cli.running", "uvship.image.assemble"} <= imported, proc.stderr
    assert not {m for m in imported if m == "click" or m.startswith("click.")}, proc.stderr
    replayed = json.loads(proc.stdout)
    assert replayed["digest"] != first["digest"] and replayed["written"] == [f"oci:{out}"]
    # what click's parse of the same line builds and says
    parsed = build(src, "-o", f"oci:{out}", "--json", env={"UVSHIP_NO_STAMP": "1"})
    assert json.loads(parsed.stdout) == {**replayed, "written": []}


def test_outputs_this_host_cannot_check_are_always_built(built):
    src = built[0]
    # stdout: a stream is written every time
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "uvship", "build", str(src), "-o",
                               "docker-archive:-"], capture_output=True, cwd=ROOT)
        assert proc.returncode == 0 and NOTE.encode() not in proc.stderr, proc.stderr
        assert proc.stdout.startswith(b"blobs/") or len(proc.stdout) > 1_000_000


def test_a_copied_project_is_built_not_replayed(built, tmp_path):
    """The stamp is of paths and files: the same command over another checkout builds."""
    src, out, first = built
    other = tmp_path / "other"
    shutil.copytree(src, other)
    shutil.rmtree(src)
    other.rename(src)  # same path, new files
    again = build(src, "-o", f"oci:{out}", "--json")
    assert NOTE not in again.stderr
    assert json.loads(again.stdout)["digest"] == first["digest"]


def test_a_bundle_rebuilt_with_no_change_is_answered_too(project, managed_python, tmp_path):
    src = project("hello-web")
    out = tmp_path / "app.tar.gz"
    first = build_bundle(src, out)
    assert NOTE not in first.stderr
    mtime = out.stat().st_mtime_ns
    again = build_bundle(src, out)
    assert NOTE in again.stderr and json.loads(again.stdout) == json.loads(first.stdout)
    assert out.stat().st_mtime_ns == mtime  # not written again
    out.unlink()  # the output gone: a real bundle again
    third = build_bundle(src, out)
    assert NOTE not in third.stderr and out.is_file()
    assert json.loads(third.stdout)["sha256"] == json.loads(first.stdout)["sha256"]


def build_bundle(src: Path, out: Path):
    proc = uvship("bundle", str(src), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return proc
