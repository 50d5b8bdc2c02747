"""Deterministic archives: same tree, same bytes, whatever the disk's times, owners and umask."""

from __future__ import annotations

import io
import os
import tarfile

from uvship import layers


def make_tree(root, mtime):
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "tool").write_text("#!/bin/sh\n")
    os.chmod(root / "pkg" / "tool", 0o700)
    os.chmod(root / "pkg" / "mod.py", 0o600)
    os.symlink("mod.py", root / "pkg" / "link.py")
    for p in [root, *root.rglob("*")]:
        os.utime(p, (mtime, mtime), follow_symlinks=False)


def archive(root, **kw):
    buf = io.BytesIO()
    info = layers.write_tar(layers.normalize(layers.scan(root, "app")), buf, **kw)
    return info, buf.getvalue()


def test_same_tree_same_bytes(tmp_path, monkeypatch):
    make_tree(tmp_path / "a", 1_000_000)
    make_tree(tmp_path / "b", 2_000_000_000)
    for compression in ("gzip", "zstd", "none"):
        ia, da = archive(tmp_path / "a", compression=compression)
        ib, db = archive(tmp_path / "b", compression=compression)
        assert da == db and ia == ib
    assert ia.diff_id == ia.digest  # uncompressed: the two digests coincide


def test_fixed_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    make_tree(tmp_path / "a", 5)
    info, data = archive(tmp_path / "a")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == sorted(members)
    assert members["app/pkg/tool"].mode == 0o755
    assert members["app/pkg/mod.py"].mode == 0o644
    assert members["app/pkg/link.py"].linkname == "mod.py"
    assert {m.mtime for m in members.values()} == {1700000000}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "", "")}
    assert data[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    assert info.size == len(data)


def test_compressed_bytes_do_not_depend_on_write_sizes(monkeypatch):
    """ISA-L compresses the same bytes differently when they come in other slices."""
    import random

    rnd = random.Random(7)
    data = bytes(rnd.getrandbits(8) for _ in range(300_000)) * 12  # some redundancy
    outs = set()
    for step in (4096, 65536, 1 << 20, 777_777):
        sink = io.BytesIO()
        comp = layers._compressor("gzip", sink)
        for i in range(0, len(data), step):
            comp.write(data[i:i + step])
        comp.close()
        outs.add(sink.getvalue())
    assert len(outs) == 1
