"""How a tier meets uv (stage/sync.py): the stable path an environment is synced at, and
the build record of a local package with uvship's config setting taken out again. On
hand-made directories, in-process."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
from pathlib import Path

import pytest

from uvship.stage.sync import SOURCE_SETTING, stable_place, tidy_build_records

SITE = "lib/python3.12/site-packages"


def _env(root: Path) -> Path:
    env = root / "out" / "env"
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /x\n")
    return env


def test_an_environment_is_synced_at_the_same_path_each_time(tmp_path, monkeypatch):
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache"))
    env = _env(tmp_path)
    seen = []
    for _ in range(2):
        with stable_place(env, "a" * 64) as place:
            assert (place / "pyvenv.cfg").is_file() and place.resolve() == env
            seen.append(place)
            (place / "added").write_text("uv wrote this")
        assert not place.exists() and not place.is_symlink()  # the link goes, env stays
    assert (env / "added").is_file()
    assert seen[0] == seen[1] and seen[0].name == "a" * 16 + "-0"
    with stable_place(env, "b" * 64) as other:  # another interpreter: another path
        assert other != seen[0]


def test_a_busy_place_is_not_shared_and_a_left_one_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache"))
    env = _env(tmp_path)
    stage = tmp_path / "cache" / "stage"
    stage.mkdir(parents=True)
    (stage / ("c" * 16 + "-1")).symlink_to(tmp_path / "gone")  # a killed build's leftover
    with open(stage / ("c" * 16 + "-0.lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another build is at -0
        with stable_place(env, "c" * 64) as place:
            assert place.name == "c" * 16 + "-1" and place.resolve() == env
    assert not (stage / ("c" * 16 + "-1")).is_symlink()


def test_an_error_while_synced_leaves_the_environment_where_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "cache"))
    env = _env(tmp_path)
    with pytest.raises(RuntimeError), stable_place(env, "d" * 64) as place:
        raise RuntimeError("uv failed")
    assert (env / "pyvenv.cfg").is_file() and not place.is_symlink()


def _dist(env: Path, name: str, build_json: str) -> Path:
    d = env / SITE / f"{name}-1.0.dist-info"
    d.mkdir(parents=True)
    (d / "uv_build.json").write_text(build_json)
    (d / "METADATA").write_text("Metadata-Version: 2.1\n")
    h = base64.urlsafe_b64encode(hashlib.sha256(build_json.encode()).digest()).rstrip(b"=")
    (d / "RECORD").write_text(f"{d.name}/METADATA,sha256=abc,22\n"
                              f"{d.name}/uv_build.json,sha256={h.decode()},{len(build_json)}\n"
                              f"{d.name}/RECORD,,\n")
    return d


def test_the_build_record_is_what_a_build_without_the_setting_writes(tmp_path):
    env = tmp_path / "env"
    ours = json.dumps({"config_settings": {SOURCE_SETTING: "k1"}}, separators=(",", ":"))
    d = _dist(env, "app", ours)
    plain = _dist(env, "plain", "{}")
    before = (plain / "RECORD").read_text()
    assert tidy_build_records(env, SITE, "k1")
    assert (d / "uv_build.json").read_bytes() == b"{}"
    h = base64.urlsafe_b64encode(hashlib.sha256(b"{}").digest()).rstrip(b"=").decode()
    assert (d / "RECORD").read_text() == (f"{d.name}/METADATA,sha256=abc,22\n"
                                          f"{d.name}/uv_build.json,sha256={h},2\n"
                                          f"{d.name}/RECORD,,\n")
    assert (plain / "RECORD").read_text() == before  # a record without ours: untouched


def test_a_build_record_with_the_users_own_settings_asks_for_a_reinstall(tmp_path):
    env = tmp_path / "env"
    mixed = json.dumps({"config_settings": {SOURCE_SETTING: "k1", "user-key": "1"}})
    d = _dist(env, "app", mixed)
    assert not tidy_build_records(env, SITE, "k1")
    assert (d / "uv_build.json").read_text() == mixed  # left for the reinstall to replace
