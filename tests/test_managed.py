"""uvship.python.managed: the one uv-managed CPython a build gets, whatever is installed.

The version comes from uv's download list (here: a list made of pyenv's 3.12 and 3.13),
never from what happens to be installed; the lock is checked with it once it exists.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from uvship import uv
from uvship.errors import CommandError, InputError
from uvship.progress import NullProgress
from uvship.python import managed
from uvship.python.managed import Wanted

from .conftest import NEWER_PYTHON, PROJECTS, run, uvship

CHOSEN = "the newest stable CPython in uv"
# PATH without pyenv's shims: uv must not find a Python of the search path that the
# managed installs lack (uvship's own tools still run)
NO_PYENV_PATH = ":".join(p for p in os.environ["PATH"].split(":") if ".pyenv" not in p)


def wanted(request: str | None = None, spec: str | None = ">=3.11", machine: str = "x86_64",
           target: str = "linux/amd64") -> Wanted:
    return Wanted(request, f"--python {request}" if request else f"requires-python {spec}",
                  SpecifierSet(spec) if spec else None, machine, "glibc", target)


@pytest.fixture
def two_pythons(monkeypatch, two_python_downloads, tmp_path) -> dict[str, str]:
    """uv offers 3.12 and 3.13; this test's managed installs are its own (empty)."""
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL",
                       two_python_downloads["UV_PYTHON_DOWNLOADS_JSON_URL"])
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "installs"))
    return two_python_downloads


def project_requiring(tmp_path: Path, uv_bin: str, spec: str) -> Path:
    """A locked project with no dependencies and requires-python ``spec`` (locked with a
    local CPython 3.13, which uv does not otherwise see)."""
    src = tmp_path / "needs-new"
    shutil.copytree(PROJECTS / "no-script", src)
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text().replace('requires-python = ">=3.11"',
                                         f'requires-python = "{spec}"'))
    run([uv_bin, "lock", "-q", "--no-python-downloads", "--python", NEWER_PYTHON], cwd=src)
    return src


def _layer_notes(res: dict) -> list[str]:
    return [layer["created_by"] for layer in res["layers"]]


# ---------------------------------------------------------------------- the rule
def test_newest_in_the_download_list_that_fits(two_pythons, tmp_path):
    old, new = two_pythons["old"], two_pythons["new"]
    assert managed.choose(wanted(), tmp_path).version == new
    assert managed.choose(wanted("3.12"), tmp_path).version == old
    assert managed.choose(wanted(spec=">=3.11,<3.13"), tmp_path).version == old
    choice = managed.choose(wanted(spec=None), tmp_path)
    assert (choice.key, choice.minor) == (f"cpython-{new}-linux-x86_64-gnu", "3.13")
    with pytest.raises(InputError) as e:
        managed.choose(wanted(spec=">=3.14"), tmp_path)
    assert e.value.message.startswith("no interpreter for linux/amd64: uv ")
    assert f"has no CPython for linux-x86_64-gnu that satisfies requires-python >=3.14 " \
           f"(expected one; found {old}, {new})" in e.value.message
    assert "uvship pack-python" in (e.value.hint or "")
    # another machine: the list has no aarch64 CPython
    with pytest.raises(InputError, match=r"no interpreter for linux/arm64: .* found none"):
        managed.choose(wanted(machine="aarch64", target="linux/arm64"), tmp_path)


def test_a_remembered_choice_runs_no_uv_and_follows_the_download_list(
        two_pythons, python_downloads, monkeypatch, tmp_path):
    assert managed.choose(wanted(), tmp_path).version == two_pythons["new"]

    def no_uv(*args, **kw):  # the fault: any uv run fails
        raise CommandError("uv must not run", command=["uv"], returncode=1, stderr="")

    monkeypatch.setattr(uv, "run", no_uv)
    assert managed.choose(wanted(), tmp_path).version == two_pythons["new"]
    monkeypatch.undo()
    # another download list (environment), then the same file rewritten: chosen again
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL",
                       python_downloads["UV_PYTHON_DOWNLOADS_JSON_URL"])
    assert managed.choose(wanted(), tmp_path).version == two_pythons["old"]
    listing = tmp_path / "downloads.json"
    shutil.copy(two_pythons["UV_PYTHON_DOWNLOADS_JSON_URL"], listing)
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(listing))
    assert managed.choose(wanted(), tmp_path).version == two_pythons["new"]
    data = json.loads(listing.read_text())
    listing.write_text(json.dumps({k: v for k, v in data.items() if two_pythons["new"] not in k}))
    assert managed.choose(wanted(), tmp_path).version == two_pythons["old"]
    # a project's uv settings decide the list too
    monkeypatch.delenv("UV_PYTHON_DOWNLOADS_JSON_URL")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "uv.toml").write_text(f'python-downloads-json-url = "{listing}"\n')
    assert managed.choose(wanted(), proj).version == two_pythons["old"]


def test_the_exact_version_or_an_install_never_another_patch(two_python_downloads, monkeypatch,
                                                             tmp_path):
    """A foreign triple: the newest aarch64 CPython of the list, although an older patch is
    installed; uv cannot install it (the archive is missing): one error saying which, why,
    and what to do."""
    listing = json.loads(Path(two_python_downloads["UV_PYTHON_DOWNLOADS_JSON_URL"]).read_text())
    entry = next(iter(listing.values()))
    fake = {}
    for patch in (2, 9):
        key = f"cpython-3.11.{patch}-linux-aarch64-gnu"
        fake[key] = {**entry, "arch": {"family": "aarch64", "variant": None}, "minor": 11,
                     "patch": patch, "url": (tmp_path / f"missing-{patch}.tar.gz").as_uri()}
    (tmp_path / "downloads.json").write_text(json.dumps(fake))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(tmp_path / "downloads.json"))
    installs = tmp_path / "installs"
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(installs))
    older = installs / "cpython-3.11.2-linux-aarch64-gnu" / "bin" / "python3.11"
    older.parent.mkdir(parents=True)
    older.write_text("")  # an install of another patch, as uv names it
    w = wanted("3.11", machine="aarch64", target="linux/arm64")
    choice = managed.choose(w, tmp_path)
    assert choice.key == "cpython-3.11.9-linux-aarch64-gnu"
    with pytest.raises(InputError) as e:
        managed.find_or_install(choice, w, tmp_path, NullProgress())
    assert e.value.message.startswith(
        "no interpreter for linux/arm64: uv could not install Python 3.11.9 "
        "(cpython-3.11.9-linux-aarch64-gnu), the newest stable CPython in uv ")
    assert "for --python 3.11 within requires-python >=3.11" in e.value.message
    assert "uv python install cpython-3.11.9-linux-aarch64-gnu" in (e.value.hint or "")
    assert "--python X.Y" in (e.value.hint or "")


# ---------------------------------------------------------------------- builds
def test_same_python_and_digest_whatever_is_installed(two_pythons, project, uv_bin, tmp_path,
                                                      monkeypatch):
    """requires-python >=3.11 and no .python-version, built on two machines: one with only
    3.12 installed, one with only 3.13: the same interpreter, the same image digest; and
    `uvship dockerfile` names its minor version."""
    old, new = two_pythons["old"], two_pythons["new"]
    src = project("conflict-a")
    assert not (src / ".python-version").exists()
    digests, stderrs = [], []
    for n, installed in enumerate((old, new)):
        machine = tmp_path / f"machine-{n}"
        monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(machine / "installs"))
        monkeypatch.setenv("UVSHIP_CACHE_DIR", str(machine / "cache"))
        run([uv_bin, "python", "install", "--no-bin", "-q", installed])
        proc = uvship("build", str(src), "-o", f"oci:{machine / 'out'}", "--json")
        assert proc.returncode == 0, proc.stderr
        res = json.loads(proc.stdout)
        assert f"uvship: CPython {new} (managed) at /opt/python" in _layer_notes(res)
        digests.append(res["digest"])
        stderrs.append(proc.stderr)
        (machine / "docker").mkdir()
        proc = uvship("dockerfile", str(src), "-o", str(machine / "docker"), "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["python"] == "3.13"
    assert digests[0] == digests[1]
    for err in stderrs:  # the choice is said, and why
        flat = " ".join(err.split())
        assert f"Python {new} (cpython-{new}-linux-x86_64-gnu): {CHOSEN}" in flat
        assert f"for requires-python >=3.11 in {src / 'uv.lock'}" in flat


def test_build_and_dockerfile_agree_on_another_download_list(managed_python, project,
                                                             tmp_path):
    """uv offers only 3.12: `build` ships 3.12, and the Dockerfile says 3.12 too."""
    src = project("conflict-a")
    proc = uvship("build", str(src), "-o", f"oci:{tmp_path / 'out'}", "--json")
    assert proc.returncode == 0, proc.stderr
    notes = _layer_notes(json.loads(proc.stdout))
    assert f"uvship: CPython {managed_python} (managed) at /opt/python" in notes
    proc = uvship("dockerfile", str(src), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["python"] == managed_python.rsplit(".", 1)[0]


def test_lock_checked_once_the_interpreter_is_installed(two_pythons, uv_bin, tmp_path):
    """requires-python >=3.13 and only 3.12 installed: uvship installs 3.13 and checks the
    lock with it (uv alone finds no Python for the lock check)."""
    src = project_requiring(tmp_path, uv_bin, ">=3.13")
    run([uv_bin, "python", "install", "--no-bin", "-q", two_pythons["old"]])
    out = tmp_path / "app.tar.gz"
    proc = uvship("bundle", str(src), "-o", str(out), "--json", env={"PATH": NO_PYENV_PATH})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manifest"]["interpreter"]["version"] == two_pythons["new"]
    assert f"installing CPython {two_pythons['new']} with uv" in proc.stderr


def test_no_interpreter_is_not_a_stale_lock(managed_python, uv_bin, tmp_path):
    """requires-python >=3.13 and uv offers only 3.12: the error names the interpreter."""
    src = project_requiring(tmp_path, uv_bin, ">=3.13")
    out = tmp_path / "app.tar.gz"
    proc = uvship("bundle", str(src), "-o", str(out), env={"PATH": NO_PYENV_PATH})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: no interpreter for linux/amd64: uv "), proc.stderr
    assert (f"has no CPython for linux-x86_64-gnu that satisfies requires-python >=3.13 in "
            f"{src / 'uv.lock'} (expected one; found {managed_python})"
            ) in " ".join(proc.stderr.split())
    assert "lock" not in proc.stderr.replace(str(src / "uv.lock"), "")
    assert not out.exists()
