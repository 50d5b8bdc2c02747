"""Tests for uvship.python.ldso: the loader's rules, checked against the real ld.so."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from uvship.errors import InputError, UvshipError
from uvship.python.elf import is_glibc_soname
from uvship.python.ldso import resolve_closure, resolve_loads

from .test_elf import LIBPYTHON, PYTHON, _module, _patchelf, needs_pyenv

GCC = shutil.which("gcc")


def _gcc() -> str:
    assert GCC, "gcc is needed to make test libraries (scripts/setup-host installs it)"
    return GCC


def _lib(path: Path, *, needs: tuple[str, ...] = (), rpath: str | None = None,
         runpath: str | None = None, links: Path | None = None) -> Path:
    """A shared library at ``path`` (soname: its file name) that needs ``needs``, each
    found in ``links`` at link time, with a DT_RPATH or a DT_RUNPATH."""
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_suffix(".c")
    calls = "".join(f"  f_{_sym(n)}();\n" for n in needs)
    decls = "".join(f"void f_{_sym(n)}(void);\n" for n in needs)
    src.write_text(f"{decls}void f_{_sym(path.name)}(void) {{\n{calls}}}\n")
    cmd = [_gcc(), "-shared", "-fPIC", "-o", str(path), str(src), f"-Wl,-soname,{path.name}",
           "-Wl,--no-as-needed"]
    if links is not None:
        cmd += [f"-L{links}", *(f"-l:{n}" for n in needs)]
    if rpath is not None:
        cmd += ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{rpath}"]
    if runpath is not None:
        cmd += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
    subprocess.run(cmd, check=True, capture_output=True)
    src.unlink()
    return path


def _sym(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _loads_here(path: Path) -> str:
    """'' when this host's loader loads ``path`` (dlopen by path), else its error."""
    proc = subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])",
                           str(path)], capture_output=True, text=True)
    return "" if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]


def _package(tmp_path: Path, **module_paths: str) -> tuple[Path, Path, Path]:
    """An auditwheel-style package: pkg/mod.so loads pkg.libs/libouter.so.1, which loads
    pkg.libs/libinner.so.1 and has no search path of its own."""
    libs = tmp_path / "pkg.libs"
    inner = _lib(libs / "libinner.so.1")
    outer = _lib(libs / "libouter.so.1", needs=("libinner.so.1",), links=libs)
    mod = _lib(tmp_path / "pkg" / "mod.so", needs=("libouter.so.1",), links=libs,
               **module_paths)
    return mod, outer, inner


def test_rpath_of_the_loading_module_finds_what_its_libraries_need(tmp_path: Path):
    """psycopg-binary's and Pillow's layout: the module's DT_RPATH ($ORIGIN/../x.libs) is
    searched for the DT_NEEDED of the libraries it loads, which have none of their own."""
    mod, outer, inner = _package(tmp_path, rpath="$ORIGIN/../pkg.libs")
    assert _loads_here(mod) == ""
    closure = resolve_closure([mod, outer, inner])
    assert closure == {"libinner.so.1": inner, "libouter.so.1": outer}


def test_runpath_is_not_inherited(tmp_path: Path):
    mod, outer, inner = _package(tmp_path, runpath="$ORIGIN/../pkg.libs")
    assert "libinner.so.1: cannot open shared object file" in _loads_here(mod)
    loads = resolve_loads([mod, outer, inner])
    assert [(m.root, m.needer, m.soname) for m in loads.missing] == [
        (mod, outer, "libinner.so.1")]
    assert str(tmp_path / "pkg.libs") not in loads.missing[0].searched
    with pytest.raises(UvshipError) as exc:
        resolve_closure([mod, outer, inner])
    assert f"{outer}: needs shared library libinner.so.1" in exc.value.message
    assert f"from loading {mod}" in exc.value.message


def test_a_runpath_on_the_way_stops_the_inherited_rpath(tmp_path: Path):
    """An object with DT_RUNPATH searches no DT_RPATH of the chain for its own needs."""
    libs = tmp_path / "pkg.libs"
    inner = _lib(libs / "libinner.so.1")
    outer = _lib(libs / "libouter.so.1", needs=("libinner.so.1",), links=libs,
                 runpath="/nonexistent")
    mod = _lib(tmp_path / "pkg" / "mod.so", needs=("libouter.so.1",), links=libs,
               rpath="$ORIGIN/../pkg.libs")
    assert "libinner.so.1: cannot open shared object file" in _loads_here(mod)
    assert [m.soname for m in resolve_loads([mod, outer, inner]).missing] == ["libinner.so.1"]


def test_a_soname_already_loaded_is_reused(tmp_path: Path):
    """The module loads libinner itself (its DT_RUNPATH), before libouter asks for it."""
    libs = tmp_path / "pkg.libs"
    inner = _lib(libs / "libinner.so.1")
    outer = _lib(libs / "libouter.so.1", needs=("libinner.so.1",), links=libs)
    mod = _lib(tmp_path / "pkg" / "mod.so", needs=("libinner.so.1", "libouter.so.1"),
               links=libs, runpath="$ORIGIN/../pkg.libs")
    assert _loads_here(mod) == ""
    assert resolve_loads([mod, outer, inner]).missing == ()


def test_lib_and_platform_are_expanded(tmp_path: Path):
    diag = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--list-diagnostics"],
                          capture_output=True, text=True).stdout
    lib = re.search(r'^dl_dst_lib="(.*)"$', diag, re.M).group(1)  # type: ignore[union-attr]
    platform = re.search(r'^dl_platform="(.*)"$', diag, re.M).group(1)  # type: ignore[union-attr]
    inner = _lib(tmp_path / "pkg" / lib / "libinner.so.1")
    outer = _lib(tmp_path / "pkg" / "p" / platform / "libouter.so.1")
    shutil.copy(outer, inner.parent)  # to link against; then only where $PLATFORM says
    mod = _lib(tmp_path / "pkg" / "mod.so", needs=("libinner.so.1", "libouter.so.1"),
               links=inner.parent, runpath="$ORIGIN/$LIB:${ORIGIN}/p/${PLATFORM}")
    (inner.parent / "libouter.so.1").unlink()
    assert _loads_here(mod) == ""
    assert resolve_closure([mod]) == {"libinner.so.1": inner, "libouter.so.1": outer}


def test_keep_refuses_a_candidate_and_says_where_it_was(tmp_path: Path):
    mod = _lib(tmp_path / "mod.so", needs=("libz.so.1",), links=host_libz().parent)
    loads = resolve_loads([mod], keep=lambda soname, path: soname != "libz.so.1")
    (m,) = loads.missing
    assert (m.needer, m.soname) == (mod, "libz.so.1")
    assert [p.name for p in m.refused] == ["libz.so.1"]


@needs_pyenv
def test_closure_of_ssl_leaves_glibc_out():
    closure = resolve_closure([_module("_ssl")])
    assert set(closure) == {"libssl.so.3", "libcrypto.so.3"}
    assert all(p.is_absolute() and p.is_file() and not p.is_symlink() for p in closure.values())


@needs_pyenv
def test_closure_with_libc_includes_the_loader():
    closure = resolve_closure([PYTHON], include_libc=True)
    assert {"libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "libpython3.12.so.1.0"} <= set(
        closure
    )
    assert closure["libpython3.12.so.1.0"] == LIBPYTHON  # found through its absolute RUNPATH
    assert list(closure) == sorted(closure)


@needs_pyenv
def test_libcrypt_is_bundled_not_taken_for_glibc():
    assert not is_glibc_soname("libcrypt.so.1")
    assert is_glibc_soname("libpthread.so.0") and is_glibc_soname("ld-linux-aarch64.so.1")
    assert "libcrypt.so.1" in resolve_closure([_module("_crypt")])


@needs_pyenv
def test_closure_exclude_leaves_a_library_and_its_deps_out():
    closure = resolve_closure([_module("_ssl")], exclude=["libssl.so.3"])
    assert closure == {"libcrypto.so.3": closure["libcrypto.so.3"]}


@needs_pyenv
def test_closure_expands_origin(tmp_path: Path):
    host = resolve_closure([_module("_ssl")])
    for soname, path in host.items():
        shutil.copy(path, tmp_path / soname)
    (tmp_path / "mods").mkdir()
    mod = tmp_path / "mods" / "_ssl.so"
    shutil.copy(_module("_ssl"), mod)
    subprocess.run([_patchelf(), "--set-rpath", "$ORIGIN/..", mod], check=True)
    subprocess.run([_patchelf(), "--set-rpath", "$ORIGIN", tmp_path / "libssl.so.3"], check=True)
    closure = resolve_closure([mod])
    assert closure == {
        "libcrypto.so.3": tmp_path / "libcrypto.so.3",
        "libssl.so.3": tmp_path / "libssl.so.3",
    }


@needs_pyenv
def test_missing_library_names_file_and_soname(tmp_path: Path):
    mod = tmp_path / "_needy.so"
    shutil.copy(_module("_json"), mod)
    subprocess.run([_patchelf(), "--add-needed", "libuvshipmissing.so.7", mod], check=True)
    with pytest.raises(UvshipError) as exc:
        resolve_closure([mod])
    assert str(mod) in exc.value.message
    assert "libuvshipmissing.so.7" in exc.value.message
    assert exc.value.hint

    # extra_dirs are searched; a candidate of another machine is skipped as ld.so skips it
    extra = tmp_path / "extra"
    extra.mkdir()
    data = bytearray(Path(host_libz()).read_bytes())
    data[18:20] = (183).to_bytes(2, "little")
    (extra / "libuvshipmissing.so.7").write_bytes(bytes(data))
    with pytest.raises(UvshipError, match="libuvshipmissing"):
        resolve_closure([mod], extra_dirs=[extra])
    shutil.copy(host_libz(), extra / "libuvshipmissing.so.7")
    closure = resolve_closure([mod], extra_dirs=[extra])
    assert closure["libuvshipmissing.so.7"] == extra / "libuvshipmissing.so.7"


def host_libz() -> Path:
    return resolve_closure([_module("zlib")])["libz.so.1"]


def test_non_elf_input_to_closure_is_an_input_error(tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(InputError, match="not an ELF file"):
        resolve_closure([text])


