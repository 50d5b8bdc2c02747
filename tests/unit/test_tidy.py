"""What is taken out of a tier before it is kept (stage/tidy.py): exclude patterns, the
secrets rule, uv's bookkeeping, and the RECORD rows of what went; on hand-made
site-packages directories."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from pathlib import Path

import pytest

from uvship.stage.tidy import (
    NEVER_IN_PACKAGES,
    TRAMPOLINE,
    exclude_data_files,
    excluded,
    relocatable_shebangs,
    remove_junk,
)

SITE = "lib/python3.12/site-packages"


@pytest.mark.parametrize("path, patterns, expected", [
    ("pkg/fixtures/big.json", ("pkg/fixtures/**",), True),
    ("pkg/fixtures", ("pkg/fixtures",), True),
    ("pkg/fixtures2/x", ("pkg/fixtures",), False),
    ("pkg/data/a.md", ("**/*.md",), True),
    ("pkg/data/keep.md", ("**/*.md", "!pkg/data/keep.md"), False),
    ("pkg/data/keep.md", ("!pkg/data/keep.md", "**/*.md"), True),  # the later pattern wins
    ("pkg/.git/config", NEVER_IN_PACKAGES, True),
    ("pkg/.env", NEVER_IN_PACKAGES, True),
    ("pkg/.env.prod", NEVER_IN_PACKAGES, True),
    ("pkg/keys/id_ed25519.pub", NEVER_IN_PACKAGES, True),
    ("pkg/environment.py", NEVER_IN_PACKAGES, False),
    ("pkg/.env", (*NEVER_IN_PACKAGES, "!pkg/.env"), False),
])
def test_excluded(path, patterns, expected):
    assert excluded(path, patterns) is expected


def _dist(env: Path, name: str, files: dict[str, str]) -> Path:
    """A distribution installed in ``env``: its files and a dist-info whose RECORD lists
    them (and itself)."""
    site = env / SITE
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Name: {name}\nVersion: 1.0\n")
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    rows = [[rel, "sha256=x", "1"] for rel in files] + [[f"{info.name}/METADATA", "", ""],
                                                         [f"{info.name}/RECORD", "", ""]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (info / "RECORD").write_text(buf.getvalue())
    return info


def _record(info: Path) -> list[str]:
    return [r[0] for r in csv.reader(io.StringIO((info / "RECORD").read_text())) if r]


def test_excluded_files_of_new_distributions_go_with_their_record_rows(tmp_path):
    env = tmp_path / "env"
    old = _dist(env, "old", {"old/notes.md": "kept: installed by the tier below"})
    before = {f"{SITE}/{old.name}", f"{SITE}/{old.name}/RECORD", f"{SITE}/old/notes.md"}
    new = _dist(env, "app", {"app/__init__.py": "", "app/docs/guide.md": "", "app/.env": "SECRET=1",
                             "app/README.md": ""})
    # a hard link into a cached tier underneath: never written through
    (tmp_path / "cached-RECORD").hardlink_to(new / "RECORD")
    cached = (new / "RECORD").read_text()

    left_out = exclude_data_files(env, SITE, before, (*NEVER_IN_PACKAGES, "**/*.md"))

    site = env / SITE
    assert left_out == ["app/.env"]  # the secrets among what went
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()) == [
        "app-1.0.dist-info/METADATA", "app-1.0.dist-info/RECORD", "app/__init__.py",
        "old-1.0.dist-info/METADATA", "old-1.0.dist-info/RECORD", "old/notes.md"]
    assert not (site / "app/docs").exists()  # emptied by the exclusion: gone too
    assert _record(new) == ["app/__init__.py", "app-1.0.dist-info/METADATA",
                            "app-1.0.dist-info/RECORD"]
    assert "old/notes.md" in _record(old)
    assert (tmp_path / "cached-RECORD").read_text() == cached


def test_uvs_bookkeeping_is_removed_from_new_distributions_only(tmp_path):
    env = tmp_path / "env"
    for name in (".gitignore", ".lock", "CACHEDIR.TAG", "pyvenv.cfg"):
        (env / name).parent.mkdir(parents=True, exist_ok=True)
        (env / name).write_text("")
    old = _dist(env, "old", {"old/__init__.py": "", "old-1.0.dist-info/direct_url.json": "{}"})
    new = _dist(env, "app", {"app/__init__.py": "", "app-1.0.dist-info/direct_url.json": "{}",
                             "app-1.0.dist-info/uv_cache.json": "{}"})
    before = {f"{SITE}/{old.name}/direct_url.json"}

    remove_junk(env, SITE, "venv", before)

    assert sorted(p.name for p in env.iterdir()) == ["lib", "pyvenv.cfg"]
    assert (old / "direct_url.json").is_file()
    assert not (new / "direct_url.json").exists() and not (new / "uv_cache.json").exists()
    assert _record(new) == ["app/__init__.py", "app-1.0.dist-info/METADATA",
                            "app-1.0.dist-info/RECORD"]


def test_a_system_prefix_keeps_its_root_files(tmp_path):
    env = tmp_path / "env"
    (env / SITE).mkdir(parents=True)
    (env / ".lock").write_text("")
    remove_junk(env, SITE, "system", set())
    assert (env / ".lock").is_file()


_BODY = b"import sys\nfrom tool import main\nsys.exit(main())\n"


@pytest.mark.parametrize("head", [
    b"#!{staged}/python3.12\n",  # uv's usual shebang
    # uv's form when the path is too long (or spaced) for a shebang line
    b"#!/bin/sh\n'''exec' '{staged}/python3.12' \"$0\" \"$@\"\n' '''\n",
])
def test_scripts_of_a_relocatable_prefix_run_the_python_beside_them(tmp_path, head):
    env = tmp_path / "a staging dir" / "env"
    info = _dist(env, "tool", {"tool/__init__.py": ""})
    (env / "bin").mkdir()
    script = env / "bin" / "tool"
    script.write_bytes(head.replace(b"{staged}", str(env / "bin").encode()) + _BODY)
    (env / "bin" / "other").write_bytes(b"#!/usr/bin/env python3\n" + _BODY)  # not ours
    rows = (info / "RECORD").read_text() + "../../../bin/tool,sha256=old,10\n"
    (info / "RECORD").write_text(rows)

    changed = relocatable_shebangs(env, SITE, ["tool", "other"], env / "bin" / "python3.12")

    assert changed == ["tool"]
    data = script.read_bytes()
    assert data == TRAMPOLINE.format(python="python3.12").encode() + _BODY
    assert str(tmp_path).encode() not in data
    assert (env / "bin" / "other").read_bytes().startswith(b"#!/usr/bin/env python3\n")
    # RECORD names the bytes that ship, not the ones uv wrote
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    row = next(r for r in csv.reader(io.StringIO((info / "RECORD").read_text()))
               if r and r[0] == "../../../bin/tool")
    assert row == ["../../../bin/tool", f"sha256={digest}", str(len(data))]
