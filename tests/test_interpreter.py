"""uvship.python.interpreter: a local CPython (--python PATH) as images and bundles ship it."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from uvship import oci
from uvship.oci._blobs import open_decompressed

from .conftest import TEST_PYTHON, needs_test_python, podman, uvship

pytestmark = needs_test_python


def _elf_files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with p.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def _with_symbols(files: list[Path]) -> list[str]:
    """The ELF files that still have a symbol table (.symtab): what `strip` removes."""
    out = []
    for p in files:
        with p.open("rb") as f:
            if ELFFile(f).get_section_by_name(".symtab") is not None:
                out.append(p.name)
    return out


def _interpreter_layer(layout: Path, res: dict, dest: Path) -> tuple[str, Path]:
    """The digest of the image's interpreter layer, and its files extracted under ``dest``."""
    (digest,) = [x["digest"] for x in res["layers"] if x["role"] == "interpreter"]
    (layer,) = [x for x in oci.read_layout(layout).layers if x.digest == digest]
    with open_decompressed(layer.path, layer.compression) as f, \
            tarfile.open(fileobj=f, mode="r|") as tar:
        tar.extractall(dest, filter="tar")
    return digest, dest


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.podman
def test_local_python_is_stripped_by_default(project, tmp_path):
    """--python PATH: the interpreter layer's ELF files have no symbol table and the layer
    is smaller than with --no-strip (or `strip = false`); the stripped image runs, and a
    bundle is stripped too."""
    src = project("conflict-a")
    tag = f"localhost/uvship-test/stripped:{uuid.uuid4().hex[:8]}"
    archive = tmp_path / "stripped.tar"
    layers = {}
    for how, args in (("default", ["-o", f"docker-archive:{archive}", "-t", tag]),
                      ("no-strip", ["--no-strip"])):
        proc = uvship("build", str(src), "--python", str(TEST_PYTHON), "--json",
                      "-o", f"oci:{tmp_path / how}", *args)
        assert proc.returncode == 0, proc.stderr
        layers[how] = _interpreter_layer(tmp_path / how, json.loads(proc.stdout),
                                         tmp_path / f"tree-{how}")
    stripped, unstripped = (_elf_files(layers[h][1]) for h in ("default", "no-strip"))
    assert stripped and _with_symbols(stripped) == []
    assert any(p.name.startswith("python3.12") for p in stripped)  # the interpreter itself
    assert "python3.12" in _with_symbols(unstripped)
    assert _size(layers["default"][1]) < _size(layers["no-strip"][1])
    # `strip = false` in [tool.uvship] keeps the symbols as --no-strip does
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text() + "\n[tool.uvship]\nstrip = false\n")
    proc = uvship("build", str(src), "--python", str(TEST_PYTHON), "--json",
                  "-o", f"oci:{tmp_path / 'config'}")
    assert proc.returncode == 0, proc.stderr
    interp = [x["digest"] for x in json.loads(proc.stdout)["layers"]
              if x["role"] == "interpreter"]
    assert interp == [layers["no-strip"][0]]
    # the stripped image runs
    podman("load", "-q", "-i", archive)
    try:
        out = podman("run", "--rm", "--pull=never", tag).stdout
    finally:
        podman("rmi", "-f", tag, check=False)
    assert out.strip() == "conflict-a idna=3.7 prefix=/app/.venv"
    # a bundle (its interpreter prepared as the image's, stripped by default)
    pp.write_text(pp.read_text().replace("strip = false", ""))
    proc = uvship("bundle", str(src), "--python", str(TEST_PYTHON), "-o", str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr
    in_bundle = _elf_files(tmp_path / "b" / "opt" / "python")
    assert in_bundle and _with_symbols(in_bundle) == []
