"""_fs: every file uvship writes (Dockerfiles, SBOMs beside bundles, packed Pythons, layout
files) replaces only regular files, and writes through symlinks."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from uvship._fs import atomic_file
from uvship.errors import InputError


def test_atomic_file_writes_through_a_symlink(tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "Dockerfile").write_text("old")
    link = tmp_path / "Dockerfile"
    link.symlink_to("real/Dockerfile")
    with atomic_file(link) as f:
        f.write(b"new")
    assert link.is_symlink() and os.readlink(link) == "real/Dockerfile"
    assert (tmp_path / "real" / "Dockerfile").read_text() == "new"
    assert sorted(os.listdir(tmp_path / "real")) == ["Dockerfile"]
    dangling = tmp_path / "app.cdx.json"
    dangling.symlink_to("real/app.cdx.json")
    with atomic_file(dangling) as f:
        f.write(b"{}")
    assert dangling.is_symlink() and (tmp_path / "real" / "app.cdx.json").read_text() == "{}"


def test_atomic_file_replaces_only_regular_files(tmp_path: Path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        for name, kind in (("fifo", "a FIFO"), ("dir", "a directory"), ("sock", "a socket")):
            with pytest.raises(InputError, match=rf"{tmp_path / name}: is {kind}; expected "
                                                 "a regular file"):
                with atomic_file(tmp_path / name) as f:
                    f.write(b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_ISSOCK(
        os.lstat(tmp_path / "sock").st_mode)
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo", "sock"]  # no temporary file left


def test_what_a_killed_writer_left_beside_an_output_is_removed(tmp_path):
    """kill -9 runs no cleanup: a writer's `.NAME.PID.*.tmp` stays beside the output until
    the next write of that output, which removes those of processes that are gone."""
    import subprocess

    from uvship._fs import atomic_file

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    out = tmp_path / "img.tar"
    stale = tmp_path / f".img.tar.{dead.pid}.x1y2.tmp"
    stale.write_bytes(b"half an archive")
    stale_dir = tmp_path / f".img.tar.{dead.pid}.z9.tmp"
    stale_dir.mkdir()
    mine = tmp_path / f".img.tar.{os.getpid()}.keep.tmp"  # a live writer's: kept
    mine.write_bytes(b"")
    other = tmp_path / ".other.tar.1.a.tmp"  # another output's: not this write's business
    other.write_bytes(b"")
    with atomic_file(out) as f:
        f.write(b"archive")
    assert out.read_bytes() == b"archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".other.tar.1.a.tmp", mine.name, "img.tar"])
