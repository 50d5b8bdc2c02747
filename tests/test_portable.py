"""Tests for uvship.python.portable: real interpreters copied, moved and run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin

from uvship.errors import InputError, UvshipError
from uvship.python.elf import is_libc_soname, iter_elf_files
from uvship.python.ldso import resolve_closure
from uvship.python.portable import PortablePython, inspect_python, make_portable

from .conftest import TEST_PYTHON

# the local CPython 3.12 the whole suite uses (pyenv's on these machines)
PYTHON = TEST_PYTHON or Path("/no/local/python3.12")
PYENV = PYTHON.parent.parent
DEBIAN = Path("/usr/bin/python3.11")
# What a program sees when started with `env -i`: no LD_LIBRARY_PATH, no PYTHON*.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
MODULES = "ssl, sqlite3, ctypes, zlib, bz2, lzma, decimal, json, readline, uuid, hashlib, curses"

needs_pyenv = pytest.mark.skipif(not PYTHON.exists(), reason="pyenv CPython 3.12.1 not here")
needs_debian = pytest.mark.skipif(not DEBIAN.exists(), reason="Debian's python3.11 not here")


def run(cmd: list, cwd: Path | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env or CLEAN_ENV,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: content, link target, and mode: what a byte-for-byte copy keeps."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", p.stat().st_mode & 0o7777)
        else:
            out[rel] = ("file", p.stat().st_mode & 0o7777, p.read_bytes())
    return out


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> tuple[PortablePython, Path]:
    """The pyenv 3.12 made portable, then moved elsewhere: (the result, its new root)."""
    if not PYTHON.exists():
        pytest.fail("no local CPython 3.12 (these machines have pyenv's)")
    base = tmp_path_factory.mktemp("portable")
    made = make_portable(PYTHON, base / "build" / "python")
    new_root = base / "elsewhere" / "py"
    new_root.parent.mkdir()
    os.rename(made.root, new_root)
    return made, new_root


def test_result_describes_the_copy(moved):
    made, _ = moved
    assert made.executable == Path("bin/python3.12")
    assert made.version == (3, 12, 1)
    assert made.libc == "glibc"
    assert made.machine == "x86_64"
    assert made.min_glibc is not None
    assert tuple(int(x) for x in made.min_glibc.split(".")) >= (2, 17)


def test_moved_copy_runs_with_a_clean_environment(moved):
    _, root = moved
    out = run(
        [
            root / "bin/python3",
            "-B",
            "-c",
            f"import sys, {MODULES}; print(sys.prefix); print(sys.base_prefix)",
        ],
        cwd=root.parent,
    )
    assert out.split() == [str(root), str(root)]
    # the relative links work too
    assert run([root / "bin/python", "-B", "-c", "print(1)"]).strip() == "1"


def test_sysconfig_works_in_the_copy(moved):
    _, root = moved
    code = (
        "import sysconfig; v = sysconfig.get_config_vars(); p = sysconfig.get_paths(); "
        "print(p['stdlib']); print(p['purelib']); print(v['EXT_SUFFIX'])"
    )
    stdlib, purelib, suffix = run([root / "bin/python3", "-B", "-c", code]).split()
    assert stdlib == str(root / "lib/python3.12")
    assert purelib == str(root / "lib/python3.12/site-packages")
    assert suffix == ".cpython-312-x86_64-linux-gnu.so"


def test_no_runpath_points_at_the_original_prefix(moved):
    _, root = moved
    for path, info in iter_elf_files(root):
        assert all(entry.startswith("$ORIGIN") for entry in info.runpath), (path, info.runpath)
    exe = dict(iter_elf_files(root / "bin"))[root / "bin/python3.12"]
    assert exe.runpath == ("$ORIGIN/../lib",)
    libssl = dict(iter_elf_files(root / "lib/libssl.so.3"))[root / "lib/libssl.so.3"]
    assert libssl.runpath == ("$ORIGIN",)
    (ssl_mod,) = (root / "lib/python3.12/lib-dynload").glob("_ssl.*.so")
    assert dict(iter_elf_files(ssl_mod))[ssl_mod].runpath == ("$ORIGIN/../..",)


def test_ldd_finds_every_non_libc_library_inside_the_copy(moved):
    _, root = moved
    files = [
        root / "bin/python3.12",
        *sorted((root / "lib").glob("*.so*")),
        *sorted((root / "lib/python3.12/lib-dynload").glob("*.so")),
    ]
    for f in files:
        if f.is_symlink():
            continue
        for line in run(["ldd", f]).splitlines():
            assert "not found" not in line, (f, line)
            assert "/root/.pyenv" not in line, (f, line)
            if "=>" in line:
                soname, target = (x.strip() for x in line.split("=>"))
                target = target.split(" (")[0]
                if not is_libc_soname(soname):
                    assert Path(target).resolve().is_relative_to(root), (f, line)


def test_pruned_and_kept(moved):
    _, root = moved
    stdlib = root / "lib/python3.12"
    for gone in ("test", "idlelib", "tkinter", "turtledemo"):
        assert not (stdlib / gone).exists(), gone
    assert not list(root.rglob("*.a")) and not list(root.rglob("*.o"))
    assert not list((stdlib / "lib-dynload").glob("_tkinter*"))
    assert not list((stdlib / "lib-dynload").glob("nis.*"))
    assert (root / "include/python3.12/Python.h").is_file()  # to build sources against
    assert list((stdlib / "site-packages").iterdir()) == []
    assert (stdlib / "ensurepip/__init__.py").is_file()
    (config,) = stdlib.glob("config-3.12-*")
    assert (config / "Makefile").is_file()
    assert sorted(p.name for p in (root / "bin").iterdir()) == ["python", "python3", "python3.12"]
    assert os.readlink(root / "bin/python3") == "python3.12"


def test_uv_venv_with_the_copy(moved, tmp_path: Path):
    _, root = moved
    venv = tmp_path / "venv"
    env = {
        **CLEAN_ENV,
        "HOME": str(tmp_path),
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path / "c"),
    }
    run([find_uv_bin(), "venv", "--python", root / "bin/python3", venv], env=env)
    assert f"home = {root / 'bin'}" in (venv / "pyvenv.cfg").read_text()
    out = run([venv / "bin/python", "-B", "-c", "import sys, ssl; print(sys.base_prefix)"])
    assert out.strip() == str(root)


def test_python_m_venv_with_the_copy(moved, tmp_path: Path):
    _, root = moved
    run([root / "bin/python3", "-m", "venv", "--without-pip", tmp_path / "v"])
    assert run(
        [tmp_path / "v/bin/python", "-c", "import sys; print(sys.base_prefix)"]
    ).strip() == str(root)


@pytest.mark.slow
def test_python_m_venv_installs_pip_from_the_kept_ensurepip(moved, tmp_path: Path):
    _, root = moved
    run([root / "bin/python3", "-m", "venv", tmp_path / "v"])
    assert "pip" in run([tmp_path / "v/bin/python", "-m", "pip", "--version"])


def _can_chroot() -> bool:
    return (
        os.geteuid() == 0
        and shutil.which("unshare") is not None
        and subprocess.run(["unshare", "--mount", "--fork", "true"], capture_output=True).returncode
        == 0
    )


@pytest.mark.skipif(not _can_chroot(), reason="needs root and unshare to chroot")
def test_copy_runs_in_a_root_holding_only_glibc(moved, tmp_path: Path):
    """The copy plus the glibc files the closure names, and nothing else: no host libraries."""
    _, root = moved
    jail = tmp_path / "jail"
    shutil.copytree(root, jail / "opt/py", symlinks=True)
    (jail / "proc").mkdir()  # $ORIGIN on the main executable is read from /proc/self/exe
    closure = resolve_closure([p for p, _ in iter_elf_files(jail / "opt/py")], include_libc=True)
    libdir = jail / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    for soname, path in closure.items():
        if not path.is_relative_to(jail):
            assert is_libc_soname(soname), soname  # all else was bundled
            shutil.copy(path, libdir / soname)
    (jail / "lib64").mkdir()
    shutil.copy(libdir / "ld-linux-x86-64.so.2", jail / "lib64/ld-linux-x86-64.so.2")
    code = f"import sys, {MODULES.replace(', curses', '')}; print(sys.prefix)"
    script = (
        f"mount --bind /proc {jail}/proc && exec chroot {jail} /opt/py/bin/python3 -B -c '{code}'"
    )
    assert run(["unshare", "--mount", "--fork", "sh", "-c", script]).strip() == "/opt/py"


@needs_pyenv
def test_rebuild_is_byte_identical_and_strip_shrinks_it(tmp_path: Path):
    a = make_portable(PYTHON, tmp_path / "a", strip=True)
    b = make_portable(PYTHON, tmp_path / "one/more/b", strip=True)
    assert snapshot(a.root) == snapshot(b.root)
    stripped = (a.root / "lib/libpython3.12.so.1.0").stat().st_size
    assert stripped < (PYENV / "lib/libpython3.12.so.1.0").stat().st_size
    assert (
        run([a.root / "bin/python3", "-B", "-c", f"import {MODULES}; print('ok')"]).strip() == "ok"
    )


@needs_pyenv
def test_strip_requested_but_absent(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    with pytest.raises(UvshipError, match="strip"):
        make_portable(PYTHON, tmp_path / "out", strip=True)
    assert list(tmp_path.iterdir()) == []


@needs_pyenv
def test_existing_destination_is_refused_and_left_alone(tmp_path: Path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        make_portable(PYTHON, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert (dest / "keep.txt").read_text() == "mine"


@needs_pyenv
def test_venv_python_resolves_to_its_base(tmp_path: Path):
    run([PYTHON, "-m", "venv", "--without-pip", tmp_path / "v"])
    info = inspect_python(tmp_path / "v/bin/python")
    assert info.is_venv
    assert info.prefix == tmp_path / "v"
    assert info.base_prefix == PYENV
    assert info.executable == PYTHON
    assert info.stdlib == PYENV / "lib/python3.12"
    assert info.ldlibrary == "libpython3.12.so" and info.enable_shared


@needs_debian
def test_debian_static_python(tmp_path: Path):
    info = inspect_python(DEBIAN)
    assert info.stdlib == Path("/usr/lib/python3.11")
    made = make_portable(DEBIAN, tmp_path / "build/py")
    root = tmp_path / "py"
    os.rename(made.root, root)
    assert not list((root / "lib").glob("libpython*"))  # linked into the executable
    assert (root / "lib/libexpat.so.1").is_file()  # pyexpat is built in: the binary needs it
    assert not (root / "lib/python3.11/EXTERNALLY-MANAGED").exists()
    code = (
        f"import sys, sysconfig, pyexpat, {MODULES}; sysconfig.get_config_vars(); "
        "print(sys.prefix); print(sysconfig.get_paths()['stdlib'])"
    )
    assert run([root / "bin/python3", "-B", "-c", code]).split() == [
        str(root),
        str(root / "lib/python3.11"),
    ]
    run([root / "bin/python3", "-m", "venv", "--without-pip", tmp_path / "v"])
    env = {
        **CLEAN_ENV,
        "HOME": str(tmp_path),
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path / "c"),
    }
    run([find_uv_bin(), "venv", "--python", root / "bin/python3", tmp_path / "uvv"], env=env)
    assert run(
        [tmp_path / "uvv/bin/python", "-c", "import ssl, sys; print(sys.base_prefix)"]
    ).strip() == str(root)


@pytest.mark.parametrize("what", ["missing", "directory", "not-executable", "true", "script"])
def test_not_a_python_is_an_input_error(tmp_path: Path, what: str):
    path = {
        "missing": tmp_path / "nope/python3",
        "directory": tmp_path,
        "not-executable": tmp_path / "python3",
        "true": Path("/bin/true"),
        "script": tmp_path / "python3",
    }[what]
    if what == "not-executable":
        path.write_text("#!/bin/sh\n")
    if what == "script":
        path.write_text("#!/bin/sh\necho 'Python 3.12.1'\n")
        path.chmod(0o755)
    with pytest.raises(InputError) as exc:
        inspect_python(path)
    assert str(path) in exc.value.message
    assert "expected a CPython interpreter" in exc.value.message
    assert "found" in exc.value.message
    with pytest.raises(InputError):
        make_portable(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_script_error_says_what_it_printed(tmp_path: Path):
    script = tmp_path / "python3"
    script.write_text("#!/bin/sh\necho 'not really'\n")
    script.chmod(0o755)
    with pytest.raises(InputError, match="printed 'not really'"):
        inspect_python(script)


@pytest.mark.skipif(
    not Path("/root/.pyenv/versions/2.7.18/bin/python2.7").exists(), reason="no Python 2.7 here"
)
def test_python2_is_refused_with_its_version():
    with pytest.raises(InputError, match=r"found CPython 2\.7\.18 \(too old"):
        inspect_python(Path("/root/.pyenv/versions/2.7.18/bin/python2.7"))


def test_inspect_the_running_interpreter():
    info = inspect_python(Path(sys.executable))
    assert info.version == tuple(sys.version_info[:3])
    assert info.implementation == "cpython"
    assert info.base_prefix == Path(sys.base_prefix)
    assert info.executable.is_file() and not info.executable.is_symlink()
