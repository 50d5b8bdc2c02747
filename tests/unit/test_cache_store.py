"""The cache's own API: records, pruning to what only the host decides. In-process."""

from __future__ import annotations

import json
from pathlib import Path

from uvship import cache


def test_records_are_written_whole_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path))
    assert cache.read_record("layers", "k") is None
    cache.write_record("layers", "k", {"role": "runtime", "size": 3})
    assert cache.read_record("layers", "k") == {"role": "runtime", "size": 3}
    assert [p.name for p in (tmp_path / "layers").iterdir()] == ["k.json"]  # no temporary
    (tmp_path / "layers" / "k.json").write_text("{half")
    assert cache.read_record("layers", "k") is None  # unreadable is absent, not an error


def test_prune_to_host_keeps_only_what_no_project_decides(tmp_path):
    for kind, key, value in [("layers", "a", {"role": "runtime"}),
                             ("layers", "b", {"role": "interpreter"}),
                             ("layers", "c", {"role": "dependencies"}),
                             ("python-choices", "d", {"key": "x"}),
                             ("outputs", "e", {})]:
        (tmp_path / kind).mkdir(exist_ok=True)
        (tmp_path / kind / f"{key}.json").write_text(json.dumps(value))
    (tmp_path / "layers" / "broken.json").write_text("{")
    (tmp_path / "tiers" / "t1").mkdir(parents=True)
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "blobs" / "sha256" / "ab").write_bytes(b"x")
    cache.prune_to_host(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["blobs/sha256/ab", "layers/a.json", "layers/b.json",
                    "python-choices/d.json"]



def test_prune_to_distributions_also_keeps_what_single_distributions_decide(tmp_path):
    for kind, key, value in [("layers", "a", {"role": "runtime"}),
                             ("layers", "g", {"role": "dependencies",
                                              "inputs": {"group": "numpy"}}),
                             ("layers", "e", {"role": "dependencies",
                                              "inputs": {"group": "environment"}}),
                             ("layers", "t", {"role": "dependencies"}),  # a tier, whole
                             ("layers", "p", {"role": "project"}),
                             ("blob-checks", "c", {}),
                             ("dependency-layers", "l", []),
                             ("outputs", "o", {})]:
        (tmp_path / kind).mkdir(exist_ok=True)
        (tmp_path / kind / f"{key}.json").write_text(json.dumps(value))
    (tmp_path / "dist-work" / "k" / "files").mkdir(parents=True)
    (tmp_path / "dist-work" / "k" / "facts.json").write_text("{}")
    (tmp_path / "tiers" / "t1").mkdir(parents=True)
    cache.prune_to_distributions(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["blob-checks/c.json", "dist-work/k/facts.json", "layers/a.json",
                    "layers/g.json"]

def test_the_no_change_path_finds_records_where_the_cache_keeps_them(tmp_path, monkeypatch):
    from uvship import _paths, cache

    for env in ({"UVSHIP_CACHE_DIR": str(tmp_path / "c")}, {"XDG_CACHE_HOME": str(tmp_path)}):
        monkeypatch.delenv("UVSHIP_CACHE_DIR", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert Path(_paths.cache_dir()) == cache.cache_root()
        assert Path(_paths.record_file("k", "x")) == cache.record_path("k", "x")
