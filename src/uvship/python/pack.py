"""Packing a local CPython as a uv-managed download: an install_only archive plus a download list.

uv installs Pythons it cannot download (an offline machine, a private build) from a
download list given by UV_PYTHON_DOWNLOADS_JSON_URL or `python-downloads-json-url`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import layers
from .._fs import atomic_file
from ..errors import InputError
from . import portable
from .bytecode import compile_files, python_files

_MACHINES = ("x86_64", "aarch64")  # the machines uv installs CPython for here


@dataclass(frozen=True)
class PackedPython:
    archive: Path
    downloads_json: Path
    key: str  # e.g. cpython-3.12.1-linux-x86_64-gnu
    version: str


def pack(
    python: Path, dest: Path, *, strip: bool = False, work: Path | None = None
) -> PackedPython:
    """Make ``python`` relocatable and write it to ``dest`` as a uv-installable download.

    ``dest`` gets the archive (one top-level ``python/`` directory, as python-build-standalone
    ships it) and ``downloads.json``; an existing list there is extended, not replaced.
    """
    dest.mkdir(parents=True, exist_ok=True)
    info = portable.inspect_python(python)
    major, minor, patch = info.version[:3]
    arch = info.machine
    if arch not in _MACHINES:
        raise InputError(f"{python}: machine {info.machine!r} is not supported "
                         "(expected x86_64 or aarch64)")
    with tempfile.TemporaryDirectory(dir=work or dest) as tmp:
        made = portable.make_portable(python, Path(tmp) / "python", strip=strip)
        # Ship bytecode as python-build-standalone does (co_filename under /install):
        # builds then only check it instead of compiling the standard library.
        tree = Path(tmp) / "python"
        # as python-build-standalone does: the prefix is /install, which uv rewrites to
        # wherever it installs the archive
        from .interpreter import rewrite_prefix

        rewrite_prefix(tree, [str(info.prefix), str(info.base_prefix)], "/install")
        compile_files(tree / made.executable, python_files([tree / "lib"]), strip=tree,
                      prefix="/install", emulator=getattr(made, "emulator", None),
                      minor=f"{major}.{minor}")
        libc = "musl" if made.libc == "musl" else "gnu"
        name = f"cpython-{major}.{minor}.{patch}-{arch}-unknown-linux-{libc}-install_only.tar.gz"
        archive = dest / name
        entries = layers.scan(Path(tmp) / "python", "python")
        with atomic_file(archive) as f:
            info_ = layers.write_tar(entries, f, compression="gzip")
    key = f"cpython-{major}.{minor}.{patch}-linux-{arch}-{libc}"
    listing_path = dest / "downloads.json"
    listing = json.loads(listing_path.read_text()) if listing_path.is_file() else {}
    listing[key] = {
        "name": "cpython", "arch": {"family": arch, "variant": None}, "os": "linux",
        "libc": libc, "major": major, "minor": minor, "patch": patch, "prerelease": "",
        "url": archive.absolute().as_uri(), "sha256": info_.digest.split(":", 1)[1],
        "variant": None, "build": "uvship",
    }
    tmp_json = listing_path.with_name(".downloads.json.tmp")
    tmp_json.write_text(json.dumps(listing, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_json, listing_path)
    return PackedPython(archive, listing_path, key, f"{major}.{minor}.{patch}")
