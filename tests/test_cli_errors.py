"""Bad input: one clear error naming the input, a non-zero exit, and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import interrupt_while_staging, uvship

OTHER_PYTHON = next(
    (p for p in sorted(Path("/root/.pyenv/versions").glob("3.10.*/bin/python3.10"))), None
)


def assert_error(proc, *fragments: str, code: int = 1, after: tuple[str, ...] = ()) -> None:
    """Exit code, an empty stdout and an `error:` on stderr naming every fragment; no traceback.

    ``after``: the progress lines that come first, each starting with one of these (the
    error is found once some work was needed to find it)."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines(keepends=True)
    while lines and after and lines[0].startswith(after):
        lines.pop(0)
    err = "".join(lines)
    assert err.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    flat = " ".join(err.split())
    for f in fragments:
        assert " ".join(f.split()) in flat, (f, proc.stderr)


def left_in(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_no_pyproject(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out.tar.gz"
    proc = uvship("bundle", str(tmp_path / "empty"), "-o", str(out))
    assert_error(proc, f"{tmp_path / 'empty'}: no pyproject.toml", "hint:")
    assert not out.exists()


def test_no_lock(project, tmp_path):
    src = project("hello-web")
    (src / "uv.lock").unlink()
    proc = uvship("bundle", str(src), "-o", str(tmp_path / "o.tar.gz"))
    assert_error(proc, f"{src}: no uv.lock", "hint: run `uv lock`")
    assert left_in(tmp_path) == ["hello-web"]


def test_stale_lock(project, managed_python, tmp_path):
    src = project("hello-web")
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text().replace('"uvicorn>=0.29,<1",', '"uvicorn>=0.29,<1", "six",'))
    proc = uvship("bundle", str(src), "-o", str(tmp_path / "o.tar.gz"))
    # uv checks the lock with the build's interpreter: the Python is chosen and prepared first
    assert_error(proc, f"{src / 'uv.lock'}: the lock file is out of date with pyproject.toml",
                 "hint: run `uv lock`", after=(f"Python {managed_python} ",
                                              f"✓ installing CPython {managed_python} ",
                                              f"✓ preparing CPython {managed_python} "))
    assert left_in(tmp_path) == ["hello-web"]


def test_unknown_package(project, tmp_path):
    ws = project("ws")
    proc = uvship("bundle", str(ws), "--package", "nope", "-o", str(tmp_path / "o.tar.gz"))
    assert_error(proc, "--package nope: no such package in the workspace",
                 "expected one of: ws-app, ws-core, ws-lib, ws-other")


def test_python_version_outside_requires_python(project, tmp_path):
    src = project("hello-web")
    proc = uvship("bundle", str(src), "--python", "3.10", "-o", str(tmp_path / "o.tar.gz"))
    assert_error(proc, "--python 3.10: Python 3.10 is outside the project's requires-python >=3.11",
                 "hint:")


@pytest.mark.skipif(OTHER_PYTHON is None, reason="no local CPython 3.10")
def test_python_path_outside_requires_python(project, tmp_path):
    src = project("hello-web")
    proc = uvship("bundle", str(src), "--python", str(OTHER_PYTHON), "-o",
                  str(tmp_path / "o.tar.gz"))
    assert_error(proc, f"--python {OTHER_PYTHON}: Python 3.10.", "requires-python >=3.11")


@pytest.mark.parametrize("kind", ["true", "script", "missing"])
def test_python_that_is_not_cpython(project, tmp_path, kind):
    src = project("hello-web")
    if kind == "true":
        exe = Path("/bin/true")
    elif kind == "script":
        exe = tmp_path / "python3"
        exe.write_text("#!/bin/sh\necho 'Python 3.12.0'\n")
        exe.chmod(0o755)
    else:
        exe = tmp_path / "no-such-python"
    proc = uvship("bundle", str(src), "--python", str(exe), "-o", str(tmp_path / "o.tar.gz"))
    assert_error(proc, str(exe), "CPython")
    assert not (tmp_path / "o.tar.gz").exists()


@pytest.mark.parametrize("where", ["parent-is-file", "no-parent", "proc"])
def test_unwritable_output(project, tmp_path, where):
    src = project("hello-web")
    if where == "parent-is-file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "b.tar.gz"
    elif where == "no-parent":
        out = tmp_path / "missing" / "b.tar.gz"
    else:
        out = Path("/proc/uvship-test/b.tar.gz")
    proc = uvship("bundle", str(src), "-o", str(out))
    assert_error(proc, f"--output {out}")
    assert not out.exists()


def test_refuses_to_replace_a_directory_that_is_not_a_bundle(project, tmp_path):
    src = project("hello-web")
    out = tmp_path / "precious"
    out.mkdir()
    (out / "data.txt").write_text("keep me")
    proc = uvship("bundle", str(src), "-o", str(out))
    assert_error(proc, f"--output {out}: the directory exists and is not a uvship bundle")
    assert (out / "data.txt").read_text() == "keep me"


def test_a_build_with_nowhere_to_go_is_a_clear_error(project, tmp_path):
    """No output and no push: one error that says what to give (it once surfaced as an
    "unexpected failure" with a bug-report hint); and a compression from pyproject.toml
    that is not gzip or zstd, which the command line's choice never checks."""
    src = project("hello-web")
    proc = uvship("build", str(src))
    assert_error(proc, "nothing to write: no --output and no --push",
                 "hint: give --output oci:DIR (or another output) and/or --push REF")
    assert "unexpectedly" not in proc.stderr
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text() + '\n[tool.uvship]\ncompression = "xz"\n')
    proc = uvship("build", str(src), "-o", f"oci:{tmp_path / 'lay'}")
    assert_error(proc, "compression 'xz': expected gzip or zstd")
    assert not (tmp_path / "lay").exists()


def test_bad_tool_uvship_config(project, tmp_path):
    src = project("hello-web")
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text() + '\n[tool.uvship]\nvenv-path = "/srv/v"\nfrobnicate = true\n')
    proc = uvship("bundle", str(src), "-o", str(tmp_path / "o.tar.gz"))
    assert_error(proc, f"{pp}: unknown key 'frobnicate' in [tool.uvship]", "venv-path")


def test_ctrl_c_mid_build_leaves_nothing(project, managed_python, tmp_path):
    src = project("hello-web")
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "b.tar.gz"
    cache = tmp_path / "fresh-cache"  # nothing cached: the build has real work to do
    stdout, stderr = interrupt_while_staging(["bundle", str(src), "-o", str(out)], cache)
    assert stdout == ""
    assert "error: cancelled; nothing was written to the output" in stderr
    assert "Traceback" not in stderr
    assert left_in(outdir) == []
    left = [str(p) for d in (cache / "tmp").glob("tiers-*") for p in d.rglob("*")][:20]
    assert list((cache / "tmp").glob("tiers-*")) == [], (left, stderr)


@pytest.mark.parametrize("name", ["uv.lock", "pyproject.toml"])
def test_binary_project_files(project, tmp_path, name):
    src = project("hello-web")
    (src / name).write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary")
    proc = uvship("bundle", str(src), "-o", str(tmp_path / "out.tar.gz"))
    assert_error(proc, f"{src / name}: not UTF-8 text (expected a TOML file; byte ")
    assert left_in(tmp_path) == ["hello-web"]


@pytest.fixture
def small_disk(tmp_path):
    """Factory: a tmpfs of ``size`` (e.g. "4m") mounted in tmp_path; unmounted afterwards."""
    import subprocess

    mounts: list[Path] = []

    def make(name: str, size: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       check=True)
        mounts.append(d)
        return d

    yield make
    for d in mounts:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_full_disk_for_the_cache_is_one_line(project, managed_python, tmp_path, small_disk):
    src = project("hello-web")
    cache = small_disk("cache", "3m")
    proc = uvship("bundle", str(src), "-o", str(tmp_path / "out.tar.gz"),
                  env={"UVSHIP_CACHE_DIR": str(cache)})
    assert_error(proc, "no space left on the device", f"uvship's cache is at {cache}",
                 after=("✓", "Python "))
    assert len(proc.stderr) < 2000, proc.stderr  # one line and a hint, never a list of files
    assert not (tmp_path / "out.tar.gz").exists()


def test_full_disk_for_the_output_leaves_nothing(project, managed_python, tmp_path,
                                                small_disk):
    src = project("hello-web")
    out_dir = small_disk("out", "1m")
    proc = uvship("bundle", str(src), "-o", str(out_dir / "app.tar.gz"))
    assert_error(proc, "no space left on the device", after=("✓", "Python "))
    assert left_in(out_dir) == []  # no half-written archive, no temporary file


def test_unexpected_failure_is_one_error_line(project, tmp_path):
    """A bug (injected: a fault the real code cannot be made to have) ends in one `error:`
    line with a bug-report hint, exit 1, nothing written; --debug shows the traceback."""
    import sys

    src = project("hello-web")
    inject = ("import sys, uvship.project.workspace as w\n"
              "def boom(*a, **k): raise RuntimeError('injected fault')\n"
              "w.Workspace.open = boom\n"
              "from uvship.cli.main import main\n"
              "sys.argv = ['uvship', *sys.argv[1:]]\n"
              "main()\n")
    from .conftest import run

    args = ["bundle", str(src), "-o", str(tmp_path / "out.tar.gz")]
    proc = run([sys.executable, "-c", inject, *args], check=False)
    assert_error(proc, "uvship failed unexpectedly: RuntimeError: injected fault; nothing was "
                       "written", "hint: this is a bug in uvship")
    debug = run([sys.executable, "-c", inject, "--debug", *args], check=False)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "error: uvship failed unexpectedly" in debug.stderr
    assert not (tmp_path / "out.tar.gz").exists()


def test_an_interrupt_never_leaves_a_child_running():
    """Ctrl-C that lands once a child has started but before the caller's own handler is
    in place (Popen's exit would only wait a moment and leave it running) still kills the
    child's whole group: a `uv venv` left running once wrote a venv back into a staging
    directory after the cleanup had removed it."""
    import os
    import subprocess

    from uvship._proc import _GroupPopen

    started = []
    with pytest.raises(KeyboardInterrupt):
        with _GroupPopen(["sh", "-c", "sleep 30 & sleep 30"], start_new_session=True,
                         stdout=subprocess.DEVNULL) as p:
            started.append(p.pid)
            with pytest.raises(subprocess.TimeoutExpired):
                p.wait(timeout=0.2)
            raise KeyboardInterrupt
    with pytest.raises(ProcessLookupError):  # the group, the background sleep included
        os.killpg(started[0], 0)
